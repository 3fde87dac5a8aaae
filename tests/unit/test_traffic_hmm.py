"""Traffic HMM pieces, driven in-process: ``traffic.idm`` rings as the micro model,
``traffic.lwr`` with ``diagram: hmm`` as the macro model (issue 11, Must show 3a and 4).

The farm of the real runs (patterns: [{kind: hmm}]) is replaced here by a loop
on MPI.COMM_SELF that does what the contract says the farm does: per window,
read the macro's ``flux_query``, set ``density`` on a reused ring
(``reset``), run relax + averaging time with ``advance_batch``, average the
ring's ``flow`` and ``put`` it into ``flux_answer``.  tests/e2e/test_hmm_traffic.py
runs the same through the msorch CLI.

References: the IDM equilibrium s_e(v) = (s0 + vT)/sqrt(1 - (v/v0)^delta)
(Treiber, Hennecke, Helbing 2000), Q_e(rho) = rho v_e(1/rho - l), solved with
brentq here; ``traffic.lwr`` with ``diagram: idm`` (Godunov on the analytic
equilibrium diagram, verified in test_traffic_lwr.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

from couplings.surrogate import AnswerCache, GPSurrogate
from solvers.traffic import idm_kernel as K
from solvers.traffic.answered_diagram import AnsweredDiagram, round_nodes, van_der_corput
from solvers.traffic.idm import IDMParams, IDMSolver
from solvers.traffic.lwr import LWRParams, LWRSolver

V0, TH, S0, A, B, DELTA, LEN = 30.0, 1.5, 2.0, 1.5, 1.67, 4.0, 5.0
JAM = 1.0 / (S0 + LEN)
MIX = dict(class_fractions=(0.75, 0.25), class_v0=(30.0, 22.0), class_T=(1.5, 2.0), class_s0=(2.0, 2.0),
           class_a=(1.5, 0.8), class_b=(1.67, 1.67), class_length=(5.0, 12.0))
RING = IDMParams(road_length=2000.0, bins=1, initial_speed=0.0, initial_perturbation=1.0)


def q_equilibrium(rho: float) -> float:
    """Q_e(rho) [veh/s] of the homogeneous IDM, by brentq on s_e(v) = 1/rho - l."""
    gap = 1.0 / rho - LEN
    if gap <= S0:
        return 0.0
    v = brentq(lambda v: (S0 + v * TH) / np.sqrt(1 - (v / V0) ** DELTA) - gap, 0.0, V0 * (1 - 1e-14),
               xtol=1e-14, rtol=1e-15)
    return rho * v


def ring_answers(densities, base=RING, relax=150.0, average=150.0, dt=0.5) -> np.ndarray:
    """Mean ring flow [veh/s] after ``relax`` s, over ``average`` s, one ring per density (batched)."""
    rings = [IDMSolver(MPI.COMM_SELF, base) for _ in densities]
    for ring, rho in zip(rings, densities):
        ring.initialize(0.0)
        ring.reset(dataclasses.replace(base, density=float(rho)))
    total = np.zeros(len(rings))
    n_relax, n_avg = round(relax / dt), round(average / dt)
    for k in range(n_relax + n_avg):
        IDMSolver.advance_batch(rings, k * dt, dt)
        if k >= n_relax:
            total += [r.get("flow")[0] for r in rings]
    return total / n_avg


def run_lwr(params: LWRParams, t_end: float, dt: float, window: float, answer=None):
    """Run ``traffic.lwr``; with ``answer`` (densities -> flows), the HMM window loop.

    Returns the density field (n_windows, cells) at the window ends.
    """
    road = LWRSolver(MPI.COMM_SELF, params)
    road.initialize(0.0)
    steps = round(window / dt)
    out, t = [], 0.0
    for _ in range(round(t_end / window)):
        if answer is not None:
            road.put("flux_answer", answer(road.get("flux_query")))
        for _ in range(steps):
            road.advance(t, dt)
            t += dt
        out.append(road.get("density"))
    return np.array(out)


LIGHT = dict(road_length=3000.0, cells=300, initial_density=JAM, initial_density_right=0.0,
             riemann_position=1500.0, inflow="none", outflow="free")


def relative_l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per time: sum|a - b| / sum|b| over cells."""
    return np.abs(a - b).sum(axis=1) / np.abs(b).sum(axis=1)


# --------------------------------------------------------------------------- micro ring
def test_mixed_ring_starts_in_exact_multiclass_equilibrium():
    """25 % trucks at 0.05 veh/m: N a multiple of 4 with exactly N/4 trucks, interleaved; the density
    is exact (ring stretched); every vehicle at one speed v with its class's gap s_e^c(v) -- the
    reference is the gap formula evaluated here -- so nothing accelerates in the first step."""
    p = dataclasses.replace(RING, density=0.05, initial_speed=None, initial_perturbation=0.0, **MIX)
    ring = IDMSolver(MPI.COMM_SELF, p)
    ring.initialize(0.0)
    veh = ring.vehicles()
    n = len(veh)
    trucks = veh[:, K.CLS] == 1
    assert n % 4 == 0 and trucks.sum() == n // 4
    assert np.diff(np.flatnonzero(trucks)).max() <= 6          # spread over the ring, no platoon
    assert ring.get("density")[0] == pytest.approx(0.05, rel=1e-14)
    v = veh[:, K.V]
    assert np.all(v == v[0]) and 0 < v[0] < 22.0
    gaps = np.roll(veh[:, K.X] - veh[:, K.LEN], -1) - veh[:, K.X]
    gaps[-1] += ring.L
    expect = (veh[:, K.S0] + v * veh[:, K.T]) / np.sqrt(1 - (v / veh[:, K.V0]) ** DELTA)
    np.testing.assert_allclose(gaps, expect, rtol=1e-9)
    ring.advance(0.0, 0.5)
    np.testing.assert_allclose(ring.vehicles()[:, K.V], v, rtol=1e-9)


def test_ring_answers_within_half_percent_of_equilibrium():
    """Must show 3a (micro side): rings of the string-stable drivers at the 40 nodes of the HMM
    table, started at rest with one vehicle 1 m out of place, relaxed 150 s and averaged 150 s:
    answered flows within 0.5 % of the analytic Q_e(rho) (measured: ~1e-7)."""
    nodes = round_nodes(JAM, 40, 1)[0][:-1]            # Q_e(jam) = 0: no relative error there (below)
    flows = ring_answers(nodes)
    expect = np.array([q_equilibrium(r) for r in nodes])
    err = np.abs(flows / expect - 1)
    print(f"ring answers vs Q_e: max relative error {err.max():.2e}")
    assert err.max() < 5e-3
    assert ring_answers([JAM], relax=10.0, average=10.0)[0] < 1e-6     # jam: (almost) standstill


def test_advance_batch_equals_advance_bitwise():
    """One numba call over many rings gives bitwise what advance() gives ring by ring (mixed
    classes, vehicles wrapping around the ring every few steps)."""
    base = dataclasses.replace(RING, road_length=500.0, **MIX)
    dens = [0.01, 0.03, 0.06, 0.1]
    a = [IDMSolver(MPI.COMM_SELF, dataclasses.replace(base, density=d)) for d in dens]
    b = [IDMSolver(MPI.COMM_SELF, dataclasses.replace(base, density=d)) for d in dens]
    for s in a + b:
        s.initialize(0.0)
    for k in range(400):
        for s in a:
            s.advance(k * 0.5, 0.5)
        IDMSolver.advance_batch(b, k * 0.5, 0.5)
        if k % 97 == 0:
            assert [s.get("upstream_flow")[0] for s in a] == [s.get("upstream_flow")[0] for s in b]
    for s, t in zip(a, b):
        assert np.array_equal(s.veh, t.veh)
        assert s.get("flow")[0] == t.get("flow")[0]


def test_reset_equals_a_fresh_instance():
    """reset(new settings) on a used instance gives the state of a newly constructed one."""
    used = IDMSolver(MPI.COMM_SELF, dataclasses.replace(RING, density=0.02))
    used.initialize(0.0)
    for k in range(50):
        used.advance(k * 0.5, 0.5)
    p = dataclasses.replace(RING, density=0.07, **MIX)
    used.reset(p)
    fresh = IDMSolver(MPI.COMM_SELF, p)
    fresh.initialize(0.0)
    for key, value in fresh.state().items():
        assert np.array_equal(value, used.state()[key]), key


@pytest.mark.parametrize("change, key", [
    (dict(density=0.2), "density"),                             # above the jam density 1/7
    (dict(density=0.02, initial_vehicles=10), "density"),
    (dict(density=0.02, density_region=(0.0, 100.0)), "density_region"),   # a ring has no region
    (dict(density=0.12, **MIX), "density"),                     # mixed jam density is 1/8.75
])
def test_bad_density_settings(change, key):
    problems = IDMSolver.check(dataclasses.replace(RING, **change))
    assert [k for k, _, _ in problems] == [key]


def test_idm_query_settings_are_params():
    names = {f.name for f in dataclasses.fields(IDMParams)}
    assert "density" in IDMSolver.query_settings and set(IDMSolver.query_settings) <= names


# --------------------------------------------------------------------------- macro road
def test_hmm_traffic_light_within_one_percent_of_analytic_diagram():
    """Must show 3a (macro side): a traffic light (jam 1/7 veh/m behind x = 1500 m, empty road
    ahead, green at t = 0) on traffic.lwr with diagram: hmm, answered once per 5-s window by
    rings at 40 density nodes, against traffic.lwr with the analytic IDM diagram: relative L1
    density error below 1 % at every window end up to 60 s (measured: ~0.3 %)."""
    hmm = LWRParams(diagram="hmm", hmm_nodes=40, hmm_density_max=JAM, **LIGHT)
    cache = {}

    def answer(q):
        missing = [r for r in q if r not in cache]
        cache.update(zip(missing, ring_answers(missing)))
        return np.array([cache[r] for r in q])
    got = run_lwr(hmm, 60.0, 0.25, 5.0, answer)
    ref = run_lwr(LWRParams(diagram="idm", **LIGHT), 60.0, 0.25, 5.0)
    err = relative_l1(got, ref)
    print(f"HMM-LWR vs analytic LWR: relative L1 max {err.max():.4f}; micro runs {len(cache)}")
    assert err.max() < 0.01
    assert len(cache) == 40                     # fixed nodes: each answered once for the run


def test_answered_diagram_rounds_refine_and_restore():
    """hmm_rounds: round r asks rho_max (j + 1 - phi_r)/K, phi = 0, 1/2, 1/4, 3/4 (van der Corput);
    the table holds every answered node, and state/restore mid-refinement continues bitwise."""
    assert [van_der_corput(r) for r in range(5)] == [0.0, 0.5, 0.25, 0.75, 0.125]
    p = LWRParams(diagram="hmm", hmm_nodes=5, hmm_density_max=0.1, hmm_rounds=4, **LIGHT)
    road = LWRSolver(MPI.COMM_SELF, p)
    road.initialize(0.0)
    f = road.fields()
    assert f["flux_query"].points.shape == (5, 1) and f["flux_answer"].units == "veh/s"
    asked = []
    saved = None
    for w in range(6):
        q = road.get("flux_query")
        asked.append(q)
        road.put("flux_answer", q * (0.1 - q) * 100)       # any concave answer
        road.advance(w * 0.25, 0.25)
        if w == 1:
            saved = road.state()
    np.testing.assert_allclose(asked[1], asked[0] - 0.01)
    assert np.array_equal(asked[5], asked[3])              # after the last round it repeats
    assert road.answered.answered == 20
    again = LWRSolver(MPI.COMM_SELF, p)
    again.initialize(0.0)
    again.restore(saved)
    for w in range(2, 6):
        again.put("flux_answer", (lambda q: q * (0.1 - q) * 100)(again.get("flux_query")))
        again.advance(w * 0.25, 0.25)
    assert np.array_equal(again.get("density"), road.get("density"))


@pytest.mark.parametrize("change, key", [
    (dict(), "hmm_density_max"),
    (dict(hmm_density_max=0.1, table_flow=(0.0, 1.0)), "table_flow"),
    (dict(hmm_density_max=0.1, hmm_rounds=0), "hmm_rounds"),
])
def test_bad_hmm_diagram_settings(change, key):
    problems = LWRSolver.check(LWRParams(diagram="hmm", **{**LIGHT, **change}))
    assert key in [k for k, _, _ in problems]


def test_diagram_from_answers_gives_godunov_on_the_table():
    """Demand/supply of the answered table: running maxima, critical density at the largest
    answered node (AnsweredDiagram -> fundamental.Tabulated)."""
    d = AnsweredDiagram([np.array([0.02, 0.04, 0.06])])
    assert d.tabulated().capacity == 0.0                     # nothing answered: nothing moves
    d.store([0.3, 0.5, 0.2])
    fd = d.tabulated()
    assert fd.rho_crit == 0.04 and fd.capacity == 0.5
    assert fd.demand(0.06) == 0.5 and fd.supply(0.01) == 0.5 and fd.supply(0.05) == pytest.approx(0.35)


# --------------------------------------------------------------------------- surrogate (Must show 4)
def test_surrogate_cuts_micro_calls_tenfold_at_equal_accuracy():
    """Must show 4 (traffic): the traffic light with a table refined over 16 windows to 320 nodes
    (hmm_nodes 20, hmm_rounds 16).  Without surrogate every node is a micro run (320; the exact
    cache never hits, the nodes differ); with the GP surrogate (max_std 1e-3 veh/s, min_samples 8)
    the micro model is asked only where the GP is unsure.  Equal accuracy: both macro density
    fields within 0.5 % relative L1 of the analytic-diagram LWR at every window end, and within
    0.1 % of each other.  At least 10x fewer micro calls."""
    p = LWRParams(diagram="hmm", hmm_nodes=20, hmm_density_max=JAM, hmm_rounds=16, **LIGHT)
    calls = {"plain": 0, "gp": 0}
    cache = AnswerCache(1, 1)

    def plain(q):
        got, hit = cache.lookup(q[:, None])
        if not hit.all():
            calls["plain"] += int((~hit).sum())
            got[~hit, 0] = ring_answers(q[~hit])
            cache.add(q[~hit, None], got[~hit])
        return got[:, 0]
    gp = GPSurrogate(1, 1, max_std=1e-3, min_samples=8)
    worst_std = []

    def surrogate(q):
        mean, std = gp.predict(q[:, None])
        ok = gp.confident(std)
        if ok.any():
            worst_std.append(std[ok].max())
        if not ok.all():
            calls["gp"] += int((~ok).sum())
            mean[~ok, 0] = ring_answers(q[~ok])
            gp.add(q[~ok, None], mean[~ok])
        return np.maximum(mean[:, 0], 0.0)
    ref = run_lwr(LWRParams(diagram="idm", **LIGHT), 60.0, 0.25, 2.0)
    a = run_lwr(p, 60.0, 0.25, 2.0, plain)
    b = run_lwr(p, 60.0, 0.25, 2.0, surrogate)
    ea, eb, eab = relative_l1(a, ref), relative_l1(b, ref), relative_l1(b, a)
    print(f"micro calls without surrogate {calls['plain']}, with {calls['gp']} "
          f"({calls['plain'] / calls['gp']:.1f}x fewer); L1 vs analytic {ea.max():.4f} / {eb.max():.4f}, "
          f"between them {eab.max():.5f}; largest std of a surrogate answer {max(worst_std):.2e}")
    assert calls["plain"] == 320
    assert calls["plain"] >= 10 * calls["gp"]
    assert ea.max() < 5e-3 and eb.max() < 5e-3 and eab.max() < 1e-3
