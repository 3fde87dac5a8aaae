"""Run fem.heat on MPI.COMM_WORLD for three boundary setups; rank 0 gathers and saves.

Usage: ``mpirun -n N python fem_monolithic.py OUT.npz``

Cases (20x10 cells on [0,2]x[0,1], 10 steps of dt 0.05, manufactured
u = 1 + x² + 3y² + 1.2t):

- ``exact``: all sides exact;
- ``neumann``: right side neumann fed the analytic nodal inflow 2 x1 k hy
  (the field has no corners: they lie on exact sides), left side insulated
  (∂u/∂x = 0 at x = 0);
- ``dirichlet``: right side dirichlet fed the analytic u; its heat_flux output
  is gathered too;
- ``top``: the same on the top side, whose nodes live on the last rank(s) only,
  so other ranks hold empty fields.

Per case rank 0 stores the final global temperature (natural node order), the
coordinates, the largest relative L2 error against the analytic u over the
steps, and (dirichlet, top) the gathered heat_flux.  One JSON line per case on
stdout summarises it.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from mpi4py import MPI

from solvers.fem.heat import HeatParams, HeatSolver

COMM = MPI.COMM_WORLD
CASES = {"exact": {}, "neumann": {"right": "neumann", "left": "insulated"},
         "dirichlet": {"right": "dirichlet"}, "top": {"top": "dirichlet"}}
DT, STEPS, HY = 0.05, 10, 0.1


def analytic(points, t):
    return 1.0 + points[:, 0] ** 2 + 3.0 * points[:, 1] ** 2 + 1.2 * t


def gather(local: np.ndarray) -> np.ndarray | None:
    """Concatenate every rank's rows on rank 0 in rank order (Gatherv)."""
    local = np.ascontiguousarray(local, dtype=np.float64)
    width = int(np.prod(local.shape[1:], dtype=int))
    counts = np.array(COMM.allgather(local.size), dtype=int)
    out = np.empty(counts.sum()) if COMM.rank == 0 else None
    COMM.Gatherv(local.ravel(), [out, counts] if COMM.rank == 0 else None, root=0)
    return out.reshape(-1, *local.shape[1:]) if COMM.rank == 0 and width > 1 else out


def inflow(points):
    """Analytic heat flow entering through x = 2 per inner node: k ∂u/∂x hy = 2·2·hy."""
    return np.full(len(points), 2.0 * 2.0 * HY)


def run(name, sides):
    solver = HeatSolver(COMM, HeatParams(nx=20, ny=10, **sides))
    assert not HeatSolver.check(solver.params)
    solver.initialize(0.0)
    fields = solver.fields()
    side_pts = fields["temperature"].points
    t, worst = 0.0, 0.0
    for _ in range(STEPS):
        if name == "neumann":
            solver.put("heat_flux", inflow(fields["heat_flux"].points))
        elif name in ("dirichlet", "top"):
            solver.put("temperature", analytic(side_pts, t + DT))
        solver.advance(t, DT)
        t += DT
        u, pts = gather(solver.results()["temperature"]), gather(solver.result_points())
        if COMM.rank == 0:
            exact = analytic(pts, t)
            worst = max(worst, float(np.linalg.norm(u - exact) / np.linalg.norm(exact)))
    out = {f"{name}_u": u, f"{name}_points": pts, f"{name}_worst": np.array(worst)}
    if name in ("dirichlet", "top"):
        out[f"{name}_flux"] = gather(solver.get("heat_flux"))
        out[f"{name}_flux_points"] = gather(side_pts)
    solver.finalize()
    if COMM.rank == 0:
        print(json.dumps({"case": name, "size": COMM.size, "worst_rel_l2": worst}), flush=True)
    return out


def main(path):
    results = {}
    for name, sides in CASES.items():
        results.update(run(name, sides))
    if COMM.rank == 0:
        np.savez(path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
