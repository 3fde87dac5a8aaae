"""The IDM car-following update as a tight numba loop.

Vehicles live in one float64 array ``veh`` of shape (NCOL, n): one row per
quantity (:data:`COLUMNS`), one column per vehicle, vehicles sorted by
position.  Each quantity is contiguous, so the acceleration pass streams
through memory; migration packs ``veh[:, k:]`` into one buffer.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["COLUMNS", "NCOL", "X", "V", "ID", "CLS", "V0", "T", "S0", "A", "B", "LEN", "IV0", "ISAB",
           "idm_step", "ring_step", "ring_batch_step", "empty", "set_derived"]

# the last two are derived from the driver parameters (see set_derived): the kernel multiplies
# instead of dividing, which makes it ~1.5x faster
COLUMNS = ("x", "v", "id", "class", "v0", "T", "s0", "a", "b", "length", "inv_v0", "inv_2sqrt_ab")
X, V, ID, CLS, V0, T, S0, A, B, LEN, IV0, ISAB = range(len(COLUMNS))
NCOL = len(COLUMNS)


@numba.njit(cache=True, inline="always")
def _accel(v, inv_v0, delta, quartic):
    r = v * inv_v0
    if quartic:
        r *= r
        return 1.0 - r * r
    return 1.0 - r ** delta


@numba.njit(cache=True, inline="always")
def _interaction(s, v, vl, headway, s0, inv_2sqrt_ab):
    if s < 1e-3:
        s = 1e-3
    dyn = v * headway + v * (v - vl) * inv_2sqrt_ab
    if dyn < 0.0:
        dyn = 0.0
    q = (s0 + dyn) / s
    return q * q


@numba.njit(cache=True)
def idm_step(veh, lead, dt, delta, ballistic, acc, xold):
    """Advance every vehicle of ``veh`` by one step ``dt`` [s], in place.

    Accelerations use the state at the start of the step (parallel update):
    dv/dt = a[1 - (v/v0)^delta - (s*/s)^2], s* = s0 + max(0, vT + v dv/(2 sqrt(ab))),
    dv = v - v_leader, s = x_leader - l_leader - x (Treiber, Hennecke, Helbing 2000).

    Parameters
    ----------
    veh : ndarray, shape (NCOL, n)
        Vehicles sorted by ``x`` [m] (front bumper); x and v updated in place.
    lead : ndarray, shape (4,)
        Leader of the last vehicle: (present 0/1, x [m], v [m/s], length [m]).
    delta : float
        Acceleration exponent.
    ballistic : bool
        True: v += a dt, x += v dt + a dt^2/2 (stopping inside the step if v
        would turn negative). False: explicit Euler x += v dt, v += a dt.
    acc, xold : ndarray, shape (>= n,)
        Work space; ``xold`` receives the positions before the step.

    Notes
    -----
    Speeds are clipped at 0 and a vehicle's new front never passes its
    leader's old rear; since leaders never move backwards, vehicles can
    neither overlap nor reverse whatever the step.  Every vehicle's result
    depends only on its own and its leader's values, never on its index, so
    any split of the vehicles over arrays gives bitwise the same numbers.
    """
    n = veh.shape[1]
    if n == 0:
        return
    x, v, iv0, th, s0 = veh[X], veh[V], veh[IV0], veh[T], veh[S0]
    a, isab, ln = veh[A], veh[ISAB], veh[LEN]
    quartic = delta == 4.0
    for i in range(n - 1):                  # pass 1: accelerations from the old state
        f = _accel(v[i], iv0[i], delta, quartic)
        f -= _interaction(x[i + 1] - ln[i + 1] - x[i], v[i], v[i + 1], th[i], s0[i], isab[i])
        acc[i] = a[i] * f
    i = n - 1
    f = _accel(v[i], iv0[i], delta, quartic)
    if lead[0] > 0.0:
        f -= _interaction(lead[1] - lead[3] - x[i], v[i], lead[2], th[i], s0[i], isab[i])
    acc[i] = a[i] * f
    for i in range(n):                      # pass 2: kinematics; x[i + 1] is still the old value
        xi, vi, ai = x[i], v[i], acc[i]
        vn = vi + ai * dt
        if ballistic:
            if vn < 0.0:
                xn = xi - 0.5 * vi * vi / ai
                vn = 0.0
            else:
                xn = xi + (vi + 0.5 * ai * dt) * dt
        else:
            xn = xi + vi * dt
            if vn < 0.0:
                vn = 0.0
        if i + 1 < n:
            has, cap, vl = True, x[i + 1] - ln[i + 1], v[i + 1]
        else:
            has, cap, vl = lead[0] > 0.0, lead[1] - lead[3], lead[2]
        if has and xn > cap:
            xn = cap if cap > xi else xi
            if vn > vl:
                vn = vl
        xold[i] = xi
        x[i] = xn
        v[i] = vn


def set_derived(veh: np.ndarray) -> None:
    """Fill the derived columns 1/v0 and 1/(2 sqrt(ab)) from the driver parameters."""
    veh[IV0] = 1.0 / veh[V0]
    veh[ISAB] = 1.0 / (2.0 * np.sqrt(veh[A] * veh[B]))


def empty(n: int = 0) -> np.ndarray:
    """A vehicle array with ``n`` zeroed vehicles, shape (NCOL, n)."""
    return np.zeros((NCOL, n))


@numba.njit(cache=True)
def ring_step(veh, L, delta, ballistic, dt, lead, acc, xold):
    """One step of a whole ring held by one array: :func:`idm_step`, then the wrap at x = L.

    ``veh`` (NCOL, n) holds the ring's vehicles sorted by x in [0, L); updated
    in place.  The leader of the front vehicle is the rear one, a lap ahead.
    Vehicles that pass L move to the front with x - L, as ``IDMSolver``'s
    general path does by concatenation, so the result is bitwise the same.
    ``lead`` (4,), ``acc`` and ``xold`` (>= n) are work space.  Returns the
    number of vehicles that passed x = L.
    """
    n = veh.shape[1]
    if n == 0:
        return 0
    lead[0] = 1.0
    lead[1] = veh[X, 0] + L
    lead[2] = veh[V, 0]
    lead[3] = veh[LEN, 0]
    idm_step(veh, lead, dt, delta, ballistic, acc, xold)
    k = n
    while k > 0 and veh[X, k - 1] >= L:
        k -= 1
    m = n - k
    if m == 0:
        return 0
    for c in range(veh.shape[0]):            # rotate the m leavers to the front
        row = veh[c]
        for j in range(m):
            acc[j] = row[k + j]
        for j in range(k - 1, -1, -1):
            row[j + m] = row[j]
        for j in range(m):
            row[j] = acc[j]
    for j in range(m):
        veh[X, j] -= L
    return m


@numba.njit(cache=True)
def ring_batch_step(vehs, lengths, deltas, ballistic, dt, lead, acc, xold, crossed):
    """:func:`ring_step` on many one-rank rings in one call.

    Parameters
    ----------
    vehs : numba.typed.List of ndarray, shape (NCOL, n_r)
        Each ring's vehicles, updated in place.
    lengths, deltas : ndarray, shape (n_rings,)
        Ring lengths L_r [m] and acceleration exponents.
    ballistic : ndarray of bool, shape (n_rings,)
    lead : ndarray, shape (4,); acc, xold : ndarray, shape (>= max n_r,)
        Work space.
    crossed : ndarray of int64, shape (n_rings,)
        Receives the number of vehicles that passed x = L_r.
    """
    for r in range(len(vehs)):
        crossed[r] = ring_step(vehs[r], lengths[r], deltas[r], ballistic[r], dt, lead, acc, xold)
