"""Periodic and locally periodic conductivity coefficients a(x, y) (pure numpy).

``x`` is the macro point [m], ``y`` the position in the unit periodic cell
[0, 1)² (dimensionless, y = x/ε on the fine scale).  Values are 2×2
conductivity tensors [W/(m K)], row-major, shape (m, 4).

Families (``kind``):

``laminate``
    Layers across y1: k1 for y1 < θ, k2 otherwise (isotropic phases).
    Homogenized: arithmetic mean along the layers, harmonic mean across.
``smooth``
    a(y) = k1 + amplitude · sin(2π y1) (isotropic).  Homogenized across the
    layers: the harmonic mean, √(k1² − amplitude²) (√3 for 2 + sin).
``checkerboard``
    k1 on the squares where (y1 < ½) == (y2 < ½), k2 on the others;
    homogenized √(k1 k2) (Dykhne 1970).
``graded_laminate`` (locally periodic: the cell problem depends on x)
    Layers across y1: an isotropic phase k1 for y1 < θ, and a fibre phase for
    y1 ≥ θ whose conductivity k2(x) = k2 (1 + amplitude sin(π x1) sin(π x2))
    along fibres at the angle φ(x) = turn (x1 + x2)/2 to the y1 axis, and
    anisotropy · k2(x) across them.  Contrast and fibre orientation vary
    smoothly over the macro domain, so every macro point has its own cell
    problem and a full (off-diagonal) homogenized tensor.  The layers
    themselves keep their orientation: a laminate whose layer normal turned
    with x would not be periodic on a fixed lattice (a(x, x/ε) needs one), and
    its fine-scale interfaces would cross any structured mesh.

``angle`` rotates the whole microstructure against the macro axes: the tensor
in macro axes is R a(x, Rᵀz) Rᵀ.  The cell solver works in the cell's own axes
and rotates its result (the periodic cell of a rotated laminate is the rotated
square, so this is exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from msorch.solver import param

__all__ = ["Microstructure", "KINDS", "cell_tensors", "rotate", "fine_tensors", "problems"]

KINDS = ("laminate", "smooth", "checkerboard", "graded_laminate")


@dataclass(frozen=True)
class Microstructure:
    """The coefficient family a(x, y) and its parameters (see the module docstring)."""

    kind: Literal["laminate", "smooth", "checkerboard", "graded_laminate"] = param(
        "laminate", "coefficient family a(x, y): laminate, smooth, checkerboard or graded_laminate")
    k1: float = param(1.0, "conductivity of phase 1 (smooth: the mean)", units="W/(m K)")
    k2: float = param(10.0, "conductivity of phase 2 (graded_laminate: along the fibres at amplitude 0)",
                      units="W/(m K)")
    theta: float = param(0.5, "volume fraction of phase 1 (laminates: layers y1 < theta)")
    amplitude: float = param(0.0, "smooth: a = k1 + amplitude sin(2 pi y1); graded_laminate: relative "
                             "variation of k2 over x")
    anisotropy: float = param(1.0, "graded_laminate: conductivity across the fibres / along them")
    turn: float = param(0.0, "graded_laminate: fibre angle phi(x) = turn (x1 + x2)/2", units="rad")
    angle: float = param(0.0, "rotation of the microstructure against the macro axes", units="rad")


def problems(m: Microstructure, prefix: str = "") -> list[tuple[str, str, str]]:
    """(path, what is wrong, fix) for inconsistent parameters; paths get ``prefix``."""
    out = []
    if m.kind in ("laminate", "checkerboard", "graded_laminate"):
        for name in ("k1", "k2"):
            if not getattr(m, name) > 0:
                out.append((prefix + name, f"expected a positive conductivity, got {getattr(m, name)}",
                            f"set {name}: 1.0"))
    if m.kind in ("laminate", "graded_laminate") and not 0.0 < m.theta < 1.0:
        out.append((prefix + "theta", f"expected a volume fraction in (0, 1), got {m.theta}", "set theta: 0.5"))
    if m.kind == "smooth" and not m.k1 > abs(m.amplitude):
        out.append((prefix + "k1", f"a = k1 + amplitude sin(2 pi y1) must stay positive, but k1 = {m.k1} "
                    f"<= |amplitude| = {abs(m.amplitude)}", "raise k1 or lower amplitude"))
    if m.kind == "graded_laminate":
        if not abs(m.amplitude) < 1.0:
            out.append((prefix + "amplitude", f"k2 (1 + amplitude ...) must stay positive; got {m.amplitude}",
                        "use |amplitude| < 1"))
        if not m.anisotropy > 0:
            out.append((prefix + "anisotropy", f"expected a positive ratio, got {m.anisotropy}",
                        "set anisotropy: 1.0"))
    return out


def _fibre(m: Microstructure, x1, x2, lib=np) -> tuple:
    """The graded fibre phase (k11, k12, k21, k22) at macro points ``x1``, ``x2`` (arrays with
    ``lib=np``; floats with ``lib=math``, for one point, where numpy's per-call cost dominates)."""
    k2 = m.k2 * (1.0 + m.amplitude * lib.sin(math.pi * x1) * lib.sin(math.pi * x2))
    phi = m.turn * 0.5 * (x1 + x2)
    c, s = lib.cos(phi), lib.sin(phi)
    along, across = k2, m.anisotropy * k2
    off = (along - across) * c * s
    return along * c * c + across * s * s, off, off, along * s * s + across * c * c


def cell_tensors(m: Microstructure, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a(x, y) in the cell's own axes, shape (n, 4) [W/(m K)].

    ``x``: macro point(s) [m], shape (2,) (one point for all ``y``) or (n, 2);
    ``y``: cell positions, shape (n, 2), taken modulo 1.
    """
    y1 = np.mod(y[:, 0], 1.0)
    out = np.zeros((len(y), 4))
    if m.kind == "smooth":
        out[:, 0] = out[:, 3] = m.k1 + m.amplitude * np.sin(2.0 * math.pi * y1)
        return out
    if m.kind == "checkerboard":
        first = (y1 < 0.5) == (np.mod(y[:, 1], 1.0) < 0.5)
    else:
        first = y1 < m.theta
    # Called once per HMM query (the cell solver's hot path): fill, then overwrite phase 1;
    # one macro point goes through scalar math (numpy's per-call overhead dominates there).
    if m.kind == "laminate":
        out[:, 0] = out[:, 3] = m.k2
    elif np.ndim(x) == 1:
        out[:] = _fibre(m, float(x[0]), float(x[1]), math)
    else:
        x = np.asarray(x, dtype=float)
        out[:] = np.column_stack(_fibre(m, x[:, 0], x[:, 1]))
    out[first] = (m.k1, 0.0, 0.0, m.k1)
    return out


def rotate(tensors: np.ndarray, angle: float) -> np.ndarray:
    """R K Rᵀ for R the rotation by ``angle`` [rad]; shape (n, 4) in and out."""
    if angle == 0.0:
        return tensors
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s], [s, c]])
    return np.einsum("ik,nkl,jl->nij", r, tensors.reshape(-1, 2, 2), r).reshape(-1, 4)


def fine_tensors(m: Microstructure, epsilon: float, x: np.ndarray) -> np.ndarray:
    """The fine-scale coefficient a(x, Rᵀx/ε) in macro axes at points ``x`` (n, 2) [m]; (n, 4)."""
    c, s = math.cos(m.angle), math.sin(m.angle)
    y = (x @ np.array([[c, -s], [s, c]])) / epsilon          # rows: Rᵀ x / ε
    return rotate(cell_tensors(m, x, y), m.angle)
