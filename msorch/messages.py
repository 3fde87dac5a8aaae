"""Control messages between the coordinator and the solver groups.

All are small fixed-layout numpy buffers (``Send``/``Recv``), except error
reports, which are rare and carry text.  Field data never travels here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAG_CONTROL = 11   # coordinator -> group root: Control
TAG_REPORT = 12    # group root -> coordinator: Report rows
TAG_ERROR = 13     # any solver rank -> coordinator: text (rare, pickled)
TAG_STALL = 14     # watchdog thread -> coordinator: where a rank is stuck (rare, pickled)
TAG_PATTERN0 = 200   # coupling pattern i -> coordinator: per-window statistics rows (float64)
TAG_CHANNEL0 = 1000  # channel i uses TAG_CHANNEL0 + i

NONE = -1

STOPPED = 3  # exit code: stopped after a checkpoint on request; restart to finish


@dataclass(frozen=True)
class Control:
    """Permission to run windows up to ``lease_end`` (inclusive).

    The group root reports after window ``report_at``; after window
    ``checkpoint_at`` every rank joins a checkpoint; after window ``stop_at``
    the run ends early (e.g. walltime).  -1 means none.
    """

    lease_end: int
    report_at: int
    checkpoint_at: int = NONE
    stop_at: int = NONE

    def pack(self) -> np.ndarray:
        return np.array([self.lease_end, self.report_at, self.checkpoint_at, self.stop_at], dtype=np.int64)

    @classmethod
    def unpack(cls, buf: np.ndarray) -> "Control":
        return cls(*(int(v) for v in buf))


CONTROL_SIZE = 4

# Report rows: one per finished window, float64.
# columns: window, iterations, wall seconds of the window, converged flag, then one
# relative residual per convergence measure.
REPORT_FIXED = 4


def report_width(n_measures: int) -> int:
    return REPORT_FIXED + n_measures
