"""Bilinear and P1 grid transfer between nested structured grids (couplings/grid_transfer.py)."""
import numpy as np
import pytest
import scipy.sparse as sp

from couplings.grid_transfer import Box, GridTransfer, hull, nesting_problem, overlaps
from solvers.fem.grid import Rectangle, local_rows

FINE, COARSE = Box(0.0, 2.0, -1.0, 0.5, 12, 8), Box(0.0, 2.0, -1.0, 0.5, 6, 4)


def coords(box):
    return Rectangle(box.x0, box.x1, box.y0, box.y1, box.nx, box.ny).coordinates(np.arange(box.n_nodes))


def full_p(fine, coarse, kind="p1"):
    """P as a dense matrix, assembled row by row from single-rank transfers."""
    t = GridTransfer(fine, coarse, 0, fine.n_nodes, kind)
    assert t.hull == (0, coarse.n_nodes)
    return np.column_stack([t.prolong(np.eye(coarse.n_nodes)[c]) for c in range(coarse.n_nodes)])


def test_prolongation_reproduces_linear_functions_and_coarse_values():
    """Reference: a coarse P1 function is a fine P1 function (nested spaces), so P maps the nodal values of
    any linear function on the coarse grid to its nodal values on the fine grid, exactly up to rounding."""
    xy_c, xy_f = coords(COARSE), coords(FINE)
    lin = lambda xy: 1.5 - 2.0 * xy[:, 0] + 0.75 * xy[:, 1]
    got = GridTransfer(FINE, COARSE, 0, FINE.n_nodes, "p1").prolong(lin(xy_c))
    np.testing.assert_allclose(got, lin(xy_f), rtol=0, atol=1e-14)
    # A bilinear x*y is not P1 on the coarse cells: only the coarse nodes keep their values.
    bil = lambda xy: xy[:, 0] * xy[:, 1]
    got = GridTransfer(FINE, COARSE, 0, FINE.n_nodes, "p1").prolong(bil(xy_c))
    at_coarse = np.isin(np.round(xy_f, 12).view([("", float)] * 2), np.round(xy_c, 12).view([("", float)] * 2))
    np.testing.assert_allclose(got[at_coarse.ravel()], bil(xy_c), atol=1e-14)
    assert np.abs(got - bil(xy_f)).max() > 1e-3


def test_galerkin_product_equals_the_coarse_assembly():
    """Reference: solvers.fem.grid assembles K and M on each grid independently; for nested P1 spaces
    P^T K_h P = K_2h and P^T M_h P = M_2h exactly (the FE identity a(P u, P v) = a_2h(u, v))."""
    P = full_p(FINE, COARSE)

    def mats(box):
        g = Rectangle(box.x0, box.x1, box.y0, box.y1, box.nx, box.ny)
        r = local_rows(g, 0, g.n_nodes)
        shape = (g.n_nodes, g.n_nodes)
        return (sp.csr_matrix((r.stiffness, r.indices, r.indptr), shape).toarray(),
                sp.csr_matrix((r.mass, r.indices, r.indptr), shape).toarray())

    (kf, mf), (kc, mc) = mats(FINE), mats(COARSE)
    np.testing.assert_allclose(P.T @ kf @ P, kc, atol=1e-12)
    np.testing.assert_allclose(P.T @ mf @ P, mc, atol=1e-14)


def test_bilinear_prolongation_reproduces_bilinear_functions():
    """Reference: the bilinear interpolant of a function a + b x + c y + d x y on each coarse cell is the
    function itself, so P (kind bilinear) maps its coarse nodal values to its fine ones exactly; every row
    of P sums to 1 (constants) and has 1, 2 or 4 nonzeros of 1, 1/2, 1/4 (coarse node, edge, cell centre)."""
    xy_c, xy_f = coords(COARSE), coords(FINE)
    bil = lambda xy: 0.5 + 1.5 * xy[:, 0] - 0.25 * xy[:, 1] + 2.0 * xy[:, 0] * xy[:, 1]
    got = GridTransfer(FINE, COARSE, 0, FINE.n_nodes).prolong(bil(xy_c))
    np.testing.assert_allclose(got, bil(xy_f), rtol=0, atol=1e-14)
    P = full_p(FINE, COARSE, "bilinear")
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-15)
    assert sorted(set(np.round(P[P > 0], 12))) == [0.25, 0.5, 1.0]
    assert np.count_nonzero(P) == (7 * 5) + 2 * (6 * 5 + 7 * 4) + 4 * (6 * 4)


@pytest.mark.parametrize("kind", ["p1", "bilinear"])
@pytest.mark.parametrize("size", [1, 3, 5])
def test_restriction_is_the_transpose_and_rank_parts_add_up(size, kind):
    """Reference: the dense P above. Restriction of every rank's own rows, summed over its hull,
    equals P^T r for any split of the fine nodes; and the hull covers every coarse node used."""
    P = full_p(FINE, COARSE, kind)
    r = np.random.default_rng(1).standard_normal(FINE.n_nodes)
    total = np.zeros(COARSE.n_nodes)
    e = np.random.default_rng(2).standard_normal(COARSE.n_nodes)
    for rank in range(size):
        lo, hi = FINE.ownership(size, rank)
        t = GridTransfer(FINE, COARSE, lo, hi, kind)
        c0, c1 = t.hull
        assert (c0, c1) == hull(FINE, COARSE, lo, hi)
        total[c0:c1] += t.restrict(r[lo:hi])
        np.testing.assert_allclose(t.prolong(e[c0:c1]), (P @ e)[lo:hi], atol=1e-15)
    np.testing.assert_allclose(total, P.T @ r, atol=1e-13)


def test_overlaps_cover_each_hull_once():
    """Every coarse node of each fine rank's hull is owned by exactly one coarse rank (M -> N plan)."""
    fine_ranges = [hull(FINE, COARSE, *FINE.ownership(4, p)) for p in range(4)]
    coarse_ranges = [COARSE.ownership(3, q) for q in range(3)]
    parts = overlaps(fine_ranges, coarse_ranges)
    for p, (a, b) in enumerate(fine_ranges):
        covered = sorted((s, e) for pp, _, s, e in parts if pp == p)
        assert covered[0][0] == a and covered[-1][1] == b
        assert all(x[1] == y[0] for x, y in zip(covered, covered[1:]))


def test_nesting_problems_are_named():
    assert nesting_problem(FINE, COARSE) is None
    assert "do not nest" in nesting_problem(FINE, Box(0.0, 2.0, -1.0, 0.5, 5, 4))
    assert "box" in nesting_problem(FINE, Box(0.0, 1.0, -1.0, 0.5, 6, 4))
    with pytest.raises(ValueError, match="do not nest"):
        GridTransfer(FINE, Box(0.0, 2.0, -1.0, 0.5, 6, 3), 0, 10, "p1")
