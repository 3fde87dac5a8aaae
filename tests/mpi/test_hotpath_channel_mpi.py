"""Bound (persistent-request) channel transfers, as the window loop uses them.

Run under mpirun with --with-mpi; any world size >= 2 (first half group A,
rest group B: 2 ranks 1 -> 1, 3 ranks 1 -> 2, 4 ranks 2 -> 2, 5 ranks 2 -> 3).
Reference: the mapping matrix applied serially to the gathered global field,
every window (the same reference as test_channel_mpi.py), and the unbound
``send``/``recv`` path on the same channel, which must give identical bytes.
Several windows in a row, the sender rewriting its block each window (after
``wait_sent``), exercise the reuse of the same requests and buffers.
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from msorch import registry
from msorch.channel import Channel, Endpoint
from msorch.solver import FieldSpec

pytestmark = pytest.mark.mpi(min_size=2)


def _setup(seed, mapping, samples, permute):
    world = MPI.COMM_WORLD
    half = max(1, world.Get_size() // 2)
    a, b = tuple(range(half)), tuple(range(half, world.Get_size()))
    in_a = world.Get_rank() in a
    group = world.Split(0 if in_a else 1, world.Get_rank())
    rng = np.random.default_rng(seed + world.Get_rank())
    if permute:   # the same points on both sides, in another order: a permutation plan
        pts = np.arange(12.0)[:, None] * np.array([[1.0, 0.0]])
        pts = np.array_split(pts if in_a else pts[::-1], group.Get_size())[group.Get_rank()]
    else:
        pts = rng.random((7 + 3 * group.Get_rank(), 2))
    spec = FieldSpec("float64", 2, "K", pts)
    ch = Channel(world, group, Endpoint("a", "out", a), Endpoint("b", "in", b), spec, mapping, samples, 1100)
    return world, group, a, b, in_a, pts, ch


def _values(points, samples, window):
    s = np.arange(samples)[:, None, None]
    x, y = points[:, 0][None, :, None], points[:, 1][None, :, None]
    return np.concatenate([window + 2 * x + 3 * y + s, 5 - x * window + 0.5 * y * (s + 1)], axis=2)


@pytest.mark.parametrize("mapping,permute", [("nearest", False), ("linear", False), ("nearest", True)])
@pytest.mark.parametrize("samples", [1, 3])
@pytest.mark.parametrize("into_caller_array", [False, True])
def test_bound_transfers_equal_serial_mapping_every_window(mapping, permute, samples, into_caller_array):
    world, group, a, b, in_a, pts, ch = _setup(30, mapping, samples, permute)
    all_a = [x for x in world.allgather(pts if in_a else None) if x is not None]
    all_b = [x for x in world.allgather(None if in_a else pts) if x is not None]
    src, dst = np.vstack(all_a), np.vstack(all_b)
    matrix = registry.load("mapping", mapping).matrix(src, dst)
    if in_a:
        block = np.zeros((samples, len(pts), 2))
        ch.bind_send(block)
    else:
        dest = np.full((samples, len(pts), 2), np.nan) if into_caller_array else None
        landing = ch.bind_recv(dest)
        if into_caller_array:
            assert landing is dest
    for window in range(4):
        if in_a:
            ch.wait_sent()
            block[...] = _values(pts, samples, window)
            ch.send_bound()
        else:
            got = ch.recv_bound()
            values = _values(src, samples, window)
            expected = np.stack([matrix @ values[s] for s in range(samples)])
            me = b.index(world.Get_rank())
            lo = sum(len(x) for x in all_b[:me])
            np.testing.assert_allclose(got, expected[:, lo:lo + len(pts)], rtol=1e-13, atol=1e-13)
    # The unbound path on the same channel afterwards gives the same bytes for the same block.
    if in_a:
        ch.wait_sent()
        block[...] = _values(pts, samples, 7)
        ch.send_bound()
        ch.send(block)
        ch.wait_sent()
    else:
        bound = ch.recv_bound().copy()
        unbound = ch.recv()
        assert bound.tobytes() == unbound.tobytes()
