"""Spatial domain decomposition: sub-domains, particle migration, ghost halos.

The box ``[0, L_0) x [0, L_1) (x [0, L_2))`` is cut into a Cartesian grid of
sub-domains, one per rank of the solver's communicator, with
``MPI.Compute_dims`` (the largest factor along the longest axis).  A particle
belongs to the rank whose sub-domain contains it; the owner is recomputed only
when the neighbour list is rebuilt, like in LAMMPS: between rebuilds particles
may stray up to skin/2 outside their sub-domain, which the ghost cutoff
``rc + skin`` covers.

Halo exchange follows LAMMPS's ``Comm::borders``: axis by axis, each rank sends
the particles within the ghost cutoff of its lower face to its lower neighbour
and those near its upper face to its upper neighbour, adding the box length when
the message wraps around a periodic boundary.  Ghosts received along earlier
axes are forwarded along later ones, which fills edges and corners with two
messages per axis.  The lists of sent rows are kept, so the per-step update of
ghost positions (:meth:`Domain.forward`) is one packed ``Sendrecv`` per swap.

All messages are MPI buffer calls: a ``Sendrecv`` of the count, then of a
packed float64 array (particle ids travel as float64, exact below 2**53).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .kernels import pack_rows

__all__ = ["Domain", "Swap", "DecompositionError"]

_TAG_COUNT, _TAG_DATA, _TAG_GHOST = 71, 72, 73


class DecompositionError(ValueError):
    """The box cannot be decomposed as asked (sub-domains thinner than the cutoff)."""


@dataclass(frozen=True, eq=False)
class Swap:
    """One halo message: ``rows`` of this rank go to ``dest`` shifted by ``shift``;
    ``count`` ghosts arrive from ``source`` into rows ``first .. first+count-1``."""

    dest: int
    source: int
    rows: np.ndarray
    shift: np.ndarray
    first: int
    count: int


class Domain:
    """This rank's sub-domain and its communication with the neighbouring ones.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The solver group's communicator (a Cartesian duplicate is made and freed
        by :meth:`free`).
    box : (3,) float64
        Box lengths [sigma]; ``box[2]`` is ignored when ``dim == 2``.
    periodic : tuple of bool, length dim
        Periodic (True) or walled (False) axes.
    dim : int
        2 or 3.
    ghost_cut : float
        Width of the halo, rc + skin [sigma].
    """

    def __init__(self, comm, box, periodic, dim, ghost_cut):
        self.dim = dim
        self.periodic = tuple(bool(p) for p in periodic)
        self.ghost_cut = float(ghost_cut)
        factors = sorted(MPI.Compute_dims(comm.Get_size(), [0] * dim), reverse=True)
        by_length = sorted(range(dim), key=lambda d: (-box[d], d))
        dims = [1] * dim
        for d, p in zip(by_length, factors):
            dims[d] = p
        self.dims = np.array(dims + [1] * (3 - dim), dtype=np.int64)
        self.cart = comm.Create_cart(dims, periods=list(self.periodic), reorder=False)
        self.coords = np.array(self.cart.Get_coords(self.cart.Get_rank()) + [0] * (3 - dim))
        self.neighbors = [self.cart.Shift(d, 1) for d in range(dim)]  # (lower, upper)
        self.swaps: list[Swap] = []
        self.set_box(box)

    # --- geometry --------------------------------------------------------------
    def set_box(self, box) -> None:
        """Set the box lengths [sigma]; sub-domain bounds follow (affine)."""
        self.box = np.array(box, dtype=float)
        self.lo = self.box * self.coords / self.dims
        self.hi = self.box * (self.coords + 1) / self.dims
        for d in range(self.dim):
            width = self.box[d] / self.dims[d]
            needs_halo = self.dims[d] > 1 or self.periodic[d]
            if needs_halo and width < self.ghost_cut:
                raise DecompositionError(
                    f"axis {d}: sub-domain width {width:.4g} sigma (box {self.box[d]:.4g} over "
                    f"{self.dims[d]} ranks) is below the ghost cutoff rc+skin = {self.ghost_cut:.4g}; "
                    "use fewer ranks or a larger box")

    def owner_coord(self, x: np.ndarray, d: int) -> np.ndarray:
        """Grid coordinate along axis ``d`` of the sub-domain holding positions ``x[:, d]``."""
        k = np.floor(x[:, d] * (self.dims[d] / self.box[d])).astype(np.int64)
        return np.clip(k, 0, self.dims[d] - 1)

    def owns(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of ``x`` (n, 3) inside this rank's sub-domain."""
        mask = np.ones(len(x), dtype=bool)
        for d in range(self.dim):
            mask &= self.owner_coord(x, d) == self.coords[d]
        return mask

    def wrap(self, x: np.ndarray) -> None:
        """Map positions into [0, L) along periodic axes, in place."""
        for d in range(self.dim):
            if self.periodic[d]:
                col = np.mod(x[:, d], self.box[d])
                col[col >= self.box[d]] = 0.0  # mod of a tiny negative number rounds to L
                x[:, d] = col

    # --- communication ---------------------------------------------------------
    def _exchange(self, send: np.ndarray, dest: int, source: int, width: int, tag: int) -> np.ndarray:
        """Sendrecv a count then a packed (n, width) float64 array; returns what arrived."""
        n_out = np.array([len(send)], dtype=np.int64)
        n_in = np.zeros(1, dtype=np.int64)
        self.cart.Sendrecv(n_out, dest, _TAG_COUNT, n_in, source, _TAG_COUNT)
        recv = np.empty((int(n_in[0]), width))
        self.cart.Sendrecv(np.ascontiguousarray(send), dest, tag, recv, source, tag)
        return recv

    def migrate(self, ids: np.ndarray, x: np.ndarray, v: np.ndarray):
        """Hand particles that left the sub-domain to their new owners (collective).

        Axis by axis, a particle is sent one sub-domain down or up; that suffices
        because particles move less than skin/2 between two calls.

        Parameters
        ----------
        ids : (n,) int64; x, v : (n, 3) float64, positions wrapped by :meth:`wrap`.

        Returns
        -------
        ids, x, v : the particles this rank owns afterwards (kept ones first, in
        their previous order, then arrivals from the upper, then the lower side).
        """
        for d in range(self.dim):
            p = int(self.dims[d])
            if p == 1:
                continue
            c = int(self.coords[d])
            target = self.owner_coord(x, d)
            if self.periodic[d]:
                down = target == (c - 1) % p
                up = (target == (c + 1) % p) & ~down
            else:
                # no wrap-around: with 2 ranks (c - 1) % 2 == (c + 1) % 2, and the modulo would send
                # rank 0's leavers "down" to MPI.PROC_NULL, losing them
                down = target == c - 1
                up = target == c + 1
            stay = target == c
            if not np.all(stay | down | up):
                raise RuntimeError(f"a particle moved more than one sub-domain along axis {d} "
                                   "between neighbour-list rebuilds (time step too large?)")
            packed = np.hstack([ids[:, None].astype(float), x, v])
            lower, upper = self.neighbors[d]
            from_upper = self._exchange(packed[down], lower, upper, 7, _TAG_DATA)
            from_lower = self._exchange(packed[up], upper, lower, 7, _TAG_DATA + 1)
            packed = np.vstack([packed[stay], from_upper, from_lower])
            ids = packed[:, 0].astype(np.int64)
            x = np.ascontiguousarray(packed[:, 1:4])
            v = np.ascontiguousarray(packed[:, 4:7])
        return ids, x, v

    def borders(self, x_local: np.ndarray) -> np.ndarray:
        """Collect ghosts for the positions ``x_local`` (nlocal, 3) (collective).

        Records the swaps for :meth:`forward` and returns the (nall, 3) array of
        locals followed by ghosts.
        """
        rg = self.ghost_cut
        parts = [np.ascontiguousarray(x_local)]
        nall = len(x_local)
        self.swaps = []
        tag = _TAG_GHOST
        for d in range(self.dim):
            lower, upper = self.neighbors[d]
            cand = np.concatenate(parts)  # locals + ghosts of earlier axes only
            for dest, source, sel, at_edge, sign in (
                    (lower, upper, cand[:, d] < self.lo[d] + rg, self.coords[d] == 0, 1.0),
                    (upper, lower, cand[:, d] >= self.hi[d] - rg, self.coords[d] == self.dims[d] - 1, -1.0)):
                rows = np.flatnonzero(sel) if dest != MPI.PROC_NULL else np.zeros(0, np.int64)
                shift = np.zeros(3)
                if at_edge:
                    shift[d] = sign * self.box[d]
                recv = self._exchange(cand[rows] + shift, dest, source, 3, tag)
                self.swaps.append(Swap(dest, source, rows, shift, nall, len(recv)))
                parts.append(recv)
                nall += len(recv)
                tag += 1
        return np.concatenate(parts)

    def forward(self, x: np.ndarray) -> None:
        """Refresh ghost rows of ``x`` (nall, 3) from their owners' current positions (collective)."""
        for k, s in enumerate(self.swaps):
            buf = np.empty((len(s.rows), 3))
            pack_rows(x, s.rows, s.shift, buf)
            self.cart.Sendrecv(buf, s.dest, _TAG_GHOST + k, x[s.first:s.first + s.count], s.source,
                               _TAG_GHOST + k)

    def free(self) -> None:
        """Free the Cartesian communicator (collective)."""
        if self.cart != MPI.COMM_NULL:
            self.cart.Free()
            self.cart = MPI.COMM_NULL
