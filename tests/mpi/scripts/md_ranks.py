"""Run md.lj systems on however many ranks this script was started with.

Prints one JSON line (rank 0) with, per case: total/kinetic/potential energy after
the steps, the particle count and id checksum (migration conserves particles),
how many particles ended on a rank other than their initial one, and whether a
state()/restore() round trip continued bitwise.  Used by tests/mpi/test_md_ranks.py.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from mpi4py import MPI

from solvers.md.lj import LJParams, LJSolver

CASES = {
    "nve3d": dict(cells=(5, 5, 5), density=0.8442, temperature=1.0, rc=2.5, shift=True),
    "langevin_walls_force": dict(cells=(6, 6, 4), density=0.8442, temperature=1.2, rc=2.5,
                                 periodic=(True, True, False), ensemble="langevin", damping=0.5,
                                 profile_axis=2, n_bins=4, thermostat_band=(0.0, 3.0)),
    "rescale2d": dict(dim=2, lattice="hex", cells=(16, 10), density=0.75, temperature=0.8, rc=2.5,
                      ensemble="rescale", rescale_every=10, n_bins=5),
}
STEPS, DT = 200, 0.005


def checksum(comm, solver):
    ids = solver.ids[:solver.nlocal].astype(float)
    buf = np.array([len(ids), ids.sum(), (ids * ids).sum()])
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf.tolist()


def run(comm, name):
    solver = LJSolver(comm, LJParams(**CASES[name]))
    solver.initialize(0.0)
    if name == "langevin_walls_force":
        nb = solver.bins.n
        fld = np.zeros((nb, 3))
        fld[:, 0] = 0.3  # a body force along x drives a flow past the walls
        solver.put("body_force", fld[:, :] if comm.rank == 0 else fld[:0])
        solver.put("target_temperature", np.linspace(1.0, 1.4, nb) if comm.rank == 0 else np.zeros(0))
    start_ids = set(solver.ids[:solver.nlocal].tolist())
    for _ in range(STEPS // 2):
        solver.advance(0.0, DT)
    snapshot = solver.state()
    for _ in range(STEPS // 2):
        solver.advance(0.0, DT)
    first = {k: v.copy() for k, v in solver.state().items()}
    obs = solver.observables()
    out = {k: float(obs[k][0]) for k in ("total_energy", "kinetic_energy", "potential_energy")}
    moved = np.array([sum(1 for i in solver.ids[:solver.nlocal] if i not in start_ids)], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, moved, op=MPI.SUM)
    solver.restore(snapshot)
    for _ in range(STEPS // 2):
        solver.advance(0.0, DT)
    second = solver.state()
    same = all(np.array_equal(first[k], second[k]) for k in first)
    flags = np.array([0 if same else 1], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.SUM)
    out.update(ids=checksum(comm, solver), moved=int(moved[0]), restore_bitwise=bool(flags[0] == 0),
               builds=solver.n_builds, grid=solver.domain.dims.tolist())
    solver.finalize()
    return out


def main():
    comm = MPI.COMM_WORLD
    names = sys.argv[1:] or sorted(CASES)
    results = {name: run(comm, name) for name in names}
    if comm.rank == 0:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
