"""A test solver that fails on purpose: raise, die by SIGKILL, or hang.

Used by the failure-handling tests through ``kind: faulty:Faulty`` (the tests
put this folder on PYTHONPATH).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Literal

from msorch.solver import FieldSpec, param
from solvers.null import NullParams, NullSolver


@dataclass(frozen=True)
class FaultyParams(NullParams):
    mode: Literal["none", "raise", "kill", "hang", "nan"] = param("none", "what goes wrong")
    at_step: int = param(3, "the step (0-based, counted on this rank) at which it goes wrong")
    rank: int = param(0, "the group rank that misbehaves")
    sleep: float = param(0.0, "seconds each step takes (to make a run last)", units="s")


class Faulty(NullSolver):
    Params = FaultyParams

    def initialize(self, t0):
        super().initialize(t0)
        self.steps = 0

    def advance(self, t, dt):
        p = self.params
        if self.steps == p.at_step and self.comm.Get_rank() == p.rank:
            if p.mode == "raise":
                raise ValueError("injected failure")
            if p.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if p.mode == "hang":
                while True:
                    time.sleep(1)
            if p.mode == "nan":
                self.value_in[...] = float("nan")
        self.steps += 1
        if p.sleep:
            time.sleep(p.sleep)
        super().advance(t, dt)


class Celsius(NullSolver):
    """A null solver whose fields are in degC: coupling it to one in '1' must fail the handshake.

    It declares no ``field_info``, so only the handshake can know its units.
    """

    field_info = {}

    def fields(self):
        return {name: FieldSpec("float64", 1, "degC", self.points) for name in ("in", "out")}
