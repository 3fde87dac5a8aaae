"""traffic.sumo (SUMO through libsumo, solvers/traffic/sumo.py) against traffic.idm and the
IDM's analytic equilibrium.

References: the IDM equilibrium (Treiber, Hennecke, Helbing 2000) s_e(v) =
(s0 + vT)/sqrt(1 - (v/v0)^delta) = gap, solved by brentq to 1e-14; msorch's own
traffic.idm on the same ring (both integrate the same IDM with the ballistic
update from the same start, so they agree to round-off while the ring relaxes).
"""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libsumo") is None or shutil.which("netconvert") is None,
    reason="SUMO not installed (apt-get install sumo sumo-tools: libsumo and netconvert)")

from solvers.traffic.idm import IDMParams, IDMSolver  # noqa: E402
from solvers.traffic.sumo import SumoParams, SumoSolver  # noqa: E402

RING = dict(road="ring", road_length=5000.0, bins=20, v0=30.0, T=1.5, s0=2.0, a=1.5, b=1.67, delta=4.0,
            length=5.0, update="ballistic", initial_vehicles=200, initial_speed=0.0, initial_perturbation=1.0)


def v_equilibrium(gap, v0=30.0, T=1.5, s0=2.0, delta=4.0):
    return brentq(lambda v: (s0 + v * T) / np.sqrt(1 - (v / v0) ** delta) - gap, 0, v0 * (1 - 1e-14), xtol=1e-14)


def test_idm_ring_mean_speed_equals_traffic_idm_and_equilibrium():
    """200 vehicles on 5 km (gap 20 m), started at rest, 120 s at dt = 0.1 s (the
    idm_ring job): SUMO's mean speed is within 1e-6 of traffic.idm's and of v_e at the
    end, and within 1e-6 of traffic.idm's at every 10 s while the ring relaxes; vehicles
    are conserved."""
    s = SumoSolver(MPI.COMM_SELF, SumoParams(**RING))
    s.initialize(0.0)
    i = IDMSolver(MPI.COMM_SELF, IDMParams(**RING))
    i.initialize(0.0)
    try:
        for k in range(1200):
            s.advance(0.1 * k, 0.1)
            i.advance(0.1 * k, 0.1)
            if k % 100 == 99:
                assert abs(s.mean_speed() - i.speeds().mean()) < 1e-6
        ve = v_equilibrium(20.0)
        print(f"mean speed: SUMO {s.mean_speed():.9f}, traffic.idm {i.speeds().mean():.9f}, v_e {ve:.9f}")
        assert abs(s.mean_speed() - ve) < 1e-6
        assert s.counts()["present"] == 200
        np.testing.assert_allclose(s.get("density").sum(), 200 / 250.0)
    finally:
        s.finalize()


def test_restore_is_bitwise():
    """SUMO's saved state (17 digits, its RNG) inside state(): 200 steps after restore()
    give bitwise the same per-edge speeds as the uninterrupted run."""
    s = SumoSolver(MPI.COMM_SELF, SumoParams(**RING))
    s.initialize(0.0)
    try:
        for k in range(100):
            s.advance(0.1 * k, 0.1)
        saved = s.state()
        for k in range(200):
            s.advance(0.1 * k, 0.1)
        first = s.get("speed").copy()
        s.restore(saved)
        for k in range(200):
            s.advance(0.1 * k, 0.1)
        np.testing.assert_array_equal(s.get("speed"), first)
    finally:
        s.finalize()


def test_check_reports_unknown_edges_and_missing_files(tmp_path):
    """Validation without starting SUMO: edges named for the coupling that the network
    lacks, a missing net or route file, a dt that differs from SUMO's step."""
    from solvers.traffic.sumo_network import write_road
    net, ids = write_road(tmp_path, 3, 100.0, 40.0, ring=False)
    probs = SumoSolver.check(SumoParams(road="open", net_file=str(net), edges=("e0", "e7")))
    assert any(k == "edges" and "'e7'" in m for k, m, _ in probs)
    assert SumoSolver.check(SumoParams(road="open", net_file=str(net), edges=tuple(ids))) == []
    probs = SumoSolver.check(SumoParams(road="open", net_file=str(tmp_path / "no.net.xml"), edges=("e0",)))
    assert any(k == "net_file" for k, _, _ in probs)
    probs = SumoSolver.check(SumoParams(road="open", route_file=str(tmp_path / "no.rou.xml")))
    assert any(k == "route_file" for k, _, _ in probs)
    s = SumoSolver(MPI.COMM_SELF, SumoParams(road="open", road_length=1000.0, bins=5, step_length=0.2))
    s.initialize(0.0)
    try:
        with pytest.raises(ValueError, match="step_length"):
            s.advance(0.0, 0.1)
    finally:
        s.finalize()


def test_handover_rows_in_and_out():
    """Hand-over: 5 vehicles queued through vehicles_in on a 600 m road enter one by one
    (desired gap), drive to the end and leave through vehicles_out with their speed;
    counts: in = out + present at every step, and all 5 come out."""
    s = SumoSolver(MPI.COMM_SELF, SumoParams(road="open", road_length=600.0, bins=6, handover=True,
                                             handover_slots=4))
    s.initialize(0.0)
    try:
        rows = np.zeros((4, 4))
        rows[:, 0], rows[:, 2] = 1.0, 20.0
        s.put("vehicles_in", rows)
        s.put("vehicles_in", rows[:1])
        out = 0
        for k in range(900):
            s.advance(0.1 * k, 0.1)
            rep = s.get("vehicles_out")
            out += int(rep[:, 0].sum())
            assert np.all(rep[rep[:, 0] > 0, 2] > 0)
            c = s.counts()
            assert c["in"] == c["out"] + c["present"]
        assert out == 5 and s.counts()["in"] == 5
    finally:
        s.finalize()


def test_fatal_teleport_ends_the_run():
    """teleport: fatal: the front vehicle of 10 on an open road is held at speed 0
    (TraCI), so SUMO teleports it once it has waited time_to_teleport = 5 s; the adapter
    raises, naming the vehicle, instead of letting the vehicle balance break.  With
    teleport: never (the default) the same blockage only makes vehicles wait."""
    for policy in ("fatal", "never"):
        s = SumoSolver(MPI.COMM_SELF, SumoParams(road="open", road_length=1000.0, bins=5, initial_vehicles=10,
                                                 initial_speed=10.0, teleport=policy, time_to_teleport=5.0))
        s.initialize(0.0)
        try:
            ids = s.sumo.vehicle.getIDList()
            front = max(ids, key=lambda v: s.offset[s.sumo.vehicle.getRoadID(v)] + s.sumo.vehicle.getLanePosition(v))
            s.sumo.vehicle.setSpeed(front, 0.0)
            if policy == "fatal":
                with pytest.raises(RuntimeError, match=f"teleported vehicle.*'{front}'"):
                    for k in range(300):
                        s.advance(0.1 * k, 0.1)
            else:
                for k in range(300):
                    s.advance(0.1 * k, 0.1)
                assert s.counts()["present"] == 10
        finally:
            s.finalize()
