"""Bad input on one rank must make write_checkpoint raise on every rank (no hang, no file).

Usage: ckpt_errors.py DIRECTORY STRATEGY    (4 ranks)
Rank 0 prints "RAISED <case> <rank> <message>" for every rank and case.
"""
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

from msorch.checkpoint import CheckpointError, write_checkpoint

comm = MPI.COMM_WORLD
directory, strategy = Path(sys.argv[1]), sys.argv[2]
good = {0: (None, 0), 1: ("a", 0), 2: ("b", 0), 3: ("b", 1)}


def case(name, solver, group_rank, state):
    try:
        write_checkpoint(comm, directory, 1, solver=solver, group_rank=group_rank, state=state,
                         meta={"case": name}, strategy=strategy)
    except CheckpointError as exc:
        result = f"RAISED {name} {comm.rank} " + " | ".join(str(exc).splitlines())
    else:
        result = f"NOT RAISED {name} {comm.rank}"
    results = comm.gather(result, root=0)   # one printer: lines of several ranks would interleave
    if comm.rank == 0:
        print("\n".join(results), flush=True)


s, r = good[comm.rank]
# rank 3 holds a Python-object array
case("object", s, r, {"x": np.zeros(2)} if comm.rank != 3 else {"x": np.array([None, 1], dtype=object)})
# rank 3 has a key the other rank of its group does not
case("keys", s, r, {"x": np.zeros(2)} if comm.rank != 3 else {"x": np.zeros(2), "extra": np.zeros(1)})
# two ranks claim group rank 0 of "b"
case("ranks", s, 0 if comm.rank == 3 else r, {"x": np.zeros(2)})
comm.Barrier()
if comm.rank == 0:
    print("FILES", sorted(p.name for p in directory.iterdir()) if directory.exists() else [], flush=True)
