"""Typed coupling channels: handshake, M→N redistribution plan, transfers.

A channel carries one field from a source solver group (M ranks) to a target
group (N ranks).  At setup both ends describe their field (:class:`FieldSpec`);
the two group roots compare dtype, components, units and extensiveness, the
target root builds the mapping matrix between the global point sets and cuts
it into a plan: which of its local values each source rank sends to each
target rank, and the sparse rows each target rank applies to what it receives.
After that, every transfer is a few ``Isend``/``Irecv`` of contiguous buffers
straight between solver ranks — the coordinator never sees field data.

Data of one window is a block of samples, shape (k, n_local, components): the
sender's values at its k sub-step times (sample-major, so a prefix of samples
is contiguous).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI

from . import registry
from .arrays import bcast_json, gather_rows, recv_array, recv_json, send_array, send_json
from .solver import FieldSpec


class ChannelError(RuntimeError):
    """A coupling cannot be set up or carried out; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    """Where one end of a channel lives.

    ``ranks`` are the ranks of the group in ``comm`` (the data communicator),
    in group-rank order.
    """

    solver: str
    field: str
    ranks: tuple[int, ...]

    @property
    def root(self) -> int:
        return self.ranks[0]

    @property
    def label(self) -> str:
        return f"{self.solver}.{self.field}"


def _meta(spec: FieldSpec) -> tuple:
    return (np.dtype(spec.dtype).str, int(spec.components), spec.units, bool(spec.extensive),
            int(spec.points.shape[1]))


def _handshake_problems(src: Endpoint, dst: Endpoint, smeta: tuple, tmeta: tuple, mapping) -> list[str]:
    names = ("dtype", "components", "units", "extensive", "point dimension")
    problems = [f"{what} mismatch: {src.label} has {a!r}, {dst.label} has {b!r}"
                for what, a, b in zip(names, smeta, tmeta) if a != b]
    if smeta[3] and not getattr(mapping, "extensive", False):
        problems.append(f"{src.label} is extensive (a quantity integrated over each point's share, such as a "
                        "nodal heat flow): map it with 'mapping: conservative' so its sum is kept")
    if not smeta[3] and getattr(mapping, "extensive", False):
        problems.append(f"{src.label} is intensive: 'mapping: conservative' would sum values; "
                        "use 'nearest' or 'linear'")
    return problems


class Channel:
    """One rank's part of a coupling channel (collective setup over both groups).

    Parameters
    ----------
    comm : MPI.Intracomm
        Communicator holding both groups (the runtime's data communicator).
    group : MPI.Intracomm or None
        This rank's own group communicator (None on ranks outside both ends).
    src, dst : Endpoint
        The two ends.
    spec : FieldSpec or None
        This rank's field (its source or target end), None elsewhere.
    mapping : str
        Registered mapping name.
    samples : int
        Samples per window the source sends (its sub-steps per window).
    tag : int
        Message tag reserved for this channel.
    """

    def __init__(self, comm, group, src: Endpoint, dst: Endpoint, spec: FieldSpec | None,
                 mapping: str, samples: int, tag: int):
        self.comm, self.src, self.dst, self.tag, self.samples = comm, src, dst, tag, samples
        rank = comm.Get_rank()
        self.is_source, self.is_target = rank in src.ranks, rank in dst.ranks
        self._requests = []
        self._bound_sends = []
        self._bound_wait = lambda: None
        if not (self.is_source or self.is_target):
            return
        self.spec = spec
        self.components = spec.components
        self.dtype = np.dtype(spec.dtype)
        pts, counts = gather_rows(group, np.ascontiguousarray(spec.points, dtype=np.float64))
        mapper = registry.load("mapping", mapping)
        problems: list[str] = []   # only the roots learn them; the broadcast tells the rest
        if rank == src.root:
            send_json(comm, _meta(spec), dst.root, tag)
            send_array(comm, pts, dst.root, tag)
            send_array(comm, counts, dst.root, tag)
            problems = recv_json(comm, dst.root, tag)
        elif rank == dst.root:
            smeta = tuple(recv_json(comm, src.root, tag))
            spts = recv_array(comm, src.root, tag)
            scounts = recv_array(comm, src.root, tag)
            problems = _handshake_problems(src, dst, smeta, _meta(spec), mapper)
            send_json(comm, problems, src.root, tag)
        problems = bcast_json(group, problems)
        if problems:
            raise ChannelError(f"coupling {src.label} -> {dst.label}: " + "; ".join(problems))
        if rank == dst.root:
            matrix = sp.csr_matrix(mapper.matrix(spts, pts))
            self._plan_as_target_root(matrix, scounts, counts)
        if self.is_target:
            self._receive_target_plan()
        if self.is_source:
            self._receive_source_plan()

    # --- planning ---------------------------------------------------------
    def _plan_as_target_root(self, matrix, scounts, tcounts):
        """Cut the global (n_t, n_s) matrix into per-rank plans and send them out."""
        comm, tag = self.comm, self.tag
        soff = np.concatenate([[0], np.cumsum(scounts)])
        toff = np.concatenate([[0], np.cumsum(tcounts)])
        needs = np.zeros((len(scounts), len(tcounts)), dtype=np.int64)
        per_source: list[list[np.ndarray]] = [[] for _ in scounts]
        for j, dest in enumerate(self.dst.ranks):
            block = matrix[toff[j]:toff[j + 1]]
            cols = np.unique(block.indices)
            owner = np.searchsorted(soff, cols, side="right") - 1
            needs[:, j] = np.bincount(owner, minlength=len(scounts))
            for i in range(len(scounts)):
                per_source[i].append(cols[owner == i] - soff[i])
            local = sp.csr_matrix((block.data, np.searchsorted(cols, block.indices), block.indptr),
                                  shape=(block.shape[0], len(cols)))
            parts = (needs[:, j], local.indptr.astype(np.int64), local.indices.astype(np.int64), local.data)
            for part in parts:
                if dest == self.dst.root:
                    self._own_plan = parts
                else:
                    send_array(comm, part, dest, tag)
        send_array(comm, needs, self.src.root, tag)
        for i in range(len(scounts)):
            send_array(comm, np.concatenate(per_source[i]) if per_source[i] else np.zeros(0, np.int64),
                       self.src.root, tag)

    def _receive_target_plan(self):
        comm, tag = self.comm, self.tag
        if comm.Get_rank() == self.dst.root:
            counts, indptr, indices, data = self._own_plan
        else:
            counts, indptr, indices, data = (recv_array(comm, self.dst.root, tag) for _ in range(4))
        n_local = len(self.spec.points)
        local = sp.csr_matrix((data, indices, indptr), shape=(n_local, int(counts.sum())))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        self._recv_from = [(self.src.ranks[i], int(offsets[i]), int(offsets[i + 1]))
                           for i in range(len(counts)) if counts[i]]
        self._op = _local_operator(local)
        shape = (self.samples, int(counts.sum()), self.components)
        self._recv_buffer = np.empty(shape, dtype=self.dtype)
        self.received = (self._recv_buffer if self._op is None
                         else np.empty((self.samples, n_local, self.components), dtype=self.dtype))

    def _receive_source_plan(self):
        """Source root gets the (source rank, target rank) index lists and scatters them."""
        comm, tag, group_size = self.comm, self.tag, len(self.src.ranks)
        me = self.src.ranks.index(comm.Get_rank())
        if me == 0:
            needs = recv_array(comm, self.dst.root, tag)
            lists = [recv_array(comm, self.dst.root, tag) for _ in range(group_size)]
            for i in range(1, group_size):
                send_array(comm, needs[i], self.src.ranks[i], tag)
                send_array(comm, lists[i], self.src.ranks[i], tag)
            mine, my_list = needs[0], lists[0]
        else:
            mine = recv_array(comm, self.src.root, tag)
            my_list = recv_array(comm, self.src.root, tag)
        offsets = np.concatenate([[0], np.cumsum(mine)])
        n_local = len(self.spec.points)
        self._send_to = []
        for j, dest in enumerate(self.dst.ranks):
            if not mine[j]:
                continue
            idx = my_list[offsets[j]:offsets[j + 1]]
            # A contiguous index range is sent as a slice: no copy when it is the
            # whole array, or when one sample makes the slice contiguous in memory.
            run = len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
            span = slice(int(idx[0]), int(idx[0]) + len(idx)) if run else None
            buffer = np.empty((self.samples, len(idx), self.components), dtype=self.dtype)
            self._send_to.append((dest, span, idx, buffer))

    # --- transfers ----------------------------------------------------------
    def send(self, block: np.ndarray) -> None:
        """Start sending ``block`` (k, n_local, components), k <= samples (source ranks).

        Returns at once; the previous send of this channel is completed first, so
        ``block`` may be reused as soon as the next :meth:`send` is called.
        """
        self.wait_sent()
        k = len(block)
        n = block.shape[1]
        for dest, span, idx, buffer in self._send_to:
            if span is not None and (k == 1 or (span.start == 0 and span.stop == n)):
                data = block[:, span]
            else:
                data = buffer[:k]
                np.take(block, idx, axis=1, out=data)
            self._requests.append(self.comm.Isend(data, dest=dest, tag=self.tag))

    def wait_sent(self) -> None:
        """Complete this channel's sends in flight (bound or not); their blocks may then change."""
        if self._requests:
            MPI.Request.Waitall(self._requests)
            self._requests = []
        # Waiting on an inactive persistent request returns at once: no flag to keep.
        self._bound_wait()

    # --- bound (persistent) transfers: the window loop's hot path -------------
    def bind_send(self, block: np.ndarray) -> None:
        """Make persistent sends of ``block`` (samples, n_local, components) (source ranks).

        ``block`` is the caller's fixed array, refilled before each :meth:`send_bound`.
        The MPI requests (``Send_init``) are made once: a window then costs one
        ``Start`` per target rank, without parsing buffers or making request objects.
        """
        assert block.shape[0] == self.samples and block.flags.c_contiguous
        self.wait_sent()
        n = block.shape[1]
        self._bound_sends, packs = [], []
        for dest, span, idx, buffer in self._send_to:
            if span is not None and (self.samples == 1 or (span.start == 0 and span.stop == n)):
                data = block[:, span]     # contiguous: sent in place
            else:
                data = buffer             # scattered (or a partial span of several samples): packed
                packs.append((idx, buffer))
            self._bound_sends.append(self.comm.Send_init(data, dest=dest, tag=self.tag))
        start, self._bound_wait = _start_wait(self._bound_sends)
        if packs:
            def pack_and_start():
                for idx, buffer in packs:
                    np.take(block, idx, axis=1, out=buffer)
                start()
            self._bound_start = pack_and_start
        else:
            self._bound_start = start

    def send_bound(self) -> None:
        """Start sending the bound block (its contents now); returns at once.

        The caller must :meth:`wait_sent` before it writes into the block again.
        """
        self.wait_sent()
        self._bound_start()

    def send_ops(self) -> tuple:
        """(start, wait) callables of the bound send, for a loop that calls them directly.

        ``start()`` packs scattered rows and starts the sends of the block's current
        contents; ``wait()`` completes them (at once when none is in flight).
        """
        return self._bound_start, self._bound_wait

    def bind_recv(self, dest: np.ndarray | None = None) -> np.ndarray:
        """Make persistent receives of a full block (target ranks); returns where it lands.

        ``dest`` (samples, n_local, components), C-contiguous: the caller's array the
        mapped block is written to; with one source and the identity map MPI
        receives straight into it.  None: the channel's own array (as :meth:`recv`).
        """
        buf = self._recv_buffer
        direct = dest is not None and self._op is None and len(self._recv_from) == 1
        if dest is None:
            dest = buf if self._op is None else self.received
        assert dest.shape == (self.samples, len(self.spec.points), self.components) and dest.flags.c_contiguous
        k, c, flat = self.samples, self.components, buf.reshape(-1)
        if direct:
            self._bound_recvs = [self.comm.Recv_init(dest, source=self._recv_from[0][0], tag=self.tag)]
        else:
            self._bound_recvs = [self.comm.Recv_init(flat[k * a * c:k * b * c], source=src, tag=self.tag)
                                 for src, a, b in self._recv_from]
        self._bound_dest = dest
        self._recv_start, arrived = _start_wait(self._bound_recvs)
        if direct:
            self._recv_wait = arrived
        else:
            finish = self._finish

            def wait_and_map():
                arrived()
                finish(k, dest)
            self._recv_wait = wait_and_map
        return dest

    def recv_bound(self) -> np.ndarray:
        """Receive one full block into the bound destination (blocking) and return it."""
        self._recv_start()
        self._recv_wait()
        return self._bound_dest

    def recv_ops(self) -> tuple:
        """(start, wait) callables of the bound receive; after ``wait()`` the mapped block is in
        the bound destination (what :meth:`recv_bound` does, for a loop that calls them directly)."""
        return self._recv_start, self._recv_wait

    def recv(self, k: int | None = None) -> np.ndarray:
        """Receive one block and map it: returns (k, n_local, components) (target ranks).

        The returned array is owned by the channel and overwritten by the next recv.
        """
        k = self.samples if k is None else k
        buf = self._recv_buffer
        if len(self._recv_from) == 1:
            head = buf[:k]
            self.comm.Recv(head, source=self._recv_from[0][0], tag=self.tag)
            if self._op is None:
                return head
        else:
            flat = buf.reshape(-1)
            c = self.components
            reqs = [self.comm.Irecv(flat[k * a * c:k * b * c], source=src, tag=self.tag)
                    for src, a, b in self._recv_from]
            MPI.Request.Waitall(reqs)
        return self._finish(k, self.received[:k] if self._op is not None else None)

    def _finish(self, k: int, out: np.ndarray | None) -> np.ndarray:
        """The received raw buffer (k samples) in sample-major layout, mapped into ``out``.

        ``out`` None: the identity map, the buffer itself is returned.
        """
        buf = self._recv_buffer
        if len(self._recv_from) > 1 and k > 1:
            # Each source's rows of all k samples arrive as one contiguous chunk,
            # then move to the sample-major layout.
            flat, c = buf.reshape(-1), self.components
            chunks = [flat[k * a * c:k * b * c].reshape(k, b - a, c).copy() for _, a, b in self._recv_from]
            for (_, a, b), chunk in zip(self._recv_from, chunks):
                buf[:k, a:b] = chunk
        if self._op is None:
            if out is None or out is buf:
                return buf[:k]
            out[...] = buf[:k]
            return out
        for s in range(k):
            out[s] = self._op(buf[s])
        return out


def _start_wait(requests: list) -> tuple:
    """(start, wait) callables for a fixed list of persistent requests; one request: its own methods."""
    if len(requests) == 1:
        return requests[0].Start, requests[0].Wait
    if not requests:
        return (lambda: None), (lambda: None)
    return (lambda: MPI.Prequest.Startall(requests)), (lambda: MPI.Request.Waitall(requests))


def _local_operator(local: sp.csr_matrix):
    """None for the identity, a fancy-index for permutations, else the sparse product."""
    n_rows, n_cols = local.shape
    one_per_row = np.array_equal(local.indptr, np.arange(n_rows + 1)) and np.all(local.data == 1.0)
    if one_per_row:
        perm = local.indices
        if n_rows == n_cols and np.array_equal(perm, np.arange(n_rows)):
            return None
        return lambda values: values[perm]
    return lambda values: local @ values
