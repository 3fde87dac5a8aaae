"""``fem.heat`` as one level of a multigrid cycle (the interface of
:mod:`couplings.patterns.multigrid_level`): red-black Gauss-Seidel or PETSc's own smoothers.

A mixin of :class:`solvers.fem.heat.HeatSolver`: the level's operator is the
solver's own Dirichlet-eliminated matrix ``A_bc = k K + (rho c / dt) M`` (rows
and columns of constrained nodes replaced by the identity), built by
``_setup_operators``.  Two smoothers (the pattern's ``smoother: {type: ...}``):

* ``multicolor`` (default): Gauss-Seidel in red-black order, the colour of
  node ``(i, j)`` being ``(i + j) mod 2`` on the *global* grid.  One step: for
  red, then black, ``t = A[c] x`` (PETSc ``MatMult`` of the colour's rows,
  which exchanges the ghost values) and ``x[c] += omega (b[c] - t) / diag[c]``.  The stiffness matrix on this mesh is the 5-point stencil, so the
  sweep is exact Gauss-Seidel in red-black order and does not depend on how the
  rows are split over ranks.  The consistent mass matrix of a transient step
  also couples ``(i, j)`` to ``(i +- 1, j +- 1)``, which have the same colour:
  those couplings are then taken from the previous values (Jacobi within the
  colour); a third colour would make it exact Gauss-Seidel but smooths worse
  (serial prototype, 128^2, V(1,1), bilinear transfer: 0.10 with two colours,
  0.12 with three at rho c / dt = 40).
* ``petsc``: a PETSc KSP on ``A_bc``, by default ``richardson`` with
  ``pc_type sor`` (PETSc's SOR on a parallel matrix is a *local symmetric*
  sweep: forward then backward Gauss-Seidel on each rank's block, Jacobi
  between blocks, so its factor grows with the rank count), ``max_it = nu``,
  a nonzero initial guess and no norms.

The coarsest level solves with the solver's own KSP, configured by the
pattern (LU by default).

numpy arrays given to these methods are placed into work vectors
(``placeArray``): no copies.  Shapes: (n_owned,), the rank's nodes.
"""
from __future__ import annotations

import math

import numpy as np

from msorch.solver import lazy_module

pb = lazy_module("solvers.fem.petsc_backend")

# Plain symmetric Gauss-Seidel (omega 1): over-relaxation (1.2) helps on one rank but hurts across the
# rank blocks, whose coupling is Jacobi (measured on 128^2: asymptotic factor 0.166 vs 0.160 on 2 ranks).
SMOOTHER_DEFAULTS = {"ksp_type": "richardson", "pc_type": "sor", "ksp_norm_type": "none"}


class MulticolorSmoother:
    """Red-black Gauss-Seidel on a PETSc matrix whose rows are nodes of a structured grid.

    ``A``: the (Dirichlet-eliminated) operator, rows [lo, hi) on this rank; ``colour``: shape (hi - lo,),
    0 or 1 for each owned row (from the global grid index, so the sweep is the same on any rank split);
    ``omega``: relaxation factor (1: Gauss-Seidel).  Collective (MatMult) in :meth:`sweep`.
    """

    def __init__(self, A, colour: np.ndarray, omega: float = 1.0):
        PETSc = pb.PETSc
        self.omega = float(omega)
        self.rows = [np.flatnonzero(colour == c) for c in (0, 1)]
        d = A.getDiagonal()
        scale = self.omega / d.getArray()
        d.destroy()
        lo, hi = A.getOwnershipRange()
        comm = A.getComm()
        cols = PETSc.IS().createStride(hi - lo, first=lo, step=1, comm=comm)
        # Per colour: the rows of that colour as their own matrix (same columns), so a colour's update needs
        # a product with half of A; its ghost exchange is the same as A's.
        self.parts = []
        for rows in self.rows:
            isrow = PETSc.IS().createGeneral((rows + lo).astype(PETSc.IntType), comm=comm)
            sub = A.createSubMatrix(isrow, cols)
            isrow.destroy()
            t = np.zeros(len(rows))
            t_vec = PETSc.Vec().createWithArray(t, size=(len(rows), PETSc.DECIDE), comm=comm)
            # omega / diag of the colour's rows, gathered once.
            self.parts.append((rows, scale[rows], sub, t, t_vec))
        cols.destroy()

    def sweep(self, x_vec, x: np.ndarray, b: np.ndarray, steps: int, reverse: bool = False) -> None:
        """``steps`` red-black sweeps on ``A x = b``; ``x_vec`` is a PETSc Vec whose storage is ``x``.

        ``reverse``: black before red, the adjoint of the forward sweep (post-smoothing of a symmetric cycle).
        """
        order = self.parts[::-1] if reverse else self.parts
        for _ in range(steps):
            for rows, scale, sub, t, t_vec in order:
                sub.mult(x_vec, t_vec)            # t = (A x)[rows]
                x[rows] += scale * (b[rows] - t)
                # x changed behind PETSc's back: invalidate anything it caches about the vector.
                x_vec.stateIncrease()

    def destroy(self) -> None:
        for _, _, sub, _, t_vec in self.parts:
            sub.destroy()
            t_vec.destroy()
        self.parts = []


class HeatLevel:
    """Multigrid level methods of ``fem.heat`` (see module docstring)."""

    # --- before launch ----------------------------------------------------------
    @classmethod
    def level_box(cls, params) -> tuple[float, float, float, float, int, int]:
        return params.x0, params.x1, params.y0, params.y1, params.nx, params.ny

    @classmethod
    def level_problems(cls, fine, params, coarse: bool) -> list[tuple[str, str, str]]:
        """Settings that keep ``params`` from being a level of ``fine`` (key, what, fix)."""
        out = []
        if params.conductivity_field or params.microstructure is not None:
            key = "conductivity_field" if params.conductivity_field else "microstructure"
            out.append((key, "a multigrid level needs the scalar conductivity (its coarse operators are "
                        "rediscretised)", f"remove {key}"))
        if params.petsc_options:
            out.append(("petsc_options", "a level's linear solver is set by the multigrid pattern",
                        "remove petsc_options; use the pattern's smoother, coarse and outer settings"))
        if not coarse:
            return out
        for key in ("conductivity", "capacity", "steady"):
            if getattr(params, key) != getattr(fine, key):
                out.append((key, f"{key} = {getattr(params, key)} differs from the finest level's "
                            f"{getattr(fine, key)}", f"use {key}: {getattr(fine, key)} on every level"))
        for side in ("left", "right", "bottom", "top"):
            kind, fine_kind = getattr(params, side), getattr(fine, side)
            if kind in ("dirichlet", "neumann"):
                out.append((side, f"a coarse level has no coupled sides ({side}: {kind})",
                            "use exact where the finest level is exact or dirichlet, else insulated"))
            elif (kind == "exact") != (fine_kind in ("exact", "dirichlet")):
                want = "exact" if fine_kind in ("exact", "dirichlet") else "insulated"
                out.append((side, f"{side}: {kind} does not constrain the same nodes as the finest level's "
                            f"{side}: {fine_kind}", f"use {side}: {want}"))
        return out

    # --- on the level's ranks ---------------------------------------------------
    def level_grid(self):
        from couplings.patterns.multigrid_level import LevelGrid
        g = self.grid
        return LevelGrid(g.x0, g.x1, g.y0, g.y1, g.nx, g.ny, self.lo, self.hi)

    def level_prepare(self, dt, smoother, coarse=None) -> None:
        """Operator for step ``dt`` (None: the current one) and the smoother on it (collective)."""
        # dt None: inside the solver's own operator setup (its KSP's preconditioner): keep what is there.
        if dt is not None and (self.ksp is None or not (self.params.steady or
                                                        math.isclose(dt, self.dt, rel_tol=1e-13))):
            self._setup_operators(dt)
        if getattr(self, "_lv_op", None) is self.A_bc:
            return
        self._lv_free_smoother()
        self._lv_op = self.A_bc
        if not hasattr(self, "_lv_vecs"):
            n, N = self.hi - self.lo, self.grid.n_nodes
            # Work vectors whose storage is swapped for the caller's arrays (placeArray).
            self._lv_vecs = [pb.PETSc.Vec().createWithArray(np.zeros(n), size=(n, N), comm=self.comm)
                             for _ in range(3)]
        smoother = dict(smoother)
        kind = smoother.pop("type", "multicolor")
        if coarse is not None:
            self._lv_smoother = None
        elif kind == "multicolor":
            nodes = np.arange(self.lo, self.hi)
            nx1 = self.grid.nx + 1
            self._lv_smoother = MulticolorSmoother(self.A_bc, (nodes % nx1 + nodes // nx1) % 2,
                                                   float(smoother.get("omega", 1.0)))
        else:
            smoother = {key: str(value) for key, value in smoother.items()}
            ksp = pb.PETSc.KSP().create(comm=self.comm)
            prefix = f"{self.prefix}mg_smooth_"
            ksp.setOptionsPrefix(prefix)
            ksp.setOperators(self.A_bc)
            with pb.pushed_options(prefix, {**SMOOTHER_DEFAULTS, **smoother}):
                ksp.setFromOptions()
            ksp.setInitialGuessNonzero(True)
            ksp.setUp()
            self._lv_smoother = ksp

    def _lv_free_smoother(self):  # a KSP or a MulticolorSmoother: both have destroy()
        ksp = getattr(self, "_lv_smoother", None)
        if ksp is not None:
            ksp.destroy()
        self._lv_smoother = None

    def _lv_place(self, *arrays):
        for vec, arr in zip(self._lv_vecs, arrays):
            vec.placeArray(arr)
        return self._lv_vecs[:len(arrays)]

    def _lv_reset(self, k):
        for vec in self._lv_vecs[:k]:
            vec.resetArray()

    def level_residual(self, x, b, out) -> None:
        xv, bv, ov = self._lv_place(x, b, out)
        try:
            self.A_bc.mult(xv, ov)
            ov.aypx(-1.0, bv)
        finally:
            self._lv_reset(3)

    def level_smooth(self, x, b, nu: int, adjoint: bool = False) -> None:
        if nu <= 0:
            return
        xv, bv = self._lv_place(x, b)
        try:
            if isinstance(self._lv_smoother, MulticolorSmoother):
                self._lv_smoother.sweep(xv, x, b, nu, reverse=adjoint)
            else:   # PETSc's SOR sweep is symmetric (forward then backward): its own adjoint
                self._lv_smoother.setTolerances(max_it=nu)
                self._lv_smoother.solve(bv, xv)
        finally:
            self._lv_reset(2)

    def level_solve(self, x, b) -> None:
        xv, bv = self._lv_place(x, b)
        try:
            xv.set(0.0)
            pb.solve(self.ksp, bv, xv)
        finally:
            self._lv_reset(2)

    def level_correct(self, x, e) -> None:
        keep = x[self.dirichlet]   # fancy indexing: a copy
        x += e
        x[self.dirichlet] = keep

    def level_constrained(self) -> np.ndarray:
        return self.dirichlet

    def level_release(self) -> None:
        self._lv_free_smoother()
        for vec in getattr(self, "_lv_vecs", ()):
            vec.destroy()
        self._lv_vecs = []
        self._lv_op = None
