"""Interior lines of :mod:`solvers.fem.heat`: the solution on one, Dirichlet data on one or a region.

Overlapping Schwarz needs each subdomain's solution on the *other* subdomain's
artificial boundary, which lies inside this one (``fem.heat``'s
``overlap_line`` setting and its output ``overlap_temperature``).  The line
``x = x_line`` crosses every horizontal grid line ``y = y_j`` on a triangle
edge, where the P1 function is linear in x, so its value there is
``(1 - f) u[i, j] + f u[i + 1, j]`` with ``x_line = x0 + (i + f) hx``: exact
interpolation, on a grid line (f = 0) the nodal value itself.

Parallel layout: the line's point ``j`` belongs to the rank owning node
``(i, j)``.  Nodes are owned in contiguous blocks of the x-fastest numbering,
so these owners are monotone in ``j`` and each rank holds a contiguous block
of points; the neighbour ``(i + 1, j)`` may sit on the next rank, so the
values come from one distributed PETSc matrix-vector product (rows: line
points, columns: nodes), which moves the few off-rank entries itself.

``interior_dirichlet`` (:class:`InteriorDirichlet`) makes the nodes of a
vertical grid line inside the rectangle — or that line and everything to its
right or left — Dirichlet nodes whose values come from the input
``temperature``, as a ``dirichlet`` side's do.  With a region, a solver meshing
the whole domain is active only on the rest, which is the overset form of
overlapping Schwarz (each solver holds the other's solution on its inactive
part); the output ``heat_flux`` then holds the residual at those nodes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from msorch.solver import lazy_module, param
from solvers.fem.grid import Rectangle

__all__ = ["LineTrace", "line_weights", "InteriorDirichlet", "interior_mask", "interior_problems"]


@dataclass(frozen=True)
class InteriorDirichlet:
    """Dirichlet data (input ``temperature``) on an interior grid line or the region beyond it."""

    x: float = param(0.5, "x of a vertical grid line strictly inside the domain", units="m")
    region: Literal["line", "right", "left"] = param("line", "the Dirichlet nodes: the line only, or the "
                                                     "line and everything right / left of it")


def _column(grid: Rectangle, x: float) -> tuple[int, float]:
    """(nearest grid column, its distance in cells) of the line x = ``x``."""
    s = (x - grid.x0) / grid.hx
    i = int(round(s))
    return i, abs(s - i)


def interior_problems(spec: InteriorDirichlet, x0: float, x1: float, nx: int,
                      prefix: str = "interior_dirichlet.") -> list[tuple[str, str, str]]:
    """(key, what, fix) for a line that is not a grid line strictly inside [x0, x1]."""
    grid = Rectangle(x0, x1, 0.0, 1.0, nx, 1)
    i, off = _column(grid, spec.x)
    if not x0 < spec.x < x1 or not 0 < i < nx:
        return [(f"{prefix}x", f"x = {spec.x} is not strictly inside the domain ({x0}, {x1})",
                 "put the line inside the domain, or remove interior_dirichlet")]
    if off > 1e-9:
        s = (spec.x - x0) / grid.hx
        near = [x0 + (x1 - x0) * k / nx for k in (math.floor(s), math.ceil(s)) if 0 < k < nx]
        return [(f"{prefix}x", f"x = {spec.x} is not a grid line (cells of {grid.hx:g} m from x0 = {x0})",
                 "use a grid line, e.g. x: " + " or ".join(f"{v:.12g}" for v in sorted(set(near))))]
    return []


def interior_mask(grid: Rectangle, spec: InteriorDirichlet, lo: int, hi: int) -> np.ndarray:
    """Boolean mask over the owned nodes [lo, hi): the Dirichlet nodes of ``spec``. Shape (hi - lo,)."""
    i, _ = _column(grid, spec.x)
    col = np.arange(lo, hi, dtype=np.int64) % (grid.nx + 1)
    if spec.region == "right":
        return col >= i
    if spec.region == "left":
        return col <= i
    return col == i

pb = lazy_module("solvers.fem.petsc_backend")


def line_weights(grid: Rectangle, x_line: float) -> tuple[int, float]:
    """(i, f): the line x = ``x_line`` [m] lies at ``x0 + (i + f) hx``, 0 <= f < 1 (f = 1 only at x1)."""
    s = (x_line - grid.x0) / grid.hx
    i = min(max(int(math.floor(s + 1e-9)), 0), grid.nx - 1)   # a line on a grid line snaps to it
    f = min(max(s - i, 0.0), 1.0)
    if abs(f) < 1e-9:
        f = 0.0
    return i, f


class LineTrace:
    """Values of the nodal vector ``u`` on the vertical line ``x = x_line``. Collective.

    Attributes
    ----------
    points : ndarray, shape (n_mine, 2) [m]
        This rank's line points ``(x_line, y_j)``, ``j`` ascending.
    """

    def __init__(self, comm, grid: Rectangle, lo: int, hi: int, x_line: float):
        nxp = grid.nx + 1
        i, f = line_weights(grid, x_line)
        left = np.arange(grid.ny + 1, dtype=np.int64) * nxp + i        # node (i, j) per point j
        mine = np.flatnonzero((left >= lo) & (left < hi))
        self.rows = (int(mine[0]), int(mine[-1]) + 1) if len(mine) else (0, 0)
        n_mine = self.rows[1] - self.rows[0]
        ys = grid.coordinates(left[mine])[:, 1] if n_mine else np.zeros(0)
        self.points = np.column_stack([np.full(n_mine, float(x_line)), ys])
        PETSc = pb.PETSc
        # Rows [rows): one or two entries each, columns anywhere (the neighbour may be off-rank).
        self.matrix = PETSc.Mat().createAIJ(((n_mine, grid.ny + 1), (hi - lo, grid.n_nodes)),
                                            nnz=(2, 2), comm=comm)
        for j in range(*self.rows):
            cols = [left[j]] if f == 0.0 else [left[j], left[j] + 1]
            vals = [1.0] if f == 0.0 else [1.0 - f, f]
            self.matrix.setValues([j], cols, vals)
        self.matrix.assemble()
        self.out = self.matrix.createVecLeft()

    def values(self, u) -> np.ndarray:
        """The line values [K] of the PETSc vector ``u`` on this rank, shape (n_mine,). Collective."""
        self.matrix.mult(u, self.out)
        with self.out as out:
            return out.copy()

    def destroy(self) -> None:
        self.matrix.destroy()
        self.out.destroy()
