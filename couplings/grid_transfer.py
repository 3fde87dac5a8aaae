"""Grid transfer between nested structured P1 triangulations (multigrid levels).

Pure numpy, no MPI: each function works on one rank's contiguous range of
fine nodes.  The node numbering is that of :mod:`solvers.fem.grid`: node
``(i, j)`` of an ``nx x ny`` box has the number ``j (nx + 1) + i`` (x
fastest), and rank ``r`` of ``size`` owns ``[N r // size, N (r + 1) // size)``.
Every cell is split along its south-west/north-east diagonal.

A coarse grid ``(nx, ny)`` nests in a fine one ``(2 nx, 2 ny)`` on the same
box: every coarse P1 function is a fine P1 function, and the prolongation
``P`` is that embedding (the fine nodal values of the coarse function).  A
fine node at a coarse node takes its value; a node halfway along a coarse
edge (horizontal, vertical, or the cell's SW-NE diagonal) takes the mean of
the edge's two ends.  The restriction is ``R = P^T`` without scaling: fine
residuals are vectors of integrals against the fine basis (``b - A x`` of
the assembled system), and ``P^T`` turns them into the integrals against the
coarse basis, so ``P^T A_h P = A_2h`` holds exactly for the assembled
stiffness and mass matrices (Galerkin-consistent; Hackbusch, *Multi-Grid
Methods and Applications*, 1985, sect. 3.7; Briggs, Henson & McCormick, *A
Multigrid Tutorial*, 2000, ch. 10).

Every fine node is written as two coarse nodes ``a``, ``b`` with weight 1/2
each (``a = b`` at a coarse node), so prolongation and restriction are two
gathers and two ``bincount`` calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "nesting_problem", "P1Transfer", "hull", "overlaps", "prolongation_rows"]


@dataclass(frozen=True)
class Box:
    """A structured grid of ``nx x ny`` cells on ``[x0, x1] x [y0, y1]`` [m]."""

    x0: float
    x1: float
    y0: float
    y1: float
    nx: int
    ny: int

    @property
    def n_nodes(self) -> int:
        """(nx + 1) (ny + 1)."""
        return (self.nx + 1) * (self.ny + 1)

    def ownership(self, size: int, rank: int) -> tuple[int, int]:
        """Half-open node range [lo, hi) of ``rank`` among ``size`` (contiguous blocks)."""
        n = self.n_nodes
        return n * rank // size, n * (rank + 1) // size


def nesting_problem(fine: Box, coarse: Box) -> str | None:
    """Why ``coarse`` is not the 2h grid of ``fine`` (None when it is)."""
    if (fine.x0, fine.x1, fine.y0, fine.y1) != (coarse.x0, coarse.x1, coarse.y0, coarse.y1):
        return (f"the box [{coarse.x0:g}, {coarse.x1:g}] x [{coarse.y0:g}, {coarse.y1:g}] differs from the "
                f"finer level's [{fine.x0:g}, {fine.x1:g}] x [{fine.y0:g}, {fine.y1:g}]")
    if fine.nx != 2 * coarse.nx or fine.ny != 2 * coarse.ny:
        return (f"{coarse.nx} x {coarse.ny} cells do not nest in the finer level's {fine.nx} x {fine.ny} "
                "(each level halves nx and ny)")
    return None


def prolongation_rows(fine: Box, coarse: Box, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Global coarse nodes ``(a, b)``, shape (hi - lo,) each, with ``(P e)[f] = (e[a] + e[b]) / 2``."""
    f = np.arange(lo, hi, dtype=np.int64)
    i, j = f % (fine.nx + 1), f // (fine.nx + 1)
    ci, cj = i // 2, j // 2
    oi, oj = i % 2, j % 2          # odd index: halfway along a coarse edge in that direction
    ncx = coarse.nx + 1
    a = cj * ncx + ci
    # (odd, even): east neighbour; (even, odd): north; (odd, odd): north-east (the SW-NE diagonal).
    b = (cj + oj) * ncx + ci + oi
    return a, b


def hull(fine: Box, coarse: Box, lo: int, hi: int) -> tuple[int, int]:
    """[c0, c1): the coarse node rows that fine nodes [lo, hi) are interpolated from (empty if hi <= lo)."""
    if hi <= lo:
        return 0, 0
    nfx, ncx = fine.nx + 1, coarse.nx + 1
    first_row, last_row = lo // nfx // 2, ((hi - 1) // nfx + 1) // 2
    return first_row * ncx, (last_row + 1) * ncx


class P1Transfer:
    """Prolongation and restriction for one rank's fine nodes [lo, hi).

    The coarse values involved are those of the coarse node rows that the
    fine rows touch: the contiguous *hull* ``[c0, c1)`` of coarse numbers.
    """

    def __init__(self, fine: Box, coarse: Box, lo: int, hi: int):
        problem = nesting_problem(fine, coarse)
        if problem:
            raise ValueError(problem)
        self.fine, self.coarse, self.lo, self.hi = fine, coarse, lo, hi
        self.c0, self.c1 = hull(fine, coarse, lo, hi)
        a, b = prolongation_rows(fine, coarse, lo, hi)
        self.a, self.b = a - self.c0, b - self.c0

    @property
    def hull(self) -> tuple[int, int]:
        """[c0, c1): the coarse nodes this rank's fine nodes are built from."""
        return self.c0, self.c1

    def prolong(self, coarse_hull: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``P e`` on the fine nodes [lo, hi) from ``e`` on the hull, shape (c1 - c0,) -> (hi - lo,)."""
        out = np.add(coarse_hull[self.a], coarse_hull[self.b], out=out)
        out *= 0.5
        return out

    def restrict(self, fine_values: np.ndarray) -> np.ndarray:
        """This rank's part of ``P^T r``: shape (hi - lo,) -> partial sums on the hull (c1 - c0,).

        Summing the parts of all fine ranks (they overlap at block edges) gives ``P^T r``.
        """
        n = self.c1 - self.c0
        half = 0.5 * np.asarray(fine_values, dtype=np.float64)
        return np.bincount(self.a, half, minlength=n) + np.bincount(self.b, half, minlength=n)


def overlaps(ranges_a, ranges_b) -> list[tuple[int, int, int, int]]:
    """(index in a, index in b, start, stop) of every non-empty intersection of two lists of ranges.

    Used for the M -> N redistribution by node number: ``ranges_a`` the fine
    ranks' hulls, ``ranges_b`` the coarse ranks' owned blocks (in rank order,
    so each side sees its partners in a fixed order and sums bitwise alike).
    """
    out = []
    for p, (a0, a1) in enumerate(ranges_a):
        for q, (b0, b1) in enumerate(ranges_b):
            s, e = max(a0, b0), min(a1, b1)
            if e > s:
                out.append((p, q, s, e))
    return out
