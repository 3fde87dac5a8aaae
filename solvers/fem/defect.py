"""Local defect correction (LDC, Hackbusch 1984) for ``fem.heat``: the two levels' parts.

A *coarse* ``fem.heat`` (``defect_correction: true``) solves the whole domain;
a *patch* ``fem.heat`` (``coarse: {...}``, sides ``patch``) solves a nested
fine rectangle.  Per LDC iteration (the runtime's implicit scheme is the
iteration loop, one coupling window per time step):

1. the coarse level solves ``A_c u_c = b_c`` where, at the coarse nodes
   strictly inside the patch, ``b_c`` is replaced by ``A_c w`` — ``w`` the
   fine solution injected into the coarse nodes of the closed patch
   (:class:`CoarseCorrection`; before the first fine solve no row is
   corrected, so iteration 1 is the plain coarse solve);
2. the patch takes Dirichlet data on its boundary from ``u_c`` prolonged
   (:func:`couplings.patch_transfer.prolong`), solves, and sends ``w`` and
   the mask of the corrected rows back (:class:`PatchLevel`);
3. repeat until ``w`` stops changing (``scheme.convergence``).

Fields exchanged (float64, scalar, on *all* coarse nodes — a few thousand —
so the point sets stay fixed while a patch moves; they live on the patch's
rank 0 and on the coarse's owned nodes):

- coarse out ``temperature`` [K] -> patch in ``coarse_temperature``;
- patch out ``patch_temperature`` [K] (w; 0 outside the closed patch) and
  ``patch_inside`` [1] (1 at the corrected rows) -> coarse ins of the same names.

A transient patch may follow a moving :class:`~solvers.fem.manufactured.Peak`:
every ``follow_every`` steps it is re-centred on the peak (whole coarse cells,
clamped into the domain); its fine solution is shifted where old and new patch
overlap and the coarse solution at the step's start, prolonged, fills the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from couplings import patch_transfer as pt
from msorch.solver import FieldSpec, param
from solvers.fem.grid import Rectangle

__all__ = ["CoarseLevel", "CoarseCorrection", "PatchLevel", "patch_problems"]


@dataclass(frozen=True)
class CoarseLevel:
    """The coarse grid a patch nests in (``fem.heat``'s ``coarse`` setting)."""

    x0: float = param(0.0, "left end of the coarse domain", units="m")
    x1: float = param(1.0, "right end of the coarse domain", units="m")
    y0: float = param(0.0, "bottom end of the coarse domain", units="m")
    y1: float = param(1.0, "top end of the coarse domain", units="m")
    nx: int = param(32, "coarse cells along x")
    ny: int = param(32, "coarse cells along y")
    interpolation: Literal["linear", "cubic"] = param(
        "cubic", "coarse-to-patch boundary values: linear (coarse P1) or cubic (4-point Lagrange along the "
        "coarse grid line each patch side lies on)")
    follow_every: int = param(0, "re-centre the patch on the moving peak every N steps of the patch "
                                 "(= windows when dt = window); 0: the patch stays")

    def rectangle(self) -> Rectangle:
        return Rectangle(self.x0, self.x1, self.y0, self.y1, self.nx, self.ny)


def patch_problems(params) -> list[tuple[str, str, str]]:
    """Spec problems of a patch (``coarse`` set) or coarse (``defect_correction``) ``fem.heat``."""
    c = params.coarse
    sides = ("left", "right", "bottom", "top")
    problems = []
    if c is None:
        for s in sides:
            if getattr(params, s) == "patch":
                problems.append((s, "a patch side takes its values from the coarse level, but no coarse grid is "
                                 "set", "set coarse: {x0, x1, y0, y1, nx, ny} of the coarse solver, or use exact"))
        return problems
    if c.nx < 3 or c.ny < 3:
        problems.append(("coarse.nx", f"the coarse grid needs at least 3 cells each way, got {c.nx} x {c.ny}",
                         "set coarse nx, ny >= 3"))
        return problems
    if not (c.x1 > c.x0 and c.y1 > c.y0):
        return [("coarse.x1", "the coarse domain is empty", "give x0 < x1 and y0 < y1")]
    if params.defect_correction:
        problems.append(("defect_correction", "one solver cannot be both the patch (coarse set) and the coarse "
                         "level (defect_correction)", "split them into two solvers"))
    if not any(getattr(params, s) == "patch" for s in sides):
        problems.append(("left", "a patch (coarse set) needs at least one side of kind patch",
                         "set left, right, bottom and top to patch"))
    for s in sides:
        if getattr(params, s) in ("dirichlet", "neumann"):
            problems.append((s, f"a patch cannot also be coupled ({getattr(params, s)})",
                             "use patch, exact or insulated"))
    patch = Rectangle(params.x0, params.x1, params.y0, params.y1, params.nx, params.ny)
    problems += pt.nesting_problems(c.rectangle(), patch)
    if c.follow_every:
        if c.follow_every < 0:
            problems.append(("coarse.follow_every", f"expected N >= 0, got {c.follow_every}", "set follow_every: 2"))
        if params.peak is None:
            problems.append(("coarse.follow_every", "a following patch follows the peak, but no peak is set",
                             "set peak: {amplitude, width, x, y, vx, vy}, or follow_every: 0"))
        if params.conductivity_field or params.microstructure is not None:
            problems.append(("coarse.follow_every", "a moving patch keeps its matrix, which needs the scalar "
                             "conductivity", "remove conductivity_field/microstructure, or follow_every: 0"))
    return problems


def centred(coarse: Rectangle, where: "pt.Placement", peak, t: float) -> "pt.Placement":
    """``where`` moved by whole coarse cells so that the peak's centre at ``t`` is nearest the
    patch centre, kept inside the coarse domain."""
    cx, cy = peak.centre(t)
    i0 = int(np.clip(round((cx - coarse.x0) / coarse.hx - where.mx / 2), 0, coarse.nx - where.mx))
    j0 = int(np.clip(round((cy - coarse.y0) / coarse.hy - where.my / 2), 0, coarse.ny - where.my))
    return pt.Placement(i0, j0, where.mx, where.my, where.rx, where.ry)


def patch_grid(coarse: Rectangle, where: "pt.Placement") -> Rectangle:
    """The fine grid of a patch placed at ``where`` (edges computed like coarse node coordinates)."""
    c = coarse
    return Rectangle(c.x0 + (c.x1 - c.x0) * (where.i0 / c.nx), c.x0 + (c.x1 - c.x0) * ((where.i0 + where.mx) / c.nx),
                     c.y0 + (c.y1 - c.y0) * (where.j0 / c.ny), c.y0 + (c.y1 - c.y0) * ((where.j0 + where.my) / c.ny),
                     where.mx * where.rx, where.my * where.ry)


def placement_after(coarse: Rectangle, first: "pt.Placement", peak, every: int, dt: float, t0: float,
                    steps: int) -> "pt.Placement":
    """Where a patch following ``peak`` every ``every`` steps of ``dt`` [s] from ``t0`` sits after
    ``steps`` steps (the rule :class:`PatchLevel` applies; for reading its results)."""
    where = first
    for k in range(every, steps, every) if every else ():
        where = centred(coarse, where, peak, t0 + k * dt)
    return where


class CoarseCorrection:
    """Coarse side: rows strictly inside the patch get ``b = A_c w`` (Hackbusch's LDC).

    ``solver``: the coarse :class:`~solvers.fem.heat.HeatSolver` (its ``A`` is
    the full operator before Dirichlet elimination, mass term included, so the
    transient step's rows are corrected the same way).
    """

    def __init__(self, solver):
        self.solver = solver
        n = solver.hi - solver.lo
        self.w = np.zeros(n)          # (n_owned,) [K]
        self.inside = np.zeros(n)     # (n_owned,) [1]
        self.wvec = solver.u.duplicate()
        self.aw = solver.u.duplicate()

    def fields(self, points) -> dict[str, FieldSpec]:
        return {"patch_temperature": FieldSpec("float64", 1, "K", points),
                "patch_inside": FieldSpec("float64", 1, "1", points)}

    def put(self, name, data) -> None:
        target = self.w if name == "patch_temperature" else self.inside
        target[:] = np.asarray(data, dtype=float).reshape(target.shape)

    def correct(self, b0) -> None:
        """Replace ``b0``'s corrected rows by ``(A w)`` (collective over the coarse group)."""
        with self.wvec as w:
            w[:] = self.w
        self.solver.A.mult(self.wvec, self.aw)
        rows = self.inside > 0.5
        with b0 as b, self.aw as aw:
            b[rows] = aw[rows]

    def destroy(self) -> None:
        self.wvec.destroy()
        self.aw.destroy()


class PatchLevel:
    """Patch side: boundary values from the coarse level, injection back, moving placement.

    ``solver``: the patch :class:`~solvers.fem.heat.HeatSolver`; its ``grid`` is the
    patch's fine grid, whose origin this object moves.  The coarse fields live on
    group rank 0 (all coarse nodes); every rank gets the coarse solution by ``Bcast``
    and rank 0 the injected values by ``Reduce``.
    """

    def __init__(self, solver):
        self.solver = solver
        p = solver.params
        self.level = p.coarse
        self.coarse = p.coarse.rectangle()
        self.where = pt.placement(self.coarse, solver.grid)
        self.root = solver.comm.Get_rank() == 0
        n_c = self.coarse.n_nodes
        self.points = self.coarse.coordinates(np.arange(n_c)) if self.root else np.zeros((0, 2))
        self.coarse_in = np.zeros(n_c if self.root else 0)      # last put (rank 0) [K]
        self.coarse_full = np.zeros(n_c)                          # this step's coarse solution, every rank
        self.coarse_last = np.full(n_c, np.nan)                   # at the step's start (NaN: none yet)
        self.w = np.zeros(n_c if self.root else 0)                # injected fine solution (rank 0)
        self.inside = np.zeros(n_c if self.root else 0)           # no correction before the first solve
        self.steps = 0
        # Called on rank 0 after every fine solve with (coarse solution, w), both (n_coarse,) [K]:
        # the ldc pattern records the iteration history through it (couplings/patterns/ldc.py).
        self.on_solve = None

    # --- fields ---------------------------------------------------------------
    def fields(self) -> dict[str, FieldSpec]:
        pts = self.points
        return {"coarse_temperature": FieldSpec("float64", 1, "K", pts),
                "patch_temperature": FieldSpec("float64", 1, "K", pts),
                "patch_inside": FieldSpec("float64", 1, "1", pts)}

    def get(self, name):
        return (self.w if name == "patch_temperature" else self.inside).copy()

    def put(self, data) -> None:
        self.coarse_in[:] = np.asarray(data, dtype=float).reshape(self.coarse_in.shape)

    # --- one step -------------------------------------------------------------
    def before_solve(self, t: float, dt: float) -> np.ndarray:
        """Share the coarse solution, move if due; returns the Dirichlet values (n_patch_nodes,) [K]."""
        s = self.solver
        if self.root:
            self.coarse_full[:] = self.coarse_in
        s.comm.Bcast(self.coarse_full, root=0)
        every = self.level.follow_every
        if every and self.steps and self.steps % every == 0:
            self._move(t)
        self.steps += 1
        return pt.prolong(self.coarse, self.coarse_full, s.points[s.patch_nodes], self.level.interpolation)

    def after_solve(self) -> None:
        """Inject the fine solution into the coarse nodes (rank 0 gets w and the mask)."""
        s = self.solver
        fine = self.where.fine_nodes()
        mine = (fine >= s.lo) & (fine < s.hi)
        part = np.zeros(self.coarse.n_nodes)
        with s.u as u:
            part[self.where.coarse_nodes(self.coarse)[mine]] = u[fine[mine] - s.lo]
        recv = np.zeros(self.coarse.n_nodes) if self.root else None
        s.comm.Reduce(part, recv, root=0)
        if self.root:
            self.w = recv
            self.inside = pt.inside_mask(self.coarse, self.where)
            if self.on_solve is not None:
                self.on_solve(self.coarse_full, self.w)
        self.coarse_last = self.coarse_full.copy()

    def _move(self, t: float) -> None:
        """Re-centre on the peak at ``t``; shift the fine solution, fill from the coarse one at ``t``."""
        s, c, old = self.solver, self.coarse, self.where
        new = centred(c, old, s.params.peak, t)
        if new == old:
            return
        grid = patch_grid(c, new)
        full = self._gather_u()
        source = self.coarse_last if np.all(np.isfinite(self.coarse_last)) else self.coarse_full
        fill = pt.prolong(c, source, grid.coordinates(np.arange(grid.n_nodes)), "linear")
        moved = pt.shift(full, old, new, fill)
        s.grid, self.where = grid, new
        s.points = grid.coordinates(np.arange(s.lo, s.hi))
        with s.u as u:
            u[:] = moved[s.lo:s.hi]

    def _gather_u(self) -> np.ndarray:
        """The whole patch solution on every rank (Allgatherv of the owned blocks)."""
        from mpi4py import MPI
        s = self.solver
        counts = np.array(s.comm.allgather(s.hi - s.lo))
        full = np.empty(s.grid.n_nodes)
        with s.u as u:
            s.comm.Allgatherv(np.ascontiguousarray(u), [full, (counts, None), MPI.DOUBLE])
        return full

    # --- checkpointing ----------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"ldc.origin": np.array([self.where.i0, self.where.j0], dtype=np.int64),
                "ldc.steps": np.array(self.steps, dtype=np.int64),
                "ldc.coarse_last": self.coarse_last.copy(), "ldc.w": self.w.copy(),
                "ldc.inside": self.inside.copy()}

    def restore(self, state: dict, root_state: dict | None = None) -> None:
        """Back to :meth:`state`; ``root_state``: rank 0's (for w and the mask after a layout change)."""
        i0, j0 = (int(v) for v in state["ldc.origin"])
        if (i0, j0) != (self.where.i0, self.where.j0):
            s, old = self.solver, self.where
            self.where = pt.Placement(i0, j0, old.mx, old.my, old.rx, old.ry)
            s.grid = patch_grid(self.coarse, self.where)
            s.points = s.grid.coordinates(np.arange(s.lo, s.hi))
        self.steps = int(state["ldc.steps"])
        self.coarse_last = state["ldc.coarse_last"].copy()
        src = root_state if root_state is not None else state
        if self.root:
            self.w = src["ldc.w"].copy()
            self.inside = src["ldc.inside"].copy()
