"""Data mappings between non-matching point sets (nearest, linear, conservative).

A mapping turns values given at ``n_s`` source points into values at ``n_t``
target points through a sparse matrix ``M`` of shape ``(n_t, n_s)``::

    target_values = M @ source_values      # (n_s,) or (n_s, c) -> (n_t,) or (n_t, c)

The matrix is built once from the *global* point sets; the runtime applies it
row-block-wise on the target ranks after redistributing the source values each
row needs (the column indices of its rows).  This module therefore knows
nothing of MPI.

Points are arrays of shape ``(n, dim)`` with ``dim`` in 1..3 (a 1-D array is
read as ``dim = 1``), in the same length unit on both sides.

Conventions shared by all mappings
----------------------------------
* **Consistent** maps (``extensive = False``; nearest, linear) interpolate
  intensive data (temperature, displacement): every row sums to 1, so
  constants are reproduced.
* **Conservative** maps (``extensive = True``) move extensive data (nodal
  forces, heat flows): every column sums to 1, so ``sum(M @ f) == sum(f)``.
* Matching point sets (the same points in any order) give an exact
  permutation matrix -- entries are exactly 1.0, no round-off -- so callers
  can detect identity and permutation maps from the sparsity pattern.
  A target counts as coinciding with a source point when their distance is at
  most :data:`SNAP_RTOL` times the source set's extent.
* Ties (equidistant or duplicated source points) go to the lowest source index.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, QhullError, cKDTree

__all__ = ["Mapping", "NearestMapping", "LinearMapping", "ConservativeMapping",
           "permutation_of", "principal_frame", "SNAP_RTOL", "RANK_RTOL"]

#: A target closer than this (relative to the source extent) to a source point takes
#: that point's value exactly.  Far above coordinate round-off (1e-16), far below any
#: mesh spacing a solver would use.
SNAP_RTOL = 1e-10
#: Singular values below this fraction of the largest are treated as zero when
#: detecting the intrinsic dimension of a point set (interface on a line/plane).
RANK_RTOL = 1e-9
#: Distances within this fraction of the extent count as ties for nearest-neighbour.
TIE_RTOL = 1e-12
#: Barycentric weights smaller than this are dropped (points on an edge or face of a
#: simplex produce +-1e-17 weights for vertices they do not depend on).
WEIGHT_ATOL = 1e-13


# --------------------------------------------------------------------------- helpers
def _as_points(points, name: str) -> np.ndarray:
    """``points`` as a C-contiguous float64 array of shape (n, dim), 1 <= dim <= 3."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not 1 <= arr.shape[1] <= 3:
        raise ValueError(f"{name}: expected an array of shape (n, dim) with dim in 1..3, "
                         f"got shape {np.shape(points)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: coordinates must be finite")
    return np.ascontiguousarray(arr)


def _check_pair(source_points, target_points) -> tuple[np.ndarray, np.ndarray]:
    src = _as_points(source_points, "source_points")
    tgt = _as_points(target_points, "target_points")
    if src.shape[1] != tgt.shape[1]:
        raise ValueError(f"source points are {src.shape[1]}-D but target points are "
                         f"{tgt.shape[1]}-D; both sides must use the same coordinates")
    if len(src) == 0 and len(tgt) > 0:
        raise ValueError("cannot map from an empty source point set to a non-empty target set")
    return src, tgt


def _extent(points: np.ndarray) -> float:
    """Largest bounding-box side of ``points`` [length]; 1.0 for a single point."""
    if len(points) == 0:
        return 1.0
    ext = float(np.max(points.max(axis=0) - points.min(axis=0)))
    return ext if ext > 0.0 else 1.0


def _csr(rows, cols, vals, shape) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.asarray(vals, dtype=np.float64),
                         (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                        shape=shape)
    mat.sum_duplicates()
    mat.eliminate_zeros()
    mat.sort_indices()
    return mat


def _nearest(source: np.ndarray, target: np.ndarray,
             tree: cKDTree | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index (n_t,) of each target's nearest source point, ties -> lowest index, and distance."""
    n_s = len(source)
    if len(target) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    tree = cKDTree(source) if tree is None else tree
    # 8 neighbours cover the usual exact ties (cell centres of 2-D/3-D grids).
    k = min(n_s, 8)
    dist, idx = tree.query(target, k=k)
    dist = dist.reshape(len(target), k)
    idx = idx.reshape(len(target), k)
    tol = TIE_RTOL * _extent(np.vstack([source, target]))
    tied = dist <= dist[:, :1] + tol
    best = np.where(tied, idx, n_s).min(axis=1)
    if k < n_s:
        # All k returned neighbours tie: more tied points may lie beyond them.
        rows = np.flatnonzero(tied[:, -1])
        if len(rows):
            balls = tree.query_ball_point(target[rows], dist[rows, 0] + tol)
            best[rows] = [min(ball) for ball in balls]
    return best.astype(np.int64), dist[:, 0]


def principal_frame(points, rtol: float = RANK_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """Origin and orthonormal axes of the affine hull of ``points``.

    Parameters
    ----------
    points : ndarray, shape (n, dim)
    rtol : float
        Singular values of the centred coordinates below ``rtol`` times the
        largest one are taken as zero.

    Returns
    -------
    origin : ndarray, shape (dim,)
        The centroid.
    axes : ndarray, shape (dim, r)
        Principal directions; ``r`` is the intrinsic dimension (0 for a single
        point, 1 for points on a line, 2 on a plane).  Local coordinates are
        ``(p - origin) @ axes``.
    """
    pts = _as_points(points, "points")
    origin = pts.mean(axis=0)
    if len(pts) < 2:
        return origin, np.zeros((pts.shape[1], 0))
    _, sv, vt = np.linalg.svd(pts - origin, full_matrices=False)
    rank = int(np.count_nonzero(sv > rtol * sv[0])) if sv[0] > 0 else 0
    return origin, vt[:rank].T.copy()


def _linear_1d(xs: np.ndarray, xt: np.ndarray):
    """Piecewise-linear weights on a line: columns (m, 2), weights (m, 2), inside mask (m,)."""
    order = np.argsort(xs, kind="stable")
    xs_sorted = xs[order]
    # Duplicated coordinates: keep the lowest source index (first in a stable sort).
    nodes, first = np.unique(xs_sorted, return_index=True)
    node_idx = order[first]
    inside = (xt >= nodes[0]) & (xt <= nodes[-1])
    if len(nodes) < 2:
        return np.zeros((len(xt), 2), np.int64), np.zeros((len(xt), 2)), np.zeros(len(xt), bool)
    left = np.clip(np.searchsorted(nodes, xt, side="right") - 1, 0, len(nodes) - 2)
    x0, x1 = nodes[left], nodes[left + 1]
    w1 = (xt - x0) / (x1 - x0)
    cols = np.stack([node_idx[left], node_idx[left + 1]], axis=1)
    return cols, np.stack([1.0 - w1, w1], axis=1), inside


def _z_order(points: np.ndarray) -> np.ndarray:
    """Permutation (n,) visiting ``points`` (n, dim) along a Z-order (Morton) curve."""
    dim = points.shape[1]
    bits = 63 // dim if dim > 1 else 62
    bits = min(bits, 20)
    lo = points.min(axis=0)
    ext = np.where(np.ptp(points, axis=0) > 0, np.ptp(points, axis=0), 1.0)
    q = ((points - lo) / ext * (2 ** bits - 1)).astype(np.int64)
    code = np.zeros(len(points), dtype=np.int64)
    for b in range(bits):
        for d in range(dim):
            code |= ((q[:, d] >> b) & 1) << (b * dim + d)
    return np.argsort(code, kind="stable")


def _linear_simplex(ps: np.ndarray, pt: np.ndarray):
    """Delaunay barycentric weights in 2-D/3-D: columns (m, r+1), weights, inside mask."""
    r = ps.shape[1]
    try:
        tri = Delaunay(ps)
    except QhullError:
        # Nearly degenerate input that passed the rank test: joggle it (Qhull 'QJ').
        tri = Delaunay(ps, qhull_options="QJ Qbb Qc")
    # find_simplex walks from the previously found simplex: visiting the targets
    # in spatial order makes the walks short (O(n) instead of O(n^1.5) overall).
    simplex = np.empty(len(pt), dtype=np.int64)
    if len(pt):
        order = _z_order(pt)
        simplex[order] = tri.find_simplex(pt[order])
    inside = simplex >= 0
    cols = np.zeros((len(pt), r + 1), dtype=np.int64)
    weights = np.zeros((len(pt), r + 1))
    if np.any(inside):
        s = simplex[inside]
        trans = tri.transform[s]                                   # (m, r+1, r)
        bary = np.einsum("mij,mj->mi", trans[:, :r, :], pt[inside] - trans[:, r, :])
        w = np.concatenate([bary, 1.0 - bary.sum(axis=1, keepdims=True)], axis=1)
        w[np.abs(w) < WEIGHT_ATOL] = 0.0
        weights[inside] = w / w.sum(axis=1, keepdims=True)
        cols[inside] = tri.simplices[s]
    return cols, weights, inside


def permutation_of(matrix) -> np.ndarray | None:
    """Source index of each target if ``matrix`` is a permutation, else None.

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (n_t, n_s)

    Returns
    -------
    ndarray of int64, shape (n_t,), or None
        ``perm`` with ``matrix @ f == f[perm]`` exactly, when the matrix is
        square with exactly one entry per row and column, all equal to 1.0
        (the identity gives ``arange(n)``); None otherwise.
    """
    mat = sp.csr_matrix(matrix)
    mat.sum_duplicates()
    n_t, n_s = mat.shape
    if n_t != n_s or mat.nnz != n_t or np.any(np.diff(mat.indptr) != 1) \
            or np.any(mat.data != 1.0):
        return None
    perm = mat.indices.astype(np.int64)
    return perm if np.unique(perm).size == n_s else None


# --------------------------------------------------------------------------- classes
class Mapping:
    """Base of all mappings: a class-level factory for the mapping matrix.

    Subclasses set ``extensive`` and implement :meth:`matrix`.
    """

    #: True if the mapping is meant for extensive data (sums are preserved).
    extensive: ClassVar[bool] = False

    @classmethod
    def matrix(cls, source_points, target_points) -> sp.csr_matrix:
        """Mapping matrix, shape (n_target, n_source), float64 CSR.

        Parameters
        ----------
        source_points : array_like, shape (n_s, dim)
        target_points : array_like, shape (n_t, dim)
        """
        raise NotImplementedError


class NearestMapping(Mapping):
    """Each target takes the value of its nearest source point (consistent).

    Ties (equidistant points within ``TIE_RTOL`` of the extent, duplicates)
    go to the lowest source index, so the matrix does not depend on the
    k-d tree's internal order.
    """

    extensive: ClassVar[bool] = False

    @classmethod
    def matrix(cls, source_points, target_points) -> sp.csr_matrix:
        src, tgt = _check_pair(source_points, target_points)
        idx, _ = _nearest(src, tgt)
        return _csr(np.arange(len(tgt)), idx, np.ones(len(tgt)), (len(tgt), len(src)))


class LinearMapping(Mapping):
    """Consistent piecewise-linear interpolation (rows sum to 1).

    Algorithm
    ---------
    1. Targets within ``SNAP_RTOL * extent`` of a source point take that
       point's value exactly (weight 1.0): matching sets give a permutation.
    2. The intrinsic dimension ``r`` of the source set is found from the SVD
       of its centred coordinates (:func:`principal_frame`), and source and
       target points are projected orthogonally onto its principal axes.
       Interface nodes on the line ``x = 1`` in 2-D, or on a plane in 3-D,
       are thereby interpolated in 1-D or 2-D; targets slightly off that
       line/plane use their projection.
    3. ``r = 1``: piecewise-linear between the neighbouring sorted source
       coordinates.  ``r = 2, 3``: barycentric weights in the Delaunay
       simplex (``scipy.spatial.Delaunay``) that contains the target.
    4. **Outside-hull fallback**: a target outside the (projected) convex
       hull of the sources -- where linear interpolation would have to
       extrapolate -- takes the value of its nearest source point in the
       full coordinates (as :class:`NearestMapping`).  This is bounded but
       only first-order accurate there.

    Linear fields are reproduced exactly (to round-off) at targets inside the
    hull.  Curved surfaces embedded in 3-D are not unrolled: they are
    triangulated in the ambient dimension.
    """

    extensive: ClassVar[bool] = False

    @classmethod
    def matrix(cls, source_points, target_points) -> sp.csr_matrix:
        src, tgt = _check_pair(source_points, target_points)
        n_s, n_t = len(src), len(tgt)
        if n_t == 0:
            return _csr([], [], [], (0, n_s))
        near, dist = _nearest(src, tgt)
        snapped = dist <= SNAP_RTOL * _extent(src)
        rows = [np.flatnonzero(snapped)]
        cols = [near[snapped]]
        vals = [np.ones(int(snapped.sum()))]

        todo = np.flatnonzero(~snapped)
        if len(todo):
            origin, axes = principal_frame(src)
            r = axes.shape[1]
            inside = np.zeros(len(todo), dtype=bool)
            if r >= 1:
                ps = (src - origin) @ axes
                pt = (tgt[todo] - origin) @ axes
                if r == 1:
                    c, w, inside = _linear_1d(ps[:, 0], pt[:, 0])
                else:
                    c, w, inside = _linear_simplex(ps, pt)
                rows.append(np.repeat(todo[inside], c.shape[1]))
                cols.append(c[inside].ravel())
                vals.append(w[inside].ravel())
            outside = todo[~inside]
            rows.append(outside)
            cols.append(near[outside])
            vals.append(np.ones(len(outside)))
        return _csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), (n_t, n_s))


class ConservativeMapping(Mapping):
    """Conservative map for extensive data: the transpose of linear target -> source.

    ``M = LinearMapping.matrix(target_points, source_points).T``.  Each source
    value is split among the target points that would interpolate onto that
    source point, with the same weights; as the linear rows sum to 1, every
    column of ``M`` sums to 1 and ``sum(M @ f) == sum(f)`` (to round-off).
    Matching sets give the transposed, i.e. inverse, permutation -- again a
    permutation with exact ones.
    """

    extensive: ClassVar[bool] = True

    @classmethod
    def matrix(cls, source_points, target_points) -> sp.csr_matrix:
        src, tgt = _check_pair(source_points, target_points)
        if len(tgt) == 0:
            if len(src):
                raise ValueError("conservative mapping needs target points to put the source "
                                 "quantities on; the target point set is empty")
            return _csr([], [], [], (0, 0))
        mat = LinearMapping.matrix(tgt, src).T.tocsr()
        mat.sort_indices()
        return mat
