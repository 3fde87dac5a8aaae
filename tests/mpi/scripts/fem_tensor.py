"""fem.heat with per-triangle tensors and fem.cell on MPI.COMM_WORLD; rank 0 saves gathered results.

Usage: ``mpirun -n N python fem_tensor.py OUT.npz``

Cases:

- ``field``: 16x10 cells on [0,2]x[0,1], steady, all sides exact, source 1,
  conductivity put per owned triangle from a smooth SPD tensor field of the
  centroid (off-diagonal terms included): the triangles a rank's rows need from
  its neighbours come through the halo exchange;
- ``fine``: 32x32 cells on [0,1]², the graded laminate a(x, x/ε), ε = 1/8, as
  ``microstructure`` (evaluated per rank, no exchange);
- ``cell``: the graded laminate's cell problem at x = (0.3, 0.7), 8x8 cells,
  solved on all ranks (CG + AMG beyond one rank, LU on one).

Rank 0 stores the global temperatures (natural node order) and centroids, and A*.
"""
from __future__ import annotations

import math
import sys

import numpy as np
from mpi4py import MPI

from solvers.fem.cell import CellParams, homogenized
from solvers.fem.heat import FineMicrostructure, HeatParams, HeatSolver

COMM = MPI.COMM_WORLD
GRADED = dict(kind="graded_laminate", k1=1.0, k2=10.0, theta=0.5, amplitude=0.5, anisotropy=0.1,
              turn=math.pi / 2)


def gather(local: np.ndarray) -> np.ndarray | None:
    local = np.ascontiguousarray(local, dtype=np.float64)
    counts = np.array(COMM.allgather(local.size), dtype=int)
    out = np.empty(counts.sum()) if COMM.rank == 0 else None
    COMM.Gatherv(local.ravel(), [out, counts] if COMM.rank == 0 else None, root=0)
    return out.reshape(-1, *local.shape[1:]) if COMM.rank == 0 else None


def tensors(points):
    x, y = points[:, 0], points[:, 1]
    k11, k22, k12 = 2.0 + np.sin(3 * x), 1.0 + y * y, 0.4 * np.cos(2 * x + y)
    return np.column_stack([k11, k12, k12, k22])


def main(out_path):
    saved = {}
    field = HeatSolver(COMM, HeatParams(nx=16, ny=10, steady=True, conductivity_field=True, source=1.0,
                                        beta=0.0))
    field.initialize(0.0)
    field.put("conductivity", tensors(field.get("centroid")))
    field.advance(0.0, 1.0)
    saved["field_u"] = gather(field.get("temperature"))
    saved["field_centroids"] = gather(field.get("centroid"))
    field.finalize()

    fine = HeatSolver(COMM, HeatParams(x1=1.0, nx=32, ny=32, steady=True, source=10.0, beta=0.0,
                                       microstructure=FineMicrostructure(**GRADED, epsilon=1 / 8)))
    fine.initialize(0.0)
    fine.advance(0.0, 1.0)
    saved["fine_u"] = gather(fine.get("temperature"))
    fine.finalize()

    saved["cell"] = homogenized(CellParams(**GRADED, x1=0.3, x2=0.7, n=8), COMM)
    if COMM.rank == 0:
        np.savez(out_path, **saved)


if __name__ == "__main__":
    main(sys.argv[1])
