"""Transient heat equation with P1 finite elements on PETSc (plugin ``fem.heat``).

Solves ``ρc ∂u/∂t − ∇·(k ∇u) = f`` on a rectangle with implicit Euler, or
``−∇·(k ∇u) = f`` once per step when ``steady`` is set.  Two-dimensional, so
"heat flow" means per unit depth: [W] stands for [W/m] of depth.

Boundary conditions, one per side:

``exact``
    Dirichlet with the manufactured ``u = 1 + x² + α y² + β t`` (see
    :mod:`solvers.fem.manufactured`), the preCICE partitioned-heat tutorial.
``dirichlet``
    Dirichlet with values put into the input field ``temperature`` (at the
    new time ``t + dt``).  The output ``heat_flux`` then holds, per node of the
    side, the heat flow *leaving* the domain [W]: minus the residual of the
    unconstrained discrete equation at that node.  Fed unchanged into a
    ``neumann`` neighbour, the pair's interface equations are exactly the
    monolithic ones once a Dirichlet–Neumann iteration has converged.
``neumann``
    Nodal heat flows *entering* the domain [W] are put into the input field
    ``heat_flux`` and added to the right-hand side at the side's nodes.
``insulated``
    Zero flux (nothing to do in the weak form).
``patch``
    A local defect correction patch (setting ``coarse``): Dirichlet with the coarse
    level's solution prolonged to the side (:mod:`solvers.fem.defect`); the coarse
    level itself has ``defect_correction: true``.

Conductivity: the scalar ``conductivity``, or a tensor per triangle, either
from the input field ``conductivity`` (``conductivity_field: true``; 4
components (k11, k12, k21, k22) [W/(m K)] at the triangles' centroids, which
the output field ``centroid`` gives as its values, so an HMM farm can answer
A*(x) per macro element), or from a fine-scale coefficient a(x, x/ε)
evaluated at each triangle's centroid (``microstructure``, see
:mod:`solvers.fem.microstructure`).  Triangles are owned in contiguous blocks
of their global numbering; the few a rank's rows need from its neighbours come
through one ``Alltoallv`` (:class:`~solvers.fem.assembly.RangeExchange`).
The scalar path is the original assembly, untouched.

At most one side is coupled (``dirichlet`` or ``neumann``).  Where sides meet,
``exact`` beats ``dirichlet`` beats ``neumann``/``insulated``, and the coupled
fields live on the coupled side's nodes *minus* corners shared with an
``exact`` side (their value is prescribed; a Dirichlet–Neumann pair with
exact outer sides loses nothing by not exchanging them).  Nodes are
distributed over the group's ranks in contiguous blocks of the natural
numbering (:mod:`solvers.fem.grid`); all PETSc work is in
:mod:`solvers.fem.petsc_backend`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, lazy_module, param
from solvers.fem.assembly import RangeExchange, TensorAssembly
from solvers.fem.interior import InteriorDirichlet, interior_mask, interior_problems
from solvers.fem.grid import SIDES, Rectangle, cell_rows, local_rows, reference_gradients
from solvers.fem.level import HeatLevel   # the multigrid level interface (couplings.patterns.multigrid)
from solvers.fem.manufactured import Manufactured, Peak, peak_problems
from solvers.fem.defect import CoarseCorrection, CoarseLevel, PatchLevel, patch_problems
from solvers.fem.microstructure import Microstructure, fine_tensors
from solvers.fem.microstructure import problems as microstructure_problems

__all__ = ["HeatParams", "HeatSolver"]

# PETSc initializes MPI when imported: only on the ranks, never in the front end.
pb = lazy_module("solvers.fem.petsc_backend")

BoundaryKind = Literal["exact", "dirichlet", "neumann", "insulated", "patch"]
COUPLED = ("dirichlet", "neumann")
_BC_DOC = ("boundary condition: exact (manufactured u), dirichlet (input temperature), "
           "neumann (input heat_flux), insulated, or patch (an LDC patch: Dirichlet from the coarse level, "
           "see coarse)")


@dataclass(frozen=True)
class FineMicrostructure(Microstructure):
    """A fine-scale coefficient a(x, x/ε) (``fem.heat``'s ``microstructure`` setting)."""

    epsilon: float = param(0.0625, "period of the microstructure", units="m")


@dataclass(frozen=True)
class HeatParams:
    """Settings of :class:`HeatSolver`."""

    x0: float = param(0.0, "left end of the domain", units="m")
    x1: float = param(2.0, "right end of the domain", units="m")
    y0: float = param(0.0, "bottom end of the domain", units="m")
    y1: float = param(1.0, "top end of the domain", units="m")
    nx: int = param(20, "number of cells along x")
    ny: int = param(10, "number of cells along y")
    conductivity: float = param(1.0, "thermal conductivity k", units="W/(m K)")
    capacity: float = param(1.0, "volumetric heat capacity rho*c", units="J/(m^3 K)")
    alpha: float = param(3.0, "alpha in the manufactured u = 1 + x^2 + alpha y^2 + beta t", units="K/m^2")
    beta: float = param(1.2, "beta in the manufactured u = 1 + x^2 + alpha y^2 + beta t", units="K/s")
    source: Optional[float] = param(None, "heat source f; null: the manufactured "
                                    "rho*c beta - k (2 + 2 alpha)", units="W/m^3")
    initial: Optional[float] = param(None, "uniform initial temperature; null: the manufactured u at t0",
                                     units="K")
    left: BoundaryKind = param("exact", f"left side (x = x0) {_BC_DOC}")
    right: BoundaryKind = param("exact", f"right side (x = x1) {_BC_DOC}")
    bottom: BoundaryKind = param("exact", f"bottom side (y = y0) {_BC_DOC}")
    top: BoundaryKind = param("exact", f"top side (y = y1) {_BC_DOC}")
    steady: bool = param(False, "solve the steady -div(k grad u) = f at each step instead")
    conductivity_field: bool = param(False, "take a conductivity tensor per triangle from the input field "
                                     "conductivity (4 components, at the centroids the output centroid gives)")
    query_levels: int = param(0, "coarse-to-fine queries (conductivity_field): in the k-th window the "
                              "centroid output gives the centroid of the enclosing triangle of the mesh "
                              "coarsened 2^(query_levels - k) times, the own centroids from window "
                              "query_levels on")
    microstructure: Optional[FineMicrostructure] = param(None, "fine-scale conductivity a(x, x/epsilon) per "
                                                         "triangle instead of the scalar conductivity")
    petsc_options: dict[str, str] = param({}, "PETSc options for the linear solve, e.g. "
                                          "{ksp_type: gmres, pc_type: ilu}; default CG + hypre, rtol 1e-14")
    overlap_line: Optional[float] = param(None, "x of a vertical line inside the domain on which the output "
                                          "overlap_temperature gives the solution (overlapping Schwarz: the "
                                          "other subdomain's artificial boundary); null: no such output", units="m")
    interior_dirichlet: Optional[InteriorDirichlet] = param(None, "Dirichlet data (input temperature) on an "
                                                            "interior grid line, or on it and the region right/"
                                                            "left of it (overset Schwarz); no side may be coupled")
    peak: Optional[Peak] = param(None, "a Gaussian peak (moving with vx, vy) added to the manufactured u; its "
                                 "source is evaluated per node (solvers/fem/manufactured.py)")
    coarse: Optional[CoarseLevel] = param(None, "this solver is a local defect correction patch nested in this "
                                          "coarse grid (solvers/fem/defect.py): patch sides take the coarse "
                                          "solution, outputs patch_temperature and patch_inside")
    defect_correction: bool = param(False, "coarse level of local defect correction: rows inside a patch "
                                    "(input patch_inside) get the right-hand side A w (input patch_temperature)")


def _coupled_side(params) -> tuple[str, str] | None:
    """(side, kind) of the first coupled side, or None; ("interior", "dirichlet") for interior_dirichlet."""
    if getattr(params, "interior_dirichlet", None) is not None:
        return "interior", "dirichlet"
    for side in SIDES:
        kind = getattr(params, side)
        if kind in COUPLED:
            return side, kind
    return None


class HeatSolver(HeatLevel, Solver):
    """P1 heat conduction on a structured triangulation, assembled and solved with PETSc.

    Fields (all scalar, float64; points are node coordinates, shape (n_local, 2) [m]):

    - output ``temperature`` [K]: on the coupled side's nodes (without corners on an
      exact side), or on all owned nodes when no side is coupled;
    - output ``heat_flux`` [W, extensive] (``dirichlet`` side): heat flow leaving
      the domain at each node of the side;
    - input ``temperature`` [K] (``dirichlet`` side): values at ``t + dt``;
    - input ``heat_flux`` [W, extensive] (``neumann`` side): heat flow entering.
    """

    Params = HeatParams
    field_info = {
        "temperature": FieldInfo("K", "nodal temperature (out: coupled side's nodes, or all nodes when no "
                                      "side is coupled; in: a dirichlet side's values at t + dt)"),
        "heat_flux": FieldInfo("W", "nodal heat flow through the coupled side (out: leaving, dirichlet; "
                                    "in: entering, neumann)", extensive=True),
        "centroid": FieldInfo("m", "triangle centroids, the HMM query points (conductivity_field; "
                                   "coarser ones in the first query_levels windows)", 2),
        "conductivity": FieldInfo("W/(m K)", "conductivity tensor per triangle, row-major (k11, k12, k21, "
                                             "k22) (conductivity_field)", 4),
        "overlap_temperature": FieldInfo("K", "temperature on the line x = overlap_line at the grid's y values "
                                              "(P1 interpolation; overlapping Schwarz)"),
        "coarse_temperature": FieldInfo("K", "LDC patch: the coarse solution at all coarse nodes (rank 0)"),
        "patch_temperature": FieldInfo("K", "LDC: the patch solution injected into all coarse nodes (0 outside "
                                            "the closed patch)"),
        "patch_inside": FieldInfo("1", "LDC: 1 at the coarse nodes strictly inside the patch, else 0"),
    }

    @classmethod
    def interface_geometry(cls, params):
        """For domain-decomposition recipes (couplings/patterns/domain_decomposition.py): the x-extent
        [m], the x of the Dirichlet-input side (None) and of the overlap_temperature line (None)."""
        coupled = _coupled_side(params)
        side = {"left": params.x0, "right": params.x1}.get(coupled[0]) \
            if coupled and coupled[1] == "dirichlet" else None
        extent, inner = (params.x0, params.x1), params.interior_dirichlet
        if inner is not None:   # the active part is the rest of the domain
            side = inner.x
            extent = {"right": (params.x0, inner.x), "left": (inner.x, params.x1)}.get(inner.region, extent)
        return {"extent": extent, "dirichlet": side, "trace": params.overlap_line}

    @classmethod
    def field_names(cls, params):
        coupled = _coupled_side(params)
        if coupled is None:
            outs, ins = ("temperature",), ()
        elif coupled[1] == "dirichlet":
            outs, ins = ("heat_flux", "temperature"), ("temperature",)
        else:
            outs, ins = ("temperature",), ("heat_flux",)
        if params.conductivity_field:
            outs, ins = outs + ("centroid",), ins + ("conductivity",)
        if params.overlap_line is not None:
            outs = outs + ("overlap_temperature",)
        if params.coarse is not None:
            outs, ins = outs + ("patch_temperature", "patch_inside"), ins + ("coarse_temperature",)
        if params.defect_correction:
            ins = ins + ("patch_temperature", "patch_inside")
        return outs, ins

    @classmethod
    def check(cls, params):
        problems = []
        coupled = [side for side in SIDES if getattr(params, side) in COUPLED]
        for side in coupled[1:]:
            problems.append((side, f"only one side may be coupled, but {coupled[0]} is "
                             f"{getattr(params, coupled[0])} and {side} is {getattr(params, side)}",
                             "use one solver instance per coupled side; set the others to exact or insulated"))
        for n in ("nx", "ny"):
            if getattr(params, n) < 1:
                problems.append((n, f"expected an integer >= 1, got {getattr(params, n)}", f"set {n}: 10"))
        for lo, hi in (("x0", "x1"), ("y0", "y1")):
            if not getattr(params, hi) > getattr(params, lo):
                problems.append((hi, f"{hi} = {getattr(params, hi)} must exceed {lo} = {getattr(params, lo)}",
                                 f"swap {lo} and {hi}"))
        for name in ("conductivity", "capacity"):
            if not getattr(params, name) > 0:
                problems.append((name, f"expected a positive value, got {getattr(params, name)}",
                                 f"set {name}: 1.0"))
        if params.conductivity_field and params.microstructure is not None:
            problems.append(("microstructure", "conductivity_field and microstructure both set the conductivity",
                              "keep one of them"))
        if (params.conductivity_field or params.microstructure is not None) and params.source is None:
            problems.append(("source", "the manufactured source assumes the scalar conductivity",
                              "set source (W/m^3) explicitly"))
        if params.query_levels:
            step = 2 ** max(params.query_levels, 0)
            if not params.conductivity_field or params.query_levels < 0:
                problems.append(("query_levels", "coarse-to-fine queries need conductivity_field: true and "
                                  "query_levels >= 0", "set conductivity_field: true, or query_levels: 0"))
            elif params.nx % step or params.ny % step:
                problems.append(("query_levels", f"nx = {params.nx} and ny = {params.ny} must be multiples of "
                                  f"2^query_levels = {step}", f"use nx, ny multiples of {step}"))
        if params.microstructure is not None:
            problems.extend(microstructure_problems(params.microstructure, "microstructure."))
            if not params.microstructure.epsilon > 0:
                problems.append(("microstructure.epsilon", f"expected a positive period, got "
                                  f"{params.microstructure.epsilon}", "set epsilon: 0.0625"))
        if params.steady and not any(getattr(params, s) in ("exact", "dirichlet", "patch") for s in SIDES):
            problems.append(("steady", "the steady problem with only neumann/insulated sides is singular",
                             "make one side exact or dirichlet, or set steady: false"))
        if params.overlap_line is not None and not params.x0 <= params.overlap_line <= params.x1:
            problems.append(("overlap_line", f"the line x = {params.overlap_line} is outside the domain "
                             f"[{params.x0}, {params.x1}]", "put it inside [x0, x1] (the other subdomain's "
                             "artificial boundary), or remove it"))
        if params.interior_dirichlet is not None:
            problems.extend(interior_problems(params.interior_dirichlet, params.x0, params.x1, params.nx))
            taken = [side for side in SIDES if getattr(params, side) in COUPLED]
            if taken:
                problems.append(("interior_dirichlet", f"the {taken[0]} side is {getattr(params, taken[0])} "
                                 "too: both would take the input", f"set {taken[0]}: exact or insulated, or "
                                 "remove interior_dirichlet"))
        problems += peak_problems(params.peak) + patch_problems(params)
        for key, value in params.petsc_options.items():
            if not isinstance(key, str) or not key.lstrip("-"):
                problems.append((f"petsc_options.{key}", "expected an option name like ksp_type",
                                 "write e.g. ksp_type: cg"))
            elif not isinstance(value, (str, int, float)):
                problems.append((f"petsc_options.{key}", f"expected a string value, got {value!r}",
                                 "quote the value"))
        return problems

    # --- lifecycle -----------------------------------------------------------
    def initialize(self, t0):
        p = self.params
        self.grid = Rectangle(p.x0, p.x1, p.y0, p.y1, p.nx, p.ny)
        self.exact = Manufactured(p.alpha, p.beta, p.conductivity, p.capacity, p.peak)
        size, rank = self.comm.Get_size(), self.comm.Get_rank()
        self.lo, self.hi = self.grid.ownership(size, rank)
        self.rows = local_rows(self.grid, self.lo, self.hi)
        self.points = self.grid.coordinates(np.arange(self.lo, self.hi))
        self._classify_nodes()
        self.source = p.source if p.source is not None else self.exact.source(p.steady)
        self.prefix = pb.unique_prefix("fem_heat")

        self.u = pb.PETSc.Vec().createMPI((self.hi - self.lo, self.grid.n_nodes), comm=self.comm)
        self.b0, self.b, self.g, self.r = (self.u.duplicate() for _ in range(4))
        with self.u as u:
            u[:] = self.exact.temperature(self.points, t0) if p.initial is None else p.initial
            # Before the first put a dirichlet side keeps its initial values, a neumann side is insulated.
            self.t_in = u[self.side].copy()
        n_side = len(self.side)
        self.q_in = np.zeros(n_side)
        self.flux_out = np.zeros(n_side)
        self.dt = None
        self.A = self.A_bc = self.M = self.ksp = None
        self.iterations = 0
        self.steps_done = 0                 # advances since t0: picks the query level
        self._setup_tensors()
        self.trace = None                   # overlap_line: solution on an interior line
        if p.overlap_line is not None:
            from solvers.fem.interior import LineTrace
            self.trace = LineTrace(self.comm, self.grid, self.lo, self.hi, p.overlap_line)
        # Local defect correction: patch or coarse level (solvers/fem/defect.py).
        self.patch = PatchLevel(self) if p.coarse is not None else None
        self.ldc = CoarseCorrection(self) if p.defect_correction else None

    def _setup_tensors(self):
        """Per-triangle conductivity (tensor modes only): assembly map, owned block, halo exchange."""
        p, grid = self.params, self.grid
        self.tensors = None                 # (n_needed, 4) [W/(m K)]: triangles my rows touch
        if not (p.conductivity_field or p.microstructure is not None):
            return
        size, rank = self.comm.Get_size(), self.comm.Get_rank()
        if self.hi > self.lo:
            cells = cell_rows(grid, self.lo, self.hi)
            needed = (2 * grid.nx * cells.start, 2 * grid.nx * cells.stop)
            tri = grid.triangles(cells)
        else:
            needed, tri = (0, 0), np.zeros((0, 3), dtype=np.int64)
        grads, area = reference_gradients(grid.hx, grid.hy)
        self.tassembly = TensorAssembly(tri, np.arange(len(tri)) % 2, grads, area,
                                        self.lo, self.hi, grid.n_nodes)
        self.e_lo, self.e_hi = grid.element_ownership(size, rank)
        self.centroids = grid.centroids(np.arange(self.e_lo, self.e_hi))
        if p.microstructure is not None:
            m = p.microstructure
            self.tensors = fine_tensors(m, m.epsilon, grid.centroids(np.arange(*needed)))
            return
        self.exchange = RangeExchange(self.comm, (self.e_lo, self.e_hi), needed)
        # Before the first put: the scalar conductivity, isotropic.
        self.k_in = np.zeros((self.e_hi - self.e_lo, 4))
        self.k_in[:, 0] = self.k_in[:, 3] = p.conductivity
        self.k_fresh = True                 # k_in changed since the operators were built

    def _classify_nodes(self):
        """Local index sets: exact and all Dirichlet nodes, the coupled side and its input entries."""
        p, n_local = self.params, self.hi - self.lo

        def on(sides):
            mask = np.zeros(n_local, dtype=bool)
            for side in sides:
                nodes = self.grid.side_nodes(side)
                nodes = nodes[(nodes >= self.lo) & (nodes < self.hi)]
                mask[nodes - self.lo] = True
            return mask

        exact = on([s for s in SIDES if getattr(p, s) == "exact"])
        coupled = _coupled_side(p)
        side_mask = interior_mask(self.grid, p.interior_dirichlet, self.lo, self.hi) \
            if coupled and coupled[0] == "interior" else on([coupled[0]] if coupled else [])
        self.side_kind = coupled[1] if coupled else None
        # The coupled field leaves out corners owned by an exact side: their value is known, and
        # a stale input there would only be relaxed away slowly by an implicit coupling.
        # No coupled side: the temperature field covers all owned nodes.
        self.side = np.flatnonzero(side_mask & ~exact) if coupled else np.arange(n_local)
        self.exact_nodes = np.flatnonzero(exact)
        input_nodes = self.side if self.side_kind == "dirichlet" else np.zeros(0, dtype=np.int64)
        # LDC patch sides: Dirichlet values prolonged from the coarse level.
        self.patch_nodes = np.flatnonzero(on([s for s in SIDES if getattr(p, s) == "patch"]) & ~exact)
        self.dirichlet = np.union1d(np.union1d(self.exact_nodes, input_nodes), self.patch_nodes)

    def _setup_operators(self, dt):
        """(Re)build A = k K + (ρc/dt) M, its Dirichlet-eliminated copy and the KSP for step ``dt``."""
        self._destroy_operators()
        p, rows, n = self.params, self.rows, self.grid.n_nodes
        args = (self.comm, n, self.lo, self.hi, rows.indptr, rows.indices)
        mass = 0.0 if p.steady else p.capacity / dt
        if self.tensors is None:
            stiffness = p.conductivity * rows.stiffness
        else:
            # Same rows, same keys as local_rows: the CSR patterns are identical.
            stiffness = self.tassembly.matrix(self.tensors)
        self.A = pb.aij_matrix(*args, stiffness + mass * rows.mass)
        self.M = None if p.steady else pb.aij_matrix(*args, mass * rows.mass)
        # Zeroing rows *and* columns keeps the matrix symmetric, so CG applies;
        # the right-hand side is lifted by A g to compensate (see advance).
        self.A_bc = self.A.duplicate(copy=True)
        self.A_bc.zeroRowsColumns((self.dirichlet + self.lo).astype(pb.PETSc.IntType), diag=1.0)
        self.ksp = pb.make_ksp(self.comm, self.A_bc, self.prefix, self.params.petsc_options)
        self.dt = dt

    def query_points(self) -> np.ndarray:
        """The ``centroid`` output (n_owned_triangles, 2) [m]: own centroids, or during the first
        ``query_levels`` windows those of the enclosing triangles of a coarser nested mesh."""
        level = max(self.params.query_levels - self.steps_done, 0)
        if level == 0:
            return self.centroids.copy()
        g, f = self.grid, 2 ** level
        coarse = Rectangle(g.x0, g.x1, g.y0, g.y1, g.nx // f, g.ny // f)
        sx = (self.centroids[:, 0] - g.x0) / coarse.hx
        sy = (self.centroids[:, 1] - g.y0) / coarse.hy
        i, j = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
        # Nested SW-NE diagonals: a fine centroid lies strictly on one side of the coarse diagonal.
        upper = (sy - j) > (sx - i)
        return coarse.centroids(2 * (j * coarse.nx + i) + upper)

    def advance(self, t, dt):
        self.steps_done += 1
        fresh = False
        if self.params.conductivity_field:
            # Collective: every rank rebuilds when any rank's tensors changed.
            fresh = self.comm.allreduce(int(self.k_fresh)) > 0
            if fresh:
                self.tensors = self.exchange.exchange(self.k_in)
                self.k_fresh = False
        # Rebuild only for a really new dt: window/substeps may differ from dt in the last bit.
        if (fresh or self.ksp is None
                or not (self.params.steady or math.isclose(dt, self.dt, rel_tol=1e-13))):
            self._setup_operators(dt)
        t1, dirichlet = t + dt, self.dirichlet
        patch_values = self.patch.before_solve(t, dt) if self.patch is not None else None
        # b0 = (ρc/dt) M u^n + f ∫φ: the right-hand side without boundary terms.
        if self.M is None:
            self.b0.set(0.0)
        else:
            self.M.mult(self.u, self.b0)
        # Array views are written inside `with` so PETSc's cached norms are invalidated after.
        with self.b0 as b0:
            if self.params.peak is not None and self.params.source is None:
                # A peak makes f vary in space: nodal values times the nodes' areas (lumped).
                b0 += self.exact.source_at(self.points, t1, self.params.steady) * self.rows.volume
            else:
                b0 += self.source * self.rows.volume
        if self.ldc is not None:
            self.ldc.correct(self.b0)
        with self.g as g:
            g[:] = 0.0
            if self.side_kind == "dirichlet":
                g[self.side] = self.t_in
            g[self.exact_nodes] = self.exact.temperature(self.points[self.exact_nodes], t1)
            if patch_values is not None:
                g[self.patch_nodes] = patch_values
        # b = b0 + q_N − A g, then b = g on the Dirichlet rows.
        self.A.mult(self.g, self.b)
        self.b.aypx(-1.0, self.b0)
        with self.b as b, self.g as g:
            if self.side_kind == "neumann":
                b[self.side] += self.q_in
            b[dirichlet] = g[dirichlet]
        # Zero initial guess: PETSc's rtol is then relative to ‖b‖, which 1e-14 can reach; from a
        # warm start it would be relative to a smaller r0 and could stall below rounding.
        self.u.set(0.0)
        self.iterations = pb.solve(self.ksp, self.b, self.u)
        # The Dirichlet rows are decoupled identities: set them exactly, not to rtol.
        with self.u as u, self.g as g:
            u[dirichlet] = g[dirichlet]
        if self.patch is not None:
            self.patch.after_solve()
        if self.side_kind == "dirichlet":
            # Residual of the unconstrained equations = heat flow entering; we report leaving.
            self.A.mult(self.u, self.r)
            with self.b0 as b0, self.r as r:
                self.flux_out = b0[self.side] - r[self.side]

    # --- data exchange -------------------------------------------------------
    def fields(self):
        pts = self.points[self.side]
        out = {"temperature": FieldSpec("float64", 1, "K", pts)}
        if self.side_kind is not None:
            out["heat_flux"] = FieldSpec("float64", 1, "W", pts, extensive=True)
        if self.params.conductivity_field:
            out["centroid"] = FieldSpec("float64", 2, "m", self.centroids)
            out["conductivity"] = FieldSpec("float64", 4, "W/(m K)", self.centroids)
        if self.trace is not None:
            out["overlap_temperature"] = FieldSpec("float64", 1, "K", self.trace.points)
        if self.patch is not None:
            out.update(self.patch.fields())
        if self.ldc is not None:
            out.update(self.ldc.fields(self.points))
        return out

    def get(self, name):
        if name == "temperature":
            with self.u as u:
                return u[self.side].copy()
        if name == "heat_flux" and self.side_kind == "dirichlet":
            return self.flux_out.copy()
        if name == "centroid" and self.params.conductivity_field:
            return self.query_points()
        if name == "overlap_temperature" and self.trace is not None:
            return self.trace.values(self.u)
        if name in ("patch_temperature", "patch_inside") and self.patch is not None:
            return self.patch.get(name)
        raise KeyError(f"fem.heat has no output {name!r} with these boundary conditions")

    def put(self, name, data):
        if name == "temperature" and self.side_kind == "dirichlet":
            self.t_in = np.array(data, dtype=float).reshape(len(self.side))
        elif name == "heat_flux" and self.side_kind == "neumann":
            self.q_in = np.array(data, dtype=float).reshape(len(self.side))
        elif name == "coarse_temperature" and self.patch is not None:
            self.patch.put(data)
        elif name in ("patch_temperature", "patch_inside") and self.ldc is not None:
            self.ldc.put(name, data)
        elif name == "conductivity" and self.params.conductivity_field:
            data = np.asarray(data, dtype=float).reshape(self.k_in.shape)
            # Unchanged tensors (e.g. an implicit iteration's repeat) keep the factorized operator.
            if not np.array_equal(data, self.k_in):
                self.k_in = data.copy()
                self.k_fresh = True
        else:
            raise KeyError(f"fem.heat has no input {name!r} with these boundary conditions")

    def results(self):
        with self.u as u:
            return {"temperature": u.copy()}

    def result_points(self):
        return self.points

    def result_topology(self):
        """Triangles whose first (south-west) vertex this rank owns, numbered from its first node
        (for ParaView: msorch.xdmf adds the rank offsets when the group is gathered)."""
        from solvers.fem.grid import cell_rows
        if self.hi <= self.lo:
            return np.zeros((0, 3), np.int64)
        tri = self.grid.triangles(cell_rows(self.grid, self.lo, self.hi))
        return tri[(tri[:, 0] >= self.lo) & (tri[:, 0] < self.hi)] - self.lo

    # --- checkpointing -------------------------------------------------------
    def state(self):
        with self.u as u:
            u = u.copy()
        out = {"u": u, "t_in": self.t_in.copy(), "q_in": self.q_in.copy(),
               "flux_out": np.array(self.flux_out, dtype=float)}
        if self.params.conductivity_field:
            out["k_in"] = self.k_in.copy()
            out["steps_done"] = np.array(self.steps_done)
        if self.patch is not None:
            out.update(self.patch.state())
        return out

    def restore(self, state):
        with self.u as u:
            u[:] = state["u"]
        self.t_in = state["t_in"].copy()
        self.q_in = state["q_in"].copy()
        self.flux_out = state["flux_out"].copy()
        if self.params.conductivity_field:
            self.put("conductivity", state["k_in"])
            self.steps_done = int(state["steps_done"])
        if self.patch is not None:
            self.patch.restore(state)

    def restore_all(self, states):
        """Another layout: nodes are owned in contiguous blocks of the global numbering,
        and side entries in ascending node order, so the old ranks' arrays concatenate
        to global vectors from which every new rank takes its own part."""
        with self.u as u:
            u[:] = np.concatenate([s["u"] for s in states])[self.lo:self.hi]
        counts = self.comm.allgather(len(self.side))
        start = sum(counts[:self.comm.Get_rank()])
        for key in ("t_in", "q_in", "flux_out"):
            full = np.concatenate([s[key] for s in states])
            setattr(self, key, full[start:start + len(self.side)].copy())
        if self.params.conductivity_field:
            self.put("conductivity", np.concatenate([s["k_in"] for s in states])[self.e_lo:self.e_hi])
            self.steps_done = int(states[0]["steps_done"])
        if self.patch is not None:
            self.patch.restore(states[0], root_state=states[0])

    def finalize(self):
        self._destroy_operators()
        if self.trace is not None:
            self.trace.destroy()
        if self.ldc is not None:
            self.ldc.destroy()
        for vec in (self.u, self.b0, self.b, self.g, self.r):
            vec.destroy()

    def _destroy_operators(self):
        for obj in (getattr(self, name, None) for name in ("ksp", "A_bc", "A", "M")):
            if obj is not None:
                obj.destroy()
        self.A = self.A_bc = self.M = self.ksp = None
