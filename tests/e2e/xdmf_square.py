"""A triangulated unit square split over the group's ranks by node rows, for the XDMF tests.

Used as ``kind: xdmf_square:Square`` (tests put tests/e2e on PYTHONPATH).  Output
``u = x + 10 y + t`` on the nodes; :meth:`result_topology` gives each rank the
triangles whose lower-left node it owns, numbered from its first node, so the
writer must offset them to the gathered numbering.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param


@dataclass(frozen=True)
class SquareParams:
    n: int = param(4, "nodes per side")
    sleep: float = param(0.0, "wall seconds per step (to let a test kill the run mid-way)", units="s")


class Square(Solver):
    """u = x + 10 y + t on an n x n node grid of the unit square (2 (n-1)^2 triangles)."""

    Params = SquareParams
    outputs = ("u",)
    field_info = {"u": FieldInfo("K", "x + 10 y + t")}

    def initialize(self, t0):
        n, size, rank = self.params.n, self.comm.Get_size(), self.comm.Get_rank()
        rows = np.array_split(np.arange(n), size)[rank]
        self.lo = int(rows[0]) * n if len(rows) else 0
        nodes = np.arange(self.lo, self.lo + len(rows) * n)
        h = 1.0 / (n - 1)
        self.points = np.column_stack([(nodes % n) * h, (nodes // n) * h])
        self.t = t0

    def fields(self):
        return {"u": FieldSpec("float64", 1, "K", self.points)}

    def advance(self, t, dt):
        time.sleep(self.params.sleep)
        self.t = t + dt

    def get(self, name):
        return self.points[:, 0] + 10 * self.points[:, 1] + self.t

    def result_topology(self):
        n = self.params.n
        sw = np.array([v for v in range(self.lo, self.lo + len(self.points)) if v % n < n - 1 and v // n < n - 1],
                      dtype=np.int64)
        tri = np.concatenate([np.column_stack([sw, sw + 1, sw + n + 1]), np.column_stack([sw, sw + n + 1, sw + n])])
        return tri - self.lo

    def state(self):
        return {"t": np.array([self.t])}

    def restore(self, state):
        self.t = float(state["t"][0])
