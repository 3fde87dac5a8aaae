"""numba kernels of ``epi.network``: counter-based random numbers and the infection step.

Every random decision is a pure function of (seed, purpose, step, agent ids): a
splitmix64-style hash of the key (:func:`uniform`).  Which rank holds an agent, and
in which order agents are visited, therefore never changes a result: runs on 1, 2
or 4 ranks are identical.

Agent status codes: ``S = 0``, ``E = 1`` (latent), ``I = 2``, ``R = 3`` and
``NEW = 4`` (infected during the current step, not yet given its periods).
Times are in days.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["S", "E", "I", "R", "NEW", "uniform", "uniforms", "transmit_step", "visitor_step",
           "settle_step", "infect", "PURPOSE"]

S, E, I, R, NEW = 0, 1, 2, 3, 4   # noqa: E741  (the compartment's name)

#: Salt of each kind of random decision.
PURPOSE = {"transmit": 1, "latent": 2, "infectious": 3, "travel": 4, "visit": 5, "detect": 6, "seed": 7}

_G1 = np.uint64(0x9E3779B97F4A7C15)
_G2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0   # 2^-53


@numba.njit(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(inline="always")
def uniform(seed, purpose, step, a, b):
    """A uniform number in [0, 1) that depends only on the five integer keys (all >= 0)."""
    z = _mix(np.uint64(seed) * _G1 + np.uint64(purpose))
    z = _mix(z ^ (np.uint64(step) * _G2))
    z = _mix(z ^ (np.uint64(a) * _G1))
    z = _mix(z ^ (np.uint64(b) * _G2 + np.uint64(1)))
    return np.float64(z >> _S11) * _TO_UNIT


@numba.njit(cache=True)
def uniforms(seed, purpose, step, ids, b):
    """:func:`uniform` for each id of ``ids`` (shape (n,), int64) -> shape (n,) float64."""
    out = np.empty(len(ids))
    for k in range(len(ids)):
        out[k] = uniform(seed, purpose, step, ids[k], b)
    return out


@numba.njit(cache=True)
def transmit_step(t, dt, step, seed, active, n_active, status, t_inf, t_rec, t_det, region,
                  indptr, indices, elayer, rate, iso, lo, hi, travel_fraction,
                  new_local, n_new, remote, exported):
    """Transmissions along the contacts of the active (E/I) agents during [t, t + dt).

    For infectious agent ``i`` with overlap [s0, s1) = [max(t, t_inf), min(t+dt, t_rec)),
    split at its detection time into ``L_pre`` and ``L_post``, each contact (i, j) in layer
    ``l`` transmits with probability ``1 - exp(-rate[region_i, l] * (L_pre + iso[l] * L_post))``
    (draw keyed on (seed, step, i, j, l)).  Susceptible local targets become ``NEW`` and
    are appended to ``new_local`` (local indices) from position ``n_new``; remote targets are
    written to ``remote`` (global ids; the owner discards them unless susceptible).  Each
    infectious agent also counts as a traveller out of its region with probability
    ``travel_fraction * (s1 - s0)`` (``exported[region] += 1``).

    Arrays: active (n_local,) int64 local ids in [0, n_active); status (n_local,) int8;
    t_inf, t_rec, t_det (n_local,) float64 days; region (n_local,) int32; indptr (n_local+1,),
    indices (n_edges,) int64 global ids; elayer (n_edges,) int8; rate (n_regions, n_layers)
    1/day; iso (n_layers,); remote: capacity >= the cross-rank contact entries.
    Returns (n_new, n_remote).
    """
    t1 = t + dt
    n_remote = 0
    tp = 1
    tr = 4
    for q in range(n_active):
        a = active[q]
        s0 = max(t, t_inf[a])
        s1 = min(t1, t_rec[a])
        if s1 <= s0:
            continue
        cut = min(max(t_det[a], s0), s1)
        pre, post = cut - s0, s1 - cut
        gid = lo + a
        r = region[a]
        if travel_fraction > 0.0 and uniform(seed, tr, step, gid, 0) < travel_fraction * (s1 - s0):
            exported[r] += 1
        for e in range(indptr[a], indptr[a + 1]):
            j = indices[e]
            lay = elayer[e]
            lam = rate[r, lay] * (pre + iso[lay] * post)
            if lam <= 0.0:
                continue
            local = lo <= j < hi
            if local and status[j - lo] != 0:
                continue            # not susceptible: the draw could change nothing
            if uniform(seed, tp, step, gid, j * 128 + lay) < -math.expm1(-lam):
                if local:
                    status[j - lo] = 4
                    new_local[n_new] = j - lo
                    n_new += 1
                else:
                    remote[n_remote] = j
                    n_remote += 1
    return n_new, n_remote


@numba.njit(cache=True)
def visitor_step(dt, step, seed, status, region, lo, hazard, new_local, n_new):
    """Infections by visitors: local susceptible agent ``a`` of region ``r`` is infected with
    probability ``1 - exp(-hazard[r] * dt)`` (draw keyed on (seed, step, agent)).

    hazard : (n_regions,) 1/day.  Appends to ``new_local`` from ``n_new``; returns the new count.
    """
    pv = 5
    for a in range(len(status)):
        if status[a] != 0:
            continue
        h = hazard[region[a]]
        if h > 0.0 and uniform(seed, pv, step, lo + a, 0) < -math.expm1(-h * dt):
            status[a] = 4
            new_local[n_new] = a
            n_new += 1
    return n_new


@numba.njit(cache=True)
def infect(ids, t_start, seed, lo, sigma, gamma, fixed_period, test_start, test_rate,
           status, t_inf, t_rec, t_det, region, counts, incidence, active, n_active):
    """Give newly infected local agents ``ids`` their periods and add them to ``active``.

    Latent period Exp(sigma) from ``t_start`` (sigma <= 0: none, SIR); infectious period
    Exp(gamma) or exactly 1/gamma (``fixed_period``); detection at max(t_inf, test_start)
    + Exp(test_rate) (test_rate <= 0: never).  Each is drawn once per agent, keyed on
    (seed, agent).  counts (n_regions, 4) int64 S/E/I/R and incidence (n_regions,) are
    updated.  Returns the new ``n_active``.
    """
    for k in range(len(ids)):
        a = ids[k]
        gid = lo + a
        lat = 0.0
        if sigma > 0.0:
            lat = -math.log1p(-uniform(seed, 2, 0, gid, 0)) / sigma
        if fixed_period:
            dur = 1.0 / gamma
        else:
            dur = -math.log1p(-uniform(seed, 3, 0, gid, 0)) / gamma
        t_inf[a] = t_start + lat
        t_rec[a] = t_start + lat + dur
        if test_rate > 0.0:
            t_det[a] = max(t_inf[a], test_start) - math.log1p(-uniform(seed, 6, 0, gid, 0)) / test_rate
        else:
            t_det[a] = np.inf
        r = region[a]
        counts[r, 0] -= 1
        incidence[r] += 1
        if lat > 0.0:
            status[a] = 1
            counts[r, 1] += 1
        else:
            status[a] = 2
            counts[r, 2] += 1
        active[n_active] = a
        n_active += 1
    return n_active


@numba.njit(cache=True)
def settle_step(t1, active, n_active, status, t_inf, t_rec, region, counts):
    """At the end of a step (time t1): E agents whose infectiousness began become I, agents
    whose infectious period ended become R (and leave ``active``).  Returns the new ``n_active``."""
    m = 0
    for q in range(n_active):
        a = active[q]
        r = region[a]
        st = status[a]
        if t_rec[a] <= t1:
            counts[r, st] -= 1
            counts[r, 3] += 1
            status[a] = 3
            continue
        if st == 1 and t_inf[a] <= t1:
            counts[r, 1] -= 1
            counts[r, 2] += 1
            status[a] = 2
        active[m] = a
        m += 1
    return m
