"""FE-HMM vs the direct fine-scale solve: wall time at ε = 1/32, and the errors that go with it.

Problem: ``solvers.fem.fehmm.DEMO`` (the graded laminate of jobs/hmm_homogenization.yaml).
Baseline measured in the same run: the direct fine-scale ``fem.heat`` solve resolving ε with the
cell mesh's 8 elements per period (256 x 256 cells at ε = 1/32; setup + assembly + CG/AMG solve).
FE-HMM: one ``fem.cell`` instance reused for every macro triangle (LU, 8 x 8 cells) + the macro
solve, in this one process (the farm adds its own exchange cost, measured by farm_bench.py).
Each time is the best of ``REPEAT`` runs.  Errors: L2 against the direct solution (nodal
quadrature on the fine mesh).  Target (issue 11): HMM ≥ 20x cheaper at ε = 1/32, with its error
at the O(H²) + O(ε) level.

Usage: ``.venv/bin/python benchmarks/fehmm_bench.py``
"""
from __future__ import annotations

import math
import time

import numpy as np
from mpi4py import MPI

from solvers.fem.fehmm import DEMO, answer, solve_heat
from solvers.fem.heat import HeatSolver

COMM = MPI.COMM_SELF
REPEAT = 3


def best(fn, repeat=REPEAT):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def hmm(n):
    macro = HeatSolver(COMM, DEMO.macro(n))
    macro.initialize(0.0)
    points = macro.centroids
    macro.finalize()
    return solve_heat(DEMO.macro(n), COMM, answer(points, DEMO.cell(), COMM))


def main():
    print(__doc__.split("\n\n")[0])
    for eps in (1 / 16, 1 / 32):
        t_direct, (fine, ue) = best(lambda: solve_heat(DEMO.fine(eps), COMM), repeat=2)
        nodes = fine.grid.coordinates(np.arange(fine.grid.n_nodes))
        vol = fine.rows.volume
        print(f"\neps = 1/{round(1 / eps)}: direct {fine.grid.nx} x {fine.grid.ny} cells: {t_direct:.3f} s")
        print("   H     queries  HMM s    direct/HMM   ||U_H - u_eps||_L2")
        for n in (4, 8, 16):
            t_hmm, (macro, u) = best(lambda: hmm(n))
            e = macro.grid.interpolate(u, nodes) - ue
            error = math.sqrt(vol @ (e * e))
            print(f"  1/{n:<3d} {2 * n * n:6d}   {t_hmm:.4f}   {t_direct / t_hmm:8.1f}     {error:.3e}")


if __name__ == "__main__":
    main()
