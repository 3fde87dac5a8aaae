"""The example jobs jobs/idm_ring.yaml and jobs/lwr_traffic_light.yaml, driven directly.

The runtime's end-to-end tests run them through ``msorch run``; here the
``params:`` blocks are read with yaml.safe_load, turned into the solvers'
Params and stepped for the job's time span on one rank, to check that the
jobs show what their comments claim.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml
from mpi4py import MPI
from scipy.optimize import brentq

from solvers.traffic.idm import IDMSolver
from solvers.traffic.lwr import LWRSolver

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def load(name: str):
    spec = yaml.safe_load((JOBS / name).read_text())
    (solver,) = spec["solvers"].values()
    return spec["time"], solver


def build(cls, solver):
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in solver["params"].items()}
    assert set(params) <= fields
    p = cls.Params(**params)
    assert cls.check(p) == []
    s = cls(MPI.COMM_SELF, p)
    s.initialize(0.0)
    return s


def test_idm_ring_job_reaches_equilibrium():
    """Reference: analytic IDM equilibrium v_e for the 20 m gap (brentq), 0.1 %."""
    time, solver = load("idm_ring.yaml")
    assert solver["kind"] == "traffic.idm" and solver["ranks"] in (1, 2)
    s = build(IDMSolver, solver)
    dt = solver["dt"]
    n = int(round((time["end"] - time["start"]) / dt))
    for k in range(n):
        s.advance(time["start"] + k * dt, dt)
    p = s.params
    gap = p.road_length / p.initial_vehicles - p.length
    ve = brentq(lambda v: (p.s0 + v * p.T) / np.sqrt(1 - (v / p.v0) ** p.delta) - gap, 0, p.v0 * (1 - 1e-14))
    assert np.allclose(s.get("speed"), ve, rtol=1e-3)


def test_lwr_traffic_light_job_discharges_at_capacity():
    """Reference: the exact traffic-light solution, discharge v_f rho_j / 4 for all t > 0."""
    time, solver = load("lwr_traffic_light.yaml")
    s = build(LWRSolver, solver)
    dt, p = solver["dt"], s.params
    light = int(round(p.riemann_position / (p.road_length / p.cells)))
    for k in range(int(round((time["end"] - time["start"]) / dt))):
        s.advance(k * dt, dt)
        assert abs(s.interface_flux()[light] - p.v_free * p.rho_jam / 4) < 1e-12
