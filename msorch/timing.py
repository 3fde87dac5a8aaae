"""Where a solver rank spends its wall time, per window: the timeline of a run.

Each rank keeps one :class:`PhaseClock`.  The worker marks the ends of its phases
(a few times per window and stage, never per sub-step); a lap's time since the
previous lap counts for its phase.  The window loop only appends to a flat list;
the rows are made once per report (:meth:`PhaseClock.take_rows`).

Phases (columns of ``results.h5:/timing/<solver>.phases``):

- ``compute``: the solver's own steps (put, advance, get), its state snapshot
  and roll-back in implicit iterations;
- ``wait``: blocked for data from other solvers (channel receives, the
  convergence reduction over all solver ranks) or for the coordinator's lease;
- ``exchange``: starting sends (NaN check, packing) and acceleration;
- ``output``: writing results rows (gathered to the group root);
- ``checkpoint``: joining a checkpoint.  A row covers the time from the end of
  the previous window's output to the end of this window's output, so a
  checkpoint written after window w is counted in row w + 1.

The group gathers its ranks' rows to its root at every report, which sends
them to the coordinator (tag ``TAG_TIMING``) as float64 (n_windows, n_ranks, 5).
"""
from __future__ import annotations

import time

import numpy as np

_perf = time.perf_counter   # bound once: lap() runs a few times per window

PHASES = ("compute", "wait", "exchange", "output", "checkpoint")
COMPUTE, WAIT, EXCHANGE, OUTPUT, CHECKPOINT = range(len(PHASES))
TAG_TIMING = 17   # group root -> coordinator: phase rows (float64, n_rows * n_ranks * len(PHASES))


class PhaseClock:
    """Records phase boundaries; turns them into seconds per phase and window at report time.

    The window loop only appends: ``marks += (phase, perf_counter())`` at a phase's end
    (:meth:`lap`, or written out in the hot path: no method call) and ``marks += END``
    at a window's end (:meth:`end_window`).  :meth:`take_rows` makes the rows (one per
    window end recorded) with numpy, once per report: the same numbers a per-window
    accumulator gives (a lap's seconds are its time minus the previous lap's, added to
    its phase in order), without the per-window arithmetic.
    """

    __slots__ = ("marks", "_last")
    END = (-1, 0.0)

    def __init__(self):
        self.marks: list = []              # flat (phase, seconds) pairs; phase -1: a window's end
        self._last = time.perf_counter()   # the previous lap's time (the clock's start)

    def restart(self) -> float:
        """Start the first lap now (perf_counter s, returned); nothing recorded is kept."""
        self.marks.clear()
        self._last = _perf()
        return self._last

    def lap(self, phase: int) -> None:
        """Charge the time since the previous lap to ``phase``."""
        self.marks += (phase, _perf())

    def end_window(self) -> None:
        """End this window's row (the next laps go to the next window's)."""
        self.marks += PhaseClock.END

    def take_rows(self) -> np.ndarray:
        """(n_windows, len(PHASES)) seconds of the windows ended since the last call.

        Laps after the last window end stay for the next call.
        """
        marks = self.marks
        flat = np.fromiter(marks, np.float64, len(marks)).reshape(-1, 2)
        ends = np.flatnonzero(flat[:, 0] < 0)
        if not len(ends):
            return np.zeros((0, len(PHASES)))
        done = flat[:ends[-1] + 1]
        del marks[:2 * (ends[-1] + 1)]
        lap = done[:, 0] >= 0
        times = done[lap, 1]
        seconds = np.diff(times, prepend=self._last)
        if len(times):
            self._last = times[-1]
        window = np.cumsum(~lap)[lap]          # window ends before each lap = its row
        # bincount sums in index order, as a per-window accumulator would (np.add.at: ~1 us per lap)
        cell = window * len(PHASES) + done[lap, 0].astype(np.intp)
        return np.bincount(cell, seconds, minlength=len(ends) * len(PHASES)).reshape(len(ends), len(PHASES))
