"""A micro cell that fails on purpose for some queries: raise, NaN, hang, or raise once.

Used by tests/e2e/test_hmm_faults.py as ``kind: hmm_faulty:FaultyCell`` (the
tests put this folder on PYTHONPATH).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from msorch.solver import param
from solvers.examples.conductivity import Cell, CellParams

_FAILED_ONCE: set[float] = set()   # per process: queries that already failed (mode raise_once)


@dataclass(frozen=True)
class FaultyCellParams(CellParams):
    fail: Literal["none", "raise", "raise_once", "nan", "hang"] = param("none", "what goes wrong")
    above: float = param(0.5, "queries with a bath temperature above this misbehave", units="K")


class FaultyCell(Cell):
    Params = FaultyCellParams

    def advance(self, t, dt):
        p = self.params
        if p.fail != "none" and p.temperature > p.above:
            if p.fail == "raise":
                raise ValueError("injected failure")
            if p.fail == "raise_once" and p.temperature not in _FAILED_ONCE:
                _FAILED_ONCE.add(p.temperature)
                raise ValueError("injected failure (once)")
            if p.fail == "nan":
                self.x[...] = float("nan")
                return
            if p.fail == "hang":
                while True:
                    time.sleep(1)
        super().advance(t, dt)

    advance_batch = None   # one instance at a time: the failing one is the one named
