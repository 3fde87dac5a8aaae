"""Run one IDM road on COMM_WORLD and save every vehicle's trajectory (rank 0 writes).

Usage: traffic_idm_decomp.py {open|ring} OUT.npz

Every ``EVERY`` steps the ranks' (id, x, v) rows are gathered with Gatherv and
sorted by id; the global counts are checked for exact conservation each time.
"""
import sys

import numpy as np
from mpi4py import MPI

from solvers.traffic import idm_kernel as K
from solvers.traffic.idm import IDMParams, IDMSolver
from traffic_common import run  # sibling module: a script's folder is on sys.path

STEPS, EVERY, DT = int(__import__("os").environ.get("STEPS", 2000)), 50, 0.1


def params(kind: str) -> IDMParams:
    if kind == "open":
        return IDMParams(road="open", road_length=3000.0, bins=30, inflow="flow", inflow_flow=0.35,
                         outflow="density", outflow_density=0.04,
                         onramp_positions=(1000.0,), onramp_flows=(0.2,), offramp_positions=(2000.0,),
                         offramp_fractions=(0.25,), class_fractions=(0.8, 0.2), class_v0=(30.0, 25.0),
                         class_length=(5.0, 10.0), class_a=(1.5, 0.9), initial_vehicles=0, seed=7)
    return IDMParams(road="ring", road_length=3000.0, bins=30, a=0.73, initial_vehicles=100,
                     initial_perturbation=1.0, class_fractions=(0.9, 0.1), class_length=(5.0, 12.0), seed=5)


def gather_rows(comm, veh):
    rows = np.ascontiguousarray(veh[:, [K.ID, K.X, K.V]])
    counts = np.array(comm.allgather(rows.size))          # one int per rank: tiny control data
    out = np.empty(counts.sum()) if comm.rank == 0 else None
    comm.Gatherv(rows.ravel(), [out, counts] if comm.rank == 0 else None, root=0)
    if comm.rank == 0:
        out = out.reshape(-1, 3)
        return out[np.argsort(out[:, 0], kind="stable")]
    return None


def main():
    kind, path = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    s = IDMSolver(comm, params(kind))
    s.initialize(0.0)
    snaps, balance = {}, []
    for k in range(STEPS):
        s.advance(k * DT, DT)
        if k % EVERY == 0 or k == STEPS - 1:
            c = s.counts()
            assert c["initial"] + c["in"] + c["created"] == c["out"] + c["removed"] + c["present"], c
            x = s.vehicles()[:, K.X]
            assert np.all(np.diff(x) > 0) and np.all((x >= s.seg.lo) & (x < s.seg.hi))
            rows = gather_rows(comm, s.vehicles())
            if comm.rank == 0:
                snaps[f"step{k}"] = rows
                balance.append([c[n] for n in ("initial", "in", "created", "out", "removed", "present")])
    if comm.rank == 0:
        np.savez(path, balance=np.array(balance), **snaps)
        print("counts", s.counts() if comm.size == 1 else c)


if __name__ == "__main__":
    run(main)
