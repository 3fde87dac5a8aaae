"""FE-HMM for heat conduction in one process: macro ``fem.heat`` + ``fem.cell`` per macro triangle.

The finite-element heterogeneous multiscale method (E, Ming & Zhang, J. AMS 18,
2005; Abdulle, GAKUTO 2009) with P1 macro elements and one quadrature point
per triangle (its centroid x_K): the macro stiffness uses, on each triangle,
the homogenized tensor A*(x_K) of the cell problem at x_K, computed by a micro
solver.  Periodic cells of exactly one period avoid the resonance error, so

    ‖U_H − u0‖_L2 = O(H²)  and  ‖u^ε − u0‖_L2 = O(ε)

(u0: the homogenized solution; u^ε: the fine-scale one).  This module is the
in-process reference loop over macro points (the same solvers an HMM farm
runs, on ``MPI.COMM_SELF``); ``jobs/hmm_homogenization.yaml`` runs it through
the farm.  Used by ``tests/unit/test_fem_hmm.py``.

The demonstration problem (:data:`DEMO`): −∇·(a(x, x/ε)∇u) = f on [0, 1]²,
u = 1 + x² + α y² on the boundary (fem.heat's ``exact`` sides with β = 0), with
the ``graded_laminate`` microstructure (contrast and fibre angle vary over x).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from solvers.fem.cell import TENSOR, CellParams, CellSolver
from solvers.fem.heat import FineMicrostructure, HeatParams, HeatSolver
from solvers.fem.microstructure import Microstructure

__all__ = ["Demo", "DEMO", "answer", "solve_heat", "AnswerStats"]


@dataclass(frozen=True)
class Demo:
    """The macro problem and its microstructure."""

    micro: Microstructure
    source: float = 10.0        # f [W/m^3]
    alpha: float = 1.0          # boundary values u = 1 + x^2 + alpha y^2 [K]
    n_cell: int = 8             # cell mesh cells per side = fine mesh cells per period

    def macro(self, n: int) -> HeatParams:
        """The FE-HMM macro problem on n × n cells, conductivity per triangle from answers."""
        return HeatParams(x0=0.0, x1=1.0, y0=0.0, y1=1.0, nx=n, ny=n, steady=True, source=self.source,
                          alpha=self.alpha, beta=0.0, conductivity_field=True)

    def fine(self, epsilon: float) -> HeatParams:
        """The direct fine-scale problem: ``n_cell`` cells per period ε (interfaces on element edges)."""
        n = round(self.n_cell / epsilon)
        fine = FineMicrostructure(**dataclasses.asdict(self.micro), epsilon=epsilon)
        return HeatParams(x0=0.0, x1=1.0, y0=0.0, y1=1.0, nx=n, ny=n, steady=True, source=self.source,
                          alpha=self.alpha, beta=0.0, microstructure=fine)

    def cell(self) -> CellParams:
        """Base settings of every cell problem (a query sets x1, x2)."""
        return CellParams(**dataclasses.asdict(self.micro), n=self.n_cell)


DEMO = Demo(Microstructure(kind="graded_laminate", k1=1.0, k2=10.0, theta=0.5, amplitude=0.5,
                           anisotropy=0.1, turn=math.pi / 2))


@dataclass
class AnswerStats:
    """What answering cost: micro calls and the seconds spent in them."""

    micro_calls: int = 0
    micro_seconds: float = 0.0


def answer(points: np.ndarray, base: CellParams, comm, stats: AnswerStats | None = None) -> np.ndarray:
    """A*(x) (m, 4) [W/(m K)] at macro ``points`` (m, 2) [m]: one ``fem.cell`` instance, reset per point.

    The surrogate variant of this loop is the farm's (jobs/hmm_homogenization_surrogate.yaml).
    """
    stats = stats if stats is not None else AnswerStats()
    out = np.empty((len(points), 4))
    cell = CellSolver(comm, base)
    cell.initialize(0.0)
    t0 = time.perf_counter()
    try:
        for i, (x1, x2) in enumerate(points):
            cell.reset(dataclasses.replace(base, x1=float(x1), x2=float(x2)))
            cell.advance(0.0, 1.0)
            out[i] = cell.get(TENSOR)[0]
        stats.micro_calls += len(points)
        return out
    finally:
        stats.micro_seconds += time.perf_counter() - t0
        cell.finalize()


def solve_heat(params: HeatParams, comm, tensors: np.ndarray | None = None) -> tuple[HeatSolver, np.ndarray]:
    """One steady solve; ``tensors`` (this rank's triangles, 4) feed ``conductivity``.

    Returns the (finalized) solver, for its grid and rows, and this rank's nodal temperatures [K].
    """
    solver = HeatSolver(comm, params)
    solver.initialize(0.0)
    try:
        if tensors is not None:
            solver.put("conductivity", tensors)
        solver.advance(0.0, 1.0)
        return solver, solver.results()["temperature"]
    finally:
        solver.finalize()
