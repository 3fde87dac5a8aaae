"""Serial tests of ``traffic.idm`` (solvers/traffic/idm.py) against IDM theory.

Reference: Treiber, Hennecke, Helbing, PRE 62, 1805 (2000), and the string
stability criterion f_v^2/2 - f_dv f_v - f_s >= 0 quoted in
shared/references.md (Wilson's convention: dv = v_leader - v, f_v at fixed dv).
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

from solvers.traffic import idm_kernel as K
from solvers.traffic.idm import IDMParams, IDMSolver

V0, TH, S0, A, B, DELTA, LEN = 30.0, 1.5, 2.0, 1.5, 1.67, 4.0, 5.0


def v_equilibrium(gap: float) -> float:
    """v_e solving s_e(v) = (s0 + vT)/sqrt(1 - (v/v0)^delta) = gap (brentq)."""
    return brentq(lambda v: (S0 + v * TH) / np.sqrt(1 - (v / V0) ** DELTA) - gap, 0.0, V0 * (1 - 1e-14),
                  xtol=1e-14, rtol=1e-15)


def stability(a: float, rho: float) -> float:
    """f_v^2/2 - f_dv f_v - f_s at the equilibrium of density rho [veh/m]; >= 0 means string stable."""
    s = 1.0 / rho - LEN
    v = v_equilibrium(s)
    sstar = S0 + v * TH
    f_s = 2 * a * sstar ** 2 / s ** 3
    f_v = a * (-DELTA * v ** (DELTA - 1) / V0 ** DELTA - 2 * sstar * TH / s ** 2)
    f_dv = a * sstar * v / (s ** 2 * np.sqrt(a * B))
    return f_v ** 2 / 2 - f_dv * f_v - f_s


def run(params: IDMParams, steps: int, dt: float = 0.1, every: int = 0):
    s = IDMSolver(MPI.COMM_SELF, params)
    s.initialize(0.0)
    trace = []
    for k in range(steps):
        s.advance(k * dt, dt)
        if every and k % every == 0:
            trace.append(s.vehicles())
    return s, trace


@pytest.mark.parametrize("rho", [0.02, 0.04, 0.08])
def test_ring_stationary_speed_matches_equilibrium(rho):
    """IDM ring (v0 30, T 1.5, s0 2, a 1.5, b 1.67, delta 4, l 5), 100 vehicles started
    at rest with one displaced by 1 m, 300 s at dt 0.1 s (ballistic).

    Reference: the analytic equilibrium v_e from s_e(v) = (s0+vT)/sqrt(1-(v/v0)^delta)
    (Treiber et al. 2000), solved with brentq.  The density is string-stable by
    the references.md criterion (asserted), so the perturbation decays and the
    uniform flow, an exact fixed point of the discrete update, is reached:
    tolerance 0.1 % as required (measured: < 1e-7 relative).
    """
    assert stability(A, rho) >= 0
    n = 100
    s, _ = run(IDMParams(road_length=n / rho, bins=10, initial_vehicles=n, initial_speed=0.0,
                         initial_perturbation=1.0), 3000)
    v = s.vehicles()[:, K.V]
    ve = v_equilibrium(1 / rho - LEN)
    assert abs(v.mean() - ve) / ve < 1e-3
    assert np.all(np.abs(v - ve) / ve < 1e-3)
    assert s.counts()["present"] == n


def test_ring_string_unstable_develops_stop_and_go():
    """The same ring with a = 0.73 m/s^2 at a density inside the string-unstable band.

    Reference: the linear string-stability criterion of references.md; the band
    is computed here.  Started in equilibrium with one vehicle displaced 1 m, the
    speed spread must grow by orders of magnitude (linear growth, then
    saturation into stop-and-go waves where vehicles nearly stop).
    """
    a = 0.73
    rhos = np.linspace(0.005, 0.14, 271)
    unstable = rhos[[stability(a, r) < 0 for r in rhos]]
    assert len(unstable) > 0
    rho = float(np.round(0.5 * (unstable.min() + unstable.max()) * 200) / 200)   # middle of the band
    assert stability(a, rho) < 0 and stability(A, rho) >= 0
    n = 100
    s, trace = run(IDMParams(a=a, road_length=n / rho, bins=10, initial_vehicles=n,
                             initial_perturbation=1.0), 20000, every=1000)
    spread = [t[:, K.V].std() for t in trace]
    ve = v_equilibrium(1 / rho - LEN)
    final = s.vehicles()[:, K.V]
    print(f"rho={rho} v_e={ve:.3f} spread t=0:{spread[0]:.2e} t=1000s:{spread[10]:.3f} end:{final.std():.3f}"
          f" min v {final.min():.3f}")
    assert final.std() > 100 * spread[0]
    assert final.std() > 0.2 * ve
    assert final.min() < 0.2 * ve
    # the stable-acceleration ring at the same density keeps its spread small
    s2, _ = run(IDMParams(road_length=n / rho, bins=10, initial_vehicles=n, initial_perturbation=1.0), 5000)
    assert s2.vehicles()[:, K.V].std() < 1e-2 * ve


def _check_order(veh: np.ndarray, ring_length: float | None):
    gaps = np.diff(veh[:, K.X]) - veh[1:, K.LEN]
    assert np.all(gaps >= 0), gaps.min()
    if ring_length is not None and len(veh) > 1:
        assert veh[0, K.X] + ring_length - veh[0, K.LEN] - veh[-1, K.X] >= 0


@pytest.mark.parametrize("update", ["ballistic", "euler"])
def test_no_overlap_no_reversing_with_trucks(update):
    """Heterogeneous ring (30 % trucks: v0 22, T 2, a 1, l 12) in a dense stop-and-go regime.

    Invariant of the model's definition (Treiber et al. 2000 plus our clamp):
    gaps stay >= 0 and no vehicle moves backwards, at every step, for both
    integration schemes; classes are drawn with the requested fractions.
    """
    n = 300
    p = IDMParams(road_length=n * 12.0, bins=12, initial_vehicles=n, a=0.73, update=update,
                  initial_perturbation=1.0, class_fractions=(0.7, 0.3), class_v0=(30.0, 22.0),
                  class_T=(1.5, 2.0), class_a=(0.73, 1.0), class_length=(5.0, 12.0), seed=3)
    s = IDMSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    veh = s.vehicles()
    frac = np.mean(veh[:, K.CLS] == 1)
    assert 0.22 < frac < 0.38
    travelled = {int(i): 0.0 for i in veh[:, K.ID]}
    for k in range(1500):
        before = {int(i): x for i, x in zip(s.vehicles()[:, K.ID], s.vehicles()[:, K.X])}
        s.advance(k * 0.2, 0.2)
        veh = s.vehicles()
        _check_order(veh, p.road_length)
        for i, x in zip(veh[:, K.ID], veh[:, K.X]):
            d = (x - before[int(i)]) % p.road_length
            assert d < 30.0 * 0.2 + 1e-9
            travelled[int(i)] += d
        assert np.all(veh[:, K.V] >= 0)
    assert min(travelled.values()) > 0


def _open_road(**kw):
    base = dict(road="open", road_length=3000.0, bins=30, inflow="flow", inflow_flow=0.35,
                onramp_positions=(1000.0,), onramp_flows=(0.2,), offramp_positions=(2000.0,),
                offramp_fractions=(0.25,), class_fractions=(0.8, 0.2), class_v0=(30.0, 25.0),
                class_length=(5.0, 10.0), initial_vehicles=40, seed=7)
    base.update(kw)
    return IDMParams(**base)


def test_open_road_conservation_serial():
    """Open road with inflow, an on-ramp and an off-ramp: in + created = out + removed + present.

    Reference: vehicle conservation, which must hold exactly (integers) after every step.
    """
    s = IDMSolver(MPI.COMM_SELF, _open_road())
    s.initialize(0.0)
    for k in range(3000):
        s.advance(k * 0.1, 0.1)
        if k % 100 == 0:
            c = s.counts()
            assert c["initial"] + c["in"] + c["created"] == c["out"] + c["removed"] + c["present"]
            _check_order(s.vehicles(), None)
    c = s.counts()
    print(c)
    assert c["initial"] + c["in"] + c["created"] == c["out"] + c["removed"] + c["present"]
    assert c["in"] > 90 and c["created"] > 30 and c["removed"] > 20 and c["out"] > 100
    res = s.results()
    assert res["count_in"].sum() == c["in"] and res["count_removed"].sum() == c["removed"]
    assert res["count_present"].sum() == c["present"]


def test_state_restore_is_exact():
    """state() taken mid-run and restored reproduces the continuation bitwise,
    including the class-assignment streams (the next inserted vehicles' classes)."""
    s = IDMSolver(MPI.COMM_SELF, _open_road())
    s.initialize(0.0)
    for k in range(500):
        s.advance(k * 0.1, 0.1)
    snap = {k: v.copy() for k, v in s.state().items()}
    for k in range(500, 1500):
        s.advance(k * 0.1, 0.1)
    ref, ref_counts = s.vehicles(), s.counts()
    s2 = IDMSolver(MPI.COMM_SELF, _open_road())
    s2.initialize(0.0)
    s2.restore(snap)
    for k in range(500, 1500):
        s2.advance(k * 0.1, 0.1)
    assert np.array_equal(s2.vehicles(), ref)
    assert s2.counts() == ref_counts


def test_handover_out_to_in_conserves_vehicles():
    """Two open roads chained through the hand-over arrays: every vehicle that leaves
    road 1 (vehicles_out) is queued on road 2 (vehicles_in); counts must match exactly
    and the fields expose the documented (slots, 4) layout."""
    p1 = _open_road(handover=True, onramp_positions=(), onramp_flows=(), offramp_positions=(),
                    offramp_fractions=(), road_length=1000.0, bins=10)
    p2 = IDMParams(road="open", road_length=1000.0, bins=10, handover=True, inflow="none")
    r1, r2 = IDMSolver(MPI.COMM_SELF, p1), IDMSolver(MPI.COMM_SELF, p2)
    r1.initialize(0.0)
    r2.initialize(0.0)
    assert r1.fields()["vehicles_out"].shape == (p1.handover_slots, 4)
    assert r1.fields()["vehicles_out"].extensive
    sent = 0
    for k in range(2000):
        r1.advance(k * 0.1, 0.1)
        out = r1.get("vehicles_out")
        sent += int(out[:, 0].sum())
        assert np.all(out[out[:, 0] > 0, 1] >= 0)          # overshoot past the end
        r2.put("vehicles_in", out)
        r2.advance(k * 0.1, 0.1)
    c1, c2 = r1.counts(), r2.counts()
    assert sent == c1["out"] > 50
    assert c2["in"] + len(r2.mail.inbox) == sent
    assert c2["in"] == c2["out"] + c2["present"]


def test_field_shapes_and_boundary_flow():
    """Per-bin density/flow/speed have one value per bin; on a ring the flow through the
    seam per step equals the vehicles that wrapped; bin density sums to N / L * bins."""
    n, L = 200, 5000.0
    s = IDMSolver(MPI.COMM_SELF, IDMParams(road_length=L, bins=20, initial_vehicles=n))
    s.initialize(0.0)
    f = s.fields()
    assert f["density"].shape == (20,) and f["upstream_flow"].shape == (1,)
    wrapped = 0
    for k in range(600):
        s.advance(k * 0.1, 0.1)
        wrapped += s.get("downstream_flow")[0] * 0.1
    rho = s.get("density")
    assert abs(rho.sum() * L / 20 - n) < 1e-9
    ve = v_equilibrium(L / n - LEN)
    # vehicles crossing x = L in 60 s = flow * 60 = (n / L) v_e * 60, within one vehicle
    assert abs(wrapped - n / L * ve * 60.0) <= 1.0 + 1e-9
    assert np.allclose(s.get("speed"), ve, rtol=1e-6)


def test_inflow_density_boundary_delivers_equilibrium_flow():
    """Open road, inflow: density with rho_in = 0.02 veh/m (free-flow branch).

    Reference: the boundary inserts at the equilibrium flow Q_e(rho) = rho v_e(1/rho - l)
    (Treiber et al. 2000) at speed v_e, so over 600 s the entered count must equal
    Q_e * 600 s within one vehicle, and the speed at the entrance is v_e.
    """
    rho = 0.02
    s = IDMSolver(MPI.COMM_SELF, IDMParams(road="open", road_length=2000.0, bins=20, inflow="density",
                                           inflow_density=rho))
    s.initialize(0.0)
    for k in range(6000):
        s.advance(k * 0.1, 0.1)
    ve = v_equilibrium(1 / rho - LEN)
    entered = s.counts()["in"]
    print(f"entered {entered}, expected {rho * ve * 600:.2f}")
    assert abs(entered - rho * ve * 600.0) <= 1.0
    assert abs(s.get("upstream_speed")[0] - ve) < 1e-3 * ve


def test_downstream_density_limits_outflow_to_equilibrium():
    """Open road, inflow 0.3 veh/s, downstream_density input rho_d = 0.1 veh/m (gap 5 m),
    whose equilibrium flow Q_e = rho_d v_e(5 m) = 0.2 veh/s is below the demand.

    Reference: IDM equilibrium (Treiber et al. 2000): a congested state spreads back
    from the end; the last vehicles settle at v_e(5 m) and the outflow over the last
    200 s equals Q_e within 3 % (discrete departures), the last-bin density rho_d within 5 %.
    """
    rho_d = 0.1
    s = IDMSolver(MPI.COMM_SELF, IDMParams(road="open", road_length=2000.0, bins=20, inflow="flow",
                                           inflow_flow=0.3, outflow="channel"))
    s.initialize(0.0)
    ve = v_equilibrium(1 / rho_d - LEN)
    left = 0.0
    for k in range(8000):
        s.put("downstream_density", np.array([rho_d]))
        s.advance(k * 0.1, 0.1)
        if k >= 6000:
            left += s.get("downstream_flow")[0] * 0.1
    print(f"outflow {left / 200:.4f} veh/s vs Q_e {rho_d * ve:.4f}; last-bin density "
          f"{s.get('downstream_density')[0]:.4f}; last speed {s.vehicles()[-1, K.V]:.3f} vs {ve:.3f}")
    assert abs(left / 200.0 - rho_d * ve) < 0.03 * rho_d * ve
    assert abs(s.get("downstream_density")[0] - rho_d) < 0.05 * rho_d
    assert abs(s.vehicles()[-1, K.V] - ve) < 0.05 * ve
