"""The red-black Gauss-Seidel smoother of fem.heat's multigrid level (solvers/fem/level.py) on one rank."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from solvers.fem.grid import SIDES, Rectangle, local_rows


def operator(nx: int, ny: int, mass: float):
    """(PETSc A_bc, scipy A_bc, red-black colour) of k K + mass M on [0,1]^2, boundary rows/columns -> identity."""
    from mpi4py import MPI
    from solvers.fem.petsc_backend import PETSc, aij_matrix
    g = Rectangle(0.0, 1.0, 0.0, 1.0, nx, ny)
    r = local_rows(g, 0, g.n_nodes)
    values = r.stiffness + mass * r.mass
    A = aij_matrix(MPI.COMM_SELF, g.n_nodes, 0, g.n_nodes, r.indptr, r.indices, values)
    side = np.unique(np.concatenate([g.side_nodes(s) for s in SIDES]))
    A.zeroRowsColumns(side.astype(PETSc.IntType), diag=1.0)
    S = sp.csr_matrix((values, r.indices, r.indptr), shape=(g.n_nodes, g.n_nodes)).tolil()
    S[side, :] = 0.0
    S[:, side] = 0.0
    S[side, side] = 1.0
    nodes = np.arange(g.n_nodes)
    return A, S.tocsr(), (nodes % (nx + 1) + nodes // (nx + 1)) % 2


@pytest.mark.parametrize("omega", [1.0, 1.2])
def test_one_step_is_gauss_seidel_in_red_black_order(omega):
    """Reference: SOR written as a triangular solve (scipy), independent of the smoother's code: with the
    unknowns ordered red first, then black, one step is x += (D/omega + L)^-1 (b - A x), L the strictly lower
    part of the permuted matrix. Exact for the 5-point steady operator up to rounding (1e-13)."""
    from solvers.fem.level import MulticolorSmoother
    from solvers.fem.petsc_backend import PETSc
    A, S, colour = operator(12, 10, 0.0)
    perm = np.argsort(colour, kind="stable")
    Sp = S[perm][:, perm]
    rng = np.random.default_rng(5)
    x0, b = rng.standard_normal(S.shape[0]), rng.standard_normal(S.shape[0])
    ref = x0[perm].copy()
    for _ in range(2):
        lower = sp.tril(Sp, k=-1) + sp.diags(Sp.diagonal() / omega)
        ref = ref + spla.spsolve_triangular(lower.tocsr(), b[perm] - Sp @ ref, lower=True)
    x = x0.copy()
    xv = PETSc.Vec().createWithArray(x, comm=PETSc.COMM_SELF)
    sm = MulticolorSmoother(A, colour, omega)
    sm.sweep(xv, x, b, 2)
    np.testing.assert_allclose(x[perm], ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    sm.destroy(), xv.destroy(), A.destroy()


def test_transient_operator_sweep_reduces_the_energy_norm_error():
    """With the consistent mass (same-colour (1,1) couplings, taken Jacobi-wise) the sweep is no longer exact
    Gauss-Seidel; reference: the error of x against scipy's direct solve must fall in the A-norm every step
    (a convergent smoother), and the highest-frequency (checkerboard) error by at least half in one step."""
    from solvers.fem.level import MulticolorSmoother
    from solvers.fem.petsc_backend import PETSc
    A, S, colour = operator(16, 16, 40.0)
    b = np.random.default_rng(6).standard_normal(S.shape[0])
    exact = spla.spsolve(S.tocsc(), b)
    energy = lambda e: float(np.sqrt(e @ (S @ e)))
    x = np.zeros_like(b)
    xv = PETSc.Vec().createWithArray(x, comm=PETSc.COMM_SELF)
    sm = MulticolorSmoother(A, colour)
    errors = [energy(x - exact)]
    for _ in range(5):
        sm.sweep(xv, x, b, 1)
        errors.append(energy(x - exact))
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:])), errors
    inner = np.flatnonzero(np.abs(S.diagonal() - 1.0) > 1e-12)
    check = np.zeros_like(b)
    check[inner] = np.where(colour[inner] == 0, 1.0, -1.0)
    x[:] = exact + check
    sm.sweep(xv, x, b, 1)
    assert energy(x - exact) < 0.5 * energy(check)
    sm.destroy(), xv.destroy(), A.destroy()


def test_reverse_sweep_is_the_adjoint_of_the_forward_sweep():
    """Reference: the defining identity of the adjoint in the A inner product, (A S u, v) = (A u, S* v) for the
    error propagation S = I - (D + L)^-1 A of the forward sweep and S* = I - (D + U)^-1 A of the reverse one
    (black before red); it makes the V(1,1) cycle with reverse post-smoothing symmetric, as outer: cg needs.
    Checked on the steady and the transient operator, to rounding (1e-12 relative)."""
    from solvers.fem.level import MulticolorSmoother
    from solvers.fem.petsc_backend import PETSc
    for mass in (0.0, 40.0):
        A, S, colour = operator(10, 9, mass)
        sm = MulticolorSmoother(A, colour)
        rng = np.random.default_rng(7)
        u, v = rng.standard_normal(S.shape[0]), rng.standard_normal(S.shape[0])

        def smoothed(x0, reverse):
            x = x0.copy()
            xv = PETSc.Vec().createWithArray(x, comm=PETSc.COMM_SELF)
            sm.sweep(xv, x, np.zeros_like(x), 1, reverse=reverse)
            xv.destroy()
            return x

        left, right = (S @ smoothed(u, False)) @ v, (S @ u) @ smoothed(v, True)
        assert abs(left - right) <= 1e-12 * abs(left), (mass, left, right)
        assert abs((S @ smoothed(u, False)) @ v - (S @ u) @ smoothed(v, False)) > 1e-6 * abs(left)
        sm.destroy(), A.destroy()
