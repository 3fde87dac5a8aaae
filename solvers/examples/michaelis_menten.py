"""Michaelis–Menten kinetics as a stiff micro model (the test case of coarse projective integration).

    dx/dt = -x + (x + 1/2) y,      epsilon dy/dt = x - (x + 1) y

(nondimensional substrate x and complex y; Murray, *Mathematical Biology I*, §6.1).  For small
epsilon, y relaxes within O(epsilon) to the slow manifold y = x / (1 + x), on which
dx/dt = -x / (2 (1 + x)) (+ O(epsilon); see :func:`slow_rate`).  One classical RK4 step per
``advance``; the step must resolve the fast time epsilon / (1 + x).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param

__all__ = ["MMParams", "MichaelisMenten", "slow_rate"]


@dataclass(frozen=True)
class MMParams:
    epsilon: float = param(0.01, "ratio of the fast to the slow time scale", units="1")
    x0: float = param(1.0, "substrate x at the start", units="1")
    y0: Optional[float] = param(None, "complex y at the start (None: on the slow manifold, x0/(1+x0) "
                                      "plus its O(epsilon) correction)", units="1")


def slow_rate(x, epsilon: float = 0.0):
    """dx/dt on the slow manifold to first order in epsilon.

    Leading order -x/(2(1+x)); the O(epsilon) term comes from y = x/(1+x) + epsilon y1 with
    y1 = x / (2 (1+x)^4) (Fenichel's slow manifold expanded in epsilon).
    """
    x = np.asarray(x, dtype=np.float64)
    return -x / (2 * (1 + x)) + epsilon * (x + 0.5) * x / (2 * (1 + x) ** 4)


class MichaelisMenten(Solver):
    """The pair (x, y) on rank 0 of the group (other ranks hold no points).

    Outputs ``x`` and ``y`` (dimensionless, one point).  No inputs.
    """

    Params = MMParams
    outputs = ("x", "y")
    field_info = {"x": FieldInfo("1", "substrate concentration"),
                  "y": FieldInfo("1", "complex concentration")}

    @classmethod
    def check(cls, p):
        probs = []
        if p.epsilon <= 0:
            probs.append(("epsilon", f"must be > 0, got {p.epsilon:g}", "use e.g. 0.01"))
        if p.x0 < 0 or (p.y0 is not None and p.y0 < 0):
            probs.append(("x0", "concentrations must be >= 0", "use x0 >= 0 and y0 >= 0"))
        return probs

    def initialize(self, t0):
        p = self.params
        n = 1 if self.comm.Get_rank() == 0 else 0
        self.points = np.zeros((n, 1))
        y0 = p.y0 if p.y0 is not None else p.x0 / (1 + p.x0) + p.epsilon * p.x0 / (2 * (1 + p.x0) ** 4)
        self.u = np.tile(np.array([p.x0, y0], dtype=np.float64), (n, 1))   # (n, 2): x, y

    def fields(self):
        return {name: FieldSpec("float64", 1, "1", self.points) for name in self.outputs}

    def _rhs(self, u):
        x, y = u[:, 0], u[:, 1]
        return np.stack([-x + (x + 0.5) * y, (x - (x + 1) * y) / self.params.epsilon], axis=1)

    def advance(self, t, dt):
        u, f = self.u, self._rhs
        k1 = f(u)
        k2 = f(u + 0.5 * dt * k1)
        k3 = f(u + 0.5 * dt * k2)
        k4 = f(u + dt * k3)
        self.u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def get(self, name):
        return self.u[:, self.outputs.index(name)].copy()

    def state(self):
        return {"x": self.u[:, 0].copy(), "y": self.u[:, 1].copy()}

    def restore(self, state):
        self.u = np.stack([state["x"], state["y"]], axis=1).astype(np.float64)
