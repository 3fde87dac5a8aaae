"""Where a solver rank spends its wall time, per window: the timeline of a run.

Each rank keeps one :class:`PhaseClock`.  The worker calls :meth:`PhaseClock.lap`
at the boundaries of its phases (a few times per window and stage, never per
sub-step); a lap adds the time since the previous lap to one phase.  Plain
Python floats in a list: no allocation in the window loop.

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

_perf = time.perf_counter   # bound once: lap() runs a few times per window

PHASES = ("compute", "wait", "exchange", "output", "checkpoint")
COMPUTE, WAIT, EXCHANGE, OUTPUT, CHECKPOINT = range(len(PHASES))
_ZEROS = (0.0,) * len(PHASES)
TAG_TIMING = 17   # group root -> coordinator: phase rows (float64, n_rows * n_ranks * len(PHASES))


class PhaseClock:
    """Accumulates wall seconds per phase since the last :meth:`row`."""

    __slots__ = ("acc", "_last")

    def __init__(self):
        self.acc = [0.0] * len(PHASES)
        self._last = time.perf_counter()

    def lap(self, phase: int) -> None:
        """Charge the time since the previous lap to ``phase``."""
        now = _perf()
        self.acc[phase] += now - self._last
        self._last = now

    def row(self) -> list[float]:
        """This window's seconds per phase; starts the next window's row."""
        out, self.acc = self.acc, [0.0] * len(PHASES)
        return out

    def flush_into(self, rows: list) -> None:
        """Append this window's seconds per phase to the flat list ``rows``; start the next row."""
        acc = self.acc
        rows += acc
        acc[:] = _ZEROS
