"""The Solver API contract of the three traffic solvers on COMM_WORLD.

For every output, get() has exactly the shape fields() declares (0 rows on
ranks that do not hold a road end); every input accepts an array of its
declared shape; state() -> restore() continues bitwise.  Prints "contract ok".
"""
import sys

import numpy as np
from mpi4py import MPI

from solvers.traffic.idm import IDMParams, IDMSolver
from solvers.traffic.lwr import LWRParams, LWRSolver
from solvers.traffic.nasch import NaSchParams, NaSchSolver
from traffic_common import run  # sibling module: a script's folder is on sys.path

CASES = [
    (IDMSolver, IDMParams(road="open", road_length=3000.0, bins=12, inflow="channel", outflow="channel",
                          handover=True, initial_vehicles=30), 0.1),
    (IDMSolver, IDMParams(road_length=3000.0, bins=12, initial_vehicles=60), 0.1),
    (NaSchSolver, NaSchParams(road="open", cells=600, bins=12, inflow="channel", handover=True,
                              initial_density=0.1), 1.0),
    (LWRSolver, LWRParams(cells=60, diagram="tabulated", table_density=tuple(np.linspace(0, 0.2, 21)),
                          inflow="channel_flow", outflow="channel_supply", initial_density=0.05), 0.2),
]


def inputs_for(name, shape):
    value = {"upstream_flow": 0.4, "upstream_density": 0.02, "downstream_density": 0.03,
             "downstream_supply": 1.0}.get(name)
    if value is not None:
        return np.full(shape, value)
    if name == "fundamental_flow":
        d = np.linspace(0, 0.2, 21)[:shape[0]]
        return 30.0 * d * (1 - d / 0.2)
    data = np.zeros(shape)                          # vehicles_in: one vehicle in the first row
    if shape[0]:
        data[0] = (1.0, 0.0, 10.0, 0.0)
    return data


def drive(cls, params, dt, steps):
    s = cls(MPI.COMM_WORLD, params)
    s.initialize(0.0)
    outs, ins = cls.field_names(params)
    f = s.fields()
    assert set(outs) | set(ins) <= set(f), (set(outs) | set(ins)) - set(f)
    for k in range(steps):
        for name in ins:
            s.put(name, inputs_for(name, f[name].shape))
        s.advance(k * dt, dt)
        for name in outs:
            got = np.asarray(s.get(name))
            assert got.shape == f[name].shape, (cls.__name__, name, got.shape, f[name].shape)
            assert np.all(np.isfinite(got)), name
    res = s.results()
    n_pts = len(s.result_points())
    assert all(len(v) == n_pts for v in res.values())
    return s


def main():
    for cls, params, dt in CASES:
        s = drive(cls, params, dt, 60)
        snap = {k: v.copy() for k, v in s.state().items()}
        for k in range(30):
            s.advance(k * dt, dt)
        ref = {k: v.copy() for k, v in s.state().items()}
        s.restore(snap)
        for k in range(30):
            s.advance(k * dt, dt)
        again = s.state()
        for k in ref:
            assert np.array_equal(ref[k], again[k]), (cls.__name__, k)
    if MPI.COMM_WORLD.rank == 0:
        print("contract ok")


if __name__ == "__main__":
    run(main)
