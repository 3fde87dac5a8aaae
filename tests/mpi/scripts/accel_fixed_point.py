"""Run Constant/Aitken/IQN-ILS on a distributed affine fixed point; save every iterate.

Usage: ``mpirun -n P python accel_fixed_point.py OUT.npz C0,C1,...`` where
``C_i`` is the local slice length of rank ``i`` (they add up to ``N = 16``;
a zero gives a rank with an empty slice).  Rank 0 writes, per method, the
gathered iterates of 3 windows, the update counts and the final values.  The
vector holds two coupled fields (entries 0..9 and 10..15), so IQN-ILS runs
with per-field ``blocks``; it is run without (``IQNILS``) and with
(``IQNILS_reuse``, ``reuse = 1``) reuse of the previous window's columns.

``run(comm, counts)`` is importable, so the test computes the serial reference
in-process with ``MPI.COMM_SELF``.
"""
from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

from couplings.acceleration import IQNILS, IQNIMVJ, Aitken, ConstantRelaxation

N = 16
FIELDS = (10, 6)                  # global lengths of the two coupled fields
TOL = 1e-10                       # ||H(x) - x|| <= TOL ||H(x)|| ends a window
WINDOWS = 3
MAX_UPDATES = 600
METHODS = {"ConstantRelaxation": (ConstantRelaxation, {}), "Aitken": (Aitken, {}),
           "IQNILS": (IQNILS, {}), "IQNILS_reuse": (IQNILS, {"reuse": 1}),
           "IQNIMVJ": (IQNIMVJ, {}), "IQNIMVJ_ls": (IQNIMVJ, {"restart": "ls", "chunk_size": 2}),
           "IQNIMVJ_svd": (IQNIMVJ, {"restart": "svd", "chunk_size": 1})}


def problem(window: int) -> tuple[np.ndarray, np.ndarray]:
    """Global ``A`` (N, N), symmetric, eigenvalues in [-0.9, 0.9] (+-2 % per window), and ``b``."""
    rng = np.random.default_rng(2024)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    A = (q * np.linspace(-0.9, 0.9, N)) @ q.T
    b = rng.standard_normal(N) + 0.3 * np.sin(window + np.arange(N))
    return A * (1 + 0.02 * np.sin(window)), b


def local_blocks(lo: int, hi: int) -> list[int]:
    """Lengths of this rank's slice [lo, hi) inside each field's global range."""
    edges = np.cumsum((0,) + FIELDS)
    return [max(0, min(hi, e1) - max(lo, e0)) for e0, e1 in zip(edges[:-1], edges[1:])]


def run(comm, counts: list[int]) -> dict[str, np.ndarray]:
    """Iterate all methods (collective); returns gathered iterates and update counts."""
    assert len(counts) == comm.size and sum(counts) == N
    counts = np.asarray(counts)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo, hi = int(displs[comm.rank]), int(displs[comm.rank] + counts[comm.rank])

    def gather(local):
        full = np.empty(N)
        comm.Allgatherv(np.ascontiguousarray(local), [full, counts, displs, MPI.DOUBLE])
        return full

    def norm(v):
        out = np.empty(1)
        comm.Allreduce(np.array([v @ v]), out, op=MPI.SUM)
        return float(np.sqrt(out[0]))

    results = {}
    for name, (cls, extra) in METHODS.items():
        kwargs = dict(extra, blocks=local_blocks(lo, hi)) if issubclass(cls, IQNILS) else extra
        acc = cls(comm, relaxation=0.5, initial_relaxation=0.5, **kwargs)
        x = np.zeros(hi - lo)
        iterates, updates = [], []
        for w in range(WINDOWS):
            A, b = problem(w)
            acc.new_window()
            for k in range(MAX_UPDATES + 1):
                xt = A[lo:hi] @ gather(x) + b[lo:hi]
                if norm(xt - x) <= TOL * norm(xt):
                    acc.converged(x, xt)      # the window's end (IMVJ updates its Jacobian)
                    break
                x = acc.update(x, xt)
                iterates.append(gather(x))
            updates.append(k)
        results[f"{name}_iterates"] = np.array(iterates)
        results[f"{name}_updates"] = np.array(updates)
        results[f"{name}_final"] = gather(x)
    return results


def main() -> None:
    out, counts = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
    results = run(MPI.COMM_WORLD, counts)
    if MPI.COMM_WORLD.rank == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main()
