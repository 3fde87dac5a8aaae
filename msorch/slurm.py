"""SLURM batch scripts, submission and job state for ``msorch submit``.

The batch script asks for ``job.resources`` (see :class:`msorch.spec.ResourcesSpec`)
and ``exec``s ``msorch run SPEC -o OUTDIR`` inside the allocation; ``msorch run``
detects SLURM itself and starts its ranks with srun or mpirun.  Because the batch
shell is replaced by ``msorch run``, the ``--signal=B:USR1@<signal_before>``
walltime warning reaches msorch directly, which checkpoints and requeues the job
(``--requeue``).  A requeued run sees ``SLURM_RESTART_COUNT > 0`` and continues
with ``--restart auto``; ``--open-mode=append`` keeps every run's log in one
``slurm-<jobid>.out``.  (``auto`` rather than ``latest``: a job requeued before its
first checkpoint starts again instead of failing.)

No MPI here: this module only writes text and runs the SLURM client commands
(``sbatch``, ``squeue``, ``sacct``) with argument lists, never through a shell.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from .environ import child_env

SCRIPT_NAME = "msorch-job.sbatch"
# SLURM's states after which a job never runs again (squeue %T / sacct State).
TERMINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED", "SPECIAL_EXIT"})
# sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"(?:(\d+)-(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?|(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?)")
_JOB_ID = re.compile(r"\d+(?:_\d+)?")
_CLIENT_TIMEOUT = 60.0  # seconds for one SLURM client command


class SlurmError(RuntimeError):
    """A SLURM command failed or is missing; ``str()`` says what to do."""


class SlurmUnreachable(SlurmError):
    """The SLURM clients found no controller (no configuration, DNS lookup failed, controller down).

    ``short`` is the client's own last words, one line.
    """

    def __init__(self, tool: str, stderr: str):
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        self.short = f"{tool}: {lines[-1] if lines else 'no answer'}"
        super().__init__(f"SLURM could not be reached ({self.short})")


# What squeue says when the controller knows no such job; any other failure means no controller.
_NO_SUCH_JOB = re.compile(r"Invalid job id", re.I)


def walltime_seconds(text: str) -> int:
    """Seconds in a SLURM ``--time`` value (``"90"`` is 90 minutes, ``"1-00:30"`` a day and 30 min).

    Raises
    ------
    ValueError
        If ``text`` is not one of sbatch's time formats.
    """
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(f"resources.time: {text!r} is not a SLURM time "
                         "(minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
    days, d_h, d_m, d_s, plain, p2, p3 = (int(g) if g else 0 for g in m.groups())
    if m.group(1) is not None:
        return ((days * 24 + d_h) * 60 + d_m) * 60 + d_s
    if m.group(7) is not None:  # HH:MM:SS
        return (plain * 60 + p2) * 60 + p3
    if m.group(6) is not None:  # MM:SS
        return plain * 60 + p2
    return plain * 60  # minutes


def _one_line(what: str, value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in "\n\r\0"):
        raise ValueError(f"{what}: {text!r} must be a non-empty single line")
    return text


def _default_msorch_cmd() -> list[str]:
    # The console script of the interpreter running us (the venv's), else the module.
    beside = Path(sys.executable).with_name("msorch")
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "msorch"]


def _directives(job, outdir: Path) -> list[str]:
    """``#SBATCH`` option strings (without the prefix) for ``job.resources``."""
    res = job.resources
    tasks = res.tasks if res.tasks is not None else job.total_ranks
    if int(res.nodes) < 1 or int(tasks) < 1:
        raise ValueError(f"resources: nodes ({res.nodes}) and tasks ({tasks}) must be >= 1")
    q = shlex.quote
    opts = [f"--job-name={q(_one_line('name', job.name))}",
            f"--nodes={int(res.nodes)}",
            f"--ntasks={int(tasks)}"]
    if res.time is not None:
        limit = walltime_seconds(_one_line("resources.time", res.time))
        if res.signal_before and res.signal_before >= limit:
            raise ValueError(f"resources.signal_before: {res.signal_before} s is not shorter than "
                             f"the time limit {res.time!r} ({limit} s); lower it or raise resources.time")
        opts.append(f"--time={q(res.time)}")
    if res.partition is not None:
        opts.append(f"--partition={q(_one_line('resources.partition', res.partition))}")
    if res.account is not None:
        opts.append(f"--account={q(_one_line('resources.account', res.account))}")
    opts.append(f"--output={q(str(outdir / 'slurm-%j.out'))}")
    if res.signal_before:
        if not 0 < int(res.signal_before) <= 65535:  # sbatch's limit for the lead time
            raise ValueError(f"resources.signal_before: {res.signal_before} must be in 0..65535 s")
        opts.append(f"--signal=B:USR1@{int(res.signal_before)}")
    opts += ["--requeue", "--open-mode=append"]
    for i, line in enumerate(res.extra):
        line = _one_line(f"resources.extra[{i}]", line).strip()
        if not line.startswith("--"):
            raise ValueError(f"resources.extra[{i}]: {line!r} must be a long sbatch option "
                             "starting with '--' (e.g. '--mem=4G')")
        opts.append(line)
    return opts


def batch_script(job, spec_path, outdir, restart: str | None = None,
                 msorch_cmd: str | Sequence[str] | None = None, launcher: str | None = None,
                 overwrite: bool = False) -> str:
    """Text of an sbatch script that runs ``job`` and resumes it after a requeue.

    Parameters
    ----------
    job : msorch.spec.JobSpec
        Only ``name``, ``total_ranks`` and ``resources`` are read.  ``--ntasks``
        is ``resources.tasks`` or, by default, ``job.total_ranks``.
    spec_path, outdir : path-like
        The job's YAML file and output directory; made absolute here, so the
        script does not depend on the directory it is submitted from.
    restart : str, optional
        ``--restart`` value for the first run (a checkpoint path, ``"latest"`` or ``"auto"``).
        Runs after a requeue use ``--restart auto``: continue from the newest
        checkpoint, or start again when the first run did not reach one.
    launcher : str, optional
        ``mpirun`` or ``srun``; default ``job.resources.launcher``.
    overwrite : bool
        The first run removes an earlier run's files in ``outdir`` (``--overwrite``).
    msorch_cmd : str or sequence of str, optional
        How to call msorch; default: the ``msorch`` script beside this
        interpreter, else ``python -m msorch``.

    Raises
    ------
    ValueError
        A resource value that sbatch would misread (multi-line, bad time,
        ``extra`` entry not starting with ``--``, signal lead time >= limit).
    """
    outdir = Path(outdir).resolve()
    spec_path = Path(spec_path).resolve()
    if msorch_cmd is None:
        cmd = _default_msorch_cmd()
    elif isinstance(msorch_cmd, str):
        cmd = shlex.split(msorch_cmd)
    else:
        cmd = list(msorch_cmd)
    if not cmd:
        raise ValueError("msorch_cmd: empty command")
    launcher = launcher or getattr(job.resources, "launcher", "mpirun")
    run = shlex.join([*cmd, "run", str(spec_path), "-o", str(outdir), "--launcher", launcher])
    first = run if restart is None else f"{run} --restart {shlex.quote(_one_line('restart', restart))}"
    if overwrite and restart is None:
        first += " --overwrite"
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {opt}" for opt in _directives(job, outdir)]
    lines += [
        "# Written by msorch.slurm: exec keeps msorch as the batch shell's process,",
        "# so the walltime warning (USR1) reaches it; a requeued run resumes.",
        "set -eu",
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then',
        f"    exec {run} --restart auto",
        "fi",
        f"exec {first}",
        "",
    ]
    return "\n".join(lines)


def _client(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SlurmError(f"{tool} not found on PATH: run this on a SLURM login node, or install "
                         "the SLURM clients (Debian: slurm-wlm; scripts/local_slurm.py starts a test cluster)")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        # child_env: no MPI job variables of ours may leak into a batch job (sbatch exports all).
        return subprocess.run(args, capture_output=True, text=True, timeout=_CLIENT_TIMEOUT, env=child_env())
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"`{shlex.join(args)}` did not answer within {_CLIENT_TIMEOUT:.0f} s: "
                         "is slurmctld running?") from exc


def submit(script_text: str, outdir) -> str:
    """Write ``script_text`` to ``outdir/msorch-job.sbatch``, submit it, return the job id.

    Raises
    ------
    SlurmError
        ``sbatch`` is missing, fails (its stderr is included) or prints no job id.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    script = outdir / SCRIPT_NAME
    script.write_text(script_text)
    script.chmod(0o755)
    res = _run([_client("sbatch"), "--parsable", str(script)])
    if res.returncode != 0:
        raise SlurmError(f"sbatch {script} failed (exit {res.returncode}): "
                         f"{res.stderr.strip() or res.stdout.strip() or 'no message'}")
    # --parsable prints "jobid" or "jobid;cluster".
    job_id = res.stdout.strip().splitlines()[-1].split(";")[0] if res.stdout.strip() else ""
    if not _JOB_ID.fullmatch(job_id):
        raise SlurmError(f"sbatch printed no job id: stdout {res.stdout!r}, stderr {res.stderr!r}")
    return job_id


def requeue(job_id: str) -> None:
    """Put a running batch job back in the queue (``scontrol requeue``)."""
    res = _run([_client("scontrol"), "requeue", job_id])
    if res.returncode != 0:
        raise SlurmError(f"scontrol requeue {job_id} failed: {res.stderr.strip() or res.stdout.strip()}")


def job_state(job_id: str) -> str:
    """SLURM state of a job, e.g. ``"PENDING"``, ``"RUNNING"``, ``"COMPLETED"``.

    Asks the controller first (``squeue -t all`` still lists jobs finished less
    than ``MinJobAge`` ago), then accounting (``sacct``) for older jobs.

    Raises
    ------
    SlurmError
        Neither knows the job, or the SLURM clients are missing.
    """
    job_id = _one_line("job_id", job_id).strip()
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job_id: {job_id!r} is not a SLURM job id")
    res = _run([_client("squeue"), "-h", "-t", "all", "-j", job_id, "-o", "%T"])
    state = res.stdout.split()[0] if res.returncode == 0 and res.stdout.split() else ""
    if state:
        return state
    if res.returncode != 0 and not _NO_SUCH_JOB.search(res.stderr):
        raise SlurmUnreachable("squeue", res.stderr)
    errors = [f"squeue: {res.stderr.strip() or 'no such job'}"]
    sacct = shutil.which("sacct")
    if sacct:
        acc = _run([sacct, "-n", "-X", "-P", "-j", job_id, "-o", "State"])
        words = acc.stdout.split()
        if acc.returncode == 0 and words:
            return words[0]  # "CANCELLED by 0" -> "CANCELLED"
        errors.append(f"sacct: {acc.stderr.strip() or 'no such job'}")
    raise SlurmError(f"job {job_id} unknown to SLURM ({'; '.join(errors)})")


def wait(job_id: str, timeout: float, poll: float = 1.0) -> str:
    """Poll :func:`job_state` until the job is in a terminal state; return that state.

    Raises
    ------
    TimeoutError
        Still not finished after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = job_state(job_id)
        if state in TERMINAL_STATES:
            return state
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s")
        time.sleep(poll)
