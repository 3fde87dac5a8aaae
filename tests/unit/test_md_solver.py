"""md.lj: lattices, conservation laws, thermostats, coupling inputs, state/restore.

Each test names its reference: an exact property of the model (lattice geometry,
momentum balance, kinetic-energy conservation at specular walls, exact velocity
rescaling) or an independent count.  All run on one rank (MPI.COMM_SELF); the
multi-rank behaviour is in tests/mpi/test_md_ranks.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from msorch.solver import Solver
from solvers.md.kernels import stencil
from solvers.md.lattice import lattice, maxwell_boltzmann
from solvers.md.lj import INPUTS, PROFILES, SCALARS, LJParams, LJSolver
from solvers.md.thermostats import gaussian


def make(**kw) -> LJSolver:
    solver = LJSolver(MPI.COMM_SELF, LJParams(**kw))
    solver.initialize(0.0)
    return solver


def min_image_distances(x, box, dim):
    d = x[:, None, :dim] - x[None, :, :dim]
    d -= box[:dim] * np.round(d / box[:dim])
    r = np.sqrt(np.sum(d * d, axis=-1))
    return r[np.triu_indices(len(x), 1)]


@pytest.mark.parametrize("kind, cells, density, per_cell, nn", [
    ("fcc", (3, 4, 5), 0.8442, 4, lambda a: a / np.sqrt(2)),
    ("sc", (4, 4, 4), 0.7, 1, lambda a: a),
    ("square", (6, 5), 0.6, 1, lambda a: a),
    ("hex", (6, 4), 0.8, 2, lambda a: a),
])
def test_lattice_geometry(kind, cells, density, per_cell, nn):
    """Particle count = sites per cell x cells, number density as asked, and the
    nearest-neighbour distance of the ideal lattice (fcc a/sqrt2, sc/square/hex a)
    with a the lattice constant from the density: exact up to rounding (1e-12)."""
    dim = len(cells)
    x, box = lattice(kind, cells, density)
    assert len(x) == per_cell * np.prod(cells)
    assert len(x) / np.prod(box[:dim]) == pytest.approx(density, rel=1e-12)
    area_per_site = {"fcc": 0.25, "sc": 1.0, "square": 1.0, "hex": np.sqrt(3) / 2}[kind]
    a = (1 / (area_per_site * density)) ** (1 / dim)  # site volume = area_per_site * a^dim
    assert min_image_distances(x, box, dim).min() == pytest.approx(nn(a), rel=1e-12)
    assert np.all(x[:, :dim] > 0) and np.all(x[:, :dim] < box[:dim])
    assert np.all(x[:, dim:] == 0)


def test_maxwell_boltzmann_is_seeded_momentum_free_and_at_temperature():
    """Zero total momentum and sum v^2 / (dim (N-1)) = T exactly (1e-12); the same
    seed gives the same velocities, another seed different ones; the components
    are Gaussian (Kolmogorov-Smirnov p > 1e-3 on 3000 samples)."""
    from scipy import stats
    v = maxwell_boltzmann(1000, 3, 1.5, 7)
    assert np.abs(v.sum(axis=0)).max() < 1e-10
    assert np.sum(v * v) / (3 * 999) == pytest.approx(1.5, rel=1e-12)
    assert np.array_equal(v, maxwell_boltzmann(1000, 3, 1.5, 7))
    assert not np.allclose(v, maxwell_boltzmann(1000, 3, 1.5, 8))
    assert stats.kstest(v.ravel() / v.std(), "norm").pvalue > 1e-3
    assert np.all(maxwell_boltzmann(10, 2, 1.0, 1)[:, 2] == 0)


def test_counter_based_noise_is_standard_normal_and_keyed():
    """The Langevin noise (hash of seed, particle id, step): mean 0 and variance 1
    within 5 standard errors over 60,000 deviates, no correlation between
    consecutive steps (|r| < 0.02) and bitwise reproducible for the same key."""
    out = np.empty(3)
    xs = np.empty((20000, 3))
    for k in range(20000):
        gaussian(11, k % 200, k // 200, out)
        xs[k] = out
    n = xs.size
    assert abs(xs.mean()) < 5 / np.sqrt(n)
    assert abs(xs.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.corrcoef(xs[:-200, 0], xs[200:, 0])[0, 1]) < 0.02
    again = np.empty(3)
    gaussian(11, 199, 99, again)
    assert np.array_equal(again, xs[-1])


def test_stencil_covers_every_cell_within_cutoff():
    """Brute force: every offset whose cells come closer than the cutoff is in a run."""
    cell = np.array([1.4, 1.5, 1.6])
    runs = stencil(cell, 2.8, 3)
    have = {(a, b, c) for a, b, lo, hi in runs for c in range(lo, hi + 1)}
    for a in range(-3, 4):
        for b in range(-3, 4):
            for c in range(-3, 4):
                gap = sum((max(abs(o) - 1, 0) * cell[d]) ** 2 for d, o in enumerate((a, b, c)))
                assert ((a, b, c) in have) == (gap < 2.8 ** 2)


def test_neighbor_list_has_exactly_the_pairs_within_rlist():
    """The half list equals the brute-force set of (local, any) pairs closer than
    rc + skin, each stored once (reference: all-pairs distances with the same ghosts)."""
    s = make(cells=(4, 4, 4), density=0.9, temperature=1.0, rc=2.5)
    for _ in range(7):
        s.advance(0.0, 0.005)
    n, x = s.nlocal, s.x
    got = {(i, int(j)) for i in range(n) for j in s.nbr[s.start[i]:s.start[i + 1]]}
    xb = s.domain.borders(s.x_build)
    r2 = np.sum((xb[:n, None, :] - xb[None, :, :]) ** 2, axis=-1)
    want = {(i, j) for i, j in zip(*np.nonzero(r2 < s.rg ** 2)) if j > i}
    assert got == want
    assert len(got) == len(s.nbr)
    assert x.shape == xb.shape


def test_body_force_momentum_balance():
    """Pair forces cancel (Newton's third law), so under a uniform body force F per
    particle the total momentum grows by N F dt per step exactly (velocity Verlet),
    up to rounding: 1e-9 relative after 100 steps.  The force, put before step 1,
    holds at the end of the step (Solver API), so step 1's first half kick still
    uses the force-free state: N F dt (100 - 1/2) in all."""
    s = make(cells=(4, 4, 4), density=0.8, temperature=1.0, rc=2.5, n_bins=3)
    force = np.tile([0.2, -0.1, 0.05], (3, 1))
    s.put("body_force", force)
    p0 = s.v[:s.nlocal].sum(axis=0)
    for _ in range(100):
        s.advance(0.0, 0.004)
    dp = s.v[:s.nlocal].sum(axis=0) - p0
    assert dp == pytest.approx(s.n_total * 99.5 * 0.004 * force[0], rel=1e-9)


def test_reflecting_walls_keep_particles_in_and_conserve_energy():
    """Specular walls (z) conserve kinetic energy, so with the shifted potential the
    total energy stays within 1e-3 per particle over 400 steps (same bound as the
    periodic NVE test) and no particle leaves [0, L_z]."""
    s = make(cells=(4, 4, 4), density=0.7, temperature=1.5, rc=2.5, shift=True, periodic=(True, True, False))
    e0 = s.observables()["total_energy"][0]
    for _ in range(400):
        s.advance(0.0, 0.005)
    z = s.x[:s.nlocal, 2]
    assert z.min() >= 0 and z.max() <= s.domain.box[2]
    assert abs(s.observables()["total_energy"][0] - e0) / s.n_total < 1e-3


def test_profiles_are_consistent_with_global_observables():
    """Exact partitions (1e-10): bin counts sum to N; the bins' volume-weighted
    stress plus the streaming part sum_b n_b u_b u_b equals the global stress
    times V (per-atom virials partition the pair virial); the kinetic energy
    equals sum_b [dim (n_b - 1) T_b / 2 + n_b |u_b|^2 / 2]."""
    s = make(cells=(5, 5, 5), density=0.8, temperature=1.2, rc=2.5, n_bins=4)
    for _ in range(50):
        s.advance(0.0, 0.005)
    o = s.observables()
    box, dim = s.domain.box, 3
    vol_b = s.bins.volumes(box, dim)
    n_b = o["density_profile"] * vol_b
    assert n_b.sum() == pytest.approx(500, rel=1e-12)
    u = o["velocity_profile"]
    stream = np.einsum("b,bi,bj->ij", n_b, u, u).ravel()
    total = (o["stress_profile"] * vol_b[:, None]).sum(axis=0) - stream
    assert total == pytest.approx(o["stress"][0] * np.prod(box), rel=1e-10, abs=1e-10)
    ke = np.sum(dim * (n_b - 1) * o["temperature_profile"] / 2 + n_b * np.sum(u * u, axis=1) / 2)
    assert ke == pytest.approx(o["kinetic_energy"][0], rel=1e-10)


def test_velocity_rescaling_hits_band_targets_and_leaves_the_rest():
    """Rescaling in a band [0, L/2) with per-bin targets: after a step each bin in
    the band has exactly its target temperature and streaming velocity (1e-10);
    particles outside the band keep the velocities plain velocity Verlet gives them
    (compared with an NVE twin started from the same state)."""
    kw = dict(cells=(6, 4, 4), density=0.8, temperature=1.0, rc=2.5, n_bins=4)
    s = make(ensemble="rescale", thermostat_band=(0.0, 0.5 * 6 * (4 / 0.8) ** (1 / 3)), **kw)
    twin = make(**kw)
    targets = np.array([0.6, 1.4, 2.0, 2.0])
    vel = np.zeros((4, 3))
    vel[:, 1] = [0.3, -0.2, 0.0, 0.0]
    for tw in (s, twin):
        tw.put("target_temperature", targets)
        tw.put("target_velocity", vel)
    s.advance(0.0, 0.005)
    twin.advance(0.0, 0.005)
    o = s.observables()
    assert o["temperature_profile"][:2] == pytest.approx(targets[:2], rel=1e-10)
    assert o["velocity_profile"][:2] == pytest.approx(vel[:2], abs=1e-10)
    outside = s._groups() < 0
    assert outside.sum() > 100
    by_id = dict(zip(twin.ids[:twin.nlocal], twin.v[:twin.nlocal]))
    for i in np.flatnonzero(outside):
        assert np.array_equal(s.v[i], by_id[s.ids[i]])


def test_langevin_holds_temperature_of_a_dilute_gas():
    """A dilute gas (rho = 0.01, so nearly ideal) under Langevin dynamics samples the
    Maxwell distribution at the target: mean kinetic temperature N/(N-1) T within
    4 standard errors (samples 1 tau apart, the damping time, are ~independent)."""
    s = make(cells=(6, 6, 6), density=0.01, temperature=2.0, rc=2.5, ensemble="langevin", damping=0.5)
    temps = []
    for k in range(4000):
        s.advance(0.0, 0.01)
        if k % 100 == 99:
            temps.append(s.observables()["temperature"][0])
    temps = np.array(temps[5:])
    expected = 2.0 * 216 / 215
    assert abs(temps.mean() - expected) < 4 * temps.std(ddof=1) / np.sqrt(len(temps))


def test_strain_deforms_box_affinely():
    """An imposed strain (0.1, 0, -0.05) scales the box and every coordinate by
    (1 + strain) (exact up to rounding, checked with dt = 0) and the density by
    1/prod(1 + strain); bins stretch with the box."""
    s = make(cells=(5, 5, 5), density=0.8, temperature=1.0, rc=2.5, n_bins=5)
    x0 = dict(zip(s.ids[:s.nlocal], s.x[:s.nlocal].copy()))
    box0 = s.domain.box.copy()
    strain = np.array([[0.1, 0.0, -0.05]])
    s.put("strain", strain)
    s.advance(0.0, 0.0)
    assert s.domain.box == pytest.approx(box0 * (1 + strain[0]), rel=1e-14)
    for i, x in zip(s.ids[:s.nlocal], s.x[:s.nlocal]):
        assert x == pytest.approx(np.mod(x0[i] * (1 + strain[0]), s.domain.box), rel=1e-12, abs=1e-12)
    dens = s.observables()["density_profile"].mean()
    assert dens == pytest.approx(0.8 / np.prod(1 + strain[0]), rel=1e-12)
    assert s.bins.edges[-1] == pytest.approx(s.domain.box[0], rel=1e-14)


def test_state_restore_continues_bitwise_in_a_fresh_solver():
    """state() after 150 Langevin steps with inputs and a strain; 150 more steps;
    a *new* solver instance restored from the state runs the same 150 steps: all
    arrays bitwise equal (noise keyed by the restored step counter, list rebuilt
    from the saved build positions)."""
    kw = dict(cells=(5, 5, 5), density=0.8, temperature=1.0, rc=2.5, ensemble="langevin", n_bins=5,
              thermostat_band=(0.0, 4.0))
    a = make(**kw)
    a.put("body_force", np.tile([0.1, 0.0, 0.0], (5, 1)))
    a.put("strain", np.array([[0.02, 0.0, 0.0]]))
    for _ in range(150):
        a.advance(0.0, 0.005)
    snap = {k: v.copy() for k, v in a.state().items()}
    for _ in range(150):
        a.advance(0.0, 0.005)
    b = make(**kw)
    b.restore(snap)
    for _ in range(150):
        b.advance(0.0, 0.005)
    sa, sb = a.state(), b.state()
    assert a.n_builds > 2
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    assert a.observables()["total_energy"][0] == b.observables()["total_energy"][0]


def test_fields_and_results_shapes():
    """fields() declares every output/input with components dim*dim for the stress;
    get() and results() return arrays of the declared shapes on the bin centres."""
    s = make(dim=2, lattice="hex", cells=(8, 5), density=0.8, temperature=1.0, rc=2.5, n_bins=6)
    f = s.fields()
    outs, ins = LJSolver.field_names(s.params)
    assert set(f) == set(outs) | set(ins) and set(ins) == set(INPUTS)
    assert f["stress"].components == 4 and f["stress_profile"].components == 4
    for name in outs:
        assert s.get(name).shape == f[name].shape, name
    res = s.results()
    whole_box = {f"box/{n}" for n in SCALARS + ("stress", "stress_mean")}
    assert set(res) == whole_box | set(PROFILES) | {"velocity_profile_mean"}
    assert all(len(v) == len(s.result_points()) == 6 for k, v in res.items() if k not in whole_box)
    assert all(len(res[k]) == len(s.result_sets()["box"]) == 1 for k in whole_box)
    assert issubclass(LJSolver, Solver)


def test_check_reports_inconsistent_settings():
    problems = LJSolver.check(LJParams(dim=2, lattice="fcc", cells=(3, 3, 3), tail=True,
                                       periodic=(True, False)))
    keys = {p[0] for p in problems}
    assert {"lattice", "cells", "tail"} <= keys
    assert LJSolver.check(LJParams()) == []
