"""Fundamental diagrams q(rho) of single-lane traffic, with demand and supply.

The cell-transmission / Godunov flux of LWR (Daganzo 1994) only needs three
things of a diagram: the demand ``D(rho)`` (what a cell can send), the supply
``S(rho)`` (what it can receive) and the largest characteristic speed for the
CFL bound.  For a concave diagram ``D(rho) = q(min(rho, rho_c))`` and
``S(rho) = q(max(rho, rho_c))``; the tabulated diagram uses the running
maxima, which reduces to that when the table is concave.

Units: density [veh/m], flow [veh/s], speed [m/s].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Greenshields", "Triangular", "Tabulated", "idm_equilibrium_table", "idm_diagram"]


@dataclass(frozen=True)
class Greenshields:
    """q = v_f rho (1 - rho/rho_j) (Greenshields 1935)."""

    v_free: float
    rho_jam: float

    @property
    def rho_crit(self) -> float:
        return 0.5 * self.rho_jam

    @property
    def capacity(self) -> float:
        return 0.25 * self.v_free * self.rho_jam

    @property
    def max_wave_speed(self) -> float:
        return self.v_free

    def flow(self, rho):
        return self.v_free * rho * (1.0 - rho / self.rho_jam)

    def demand(self, rho):
        return self.flow(np.minimum(rho, self.rho_crit))

    def supply(self, rho):
        return self.flow(np.maximum(rho, self.rho_crit))


@dataclass(frozen=True)
class Triangular:
    """q = min(v_f rho, w (rho_j - rho)) with w = v_f rho_c / (rho_j - rho_c)."""

    v_free: float
    rho_crit: float
    rho_jam: float

    @property
    def wave_speed(self) -> float:
        return self.v_free * self.rho_crit / (self.rho_jam - self.rho_crit)

    @property
    def capacity(self) -> float:
        return self.v_free * self.rho_crit

    @property
    def max_wave_speed(self) -> float:
        return max(self.v_free, self.wave_speed)

    def flow(self, rho):
        return np.minimum(self.v_free * rho, self.wave_speed * (self.rho_jam - rho))

    def demand(self, rho):
        return self.flow(np.minimum(rho, self.rho_crit))

    def supply(self, rho):
        return self.flow(np.maximum(rho, self.rho_crit))


class Tabulated:
    """A piecewise-linear diagram through points (rho_k, q_k), rho_0 = 0 < ... .

    Parameters
    ----------
    rho, q : array_like, shape (n,)
        Densities [veh/m] (strictly increasing, first 0) and flows [veh/s].
        Flow outside the table is held at its end values (0 past jam density
        when the last flow is 0).
    """

    def __init__(self, rho, q):
        rho = np.asarray(rho, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        if rho.ndim != 1 or rho.shape != q.shape or len(rho) < 2:
            raise ValueError("a tabulated diagram needs two 1-d arrays of equal length >= 2")
        if np.any(np.diff(rho) <= 0) or rho[0] != 0.0:
            raise ValueError("tabulated densities must start at 0 and increase strictly")
        if np.any(q < 0):
            raise ValueError("tabulated flows must be >= 0")
        self.rho, self.q = rho, q
        self._demand = np.maximum.accumulate(q)
        self._supply = np.maximum.accumulate(q[::-1])[::-1]
        k = int(np.argmax(q))
        self.rho_crit, self.capacity, self.rho_jam = float(rho[k]), float(q[k]), float(rho[-1])
        self.max_wave_speed = float(np.max(np.abs(np.diff(q) / np.diff(rho))))

    def flow(self, rho):
        return np.interp(rho, self.rho, self.q)

    def demand(self, rho):
        return np.interp(rho, self.rho, self._demand)

    def supply(self, rho):
        return np.interp(rho, self.rho, self._supply)


def idm_equilibrium_table(v0: float, T: float, s0: float, delta: float, n: int = 4000):
    """Equilibrium gap s_e(v) = (s0 + vT)/sqrt(1 - (v/v0)^delta) of the IDM on a v grid.

    Returns
    -------
    s, v : ndarray, shape (n,)
        Gaps [m] (increasing, from s0) and the equilibrium speeds [m/s] there,
        from v = 0 to v = v0 (1 - 1e-9); ``np.interp(gap, s, v)`` inverts s_e.
    """
    u = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, n)))   # cluster points at both ends
    v = v0 * u * (1.0 - 1e-9)
    s = (s0 + v * T) / np.sqrt(1.0 - (v / v0) ** delta)
    return s, v


def idm_diagram(v0: float, T: float, s0: float, delta: float, length: float,
                n: int = 4000) -> Tabulated:
    """The IDM equilibrium diagram Q(rho) = rho v_e(1/rho - l) as a :class:`Tabulated`."""
    s, v = idm_equilibrium_table(v0, T, s0, delta, n)
    rho = 1.0 / (s + length)
    q = rho * v
    # order by density, and close the table at rho = 0 (free road) and rho_jam (standstill)
    rho, q = rho[::-1], q[::-1]
    return Tabulated(np.concatenate([[0.0], rho]), np.concatenate([[0.0], q]))
