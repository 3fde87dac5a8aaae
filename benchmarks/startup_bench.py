"""Front-end start-up: ``msorch validate jobs/partitioned_heat.yaml`` without and with MPI initialized.

Until issue 8 the front end initialized MPI (and PETSc) while importing the solver
plugins to validate their settings; now it never does.  The baseline measured in
the same run is the same command in a process that first initializes MPI and PETSc
as the old front end did.  Prints the best of N wall times of each and their ratio.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = str(ROOT / "jobs" / "partitioned_heat.yaml")
N = 7

NOW = ["-m", "msorch", "validate", SPEC]
OLD = ["-c", "from mpi4py import MPI; import petsc4py; petsc4py.init(); from petsc4py import PETSc; "
       "import sys; from msorch.cli import main; sys.exit(main(['validate', sys.argv[1]]))", SPEC]


def best(args: list[str]) -> float:
    times = []
    for _ in range(N):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    now, old = best(NOW), best(OLD)
    print(f"msorch validate partitioned_heat, best of {N}: {now:.3f} s without MPI; "
          f"{old:.3f} s with MPI+PETSc initialized (the front end before issue 8); ratio {old / now:.2f}")


if __name__ == "__main__":
    main()
