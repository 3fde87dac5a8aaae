"""Periodic cell problem of homogenization with P1 elements on PETSc (plugin ``fem.cell``).

For a periodic conductivity a(y) on the unit cell Y = [0, 1)² it solves, for
j = 1, 2, the cell problems

    −∇·(a(y)(e_j + ∇χ_j)) = 0 in Y,   χ_j periodic,

and returns the homogenized tensor A* = ⟨a(I + ∇χ)⟩, i.e.
``A*_ij = ⟨a_ij⟩ + ⟨e_i·a ∇χ_j⟩`` (Bensoussan, Lions & Papanicolaou 1978;
E, Ming & Zhang 2005 for its use in FE-HMM).  Coefficients: the families of
:mod:`solvers.fem.microstructure`, evaluated at each triangle's centroid; the
macro point (``x1``, ``x2``) selects the cell problem of a locally periodic
family a(x, y).

Discretization: n × n cells split into right triangles like
:mod:`solvers.fem.grid`, with a *periodic node numbering* (node (i, j),
0 ≤ i, j < n, is ``j n + i``; triangles of the last column/row wrap around),
so periodicity costs nothing and the matrix is the ordinary stiffness matrix of
the torus.  It is singular (constants); χ is fixed by pinning node 0
(``zeroRowsColumns``), which is exact because the right-hand side sums to zero,
and A* does not depend on the additive constant.  The zero-mean χ is formed
only where it is reported (:meth:`CellSolver.correctors`).

Why a separate kind and not a mode of ``fem.heat``: the cell problem shares
nothing of ``fem.heat``'s boundary conditions, time stepping or coupled sides,
and has different fields (one tensor, no temperature).  Both share the
triangulation, reference gradients, tensor assembly and PETSc layer.

Interfaces of laminates at y1 = θ lie on element edges when θ n is an integer;
then χ is piecewise linear in y1 and the P1 solution is exact (to rounding).

Linear solver: on one rank a sparse LU (``preonly`` + ``lu``), factorized once
per cell problem and used for both right-hand sides; on more ranks
``fem.heat``'s CG + algebraic multigrid.  ``petsc_options`` overrides either.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param
from solvers.fem.assembly import TensorAssembly
from solvers.fem.grid import reference_gradients
from solvers.fem.microstructure import Microstructure, cell_tensors, problems, rotate

__all__ = ["CellParams", "CellSolver", "periodic_triangles", "homogenized"]

#: Output: the homogenized tensor, row-major (A11, A12, A21, A22).
TENSOR = "homogenized_conductivity"
#: The same four numbers as scalar outputs: an HMM farm reduces each observable to one value,
#: so ``answer: {from: [A11, A12, A21, A22]}`` fills a 4-component macro input.
COMPONENTS = ("A11", "A12", "A21", "A22")
LU_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_ordering_type": "nd"}


@dataclass(frozen=True)
class CellParams(Microstructure):
    """Settings of :class:`CellSolver`: the microstructure, the macro point and the cell mesh."""

    x1: float = param(0.5, "macro point x1 of a locally periodic a(x, y)", units="m")
    x2: float = param(0.5, "macro point x2 of a locally periodic a(x, y)", units="m")
    n: int = param(16, "cells per side of the periodic cell mesh")
    petsc_options: dict[str, str] = param({}, "PETSc options of the cell solve; default one rank: LU, "
                                          "several ranks: CG + hypre, rtol 1e-14")


#: Numeric settings a query may set; they only change coefficient values (reset keeps mesh,
#: pattern and PETSc objects).  Not ``kind``: a query carries numbers.
QUERY_SETTINGS = (*(f.name for f in dataclasses.fields(Microstructure) if f.name != "kind"), "x1", "x2")


def periodic_triangles(n: int, cell_rows: np.ndarray) -> np.ndarray:
    """Vertex numbers, shape (2 n len(cell_rows), 3), of the periodic n × n mesh's triangles
    in ``cell_rows``; triangle ``2 (j n + i) + t`` as in :meth:`Rectangle.triangles`."""
    i, j = np.meshgrid(np.arange(n), np.asarray(cell_rows), indexing="xy")
    i, j = i.ravel(), j.ravel()
    ip, jp = (i + 1) % n, (j + 1) % n
    sw, se, nw, ne = j * n + i, j * n + ip, jp * n + i, jp * n + ip
    tri = np.empty((2 * sw.size, 3), dtype=np.int64)
    tri[0::2] = np.column_stack([sw, se, ne])
    tri[1::2] = np.column_stack([sw, ne, nw])
    return tri


def _centroids(n: int, elements: np.ndarray) -> np.ndarray:
    cell, t = elements // 2, elements % 2
    i, j = cell % n, cell // n
    return np.column_stack([(i + np.where(t == 0, 2.0, 1.0) / 3.0) / n,
                            (j + np.where(t == 0, 1.0, 2.0) / 3.0) / n])


class CellSolver(Solver):
    """The periodic cell problem; one ``advance`` solves it for the current settings.

    Fields: output ``homogenized_conductivity`` [W/(m K)], 4 components
    (A11, A12, A21, A22), one point per rank at the cell centre (0.5, 0.5)
    (dimensionless cell coordinates) holding the same global value on every
    rank, so a mean over points and ranks is A* itself; and the same four
    numbers as scalar outputs ``A11``, ``A12``, ``A21``, ``A22`` (HMM answers
    name one scalar observable per answer component).

    Time plays no role: ``advance`` solves once after each :meth:`reset` or
    :meth:`initialize` and is free afterwards, so an HMM farm may use any
    micro time ≥ dt and no relaxation time.
    """

    Params = CellParams
    outputs = (TENSOR, *COMPONENTS)
    query_settings = QUERY_SETTINGS
    field_info = {TENSOR: FieldInfo("W/(m K)", "homogenized tensor A* = <a(I + grad chi)>, row-major "
                                    "(A11, A12, A21, A22), one point per rank", 4),
                  **{c: FieldInfo("W/(m K)", f"the component {c} of A* (for HMM answers)")
                     for c in COMPONENTS}}

    @classmethod
    def check(cls, params):
        out = problems(params)
        if params.n < 2:
            out.append(("n", f"expected at least 2 cells per side, got {params.n}", "set n: 16"))
        return out

    # --- lifecycle -----------------------------------------------------------
    def initialize(self, t0):
        from solvers.fem import petsc_backend as pb

        p, comm = self.params, self.comm
        n = p.n
        self.n_nodes = n * n
        size, rank = comm.Get_size(), comm.Get_rank()
        self.lo, self.hi = self.n_nodes * rank // size, self.n_nodes * (rank + 1) // size
        n_el = 2 * n * n
        self.e_lo, self.e_hi = n_el * rank // size, n_el * (rank + 1) // size
        # Cell rows touching owned node rows r: r - 1 and r (periodic).
        if self.hi > self.lo:
            rows = np.unique(np.arange(self.lo // n - 1, (self.hi - 1) // n + 1) % n)
        else:
            rows = np.zeros(0, dtype=np.int64)
        self.elements = (2 * (rows[:, None] * n + np.arange(n)[None, :])[..., None]
                         + np.arange(2)).ravel()
        grads, self.area = reference_gradients(1.0 / n, 1.0 / n)
        self.assembly = TensorAssembly(periodic_triangles(n, rows), self.elements % 2, grads, self.area,
                                       self.lo, self.hi, self.n_nodes)
        self.y_assembly = _centroids(n, self.elements)
        self.y_owned = _centroids(n, np.arange(self.e_lo, self.e_hi))
        options = {**(LU_OPTIONS if size == 1 else {}), **p.petsc_options}
        zero = np.zeros(self.assembly.nnz)
        self.A = pb.aij_matrix(comm, self.n_nodes, self.lo, self.hi, self.assembly.indptr,
                               self.assembly.indices, zero)
        self.pin = np.array([0] if self.lo == 0 and self.hi > 0 else [], dtype=pb.PETSc.IntType)
        self.ksp = None
        self._ksp_args = (comm, pb.unique_prefix("fem_cell"), options)
        self.chi = [self.A.createVecRight() for _ in range(2)]
        self.rhs = [self.A.createVecRight() for _ in range(2)]
        self.tensor = np.full(4, np.nan)
        self.solved = False

    def reset(self, params):
        """New coefficients (macro point, phase values ...) on the same mesh: keep the
        pattern, matrix, vectors and KSP; a new mesh size or solver options re-initialize."""
        same_mesh = (params.n, params.petsc_options) == (self.params.n, self.params.petsc_options)
        if not same_mesh:
            self.finalize()
            self.params = params
            self.initialize(0.0)
            return
        self.params = params
        self.solved = False

    def advance(self, t, dt):
        if not self.solved:
            self.solve()

    def solve(self) -> np.ndarray:
        """Assemble for the current settings, solve both cell problems, return A* (4,) [W/(m K)]."""
        from solvers.fem import petsc_backend as pb

        p = self.params
        x = np.array([p.x1, p.x2])
        k = cell_tensors(p, x, self.y_assembly)
        a = self.assembly
        self.A.zeroEntries()
        self.A.setValuesCSR(a.indptr, a.indices, a.matrix(k))
        self.A.assemble()
        self.A.zeroRowsColumns(self.pin, diag=1.0)
        if self.ksp is None:
            self.ksp = pb.make_ksp(self._ksp_args[0], self.A, *self._ksp_args[1:])
        else:
            self.ksp.setOperators(self.A)
        loads = a.loads(k)                      # ∫ ∇φ·a e_j, shape (n_local, 2)
        one_rank = self.comm.Get_size() == 1    # then the assembled triangles are all of them
        mean = self.area * (k if one_rank else cell_tensors(p, x, self.y_owned)).sum(axis=0)
        dots = np.zeros((2, 2))
        for j in range(2):
            with self.rhs[j] as b:
                b[:] = -loads[:, j]
                b[self.pin - self.lo] = 0.0
            self.chi[j].set(0.0)
            pb.solve(self.ksp, self.rhs[j], self.chi[j])
        for i in range(2):
            for j in range(2):
                # ⟨e_i·a ∇χ_j⟩ = Σ_k χ_j,k ∫ e_i·a ∇φ_k = -rhs_i · χ_j (a symmetric; χ(pin) = 0).
                dots[i, j] = -self.rhs[i].dot(self.chi[j])
        total = (mean if one_rank else self.comm.allreduce(mean)) + dots.ravel()
        self.tensor = rotate(total[None, :], p.angle)[0]
        self.solved = True
        return self.tensor

    def correctors(self) -> np.ndarray:
        """This rank's nodal values of the zero-mean χ_1, χ_2 (cell axes), shape (n_local, 2).

        P1 lumped mean: on this uniform mesh every node stands for the same area."""
        out = []
        for vec in self.chi:
            total = vec.sum()
            with vec as v:
                out.append(v - total / self.n_nodes)
        return np.column_stack(out)

    # --- data exchange -------------------------------------------------------
    def fields(self):
        centre = np.array([[0.5, 0.5]])
        return {TENSOR: FieldSpec("float64", 4, "W/(m K)", centre),
                **{c: FieldSpec("float64", 1, "W/(m K)", centre) for c in COMPONENTS}}

    def get(self, name):
        if name == TENSOR:
            return self.tensor.reshape(1, 4).copy()
        if name in COMPONENTS:
            return self.tensor[COMPONENTS.index(name)].reshape(1).copy()
        raise KeyError(f"fem.cell has no output {name!r}; it has {', '.join(self.outputs)}")

    def put(self, name, data):
        raise KeyError(f"fem.cell has no inputs (got {name!r}); a query sets its Params "
                       f"({', '.join(QUERY_SETTINGS)})")

    def state(self):
        return {"tensor": self.tensor.copy(), "solved": np.array(self.solved)}

    def restore(self, state):
        self.tensor = state["tensor"].copy()
        self.solved = bool(state["solved"])

    def finalize(self):
        for obj in (self.ksp, self.A, *self.chi, *self.rhs):
            if obj is not None:
                obj.destroy()
        self.ksp = None


def homogenized(params: CellParams, comm=None) -> np.ndarray:
    """A* (2, 2) [W/(m K)] for ``params`` on ``comm`` (default: this process alone)."""
    from mpi4py import MPI

    solver = CellSolver(comm or MPI.COMM_SELF, params)
    solver.initialize(0.0)
    try:
        return solver.solve().reshape(2, 2)
    finally:
        solver.finalize()

