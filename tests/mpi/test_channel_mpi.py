"""Channels between two groups of COMM_WORLD (run under mpirun with --with-mpi).

Any world size >= 2 works: the first half of the ranks is group A, the rest
group B, so 2 ranks test 1 -> 1, 3 ranks 1 -> 2, 4 ranks 2 -> 2, 5 ranks 2 -> 3.
Reference: the mapping matrix applied serially to the gathered global field
(every rank computes it), and for ``linear`` the exact values of a linear
field (linear interpolation reproduces it up to round-off, 1e-12).
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from msorch import registry
from msorch.channel import Channel, ChannelError, Endpoint
from msorch.solver import FieldSpec

pytestmark = pytest.mark.mpi(min_size=2)


def groups():
    world = MPI.COMM_WORLD
    half = max(1, world.Get_size() // 2)
    a = tuple(range(half))
    b = tuple(range(half, world.Get_size()))
    mine = a if world.Get_rank() in a else b
    return world, world.Split(0 if mine is a else 1, world.Get_rank()), a, b, mine is a


def local_points(seed: int, comm, count: int, dim: int = 2) -> np.ndarray:
    """Random points in the unit square, a different count on every rank (rank 1 may hold none)."""
    rng = np.random.default_rng(seed + comm.Get_rank())
    n = 0 if comm.Get_rank() == 1 and comm.Get_size() > 2 else count + 3 * comm.Get_rank()
    return rng.random((n, dim))


def linear_field(points, samples):
    """(k, n, 2): two components, linear in space, different per sample."""
    s = np.arange(samples)[:, None, None]
    x, y = points[:, 0][None, :, None], points[:, 1][None, :, None]
    return np.concatenate([1 + 2 * x + 3 * y + s, 5 - x + 0.5 * y * (s + 1)], axis=2)


@pytest.mark.parametrize("mapping", ["nearest", "linear", "conservative"])
@pytest.mark.parametrize("samples", [1, 3])
def test_m_to_n_transfer_equals_serial_mapping(mapping, samples):
    world, group, a, b, in_a = groups()
    extensive = mapping == "conservative"
    pts = local_points(10 if in_a else 20, group, 40 if in_a else 25)
    spec = FieldSpec("float64", 2, "K", pts, extensive=extensive)
    ch = Channel(world, group, Endpoint("a", "out", a), Endpoint("b", "in", b), spec, mapping, samples, 1000)
    block = linear_field(pts, samples) if in_a else None
    if in_a:
        ch.send(block)
        ch.wait_sent()
        got = None
    else:
        got = ch.recv().copy()
    # Serial reference on every rank from gathered points and values.
    all_a = [x for x in world.allgather(pts if in_a else None) if x is not None]
    all_b = [x for x in world.allgather(None if in_a else pts) if x is not None]
    src, dst = np.vstack(all_a), np.vstack(all_b)
    values = linear_field(src, samples)
    matrix = registry.load("mapping", mapping).matrix(src, dst)
    expected = np.stack([matrix @ values[s] for s in range(samples)])
    if not in_a:
        me = b.index(world.Get_rank())
        lo = sum(len(x) for x in all_b[:me])
        np.testing.assert_allclose(got, expected[:, lo:lo + len(pts)], rtol=1e-13, atol=1e-13)
        if mapping == "linear":
            from scipy.spatial import Delaunay
            inside = Delaunay(src).find_simplex(pts) >= 0
            np.testing.assert_allclose(got[:, inside], linear_field(pts, samples)[:, inside], rtol=1e-10)
    if mapping == "conservative":
        total_sent = world.allreduce(block.sum(axis=1) if in_a else np.zeros((samples, 2)))
        total_got = world.allreduce(got.sum(axis=1) if not in_a else np.zeros((samples, 2)))
        np.testing.assert_allclose(total_got, total_sent, rtol=1e-12)


def test_handshake_mismatch_fails_on_both_ends():
    world, group, a, b, in_a = groups()
    pts = local_points(1, group, 5)
    spec = FieldSpec("float64", 1, "K" if in_a else "degC", pts)
    with pytest.raises(ChannelError, match="units mismatch: a.out has 'K', b.in has 'degC'"):
        Channel(world, group, Endpoint("a", "out", a), Endpoint("b", "in", b), spec, "nearest", 1, 1001)


def test_allgather_json_matches_mpi4py_allgather():
    """Reference: mpi4py's pickle-based ``allgather`` of the same values (rank-dependent
    lengths, rank 0's list empty): msorch's buffer-call version gives the same list."""
    from msorch.arrays import allgather_json
    world = MPI.COMM_WORLD
    mine = sorted(f"instance{i}.x" for i in range(world.Get_rank()))
    assert allgather_json(world, mine) == world.allgather(mine)
