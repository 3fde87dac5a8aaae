"""Moving whole numpy arrays between two ranks with buffer calls.

Setup-time helpers (plans, point sets): a 3-int64 header (dtype code, ndim,
size) and the shape travel first, then the data in one ``Send``.  Nothing here
pickles.
"""
from __future__ import annotations

import json

import numpy as np

_DTYPES = [np.dtype(t) for t in ("float64", "int64", "float32", "int32", "uint64", "bool", "complex128", "uint8")]


def send_array(comm, array: np.ndarray, dest: int, tag: int) -> None:
    """Send ``array`` (any shape, a dtype from ``_DTYPES``) to ``dest``."""
    array = np.ascontiguousarray(array)
    header = np.array([_DTYPES.index(array.dtype), array.ndim, *array.shape], dtype=np.int64)
    comm.Send(np.array([len(header)], dtype=np.int64), dest=dest, tag=tag)
    comm.Send(header, dest=dest, tag=tag)
    if array.size:
        comm.Send(array, dest=dest, tag=tag)


def recv_array(comm, source: int, tag: int) -> np.ndarray:
    """Receive an array sent by :func:`send_array`."""
    length = np.empty(1, dtype=np.int64)
    comm.Recv(length, source=source, tag=tag)
    header = np.empty(int(length[0]), dtype=np.int64)
    comm.Recv(header, source=source, tag=tag)
    dtype, ndim, shape = _DTYPES[header[0]], int(header[1]), tuple(int(s) for s in header[2:])
    array = np.empty(shape, dtype=dtype)
    if array.size:
        comm.Recv(array, source=source, tag=tag)
    return array


def send_json(comm, obj, dest: int, tag: int) -> None:
    """Send a small JSON-able value (setup metadata) as bytes through :func:`send_array`."""
    send_array(comm, np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8), dest, tag)


def recv_json(comm, source: int, tag: int):
    """Receive a value sent by :func:`send_json`."""
    return json.loads(recv_array(comm, source, tag).tobytes().decode())


def bcast_json(comm, obj, root: int = 0):
    """Broadcast a small JSON-able value from ``root`` with buffer calls (collective)."""
    data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if comm.Get_rank() == root else None
    size = np.array([0 if data is None else len(data)], dtype=np.int64)
    comm.Bcast(size, root=root)
    buf = data.copy() if data is not None else np.empty(int(size[0]), dtype=np.uint8)
    comm.Bcast(buf, root=root)
    return json.loads(buf.tobytes().decode())


def allgather_json(comm, obj) -> list:
    """Every rank's small JSON-able value, in rank order, with buffer calls (collective)."""
    data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
    sizes = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([len(data)], dtype=np.int64), sizes)
    buf = np.empty(int(sizes.sum()), dtype=np.uint8)
    comm.Allgatherv(data, (buf, sizes))
    ends = np.cumsum(sizes)
    return [json.loads(buf[e - n:e].tobytes().decode()) for n, e in zip(sizes, ends)]


def gather_rows(comm, rows: np.ndarray, root: int = 0) -> tuple[np.ndarray | None, np.ndarray]:
    """Gather row blocks (n_local, ...) to ``root`` in rank order (collective).

    Returns (stacked array on root else None, counts per rank (size,)).
    """
    rows = np.ascontiguousarray(rows)
    counts = np.array(comm.allgather(len(rows)), dtype=np.int64)
    width = int(np.prod(rows.shape[1:], dtype=np.int64))
    if comm.Get_rank() != root:
        comm.Gatherv(rows, None, root=root)
        return None, counts
    out = np.empty((int(counts.sum()), *rows.shape[1:]), dtype=rows.dtype)
    comm.Gatherv(rows, (out, counts * width), root=root)
    return out, counts
