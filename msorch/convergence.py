"""The convergence sums of implicit coupling: (sum |data - used|², sum |data|²) of one block.

One kernel per block size and dtype, used by every rank that measures a coupling: the
receiver (``Worker._measure``, totals reduced over all solver ranks) and, where convergence
is measured locally on both sides of a 1+1 coupling (``Worker._bind_residuals``), the
sender too.  Both sides must get the same bits from the same values, so the path taken
depends only on the blocks' size and dtype, never on their memory layout:

- up to :data:`SMALL` float64 values: element-wise Python float arithmetic, summed in
  order from 0.0 (~0.3 us at n = 1, against ~3 us of numpy dispatch);
- more float64 values: one compiled pass (:mod:`msorch.fused_sums`), ~1 us at n = 1,000
  against ~4 us for numpy's subtraction and two reference-BLAS dot products;
- other dtypes: numpy's ``vdot``.
"""
from __future__ import annotations

import numpy as np

SMALL = 8       # float64 values: the element-wise path up to here, the compiled one above


def _small_sums(data, used) -> tuple[float, float]:
    """(sum (d - u)², sum d²) over two equal-length sequences of Python floats, in order from 0.0."""
    r2 = x2 = 0.0
    for d, u in zip(data, used):
        r = d - u
        r2 += r * r
        x2 += d * d
    return r2, x2


def _path(data: np.ndarray, used: np.ndarray) -> str:
    """Which kernel sums the blocks: "small", "fused" or "vdot" (by size and dtype only)."""
    if not data.dtype == used.dtype == np.float64:
        return "vdot"
    return "small" if data.size <= SMALL else "fused"


def residual_sums(data: np.ndarray, used: np.ndarray) -> tuple[float, float]:
    """(sum |data - used|², sum |data|²) over two blocks of the same shape, as Python floats."""
    path = _path(data, used)
    if path == "small":
        return _small_sums(data.ravel().tolist(), used.ravel().tolist())
    if path == "fused":
        from .fused_sums import fused_sums
        out = np.empty(2)
        fused_sums(np.ascontiguousarray(data).reshape(-1), np.ascontiguousarray(used).reshape(-1), out, 0)
        return float(out[0]), float(out[1])
    r = data - used
    return float(np.vdot(r, r).real), float(np.vdot(data, data).real)


def sums_writer(flat: memoryview, at: int, data: np.ndarray, used: np.ndarray):
    """A callable writing :func:`residual_sums` (data, used) to ``flat[at]``, ``flat[at + 1]``.

    ``data`` and ``used`` are fixed arrays refilled in place; views are made once.  One
    float64 value: the element-wise kernel written out (``0.0 + r * r`` as
    :func:`_small_sums` sums, the same bits).
    """
    path = _path(data, used)
    if path == "small":
        d, u = memoryview(data.reshape(-1)), memoryview(used.reshape(-1))
        if data.size == 1:
            def write():
                x = d[0]
                r = x - u[0]
                flat[at] = 0.0 + r * r
                flat[at + 1] = 0.0 + x * x
            return write

        def write():
            flat[at], flat[at + 1] = _small_sums(d, u)
        return write

    if path == "fused" and data.flags.c_contiguous and used.flags.c_contiguous:
        from .fused_sums import fused_sums
        d, u, out = data.reshape(-1), used.reshape(-1), np.asarray(flat)

        def write():
            fused_sums(d, u, out, at)
        return write

    def write():
        flat[at], flat[at + 1] = residual_sums(data, used)
    return write
