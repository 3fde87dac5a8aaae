"""Numba kernels of the Lennard-Jones solver: neighbour lists, forces, integrator.

All arrays hold three components per particle, shape ``(n, 3)`` float64, even
in 2D runs (the z components are then zero and stay zero), so one compiled
kernel serves both dimensions.  Reduced LJ units throughout: lengths in sigma,
energies in epsilon, mass 1, time in tau = sigma*sqrt(m/epsilon).

Particle layout on a rank: rows ``0 .. nlocal-1`` are the rank's own particles
("locals"), rows ``nlocal .. nall-1`` are ghost copies (periodic images and
neighbours' particles near the sub-domain faces).

The neighbour list is a *half* list in CSR form (``start[i] .. start[i+1]``
indexes ``nbr``): pair (i, j) is stored once, under the local particle i, when
``j > i``.  Because ghosts sit after the locals, every local-ghost pair is
stored by its local partner, and the same physical pair is stored by the rank
owning the other particle too ("newton off" across ranks, as LAMMPS calls it):
it costs a few percent of duplicate pair evaluations at sub-domain faces but
needs no reverse communication of ghost forces.  Energies and virials of
local-ghost pairs are therefore counted half on each side.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["stencil", "cell_sort_keys", "build_neighbor_list", "lj_forces", "lj_per_atom",
           "axpy", "max_displacement2", "reflect", "pack_rows"]


def stencil(cell_len: np.ndarray, cutoff: float, dim: int) -> np.ndarray:
    """Rows of the cell stencil: cells that can hold a particle within ``cutoff``.

    Cells are ``cell_len`` wide (shape (3,)); offsets whose nearest corners are
    farther apart than ``cutoff`` are pruned.  Because z varies fastest in the
    linear cell index, the cells of one (ox, oy) pair form a contiguous run, so
    the stencil is stored as runs.

    Returns
    -------
    ndarray, shape (k, 4), int64: ox, oy, oz_min, oz_max per run.
    """
    reach = [int(np.ceil(cutoff / c)) if d < dim else 0 for d, c in enumerate(cell_len)]
    rows = []
    for a in range(-reach[0], reach[0] + 1):
        for b in range(-reach[1], reach[1] + 1):
            zs = [c for c in range(-reach[2], reach[2] + 1)
                  if sum((max(abs(o) - 1, 0) * cell_len[d]) ** 2 for d, o in enumerate((a, b, c)))
                  < cutoff * cutoff]
            if zs:
                rows.append((a, b, min(zs), max(zs)))
    return np.array(rows, dtype=np.int64)


@njit(cache=True)
def cell_sort_keys(x, n, lo, inv_len, ncell):
    """Linear cell index (z fastest) of particles ``0..n-1``, clamped to the grid;
    sorting by it gives memory locality."""
    keys = np.empty(n, np.int64)
    for i in range(n):
        key = 0
        for d in range(3):
            k = int(np.floor((x[i, d] - lo[d]) * inv_len[d]))
            key = key * ncell[d] + min(max(k, 0), ncell[d] - 1)
        keys[i] = key
    return keys


@njit(cache=True)
def build_neighbor_list(x, nlocal, nall, lo, inv_len, ncell, runs, rlist2):
    """Half Verlet list of the locals against locals and ghosts.

    Requires the locals to be sorted by cell (:func:`cell_sort_keys`), which
    makes ``j > i`` exactly the rule "pair stored once": a local j in a cell
    before i's has a smaller index, one in a later cell a larger one, and ghosts
    (indices >= nlocal) always pass.  Runs of cells entirely before i's cell that
    hold no ghost are skipped, so interior particles scan only half the stencil.
    The grid must have a margin of empty cells as wide as the stencil so that no
    run leaves it (see ``LJSolver._grid``).

    Parameters
    ----------
    x : (nall, 3) float64 positions [sigma]
    nlocal, nall : int
    lo : (3,) float64, lower corner of the binned region [sigma]
    inv_len : (3,) float64, inverse cell lengths [1/sigma]
    ncell : (3,) int64, cells per axis
    runs : (k, 4) int64, stencil runs (see :func:`stencil`)
    rlist2 : float, squared list radius (rc + skin)^2 [sigma^2]

    Returns
    -------
    start : (nlocal + 1,) int64
    nbr : (start[-1],) int32
    """
    ntot = ncell[0] * ncell[1] * ncell[2]
    keys = cell_sort_keys(x, nall, lo, inv_len, ncell)
    head = np.zeros(ntot + 1, np.int64)
    ghosts = np.zeros(ntot + 1, np.int64)
    for i in range(nall):
        head[keys[i] + 1] += 1
        if i >= nlocal:
            ghosts[keys[i] + 1] += 1
    for c in range(ntot):
        head[c + 1] += head[c]
        ghosts[c + 1] += ghosts[c]
    fill = head[:-1].copy()
    atoms = np.empty(nall, np.int64)
    xs = np.empty((nall, 3))
    for i in range(nall):
        k = fill[keys[i]]
        atoms[k] = i
        xs[k, 0] = x[i, 0]
        xs[k, 1] = x[i, 1]
        xs[k, 2] = x[i, 2]
        fill[keys[i]] += 1
    nrun = runs.shape[0]
    first = np.empty(nrun, np.int64)
    last = np.empty(nrun, np.int64)
    backward = np.empty(nrun, np.bool_)
    for r in range(nrun):
        base = (runs[r, 0] * ncell[1] + runs[r, 1]) * ncell[2]
        first[r] = base + runs[r, 2]
        last[r] = base + runs[r, 3]
        backward[r] = runs[r, 0] < 0 or (runs[r, 0] == 0 and runs[r, 1] < 0)

    start = np.zeros(nlocal + 1, np.int64)
    cap = max(24 * nlocal, 1024)
    nbr = np.empty(cap, np.int32)
    m = 0
    for i in range(nlocal):
        ci = keys[i]
        xi, yi, zi = x[i, 0], x[i, 1], x[i, 2]
        for r in range(nrun):
            c0 = ci + first[r]
            c1 = ci + last[r] + 1
            if backward[r] and ghosts[c1] == ghosts[c0]:
                continue
            k0, k1 = head[c0], head[c1]
            if m + k1 - k0 > cap:
                cap = 2 * cap + k1 - k0
                grown = np.empty(cap, np.int32)
                grown[:m] = nbr[:m]
                nbr = grown
            for k in range(k0, k1):
                dx = xi - xs[k, 0]
                dy = yi - xs[k, 1]
                dz = zi - xs[k, 2]
                j = atoms[k]
                # branch-free compaction: the test fails about half the time,
                # unpredictably, and a mispredicted branch costs more than the store
                nbr[m] = j
                m += (dx * dx + dy * dy + dz * dz < rlist2) & (j > i)
        start[i + 1] = m
    return start, nbr[:m].copy()


@njit(cache=True)
def lj_forces(x, nlocal, start, nbr, rc2, eshift, f, eflag, virial):
    """Lennard-Jones forces on the locals; energy and virial when ``eflag``.

    u(r) = 4 (r^-12 - r^-6) - eshift for r < rc (the LAMMPS ``lj/cut`` formula).

    Parameters
    ----------
    x : (nall, 3) float64 positions [sigma]
    start, nbr : half neighbour list (see :func:`build_neighbor_list`)
    rc2 : float, squared cutoff [sigma^2]
    eshift : float, energy shift u(rc) or 0 [epsilon]
    f : (nall, 3) float64, rows 0..nlocal-1 overwritten with the forces on the
        locals [epsilon/sigma]; ghost rows receive partial sums to be ignored
    eflag : bool, accumulate energy and virial
    virial : (6,) float64, overwritten with sum over pairs of r_a f_b
        (xx, yy, zz, xy, xz, yz) [epsilon] when ``eflag``

    Returns
    -------
    float, potential energy of this rank's share [epsilon] (0 unless ``eflag``)
    """
    for i in range(f.shape[0]):
        f[i, 0] = 0.0
        f[i, 1] = 0.0
        f[i, 2] = 0.0
    pe = 0.0
    w0 = w1 = w2 = w3 = w4 = w5 = 0.0
    for i in range(nlocal):
        xi, yi, zi = x[i, 0], x[i, 1], x[i, 2]
        fx = fy = fz = 0.0
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            dx = xi - x[j, 0]
            dy = yi - x[j, 1]
            dz = zi - x[j, 2]
            rsq = dx * dx + dy * dy + dz * dz
            # branch-free cutoff: ~30% of listed pairs lie in the skin, at random,
            # and masking is cheaper than mispredicted branches (rsq > 0 always)
            inside = rsq < rc2
            r2inv = 1.0 / rsq
            r6inv = r2inv * r2inv * r2inv
            fpair = r6inv * (48.0 * r6inv - 24.0) * r2inv * inside
            fx += dx * fpair
            fy += dy * fpair
            fz += dz * fpair
            # ghost rows of f are scratch: writing them avoids a branch
            f[j, 0] -= dx * fpair
            f[j, 1] -= dy * fpair
            f[j, 2] -= dz * fpair
            if eflag:
                share = 1.0 if j < nlocal else 0.5
                pe += share * inside * (r6inv * (4.0 * r6inv - 4.0) - eshift)
                s = share * fpair
                w0 += s * dx * dx
                w1 += s * dy * dy
                w2 += s * dz * dz
                w3 += s * dx * dy
                w4 += s * dx * dz
                w5 += s * dy * dz
        f[i, 0] += fx
        f[i, 1] += fy
        f[i, 2] += fz
    if eflag:
        virial[0] = w0
        virial[1] = w1
        virial[2] = w2
        virial[3] = w3
        virial[4] = w4
        virial[5] = w5
    return pe


@njit(cache=True)
def lj_per_atom(x, nlocal, start, nbr, rc2, eshift, eatom, watom):
    """Per-particle energy and virial of the locals (pair terms split evenly).

    Parameters
    ----------
    eatom : (>= nlocal,) float64, overwritten [epsilon]
    watom : (>= nlocal, 6) float64, overwritten, (xx, yy, zz, xy, xz, yz) [epsilon]
    """
    for i in range(nlocal):
        eatom[i] = 0.0
        for c in range(6):
            watom[i, c] = 0.0
    for i in range(nlocal):
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            dx = x[i, 0] - x[j, 0]
            dy = x[i, 1] - x[j, 1]
            dz = x[i, 2] - x[j, 2]
            rsq = dx * dx + dy * dy + dz * dz
            if rsq < rc2:
                r2inv = 1.0 / rsq
                r6inv = r2inv * r2inv * r2inv
                fpair = r6inv * (48.0 * r6inv - 24.0) * r2inv
                e = 0.5 * (r6inv * (4.0 * r6inv - 4.0) - eshift)
                s = 0.5 * fpair
                w = (s * dx * dx, s * dy * dy, s * dz * dz, s * dx * dy, s * dx * dz, s * dy * dz)
                eatom[i] += e
                for c in range(6):
                    watom[i, c] += w[c]
                if j < nlocal:
                    eatom[j] += e
                    for c in range(6):
                        watom[j, c] += w[c]


@njit(cache=True)
def axpy(y, a, x, n):
    """y[:n] += a * x[:n] for (>= n, 3) arrays: the kick (v += dt/2 f, unit mass)
    and the drift (x += dt v) of velocity Verlet."""
    for i in range(n):
        for d in range(3):
            y[i, d] += a * x[i, d]


@njit(cache=True)
def max_displacement2(x, x0, n):
    """Largest squared displacement of particles ``0..n-1`` since ``x0`` [sigma^2]."""
    m = 0.0
    for i in range(n):
        dx = x[i, 0] - x0[i, 0]
        dy = x[i, 1] - x0[i, 1]
        dz = x[i, 2] - x0[i, 2]
        r = dx * dx + dy * dy + dz * dz
        if r > m:
            m = r
    return m


@njit(cache=True)
def reflect(x, v, n, axis, lo, hi):
    """Specular reflection at walls ``lo`` and ``hi`` along ``axis`` (as LAMMPS
    ``fix wall/reflect``): a particle past a wall is mirrored back and its normal
    velocity reversed."""
    for i in range(n):
        if x[i, axis] < lo:
            x[i, axis] = 2.0 * lo - x[i, axis]
            v[i, axis] = -v[i, axis]
        elif x[i, axis] > hi:
            x[i, axis] = 2.0 * hi - x[i, axis]
            v[i, axis] = -v[i, axis]


@njit(cache=True)
def pack_rows(src, rows, shift, out):
    """out[k] = src[rows[k]] + shift (ghost positions for one halo swap)."""
    for k in range(rows.shape[0]):
        r = rows[k]
        for d in range(3):
            out[k, d] = src[r, d] + shift[d]
