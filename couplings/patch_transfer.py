"""Transfers between a coarse structured grid and a nested fine patch (local defect correction).

Pure numpy, no MPI.  Both levels are :class:`solvers.fem.grid.Rectangle` grids
(nodes ``(i, j)`` numbered ``j (nx + 1) + i``).  A patch *nests* in the coarse
grid when its edges lie on coarse grid lines and its cell sizes divide the
coarse ones by whole ratios ``rx = Hx/hx``, ``ry = Hy/hy``: then every coarse
node in the closed patch is a fine node, and

- *restriction* is injection: the coarse node ``(I0 + a, J0 + b)`` takes the
  fine value at ``(a rx, b ry)``;
- *prolongation* to the patch boundary interpolates the coarse nodal values,
  either with the coarse P1 functions (``linear``, the coarse discretization's
  own interpolant) or, since every patch side lies on a coarse grid line,
  with the 4-point Lagrange cubic along that line (``cubic``: O(H⁴) instead of
  O(H²) interpolation error, so the fine patch sees the coarse *nodal* error
  only, not the interpolation error of a smooth background between nodes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Placement", "nesting_problems", "placement", "prolong", "inject", "inside_mask", "shift"]

_TOL = 1e-9   # relative tolerance for "lies on a grid line" / "is a whole ratio"


@dataclass(frozen=True)
class Placement:
    """Where a patch of ``mx`` x ``my`` coarse cells sits: its south-west coarse node ``(i0, j0)``.

    ``rx``, ``ry``: fine cells per coarse cell along x and y.
    """

    i0: int
    j0: int
    mx: int
    my: int
    rx: int
    ry: int

    def coarse_nodes(self, coarse) -> np.ndarray:
        """Coarse node numbers of the closed patch, shape ((mx+1)(my+1),), x fastest."""
        i, j = np.meshgrid(np.arange(self.i0, self.i0 + self.mx + 1), np.arange(self.j0, self.j0 + self.my + 1))
        return (j * (coarse.nx + 1) + i).ravel()

    def fine_nodes(self) -> np.ndarray:
        """Fine (patch) node numbers that coincide with :meth:`coarse_nodes`, same order."""
        a, b = np.meshgrid(np.arange(self.mx + 1) * self.rx, np.arange(self.my + 1) * self.ry)
        return (b * (self.mx * self.rx + 1) + a).ravel()


def _whole(value: float) -> int | None:
    """``value`` rounded when it is a whole number to _TOL, else None."""
    n = round(value)
    return n if abs(value - n) <= _TOL * max(1.0, abs(value)) else None


def nesting_problems(coarse, patch) -> list[tuple[str, str, str]]:
    """Why ``patch`` (a Rectangle) does not nest in ``coarse``, as (key, what, fix); empty when it does.

    Keys name the patch's settings (``x0``, ``nx``, ...).
    """
    problems = []
    for lo, hi, n, c_lo, c_hi, c_n, axis in (("x0", "x1", "nx", coarse.x0, coarse.x1, coarse.nx, "x"),
                                             ("y0", "y1", "ny", coarse.y0, coarse.y1, coarse.ny, "y")):
        p_lo, p_hi, p_n = getattr(patch, lo), getattr(patch, hi), getattr(patch, n)
        H = (c_hi - c_lo) / c_n
        span = f"[{c_lo:g}, {c_hi:g}]"
        if p_lo < c_lo - _TOL * H or p_hi > c_hi + _TOL * H:
            problems.append((lo if p_lo < c_lo - _TOL * H else hi,
                             f"the patch's {axis} range [{p_lo:g}, {p_hi:g}] leaves the coarse domain {span}",
                             f"move the patch inside {span}"))
            continue
        bad = [k for k, v in ((lo, p_lo), (hi, p_hi)) if _whole((v - c_lo) / H) is None]
        for k in bad:
            v = getattr(patch, k)
            near = c_lo + round((v - c_lo) / H) * H
            problems.append((k, f"{k} = {v:g} is not on a coarse grid line (coarse h = {H:g}), so the levels do "
                             "not nest", f"use {k}: {near:.12g}"))
        if bad:
            continue
        cells = _whole((p_hi - p_lo) / H)
        ratio = p_n / cells if cells else 0.0
        if _whole(ratio) is None or ratio < 1:
            h = (p_hi - p_lo) / p_n
            problems.append((n, f"the patch's h = {h:g} along {axis} does not divide the coarse h = {H:g} "
                             f"(ratio {H / h:.6g}), so the levels do not nest",
                             f"use {n}: a multiple of {cells}, e.g. {cells * 16}"))
    return problems


def placement(coarse, patch) -> Placement:
    """The :class:`Placement` of a patch that nests (check :func:`nesting_problems` first)."""
    mx, my = round((patch.x1 - patch.x0) / coarse.hx), round((patch.y1 - patch.y0) / coarse.hy)
    return Placement(round((patch.x0 - coarse.x0) / coarse.hx), round((patch.y0 - coarse.y0) / coarse.hy),
                     mx, my, patch.nx // mx, patch.ny // my)


def _cubic_along(values_2d: np.ndarray, line: np.ndarray, s: np.ndarray, n: int) -> np.ndarray:
    """Lagrange cubic through 4 nodes of each ``line`` (rows of ``values_2d``) at coordinate ``s`` [cells]."""
    base = np.clip(np.floor(s).astype(np.int64) - 1, 0, max(n - 3, 0))
    t = s - base                          # position within the 4-node stencil, in [0, 3]
    out = np.zeros(len(s))
    for a in range(min(4, n + 1)):
        w = np.ones(len(s))
        for b in range(min(4, n + 1)):
            if b != a:
                w *= (t - b) / (a - b)
        out += w * values_2d[line, np.minimum(base + a, n)]
    return out


def prolong(coarse, values: np.ndarray, points: np.ndarray, order: str = "cubic") -> np.ndarray:
    """Coarse nodal ``values`` (coarse.n_nodes,) at ``points`` (m, 2) [m]; shape (m,).

    ``linear``: the coarse P1 interpolant.  ``cubic``: points on a coarse grid
    line get the cubic along that line (the others the P1 interpolant).
    """
    out = coarse.interpolate(values, points)
    if order == "linear" or coarse.nx < 3 or coarse.ny < 3:
        return out
    grid = values.reshape(coarse.ny + 1, coarse.nx + 1)
    sx = (points[:, 0] - coarse.x0) / coarse.hx
    sy = (points[:, 1] - coarse.y0) / coarse.hy
    ix, iy = np.rint(sx), np.rint(sy)
    on_x = np.abs(sx - ix) <= _TOL * max(coarse.nx, 1)      # on a vertical line x = x_I
    on_y = np.abs(sy - iy) <= _TOL * max(coarse.ny, 1)      # on a horizontal line y = y_J
    vert = on_x & ~on_y
    if vert.any():
        out[vert] = _cubic_along(grid.T, ix[vert].astype(np.int64), sy[vert], coarse.ny)
    horiz = on_y & ~on_x
    if horiz.any():
        out[horiz] = _cubic_along(grid, iy[horiz].astype(np.int64), sx[horiz], coarse.nx)
    both = on_x & on_y                    # coarse nodes themselves
    out[both] = grid[iy[both].astype(np.int64), ix[both].astype(np.int64)]
    return out


def inject(coarse, where: Placement, fine: np.ndarray) -> np.ndarray:
    """Restriction by injection: coarse-sized vector (coarse.n_nodes,), the fine patch values
    ``fine`` (full patch vector) at the coarse nodes of the closed patch, 0 elsewhere."""
    out = np.zeros(coarse.n_nodes)
    out[where.coarse_nodes(coarse)] = fine[where.fine_nodes()]
    return out


def inside_mask(coarse, where: Placement) -> np.ndarray:
    """1.0 at the coarse nodes strictly inside the patch (where LDC corrects the coarse
    right-hand side), else 0.0; shape (coarse.n_nodes,)."""
    mask = np.zeros((coarse.ny + 1, coarse.nx + 1))
    mask[where.j0 + 1:where.j0 + where.my, where.i0 + 1:where.i0 + where.mx] = 1.0
    return mask.ravel()


def shift(old: np.ndarray, old_where: Placement, new_where: Placement, fill: np.ndarray) -> np.ndarray:
    """Re-map a full patch vector when the patch moves by whole coarse cells.

    The fine nodes of the new placement that the old one covered keep their old
    values (the grids coincide there: a shift by whole coarse cells is one by
    whole fine cells); the others take ``fill`` (full new-patch vector, e.g. the
    coarse solution prolonged).  Shapes: (n_fine,) each.
    """
    nxp, nyp = new_where.mx * new_where.rx + 1, new_where.my * new_where.ry + 1
    out = fill.reshape(nyp, nxp).copy()
    src = old.reshape(nyp, nxp)
    di = (new_where.i0 - old_where.i0) * new_where.rx
    dj = (new_where.j0 - old_where.j0) * new_where.ry
    # new fine (a, b) = old fine (a + di, b + dj)
    a0, a1 = max(0, -di), min(nxp, nxp - di)
    b0, b1 = max(0, -dj), min(nyp, nyp - dj)
    if a1 > a0 and b1 > b0:
        out[b0:b1, a0:a1] = src[b0 + dj:b1 + dj, a0 + di:a1 + di]
    return out.ravel()
