"""The structured P1 triangulation and its row-block assembly (numpy only, no PETSc)."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.fem.grid import Rectangle, local_rows, reference_matrices

GRID = Rectangle(0.0, 2.0, 0.0, 1.0, 8, 5)


def dense(block, values, n):
    out = np.zeros((block.hi - block.lo, n))
    for r in range(block.hi - block.lo):
        sl = slice(block.indptr[r], block.indptr[r + 1])
        out[r, block.indices[sl]] = values[sl]
    return out


def test_reference_triangles_are_right_triangles():
    """Reference: P1 on a right triangle couples the two hypotenuse ends by -cot(90°)/2 = 0,
    and the mass matrix of a triangle of area A is A/12 (1 + δ_ab). Exact to rounding."""
    k, m = reference_matrices(0.5, 0.2)
    assert abs(k[0, 0, 2]) < 1e-15          # lower triangle: SW–NE is the hypotenuse
    assert abs(k[1, 0, 1]) < 1e-15          # upper triangle: SW–NE again
    np.testing.assert_allclose(k.sum(axis=2), 0.0, atol=1e-15)   # constants are in the kernel
    np.testing.assert_allclose(m[0], 0.05 / 12 * (np.ones((3, 3)) + np.eye(3)), rtol=1e-14)


def test_interior_stiffness_row_is_the_five_point_stencil():
    """Reference: the 5-point Laplacian scaled by the cell area hx hy,
    i.e. diagonal 2 (hy/hx + hx/hy), -hy/hx to E/W, -hx/hy to N/S, nothing else. Tolerance: rounding."""
    n, hx, hy = GRID.n_nodes, GRID.hx, GRID.hy
    block = local_rows(GRID, 0, n)
    K = dense(block, block.stiffness, n)
    node = 2 * (GRID.nx + 1) + 3
    expected = np.zeros(n)
    expected[node] = 2 * (hy / hx + hx / hy)
    expected[[node - 1, node + 1]] = -hy / hx
    expected[[node - GRID.nx - 1, node + GRID.nx + 1]] = -hx / hy
    np.testing.assert_allclose(K[node], expected, atol=1e-14)
    np.testing.assert_allclose(K, K.T, atol=1e-14)


def test_volumes_partition_the_domain_and_mass_integrates_polynomials():
    """Reference: Σ ∫φ_i = area 2; uᵀ M 1 = ∫ u for the P1 interpolant of u = x (exact: 2). Rounding tolerance."""
    n = GRID.n_nodes
    block = local_rows(GRID, 0, n)
    assert block.volume.sum() == pytest.approx(2.0, rel=1e-14)
    x = GRID.coordinates(np.arange(n))[:, 0]
    M = dense(block, block.mass, n)
    assert x @ M @ np.ones(n) == pytest.approx(2.0, rel=1e-14)
    np.testing.assert_allclose(M.sum(axis=1), block.volume, rtol=1e-14)


@pytest.mark.parametrize("size", [2, 3, 7])
def test_row_blocks_of_any_split_equal_the_whole(size):
    """Reference: the single-block assembly; each rank's block must be its rows exactly (bitwise
    up to summation order, so 1e-15)."""
    n = GRID.n_nodes
    whole = local_rows(GRID, 0, n)
    K, M = dense(whole, whole.stiffness, n), dense(whole, whole.mass, n)
    parts_k, parts_m = [], []
    for rank in range(size):
        lo, hi = GRID.ownership(size, rank)
        block = local_rows(GRID, lo, hi)
        parts_k.append(dense(block, block.stiffness, n))
        parts_m.append(dense(block, block.mass, n))
    np.testing.assert_allclose(np.vstack(parts_k), K, atol=1e-15)
    np.testing.assert_allclose(np.vstack(parts_m), M, atol=1e-15)


def test_sides_and_coordinates():
    """Reference: the node numbering g = j (nx+1) + i; side ends are exactly the domain bounds."""
    pts = GRID.coordinates(GRID.side_nodes("right"))
    assert np.all(pts[:, 0] == 2.0) and pts[0, 1] == 0.0 and pts[-1, 1] == 1.0
    assert len(pts) == GRID.ny + 1
    top = GRID.coordinates(GRID.side_nodes("top"))
    assert np.all(top[:, 1] == 1.0) and len(top) == GRID.nx + 1
    with pytest.raises(ValueError, match="unknown side"):
        GRID.side_nodes("front")
