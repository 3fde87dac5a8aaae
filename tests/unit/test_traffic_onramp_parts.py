"""The pieces of the on-ramp hybrid (jobs/traffic_onramp.yaml): zone checks before launch, the
time-dependent demand, the largest-gap merge and the micro entry's supply."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI
from scipy.optimize import brentq, minimize_scalar

from msorch.spec import SpecError, parse_spec
from solvers.traffic import idm_kernel as K
from solvers.traffic.idm import IDMParams, IDMSolver
from solvers.traffic.lwr import LWRParams, LWRSolver

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "traffic_onramp.yaml"


def job():
    return yaml.safe_load(JOB.read_text())


def problems(data) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data))
    return [str(p) for p in info.value.problems]


def test_shipped_hybrid_job_is_valid():
    spec = parse_spec(JOB.read_text())
    assert [p.kind for p in spec.patterns] == ["road_zones"]


def test_zones_that_do_not_touch_fail_before_launch_with_paths_and_fixes():
    """A gap between the macro road's end and the micro road's start, and the overlap it makes
    downstream, are named at the pattern's zones entry with the settings to change."""
    data = job()
    data["solvers"]["merge"]["params"]["road_start"] = 13500.0
    out = problems(data)
    assert any(p.startswith("patterns[0].zones[1]: zone 'merge' starts at 13500 m") and "a gap of 500 m" in p
               and "Fix: set solvers.merge.params.road_start: 13000, or solvers.up.params.road_length: 13500" in p
               for p in out), out
    assert any(p.startswith("patterns[0].zones[2]:") and "an overlap of 500 m" in p
               and "solvers.down.params.road_start: 17000" in p for p in out), out


def test_zone_interfaces_must_be_coupled_both_ways_with_equal_steps():
    """No supply back to the macro road (the queue could not spill back), no inflow into the
    downstream road, and unequal steps (the vehicle count would not be exact) are refused."""
    data = job()
    data["couplings"] = [c for c in data["couplings"]
                         if c["to"] not in ("up.downstream_supply", "down.upstream_flow")]
    data["solvers"]["down"]["dt"] = 0.2
    data["solvers"]["down"]["params"]["dt"] = 0.2
    out = problems(data)
    assert any(p.startswith("patterns[0].zones[1]: zone 'up''s downstream_supply input is not fed by zone 'merge'")
               and "{from: merge.upstream_supply, to: up.downstream_supply}" in p for p in out), out
    assert any(p.startswith("patterns[0].zones[2]: nothing leaving zone 'merge' enters zone 'down'") for p in out), out
    assert any(p.startswith("patterns[0].zones[2]: zone 'down' steps dt = 0.2 s") for p in out), out


def test_unknown_zone_is_named_with_a_suggestion():
    data = job()
    data["patterns"][0]["zones"] = ["up", "merg", "down"]
    out = problems(data)
    assert any(p.startswith("patterns[0].zones[1]: no solver named 'merg'") and "merge" in p for p in out), out


def test_lwr_demand_profile_is_integrated_exactly():
    """Reference: the integral of the piecewise-linear profile 0.1 -> 0.5 veh/s over 0..100 s, then
    held: 30 veh by t = 100 s, + 0.5 veh/s after (the step midpoint rule is exact on linear pieces
    when the nodes fall on step ends); every vehicle is either in (count_in) or queued."""
    p = LWRParams(road_length=1000.0, cells=10, diagram="idm", inflow="flow", inflow_times=(0.0, 100.0),
                  inflow_flows=(0.1, 0.5), outflow="free")
    s = LWRSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    for k in range(500):
        s.advance(0.4 * k, 0.4)
    r = s.results()
    assert abs(r["count_in"].sum() + r["count_queued"].sum() - (30.0 + 0.5 * 100.0)) < 1e-9


def _idm(**kw):
    base = dict(road="open", road_length=3000.0, bins=30, v0=33.33, T=1.0, s0=2.0, a=1.0, b=1.5, delta=4.0,
                length=6.0)
    base.update(kw)
    s = IDMSolver(MPI.COMM_SELF, IDMParams(**base))
    s.initialize(0.0)
    return s


def test_largest_gap_merge_puts_the_ramp_vehicle_in_the_middle_of_the_largest_gap():
    """Vehicles (length 6 m) at 1010, 1150, 1400, 1460, 1650, 1800, 1990 m on a lane [1000, 2000]:
    the parts of gaps inside the lane are 4, 134, 244, 54, 184, 144, 184 and 10 m (the lane's
    ends bound the first and last); the largest, 1150..1394, gets the new front at its middle
    (1150 + 6 + 1394) / 2 = 1275 m, at its leader's speed 12 m/s."""
    s = _idm(onramp_positions=(1000.0,), onramp_flows=(10.0,), merge_zone=1000.0, merge_rule="largest_gap",
             merge_headway=0.0)
    veh = K.empty(7)
    s._set_class(veh, np.zeros(7, dtype=np.int64))
    veh[K.X] = (1010.0, 1150.0, 1400.0, 1460.0, 1650.0, 1800.0, 1990.0)
    veh[K.V] = (10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0)
    s.veh = veh
    s.src_demand[1] = 1.0
    s._insert(0.0, 0.0)
    x, v = s.veh[K.X], s.veh[K.V]
    assert len(x) == 8 and x[2] == pytest.approx(1275.0) and v[2] == 12.0
    assert s.results()["count_created"].sum() == 1


def test_entry_supply_is_the_equilibrium_supply_of_the_first_bin():
    """Reference: the IDM equilibrium Q(rho) = rho v_e(1/rho - l), v_e from s_e(v) = (s0 + vT) /
    sqrt(1 - (v/v0)^4) solved with brentq: an empty entry offers the capacity (shared/references.md:
    ~2,435 veh/h for these settings), a bin at 1/(20 m) its congested-branch flow Q(0.05)."""
    def v_e(gap):
        return brentq(lambda v: (2.0 + v) / np.sqrt(1 - (v / 33.33) ** 4) - gap, 0.0, 33.33 * (1 - 1e-12))
    cap = -minimize_scalar(lambda r: -r * v_e(1 / r - 6.0), bounds=(0.01, 0.06), method="bounded").fun
    s = _idm(inflow="channel")
    assert abs(s.entry_supply() / cap - 1) < 1e-3 and abs(cap * 3600 - 2435) < 1
    veh = K.empty(5)
    s._set_class(veh, np.zeros(5, dtype=np.int64))
    veh[K.X] = 10.0 + 20.0 * np.arange(5)          # 5 vehicles in the first 100 m bin
    s.veh = veh
    q = 0.05 * v_e(20.0 - 6.0)
    assert abs(s.entry_supply() / q - 1) < 1e-3
    s.src_demand[0] = 1.2                            # 0.2 vehicles waiting beyond the one in progress
    assert abs(s.entry_supply() - (q - 0.2 / s.last_dt)) < 1e-3 * q
