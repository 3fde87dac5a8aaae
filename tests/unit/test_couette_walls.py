"""Thermal (diffuse) walls, the filled box and running averages of md.lj / md.lammps.

References: the flux-weighted Maxwellian of a wall at temperature T moving at U
(Tehver, Toigo, Koplik & Banavar, PRE 57, R17, 1998): tangential components
normal with mean U and variance T; normal component Rayleigh, mean sqrt(pi T / 2),
second moment 2T.  md.lammps against md.lj: the same algorithm on the same initial
state (LAMMPS's wall/reflect mirror plus the adapter's redraw of crossed atoms vs
md.lj's kernel), the same hashed deviates, so trajectories agree to round-off
amplified by chaos over 200 steps (measured ~1e-12; asserted 1e-8).
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from mpi4py import MPI

from solvers.md.lj import LJParams, LJSolver, filled_box
from solvers.md.walls import REFLECT, THERMAL, wall_collisions

T, U = 1.1, 0.5
CHANNEL = dict(dim=3, box=(5.0, 10.0, 5.0), density=0.813, temperature=T, rc=2.2, seed=3,
               periodic=(True, False, True), profile_axis=1, n_bins=4, wall_lo="thermal", wall_hi="thermal",
               wall_velocity_lo=(U, 0.0, 0.0))


def test_emitted_velocities_are_the_moving_wall_maxwellian():
    """200,000 particles just past the wall at 0 (and as many past L): 5-sigma statistical bounds."""
    n = 200_000
    rng = np.random.default_rng(1)
    x = np.zeros((2 * n, 3))
    x[:n, 1] = -rng.uniform(0, 0.01, n)
    x[n:, 1] = 10.0 + rng.uniform(0, 0.01, n)
    v = rng.standard_normal((2 * n, 3))
    ids = np.arange(2 * n, dtype=np.int64)
    u_lo, u_hi = np.array([U, 0.0, 0.0]), np.array([0.0, 0.0, -U])
    x_before = x.copy()
    wall_collisions(x, v, ids, 2 * n, 1, 0.0, 10.0, THERMAL, THERMAL, T, u_lo, u_hi, 3, 99, 7)
    assert np.allclose(x[:n, 1], -x_before[:n, 1]) and np.allclose(x[n:, 1], 20.0 - x_before[n:, 1])
    se = 5 * np.sqrt(T / n)
    for part, sign, u in ((slice(0, n), 1.0, u_lo), (slice(n, 2 * n), -1.0, u_hi)):
        vp = v[part]
        assert np.all(sign * vp[:, 1] > 0)
        for d in (0, 2):
            assert abs(vp[:, d].mean() - u[d]) < se
            assert abs(vp[:, d].var() - T) < 5 * T * np.sqrt(2 / n)
        assert abs(sign * vp[:, 1].mean() - np.sqrt(np.pi * T / 2)) < se
        assert abs(np.mean(vp[:, 1] ** 2) - 2 * T) < 5 * 2 * T * np.sqrt(1 / n)
    # a specular wall only reverses the normal component
    x2, v2 = x_before.copy(), np.ones((2 * n, 3))
    wall_collisions(x2, v2, ids, 2 * n, 1, 0.0, 10.0, REFLECT, REFLECT, T, u_lo, u_hi, 3, 99, 7)
    assert np.all(v2[:, [0, 2]] == 1.0) and np.all(v2[:, 1] == -1.0)


def test_filled_box_has_the_density_and_no_overlaps():
    """round(rho V) particles, all inside, no pair closer than 0.9 sigma (grid sites at
    least box/ceil(box/spacing) apart per axis, spacing (V/N)^(1/3) = 1.07 sigma here)."""
    x, box = filled_box((5.0, 50.0, 5.0), 0.813, 3, 4)
    assert len(x) == round(0.813 * 1250) and np.array_equal(box, [5.0, 50.0, 5.0])
    assert np.all((x > 0) & (x < box))
    from scipy.spatial import cKDTree
    d, _ = cKDTree(x, boxsize=None).query(x, k=2)
    assert d[:, 1].min() >= 0.9
    problems = LJSolver.check(LJParams(**{**CHANNEL, "periodic": (True, True, True), "box": (1.0, 2.0),
                                          "wall_velocity_hi": (0.0, 0.3, 0.0), "wall_hi": "reflect"}))
    keys = {k for k, _, _ in problems}
    assert {"box", "wall_lo", "wall_velocity_hi"} <= keys, problems


def test_moving_wall_state_restore_is_bitwise_and_average_is_the_window_mean():
    """md.lj with thermal walls and running averages: a restored run continues bitwise
    (the wall deviates are keyed by id and step, the ring is in the state); the running
    mean equals the count-weighted mean of the per-step bin sums it was built from."""
    s = LJSolver(MPI.COMM_SELF, LJParams(**CHANNEL, average_steps=20))
    s.initialize(0.0)
    for k in range(30):
        s.advance(0.0, 0.005)
    snap = {k: np.array(v, copy=True) for k, v in s.state().items()}
    for k in range(30):
        s.advance(0.0, 0.005)
    ref_x, ref_mean, ref_stress = s.x[:s.nlocal].copy(), s.get("velocity_profile_mean"), s.get("stress_mean")
    s.restore(snap)
    for k in range(30):
        s.advance(0.0, 0.005)
    assert np.array_equal(s.x[:s.nlocal], ref_x)
    assert np.array_equal(s.get("velocity_profile_mean"), ref_mean)
    assert np.array_equal(s.get("stress_mean"), ref_stress)
    ring = s.running.ring
    assert np.allclose(ref_mean, ring[:, :, 1:].sum(0) / ring[:, :, :1].sum(0))
    s.finalize()


@pytest.mark.skipif(importlib.util.find_spec("lammps") is None, reason="python3-lammps not installed")
def test_lammps_thermal_walls_follow_md_lj():
    """md.lammps (wall/reflect + redraw of crossed atoms in the fix external callback) and
    md.lj (kernel) over 200 steps of dt = 0.005 with a moving thermal wall at 0 and one at
    rest at L: velocities by atom id agree to 1e-8 (both draw the same deviates), and the
    windowed mean profiles agree (LAMMPS samples half-step velocities: 1e-2 tolerance)."""
    from solvers.md.lammps import LammpsParams, LammpsSolver
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**CHANNEL, average_steps=200))
    a.initialize(0.0)
    b = LJSolver(MPI.COMM_SELF, LJParams(**CHANNEL, average_steps=200))
    b.initialize(0.0)
    try:
        for _ in range(200):
            a.advance(0.0, 0.005)
            b.advance(0.0, 0.005)
        sa, sb = a.state(), b.state()
        va = sa["v"][np.argsort(sa["ids"])]
        vb = sb["v"][np.argsort(sb["ids"])]
        worst = np.max(np.abs(va - vb))
        print(f"max |v_lammps - v_md.lj| after 200 steps: {worst:.2e}")
        assert worst < 1e-8
        assert np.max(np.abs(a.get("velocity_profile_mean") - b.get("velocity_profile_mean"))) < 1e-2
    finally:
        a.finalize()
        b.finalize()


def test_wall_friction_layer_is_an_exact_ou_step_towards_the_wall():
    """wall_layer_ou on 100,000 particles inside the lower layer, c1 = exp(-dt/damping) = 0.5:
    mean c1 v0 + (1 - c1) U, variance c1^2 var(v0) + (1 - c1^2) T (the OU transition law);
    particles outside both layers are untouched."""
    from solvers.md.walls import wall_layer_ou
    n = 100_000
    rng = np.random.default_rng(2)
    x = np.zeros((n + 10, 3))
    x[:n, 1] = rng.uniform(0, 1.0, n)
    x[n:, 1] = 5.0
    v = np.zeros((n + 10, 3))
    v[:, 0] = 2.0
    ids = np.arange(n + 10, dtype=np.int64)
    wall_layer_ou(x, v, ids, n + 10, 1, 0.0, 10.0, 1.0, THERMAL, THERMAL, T, np.array([U, 0, 0.0]), np.zeros(3), 3,
                  0.5, 11, 3)
    assert abs(v[:n, 0].mean() - (0.5 * 2.0 + 0.5 * U)) < 5 * np.sqrt(0.75 * T / n)
    assert abs(v[:n, 2].var() - 0.75 * T) < 5 * 0.75 * T * np.sqrt(2 / n)
    assert np.all(v[n:, 0] == 2.0) and np.all(v[n:, 1:] == 0.0)


RANKS_SCRIPT = '''
import sys
import numpy as np
from mpi4py import MPI
from solvers.md.lj import LJParams, LJSolver
p = LJParams(dim=3, box=(5.0, 20.0, 5.0), density=0.813, temperature=1.1, rc=2.2, seed=3,
             periodic=(True, False, True), profile_axis=1, n_bins=8, wall_lo="thermal", wall_velocity_lo=(0.5, 0, 0),
             wall_layer=1.0, equilibrate=0.25, average_steps=50, ensemble="langevin", thermostat_band=(15.0, 20.0))
s = LJSolver(MPI.COMM_WORLD, p)
s.initialize(0.0)
for k in range(100):
    s.advance(0.0, 0.005)
st = s.state()
ids = np.concatenate(MPI.COMM_WORLD.allgather(st["ids"]))
v = np.concatenate(MPI.COMM_WORLD.allgather(st["v"]))
mean = s.get("velocity_profile_mean")
if MPI.COMM_WORLD.rank == 0:
    np.savez(sys.argv[1], v=v[np.argsort(ids)], ids=np.sort(ids), mean=mean)
s.finalize()
'''


def test_walled_axis_split_over_two_ranks_keeps_every_particle(tmp_path, mpirun):
    """The Couette MD box (walls along y) on 1 and on 2 real MPI ranks split along y: the
    2-rank run keeps all 406 particles (the migration used to send rank 0's leavers to
    MPI.PROC_NULL when a walled axis had 2 ranks) and equals the 1-rank run to round-off
    (equilibration broadcast, thermal wall, friction layer, Langevin band, running mean)."""
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    for n in (1, 2):
        proc = mpirun(n, [str(script), str(tmp_path / f"r{n}.npz")], timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = np.load(tmp_path / "r1.npz"), np.load(tmp_path / "r2.npz")
    assert np.array_equal(b["ids"], np.arange(406)) and np.array_equal(a["ids"], b["ids"])
    assert np.max(np.abs(a["v"] - b["v"])) < 1e-9
    assert np.max(np.abs(a["mean"] - b["mean"])) < 1e-9
