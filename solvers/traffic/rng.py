"""Reproducible random streams whose state travels in checkpoints.

Every stream is ``Generator(PCG64(SeedSequence(seed, spawn_key=key)))`` so a
stream is named by (seed, key) and never depends on how many streams exist.
Its state is packed into a small uint64 array for :meth:`Solver.state`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["make_stream", "pack_stream", "unpack_stream", "hash_uniform"]

_MASK64 = (1 << 64) - 1


def make_stream(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """A PCG64 generator for ``seed`` and spawn key ``key`` (e.g. ``(rank,)``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def pack_stream(gen: np.random.Generator) -> np.ndarray:
    """The generator's full state as a uint64 array of shape (6,)."""
    st = gen.bit_generator.state
    s, inc = st["state"]["state"], st["state"]["inc"]
    return np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64,
                     st["has_uint32"], st["uinteger"]], dtype=np.uint64)


def unpack_stream(gen: np.random.Generator, packed: np.ndarray) -> None:
    """Set ``gen`` to the state produced by :func:`pack_stream`."""
    p = [int(x) for x in np.asarray(packed, dtype=np.uint64)]
    gen.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": (p[0] << 64) | p[1], "inc": (p[2] << 64) | p[3]},
                               "has_uint32": p[4], "uinteger": p[5]}


def hash_uniform(seed: int, salt: int, ids: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers that depend only on (seed, salt, id).

    A counter-based draw (splitmix64 finaliser): the same vehicle gets the same
    number whichever rank holds it, so decisions made with it (e.g. taking an
    off-ramp) do not depend on the domain decomposition.

    Parameters
    ----------
    ids : ndarray, shape (n,)
        Non-negative integer identifiers (any numeric dtype holding integers).
    """
    with np.errstate(over="ignore"):
        z = (np.asarray(ids, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64((seed * 0x632BE59BD9B4E019 + salt * 0xD6E8FEB86659FD93 + 1) & _MASK64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
