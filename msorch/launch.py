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
from .environ import child_env
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
                   restart: str | None = None, python: str | None = None,
                   hostfile: str | None = None) -> list[str]:
    """The argument list that starts ``n_ranks`` ranks of the runtime (no shell involved).

    ``hostfile``: one node name per world rank (:mod:`msorch.placement`); each rank
    then starts on its line's node (srun's arbitrary distribution, mpirun's seq mapper).
    """
    python = python or sys.executable
    # -P: the ranks' working directory is not put on sys.path, so a folder named
    # msorch (or solvers, couplings) there cannot shadow the installed package.
    tail = [python, "-P", "-m", "msorch.runtime", str(spec_path), "-o", str(outdir)]
    if restart:
        tail += ["--restart", str(restart)]
    if launcher == "srun":
        # Debian's Open MPI talks to srun through PMIx only.
        # --overcommit: a placement may put more ranks on a node than SLURM's even split gave it.
        placed = ["--distribution=arbitrary", f"--nodelist={hostfile}", "--overcommit"] if hostfile else []
        return ["srun", "--mpi=pmix", "--ntasks", str(n_ranks), *placed, "--kill-on-bad-exit=1", *tail]
    cmd = ["mpirun", "-n", str(n_ranks)]
    if hostfile:
        cmd += ["--mca", "rmaps", "seq", "--hostfile", str(hostfile)]
    if n_ranks > (os.cpu_count() or 1) or hostfile:
        # More ranks than cores (or than SLURM's even split gave a node): allow it,
        # and don't pin ranks onto the same core.
        cmd += ["--oversubscribe", "--bind-to", "none"]
    return cmd + tail


def launch_env(extra: dict[str, str] | None = None) -> dict:
    """The ranks' environment: ours without MPI job variables (:mod:`msorch.environ`), plus MPI settings."""
    env = child_env(extra)
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


_FIRST_FAILED = re.compile(r"Process name:\s*\[\[\d+,\d+\],(\d+)\]\s*Exit code:\s*(\d+)")
_MPIRUN_BLOCK = re.compile(r"^-{20,}\n(.*?)\n-{20,}$", re.S | re.M)


def explain_failure(stderr_text: str, layout: Layout) -> str | None:
    """Name the solver and rank behind an mpirun failure report, and say why when the output tells.

    Looks for, in this order: a rank killed by a signal; the exception line of the
    last Python traceback (with the first rank mpirun saw exit non-zero); mpirun's
    own message block (a launch that failed before any rank ran).
    """
    m = _RANK_DIED.search(stderr_text)
    if m:
        rank, signal, name = int(m.group(1)), m.group(2), m.group(3) or ""
        return f"{_who(rank, layout)} was killed by signal {signal}{f' ({name})' if name else ''}"
    first = _FIRST_FAILED.search(stderr_text)
    who = f"{_who(int(first.group(1)), layout)} exited with status {first.group(2)}" if first else None
    error = _last_exception(stderr_text)
    if error:
        return f"{who or 'a rank failed'}: {error}"
    blocks = [" ".join(b.split()) for b in _MPIRUN_BLOCK.findall(stderr_text)]
    blocks = [b for b in blocks if "exited with status" not in b and "non-zero exit code" not in b] or blocks
    if blocks:
        return f"{who + ': ' if who else ''}mpirun said: {blocks[0]}"
    return who


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?$", re.M)


def _last_exception(text: str) -> str | None:
    """The last ``Type: message`` line of a Python traceback in ``text``.

    Found by its shape rather than by position: several ranks' tracebacks
    arrive interleaved line by line through mpirun.
    """
    if "Traceback (most recent call last):" not in text:
        return None
    lines = _EXCEPTION_LINE.findall(text)
    return lines[-1].strip() if lines else None


def _who(world_rank: int, layout: Layout) -> str:
    role = layout.solver_of(world_rank)
    if role is None:
        return "the coordinator (world rank 0)"
    return f"solver {role[0]!r} rank {role[1]} (world rank {world_rank})"


def _die_with_parent() -> None:
    """In the child between fork and exec: get SIGTERM when the front end dies (Linux)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_launched(cmd: list[str], layout: Layout, extra_env: dict[str, str] | None = None) -> int:
    """Run the launch line, streaming its output; ``extra_env`` is added to the ranks' environment.

    Returns 0 on success, 3 when the run stopped after a checkpoint on request, 1 on failure.
    """
    # mpirun dies with us (PR_SET_PDEATHSIG): a front end killed by SIGKILL must not
    # leave an MPI job running that nobody waits for.
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=launch_env(extra_env),
                            preexec_fn=_die_with_parent)
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
    if "msorch: error:" in text and not _RANK_DIED.search(text):
        return 1   # the coordinator already said what failed
    reason = explain_failure(text, layout)
    if reason is None:
        tail = " | ".join(line.strip() for line in captured[-5:] if line.strip())
        reason = (f"the MPI job ended with exit code {code}; " +
                  (f"its last words: {tail}" if tail else
                   "no rank printed anything (start the launch line from 'msorch run --dry-run' by hand "
                   "to see more)"))
    print(f"msorch: error: {reason}", file=sys.stderr, flush=True)
    return 1
