"""A solver that does no work: it exchanges ``n`` values each way.

Used to measure what the framework itself costs per coupling window
(``benchmarks/window_bench.py``) and to test schedules without physics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param


@dataclass(frozen=True)
class NullParams:
    n: int = param(1, "number of points of the exchanged field over the whole group")
    dim: int = param(1, "dimension of the point coordinates")
    offset: float = param(0.0, "value added to the input to form the output each step")


class NullSolver(Solver):
    """out = in + offset, on n points split evenly over the group's ranks."""

    Params = NullParams
    outputs = ("out",)
    inputs = ("in",)
    field_info = {"out": FieldInfo("1", "in + offset after each step"),
                  "in": FieldInfo("1", "value read before each step")}

    def initialize(self, t0):
        n, size, rank = self.params.n, self.comm.Get_size(), self.comm.Get_rank()
        lo, hi = n * rank // size, n * (rank + 1) // size
        self.points = np.zeros((hi - lo, self.params.dim))
        self.points[:, 0] = np.arange(lo, hi, dtype=float)
        self.value_in = np.zeros(hi - lo)
        self.value_out = np.zeros(hi - lo)
        self._offset = np.array(self.params.offset)   # 0-d array: np.add converts no Python float per step
        # Up to 8 points: element-wise over memoryviews (~0.2 us per step at n = 1) instead of
        # np.add (~1.1 us of ufunc dispatch here).  Python float addition is the same IEEE
        # double addition, so the values are bitwise those of np.add.
        self._small = len(self.value_in) <= 8
        if self._small:
            self._mv_in, self._mv_out = memoryview(self.value_in), memoryview(self.value_out)
            self._range, self._off = range(len(self.value_in)), float(self.params.offset)

    def fields(self):
        return {name: FieldSpec("float64", 1, "1", self.points) for name in ("in", "out")}

    def advance(self, t, dt):
        if self._small:
            out, inp, off = self._mv_out, self._mv_in, self._off
            for k in self._range:
                out[k] = inp[k] + off
        else:
            np.add(self.value_in, self._offset, out=self.value_out)

    def get(self, name):
        return self.value_out

    def put(self, name, data):
        self.value_in[...] = data

    def state(self):
        # The input is not state: put() rewrites it before every step reads it.
        return {"out": self.value_out.copy()}

    def restore(self, state):
        self.value_out[...] = state["out"]
