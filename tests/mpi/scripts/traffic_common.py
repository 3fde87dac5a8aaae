"""Shared by the traffic MPI scripts: run ``main`` and abort the whole job if a rank fails."""
import sys
import traceback

from mpi4py import MPI


def run(main) -> None:
    """Call ``main()``; on any exception print it and ``Abort`` COMM_WORLD, so one failing
    rank never leaves the others hanging in a collective."""
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
