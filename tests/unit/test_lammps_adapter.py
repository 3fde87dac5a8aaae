"""md.lammps (LAMMPS through its library, solvers/md/lammps.py) against md.lj and exact laws.

References: md.lj itself (both evaluate the same closed-form LJ pair sum and the
same velocity-Verlet update from the same initial configuration, so they differ by
summation order only: ~1e-15 relative per step, amplified by the dynamics' chaos to
far below the asserted 1e-10 over 100 steps); Newton's second law for the body
force (pair forces cancel in the total momentum); the affine box strain.
"""
from __future__ import annotations

import ctypes
import importlib.util

import numpy as np
import pytest
from mpi4py import MPI


def _lammps_missing() -> str | None:
    if importlib.util.find_spec("lammps") is None:
        return "python3-lammps not installed (apt-get install python3-lammps liblammps-dev)"
    try:
        ctypes.CDLL("liblammps.so")
    except OSError:
        return "liblammps.so not found (apt-get install liblammps-dev)"
    return None


pytestmark = pytest.mark.skipif(_lammps_missing() is not None, reason=str(_lammps_missing()))

from solvers.md.lammps import LammpsParams, LammpsSolver  # noqa: E402
from solvers.md.lj import LJParams, LJSolver  # noqa: E402

LJ = dict(cells=(5, 5, 5), density=0.776, temperature=0.85, rc=3.0, shift=True, n_bins=4, profile_axis=2,
          seed=5)


def pair(**kw):
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**{**LJ, **kw}))
    a.initialize(0.0)
    b = LJSolver(MPI.COMM_SELF, LJParams(**{**LJ, **kw}))
    b.initialize(0.0)
    return a, b


def test_nve_equals_md_lj_over_100_steps():
    """Same initial configuration (md.lj's fcc lattice and velocities), shifted rc = 3,
    skin 0.3 with the same rebuild rule (any atom moved > skin/2): every observable at
    t = 0 and the total energy after each of 100 steps (dt = 0.005) agree to 1e-10
    relative."""
    a, b = pair()
    try:
        for name in ("potential_energy", "kinetic_energy", "pressure", "temperature", "stress",
                     "density_profile", "temperature_profile", "velocity_profile", "stress_profile"):
            ref = b.get(name)
            assert np.max(np.abs(a.get(name) - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref))), name
        worst = 0.0
        for _ in range(100):
            a.advance(0.0, 0.005)
            b.advance(0.0, 0.005)
            ea, eb = a.get("total_energy")[0], b.get("total_energy")[0]
            worst = max(worst, abs(ea - eb) / abs(eb))
        print(f"max relative energy difference over 100 steps: {worst:.2e}")
        assert worst < 1e-10
    finally:
        a.finalize()


def test_lazy_runs_equal_step_by_step_runs():
    """200 steps run as one LAMMPS run (nothing read in between) and as 200 ``run 1``:
    same trajectory (LAMMPS keeps its neighbour lists across ``pre no`` runs)."""
    a, b = pair()
    c = LammpsSolver(MPI.COMM_SELF, LammpsParams(**LJ))
    c.initialize(0.0)
    try:
        for _ in range(200):
            a.advance(0.0, 0.005)
            c.advance(0.0, 0.005)
            c.get("total_energy")
        assert a.runs < 5 < c.runs
        assert abs(a.get("total_energy")[0] - c.get("total_energy")[0]) < 1e-10 * abs(c.get("total_energy")[0])
    finally:
        a.finalize()
        c.finalize()


def unwrapped(state, box):
    """(N, 3) positions by atom id plus image flags x box (LAMMPS's 10-bit image encoding)."""
    order = np.argsort(state["ids"])
    img = state["image"][order]
    flags = np.stack([(img & 1023) - 512, ((img >> 10) & 1023) - 512, (img >> 20) - 512], axis=1)
    return state["x"][order] + flags * box


def by_id(state):
    order = np.argsort(state["ids"])
    return state["x"][order], state["v"][order]


def test_restore_continues_to_round_off():
    """state() -> 100 steps -> restore() -> the same 100 steps: positions and velocities
    (by atom id) agree to 1e-9 and energies to 1e-10 relative; not bitwise, because
    LAMMPS's set-up after the restore rebuilds the neighbour lists and re-sorts atoms
    (the module docstring says so).  With the Langevin thermostat: its noise is keyed by
    (seed, atom, step), so it continues exactly too."""
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**{**LJ, "ensemble": "langevin", "shift": False}))
    a.initialize(0.0)
    try:
        for _ in range(20):
            a.advance(0.0, 0.005)
        saved = a.state()
        for _ in range(100):
            a.advance(0.0, 0.005)
        e1, (x1, v1) = a.get("total_energy")[0], by_id(a.state())
        a.restore(saved)
        for _ in range(100):
            a.advance(0.0, 0.005)
        e2, (x2, v2) = a.get("total_energy")[0], by_id(a.state())
        print(f"after restore: max |dx| {np.abs(x1 - x2).max():.2e}, |dE|/E {abs(e1 - e2) / abs(e1):.2e}")
        assert np.abs(x1 - x2).max() < 1e-9 and np.abs(v1 - v2).max() < 1e-9
        assert abs(e1 - e2) < 1e-10 * abs(e1)
    finally:
        a.finalize()


def test_body_force_and_strain_inputs():
    """Body force f per bin on every atom (NVE): the mean velocity grows as f t exactly
    (pair forces cancel), 1e-10.  Strain 0.1 along the profile axis: the box and bins
    stretch, every bin's number density drops by 1/1.1."""
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**LJ))
    a.initialize(0.0)
    try:
        rho0 = a.get("density_profile").copy()
        f = np.zeros((4, 3))
        f[:, 0] = 0.2
        v0 = np.mean(a.get("velocity_profile")[:, 0] * a.observables()["count_profile"]) * 4 / 500
        for _ in range(50):
            a.put("body_force", f)
            a.advance(0.0, 0.005)
        prof = a.get("velocity_profile")[:, 0]
        mean_v = np.sum(prof * a.observables()["count_profile"]) / 500
        assert abs(mean_v - v0 - 0.2 * 50 * 0.005) < 1e-10
        a.put("strain", np.array([0.0, 0.0, 0.1]))
        assert np.abs(a.get("density_profile").sum() - rho0.sum() / 1.1) < 1e-12 * rho0.sum()
        assert np.isclose(a.fields()["density_profile"].points[-1, 2], 0.5 * (3 + 4) / 4 * a._box()[2])
    finally:
        a.finalize()


def test_check_reports_bad_input(tmp_path):
    """Validation without starting LAMMPS: a missing input file, a run command in the
    script, shift with tail (LAMMPS refuses the pair)."""
    script = tmp_path / "in.bad"
    script.write_text("units lj\nrun 100\n")
    probs = LammpsSolver.check(LammpsParams(system="script", input_file=str(tmp_path / "nope.in")))
    assert any(k == "input_file" and "no such file" in m for k, m, _ in probs)
    probs = LammpsSolver.check(LammpsParams(system="script", input_file=str(script)))
    assert any("'run'" in m for _, m, _ in probs)
    probs = LammpsSolver.check(LammpsParams(shift=True, tail=True))
    assert any(k == "tail" for k, _, _ in probs)
    assert LammpsSolver.check(LammpsParams(**LJ)) == []


def test_script_system_runs_with_the_same_coupling_fields(tmp_path):
    """system: script: a LAMMPS input file builds an fcc LJ crystal (lattice 0.8442, 500
    atoms, fix nve); the adapter adds msorch's thermostat and observables.  The number
    density summed over 5 bins equals 5 x 500/V exactly; with the per-bin Langevin
    target T = 3 the temperature rises from 1.0 in 1 tau; state()/restore() round-trips."""
    script = tmp_path / "in.lj"
    script.write_text("units lj\natom_style atomic\nlattice fcc 0.8442\nregion box block 0 5 0 5 0 5\n"
                      "create_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\nvelocity all create 1.0 87287 loop geom\n"
                      "pair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\nneighbor 0.3 bin\nfix 1 all nve\n")
    s = LammpsSolver(MPI.COMM_SELF, LammpsParams(system="script", input_file=str(script), n_bins=5, profile_axis=0,
                                                 ensemble="langevin", temperature=3.0))
    s.initialize(0.0)
    try:
        assert s.n_total == 500 and s.units == "lj"
        volume = float(np.prod(s.box0))
        assert abs(s.get("density_profile").sum() - 5 * 500 / volume) < 1e-12
        t0 = s.get("temperature")[0]
        for _ in range(200):
            s.advance(0.0, 0.005)
        assert s.get("temperature")[0] > t0
        saved = s.state()
        e = s.get("total_energy")[0]
        s.restore(saved)
        assert abs(s.get("total_energy")[0] - e) < 1e-10 * abs(e)
    finally:
        s.finalize()


def test_target_velocity_drives_the_langevin_thermostat():
    """Langevin (damping 1 tau) towards a streaming velocity u = 1 in every bin: the pair
    forces cancel in the mean, so the mean velocity follows u (1 - exp(-t/damping)) =
    0.632 after 1 tau, up to the noise's mean, sqrt(T (1 - exp(-2)) / N) = 0.04 for N = 500
    (tolerance 0.15, > 3.5 sigma); the other components stay near 0."""
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**{**LJ, "ensemble": "langevin", "shift": False}))
    a.initialize(0.0)
    try:
        u = np.zeros((4, 3))
        u[:, 0] = 1.0
        v0 = np.sum(a.get("velocity_profile")[:, 0] * a.observables()["count_profile"]) / 500
        for _ in range(200):
            a.put("target_velocity", u)
            a.advance(0.0, 0.005)
        prof = a.get("velocity_profile")
        mean = (prof * a.observables()["count_profile"][:, None]).sum(axis=0) / 500
        expected = 1.0 - (1.0 - v0) * np.exp(-1.0)
        assert abs(mean[0] - expected) < 0.15 and np.all(np.abs(mean[1:]) < 0.15)
    finally:
        a.finalize()


def test_rescale_sets_every_bin_to_its_target():
    """ensemble: rescale (md.lj's per-bin velocity rescaling, applied between LAMMPS runs
    every rescale_every = 10 steps): right after step 50 each bin's kinetic temperature
    (peculiar velocities, dim (n - 1) degrees of freedom, the temperature_profile
    definition) equals its target exactly (1e-12) and its mean velocity the target velocity."""
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**{**LJ, "ensemble": "rescale", "rescale_every": 10}))
    a.initialize(0.0)
    try:
        target = np.array([0.5, 1.0, 1.5, 2.0])
        u = np.zeros((4, 3))
        u[:, 1] = [0.0, 0.1, 0.2, 0.3]
        for _ in range(50):
            a.put("target_temperature", target)
            a.put("target_velocity", u)
            a.advance(0.0, 0.005)
        np.testing.assert_allclose(a.get("temperature_profile"), target, rtol=1e-12)
        np.testing.assert_allclose(a.get("velocity_profile"), u, atol=1e-12)
    finally:
        a.finalize()


def test_restore_all_takes_states_of_another_layout():
    """restore_all (a restart on another rank count): one rank's state cut into the states
    of three 'old ranks' restores the same system (energy to 1e-12, atoms by id exactly)."""
    a = LammpsSolver(MPI.COMM_SELF, LammpsParams(**LJ))
    a.initialize(0.0)
    try:
        for _ in range(30):
            a.advance(0.0, 0.005)
        state = a.state()
        e = a.get("total_energy")[0]
        x_ref, v_ref = by_id(state)
        per_atom = ("ids", "x", "v", "image", "fext")
        cuts = [slice(0, 100), slice(100, 320), slice(320, 500)]
        olds = [dict(state, **{k: state[k][c] for k in per_atom}) for c in cuts]
        for _ in range(30):
            a.advance(0.0, 0.005)
        a.restore_all(olds)
        assert abs(a.get("total_energy")[0] - e) < 1e-12 * abs(e)
        after = a.state()
        x, v = by_id(after)
        np.testing.assert_array_equal(v, v_ref)
        # LAMMPS's set-up wraps atoms back into the box and counts it in the image flags
        np.testing.assert_allclose(unwrapped(after, a.box0), unwrapped(state, a.box0), rtol=0, atol=1e-12)
    finally:
        a.finalize()
