"""A mixed vehicle population at a given density: class layout and the multi-class IDM equilibrium.

Used by ``traffic.idm`` when its ``density`` setting is given (the HMM micro
ring, and the queue of a traffic-light run): ``n`` vehicles of classes drawn
in fixed proportions fill a stretch of road of length ``span`` [m] at one
common speed ``v`` with every vehicle at its own class's equilibrium gap
s_e^c(v) = (s0_c + v T_c) / sqrt(1 - (v/v0_c)^delta), so that

    sum_i (s_e^{c_i}(v) + l_{c_i}) = span.

For a single class this is the uniform flow of the IDM; for several it is the
mixed ring equilibrium (all vehicles at one speed, trucks at longer gaps).

Class rows are those of ``idm._classes``: (fraction, v0, T, s0, a, b, length).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.optimize import brentq

__all__ = ["class_period", "ring_count", "even_classes", "jam_spacing", "equilibrium_speed", "place"]


def class_period(fractions: np.ndarray, limit: int = 64) -> int:
    """Smallest n <= ``limit`` with n * fraction integral for every class (1 if there is none)."""
    for n in range(1, limit + 1):
        if all(abs(f * n - round(f * n)) < 1e-9 for f in fractions):
            return n
    return 1


def ring_count(density: float, length: float, fractions: np.ndarray) -> int:
    """Vehicles for a ring of about ``length`` [m] at ``density`` [veh/m]: a multiple of the
    class period (so the class proportions hold exactly), at least one period."""
    m = class_period(fractions)
    return m * max(1, int(round(density * length / m)))


def even_classes(n: int, fractions: np.ndarray) -> np.ndarray:
    """(n,) class indices in the given proportions (counts rounded), interleaved evenly.

    Vehicle i takes the class of u_i = ((i k) mod n + 1/2) / n on the cumulative
    fractions, with k ~ 0.618 n coprime to n: the u_i are the n midpoints, so the
    counts are exact up to rounding, and consecutive vehicles are spread over
    the classes like a well-mixed stream (no platoons of one class).
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, int(round(0.6180339887 * n)))
    while np.gcd(k, n) != 1:
        k += 1
    u = ((np.arange(n) * k) % n + 0.5) / n
    cum = np.cumsum(fractions)
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(fractions) - 1)


def jam_spacing(classes: np.ndarray) -> float:
    """Mean standstill spacing sum_c f_c (s0_c + l_c) [m]: 1 / jam density of the population."""
    return float(np.sum(classes[:, 0] * (classes[:, 3] + classes[:, 6])) / classes[:, 0].sum())


def _gaps(classes: np.ndarray, c: np.ndarray, v: float, delta: float) -> np.ndarray:
    v0, T, s0 = classes[c, 1], classes[c, 2], classes[c, 3]
    return (s0 + v * T) / np.sqrt(1.0 - (v / v0) ** delta)


def equilibrium_speed(classes: np.ndarray, c: np.ndarray, delta: float, span: float) -> float:
    """Common speed [m/s] at which vehicles of classes ``c`` (n,) fill ``span`` [m] at equilibrium gaps.

    Raises ValueError when they do not fit even at standstill (denser than jam).
    """
    lengths = float(classes[c, 6].sum())

    def excess(v):
        return float(_gaps(classes, c, v, delta).sum()) + lengths - span

    jam = excess(0.0)
    if jam > 1e-9 * span:
        raise ValueError(f"{len(c)} vehicles need {span + jam:.6g} m at standstill but have {span:.6g} m "
                         f"(the density is above the population's jam density)")
    if jam >= 0.0:
        return 0.0
    vmax = float(classes[c, 1].min()) * (1.0 - 1e-12)
    return float(brentq(excess, 0.0, vmax, xtol=1e-13, rtol=1e-15))


def place(classes: np.ndarray, c: np.ndarray, delta: float, lo: float, span: float,
          speed: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Front positions x (n,) [m] and speeds v (n,) [m/s] of vehicles of classes ``c`` tiling [lo, lo + span).

    Vehicle i occupies [x_i - l_i, x_i + s_i) with s_i its equilibrium gap at the
    common equilibrium speed; x_0 = lo + l_0.  ``speed`` overrides the speed
    (not the gaps).
    """
    n = len(c)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    v = equilibrium_speed(classes, c, delta, span)
    gaps = _gaps(classes, c, v, delta)
    lengths = classes[c, 6]
    x = lo + lengths[0] + np.concatenate([[0.0], np.cumsum(gaps[:-1] + lengths[1:])])
    return x, np.full(n, v if speed is None else float(speed))
