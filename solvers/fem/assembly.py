"""Stiffness rows with one conductivity tensor per triangle, and the element halo exchange.

Pure numpy/mpi4py (no PETSc).  :class:`TensorAssembly` precomputes, for a
rank's rows [lo, hi) of a P1 triangulation, where every (triangle, a, b)
contribution lands in the CSR pattern, so re-assembling for new tensors is one
sparse matrix-vector product (no sorting): this is what makes
``fem.cell``'s :meth:`reset` and ``fem.heat``'s conductivity input cheap.  The
pattern is built exactly like :func:`solvers.fem.grid.local_rows` (same keys,
same order), so both give the same ``indptr``/``indices`` for the same mesh.

Tensors are stored row-major per element, shape (m, 4): ``(k11, k12, k21, k22)``.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["TensorAssembly", "RangeExchange"]


class TensorAssembly:
    """Rows [lo, hi) of ``∫ ∇φ_a·K_e ∇φ_b`` and of the loads ``∫ ∇φ_a·K_e e_j``.

    Parameters
    ----------
    triangles : ndarray, shape (m, 3), int
        Global vertex numbers of every triangle with an entry in the rows
        (others may be included; their entries are dropped).
    kinds : ndarray, shape (m,), int
        Reference type (index into ``grads``) of each triangle.
    grads : ndarray, shape (n_kinds, 3, 2)
        Constant basis gradients [1/m] per type (vertex order as in ``triangles``).
    area : float
        Area of every triangle [m^2] (structured meshes: all equal).
    lo, hi, n_nodes : int
        Rows held and the global number of nodes (= columns).
    """

    def __init__(self, triangles: np.ndarray, kinds: np.ndarray, grads: np.ndarray, area: float,
                 lo: int, hi: int, n_nodes: int):
        self.lo, self.hi = lo, hi
        m = len(triangles)
        # Matrix entries (element, a, b), a-major like local_rows.
        rows = np.repeat(triangles, 3, axis=1).ravel()
        cols = np.tile(triangles, (1, 3)).ravel()
        elem = np.repeat(np.arange(m), 9)
        g = grads[kinds]                                              # (m, 3, 2)
        # basis[e, a, b, k, l] = area g_a[k] g_b[l]: the entry is basis : K_e.
        basis = area * np.einsum("eak,ebl->eabkl", g, g).reshape(m * 9, 4)
        keep = (rows >= lo) & (rows < hi)
        key = (rows[keep] - lo) * n_nodes + cols[keep]
        uniq, slot = np.unique(key, return_inverse=True)
        self.nnz = uniq.size
        self.indptr = np.searchsorted(uniq // n_nodes, np.arange(hi - lo + 1)).astype(np.int32)
        self.indices = (uniq % n_nodes).astype(np.int32)
        # Both maps are linear in the flattened tensors (m*4,): one sparse product each.
        comp = np.arange(4)
        self._matrix = sparse.csr_matrix(
            (basis[keep].ravel(), (np.repeat(slot, 4), (4 * elem[keep][:, None] + comp).ravel())),
            shape=(self.nnz, 4 * m))
        # Load entries (element, a, j): area ∇φ_a·K_e e_j = area Σ_k g_a[k] K_e[k, j].
        vrows = triangles.ravel()
        vkeep = (vrows >= lo) & (vrows < hi)
        vrow, velem = vrows[vkeep] - lo, np.repeat(np.arange(m), 3)[vkeep]
        vgrad = area * g.reshape(m * 3, 2)[vkeep]                     # (v, k)
        n = hi - lo
        rows_j = np.concatenate([2 * vrow + j for j in (0, 1) for _ in (0, 1)])
        cols_kj = np.concatenate([4 * velem + 2 * k + j for j in (0, 1) for k in (0, 1)])
        vals = np.concatenate([vgrad[:, k] for j in (0, 1) for k in (0, 1)])
        self._loads = sparse.csr_matrix((vals, (rows_j, cols_kj)), shape=(2 * n, 4 * m))

    def matrix(self, tensors: np.ndarray) -> np.ndarray:
        """CSR values, shape (nnz,) [W/(m K)], for tensors of shape (m, 4) [W/(m K)]."""
        return self._matrix @ tensors.ravel()

    def loads(self, tensors: np.ndarray) -> np.ndarray:
        """``∫ ∇φ_a·K e_j`` [W/(m K)·m] for j = 1, 2: shape (hi - lo, 2)."""
        return (self._loads @ tensors.ravel()).reshape(-1, 2)


class RangeExchange:
    """Every rank owns a contiguous block of a global index range and needs another one.

    Collective construction on ``comm``; :meth:`exchange` (collective) returns the
    rows of the needed block from the owners' arrays through one ``Alltoallv``
    (only neighbours send anything).  Owned blocks must be ascending by rank and
    cover every needed index.
    """

    def __init__(self, comm, owned: tuple[int, int], needed: tuple[int, int]):
        self.comm = comm
        everyone = np.array(comm.allgather((*owned, *needed)), dtype=np.int64).reshape(-1, 4)
        olo, ohi = owned
        nlo, nhi = needed
        # What I send to q: my owned ∩ q's needed; what I receive from q: q's owned ∩ my needed.
        self.send_lo = np.clip(everyone[:, 2], olo, ohi)
        self.send_hi = np.clip(everyone[:, 3], olo, ohi)
        self.send_n = np.maximum(self.send_hi - self.send_lo, 0)
        self.recv_n = np.maximum(np.minimum(everyone[:, 1], nhi) - np.maximum(everyone[:, 0], nlo), 0)
        if self.recv_n.sum() != nhi - nlo:
            raise ValueError(f"needed block [{nlo}, {nhi}) is not covered by the owned blocks")
        self.olo, self.n_needed = olo, nhi - nlo

    def exchange(self, data: np.ndarray) -> np.ndarray:
        """``data``: shape (n_owned, c) float64 -> the needed rows, shape (n_needed, c)."""
        from mpi4py import MPI

        c = data.shape[1]
        send = np.concatenate([data[lo - self.olo:hi - self.olo] for lo, hi, n
                               in zip(self.send_lo, self.send_hi, self.send_n) if n > 0] or
                              [np.zeros((0, c))])
        recv = np.empty((self.n_needed, c))
        self.comm.Alltoallv([np.ascontiguousarray(send), (self.send_n * c, None), MPI.DOUBLE],
                            [recv, (self.recv_n * c, None), MPI.DOUBLE])
        return recv
