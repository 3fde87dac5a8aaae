"""Write one big checkpoint (used to SIGKILL a writer mid-write).

Usage: ckpt_writer.py DIRECTORY INDEX MEGABYTES [mpi]
Without "mpi" a single process writes (comm=None); with it, COMM_WORLD: rank 0 is the
coordinator and the other ranks share MEGABYTES of solver "big" state.
Prints "WRITING" before the call and "DONE <path>" after it.
"""
import sys
from pathlib import Path

import numpy as np

from msorch.checkpoint import write_checkpoint

directory, index, megabytes = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if len(sys.argv) > 4 and sys.argv[4] == "mpi":
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    n_solver = max(1, comm.size - 1)
    solver, group_rank = (None, 0) if comm.rank == 0 else ("big", comm.rank - 1)
    share = 0 if comm.rank == 0 else megabytes / n_solver
else:
    comm, solver, group_rank, share = None, None, 0, megabytes
# many 8 MB arrays: the file grows steadily, so a kill lands between and inside datasets
n = int(share * 2**20 / 8)
state = {f"block{i:04d}": np.full(min(2**20, n - s), float(i)) for i, s in enumerate(range(0, n, 2**20))}
state["marker"] = np.array(index)
print("WRITING", flush=True)
path = write_checkpoint(comm, directory, index, solver=solver, group_rank=group_rank, state=state,
                        meta={"index": index})
print("DONE", path, flush=True)
