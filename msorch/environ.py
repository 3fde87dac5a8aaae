"""The environment of every process the front end starts (mpirun, srun, sbatch, scontrol, squeue).

Open MPI initialized as a singleton writes its own variables (``OMPI_MCA_ess=singleton``,
``PMIX_RANK``, ``PMIX_NAMESPACE``, ``PMIX_SERVER_URI*``, ...) into the process's C
environment with ``setenv``.  ``os.environ`` never sees them, but a child started
with the inherited C environment does: an ``sbatch`` run from such a process exports
them into the batch job, whose ``mpirun`` ranks then start with a stale singleton
configuration and exit 1 without a word.  So children get an explicit environment
built from ``os.environ``, with any such variable removed should it be there anyway
(e.g. ``msorch`` called from inside another MPI program).
"""
from __future__ import annotations

import os

# Variables that describe one process's place in a running MPI job (its launcher's
# contact, its rank, its singleton setup).  Never valid in a process we start.
_JOB_PREFIXES = ("PMIX_", "OMPI_COMM_WORLD_", "OMPI_MCA_ess", "OMPI_MCA_pmix", "OMPI_MCA_orte_",
                 "OMPI_MCA_initial_wdir", "OMPI_APP_CTX_", "OMPI_FILE_LOCATION", "OMPI_UNIVERSE_SIZE",
                 "OMPI_NUM_APP_CTX", "OMPI_FIRST_RANKS", "OMPI_ARGV", "OMPI_COMMAND", "OMPI_MCA_ess_base_",
                 "PMI_RANK", "PMI_SIZE", "PMI_FD", "PMI_JOBID")


def is_job_variable(name: str) -> bool:
    """True for a variable that belongs to one rank of a running MPI job."""
    return name.startswith(_JOB_PREFIXES)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without MPI job/singleton variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not is_job_variable(k)}
    env.update(extra or {})
    return env
