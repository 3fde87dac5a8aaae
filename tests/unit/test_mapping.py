"""Tests of couplings.mapping: nearest, linear and conservative maps between point sets.

References are analytic: linear interpolation reproduces linear fields exactly,
a conservative map preserves sums exactly, matching point sets give the
permutation they were shuffled with, and piecewise-linear interpolation of a
smooth field has an O(h^2) error.  Tolerances of "exact" checks are a few
hundred ulps of the field magnitude (round-off of barycentric weights).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import ConvexHull

from couplings.mapping import (ConservativeMapping, LinearMapping, NearestMapping,
                               permutation_of, principal_frame)

ALL = (NearestMapping, LinearMapping, ConservativeMapping)
rng = np.random.default_rng


def linear_field(points: np.ndarray) -> np.ndarray:
    coef = np.array([1.5, -2.0, 0.75])[: points.shape[1]]
    return 3.0 + points @ coef


def grid(n: int, dim: int = 2) -> np.ndarray:
    g = np.linspace(0.0, 1.0, n + 1)
    return np.stack([c.ravel() for c in np.meshgrid(*([g] * dim), indexing="ij")], axis=1)


def check_format(mat, n_t: int, n_s: int) -> None:
    assert sp.isspmatrix_csr(mat)
    assert mat.shape == (n_t, n_s)
    assert mat.dtype == np.float64


# --------------------------------------------------------------------------- all mappings
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("cls", ALL)
def test_matching_sets_give_exact_permutation(cls, dim):
    """Shuffled identical point sets -> the permutation matrix, entries exactly 1.0.

    Reference: the permutation used to shuffle.  Exact comparison, because the
    runtime detects identity/permutation maps from the matrix.
    """
    src = rng(dim).random((60, dim))
    perm = rng(10 + dim).permutation(60)
    mat = cls.matrix(src, src[perm])
    check_format(mat, 60, 60)
    expected = np.eye(60)[perm]          # row i picks source perm[i]
    assert np.array_equal(mat.toarray(), expected)
    assert np.all(mat.data == 1.0) and mat.nnz == 60
    assert np.array_equal(permutation_of(mat), perm)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("cls", ALL)
def test_matching_within_roundoff_is_still_exact(cls, dim):
    """Both sides computed differently (coordinates differ by ~1e-14): still exact ones.

    Reference: the permutation.  Barycentric weights alone would give
    1 - 1e-14 and 1e-14 entries; the snapping rule (SNAP_RTOL) makes them exact.
    """
    src = rng(dim).random((80, dim))
    perm = rng(20 + dim).permutation(80)
    tgt = src[perm] + rng(30).uniform(-1e-14, 1e-14, size=(80, dim))
    mat = cls.matrix(src, tgt)
    assert np.array_equal(mat.toarray(), np.eye(80)[perm])


def test_permutation_of_rejects_non_permutations():
    """Interpolating, many-to-one and non-square matrices are not permutations."""
    src = np.linspace(0.0, 1.0, 5)
    assert permutation_of(LinearMapping.matrix(src, src + 0.1)) is None        # weights < 1
    assert permutation_of(NearestMapping.matrix(src, np.zeros(5))) is None     # all -> source 0
    assert permutation_of(NearestMapping.matrix(src, src[:4])) is None         # 4 x 5
    assert np.array_equal(permutation_of(sp.identity(4, format="csr")), np.arange(4))


@pytest.mark.parametrize("cls", ALL)
def test_extensive_flag(cls):
    """Only the conservative map is for extensive data (the runtime picks by this flag)."""
    assert cls.extensive is (cls is ConservativeMapping)


def test_bad_inputs_are_rejected():
    """Mismatched dimensions, 4-D points and an empty source raise ValueError."""
    with pytest.raises(ValueError, match="same coordinates"):
        LinearMapping.matrix(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dim in 1..3"):
        NearestMapping.matrix(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="empty source"):
        NearestMapping.matrix(np.zeros((0, 2)), np.zeros((3, 2)))
    assert LinearMapping.matrix(np.zeros((3, 2)), np.zeros((0, 2))).shape == (0, 3)


# --------------------------------------------------------------------------- nearest
def test_nearest_on_shuffled_perturbed_points():
    """Targets = shuffled sources moved by < 1/3 spacing -> each finds its own source.

    Reference: the shuffle permutation (a point moved by less than half the
    minimum spacing stays nearest to its origin).
    """
    src = grid(10, 2)                                   # spacing 0.1
    perm = rng(1).permutation(len(src))
    tgt = src[perm] + rng(2).uniform(-0.03, 0.03, size=src.shape)
    mat = NearestMapping.matrix(src, tgt)
    assert np.array_equal(mat.indices, perm) and np.all(mat.data == 1.0)


def test_nearest_ties_go_to_lowest_index():
    """Equidistant and duplicated sources: the lowest source index wins (documented rule)."""
    src = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0],
                    [0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    tgt = np.array([[0.5, 0.0],      # equidistant to x=0 (idx 2,5,8) and x=1 (1,3,4,7)
                    [1.5, 0.0],      # x=1 (1,...) and x=2 (0,6)
                    [1.0, 0.2]])     # four duplicates at x=1
    mat = NearestMapping.matrix(src, tgt)
    assert mat.indices.tolist() == [1, 0, 1]
    # 12 equidistant points on a circle around the target: more ties than the
    # k-d tree query returns, resolved by a ball query.
    phi = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    ring = np.column_stack([np.cos(phi), np.sin(phi)])
    src = np.vstack([[[5.0, 5.0], [6.0, 5.0], [7.0, 5.0]], ring[rng(3).permutation(12)]])
    assert NearestMapping.matrix(src, [[0.0, 0.0]]).indices.tolist() == [3]


# --------------------------------------------------------------------------- linear
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_linear_reproduces_linear_fields_inside_hull(dim):
    """Random scatter -> random targets in the hull: linear fields exact, rows sum to 1.

    Reference: the analytic linear field.  Tolerance 1e-12 (values O(5);
    barycentric weights carry ~1e-16 relative round-off each).
    """
    src = rng(dim).random((400, dim))
    src[: 2 ** dim] = grid(1, dim)          # the unit cube's corners: hull = cube
    tgt = 0.02 + 0.96 * rng(50 + dim).random((300, dim))
    mat = LinearMapping.matrix(src, tgt)
    check_format(mat, 300, 400)
    assert np.max(np.abs(mat @ linear_field(src) - linear_field(tgt))) < 1e-12
    assert np.max(np.abs(np.asarray(mat.sum(axis=1)).ravel() - 1.0)) < 1e-14
    assert mat.data.min() >= 0.0                 # interpolation, no extrapolation
    assert np.diff(mat.indptr).max() <= dim + 1  # one simplex per target


def test_linear_points_on_a_line_in_2d():
    """Interface nodes on x = 1 in 2-D (both sides, non-matching, unsorted).

    Reference: the linear field along the line; a 2-D Delaunay of collinear
    points would fail, so this proves the intrinsic-dimension projection.
    Targets beyond the ends take the end value (nearest fallback).
    """
    ys = rng(3).permutation(np.concatenate([[0.0, 1.0], rng(4).random(20)]))
    src = np.column_stack([np.ones_like(ys), ys])
    yt = np.concatenate([np.linspace(0.0, 1.0, 33), [-0.2, 1.3]])
    tgt = np.column_stack([np.ones_like(yt), yt])
    mat = LinearMapping.matrix(src, tgt)
    out = mat @ linear_field(src)
    assert np.max(np.abs(out[:33] - linear_field(tgt[:33]))) < 1e-12
    assert out[33] == linear_field(src)[np.argmin(ys)]
    assert out[34] == linear_field(src)[np.argmax(ys)]


def test_linear_points_on_a_tilted_plane_in_3d():
    """Interface nodes on the plane z = 0.3 x - 0.2 y + 1 (3-D), scatter -> grid.

    Reference: a linear 3-D field restricted to the plane (linear in the plane
    coordinates, so reproduced exactly); a 3-D Delaunay of coplanar points is
    degenerate, so this proves the projection onto the principal axes.
    """
    def on_plane(uv):
        return np.column_stack([uv[:, 0], uv[:, 1], 0.3 * uv[:, 0] - 0.2 * uv[:, 1] + 1.0])
    uv_src = np.vstack([grid(1, 2), rng(5).random((200, 2))])
    src, tgt = on_plane(uv_src), on_plane(0.01 + 0.98 * grid(12, 2))
    origin, axes = principal_frame(src)
    assert axes.shape == (3, 2)
    mat = LinearMapping.matrix(src, tgt)
    assert np.max(np.abs(mat @ linear_field(src) - linear_field(tgt))) < 1e-12
    assert np.diff(mat.indptr).max() <= 3     # triangles, not tetrahedra


def test_linear_scatter_to_grid_with_outside_hull_fallback():
    """2-D random scatter -> 21x21 grid covering [0,1]^2; some grid points lie outside the hull.

    Reference: inside the scatter's convex hull (from scipy ConvexHull, an
    independent test) the linear field is exact; outside, each target takes
    exactly the value of its nearest source (brute-force distances).
    """
    src = 0.05 + 0.9 * rng(6).random((300, 2))
    tgt = grid(20, 2)
    mat = LinearMapping.matrix(src, tgt)
    hull = ConvexHull(src)
    inside = np.all(tgt @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-12, axis=1)
    assert 0 < inside.sum() < len(tgt)
    f_s, f_t = linear_field(src), linear_field(tgt)
    out = mat @ f_s
    assert np.max(np.abs(out[inside] - f_t[inside])) < 1e-12
    nearest = np.argmin(((tgt[~inside, None, :] - src[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(out[~inside], f_s[nearest])


def test_linear_interpolation_error_is_second_order():
    """RMS error of sin(pi x) cos(pi y) interpolated from an (n+1)^2 grid to 2000 random points.

    Reference: piecewise-linear interpolation error = C h^2 + O(h^3), so halving
    h divides the error by 4.  Measured ratios 3.94..4.03 for h = 1/16..1/64;
    accepted 3.6..4.4 (the remaining spread is the target sample and the
    arbitrary diagonal Qhull picks in each grid square).
    """
    def f(p):
        return np.sin(np.pi * p[:, 0]) * np.cos(np.pi * p[:, 1])
    tgt = rng(0).random((2000, 2))
    errs = []
    for n in (16, 32, 64):
        src = grid(n, 2)
        e = LinearMapping.matrix(src, tgt) @ f(src) - f(tgt)
        errs.append(np.sqrt(np.mean(e ** 2)))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    print("RMS errors", errs, "ratios", ratios)
    assert np.all((ratios > 3.6) & (ratios < 4.4))


def test_linear_1d_convergence_and_duplicates():
    """1-D: max error of sin(pi x) at midpoints is pi^2 h^2 / 8 * |sin| -> ratio 4.

    Reference: the analytic midpoint error sin(pi m) (1 - cos(pi h / 2)); the
    map must match it to 1e-12.  Duplicated source coordinates must not break
    the interpolation (they share the lowest index).
    """
    for n in (8, 16):
        xs = np.linspace(0.0, 1.0, n + 1)
        xs_dup = np.concatenate([xs, xs[::3]])          # duplicates appended
        mid = 0.5 * (xs[:-1] + xs[1:])
        out = LinearMapping.matrix(xs_dup, mid) @ np.sin(np.pi * xs_dup)
        exact_err = np.sin(np.pi * mid) * (np.cos(np.pi / (2 * n)) - 1.0)
        assert np.max(np.abs(out - np.sin(np.pi * mid) - exact_err)) < 1e-12


# --------------------------------------------------------------------------- conservative
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_conservative_preserves_sums(dim):
    """Random nodal forces on a scatter -> a coarser grid and back: totals identical.

    Reference: the sum of the input (conservation), to 1e-12 relative; column
    sums are 1 to 1e-14.  Also checked for a target set much finer than the source.
    """
    src = rng(dim).random((500, dim))
    tgt = grid(4 if dim == 3 else 7, dim)
    forces = rng(7).normal(size=(500, 3))          # multi-component nodal data
    mat = ConservativeMapping.matrix(src, tgt)
    check_format(mat, len(tgt), 500)
    assert np.allclose(mat.sum(axis=0), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose((mat @ forces).sum(axis=0), forces.sum(axis=0), rtol=1e-12)
    back = ConservativeMapping.matrix(tgt, src)
    q = rng(8).random(len(tgt))
    assert abs((back @ q).sum() - q.sum()) < 1e-12 * q.sum()


def test_conservative_is_transpose_of_linear_on_a_line():
    """Heat flows on interface nodes (line x = 1 in 2-D): M_cons = M_lin(target->source)^T.

    Reference: the definition; and the total heat flow is preserved.
    """
    ys, yt = np.linspace(0.0, 1.0, 9), np.linspace(0.0, 1.0, 14)
    src = np.column_stack([np.ones(9), ys])
    tgt = np.column_stack([np.ones(14), yt])
    cons = ConservativeMapping.matrix(src, tgt)
    lin = LinearMapping.matrix(tgt, src)
    assert np.array_equal(cons.toarray(), lin.T.toarray())
    q = np.cos(ys)
    assert abs((cons @ q).sum() - q.sum()) < 1e-14 * 9
