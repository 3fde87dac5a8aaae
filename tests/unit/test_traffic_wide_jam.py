"""The ``idm_wide_jam`` LWR diagram of jobs/traffic_onramp.yaml, and the measurement behind it.

The on-ramp scenario's IDM (v0 = 33.33 m/s, T = 1 s, s0 = 2 m, a = 1 m/s^2, b = 1.5 m/s^2,
delta = 4, l = 6 m; issue 12) is string-unstable in congestion: its queues are wide moving jams.
The diagram's congested branch is the straight line from the free state carrying the demand
q_in = 2,200 veh/h to (jam_density, 0).  Its slope must be the speed of a wide jam's upstream
front in the IDM itself, which the first test measures with traffic.idm (the peer model):
a standing jam at the end of an open road, fed by q_in.
"""
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from conftest import ROOT
from solvers.traffic.fundamental import idm_diagram, idm_wide_jam_diagram
from solvers.traffic.idm import IDMParams, IDMSolver
from solvers.traffic.lwr import LWRParams, LWRSolver

JOB = ROOT / "jobs" / "traffic_onramp.yaml"


def shipped():
    """(idm settings, jam_inflow, jam_density) of the upstream LWR road of the on-ramp job."""
    p = yaml.safe_load(JOB.read_text())["solvers"]["up"]["params"]
    assert p["diagram"] == "idm_wide_jam"
    idm = tuple(p["idm_" + k] for k in ("v0", "T", "s0", "delta", "length"))
    return idm, p["jam_inflow"], p["jam_density"]


def shipped_discharge():
    """The capacity-drop discharge [veh/s] of both LWR roads of the on-ramp job (equal)."""
    spec = yaml.safe_load(JOB.read_text())["solvers"]
    values = {spec[z]["params"]["discharge"] for z in ("up", "down")}
    assert len(values) == 1
    return values.pop()


def jam_discharge(q_in, road=12000.0, release=900.0, t_end=2400.0, dt=0.4):
    """Outflow [veh/s] and downstream-front speed [m/s] (< 0) of a wide moving jam of the IDM: an
    open road fed by q_in [veh/s] ends at a standing virtual leader (outflow density 1/(s0 + l))
    until ``release`` [s], so a wide jam builds up from the end; then the leader goes (free
    outflow) and the jam discharges downstream while still fed upstream.  The outflow is the slope
    of the vehicles that left the road over the last 1,200 s; the front is the downstream edge of
    the slow (< 1 m/s) bins, fitted linearly over the same time."""
    p = IDMParams(road="open", road_length=road, bins=600, v0=33.33, T=1.0, s0=2.0, a=1.0, b=1.5,
                  delta=4.0, length=6.0, inflow="flow", inflow_flow=q_in, outflow="channel")
    s = IDMSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    s.put("downstream_density", np.array([1.0 / 8.0]))
    upper = s.seg.centers[:, 0] + 0.5 * road / 600
    rec = []
    for k in range(int(round(t_end / dt))):
        if k == int(round(release / dt)):
            s.put("downstream_density", np.array([0.0]))
        s.advance(k * dt, dt)
        if (k + 1) % 250 == 0 and (k + 1) * dt >= t_end - 1200.0:
            v, d = s.get("speed"), s.get("density")
            slow = np.nonzero((v < 1.0) & (d > 0))[0]
            assert len(slow), "the jam dissolved before the end of the measurement"
            rec.append(((k + 1) * dt, s.results()["count_out"].sum(), upper[slow[-1]]))
    rec = np.array(rec)
    return np.polyfit(rec[:, 0], rec[:, 1], 1)[0], np.polyfit(rec[:, 0], rec[:, 2], 1)[0]


def jam_front(q_in, road=12000.0, t_end=1800.0, dt=0.4):
    """Front speed [m/s] (< 0) and mean density [veh/m] of a wide jam in the IDM: an empty open
    road fed by q_in [veh/s], ending at a standing virtual leader (outflow density 1/(s0 + l),
    whose equilibrium speed is 0); the front is the upstream edge of the slow (< 1 m/s) bins,
    fitted linearly while it is more than 1.5 km from either end."""
    p = IDMParams(road="open", road_length=road, bins=600, v0=33.33, T=1.0, s0=2.0, a=1.0, b=1.5,
                  delta=4.0, length=6.0, inflow="flow", inflow_flow=q_in, outflow="density",
                  outflow_density=1.0 / 8.0)
    s = IDMSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    edges = s.seg.centers[:, 0] - 0.5 * road / 600
    rec = []
    for k in range(int(round(t_end / dt))):
        s.advance(k * dt, dt)
        if (k + 1) % 250 == 0:
            v, d = s.get("speed"), s.get("density")
            slow = np.nonzero((v < 1.0) & (d > 0))[0]
            if len(slow) and 1500.0 < edges[slow[0]] < road - 1500.0:
                rec.append(((k + 1) * dt, edges[slow[0]], d[slow[0]:].mean()))
    rec = np.array(rec)
    assert len(rec) >= 8, "too few samples of the jam front"
    return np.polyfit(rec[:, 0], rec[:, 1], 1)[0], rec[:, 2].mean()


def test_shipped_congested_branch_is_the_measured_wide_jam_front():
    """Reference: the IDM itself (traffic.idm, serial).  The measured front speed of a wide jam
    fed by the job's jam_inflow equals the slope of the diagram's congested branch within 1 %
    (a line fitted to the front's 20 m-bin positions every 100 s over ~1,100 s resolves it to
    ~0.3 %), and
    the measured jam density is the shipped jam_density within 1 %."""
    (v0, T, s0, delta, length), q_in, rho_jam = shipped()
    w, rho_meas = jam_front(q_in)
    fd = idm_wide_jam_diagram(v0, T, s0, delta, length, q_in, rho_jam)
    rho_in = np.interp(q_in, fd.q[:np.argmax(fd.q) + 1], fd.rho[:np.argmax(fd.q) + 1])
    slope = (fd.flow(rho_jam) - fd.flow(0.5 * (rho_in + rho_jam))) / (0.5 * (rho_jam - rho_in))
    print(f"wide jam fed by {q_in * 3600:.0f} veh/h: front {w:.3f} m/s (diagram {slope:.3f}), "
          f"jam density {rho_meas * 1000:.1f} veh/km (shipped {rho_jam * 1000:.1f})")
    assert w < 0
    assert abs(w / slope - 1) < 0.01
    assert abs(rho_meas / rho_jam - 1) < 0.01


def test_wide_jam_diagram_shape():
    """Reference: the IDM equilibrium diagram (fundamental.idm_diagram) and the line through
    (rho_in, q_in) and (jam_density, 0), analytic."""
    q_in, rho_jam = 2200 / 3600, 0.128
    eq = idm_diagram(33.33, 1.0, 2.0, 4.0, 6.0)
    fd = idm_wide_jam_diagram(33.33, 1.0, 2.0, 4.0, 6.0, q_in, rho_jam)
    k = int(np.argmax(eq.q))
    rho_in = np.interp(q_in, eq.q[:k + 1], eq.rho[:k + 1])
    free = np.linspace(0, eq.rho[k], 50)
    assert np.allclose(fd.flow(free), eq.flow(free), rtol=2e-3, atol=1e-6)   # 10x thinned table
    assert fd.capacity == pytest.approx(eq.capacity, rel=1e-12)
    cong = np.linspace(eq.rho[k] + 0.0025, rho_jam, 20)
    line = q_in * (rho_jam - cong) / (rho_jam - rho_in)
    assert np.allclose(fd.flow(cong), line, rtol=1e-9, atol=1e-12)
    assert fd.flow(rho_jam) == 0.0
    with pytest.raises(ValueError, match="jam_inflow"):
        idm_wide_jam_diagram(33.33, 1.0, 2.0, 4.0, 6.0, 0.7, rho_jam)
    assert LWRSolver.check(LWRParams(diagram="idm_wide_jam", jam_inflow=0.9, cells=10))[0][0] == "diagram"


@pytest.mark.parametrize("order", [1, 2])
def test_lwr_front_of_a_jam_moves_at_the_jam_speed(order):
    """Reference: Rankine-Hugoniot, s = (q_in - 0) / (rho_in - rho_jam) for the Riemann problem
    free state (rho_in, q_in) | jam (rho_jam, 0), a contact of the linear congested branch.
    The density half-way between the two states must travel at s within 2 cells over 600 s
    (first-order Godunov smears a contact symmetrically, so its midpoint moves at s)."""
    q_in, rho_jam = 2200 / 3600, 0.128
    fd = idm_wide_jam_diagram(33.33, 1.0, 2.0, 4.0, 6.0, q_in, rho_jam)
    k = int(np.argmax(fd.q))
    rho_in = float(np.interp(q_in, fd.q[:k + 1], fd.rho[:k + 1]))
    p = LWRParams(road_length=10000.0, cells=200, diagram="idm_wide_jam", idm_v0=33.33, idm_T=1.0,
                  idm_s0=2.0, idm_delta=4.0, idm_length=6.0, jam_inflow=q_in, jam_density=rho_jam,
                  initial_density=rho_in, initial_density_right=rho_jam, riemann_position=8000.0,
                  inflow="density", inflow_density=rho_in, outflow="closed", dt=0.4, order=order)
    s = LWRSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    t_end = 600.0
    for k in range(int(round(t_end / 0.4))):
        s.advance(k * 0.4, 0.4)
    rho, x = s.get("density"), s.seg.centers[:, 0]
    mid = 0.5 * (rho_in + rho_jam)
    i = int(np.argmax(rho > mid))
    pos = x[i - 1] + (mid - rho[i - 1]) / (rho[i] - rho[i - 1]) * (x[i] - x[i - 1])
    expect = 8000.0 - q_in / (rho_jam - rho_in) * t_end
    lo, hi = rho_in + 0.1 * (rho_jam - rho_in), rho_in + 0.9 * (rho_jam - rho_in)
    width = np.count_nonzero((rho > lo) & (rho < hi)) * 50.0
    print(f"order {order}: LWR jam front after {t_end:.0f} s at {pos:.0f} m, Rankine-Hugoniot {expect:.0f} m, "
          f"10-90 % width {width:.0f} m")
    assert abs(pos - expect) < 2 * 50.0
    # a contact is not self-sharpening: Godunov smears it like sqrt(t) (measured 1,100 m after 600 s),
    # MUSCL-Hancock with the MC limiter keeps it within a few cells (measured 250 m = 5 cells)
    assert width <= (1500.0 if order == 1 else 400.0)


def test_shipped_discharge_is_the_measured_wide_jam_outflow():
    """Reference: the IDM itself (traffic.idm, serial), independent of the on-ramp comparison.
    A wide moving jam fed by the job's jam_inflow discharges at the shipped ``discharge`` within
    1 % (integer vehicle counts over 1,200 s: ~630 vehicles, so counting resolves ~0.2 %), and its
    downstream front moves at -q_out / (rho_jam - rho_out) within 3 % (kinematic-wave jump condition
    between the jam and the free IDM equilibrium state rho_out carrying q_out: the discharge state
    is free, i.e. this IDM has a capacity drop: q_out < capacity 2,435 veh/h)."""
    (v0, T, s0, delta, length), q_in, rho_jam = shipped()
    q_out, w = jam_discharge(q_in)
    eq = idm_diagram(v0, T, s0, delta, length)
    k = int(np.argmax(eq.q))
    rho_out = float(np.interp(q_out, eq.q[:k + 1], eq.rho[:k + 1]))
    w_jump = -q_out / (rho_jam - rho_out)
    print(f"wide jam fed by {q_in * 3600:.0f} veh/h discharges {q_out * 3600:.1f} veh/h (shipped "
          f"{shipped_discharge() * 3600:.1f}; capacity {eq.capacity * 3600:.0f}); downstream front {w:.3f} m/s "
          f"(jump condition {w_jump:.3f} m/s, free discharge state {rho_out * 1000:.1f} veh/km)")
    assert abs(q_out / shipped_discharge() - 1) < 0.01
    assert q_out < 0.9 * eq.capacity
    assert abs(w / w_jump - 1) < 0.03


@pytest.mark.parametrize("order", [1, 2])
def test_lwr_capacity_drop_discharges_a_jam_at_the_discharge_flow(order):
    """Reference: the model definition (Jin, Gan & Lo 2015 kinematic-wave capacity drop): a jam
    (jam_density) released onto an empty road discharges at exactly ``discharge`` (a congested
    cell's demand), not at the capacity; without it, the Godunov solution discharges at the
    capacity through the upper concave hull (measured: ~2,320 veh/h at the road end).  Vehicles
    are conserved to 1e-12 relative."""
    (v0, T, s0, delta, length), q_in, rho_jam = shipped()
    q_out = shipped_discharge()
    rates = []
    for dis in (0.0, q_out):
        p = LWRParams(road_length=10000.0, cells=200, diagram="idm_wide_jam", idm_v0=v0, idm_T=T, idm_s0=s0,
                      idm_delta=delta, idm_length=length, jam_inflow=q_in, jam_density=rho_jam,
                      initial_density=rho_jam, initial_density_right=0.0, riemann_position=6000.0,
                      inflow="none", outflow="free", dt=0.4, discharge=dis, order=order)
        s = LWRSolver(MPI.COMM_SELF, p)
        s.initialize(0.0)
        rec = []
        for k in range(1500):
            s.advance(k * 0.4, 0.4)
            if (k + 1) % 50 == 0 and k * 0.4 >= 300.0:
                rec.append(((k + 1) * 0.4, s.counts()["out"]))
        rec = np.array(rec)
        rates.append(np.polyfit(rec[:, 0], rec[:, 1], 1)[0])
        c = s.counts()
        assert abs(c["initial"] - c["out"] - c["present"]) < 1e-12 * c["initial"]
    print(f"order {order}: LWR jam discharge {rates[0] * 3600:.1f} veh/h without, {rates[1] * 3600:.1f} "
          f"veh/h with discharge {q_out * 3600:.1f}")
    assert rates[1] == pytest.approx(q_out, rel=1e-6)
    assert rates[0] > 1.2 * q_out


# Speeds of a wide jam's fronts in the IDM, measured by the tests above with traffic.idm (printed
# there): upstream front fed by the job's 2,200 veh/h (test_shipped_congested_branch_...: -5.800 m/s),
# downstream front discharging into the free state (test_shipped_discharge_...: -4.780 m/s).
IDM_UPSTREAM_FRONT, IDM_DOWNSTREAM_FRONT = -5.800, -4.780


def two_phase_road(t_end=1500.0, dt=0.4, restart_at=None):
    """An order-1 LWR road (20 km, 50 m cells) with ``phases: wide_jam`` and the on-ramp job's
    measured settings: free traffic of q_in = jam_inflow upstream of 14 km, a 1 km wide jam
    (jam_density) on 14-15 km, empty road after it.  Returns the fitted speeds [m/s] of the jam's
    upstream and downstream edges (first / last JAM cell, sampled every 10 s), the solver, and
    (with ``restart_at`` steps) the solver's state at that step."""
    (v0, T, s0, delta, length), q_in, rho_jam = shipped()
    eq = idm_diagram(v0, T, s0, delta, length)
    k = int(np.argmax(eq.q))
    rho_in = float(np.interp(q_in, eq.q[:k + 1], eq.rho[:k + 1]))
    p = LWRParams(road_length=20000.0, cells=400, diagram="idm_wide_jam", idm_v0=v0, idm_T=T, idm_s0=s0,
                  idm_delta=delta, idm_length=length, jam_inflow=q_in, jam_density=rho_jam,
                  discharge=shipped_discharge(), phases="wide_jam", initial_density=rho_in,
                  riemann_position=14000.0, inflow="flow", inflow_flow=q_in, outflow="free", dt=dt)
    s = LWRSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    x = s.seg.centers[:, 0]
    s.rho[(x > 14000.0) & (x < 15000.0)] = rho_jam
    s.rho[x > 15000.0] = 0.0
    s.jam = (s.rho >= rho_jam).astype(np.float64)
    s.cum["initial"] = s.rho * s.dx
    rec, saved = [], None
    for n in range(int(round(t_end / dt))):
        if n == restart_at:
            saved = s.state()
        s.advance(n * dt, dt)
        if (n + 1) % 25 == 0:
            j = np.flatnonzero(s.jam)
            rec.append(((n + 1) * dt, j[0] * s.dx, (j[-1] + 1) * s.dx))
    rec = np.array(rec)
    return np.polyfit(rec[:, 0], rec[:, 1], 1)[0], np.polyfit(rec[:, 0], rec[:, 2], 1)[0], s, saved


def test_two_phase_lwr_moves_both_jam_fronts_at_the_measured_idm_speeds():
    """Reference: the IDM itself -- the two front speeds of a wide jam measured with traffic.idm by
    the tests above (constants IDM_*_FRONT).  One LWR diagram cannot give both (N1, issue 12): the
    two-phase cell rule must, within 2 %: the upstream front advances one cell per
    (rho_jam - rho_in) dx / q_in, the downstream one per (rho_jam - rho_out) dx / discharge, so
    the error left is the measurement's (jump conditions -5.806 / -4.785 m/s vs measured
    -5.800 / -4.780) plus cell quantisation of a 7-9 km fit (< 0.3 %).  Behind the jam the road is
    in the free discharge state rho_out (the IDM's equilibrium carrying the discharge: 17.9 veh/km),
    not a congested state; vehicles are conserved to 1e-12 relative."""
    up, down, s, _ = two_phase_road()
    print(f"two-phase LWR jam fronts: upstream {up:.3f} m/s (IDM {IDM_UPSTREAM_FRONT}), downstream "
          f"{down:.3f} m/s (IDM {IDM_DOWNSTREAM_FRONT}); discharge state {s.rho_out * 1000:.2f} veh/km")
    assert up == pytest.approx(IDM_UPSTREAM_FRONT, rel=0.02)
    assert down == pytest.approx(IDM_DOWNSTREAM_FRONT, rel=0.02)
    j = np.flatnonzero(s.jam)
    behind = s.rho[j[-1] + 2:j[-1] + 12]               # 500 m downstream of the draining cell
    assert np.allclose(behind, s.rho_out, rtol=1e-6) and s.rho_out == pytest.approx(0.0179, abs=2e-4)
    assert np.all(s.rho[j[0]:j[-1]] == pytest.approx(s.params.jam_density, rel=1e-9))   # one-cell fronts
    c = s.counts()
    assert abs(c["initial"] + c["in"] - c["out"] - c["present"]) < 1e-12 * c["present"]


def test_two_phase_lwr_restarts_bitwise_and_checks_its_settings():
    """Reference: the uninterrupted run (the phase flags are state: a run restored from a state
    taken half-way must end bitwise equal).  Settings: phases need order 1, a discharge and a
    fixed diagram; the default (phases: none) is unchanged."""
    _, _, s, saved = two_phase_road(t_end=400.0, restart_at=500)
    r = LWRSolver(MPI.COMM_SELF, s.params)
    r.initialize(0.0)
    r.restore(saved)
    for n in range(500, 1000):
        r.advance(n * 0.4, 0.4)
    assert np.array_equal(r.rho, s.rho) and np.array_equal(r.jam, s.jam) and np.any(r.jam)
    (v0, T, s0, delta, length), q_in, rho_jam = shipped()
    base = dict(diagram="idm_wide_jam", idm_v0=v0, idm_T=T, idm_s0=s0, idm_delta=delta, idm_length=length,
                jam_inflow=q_in, jam_density=rho_jam, cells=10)
    assert LWRSolver.check(LWRParams(**base, discharge=0.5, phases="wide_jam")) == []
    assert [q[0] for q in LWRSolver.check(LWRParams(**base, discharge=0.5, phases="wide_jam", order=2))] == ["phases"]
    assert [q[0] for q in LWRSolver.check(LWRParams(**base, phases="wide_jam"))] == ["discharge"]
    assert LWRParams().phases == "none"
