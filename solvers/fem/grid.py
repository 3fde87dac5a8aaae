"""Structured P1 triangulation of a rectangle and its row-wise assembly.

Pure numpy (no PETSc): the grid knows node numbering, coordinates, sides and
which rows each rank owns, and builds the CSR rows of the stiffness and mass
matrices for a rank's own nodes.  :mod:`solvers.fem.petsc_backend` turns those
rows into distributed PETSc objects.

Numbering and layout
--------------------
Node ``(i, j)``, ``0 <= i <= nx``, ``0 <= j <= ny``, at ``(x0 + i hx, y0 + j hy)``
has the global number ``g = j (nx + 1) + i`` (x fastest).  Rank ``r`` of ``size``
owns the contiguous block ``[N r // size, N (r + 1) // size)`` of the ``N``
nodes, which is also its block of matrix rows and vector entries.

Every cell is split along its SW–NE diagonal into two right triangles, so the
P1 stiffness matrix is the 5-point stencil (the coupling across a hypotenuse
is ``-cot(90°)/2 = 0``), which is exact for quadratic solutions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Rectangle", "SIDES", "RowBlock", "local_rows", "reference_matrices"]

SIDES: tuple[str, ...] = ("left", "right", "bottom", "top")


@dataclass(frozen=True)
class Rectangle:
    """The grid [x0, x1] x [y0, y1] [m] with nx x ny cells."""

    x0: float
    x1: float
    y0: float
    y1: float
    nx: int
    ny: int

    @property
    def hx(self) -> float:
        """Cell width [m]."""
        return (self.x1 - self.x0) / self.nx

    @property
    def hy(self) -> float:
        """Cell height [m]."""
        return (self.y1 - self.y0) / self.ny

    @property
    def n_nodes(self) -> int:
        """Number of nodes, (nx + 1) (ny + 1)."""
        return (self.nx + 1) * (self.ny + 1)

    def ownership(self, size: int, rank: int) -> tuple[int, int]:
        """Half-open range [lo, hi) of global node numbers owned by ``rank``."""
        n = self.n_nodes
        return n * rank // size, n * (rank + 1) // size

    def coordinates(self, nodes: np.ndarray) -> np.ndarray:
        """Coordinates [m], shape (len(nodes), 2), of global node numbers ``nodes``."""
        nodes = np.asarray(nodes, dtype=np.int64)
        i, j = nodes % (self.nx + 1), nodes // (self.nx + 1)
        # x0 + i*hx would differ from x1 at i = nx by rounding; interpolate instead.
        x = self.x0 + (self.x1 - self.x0) * (i / self.nx)
        y = self.y0 + (self.y1 - self.y0) * (j / self.ny)
        return np.column_stack([x, y])

    def side_nodes(self, side: str) -> np.ndarray:
        """Global numbers of the nodes on ``side``, corners included, ascending."""
        nxp = self.nx + 1
        if side == "left":
            return np.arange(self.ny + 1, dtype=np.int64) * nxp
        if side == "right":
            return np.arange(self.ny + 1, dtype=np.int64) * nxp + self.nx
        if side == "bottom":
            return np.arange(nxp, dtype=np.int64)
        if side == "top":
            return np.arange(nxp, dtype=np.int64) + self.ny * nxp
        raise ValueError(f"unknown side {side!r}; expected one of {', '.join(SIDES)}")

    def triangles(self, cell_rows: range) -> np.ndarray:
        """Vertex numbers, shape (2 nx len(cell_rows), 3), of the triangles in cell rows ``cell_rows``.

        Rows alternate between the lower triangle (SW, SE, NE; right angle at SE)
        and the upper one (SW, NE, NW; right angle at NW) of each cell, matching
        :func:`reference_matrices`.
        """
        i, j = np.meshgrid(np.arange(self.nx), np.asarray(cell_rows), indexing="xy")
        sw = (j * (self.nx + 1) + i).ravel()
        se, nw = sw + 1, sw + self.nx + 1
        ne = nw + 1
        tri = np.empty((2 * sw.size, 3), dtype=np.int64)
        tri[0::2] = np.column_stack([sw, se, ne])
        tri[1::2] = np.column_stack([sw, ne, nw])
        return tri


def reference_matrices(hx: float, hy: float) -> tuple[np.ndarray, np.ndarray]:
    """P1 stiffness and mass matrices of the lower and upper triangle.

    Returns
    -------
    stiffness, mass : ndarray, shape (2, 3, 3)
        ``stiffness[t, a, b] = ∫ ∇φ_a·∇φ_b`` [1] and ``mass[t, a, b] = ∫ φ_a φ_b``
        [m^2] on triangle type ``t`` (0 = lower, 1 = upper) with vertex order of
        :meth:`Rectangle.triangles`.
    """
    verts = np.array([[[0.0, 0.0], [hx, 0.0], [hx, hy]],
                      [[0.0, 0.0], [hx, hy], [0.0, hy]]])
    stiffness = np.empty((2, 3, 3))
    mass = np.empty((2, 3, 3))
    for t in range(2):
        # Rows of inv([1 x y]) beyond the first are the constant gradients of φ_a.
        c = np.column_stack([np.ones(3), verts[t]])
        grads = np.linalg.inv(c)[1:].T
        area = 0.5 * abs(np.linalg.det(c))
        stiffness[t] = area * grads @ grads.T
        mass[t] = area / 12.0 * (np.ones((3, 3)) + np.eye(3))
    return stiffness, mass


@dataclass(frozen=True)
class RowBlock:
    """CSR rows [lo, hi) of the stiffness and mass matrices (shared pattern).

    Attributes
    ----------
    lo, hi : int
        Global rows held.
    indptr : ndarray, shape (hi - lo + 1,), int32
        CSR row pointers (local rows).
    indices : ndarray, shape (nnz,), int32
        Global column numbers, ascending within each row.
    stiffness : ndarray, shape (nnz,)
        Values of ``∫ ∇φ_i·∇φ_j`` [1].
    mass : ndarray, shape (nnz,)
        Values of ``∫ φ_i φ_j`` [m^2].
    volume : ndarray, shape (hi - lo,)
        ``∫ φ_i`` [m^2], the area each node stands for (= row sums of ``mass``).
    """

    lo: int
    hi: int
    indptr: np.ndarray
    indices: np.ndarray
    stiffness: np.ndarray
    mass: np.ndarray
    volume: np.ndarray


def local_rows(grid: Rectangle, lo: int, hi: int) -> RowBlock:
    """Assemble the rows [lo, hi) of the P1 stiffness and mass matrices.

    Only the cell rows touching the owned nodes are visited, so the cost is
    proportional to ``hi - lo``; no other rank's data is needed.
    """
    n, nxp = grid.n_nodes, grid.nx + 1
    if hi <= lo:
        empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0)
        return RowBlock(lo, hi, np.zeros(1, np.int32), empty_i, empty_f, empty_f, empty_f)
    first = max(lo // nxp - 1, 0)
    last = min((hi - 1) // nxp, grid.ny - 1)
    tri = grid.triangles(range(first, last + 1))
    k_ref, m_ref = reference_matrices(grid.hx, grid.hy)
    kind = np.arange(len(tri)) % 2
    rows = np.repeat(tri, 3, axis=1).ravel()           # (ntri*9,) a-major
    cols = np.tile(tri, (1, 3)).ravel()
    k_val = k_ref[kind].reshape(-1)
    m_val = m_ref[kind].reshape(-1)
    keep = (rows >= lo) & (rows < hi)
    rows, cols, k_val, m_val = rows[keep], cols[keep], k_val[keep], m_val[keep]
    # Sum duplicate (row, col) pairs: sort by a combined key, reduce runs.
    key = (rows - lo) * n + cols
    uniq, inverse = np.unique(key, return_inverse=True)
    k_sum = np.bincount(inverse, weights=k_val, minlength=uniq.size)
    m_sum = np.bincount(inverse, weights=m_val, minlength=uniq.size)
    local_row = uniq // n
    indptr = np.searchsorted(local_row, np.arange(hi - lo + 1)).astype(np.int32)
    indices = (uniq % n).astype(np.int32)
    volume = np.add.reduceat(m_sum, indptr[:-1]) if m_sum.size else np.zeros(hi - lo)
    return RowBlock(lo, hi, indptr, indices, k_sum, m_sum, volume)
