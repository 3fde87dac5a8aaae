"""Deterministic per-rank states for the checkpoint MPI tests (any rank can rebuild any other's)."""
from __future__ import annotations

import numpy as np

#: world rank -> (solver or None, group rank). Solver "b"'s group ranks are the reverse of
#: world order on purpose: the file must be keyed by group rank, not by world rank.
LAYOUT = {0: (None, 0), 1: ("a", 0), 2: ("b", 1), 3: ("b", 0)}


def make_state(solver: str | None, group_rank: int) -> dict[str, np.ndarray]:
    """A state exercising what solvers hold: floats, ints, RNG words, empty and 0-d arrays.

    Shapes differ per rank (``n`` depends on the group rank); keys are the same within a group.
    """
    seed = 1000 * (0 if solver is None else ord(solver)) + group_rank
    rng = np.random.default_rng(seed)
    n = 5 + 3 * group_rank
    if solver is None:
        return {"time": np.array(0.25), "window": np.array(7, dtype=np.int64),
                "history": rng.standard_normal((4, 6)), "residuals": np.zeros(0),
                "rng": _rng_words(seed)}
    return {
        "u": rng.standard_normal((n, 3)),
        "ids": rng.integers(-2**62, 2**62, size=n, dtype=np.int64),
        "rng": _rng_words(seed),
        "empty": np.empty((0, n)),                        # empty, rank-dependent 2nd dim
        "scalar": np.array(rng.random()),                 # 0-d
        "mask": rng.random(n) > 0.5,
        "f32": rng.random((2, n)).astype(np.float32),
        "labels": np.array([f"cell{i}" for i in range(group_rank + 1)]),   # unicode: raw-bytes path
    }


def _rng_words(seed: int) -> np.ndarray:
    """A PCG64 bit-generator state (128-bit state and increment) as four uint64 words."""
    st = np.random.PCG64(seed).state["state"]
    words = [(v >> s) & (2**64 - 1) for v in (st["state"], st["inc"]) for s in (0, 64)]
    return np.array(words, dtype=np.uint64)


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """Keys whose arrays differ in dtype, shape, byte order or any bit (empty: bitwise equal)."""
    bad = [k for k in a.keys() | b.keys() if k not in a or k not in b]
    for k in a.keys() & b.keys():
        x, y = np.asarray(a[k]), np.asarray(b[k])
        # byte-order spelling too: '<' instead of '=' makes the buffer format '<d', which
        # mpi4py's buffer calls reject
        if (x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes()
                or x.dtype.byteorder != y.dtype.byteorder):
            bad.append(k)
    return sorted(bad)
