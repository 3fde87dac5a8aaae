"""Manufactured solutions of the heat equation.

``u(x, y, t) = 1 + x² + α y² + β t`` [K] is the preCICE partitioned heat
conduction tutorial's: it solves ``ρc ∂u/∂t − ∇·(k ∇u) = f`` with the constant
source ``f = ρc β − k (2 + 2α)`` (``f = −k (2 + 2α)`` for the steady problem
``−∇·(k ∇u) = f``, solved at each time for its own ``t``).

An optional :class:`Peak` adds a sharp Gaussian ``A exp(−|x − c(t)|² / (2σ²))``
whose centre may move, ``c(t) = c0 + v t``, to that smooth background: the
test problem of local refinement (a coarse grid resolves the background, only a
fine patch the peak).  Its source is then no longer constant but a function of
position and time (:meth:`Manufactured.source_at`), localized around the peak.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from msorch.solver import param

__all__ = ["Manufactured", "Peak"]


@dataclass(frozen=True)
class Peak:
    """A Gaussian ``amplitude exp(−|x − c(t)|² / (2 width²))`` added to the manufactured u."""

    amplitude: float = param(1.0, "height A of the Gaussian", units="K")
    width: float = param(0.02, "standard deviation sigma of the Gaussian", units="m")
    x: float = param(0.7, "x of the centre at t = 0", units="m")
    y: float = param(0.3, "y of the centre at t = 0", units="m")
    vx: float = param(0.0, "x velocity of the centre", units="m/s")
    vy: float = param(0.0, "y velocity of the centre", units="m/s")

    def centre(self, t: float) -> tuple[float, float]:
        """Centre (x, y) [m] at time ``t`` [s]."""
        return self.x + self.vx * t, self.y + self.vy * t

    def gaussian(self, points: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(g, dx, dy) at ``points`` (n, 2) [m]: g = exp(−r²/(2σ²)) [1], dx, dy = x − c [m]; shapes (n,)."""
        cx, cy = self.centre(t)
        dx, dy = points[:, 0] - cx, points[:, 1] - cy
        return np.exp(-(dx * dx + dy * dy) / (2.0 * self.width ** 2)), dx, dy


def peak_problems(peak: Optional[Peak], prefix: str = "peak.") -> list[tuple[str, str, str]]:
    """Spec problems of a :class:`Peak` block as (key, what, fix)."""
    if peak is None:
        return []
    if not peak.width > 0:
        return [(f"{prefix}width", f"expected a positive width, got {peak.width}", "set width: 0.02")]
    return []


@dataclass(frozen=True)
class Manufactured:
    """u = 1 + x² + α y² + β t (+ an optional :class:`Peak`) with material constants k, ρc."""

    alpha: float = 3.0      # [K/m^2]
    beta: float = 1.2       # [K/s]
    conductivity: float = 1.0   # k [W/(m K)]
    capacity: float = 1.0       # ρc [J/(m^3 K)]
    peak: Optional[Peak] = None

    def temperature(self, points: np.ndarray, t: float) -> np.ndarray:
        """u [K] at ``points`` (shape (n, 2), [m]) and time ``t`` [s]; shape (n,)."""
        x, y = points[:, 0], points[:, 1]
        u = 1.0 + x * x + self.alpha * y * y + self.beta * t
        if self.peak is not None:
            u = u + self.peak.amplitude * self.peak.gaussian(points, t)[0]
        return u

    def source(self, steady: bool = False) -> float:
        """The constant f [W/m^3] that makes the background (without a peak) a solution."""
        diffusion = -self.conductivity * (2.0 + 2.0 * self.alpha)
        return diffusion if steady else self.capacity * self.beta + diffusion

    def source_at(self, points: np.ndarray, t: float, steady: bool = False) -> np.ndarray:
        """f [W/m^3] at ``points`` (n, 2) [m] and time ``t`` [s], peak included; shape (n,).

        With g = exp(−r²/(2σ²)): Δg = g (r²/σ⁴ − 2/σ²) and ∂g/∂t = g (v·(x − c))/σ².
        """
        f = np.full(len(points), self.source(steady))
        if self.peak is not None:
            pk = self.peak
            g, dx, dy = pk.gaussian(points, t)
            s2 = pk.width ** 2
            lap = g * ((dx * dx + dy * dy) / (s2 * s2) - 2.0 / s2)
            f -= self.conductivity * pk.amplitude * lap
            if not steady:
                f += self.capacity * pk.amplitude * g * (pk.vx * dx + pk.vy * dy) / s2
        return f
