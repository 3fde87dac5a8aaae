"""An output directory belongs to one run at a time, and holds one run's files.

**Lock.**  Every process of a run — the front end, the coordinator and every
solver rank — holds a shared ``flock`` on ``OUTDIR/.msorch.lock`` for its whole
life.  The kernel drops it when the process dies, so there is never a stale
lock after SIGKILL.  A new run (or restart) first takes that lock exclusively,
which succeeds only once no process of an earlier run lives on (the ranks of a
run whose ``mpirun`` was killed stop within a second, see
:mod:`msorch.liveness`); it waits at most :data:`LOCK_WAIT` seconds and
otherwise gives up naming the holder.  Starters queue on a second lock
(``.msorch.start.lock``) while they check and downgrade, since Linux converts
a lock from exclusive to shared non-atomically.

**Ownership.**  A directory that holds another job's run, or any earlier run's
results, is not reused silently: ``--restart`` continues the same job's run,
``--overwrite`` removes the earlier run's files first (:func:`remove_run`), and
anything else is refused before a file is touched.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import time
from pathlib import Path

from . import status

LOCK = ".msorch.lock"
START_LOCK = ".msorch.start.lock"
OWNER = ".msorch-owner.json"
LOCK_WAIT = 10.0            # seconds a new run waits for the processes of an earlier one to end
HELD_VAR = "MSORCH_OUTDIR_HELD"   # set by the front end for its ranks: the directory is checked and held

_held: list[int] = []       # open descriptors: the locks live as long as this process


class OutdirError(RuntimeError):
    """The output directory cannot be used for this run; ``str()`` says why and what to do."""


def _flock(fd: int, how: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def holder(outdir: Path) -> str:
    """Who holds the directory, from the owner note the last starter left."""
    try:
        info = json.loads((Path(outdir) / OWNER).read_text())
    except (OSError, ValueError):
        return "an msorch run (no owner note)"
    return (f"job {info.get('job')!r} started by pid {info.get('pid')} on host {info.get('host')} "
            f"at {info.get('started')}")


def acquire(outdir, job: str, wait: float = LOCK_WAIT, check=None) -> None:
    """Make ``outdir`` this run's: wait until no earlier run's process lives, then hold it (shared).

    ``check()``, if given, runs while the directory is held exclusively, before
    anything is written there; whatever it raises leaves the directory as it was.

    Raises
    ------
    OutdirError
        Some process of another run still held it after ``wait`` seconds.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    gate = _open(outdir / START_LOCK)
    try:
        if not _flock(gate, fcntl.LOCK_EX, deadline):
            raise OutdirError(f"{outdir} is being taken by another msorch run starting right now "
                              f"({holder(outdir)}); waited {wait:g} s. Wait for it to end, or use another -o")
        fd = _open(outdir / LOCK)
        if not _flock(fd, fcntl.LOCK_EX, deadline):
            os.close(fd)
            raise OutdirError(f"{outdir} is in use by a live run: {holder(outdir)} (some of its processes "
                              f"still run; waited {wait:g} s). Wait for it to end or stop it, or use another -o")
        try:
            if check is not None:
                check()
        except BaseException:
            os.close(fd)
            raise
        tmp = outdir / f".{OWNER}.tmp"
        tmp.write_text(json.dumps({"job": job, "pid": os.getpid(), "host": platform.node(),
                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                   "slurm_job": os.environ.get("SLURM_JOB_ID")}))
        os.replace(tmp, outdir / OWNER)
        fcntl.flock(fd, fcntl.LOCK_SH)   # not atomic on Linux: the gate keeps other starters out meanwhile
        _held.append(fd)
    finally:
        os.close(gate)


def join(outdir, wait: float = LOCK_WAIT) -> None:
    """Hold ``outdir`` (shared) in a rank of a run whose front end (or rank 0) acquired it."""
    fd = _open(Path(outdir) / LOCK)
    if not _flock(fd, fcntl.LOCK_SH, time.monotonic() + wait):
        os.close(fd)
        raise OutdirError(f"{outdir}: cannot share the run's lock ({holder(outdir)} holds it exclusively)")
    _held.append(fd)


# --- ownership -------------------------------------------------------------------

def _solver_files(outdir: Path, state: dict | None) -> list[str]:
    """Names of the per-solver result files of the run recorded in ``outdir``."""
    if state and state.get("solvers"):
        return [f"{name}.h5" for name in state["solvers"]]
    results = outdir / "results.h5"
    if not results.exists():
        return []
    import h5py   # only for runs written before status.json listed its solvers
    try:
        with h5py.File(results, "r") as f:
            return [os.path.basename(f.get(k, getlink=True).filename) for k in f
                    if isinstance(f.get(k, getlink=True), h5py.ExternalLink)]
    except OSError:
        return []


def previous_run(outdir) -> dict | None:
    """``{"job", "state"}`` of the run whose results ``outdir`` holds, or None."""
    outdir = Path(outdir)
    state = status.read(outdir)
    if state is not None:
        return {"job": state.get("job"), "state": state.get("state", "unknown"), "status": state}
    if (outdir / "results.h5").exists():
        return {"job": None, "state": "unknown", "status": None}
    return None


def check_reuse(outdir, job: str, restart: str | None, overwrite: bool) -> None:
    """Refuse to mix or silently replace runs in ``outdir``; with ``overwrite`` remove the old run.

    ``restart``: the ``--restart`` value (``latest``, ``auto`` or a file), or None.

    Raises
    ------
    OutdirError
        ``outdir`` holds another job's run, or a run of this job that is neither
        continued (``--restart``) nor replaced (``--overwrite``).
    """
    outdir = Path(outdir)
    old = previous_run(outdir)
    if old is None:
        return
    if overwrite:
        remove_run(outdir, old["status"])
        return
    same = old["job"] in (job, None)
    if restart and same:
        return
    if not same:
        only = " (--restart continues a run of the same job only)" if restart else ""
        raise OutdirError(f"{outdir} holds a {old['state']} run of another job, {old['job']!r}; nothing was "
                          f"touched{only}. Use another -o, or --overwrite to replace that run")
    if old["state"] == "finished":
        raise OutdirError(f"{outdir} holds a finished run of {job!r}; nothing was touched. Replace it with "
                          "--overwrite, or choose another -o")
    raise OutdirError(f"{outdir} holds a {old['state']} run of {job!r}; nothing was touched. Continue it with "
                      "--restart latest, replace it with --overwrite, or choose another -o")


def remove_run(outdir, state: dict | None = None) -> list[str]:
    """Delete the files of the run recorded in ``outdir`` (results, per-solver files, checkpoints, plots).

    Other files (the user's, SLURM's logs and batch script) stay.  Returns what was removed.
    """
    outdir = Path(outdir)
    state = state if state is not None else status.read(outdir)
    names = _solver_files(outdir, state)
    names += [n[:-3] + ".xmf" for n in names]
    names += ["results.h5", "analysis.h5", "report.html", status.FILE]
    removed = []
    for name in names:
        path = outdir / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    for name in ("checkpoints", "plots"):
        if (outdir / name).is_dir():
            shutil.rmtree(outdir / name)
            removed.append(name + "/")
    return removed
