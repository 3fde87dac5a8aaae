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
from msorch.schedule import checkpoint_due, interpolation
from msorch.timing import PHASES, PhaseClock
from msorch.convergence import SMALL, _small_sums, residual_sums, sums_writer
from msorch.worker import Worker, _copier, _finite_test, _reads_sample0, _snapshot


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


def test_phase_clock_rows_equal_per_window_accumulation():
    """Reference: the per-window accumulator the loop used before (acc[phase] += now - last,
    one row per window end), fed the same clock readings; laps after the last window end
    carry over to the next take_rows."""
    rng = np.random.default_rng(3)
    clock = PhaseClock()
    last, acc, expected = clock._last, [0.0] * len(PHASES), []
    t = last
    for window in range(50):
        for _ in range(int(rng.integers(0, 6))):
            t += float(rng.exponential(1e-5))
            phase = int(rng.integers(0, len(PHASES)))
            clock.marks += (phase, t)
            acc[phase] += t - last
            last = t
        clock.end_window()
        expected.append(acc)
        acc = [0.0] * len(PHASES)
        if window in (20, 49):
            t += 1e-6
            clock.lap(1)            # after the window's end: counted in the next row
            acc[1] += clock.marks[-1] - last
            last = clock.marks[-1]
            rows = clock.take_rows()
            assert rows.tolist() == expected, window
            expected = []
    assert clock.marks[0] == 1 and len(clock.marks) == 2
    assert clock.take_rows().shape == (0, len(PHASES))


@pytest.mark.parametrize("waveform", ["linear", "constant"])
def test_reads_sample0_matches_the_interpolation_weights(waveform):
    """Explicit windows skip the end-of-window copy into sample 0 only where no sub-step
    reads it.  Reference: evaluate every sub-step's input with sample 0 set to NaN and
    the others finite (``Worker._input_at``'s arithmetic); an input is NaN exactly when
    sample 0 is read."""
    for k_s, k_r in itertools.product(range(1, 7), range(1, 7)):
        ip = interpolation(k_s, k_r, waveform)
        used = np.arange(1.0, k_s + 2.0)
        used[0] = np.nan
        inputs = [used[i0] if w1 == 0.0 else used[i0] * w0 + w1 * used[i1]
                  for i0, i1, w0, w1 in zip(ip.i0, ip.i1, ip.w0, ip.w1)]
        assert _reads_sample0(ip) == any(np.isnan(inputs)), (k_s, k_r, waveform)


def test_null_solver_small_path_is_bitwise_np_add():
    """solvers/null.py adds its offset element-wise over memoryviews up to 8 points;
    reference: np.add on the same float64 values (subnormal, huge, signed zero, NaN)."""
    from mpi4py import MPI
    from solvers.null import NullParams, NullSolver
    values = np.array([5e-324, -0.0, 1e308, np.nan, 0.1, -3.7, 1 / 3, 2.0 ** 52])
    for n in (1, 3, 8, 9):
        for offset in (0.0, 1.0, -1e308, 0.1):
            solver = NullSolver(MPI.COMM_SELF, NullParams(n=n, offset=offset))
            solver.initialize(0.0)
            data = np.resize(values, n)
            solver.put("in", data)
            solver.advance(0.0, 1.0)
            with np.errstate(over="ignore"):
                assert solver.get("out").tobytes() == np.add(data, offset).tobytes(), (n, offset)


def _values(rng, shape):
    """float64 values of every kind the sums meet: normal, tiny (subnormal squares), zeros, -0.0."""
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-160, 150, shape)
    v.flat[::5] = 0.0
    v.flat[1::7] = -0.0
    return v


def test_residual_sums_small_blocks_are_vdot_and_the_writer_gives_the_same_bits():
    """Reference: numpy ``vdot`` of ``d - u`` (the kernel the worker used before issue 18's
    element-wise path).  One value: bitwise (``0.0 + r*r`` is ``r*r``); 2..8 values (summed in
    order, vdot's BLAS order may differ): relative 4 ulp-ish (1e-15) for sums of non-negative
    terms.  The bound writer of the sending/receiving side must give the kernel's bits exactly
    (the totals are compared bitwise across ranks)."""
    rng = np.random.default_rng(11)
    for size in range(1, SMALL + 1):
        for _ in range(300):
            d, u = _values(rng, (size, 1, 1)), _values(rng, (size, 1, 1))
            r2, x2 = residual_sums(d, u)
            ref = (float(np.vdot(d - u, d - u)), float(np.vdot(d, d)))
            if size == 1:
                assert (r2, x2) == ref or np.isnan(ref).any()
            else:
                assert np.allclose((r2, x2), ref, rtol=1e-15, atol=0.0)
            flat = np.full(4, np.nan)
            sums_writer(memoryview(flat), 2, d, u)()
            assert flat[2:].tobytes() == np.array([r2, x2]).tobytes()
            assert np.isnan(flat[:2]).all()
    assert _small_sums([3.0, -1.0], [1.0, 1.0]) == (8.0, 10.0)


def test_fused_sums_are_accurate_and_the_same_bits_on_every_path():
    """Above SMALL values, one compiled pass.  Reference: ``math.fsum`` of the same rounded
    squares (the exact sum, rounded once); any order of summing n non-negative terms is within
    (n - 1) unit roundoffs of it.  The bound writer, ``residual_sums`` and a non-contiguous copy
    of the same values must give the same bits: sender and receiver compare them bitwise."""
    import math
    rng = np.random.default_rng(12)
    for size in (SMALL + 1, SMALL + 3, 40, 255, 256, 1000, 125_000):
        for _ in range(20 if size < 10_000 else 2):
            d, u = _values(rng, (size, 1)), _values(rng, (size, 1))
            r2, x2 = residual_sums(d, u)
            bound = (size - 1) * 2.0 ** -53
            for got, terms in ((r2, (d - u) ** 2), (x2, d * d)):
                exact = math.fsum(terms.ravel())
                assert abs(got - exact) <= bound * exact, (size, got, exact)
            flat = np.full(4, np.nan)
            sums_writer(memoryview(flat), 0, d, u)()
            assert flat[:2].tobytes() == np.array([r2, x2]).tobytes() and np.isnan(flat[2:]).all()
            strided_d, strided_u = np.repeat(d, 2, axis=1)[:, ::2], np.repeat(u, 2, axis=1)[:, ::2]
            assert not strided_d.flags.c_contiguous
            assert residual_sums(strided_d, strided_u) == (r2, x2)


def test_ahead_of_time_kernel_is_built_and_gives_the_jit_bits():
    """scripts/bootstrap.sh compiles the kernel ahead of time (no numba import at run time);
    the JIT fallback must give the same bits, or a rank without the module would disagree."""
    from msorch import fused_sums as fs
    assert not hasattr(fs.fused_sums, "py_func"), "msorch/_fused_aot*.so missing: run scripts/bootstrap.sh"
    jit = fs.jit()
    rng = np.random.default_rng(13)
    for size in (9, 10, 11, 12, 1000, 4097):
        d, u = _values(rng, size), _values(rng, size)
        a, b = np.zeros(2), np.zeros(2)
        fs.fused_sums(d, u, a, 0)
        jit(d, u, b, 0)
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.complex128])
def test_copier_is_numpy_assignment(dtype):
    """Reference: ``dst[...] = src`` (whole block, one sample broadcast over the samples, a
    non-contiguous source: numpy's own path)."""
    rng = np.random.default_rng(3)
    for k, n, c in ((1, 1, 1), (3, 2, 2), (4, 5, 1)):
        src = (rng.standard_normal((k, n, c)) * 100).astype(dtype)
        for dst_shape, source in (((k, n, c), src), ((k + 1, n, c), src[-1]), ((k, n, c), src[::-1])):
            dst, ref = np.zeros(dst_shape, dtype), np.zeros(dst_shape, dtype)
            _copier(dst, source)()
            ref[...] = source
            assert dst.tobytes() == ref.tobytes()


def test_snapshot_keeps_only_arrays_nothing_else_holds():
    """A snapshot must not change when the solver changes its state afterwards (reference: the
    values at snapshot time).  Fresh arrays only the state dict holds are kept without copying;
    live arrays, views of them and arrays the solver keeps are copied."""
    live, kept = np.arange(4.0), np.arange(3.0)
    state = {"live": live, "view": live[1:], "kept": kept, "fresh": np.ones(2), "scalar": 2.5}
    snap = _snapshot(state)
    assert not np.shares_memory(snap["live"], live) and not np.shares_memory(snap["view"], live)
    assert not np.shares_memory(snap["kept"], kept)
    assert snap["fresh"] is state["fresh"]
    live += 10.0
    kept += 10.0
    assert snap["live"].tolist() == [0.0, 1.0, 2.0, 3.0] and snap["view"].tolist() == [1.0, 2.0, 3.0]
    assert snap["kept"].tolist() == [0.0, 1.0, 2.0] and float(snap["scalar"]) == 2.5
