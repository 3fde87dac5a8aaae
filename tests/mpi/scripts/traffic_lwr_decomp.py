"""An LWR road with ramps on COMM_WORLD; rank 0 saves the gathered densities.

Usage: traffic_lwr_decomp.py OUT.npz [ORDER [DISCHARGE [INITIAL [PHASES]]]]

ORDER 1 (Godunov, default) or 2 (MUSCL-Hancock, which reads two cells across a
rank border); DISCHARGE [veh/s] > 0 adds the capacity drop; INITIAL [veh/m]
(default 0.03; above the critical 0.1 the road starts as a queue that
discharges); PHASES ``wide_jam`` (order 1, with DISCHARGE): the two-phase cell rule
(jam density 0.19 veh/m), whose FREE/JAM flags cross rank borders too; the table is then
fixed (table_flow), and the run also saves the flags and the number of JAM cell-steps.

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
    phases = sys.argv[5] if len(sys.argv) > 5 else "none"
    comm = MPI.COMM_WORLD
    flows = 30.0 * DENS * (1 - DENS / 0.2)
    p = LWRParams(cells=90, diagram="tabulated", table_density=tuple(DENS), inflow="flow", inflow_flow=1.0,
                  onramp_positions=(333.4,), onramp_flows=(0.4,), offramp_positions=(660.0,),
                  offramp_fractions=(0.2,), initial_density=initial, dt=0.25,
                  order=order, discharge=discharge, phases=phases, jam_density=0.19,
                  table_flow=tuple(flows) if phases != "none" else ())
    s = LWRSolver(comm, p)
    s.initialize(0.0)
    if comm.rank == 0 and phases == "none":
        s.put("fundamental_flow", flows)
    jam_steps = np.zeros(1)
    for k in range(800):
        s.advance(k * 0.25, 0.25)
        if phases != "none":
            jam_steps += s.jam.sum()
    c = s.counts()
    lhs, rhs = c["initial"] + c["in"] + c["created"], c["out"] + c["removed"] + c["present"]
    assert abs(lhs - rhs) < 1e-12 * lhs, c
    counts = np.array(comm.allgather(len(s.rho)))
    rho = np.empty(counts.sum()) if comm.rank == 0 else None
    comm.Gatherv(s.rho, [rho, counts] if comm.rank == 0 else None, root=0)
    extra = {}
    if phases != "none":
        jam = np.empty(counts.sum()) if comm.rank == 0 else None
        comm.Gatherv(s.jam, [jam, counts] if comm.rank == 0 else None, root=0)
        total = np.zeros(1)
        comm.Allreduce(jam_steps, total, op=MPI.SUM)
        extra = {"jam": jam, "jam_steps": total}
    if comm.rank == 0:
        np.savez(path, rho=rho, counts=np.array([c[k] for k in sorted(c)]), **extra)
        print(c)


if __name__ == "__main__":
    run(main)
