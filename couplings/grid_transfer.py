"""Grid transfer between nested structured grids (multigrid levels): bilinear or P1.

Pure numpy, no MPI: each function works on one rank's contiguous range of
fine nodes.  The node numbering is that of :mod:`solvers.fem.grid`: node
``(i, j)`` of an ``nx x ny`` box has the number ``j (nx + 1) + i`` (x
fastest), and rank ``r`` of ``size`` owns ``[N r // size, N (r + 1) // size)``.
Every cell is split along its south-west/north-east diagonal.

A coarse grid ``(nx, ny)`` nests in a fine one ``(2 nx, 2 ny)`` on the same
box.  Two prolongations ``P`` (fine nodal values of a coarse function):

* ``bilinear`` (the default of the multigrid pattern): a fine node at a coarse
  node takes its value, one halfway along a coarse cell edge the mean of the
  edge's two ends, one at a coarse cell centre the mean of the cell's four
  corners.  With ``R = P^T`` this is the textbook pair for the 5-point
  operator (bilinear interpolation and full weighting scaled by the 2-D
  factor 4; Trottenberg, Oosterlee & Schüller, *Multigrid*, 2001, sect. 2.3):
  with red-black Gauss-Seidel, V(1,1) reduces the error by ~0.11 per cycle.
* ``p1``: the embedding of the coarse P1 space in the fine one (a cell centre
  lies on the coarse SW-NE diagonal and takes the mean of its two ends), so
  ``P^T A_h P = A_2h`` holds exactly for the assembled stiffness and mass
  matrices (Galerkin-consistent; Hackbusch, *Multi-Grid Methods and
  Applications*, 1985, sect. 3.7).  With red-black Gauss-Seidel its V(1,1)
  factor is ~0.20 (the 7-point restriction damps the diagonal modes less).

The restriction is ``R = P^T`` without scaling in both cases: fine residuals
are vectors of integrals against the fine basis (``b - A x`` of the assembled
system), and ``P^T`` turns them into integrals against the coarse basis (for
``p1`` exactly, for ``bilinear`` against the coarse bilinear hat functions).

Every fine node is written as four coarse nodes ``a, b, c, d`` with weight 1/4
each (repeated where fewer are involved), so prolongation and restriction are
four gathers and four ``bincount`` calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "TRANSFERS", "nesting_problem", "GridTransfer", "hull", "overlaps", "prolongation_rows"]

TRANSFERS = ("bilinear", "p1")


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


def prolongation_rows(fine: Box, coarse: Box, lo: int, hi: int,
                      kind: str = "bilinear") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Global coarse nodes ``(a, b, c, d)``, shape (hi - lo,) each, with
    ``(P e)[f] = (e[a] + e[b] + e[c] + e[d]) / 4``; ``kind`` is ``bilinear`` or ``p1``."""
    if kind not in TRANSFERS:
        raise ValueError(f"unknown transfer {kind!r}: expected one of {', '.join(TRANSFERS)}")
    f = np.arange(lo, hi, dtype=np.int64)
    i, j = f % (fine.nx + 1), f // (fine.nx + 1)
    ci, cj = i // 2, j // 2
    oi, oj = i % 2, j % 2          # odd index: halfway along a coarse edge in that direction
    ncx = coarse.nx + 1
    sw = cj * ncx + ci
    ne = (cj + oj) * ncx + ci + oi  # (odd, even): east neighbour; (even, odd): north; (odd, odd): north-east
    if kind == "p1":
        # The cell centre lies on the SW-NE diagonal: the mean of its two ends.
        return sw, sw, ne, ne
    # Bilinear: the other two corners (south-east, north-west); at a coarse node or an edge midpoint they
    # coincide with the two ends, so every weight stays 1/4.
    se = cj * ncx + ci + oi
    nw = (cj + oj) * ncx + ci
    return sw, se, nw, ne


def hull(fine: Box, coarse: Box, lo: int, hi: int) -> tuple[int, int]:
    """[c0, c1): the coarse node rows that fine nodes [lo, hi) are interpolated from (empty if hi <= lo)."""
    if hi <= lo:
        return 0, 0
    nfx, ncx = fine.nx + 1, coarse.nx + 1
    first_row, last_row = lo // nfx // 2, ((hi - 1) // nfx + 1) // 2
    return first_row * ncx, (last_row + 1) * ncx


class GridTransfer:
    """Prolongation and restriction (``kind``: bilinear or p1) for one rank's fine nodes [lo, hi).

    The coarse values involved are those of the coarse node rows that the
    fine rows touch: the contiguous *hull* ``[c0, c1)`` of coarse numbers.
    """

    def __init__(self, fine: Box, coarse: Box, lo: int, hi: int, kind: str = "bilinear"):
        problem = nesting_problem(fine, coarse)
        if problem:
            raise ValueError(problem)
        self.fine, self.coarse, self.lo, self.hi, self.kind = fine, coarse, lo, hi, kind
        self.c0, self.c1 = hull(fine, coarse, lo, hi)
        self.cols = [c - self.c0 for c in prolongation_rows(fine, coarse, lo, hi, kind)]

    @property
    def hull(self) -> tuple[int, int]:
        """[c0, c1): the coarse nodes this rank's fine nodes are built from."""
        return self.c0, self.c1

    def prolong(self, coarse_hull: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``P e`` on the fine nodes [lo, hi) from ``e`` on the hull, shape (c1 - c0,) -> (hi - lo,)."""
        a, b, c, d = self.cols
        out = np.add(coarse_hull[a], coarse_hull[b], out=out)
        out += coarse_hull[c]
        out += coarse_hull[d]
        out *= 0.25
        return out

    def restrict(self, fine_values: np.ndarray) -> np.ndarray:
        """This rank's part of ``P^T r``: shape (hi - lo,) -> partial sums on the hull (c1 - c0,).

        Summing the parts of all fine ranks (they overlap at block edges) gives ``P^T r``.
        """
        n = self.c1 - self.c0
        quarter = 0.25 * np.asarray(fine_values, dtype=np.float64)
        out = np.bincount(self.cols[0], quarter, minlength=n)
        for col in self.cols[1:]:
            out += np.bincount(col, quarter, minlength=n)
        return out


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
