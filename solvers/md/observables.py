"""Observables: energies, temperature, pressure, stress tensor, binned profiles.

Reduced LJ units: energy epsilon, temperature epsilon/k_B, pressure and stress
epsilon/sigma^dim, density sigma^-dim, velocity sigma/tau.

Sign convention: ``pressure`` and the internal pressure tensor
P_ab = (sum_i v_ia v_ib + W_ab) / V are positive in compression (LAMMPS's
``compute pressure``); the output ``stress`` is the Cauchy stress
sigma_ab = -P_ab, the convention a continuum solver uses.  W_ab = sum over pairs
of r_a f_b is the pair virial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .kernels import lj_per_atom

__all__ = ["tail_energy_per_particle", "tail_pressure", "Bins", "measure"]

_VOIGT = ((0, 3, 4), (3, 1, 5), (4, 5, 2))  # (xx, yy, zz, xy, xz, yz) -> 3x3


def tail_energy_per_particle(density: float, rc: float, dim: int) -> float:
    """Long-range correction U_LRC/N of the LJ potential truncated at ``rc``
    (pair correlation g = 1 beyond rc; Allen & Tildesley, Computer Simulation of
    Liquids, sec. 2.8):

    3D: (8/3) pi rho [ (1/3) rc^-9 - rc^-3 ];  2D: pi rho [ (2/5) rc^-10 - rc^-4 ].
    """
    if dim == 3:
        return 8.0 / 3.0 * np.pi * density * (rc ** -9 / 3.0 - rc ** -3)
    return np.pi * density * (0.4 * rc ** -10 - rc ** -4)


def tail_pressure(density: float, rc: float, dim: int) -> float:
    """Long-range pressure correction p_LRC (same assumptions):

    3D: (16/3) pi rho^2 [ (2/3) rc^-9 - rc^-3 ];  2D: pi rho^2 [ (12/5) rc^-10 - 3 rc^-4 ].
    """
    if dim == 3:
        return 16.0 / 3.0 * np.pi * density ** 2 * (2.0 / 3.0 * rc ** -9 - rc ** -3)
    return np.pi * density ** 2 * (2.4 * rc ** -10 - 3.0 * rc ** -4)


@dataclass(frozen=True, eq=False)
class Bins:
    """Slabs along one axis for profiles and per-bin inputs.

    Attributes
    ----------
    axis : int
    edges : (n_bins + 1,) float64, increasing [sigma] (in the current, possibly strained box)
    """

    axis: int
    edges: np.ndarray

    @property
    def n(self) -> int:
        return len(self.edges) - 1

    def centers(self, box: np.ndarray, dim: int) -> np.ndarray:
        """(n_bins, dim) bin centres; other coordinates at the box centre [sigma]."""
        pts = np.tile(0.5 * box[:dim], (self.n, 1))
        pts[:, self.axis] = 0.5 * (self.edges[1:] + self.edges[:-1])
        return pts

    def volumes(self, box: np.ndarray, dim: int) -> np.ndarray:
        """(n_bins,) slab volumes (areas in 2D) [sigma^dim]."""
        cross = np.prod([box[d] for d in range(dim) if d != self.axis])
        return np.diff(self.edges) * cross

    def index(self, x: np.ndarray, box_len: float, periodic: bool) -> np.ndarray:
        """(n,) bin of each position row (-1 outside every bin); wraps periodic axes."""
        s = x[:, self.axis]
        if periodic:
            s = np.mod(s, box_len)
        k = np.searchsorted(self.edges, s, side="right") - 1
        return np.where((k >= 0) & (k < self.n), k, -1)


def _tensor(six: np.ndarray, dim: int) -> np.ndarray:
    """(..., 6) Voigt-ordered symmetric tensors -> (..., dim*dim) row-major."""
    idx = [_VOIGT[a][b] for a in range(dim) for b in range(dim)]
    return six[..., idx]


def measure(comm, x, v, nlocal, start, nbr, rc2, eshift, *, box, dim, n_total, bins: Bins,
            periodic_axis: bool, tail: tuple[float, float]) -> dict[str, np.ndarray]:
    """All observables of the current configuration (collective, one Allreduce).

    Parameters
    ----------
    x : (nall, 3) positions incl. ghosts; v : (nlocal, 3) velocities
    start, nbr : the half neighbour list; rc2, eshift : see :func:`kernels.lj_forces`
    box : (3,) box lengths; dim : 2 or 3; n_total : particles in the box
    bins : profile bins; periodic_axis : whether ``bins.axis`` is periodic
    tail : (U_LRC/N, p_LRC), zeros when tail corrections are off

    Returns
    -------
    dict of float64 arrays: kinetic_energy, potential_energy, total_energy,
    temperature, pressure (shape (1,)); stress (1, dim*dim); density_profile,
    temperature_profile (n_bins,); velocity_profile (n_bins, dim);
    stress_profile (n_bins, dim*dim); plus the pair virial ``virial`` (dim*dim,)
    and the profile counts ``count_profile`` (n_bins,) for tests.
    """
    eatom = np.empty(nlocal)
    watom = np.empty((nlocal, 6))
    lj_per_atom(x, nlocal, start, nbr, rc2, eshift, eatom, watom)
    vl = v[:nlocal]
    kin6 = np.stack([vl[:, 0] ** 2, vl[:, 1] ** 2, vl[:, 2] ** 2,
                     vl[:, 0] * vl[:, 1], vl[:, 0] * vl[:, 2], vl[:, 1] * vl[:, 2]], axis=1)
    nb = bins.n
    k = bins.index(x[:nlocal], box[bins.axis], periodic_axis)
    inside = k >= 0
    # columns: count, momentum(3), kinetic(6), virial(6)
    per_bin = np.zeros((nb, 16))
    rows = np.hstack([np.ones((nlocal, 1)), vl, kin6, watom])[inside]
    np.add.at(per_bin, k[inside], rows)
    totals = np.concatenate([[eatom.sum()], watom.sum(axis=0), kin6.sum(axis=0)])
    buf = np.concatenate([totals, per_bin.ravel()])
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    pe, w6, k6 = buf[0], buf[1:7], buf[7:13]
    per_bin = buf[13:].reshape(nb, 16)

    volume = float(np.prod(box[:dim]))
    u_tail, p_tail = tail
    ke = 0.5 * (k6[0] + k6[1] + k6[2])
    pe += n_total * u_tail
    dof = dim * (n_total - 1)
    pressure_tensor = _tensor(k6 + w6, dim) / volume
    pressure = sum(pressure_tensor[a * dim + a] for a in range(dim)) / dim + p_tail
    stress = -pressure_tensor - p_tail * np.eye(dim).ravel()

    count = per_bin[:, 0]
    mom = per_bin[:, 1:4]
    safe = np.maximum(count, 1.0)
    u = mom / safe[:, None]
    uu6 = np.stack([u[:, 0] ** 2, u[:, 1] ** 2, u[:, 2] ** 2,
                    u[:, 0] * u[:, 1], u[:, 0] * u[:, 2], u[:, 1] * u[:, 2]], axis=1)
    thermal6 = per_bin[:, 4:10] - count[:, None] * uu6  # peculiar kinetic tensor
    vol_b = bins.volumes(box, dim)
    t_prof = np.where(count > 1, (thermal6[:, 0] + thermal6[:, 1] + thermal6[:, 2])
                      / (dim * np.maximum(count - 1, 1)), 0.0)
    return {
        "kinetic_energy": np.array([ke]),
        "potential_energy": np.array([pe]),
        "total_energy": np.array([ke + pe]),
        "temperature": np.array([2.0 * ke / dof if dof > 0 else 0.0]),
        "pressure": np.array([pressure]),
        "stress": stress[None, :],
        "virial": _tensor(w6, dim),
        "density_profile": count / vol_b,
        "count_profile": count,
        "temperature_profile": t_prof,
        "velocity_profile": u[:, :dim].copy(),
        "stress_profile": -_tensor(thermal6 + per_bin[:, 10:16], dim) / vol_b[:, None],
    }


class RunningProfile:
    """Bin velocities and the box stress averaged over the last ``steps`` samples (one per step).

    The velocity average is mass-weighted (unit mass): sum of momenta over sum of
    counts, i.e. the coarse-grained velocity of a bin over a time window, the value
    an MD-continuum coupling hands to the continuum side.  The stress average is the
    whole box's (kinetic + pair virial) tensor over the same samples: the shear stress
    of a steady sheared fluid, whose ratio to the shear rate is the viscosity.

    Attributes
    ----------
    ring : (steps, n_bins, 4) float64 -- per sample and bin: count, momentum (3)
    ring6 : (steps, 6) float64 -- per sample: sum_i v_a v_b + W_ab, Voigt order (xx, yy, zz, xy, xz, yz) [epsilon]
    taken : int -- samples taken so far (the ring slot of the next one is taken % steps)
    """

    def __init__(self, steps: int, n_bins: int):
        self.ring = np.zeros((steps, n_bins, 4))
        self.ring6 = np.zeros((steps, 6))
        self.taken = 0

    def sample(self, comm, x, v, n, bins: Bins, box_len: float, periodic: bool,
               virial6: np.ndarray | None = None) -> None:
        """Add the current bin sums of the locals ``x, v`` (>= n, 3) and, when given, their
        kinetic tensor plus the pair virial ``virial6`` (6,) [epsilon] (collective)."""
        nb = bins.n
        k = bins.index(x[:n], box_len, periodic)
        inside = k >= 0
        ki = k[inside]
        buf = np.zeros(nb * 4 + 6)
        sums = buf[:nb * 4].reshape(nb, 4)
        sums[:, 0] = np.bincount(ki, minlength=nb)
        for d in range(3):
            sums[:, 1 + d] = np.bincount(ki, weights=v[:n][inside, d], minlength=nb)
        if virial6 is not None:
            vl = v[:n]
            buf[nb * 4:] = virial6 + np.array([vl[:, 0] @ vl[:, 0], vl[:, 1] @ vl[:, 1], vl[:, 2] @ vl[:, 2],
                                               vl[:, 0] @ vl[:, 1], vl[:, 0] @ vl[:, 2], vl[:, 1] @ vl[:, 2]])
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        slot = self.taken % len(self.ring)
        self.ring[slot] = sums
        self.ring6[slot] = buf[nb * 4:]
        self.taken += 1

    def mean(self, dim: int) -> np.ndarray:
        """(n_bins, dim) mean velocity per bin over the samples in the ring [sigma/tau];
        0 in a bin that held no particle."""
        total = self.ring.sum(axis=0)
        return (total[:, 1:1 + dim] / np.maximum(total[:, :1], 1.0)).copy()

    def mean_stress(self, volume: float, dim: int) -> np.ndarray:
        """(dim*dim,) Cauchy stress -(sum v v + W)/V averaged over the samples taken
        (at most the ring's length) [epsilon/sigma^dim]; row-major."""
        k = min(self.taken, len(self.ring6))
        six = self.ring6.sum(axis=0) / max(k, 1)
        return -_tensor(six, dim) / volume
