"""The compiled convergence-sums kernel of :mod:`msorch.convergence`.

Compiled ahead of time by ``scripts/bootstrap.sh`` (``python -m msorch.fused_sums``: numba's
pycc writes ``msorch/_fused_aot*.so``, which loads in milliseconds, with no numba import at
run time).  Where that module is missing, numba compiles the same function just in time on
first use (~0.5 s of import per rank).  Both compile :func:`kernel` for the same argument
types without reassociating the additions, so they give the same bits.
"""
from __future__ import annotations

from pathlib import Path

SIGNATURE = "void(f8[::1], f8[::1], f8[::1], i8)"


def kernel(d, u, out, at):
    """Write sum (d - u)² to ``out[at]`` and sum d² to ``out[at + 1]``.

    ``d``, ``u``: 1-D C-contiguous float64 arrays of one length; ``out``: 1-D C-contiguous
    float64.  Four partial sums in a fixed order: independent add chains the CPU overlaps in
    one memory sweep (numpy needs a subtraction and two dot products, three sweeps and three
    dispatches), and the same bits on every rank and at every call.
    """
    n = d.size
    r0 = r1 = r2 = r3 = x0 = x1 = x2 = x3 = 0.0
    m = n - n % 4
    for i in range(0, m, 4):
        a0, a1, a2, a3 = d[i], d[i + 1], d[i + 2], d[i + 3]
        b0, b1, b2, b3 = a0 - u[i], a1 - u[i + 1], a2 - u[i + 2], a3 - u[i + 3]
        r0 += b0 * b0
        r1 += b1 * b1
        r2 += b2 * b2
        r3 += b3 * b3
        x0 += a0 * a0
        x1 += a1 * a1
        x2 += a2 * a2
        x3 += a3 * a3
    for i in range(m, n):
        a0 = d[i]
        b0 = a0 - u[i]
        r0 += b0 * b0
        x0 += a0 * a0
    out[at] = (r0 + r1) + (r2 + r3)
    out[at + 1] = (x0 + x1) + (x2 + x3)


def jit():
    """:func:`kernel` compiled by numba's JIT (cached on disk after the first compilation)."""
    from numba import njit
    return njit(SIGNATURE, cache=True, nogil=True)(kernel)


def build(directory: Path = Path(__file__).parent) -> None:
    """Compile :func:`kernel` ahead of time into ``directory/_fused_aot*.so`` (needs a C compiler)."""
    from numba.pycc import CC
    cc = CC("_fused_aot")
    cc.output_dir = str(directory)
    cc.verbose = False
    cc.export("fused_sums", SIGNATURE)(kernel)
    cc.compile()


if __name__ == "__main__":
    build()
else:
    try:
        from ._fused_aot import fused_sums
    except ImportError:
        fused_sums = jit()
