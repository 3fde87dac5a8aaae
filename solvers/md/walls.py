"""Walls of the profile axis: specular (``reflect``) or diffuse thermal (``thermal``).

Reduced LJ units: lengths sigma, velocities sigma/tau, temperature epsilon/k_B,
unit mass.

A *thermal wall* (diffuse, full accommodation; Tehver, Toigo, Koplik & Banavar,
Phys. Rev. E 57, R17, 1998) re-emits every particle that hits it with a velocity
drawn from the flux-weighted Maxwellian of a wall at temperature T moving
tangentially at ``u_wall``: the normal component has the Rayleigh density
(v_n / T) exp(-v_n^2 / 2T), pointing into the fluid; each tangential component is
normal with mean ``u_wall`` and variance T.  It is a no-slip boundary for a dense
fluid (the tangential momentum of every hitting particle is replaced by the
wall's) and a thermostat at the wall, so a sheared fluid's viscous heat leaves
through it.  A wall that starts moving at t = 0 is the sudden start of Couette
flow.

The algorithm is the same in ``md.lj`` (:func:`wall_collisions`, after the drift)
and ``md.lammps`` (LAMMPS's ``fix wall/reflect`` mirrors the position after the
drift; the adapter's ``fix external`` callback then redraws the velocity of every
atom that crossed the wall in that step, found with :func:`crossed`): a particle
found past the wall after the drift is mirrored back and gets the drawn velocity
as its half-step velocity.  The deviates are hashed from (seed, particle id,
step) as the Langevin noise (:func:`solvers.md.thermostats.gaussian`), so they do
not depend on the rank layout and a restored run continues bitwise.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .thermostats import gaussian

__all__ = ["REFLECT", "THERMAL", "WALL_KINDS", "wall_collisions", "crossed", "redraw", "WALL_SEED_OFFSET"]

REFLECT, THERMAL = 0, 1
WALL_KINDS = {"reflect": REFLECT, "thermal": THERMAL}
#: added to the solver's seed for the wall deviates, so they are not the Langevin ones
WALL_SEED_OFFSET = 0x5BD1E995


@njit(cache=True)
def redraw(v, i, pid, axis, sign, temperature, u_wall, dim, seed, step, xi):
    """Velocity of particle ``i`` (id ``pid``) leaving a thermal wall: Rayleigh
    normal component along ``sign`` (+1 from the wall at 0, -1 from the wall at L)
    and Gaussian tangential components around ``u_wall`` (3,) [sigma/tau]."""
    gaussian(seed, pid, step, xi)
    s = np.sqrt(temperature)
    k = 2
    for d in range(dim):
        if d == axis:
            # |(xi0, xi1)| is Rayleigh-distributed with unit scale
            v[i, d] = sign * s * np.sqrt(xi[0] * xi[0] + xi[1] * xi[1])
        else:
            v[i, d] = u_wall[d] + s * xi[k]
            k += 1


@njit(cache=True)
def wall_collisions(x, v, ids, n, axis, lo, hi, kind_lo, kind_hi, temperature, u_lo, u_hi, dim, seed, step):
    """Walls at ``lo`` and ``hi`` along ``axis``: particles past a wall are mirrored
    back; a specular wall reverses the normal velocity, a thermal one redraws the
    whole velocity (see :func:`redraw`).

    Parameters
    ----------
    x, v : (>= n, 3) float64, updated in place [sigma], [sigma/tau]
    ids : (>= n,) int64 particle ids (noise key)
    kind_lo, kind_hi : REFLECT or THERMAL
    u_lo, u_hi : (3,) float64 wall velocities [sigma/tau]
    """
    xi = np.empty(4)
    for i in range(n):
        if x[i, axis] < lo:
            x[i, axis] = 2.0 * lo - x[i, axis]
            if kind_lo == THERMAL:
                redraw(v, i, ids[i], axis, 1.0, temperature, u_lo, dim, seed, step, xi)
            else:
                v[i, axis] = -v[i, axis]
        elif x[i, axis] > hi:
            x[i, axis] = 2.0 * hi - x[i, axis]
            if kind_hi == THERMAL:
                redraw(v, i, ids[i], axis, -1.0, temperature, u_hi, dim, seed, step, xi)
            else:
                v[i, axis] = -v[i, axis]


@njit(cache=True)
def crossed(x, v, n, axis, lo, hi, dt):
    """-1/+1 for particles that a specular wall at ``lo``/``hi`` reflected in the
    drift just done, 0 otherwise.

    After a mirrored drift of length ``dt`` a particle sits closer to the wall than
    ``|v_n| dt`` and moves away from it; a particle that was not reflected and moves
    away is at least ``|v_n| dt`` from the wall (it started inside), so the test is
    exact up to round-off.
    """
    out = np.zeros(n, np.int64)
    for i in range(n):
        vn = v[i, axis]
        if vn > 0.0 and x[i, axis] - lo < vn * dt:
            out[i] = -1
        elif vn < 0.0 and hi - x[i, axis] < -vn * dt:
            out[i] = 1
    return out


@njit(cache=True)
def redraw_crossed(x, v, tags, n, axis, lo, hi, kind_lo, kind_hi, temperature, u_lo, u_hi, dim, seed, step, dt):
    """The thermal-wall half of :func:`wall_collisions` after a specular wall already
    mirrored the drift (LAMMPS's ``fix wall/reflect``): every particle that
    :func:`crossed` a thermal wall in this step gets a drawn velocity.  ``tags`` are
    1-based LAMMPS atom ids (the noise key is ``tag - 1``, md.lj's id); returns the
    number of particles redrawn."""
    side = crossed(x, v, n, axis, lo, hi, dt)
    xi = np.empty(4)
    count = 0
    for i in range(n):
        if side[i] == -1 and kind_lo == THERMAL:
            redraw(v, i, tags[i] - 1, axis, 1.0, temperature, u_lo, dim, seed, step, xi)
            count += 1
        elif side[i] == 1 and kind_hi == THERMAL:
            redraw(v, i, tags[i] - 1, axis, -1.0, temperature, u_hi, dim, seed, step, xi)
            count += 1
    return count


@njit(cache=True)
def wall_layer_ou(x, v, ids, n, axis, lo, hi, width, kind_lo, kind_hi, temperature, u_lo, u_hi, dim, c1, seed,
                  step):
    """Friction layers of the thermal walls: every particle closer than ``width`` [sigma] to a
    thermal wall gets the exact Ornstein-Uhlenbeck update towards the wall's velocity and
    temperature, v <- u_wall + c1 (v - u_wall) + sqrt((1 - c1^2) T) xi, c1 = exp(-dt/damping).

    Why: a flat wall that only re-emits the particles hitting it grips a dense fluid through
    the few particles of its first layer that reach it, and the fluid slips (slip length
    ~1-2 sigma measured in steady Couette flow at rho* = 0.81).  Coupling the whole first
    layer to the wall, as thermostatted wall atoms do through their potential (Thompson &
    Robbins 1990; Nie et al. 2004), removes most of that slip.
    """
    c2 = np.sqrt(1.0 - c1 * c1)
    s = c2 * np.sqrt(temperature)
    xi = np.empty(dim)
    for i in range(n):
        y = x[i, axis]
        if kind_lo == THERMAL and y < lo + width:
            u = u_lo
        elif kind_hi == THERMAL and y > hi - width:
            u = u_hi
        else:
            continue
        gaussian(seed, ids[i], step, xi)
        for d in range(dim):
            v[i, d] = u[d] + c1 * (v[i, d] - u[d]) + s * xi[d]
