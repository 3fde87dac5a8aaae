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

from couplings.grid_transfer import Box

__all__ = ["Rectangle", "SIDES", "RowBlock", "local_rows", "cell_rows", "reference_gradients",
           "reference_matrices"]

SIDES: tuple[str, ...] = ("left", "right", "bottom", "top")


@dataclass(frozen=True)
class Rectangle(Box):
    """The grid [x0, x1] x [y0, y1] [m] with nx x ny cells (numbering and ownership: :class:`Box`)."""

    @property
    def hx(self) -> float:
        """Cell width [m]."""
        return (self.x1 - self.x0) / self.nx

    @property
    def hy(self) -> float:
        """Cell height [m]."""
        return (self.y1 - self.y0) / self.ny

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

    @property
    def n_elements(self) -> int:
        """Number of triangles, 2 nx ny; triangle ``2 (j nx + i) + t`` is type ``t`` of cell (i, j)."""
        return 2 * self.nx * self.ny

    def element_ownership(self, size: int, rank: int) -> tuple[int, int]:
        """Half-open range [lo, hi) of global triangle numbers owned by ``rank`` (contiguous blocks)."""
        n = self.n_elements
        return n * rank // size, n * (rank + 1) // size

    def centroids(self, elements: np.ndarray) -> np.ndarray:
        """Centroids [m], shape (len(elements), 2), of global triangle numbers ``elements``."""
        elements = np.asarray(elements, dtype=np.int64)
        cell, t = elements // 2, elements % 2
        i, j = cell % self.nx, cell // self.nx
        # Lower triangle (SW, SE, NE): (2/3, 1/3) of the cell; upper (SW, NE, NW): (1/3, 2/3).
        fx, fy = np.where(t == 0, 2.0, 1.0) / 3.0, np.where(t == 0, 1.0, 2.0) / 3.0
        return np.column_stack([self.x0 + (self.x1 - self.x0) * ((i + fx) / self.nx),
                                self.y0 + (self.y1 - self.y0) * ((j + fy) / self.ny)])

    def interpolate(self, values: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The P1 function with nodal ``values`` (shape (n_nodes,)) at ``points`` (shape (m, 2)) [m].

        Points outside the rectangle are clamped onto it.  Shape (m,).
        """
        sx = np.clip((points[:, 0] - self.x0) / self.hx, 0.0, self.nx)
        sy = np.clip((points[:, 1] - self.y0) / self.hy, 0.0, self.ny)
        i = np.minimum(sx.astype(np.int64), self.nx - 1)
        j = np.minimum(sy.astype(np.int64), self.ny - 1)
        fx, fy = sx - i, sy - j
        sw = j * (self.nx + 1) + i
        v_sw, v_se = values[sw], values[sw + 1]
        v_nw, v_ne = values[sw + self.nx + 1], values[sw + self.nx + 2]
        # Lower triangle (fx >= fy): SW + fx (SE - SW) + fy (NE - SE); upper: SW + fx (NE - NW) + fy (NW - SW).
        lower = v_sw + fx * (v_se - v_sw) + fy * (v_ne - v_se)
        upper = v_sw + fx * (v_ne - v_nw) + fy * (v_nw - v_sw)
        return np.where(fx >= fy, lower, upper)

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


def reference_gradients(hx: float, hy: float) -> tuple[np.ndarray, float]:
    """Constant P1 basis gradients of the lower and upper triangle.

    Returns
    -------
    grads : ndarray, shape (2, 3, 2)
        ``grads[t, a] = ∇φ_a`` [1/m] on triangle type ``t`` (0 = lower, 1 = upper)
        with the vertex order of :meth:`Rectangle.triangles`.
    area : float
        Area of either triangle [m^2], hx hy / 2.
    """
    verts = np.array([[[0.0, 0.0], [hx, 0.0], [hx, hy]],
                      [[0.0, 0.0], [hx, hy], [0.0, hy]]])
    grads = np.empty((2, 3, 2))
    for t in range(2):
        # Rows of inv([1 x y]) beyond the first are the constant gradients of φ_a.
        grads[t] = np.linalg.inv(np.column_stack([np.ones(3), verts[t]]))[1:].T
    return grads, 0.5 * hx * hy


def reference_matrices(hx: float, hy: float) -> tuple[np.ndarray, np.ndarray]:
    """P1 stiffness and mass matrices of the lower and upper triangle.

    Returns
    -------
    stiffness, mass : ndarray, shape (2, 3, 3)
        ``stiffness[t, a, b] = ∫ ∇φ_a·∇φ_b`` [1] and ``mass[t, a, b] = ∫ φ_a φ_b``
        [m^2] on triangle type ``t`` (0 = lower, 1 = upper) with vertex order of
        :meth:`Rectangle.triangles`.
    """
    grads, area = reference_gradients(hx, hy)
    stiffness = area * np.einsum("tak,tbk->tab", grads, grads)
    mass = np.broadcast_to(area / 12.0 * (np.ones((3, 3)) + np.eye(3)), (2, 3, 3)).copy()
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


def cell_rows(grid: Rectangle, lo: int, hi: int) -> range:
    """The cell rows whose triangles touch nodes [lo, hi) (non-empty range, hi > lo).

    Their triangles are the global elements ``2 nx first`` up to ``2 nx (last + 1)``.
    """
    nxp = grid.nx + 1
    return range(max(lo // nxp - 1, 0), min((hi - 1) // nxp, grid.ny - 1) + 1)


def local_rows(grid: Rectangle, lo: int, hi: int) -> RowBlock:
    """Assemble the rows [lo, hi) of the P1 stiffness and mass matrices.

    Only the cell rows touching the owned nodes are visited, so the cost is
    proportional to ``hi - lo``; no other rank's data is needed.
    """
    n = grid.n_nodes
    if hi <= lo:
        empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0)
        return RowBlock(lo, hi, np.zeros(1, np.int32), empty_i, empty_f, empty_f, empty_f)
    cells = cell_rows(grid, lo, hi)
    tri = grid.triangles(cells)
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
