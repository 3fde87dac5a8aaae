"""The window loop's precomputed pieces (msorch.worker, msorch.timing), serially.

The loop no longer evaluates its report/checkpoint/stop conditions every
window: it jumps to the next window where any of them can hold
(``Worker._next_event``).  Reference: the per-window conditions as the loop
evaluated them before (``checkpoint_due`` and the report tuple), brute force
over every window; the jump must visit every window where one holds.
"""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from msorch.messages import NONE, Control
from msorch.schedule import checkpoint_due
from msorch.timing import PHASES, PhaseClock
from msorch.worker import Worker, _finite_test


def _job(n_windows, every):
    checkpoint = SimpleNamespace(every_windows=every) if every else None
    return SimpleNamespace(time=SimpleNamespace(n_windows=n_windows), checkpoint=checkpoint)


def _due(job, w, control):
    """The loop's per-window test before the jump (worker.py at the parent commit)."""
    n = job.time.n_windows
    checkpoint = w < n - 1 and checkpoint_due(job, w, control)
    return checkpoint or w in (control.report_at, control.lease_end, control.stop_at, n - 1)


@pytest.mark.parametrize("every", [None, 1, 3, 7])
def test_next_event_visits_every_window_with_something_due(every):
    rng = np.random.default_rng(5)
    n = 40
    fake = SimpleNamespace(job=_job(n, every))
    for _ in range(200):
        start = int(rng.integers(0, n))
        end = int(rng.integers(start, n))
        pick = lambda: int(rng.choice([NONE, *range(start, end + 1)]))
        control = Control(lease_end=end, report_at=pick(), checkpoint_at=pick(), stop_at=pick())
        visited, w = [], start
        while w <= end:
            nxt = Worker._next_event(fake, w, control)
            assert nxt >= w
            visited.append(nxt)
            w = nxt + 1
        due = [v for v in range(start, end + 1) if _due(fake.job, v, control)]
        assert set(due) <= set(visited), (control, every)
        assert end in visited   # the lease end always is an event (the next lease is fetched after it)


def test_finite_test_small_and_large_blocks():
    """NaN/Inf anywhere is found; finite values whose sum overflows are not flagged."""
    for n, dtype in itertools.product([1, 3, 8, 9, 1000], [np.float64, np.float32, np.complex128]):
        block = np.ones((2, n, 1), dtype=dtype)
        test = _finite_test(block)
        assert test() is True
        for bad in (np.nan, np.inf, -np.inf):
            block[1, n - 1, 0] = bad          # written after the test was made: it sees the live block
            assert test() is False, (n, dtype, bad)
            block[1, n - 1, 0] = 1.0
            assert test() is True
    huge = np.full((1, 100, 1), np.finfo(np.float64).max)
    with np.errstate(over="ignore"):
        assert _finite_test(huge)() is True
    assert _finite_test(np.zeros((1, 4, 1), dtype=np.int64)) is None


def test_phase_clock_flush_into_appends_and_restarts_the_row():
    clock = PhaseClock()
    rows: list[float] = []
    clock.acc[1] = 2.5
    clock.flush_into(rows)
    clock.acc[0] = 1.0
    clock.flush_into(rows)
    assert np.array(rows).reshape(-1, len(PHASES)).tolist() == [[0, 2.5, 0, 0, 0], [1.0, 0, 0, 0, 0]]
    assert clock.acc == [0.0] * len(PHASES)
