"""Wall time of one fem.heat step (not a test; run by hand, serially or under mpirun).

Usage: ``[mpirun -n N] python tests/mpi/scripts/fem_step_time.py [n ...]`` (default 10 200)
prints, per n, the time of initialize + first step (assembly, AMG setup) and the
mean of the following steps on an n x n grid of the unit square, all sides exact.
"""
from __future__ import annotations

import sys
import time

from mpi4py import MPI

from solvers.fem.heat import HeatParams, HeatSolver

COMM = MPI.COMM_WORLD


def time_steps(n: int, steps: int) -> tuple[float, float, int]:
    solver = HeatSolver(COMM, HeatParams(x0=0.0, x1=1.0, nx=n, ny=n))
    COMM.Barrier()
    start = time.perf_counter()
    solver.initialize(0.0)
    solver.advance(0.0, 0.01)
    COMM.Barrier()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(1, steps + 1):
        solver.advance(0.01 * k, 0.01)
    COMM.Barrier()
    per_step = (time.perf_counter() - start) / steps
    iterations = solver.iterations
    solver.finalize()
    return first, per_step, iterations


def main(sizes):
    for n in sizes:
        first, per_step, its = time_steps(n, steps=max(3, 20000 // (n * n)))
        if COMM.rank == 0:
            print(f"{n}x{n} cells on {COMM.size} rank(s): initialize + first step {first * 1e3:.2f} ms, "
                  f"step {per_step * 1e3:.3f} ms ({its} CG iterations)", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 200])
