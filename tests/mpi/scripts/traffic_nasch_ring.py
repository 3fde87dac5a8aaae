"""A NaSch ring on COMM_WORLD; rank 0 saves the gathered cars and the flow history.

Usage: traffic_nasch_ring.py P VMAX OUT.npz
"""
import sys

import numpy as np
from mpi4py import MPI

from solvers.traffic.nasch import NaSchParams, NaSchSolver
from traffic_common import run  # sibling module: a script's folder is on sys.path

L, STEPS, WARM = 3000, 1500, 300


def main():
    p, vmax, path = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    comm = MPI.COMM_WORLD
    s = NaSchSolver(comm, NaSchParams(cells=L, bins=30, vmax=vmax, p=p, initial_density=0.3, seed=17))
    s.initialize(0.0)
    flows = []
    for k in range(STEPS):
        s.advance(float(k), 1.0)
        assert np.all(np.diff(s.pos) > 0) and np.all((s.pos >= s.lo) & (s.pos < s.hi))
        tot = np.zeros(2, dtype=np.int64)
        comm.Allreduce(np.array([s.vel.sum(), len(s.pos)], dtype=np.int64), tot)
        flows.append(tot)
    counts = np.array(comm.allgather(len(s.pos)))
    pos = np.empty(counts.sum(), dtype=np.int64) if comm.rank == 0 else None
    vel = np.empty(counts.sum(), dtype=np.int64) if comm.rank == 0 else None
    comm.Gatherv(s.pos, [pos, counts] if comm.rank == 0 else None, root=0)
    comm.Gatherv(s.vel, [vel, counts] if comm.rank == 0 else None, root=0)
    if comm.rank == 0:
        flows = np.array(flows)
        np.savez(path, pos=pos, vel=vel, flows=flows)
        print("J", flows[WARM:, 0].sum() / ((STEPS - WARM) * L))


if __name__ == "__main__":
    run(main)
