"""An LWR road with ramps on COMM_WORLD; rank 0 saves the gathered densities.

Usage: traffic_lwr_decomp.py OUT.npz [ORDER [DISCHARGE [INITIAL]]]

ORDER 1 (Godunov, default) or 2 (MUSCL-Hancock, which reads two cells across a
rank border); DISCHARGE [veh/s] > 0 adds the capacity drop; INITIAL [veh/m]
(default 0.03; above the critical 0.1 the road starts as a queue that
discharges).

The diagram is a table that arrives through the ``fundamental_flow`` input on
rank 0 only (as a channel would deliver it) and is shared by the solver.
"""
import sys

import numpy as np
from mpi4py import MPI

from solvers.traffic.lwr import LWRParams, LWRSolver
from traffic_common import run  # sibling module: a script's folder is on sys.path

DENS = np.linspace(0.0, 0.2, 101)


def main():
    path = sys.argv[1]
    order = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    discharge = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    initial = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03
    comm = MPI.COMM_WORLD
    p = LWRParams(cells=90, diagram="tabulated", table_density=tuple(DENS), inflow="flow", inflow_flow=1.0,
                  onramp_positions=(333.4,), onramp_flows=(0.4,), offramp_positions=(660.0,),
                  offramp_fractions=(0.2,), initial_density=initial, dt=0.25,
                  order=order, discharge=discharge)
    s = LWRSolver(comm, p)
    s.initialize(0.0)
    if comm.rank == 0:
        s.put("fundamental_flow", 30.0 * DENS * (1 - DENS / 0.2))
    for k in range(800):
        s.advance(k * 0.25, 0.25)
    c = s.counts()
    lhs, rhs = c["initial"] + c["in"] + c["created"], c["out"] + c["removed"] + c["present"]
    assert abs(lhs - rhs) < 1e-12 * lhs, c
    counts = np.array(comm.allgather(len(s.rho)))
    rho = np.empty(counts.sum()) if comm.rank == 0 else None
    comm.Gatherv(s.rho, [rho, counts] if comm.rank == 0 else None, root=0)
    if comm.rank == 0:
        np.savez(path, rho=rho, counts=np.array([c[k] for k in sorted(c)]))
        print(c)


if __name__ == "__main__":
    run(main)
