"""A complete user-defined solver in one file (shown in the README).

du/dt = -k u + g, with g arriving through a channel; implicit Euler per step.
Two of them coupled both ways make a small linear system with a closed form.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msorch.solver import FieldSpec, Solver, param


@dataclass(frozen=True)
class DecayParams:
    rate: float = param(1.0, "decay rate k in du/dt = -k u + g", units="1/s")  # g in 1/s, u in 1
    initial: float = param(1.0, "u at the start", units="1")


class Decay(Solver):
    """One scalar u on rank 0 of its group (other ranks hold no points)."""

    Params = DecayParams
    outputs = ("u",)
    inputs = ("g",)

    def initialize(self, t0):
        n = 1 if self.comm.Get_rank() == 0 else 0
        self.points = np.zeros((n, 1))          # (n_local, dim): where the value lives
        self.u = np.full(n, self.params.initial)
        self.g = np.zeros(n)

    def fields(self):
        return {"u": FieldSpec("float64", 1, "1", self.points),
                "g": FieldSpec("float64", 1, "1", self.points)}

    def advance(self, t, dt):
        self.u = (self.u + dt * self.g) / (1.0 + dt * self.params.rate)

    def get(self, name):
        return self.u

    def put(self, name, data):
        self.g = data.copy()        # the framework reuses its buffer

    def state(self):
        return {"u": self.u.copy(), "g": self.g.copy()}

    def restore(self, state):
        self.u, self.g = state["u"].copy(), state["g"].copy()
