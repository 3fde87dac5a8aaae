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

__all__ = ["Greenshields", "Triangular", "Tabulated", "idm_equilibrium_table", "idm_diagram",
           "idm_wide_jam_diagram"]


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


def idm_wide_jam_diagram(v0: float, T: float, s0: float, delta: float, length: float,
                         jam_inflow: float, jam_density: float, drop: float = 0.002,
                         n: int = 4000) -> Tabulated:
    """The IDM equilibrium free branch with a congested branch made of wide moving jams.

    An IDM that is string-unstable in congestion (e.g. a = 1 m/s^2, T = 1 s) does not queue at
    its equilibrium congested states: a queue becomes wide moving jams of density
    ``jam_density`` (vehicles almost standing), whose upstream front, hit by free traffic of flow
    ``jam_inflow``, travels at w = -jam_inflow / (jam_density - rho_in) (rho_in: the free-branch
    density of that flow).  Here the congested branch is the straight line from the free state
    (rho_in, jam_inflow) to (jam_density, 0): every congested state then meets the arriving
    traffic in a contact moving at w, as the front of a jam does, and a jam travels upstream as
    a compact block instead of being smeared by a concave branch.  The free branch is the
    equilibrium one up to its capacity; beyond the critical density the flow drops to the line
    over ``drop`` [veh/m] (a steep but finite slope, so the CFL bound stays finite).

    Parameters
    ----------
    jam_inflow : float
        Flow [veh/s] of the free traffic that feeds the jams (free branch, < capacity).
    jam_density : float
        Density [veh/m] inside a wide jam, measured on the same IDM (e.g. with
        ``tests/unit/test_traffic_wide_jam.py``'s open-road experiment).
    """
    eq = idm_diagram(v0, T, s0, delta, length, n)
    k = int(np.argmax(eq.q))
    rho_c = eq.rho[k]
    if not 0.0 < jam_inflow < eq.capacity:
        raise ValueError(f"jam_inflow {jam_inflow:g} veh/s must lie in (0, capacity {eq.capacity:.6g} veh/s)")
    rho_in = float(np.interp(jam_inflow, eq.q[:k + 1], eq.rho[:k + 1]))
    if not jam_density > rho_c + drop:
        raise ValueError(f"jam_density {jam_density:g} veh/m must exceed the critical density "
                         f"{rho_c:.6g} veh/m + drop {drop:g} veh/m")
    w = jam_inflow / (jam_density - rho_in)     # |front speed| [m/s]
    free = slice(0, k + 1, 10)                  # every 10th equilibrium point: the CFL-relevant slope is kept
    rho = np.concatenate([eq.rho[free], [rho_c, rho_c + drop, jam_density]])
    q = np.concatenate([eq.q[free], [eq.capacity, w * (jam_density - rho_c - drop), 0.0]])
    rho, idx = np.unique(rho, return_index=True)
    return Tabulated(rho, q[idx])


class CapacityDrop:
    """A diagram whose congested cells send the queue discharge flow instead of the capacity.

    The kinematic-wave capacity-drop idea of Jin, Gan & Lo (2015, Transp. Res. B 81): a cell whose
    density exceeds the critical density is (part of) a queue, and a queue empties at the
    discharge rate ``discharge`` [veh/s] (< capacity), measured on the vehicles themselves (for a
    string-unstable IDM: the outflow of a wide moving jam, tests/unit/test_traffic_wide_jam.py).
    Only the demand changes: D(rho) = discharge for rho > rho_c, the diagram's demand otherwise;
    flow, supply, capacity and the CFL speed are the wrapped diagram's.  The Godunov flux
    min(D_i, S_{i+1}) stays conservative; the front of a jam of density rho_j then moves
    downstream-to-upstream at -discharge / (rho_j - rho_out), rho_out the free state carrying the
    discharge, as a wide jam's downstream front does.
    """

    def __init__(self, fd, discharge: float):
        if not discharge > 0.0:
            raise ValueError(f"discharge {discharge:g} veh/s must be > 0")
        # a table answered at run time may have a capacity below the setting: never above capacity
        self.fd, self.discharge = fd, min(float(discharge), fd.capacity)
        self.rho_crit, self.capacity = fd.rho_crit, fd.capacity
        self.max_wave_speed = fd.max_wave_speed

    def __getattr__(self, name):          # rho, q, v_free, ... of the wrapped diagram
        return getattr(self.__dict__["fd"], name)

    def flow(self, rho):
        return self.fd.flow(rho)

    def supply(self, rho):
        return self.fd.supply(rho)

    def demand(self, rho):
        rho = np.asarray(rho, dtype=np.float64)
        d = np.where(rho > self.rho_crit, self.discharge, self.fd.demand(rho))
        return d if d.ndim else float(d)
