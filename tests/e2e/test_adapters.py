"""The LAMMPS and SUMO adapters (md.lammps, traffic.sumo) through ``msorch run``, from a
temporary directory outside the repository: their jobs, their faults, their bad input.

References: NIST SRSW (LJ, T* = 0.85, rho* = 0.776: U/N = -5.5121), the IDM
equilibrium speed (Treiber et al. 2000), exact vehicle counts, and the traffic.idm
version of the micro-macro job (same interface density and flow within 2 %).
"""
from __future__ import annotations

import ctypes
import importlib.util
import shutil
import time

import h5py
import numpy as np
import pytest
from scipy.optimize import brentq

from conftest import ROOT


def _has_lammps() -> bool:
    if importlib.util.find_spec("lammps") is None:
        return False
    try:
        ctypes.CDLL("liblammps.so")
    except OSError:
        return False
    return True


needs_lammps = pytest.mark.skipif(not _has_lammps(),
                                  reason="LAMMPS library missing (apt-get install python3-lammps liblammps-dev)")
needs_sumo = pytest.mark.skipif(importlib.util.find_spec("libsumo") is None or shutil.which("netconvert") is None,
                                reason="SUMO missing (apt-get install sumo sumo-tools)")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_timed(msorch, spec, tmp_path, out="out"):
    start = time.monotonic()
    r = msorch("run", spec, "-o", tmp_path / out, cwd=tmp_path)
    return r, time.monotonic() - start


@needs_lammps
def test_lj_fluid_lammps_job(msorch, tmp_path):
    """jobs/lj_fluid_lammps.yaml (LAMMPS on 2 ranks): after ~5 tau the potential energy per
    particle sits near NIST's -5.5121 (instantaneous values of a 500-atom system fluctuate
    by ~0.03, hence 0.1 on the mean of the last 5 outputs; the equilibrium average is
    tested in tests/unit/test_lammps_nist.py) and the temperature near 0.85."""
    r = msorch("run", ROOT / "jobs" / "lj_fluid_lammps.yaml", "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        u = f["fluid/box/potential_energy"][:, 0] / 500
        temp = f["fluid/box/temperature"][:, 0]
        rho = f["fluid/density_profile"][-1]
    assert abs(u[-5:].mean() + 5.5121) < 0.1
    assert abs(temp[-5:].mean() - 0.85) < 0.05
    assert np.isclose(rho.mean(), 0.776)


LJ_SMALL = """name: {name}
time: {{start: 0.0, end: 1.0, window: 0.1}}
solvers:
  fluid:
    kind: md.lammps
    ranks: 2
    dt: 0.005
    params: {{cells: [4, 4, 4], density: 0.8, {extra}}}
progress: false
"""


@needs_lammps
@pytest.mark.parametrize("extra, message", [
    ('commands: ["bogus_command 1 2"]', "ERROR: Unknown command: bogus_command 1 2"),
    ('periodic: [false, true, true], commands: ["unfix msorch_wall_0", "velocity all set 200.0 0.0 0.0 sum yes"]',
     "ERROR: Lost atoms"),
])
def test_lammps_error_ends_the_job_with_its_message(msorch, tmp_path, extra, message):
    """A LAMMPS error at set-up (unknown command) and during the run (atoms flying out of a
    wall-less box): exit 1 within 30 s, with LAMMPS's own message, solver and rank named."""
    spec = write(tmp_path, "bad.yaml", LJ_SMALL.format(name="bad", extra=extra))
    r, seconds = run_timed(msorch, spec, tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and "solver 'fluid' rank 0" in r.stderr, r.stderr[-3000:]
    assert seconds < 30


@needs_lammps
def test_lammps_bad_input_is_reported_before_launch(msorch, tmp_path):
    """A missing LAMMPS input file and a run command in the script: exit 2 at validation."""
    script = write(tmp_path, "in.lj", "units lj\nrun 10\n")
    spec = write(tmp_path, "bad.yaml", LJ_SMALL.format(
        name="bad", extra=f"system: script, input_file: {tmp_path / 'missing.in'}"))
    r = msorch("validate", spec, cwd=tmp_path)
    assert r.returncode == 2 and "input_file" in r.stderr and "no such file" in r.stderr, r.stderr
    spec = write(tmp_path, "bad2.yaml", LJ_SMALL.format(name="bad2", extra=f"system: script, input_file: {script}"))
    r = msorch("validate", spec, cwd=tmp_path)
    assert r.returncode == 2 and "'run'" in r.stderr, r.stderr


@needs_sumo
def test_idm_ring_sumo_job(msorch, tmp_path):
    """jobs/idm_ring_sumo.yaml: SUMO's IDM on the 5 km ring settles at the analytic
    equilibrium speed v_e(20 m) within 1e-6 m/s after 120 s (mean speed = sum of flows /
    sum of densities over the equal edges); 200 vehicles on the ring."""
    r = msorch("run", ROOT / "jobs" / "idm_ring_sumo.yaml", "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    v_e = brentq(lambda v: (2 + 1.5 * v) / np.sqrt(1 - (v / 30) ** 4) - 20.0, 0, 30 * (1 - 1e-14), xtol=1e-14)
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        flow, density = f["ring/flow"][-1], f["ring/density"][-1]
    assert abs(flow.sum() / density.sum() - v_e) < 1e-6
    assert np.isclose(density.sum() * 250.0, 200)


def interface(path):
    with h5py.File(path) as f:
        micro = {k: f["micro"][k][:].sum(axis=1) for k in ("count_in", "count_out", "count_present")}
        macro_out = f["macro/count_out"][:].sum(axis=1)
        t = f["micro/time"][:]
        late = t >= 200
        return micro, macro_out, f["micro/density"][late, 0].mean(), f["micro/flow"][late, 0].mean()


@needs_sumo
def test_traffic_micro_macro_sumo_matches_the_idm_version(msorch, tmp_path):
    """jobs/traffic_micro_macro_sumo.yaml vs jobs/traffic_micro_macro.yaml (traffic.idm on
    the micro road): on the SUMO road in = out + present exactly at every output; what
    left the macro road and what entered SUMO differ by less than two vehicles (whole
    vehicles enter once a full vehicle of demand and a gap are there); density and flow
    on the interface edge (t >= 200 s) within 2 % of the traffic.idm version."""
    r = msorch("run", ROOT / "jobs" / "traffic_micro_macro_sumo.yaml", "-o", tmp_path / "sumo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = msorch("run", ROOT / "jobs" / "traffic_micro_macro.yaml", "-o", tmp_path / "idm", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    micro, macro_out, rho_s, q_s = interface(tmp_path / "sumo" / "results.h5")
    _, _, rho_i, q_i = interface(tmp_path / "idm" / "results.h5")
    np.testing.assert_array_equal(micro["count_in"], micro["count_out"] + micro["count_present"])
    assert np.abs(macro_out - micro["count_in"]).max() < 2
    assert micro["count_in"][-1] > 80
    print(f"interface: density {rho_s:.6f} vs {rho_i:.6f}, flow {q_s:.6f} vs {q_i:.6f}")
    assert abs(rho_s / rho_i - 1) < 0.02 and abs(q_s / q_i - 1) < 0.02


SUMO_ROAD = """name: {name}
time: {{start: 0.0, end: 10.0, window: 1.0}}
solvers:
  road:
    kind: traffic.sumo
    dt: 0.1
    params: {{road: open, road_length: 1000.0, bins: 5, inflow: flow, inflow_flow: 0.5, {extra}}}
progress: false
"""


@needs_sumo
def test_sumo_error_ends_the_job_with_its_message(msorch, tmp_path):
    """A route file naming an edge the network lacks: SUMO refuses to start; exit 1 within
    30 s with SUMO's own message and the solver and rank named."""
    routes = write(tmp_path, "bad.rou.xml", '<routes><route id="detour" edges="e0 nowhere"/></routes>')
    spec = write(tmp_path, "bad.yaml", SUMO_ROAD.format(name="bad", extra=f"route_file: {routes}"))
    r, seconds = run_timed(msorch, spec, tmp_path)
    assert r.returncode == 1
    assert "nowhere" in r.stderr and "not known" in r.stderr and "solver 'road' rank 0" in r.stderr, r.stderr[-3000:]
    assert seconds < 30


@needs_sumo
def test_sumo_unknown_coupling_edges_are_reported_before_launch(msorch, tmp_path):
    """Edges named for the road that the SUMO network lacks: exit 2 at validation, naming them."""
    from solvers.traffic.sumo_network import write_road
    net, _ = write_road(tmp_path, 3, 100.0, 40.0, ring=False)
    spec = write(tmp_path, "bad.yaml", SUMO_ROAD.format(name="bad", extra=f"net_file: {net}, edges: [e0, e9]"))
    r = msorch("validate", spec, cwd=tmp_path)
    assert r.returncode == 2 and "'e9'" in r.stderr and "params.edges" in r.stderr, r.stderr


@needs_lammps
def test_lammps_restart_from_checkpoint_continues_to_round_off(msorch, tmp_path):
    """LAMMPS state in msorch's HDF5 checkpoint: a 2-rank Langevin run checkpoints after
    window 5; restarting from that checkpoint re-runs windows 6-10 and ends within 1e-9
    (relative) of the uninterrupted run's energies and profiles.  Not bitwise: LAMMPS's
    set-up after the restore rebuilds its neighbour lists (see solvers/md/lammps.py)."""
    spec = write(tmp_path, "ckpt.yaml", LJ_SMALL.format(
        name="ckpt", extra="temperature: 1.0, ensemble: langevin, n_bins: 4, profile_axis: 2")
        + "checkpoint: {every_windows: 5, keep: 3}\n")
    r = msorch("run", spec, "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = ("box/total_energy", "box/pressure", "temperature_profile", "velocity_profile")
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        before = {k: f["fluid"][k][-1].copy() for k in names}
    first = sorted((tmp_path / "out" / "checkpoints").glob("checkpoint_*.h5"))[0]
    r = msorch("run", spec, "-o", tmp_path / "out", "--restart", str(first), cwd=tmp_path)
    assert r.returncode == 0 and "restarting from" in r.stdout, r.stderr
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        assert len(f["fluid/time"]) == 11
        for k in names:
            after = f["fluid"][k][-1]
            assert np.max(np.abs(after - before[k])) <= 1e-9 * max(1.0, np.max(np.abs(before[k]))), k
