"""fem.heat with a conductivity tensor per triangle (input field or fine-scale microstructure).

References: the element stiffness ∫ ∇φ_a·K ∇φ_b = area g_aᵀ K g_b written out per triangle
in a plain loop (independent of the vectorised assembly map); the manufactured
u = 1 + x² + α y² (preCICE partitioned-heat tutorial), which solves −∇·(K∇u) = f for a
constant diagonal K with f = −(2 K11 + 2α K22) and which P1 on this mesh reproduces exactly
(see test_fem_heat.py for why).
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from solvers.fem.assembly import TensorAssembly
from solvers.fem.grid import Rectangle, reference_gradients
from solvers.fem.heat import FineMicrostructure, HeatParams, HeatSolver

ALPHA = 3.0


def make(**kw):
    solver = HeatSolver(MPI.COMM_SELF, HeatParams(**kw))
    solver.initialize(0.0)
    return solver


def spd_tensors(points):
    """A smooth SPD tensor field with off-diagonal terms, shape (n, 4)."""
    x, y = points[:, 0], points[:, 1]
    k11, k22, k12 = 2.0 + np.sin(3 * x), 1.0 + y * y, 0.4 * np.cos(2 * x + y)
    return np.column_stack([k11, k12, k12, k22])


def test_assembly_map_equals_a_plain_element_loop():
    """Random-ish SPD tensors on a 3x2 grid: the sparse assembly map gives the dense matrix
    Σ_e area g_aᵀ K_e g_b to 1e-13, with local_rows' CSR pattern."""
    grid = Rectangle(0.0, 1.5, 0.0, 1.0, 3, 2)
    tri = grid.triangles(range(grid.ny))
    grads, area = reference_gradients(grid.hx, grid.hy)
    tensors = spd_tensors(grid.centroids(np.arange(grid.n_elements)))
    dense = np.zeros((grid.n_nodes, grid.n_nodes))
    for e, verts in enumerate(tri):
        g, k = grads[e % 2], tensors[e].reshape(2, 2)
        for a in range(3):
            for b in range(3):
                dense[verts[a], verts[b]] += area * g[a] @ k @ g[b]
    asm = TensorAssembly(tri, np.arange(len(tri)) % 2, grads, area, 0, grid.n_nodes, grid.n_nodes)
    got = np.zeros_like(dense)
    for row in range(grid.n_nodes):
        sl = slice(asm.indptr[row], asm.indptr[row + 1])
        got[row, asm.indices[sl]] = asm.matrix(tensors)[sl]
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-13)
    # Loads: ∫ ∇φ_a·K e_j = Σ_e area g_a·K_e e_j.
    loads = np.zeros((grid.n_nodes, 2))
    for e, verts in enumerate(tri):
        for a in range(3):
            loads[verts[a]] += area * grads[e % 2][a] @ tensors[e].reshape(2, 2)
    np.testing.assert_allclose(asm.loads(tensors), loads, rtol=0, atol=1e-13)


def test_isotropic_tensor_input_reproduces_the_scalar_path():
    """Tensors k I put into ``conductivity``: same CSR pattern as the scalar assembly, stiffness
    equal to 1e-14, and the transient solution over 5 steps equal to 1e-12."""
    scalar = make(nx=20, ny=10, conductivity=2.5)
    tensor = make(nx=20, ny=10, conductivity_field=True, source=scalar.source)
    np.testing.assert_array_equal(tensor.tassembly.indptr, tensor.rows.indptr)
    np.testing.assert_array_equal(tensor.tassembly.indices, tensor.rows.indices)
    k = np.tile([2.5, 0.0, 0.0, 2.5], (400, 1))
    np.testing.assert_allclose(tensor.tassembly.matrix(k), 2.5 * tensor.rows.stiffness, atol=1e-14)
    tensor.put("conductivity", k)
    t = 0.0
    for _ in range(5):
        for s in (scalar, tensor):
            s.advance(t, 0.01)
        t += 0.01
    np.testing.assert_allclose(tensor.get("temperature"), scalar.get("temperature"), rtol=1e-12)
    for s in (scalar, tensor):
        s.finalize()


def test_anisotropic_tensor_against_the_manufactured_solution():
    """Constant K = diag(3, 0.5), steady: u = 1 + x² + 3y² with f = −(2·3 + 2·3·0.5) = −9, all
    sides exact: nodal error < 1e-10 (P1 exact for this quadratic)."""
    solver = make(nx=12, ny=8, steady=True, conductivity_field=True, source=-9.0, alpha=ALPHA, beta=0.0)
    solver.put("conductivity", np.tile([3.0, 0.0, 0.0, 0.5], (2 * 12 * 8, 1)))
    solver.advance(0.0, 1.0)
    pts = solver.result_points()
    exact = 1.0 + pts[:, 0] ** 2 + ALPHA * pts[:, 1] ** 2
    assert np.abs(solver.results()["temperature"] - exact).max() < 1e-10
    solver.finalize()


def test_centroid_output_and_conductivity_input_share_their_points():
    """The query field ``centroid`` gives the triangle centroids (2 per cell, inside the cell)
    at exactly the points of the ``conductivity`` input."""
    solver = make(nx=4, ny=3, conductivity_field=True, source=0.0)
    fields = solver.fields()
    c = solver.get("centroid")
    assert c.shape == (24, 2) and fields["centroid"].components == 2
    np.testing.assert_array_equal(fields["conductivity"].points, c)
    np.testing.assert_array_equal(fields["centroid"].points, c)
    assert fields["conductivity"].components == 4 and fields["conductivity"].units == "W/(m K)"
    # Lower triangle of cell (0, 0) on a 0.5 x 1/3 cell: (2/3 hx, 1/3 hy).
    np.testing.assert_allclose(c[0], [2 / 3 * 0.5, 1 / 3 * (1 / 3)])
    np.testing.assert_allclose(c[1], [1 / 3 * 0.5, 2 / 3 * (1 / 3)])
    assert HeatSolver.field_names(solver.params) == (("temperature", "centroid"), ("conductivity",))
    solver.finalize()


def test_unchanged_tensors_keep_the_operator_and_restore_brings_them_back():
    """Putting the same tensors again does not rebuild the KSP; state/restore carries them."""
    solver = make(nx=6, ny=4, steady=True, conductivity_field=True, source=1.0, beta=0.0)
    k = spd_tensors(solver.get("centroid"))
    solver.put("conductivity", k)
    solver.advance(0.0, 1.0)
    ksp, saved = solver.ksp, solver.state()
    solver.put("conductivity", k.copy())
    solver.advance(1.0, 1.0)
    assert solver.ksp is ksp
    solver.put("conductivity", 2 * k)
    solver.advance(2.0, 1.0)
    assert solver.ksp is not ksp
    solver.restore(saved)
    solver.advance(1.0, 1.0)
    np.testing.assert_allclose(solver.get("temperature"), saved["u"], rtol=1e-12)
    solver.finalize()


def test_fine_scale_laminate_matches_the_homogenized_1d_solution():
    """Layers across x (k1 = 1 on the first half of each period ε = 1/8, k2 = 10 on the second),
    u = 1 + x² on x = 0, 1 (α = 0: exact sides), top/bottom insulated, no source: the problem is
    1D and the fine P1 solution (interfaces on edges) is exact at the nodes of a piecewise-linear
    flux-continuous profile — u(1) − u(0) = 1 carried by the constant flux q = 1/∫dx/a(x),
    so q = 1.818182 (the harmonic mean). Checked through the heat balance: nodal heat flows of
    the unconstrained residual would need a coupled side; here u(x) itself is compared with the
    exact 1D solution at the nodes (1e-10)."""
    m = FineMicrostructure(kind="laminate", k1=1.0, k2=10.0, theta=0.5, epsilon=1 / 8)
    solver = make(x0=0.0, x1=1.0, nx=32, ny=2, steady=True, microstructure=m, source=0.0, alpha=0.0,
                  beta=0.0, top="insulated", bottom="insulated")
    solver.advance(0.0, 1.0)
    x = solver.result_points()[:, 0]
    # Exact: u' = q/a(x), u(0) = 1, u(1) = 2.
    frac = np.mod(x / m.epsilon, 1.0)
    whole = np.floor(x / m.epsilon + 1e-12)
    resist = whole * m.epsilon * (0.5 / 1.0 + 0.5 / 10.0) + np.where(
        frac < 0.5, frac * m.epsilon / 1.0, 0.5 * m.epsilon / 1.0 + (frac - 0.5) * m.epsilon / 10.0)
    q = 1.0 / (0.5 / 1.0 + 0.5 / 10.0)
    np.testing.assert_allclose(solver.results()["temperature"], 1.0 + q * resist, atol=1e-10)
    solver.finalize()


@pytest.mark.parametrize("settings, path", [
    ({"conductivity_field": True}, "source"),
    ({"conductivity_field": True, "source": 0.0,
      "microstructure": FineMicrostructure()}, "microstructure"),
    ({"source": 0.0, "microstructure": FineMicrostructure(epsilon=0.0)}, "microstructure.epsilon"),
    ({"source": 0.0, "microstructure": FineMicrostructure(kind="smooth", k1=1.0, amplitude=2.0)},
     "microstructure.k1"),
    ({"source": 0.0, "query_levels": 1}, "query_levels"),
    ({"source": 0.0, "conductivity_field": True, "nx": 6, "query_levels": 2}, "query_levels"),
])
def test_check_names_the_bad_setting(settings, path):
    assert path in [p[0] for p in HeatSolver.check(HeatParams(**settings))]


def test_query_levels_ask_coarse_centroids_first():
    """query_levels: 2 on 8x8 cells: the centroid output gives, window by window, the centroids of
    the nested 2x2 (8 distinct), 4x4 (32) and own 8x8 (128) triangles; each query is the centroid
    of the coarse triangle that contains the point (checked by P1 barycentric containment), and
    the windows done travel with state/restore."""
    solver = make(x1=1.0, nx=8, ny=8, steady=True, conductivity_field=True, source=0.0, beta=0.0,
                  query_levels=2)
    own = solver.fields()["centroid"].points
    saved = solver.state()
    for k, n_coarse in enumerate((2, 4, 8)):
        q = solver.get("centroid")
        assert len(np.unique(q, axis=0)) == 2 * n_coarse ** 2
        h = 1.0 / n_coarse
        # Same coarse cell, same side of its SW-NE diagonal.
        cell_q, cell_p = np.floor(q / h), np.floor(own / h)
        np.testing.assert_array_equal(cell_q, cell_p)
        side_q = (q[:, 1] / h - cell_q[:, 1]) > (q[:, 0] / h - cell_q[:, 0])
        side_p = (own[:, 1] / h - cell_p[:, 1]) > (own[:, 0] / h - cell_p[:, 0])
        np.testing.assert_array_equal(side_q, side_p)
        solver.advance(float(k), 1.0)
    np.testing.assert_array_equal(solver.get("centroid"), own)
    solver.restore(saved)
    assert len(np.unique(solver.get("centroid"), axis=0)) == 8
    solver.finalize()
