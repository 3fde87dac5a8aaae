"""Thermostats: Langevin (BAOAB "O" step) and velocity rescaling, per target group.

Targets come per *group*: each profile bin is a group, plus one default group
(index ``n_bins``) for particles in the thermostat band but in no bin; group
``-1`` means "not thermostatted" (outside the band).  A group has a target
temperature [epsilon/k_B] and a target streaming velocity [sigma/tau] - the
hooks through which a continuum solver imposes temperature or velocity on a
band of the particle system.

The Langevin noise is counter-based: the normal deviate for particle ``id``,
step ``k`` and component ``c`` is a hash of (seed, id, k, c).  So the noise does
not depend on how particles are spread over ranks or ordered, and a restored run
(which restores the step counter) continues the same stream bitwise.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI
from numba import njit

__all__ = ["gaussian", "langevin_o", "group_of", "rescale"]

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _mix(z):
    """splitmix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _uniform(z):
    """(0, 1) double from the top 53 bits of a hash."""
    return (float(z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def gaussian(seed, pid, step, out):
    """Fill ``out`` (length <= 4) with standard normal deviates for (seed, pid, step).

    Box-Muller on uniforms hashed from the counter triple.
    """
    key = _mix(np.uint64(seed) * _GOLD + np.uint64(pid))
    key = _mix(key ^ (np.uint64(step) * _M2 + _GOLD))
    for pair in range((out.shape[0] + 1) // 2):
        u1 = _uniform(_mix(key + np.uint64(2 * pair + 1) * _GOLD))
        u2 = _uniform(_mix(key + np.uint64(2 * pair + 2) * _GOLD))
        r = np.sqrt(-2.0 * np.log(u1))
        out[2 * pair] = r * np.cos(2.0 * np.pi * u2)
        if 2 * pair + 1 < out.shape[0]:
            out[2 * pair + 1] = r * np.sin(2.0 * np.pi * u2)


@njit(cache=True)
def langevin_o(v, ids, n, dim, group, target_t, target_u, c1, seed, step):
    """Exact Ornstein-Uhlenbeck update of the velocities (the "O" of BAOAB,
    Leimkuhler & Matthews, Appl. Math. Res. Express 2013):
    v <- u + c1 (v - u) + sqrt((1 - c1^2) T) xi, unit mass, c1 = exp(-dt/damping).

    Parameters
    ----------
    v : (>= n, 3) float64, updated in place [sigma/tau]
    ids : (>= n,) int64 particle ids (noise key)
    group : (>= n,) int64 target group per particle, -1 = untouched
    target_t : (groups,) float64 [epsilon/k_B]; target_u : (groups, 3) float64 [sigma/tau]
    """
    c2 = np.sqrt(1.0 - c1 * c1)
    xi = np.empty(dim)
    for i in range(n):
        g = group[i]
        if g < 0:
            continue
        gaussian(seed, ids[i], step, xi)
        s = c2 * np.sqrt(target_t[g])
        for d in range(dim):
            v[i, d] = target_u[g, d] + c1 * (v[i, d] - target_u[g, d]) + s * xi[d]


@njit(cache=True)
def group_of(x, n, axis, box_len, periodic, edges, band_lo, band_hi):
    """Target group of each local particle: its bin along ``axis`` (``len(edges)-1``
    when in no bin) or -1 outside the band ``[band_lo, band_hi)`` [sigma].

    Positions are wrapped into [0, box_len) first on a periodic axis.
    """
    nb = edges.shape[0] - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        s = x[i, axis]
        if periodic:
            s = s - np.floor(s / box_len) * box_len
        if s < band_lo or s >= band_hi:
            out[i] = -1
            continue
        k = np.searchsorted(edges, s, side="right") - 1
        out[i] = k if 0 <= k < nb else nb
    return out


def rescale(comm, v, n, dim, group, target_t, target_u):
    """Velocity rescaling per group (collective): in each group with more than one
    particle, v <- u_target + lambda (v - v_mean) with lambda chosen so the group's
    kinetic temperature sum |v - v_mean|^2 / (dim (n_g - 1)) equals its target.

    Parameters as in :func:`langevin_o`; ``comm`` is the solver's communicator.
    """
    groups = len(target_t)
    sel = group[:n] >= 0
    g = group[:n][sel]
    vs = v[:n][sel, :dim]
    sums = np.zeros((groups, dim + 2))
    np.add.at(sums[:, 0], g, 1.0)
    for d in range(dim):
        np.add.at(sums[:, 1 + d], g, vs[:, d])
    np.add.at(sums[:, dim + 1], g, np.sum(vs * vs, axis=1))
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    count = sums[:, 0]
    ok = count > 1
    mean = np.zeros((groups, dim))
    mean[ok] = sums[ok, 1:dim + 1] / count[ok, None]
    thermal = sums[:, dim + 1] - count * np.sum(mean * mean, axis=1)
    lam = np.ones(groups)
    good = ok & (thermal > 0)
    lam[good] = np.sqrt(target_t[good] * dim * (count[good] - 1) / thermal[good])
    vs = target_u[g, :dim] * ok[g, None] + np.where(ok[g, None], lam[g, None] * (vs - mean[g]), vs)
    v[np.flatnonzero(sel), :dim] = vs
