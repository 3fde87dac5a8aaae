"""The hybrid epidemic (issue 14): jobs/epi_hybrid.yaml (town t9 as agents, 9 regions as epi.meta)
against jobs/epi_hybrid_allagents.yaml (all 10 regions as agents, epi.meta as the mobility exchange).

References: exact conservation of infectious travellers (every count one side exports is one the
other side imports: integers, compared with ==); the all-agent run (peer program: the same system
simulated by epi.network alone) for the epidemic curves.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT

JOBS = ROOT / "jobs"


def scaled(name: str, factor: int, tmp_path, end: float | None = None, member: int = 0):
    """A copy of jobs/<name>.yaml with every population, agent count and initial count x ``factor``;
    ``member`` > 0 adds ``member`` to the seed of every solver that has one (an ensemble member)."""
    spec = yaml.safe_load((JOBS / f"{name}.yaml").read_text())
    for s in spec["solvers"].values():
        p = s["params"]
        if "seed" in p:
            p["seed"] += member
        for key in ("n_agents", "initial_infected"):
            if key in p:
                p[key] *= factor
        for r in p.get("regions", []):
            for key in ("population", "agents", "initial_infected"):
                if key in r and not isinstance(r[key], bool):     # epi.meta's agents: true is a flag
                    r[key] *= factor
    if end is not None:
        spec["time"]["end"] = end
    path = tmp_path / f"{name}_x{factor}_m{member}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(msorch, spec, out):
    t0 = time.perf_counter()
    r = msorch("run", spec, "-o", out, timeout=1500)
    assert r.returncode == 0, r.stderr
    return time.perf_counter() - t0


def curves(out, hybrid: bool) -> tuple[np.ndarray, np.ndarray]:
    """(times (T,), prevalence I (T, 10)) per region, in region order."""
    with h5py.File(out / "results.h5") as f:
        if hybrid:
            t = f["towns/time"][:]
            meta = f["towns/I"][:, :9]                      # rows: the 9 compartment regions, then t9
            agents = f["t9/I"][:: round(len(f["t9/time"]) / len(t)) or 1][: len(t)]
            return t, np.concatenate([meta, agents[:, :1]], axis=1)
        return f["agents/time"][:], f["agents/I"][:]


def compute_seconds(out) -> float:
    """Compute seconds of every solver, summed over windows and ranks (results.h5 timing/<solver>.phases,
    shape (windows, ranks, phases), phase 0 = compute: the solver's own steps, not waiting or output)."""
    with h5py.File(out / "results.h5") as f:
        return sum(float(f["timing"][name][:, :, 0].sum()) for name in f["timing"] if name.endswith(".phases"))


@pytest.mark.verify   # minutes of MPI runs on 2 cores: in the verify stage (the SLURM stage runs every job)
def test_hybrid_conserves_travellers_exactly(msorch, tmp_path):
    """jobs/epi_hybrid.yaml: every infectious traveller epi.network exported from t9 (whole persons,
    one sample per step) was routed by epi.meta (its travel_out for t9), the travellers leaving all
    regions equal those arriving (travel_out = travel_in summed over regions), and the epidemic
    spreads from the city through every town, including the agent town (attack > 30 %)."""
    run(msorch, JOBS / "epi_hybrid.yaml", tmp_path)
    with h5py.File(tmp_path / "results.h5") as f:
        exported = f["t9/exported"][:, 0]
        assert np.array_equal(exported, np.round(exported))
        out, inn = f["towns/travel_out"][-1], f["towns/travel_in"][-1]
        points = f["towns/points"][:, 0]
        t9 = int(np.flatnonzero(points == 9)[0])
        # serial staggering [t9, towns]: each step's export reaches epi.meta within the same window
        assert out[t9] == exported.sum() > 0
        assert abs(out.sum() - inn.sum()) <= 1e-9 * out.sum()
        attack_meta = f["towns/cumulative_incidence"][-1, :9] / f["towns/S"][0, :9]
        attack_agents = f["t9/R"][-1, 0] / (f["t9/S"][0, 0] + f["t9/I"][0, 0])
    assert np.all(attack_meta > 0.3) and attack_agents > 0.3


def peak_day(t: np.ndarray, prevalence: np.ndarray, level: float = 0.8) -> float:
    """Day of the peak [day]: vertex of the least-squares parabola through the contiguous points with
    prevalence >= ``level`` x maximum around the maximum (the argmax of a noisy, flat-topped agent
    curve moves by days with the sampling noise; t, prevalence: (T,))."""
    k = int(np.argmax(prevalence))
    keep = prevalence >= level * prevalence[k]
    lo, hi = k, k
    while lo > 0 and keep[lo - 1]:
        lo -= 1
    while hi < len(t) - 1 and keep[hi + 1]:
        hi += 1
    a, b, _ = np.polyfit(t[lo:hi + 1] - t[k], prevalence[lo:hi + 1], 2)
    return float(t[k] - b / (2 * a))


def takeoff_day(t: np.ndarray, susceptible: np.ndarray, population: float, attack: float = 0.01) -> float:
    """First day on which ``attack`` of the residents have been infected (linear interpolation)."""
    a = 1.0 - susceptible / population
    k = int(np.argmax(a >= attack))
    return float(t[k - 1] + (attack - a[k - 1]) / (a[k] - a[k - 1]) * (t[k] - t[k - 1]))


def susceptibles(out, hybrid: bool) -> np.ndarray:
    """S (T, 10) per region in region order, at the times of :func:`curves`."""
    with h5py.File(out / "results.h5") as f:
        if hybrid:
            t = f["towns/time"][:]
            agents = f["t9/S"][:: round(len(f["t9/time"]) / len(t)) or 1][: len(t)]
            return np.concatenate([f["towns/S"][:, :9], agents[:, :1]], axis=1)
        return f["agents/S"][:]


MEMBERS = 8      # ensemble size: seeds 11..18 of the agents (t9 / agents), 5..12 of the mobility routing


def member_stats(out, hybrid: bool, pop: np.ndarray) -> dict:
    """One run's per-region numbers, each shape (10,): peak prevalence [persons], peak day [day]
    (:func:`peak_day`), final attack [fraction of residents], own course (1 % attack -> peak) [days];
    plus compute seconds (scalar, :func:`compute_seconds`) and the times (T,) [day]."""
    t, i = curves(out, hybrid)
    s = susceptibles(out, hybrid)
    day = np.array([peak_day(t, i[:, k]) for k in range(10)])
    return {"t": t, "height": i.max(axis=0), "day": day, "final": 1 - s[-1] / pop,
            "course": day - [takeoff_day(t, s[:, k], pop[k]) for k in range(10)],
            "cost": compute_seconds(out)}


@pytest.mark.verify
def test_hybrid_follows_the_all_agent_run_at_lower_cost(msorch, tmp_path):
    """Must show 4 on the 5x system (city 150,000 ... t9 30,000; 715,000 agents in the all-agent run),
    as expected curves: both jobs run as ensembles of MEMBERS = 8 members; member m adds m to the seed
    of every seeded solver of both jobs (epi.network t9 / agents: seeds 11..18; the all-agent job's
    mobility epi.meta, chain-binomial routing: 5..12; the hybrid's epi.meta towns are an ODE with
    deterministic routing, no seed).  The compartment regions use epi.meta's edge-based network model
    (mixing: network, onset: step-end).

    Reference: the all-agent ensemble (peer program: the same system simulated by epi.network alone).
    Asserted per region, hybrid ensemble mean vs all-agent ensemble mean: peak prevalence within 5 %,
    peak day (parabola vertex, :func:`peak_day`) within 2 days, final attack within 2 %; >= 10x fewer
    compute seconds summed over all members (solvers and ranks; wall time printed only).
    Why means: the issue's 5 % / 2 days applies to the expected epidemic curve.  One realisation
    cannot meet it: a town's epidemic starts from a few infectious visitors, so its take-off day is
    random -- over all-agent seeds 11-19 the towns' peak days have standard deviations 1.2-2.7 days
    (city 0.6; t6: 94.9, 92.3, 89.7, 90.8, 89.3, ...) and heights differ by up to 12 % (t9); one
    all-agent run was within 2 days of the hybrid for only 33-78 % of the seeds per town.  The issue's
    tolerances are kept unchanged for the means.  Measured (8 members): standard error of the
    all-agent mean peak day 0.25 (city) .. 1.15 days, of its mean height 0.5-1.1 %; the hybrid's
    compartment regions hardly vary between members (SE <= 0.01 day: only t9's randomness reaches
    them), its t9 SE 1.07 days.  Mean differences: heights -2.1 .. +0.5 %, peak days -1.90 (t5,
    2.4 SE) .. +0.49 (t9), towns' mean -0.7 day (the hybrid's compartment towns see the city's
    visitors within the window, the all-agent towns one 0.5-day exchange later), final attack
    within 0.4 %, cost x15.7 (load ~8).  Seed-11 single-run numbers are printed as before
    (heights -3.5 .. +2.0 %, peak days -6.2 .. +2.6: 6/10 within 2 days).
    """
    pop = 5.0 * np.array([30000, 20000, 18000, 16000, 14000, 12000, 10000, 9000, 8000, 6000])
    jobs = [(hybrid, m) for m in range(MEMBERS) for hybrid in (True, False)]

    def one(job):
        hybrid, m = job
        name = "epi_hybrid" if hybrid else "epi_hybrid_allagents"
        out = tmp_path / f"{name}_m{m}"
        wall = run(msorch, scaled(name, 5, tmp_path, member=m), out)
        return {**member_stats(out, hybrid, pop), "wall": wall}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:    # two runs at a time on the 2 cores
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    hyb = [r for (h, _), r in zip(jobs, results) if h]
    ref = [r for (h, _), r in zip(jobs, results) if not h]
    for r in hyb + ref:
        assert np.array_equal(r["t"], hyb[0]["t"])
    names = ["city"] + [f"t{k}" for k in range(1, 10)]

    h1, r1 = hyb[0], ref[0]                              # member 0 = seed 11: the single-run comparison
    for k in range(10):
        print(f"seed 11 {names[k]:>4}: peak hybrid {h1['height'][k]:.0f} all-agent {r1['height'][k]:.0f} "
              f"({h1['height'][k] / r1['height'][k] - 1:+.3f}), peak day {h1['day'][k]:.1f} vs "
              f"{r1['day'][k]:.1f} ({h1['day'][k] - r1['day'][k]:+.1f}), own course "
              f"{h1['course'][k] - r1['course'][k]:+.1f} days, final attack "
              f"{h1['final'][k] / r1['final'][k] - 1:+.4f}")

    def mean_se(rs, key):
        a = np.array([r[key] for r in rs])               # (MEMBERS, 10)
        return a.mean(axis=0), a.std(axis=0, ddof=1) / np.sqrt(len(rs))

    hh, hh_se = mean_se(hyb, "height")
    rh, rh_se = mean_se(ref, "height")
    hd, hd_se = mean_se(hyb, "day")
    rd, rd_se = mean_se(ref, "day")
    hf, _ = mean_se(hyb, "final")
    rf, _ = mean_se(ref, "final")
    hc, _ = mean_se(hyb, "course")
    rc, _ = mean_se(ref, "course")
    height, day, final = hh / rh - 1, hd - rd, hf / rf - 1
    for k in range(10):
        print(f"mean of {MEMBERS} {names[k]:>4}: peak hybrid {hh[k]:.0f}+-{hh_se[k]:.0f} all-agent "
              f"{rh[k]:.0f}+-{rh_se[k]:.0f} ({height[k]:+.3f}), peak day {hd[k]:.2f}+-{hd_se[k]:.2f} vs "
              f"{rd[k]:.2f}+-{rd_se[k]:.2f} ({day[k]:+.2f}), own course {hc[k] - rc[k]:+.2f} days, "
              f"final attack {final[k]:+.4f}")
    cost_h, cost_r = sum(r["cost"] for r in hyb), sum(r["cost"] for r in ref)
    print(f"compute seconds over {MEMBERS} members: hybrid {cost_h:.2f} all-agent {cost_r:.2f} "
          f"(x{cost_r / cost_h:.1f}); wall per run hybrid {np.mean([r['wall'] for r in hyb]):.1f} s, "
          f"all-agent {np.mean([r['wall'] for r in ref]):.1f} s (2 at a time); ensemble wall {wall:.1f} s")
    assert np.all(np.abs(height) < 0.05)
    assert np.all(np.abs(day) <= 2.0)
    assert np.all(np.abs(final) < 0.02)
    assert cost_r / cost_h >= 10
