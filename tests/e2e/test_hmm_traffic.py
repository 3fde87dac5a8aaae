"""Traffic HMM jobs through ``msorch run`` (issue 11, Must show 3a, 3b, 4 on traffic).

jobs/hmm_traffic_light.yaml (3a), jobs/hmm_traffic_mixed.yaml (3b),
jobs/hmm_traffic_surrogate.yaml (4) run from a temporary directory outside
the repository, a farm of ``traffic.idm`` rings answering ``traffic.lwr``
with ``diagram: hmm``.  References are named in each test.
"""
from __future__ import annotations

import copy
import dataclasses

import h5py
import numpy as np
import pytest
import yaml
from scipy.optimize import brentq

from conftest import ROOT, run_msorch
from solvers.traffic.lwr import LWRParams, answered_diagram

JOBS = ROOT / "jobs"


def run(tmp_path, spec, timeout=600):
    out = tmp_path / "out"
    r = run_msorch("run", spec, "-o", out, cwd=tmp_path, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r


def fields(out, solver, name):
    with h5py.File(out / "results.h5") as f:
        return f[solver][name][:], f[solver]["time"][:]


def hmm_stats(out):
    with h5py.File(out / "results.h5") as f:
        return {k: v[:] for k, v in f["hmm/ring"].items()}


def relative_l1(a, b):
    return np.abs(a - b).sum(axis=1) / np.abs(b).sum(axis=1)


def q_equilibrium(rho, v0=30.0, T=1.5, s0=2.0, delta=4.0, length=5.0):
    """Q_e(rho) of the IDM (Treiber et al. 2000) by brentq on s_e(v) = 1/rho - l."""
    gap = 1.0 / rho - length
    if gap <= s0:
        return 0.0
    return rho * brentq(lambda v: (s0 + v * T) / np.sqrt(1 - (v / v0) ** delta) - gap, 0.0, v0 * (1 - 1e-14),
                        xtol=1e-14, rtol=1e-15)


def test_traffic_light_hmm_matches_the_analytic_diagram(tmp_path):
    """Must show 3a.  References: (i) the analytic IDM equilibrium flow Q_e (brentq) at every
    answered node, within 0.5 % -- the answers are read from the road's state in the job's last
    checkpoint; (ii) the solver ``reference`` of the same job (traffic.lwr, diagram: idm): the
    density field within 1 % relative L1 at every 5-s output (measured ~0.3 %, the error of
    linear interpolation between 40 nodes).  The 40 nodes repeat every window: 40 ring runs, the
    other 440 queries cache hits."""
    out, r = run(tmp_path, JOBS / "hmm_traffic_light.yaml")
    road, t = fields(out, "road", "density")
    ref, _ = fields(out, "reference", "density")
    err = relative_l1(road[1:], ref[1:])
    print(f"3a: HMM-LWR vs analytic-diagram LWR, relative L1 max {err.max():.4f} over {len(t) - 1} outputs")
    assert err.max() < 0.01
    assert np.abs(road[-1] - ref[-1]).max() > 0            # the road did move on answered flows
    spec = yaml.safe_load((JOBS / "hmm_traffic_light.yaml").read_text())
    params = spec["solvers"]["road"]["params"]
    nodes = answered_diagram(LWRParams(**params)).nodes[1:]       # without rho = 0 (not asked)
    (ckpt,) = sorted((out / "checkpoints").glob("checkpoint_*.h5"))
    with h5py.File(ckpt) as f:
        table = f["solvers/road/rank0/solver.hmm_table"][1:]
    expect = np.array([q_equilibrium(r) for r in nodes])
    live = expect > 0
    rel = np.abs(table[live] / expect[live] - 1)
    print(f"3a: answered flows vs Q_e at {live.sum()} nodes: max relative error {rel.max():.2e}")
    assert rel.max() < 5e-3 and np.abs(table[~live]).max() < 1e-6
    s = hmm_stats(out)
    assert s["micro"].sum() == 40 and s["cache"].sum() == s["asked"].sum() - 40


def _l1_sections(a: np.ndarray, section_cells: int) -> np.ndarray:
    """(n_t, n_sections) means of ``section_cells`` consecutive cells."""
    return a.reshape(len(a), -1, section_cells).mean(axis=2)


@pytest.mark.verify
def test_mixed_population_hmm_beats_the_cars_only_diagram(tmp_path):
    """Must show 3b.  Reference: the solver ``full`` of the same job, the same road, queue and
    population (25 % trucks) as IDM agents.  Densities compared on 200-m sections (the agents'
    bins; ~5-23 vehicles each -- on 10-m cells the vehicles' discreteness alone gives L1 errors
    larger than any model difference), L1 [veh] averaged over the 5-s outputs of 900 s: the HMM
    road (diagram from mixed rings) at least 2x closer than LWR with the cars-only analytic
    diagram (measured ~3x).  Costs of each run printed from results.h5 /timing."""
    out, r = run(tmp_path, JOBS / "hmm_traffic_mixed.yaml", timeout=900)
    full, t = fields(out, "full", "density")
    road, _ = fields(out, "road", "density")
    cars, _ = fields(out, "cars", "density")
    cells = road.shape[1] // full.shape[1]
    e_hmm = (np.abs(_l1_sections(road, cells) - full).sum(axis=1) * 200.0)[1:].mean()
    e_cars = (np.abs(_l1_sections(cars, cells) - full).sum(axis=1) * 200.0)[1:].mean()
    with h5py.File(out / "results.h5") as f:     # compute seconds (phase 0) summed over windows and ranks
        cost = {k: float(f["timing"][f"{k}.phases"][:, :, 0].sum()) for k in ("road", "cars", "full")}
        micro = float(f["hmm/ring/micro_seconds"][:].sum())
    print(f"3b: time-averaged L1 vs full IDM: HMM-LWR {e_hmm:.1f} veh, cars-only LWR {e_cars:.1f} veh, "
          f"ratio {e_cars / e_hmm:.2f}")
    print(f"3b: cost [compute s]: HMM-LWR road {cost['road']:.2f} + ring runs {micro:.2f} (farm, 2 ranks), "
          f"full IDM road {cost['full']:.2f}, cars-only LWR {cost['cars']:.2f}")
    assert e_cars >= 2.0 * e_hmm
    s = hmm_stats(out)
    assert s["micro"].sum() == 40


@pytest.mark.verify
def test_surrogate_cuts_ring_runs_tenfold_at_equal_accuracy(tmp_path):
    """Must show 4 (traffic).  jobs/hmm_traffic_surrogate.yaml against the same job without the
    surrogate: the table is refined over 16 windows to 320 nodes, so without a surrogate there
    are 320 ring runs (no cache hit: every node new).  Equal accuracy, tolerance stated: both
    density fields within 0.5 % relative L1 of the job's ``reference`` (analytic IDM diagram)
    at every output and within 0.1 % of each other; at least 10x fewer ring runs."""
    spec = yaml.safe_load((JOBS / "hmm_traffic_surrogate.yaml").read_text())
    plain = copy.deepcopy(spec)
    del plain["patterns"][0]["surrogate"]
    plain["name"] = "hmm_traffic_no_surrogate"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = tmp_path / "a" / "plain.yaml"
    path.write_text(yaml.safe_dump(plain, sort_keys=False))
    out_a, _ = run(tmp_path / "a", path)
    out_b, _ = run(tmp_path / "b", JOBS / "hmm_traffic_surrogate.yaml")
    a, _ = fields(out_a, "road", "density")
    b, _ = fields(out_b, "road", "density")
    ref, _ = fields(out_b, "reference", "density")
    calls_a, calls_b = hmm_stats(out_a)["micro"].sum(), hmm_stats(out_b)["micro"].sum()
    sb = hmm_stats(out_b)
    ea, eb, eab = relative_l1(a[1:], ref[1:]), relative_l1(b[1:], ref[1:]), relative_l1(b[1:], a[1:])
    print(f"4: ring runs without surrogate {calls_a}, with {calls_b} ({calls_a / calls_b:.1f}x fewer; "
          f"{sb['surrogate'].sum()} answered by the GP); L1 vs analytic {ea.max():.4f} / {eb.max():.4f}, "
          f"between {eab.max():.5f}")
    assert calls_a == 320
    assert calls_a >= 10 * calls_b
    assert ea.max() < 5e-3 and eb.max() < 5e-3 and eab.max() < 1e-3


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["patterns"][0]["query"].update(sets=["densty"]), ["query.sets[0]", "density"]),
    (lambda d: d["patterns"][0]["answer"].update({"from": ["speed"]}), ["answer.from[0]", "m/s", "veh/s"]),
    (lambda d: d["solvers"]["road"]["params"].pop("hmm_density_max"), ["hmm_density_max"]),
    (lambda d: d["solvers"]["ring"]["params"].update(density_region=[0.0, 100.0]), ["density_region"]),
])
def test_bad_traffic_hmm_specs_fail_before_launch(tmp_path, edit, expect):
    """A query of a setting the ring does not have (with the did-you-mean), an answer in the wrong
    units, an hmm road without its node range, a ring with an open-road setting: spec errors from
    ``msorch validate``, naming the YAML path."""
    data = yaml.safe_load((JOBS / "hmm_traffic_light.yaml").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    r = run_msorch("validate", path, cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    for text in expect:
        assert text in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.verify
def test_surrogate_job_restarts_bitwise_mid_refinement(tmp_path):
    """jobs/hmm_traffic_surrogate.yaml with a checkpoint every 5 windows, restarted from the one
    after window 10 -- the road's table half refined (round 10 of 16), the farm's cache and GP
    surrogate trained on the answers so far -- in a copy of the output directory (results after
    window 10 are dropped and recomputed).  Reference: the uninterrupted run; every density
    field and every per-window farm count must be bitwise equal."""
    import shutil
    spec = yaml.safe_load((JOBS / "hmm_traffic_surrogate.yaml").read_text())
    spec["checkpoint"] = {"every_windows": 5, "keep": 10}
    path = tmp_path / "surrogate.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    whole, _ = run(tmp_path, path)
    again = tmp_path / "again"
    shutil.copytree(whole, again)
    r = run_msorch("run", path, "-o", again, "--restart", again / "checkpoints" / "checkpoint_000010.h5",
                   cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "at window 11" in r.stdout
    for solver in ("road", "reference"):
        a, ta = fields(whole, solver, "density")
        b, tb = fields(again, solver, "density")
        assert np.array_equal(ta, tb) and np.array_equal(a, b), solver
    sa, sb = hmm_stats(whole), hmm_stats(again)
    for key in ("asked", "micro", "cache", "surrogate", "max_std"):
        assert np.array_equal(sa[key], sb[key], equal_nan=True), key
    assert sb["surrogate"][10:].sum() > 0                 # the restored GP did answer after the restart
