"""Starting the MPI job: the launch line, in-place detection, failure reports.

``msorch run`` either finds itself already inside an MPI job of the right
size (started by ``mpirun``/``srun``) and runs in place, or starts one with
``mpirun`` (or ``srun`` inside a SLURM allocation when asked).  When the job
dies, mpirun's own words about the failed process are translated into the
solver and rank it was.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

from . import signals
from .layout import Layout
from .messages import STOPPED

# Environment variables that tell us we already are one rank of an MPI job.
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE")


def mpi_size_in_place() -> int | None:
    """World size when started under mpirun/srun, else None."""
    for var in _SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    if os.environ.get("SLURM_STEP_ID") not in (None, "", "4294967294", "4294967290") and \
            os.environ.get("SLURM_STEP_NUM_TASKS"):
        return int(os.environ["SLURM_STEP_NUM_TASKS"])
    return None


def launch_command(n_ranks: int, spec_path: str, outdir: str, launcher: str = "mpirun",
                   restart: str | None = None, python: str | None = None) -> list[str]:
    """The argument list that starts ``n_ranks`` ranks of the runtime (no shell involved)."""
    python = python or sys.executable
    tail = [python, "-m", "msorch.runtime", str(spec_path), "-o", str(outdir)]
    if restart:
        tail += ["--restart", str(restart)]
    if launcher == "srun":
        # Debian's Open MPI talks to srun through PMIx only.
        return ["srun", "--mpi=pmix", "--ntasks", str(n_ranks), "--kill-on-bad-exit=1", *tail]
    cmd = ["mpirun", "-n", str(n_ranks)]
    if n_ranks > (os.cpu_count() or 1):
        # More ranks than cores: allow it, and don't pin ranks onto the same core.
        cmd += ["--oversubscribe", "--bind-to", "none"]
    return cmd + tail


def launch_env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    # Debian's h5py picks its MPI build only when it sees an MPI job.
    env.setdefault("H5PY_ALWAYS_USE_MPI", "1")
    if not env.get("SLURM_JOB_ID") and not any(k.startswith(("OMPI_MCA_pml", "OMPI_MCA_btl")) for k in env):
        # One machine: shared memory only. Skips probing network transports at
        # MPI_Init (about 0.3 s per start on these machines).
        env["OMPI_MCA_pml"] = "ob1"
        env["OMPI_MCA_btl"] = "self,vader"
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


_RANK_DIED = re.compile(r"process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+)(?: \(([^)]*)\))?")
_RANK_EXIT = re.compile(r"process rank (\d+) with PID \d+ on node \S+ exited with status (\d+)|"
                        r"Primary job\s+terminated normally, but 1 process returned\s+a non-zero exit code")


def explain_failure(stderr_text: str, layout: Layout) -> str | None:
    """Name the solver and rank behind an mpirun failure report, if it says which."""
    m = _RANK_DIED.search(stderr_text)
    if m:
        rank, signal, name = int(m.group(1)), m.group(2), m.group(3) or ""
        return f"{_who(rank, layout)} was killed by signal {signal}{f' ({name})' if name else ''}"
    return None


def _who(world_rank: int, layout: Layout) -> str:
    role = layout.solver_of(world_rank)
    if role is None:
        return "the coordinator (world rank 0)"
    return f"solver {role[0]!r} rank {role[1]} (world rank {world_rank})"


def run_launched(cmd: list[str], layout: Layout) -> int:
    """Run the launch line, streaming its output.

    Returns 0 on success, 3 when the run stopped after a checkpoint on request, 1 on failure.
    """
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=launch_env())
    captured: list[str] = []

    def pump():
        for line in proc.stderr:
            captured.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    # Pass signals on to mpirun (which passes them to the ranks): a killed or
    # interrupted front end must not leave an orphaned MPI job behind.
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)
    previous = {sig: signal.signal(sig, lambda sig, _frame: proc.send_signal(sig)) for sig in forwarded}
    signals.forward_to(proc.send_signal)
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reader.join(timeout=5)
    if code in (0, STOPPED):
        return code
    text = "".join(captured)
    reason = explain_failure(text, layout)
    if reason:
        print(f"msorch: error: {reason}", file=sys.stderr, flush=True)
    elif "msorch: error:" not in text:
        print(f"msorch: error: the MPI job ended with exit code {code}", file=sys.stderr, flush=True)
    return 1
