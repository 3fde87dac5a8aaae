"""The manufactured solution of the preCICE partitioned heat conduction tutorial.

``u(x, y, t) = 1 + x² + α y² + β t`` [K] solves ``ρc ∂u/∂t − ∇·(k ∇u) = f`` with
the constant source ``f = ρc β − k (2 + 2α)`` (``f = −k (2 + 2α)`` for the
steady problem ``−∇·(k ∇u) = f``, solved at each time for its own ``t``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Manufactured"]


@dataclass(frozen=True)
class Manufactured:
    """u = 1 + x² + α y² + β t with material constants k, ρc."""

    alpha: float = 3.0      # [K/m^2]
    beta: float = 1.2       # [K/s]
    conductivity: float = 1.0   # k [W/(m K)]
    capacity: float = 1.0       # ρc [J/(m^3 K)]

    def temperature(self, points: np.ndarray, t: float) -> np.ndarray:
        """u [K] at ``points`` (shape (n, 2), [m]) and time ``t`` [s]; shape (n,)."""
        x, y = points[:, 0], points[:, 1]
        return 1.0 + x * x + self.alpha * y * y + self.beta * t

    def source(self, steady: bool = False) -> float:
        """The constant f [W/m^3] that makes u a solution."""
        diffusion = -self.conductivity * (2.0 + 2.0 * self.alpha)
        return diffusion if steady else self.capacity * self.beta + diffusion
