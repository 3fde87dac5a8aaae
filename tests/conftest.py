"""Shared test tooling: run Python code under a real ``mpirun``."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    # 2-core machines run 4+ ranks: without yielding, idle ranks spin and starve the rest.
    "OMPI_MCA_mpi_yield_when_idle": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


def mpi_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, **MPI_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_mpi(n: int, args: list[str], timeout: float = 120, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run ``python args...`` on ``n`` real MPI ranks; returns the finished process.

    Output is captured as text; the caller asserts on returncode/stdout/stderr.
    """
    cmd = ["mpirun", "--oversubscribe", "-n", str(n), sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or ROOT, env=mpi_env(env))


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains ``text``: a /proc scan (no procps/pgrep on minimal roots)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:   # gone meanwhile
            continue
        if text in cmdline:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """True until the process has ended (a zombie has: it holds no files or locks any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def kill_matching(text: str, timeout: float = 30) -> None:
    """SIGKILL every process whose command line contains ``text`` and wait until each has ended.

    A dying process loses its command line before it closes its files, so the pids
    are followed to their end: only then are their HDF5 file locks released.
    """
    import signal
    import time
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while (pids := set(pids_matching(text))) or any(map(_alive, seen)):
        seen |= pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes {sorted(seen)} ({text!r}) survive SIGKILL"
        time.sleep(0.05)


@pytest.fixture
def mpirun():
    """``mpirun(n, [script, args...])`` -> CompletedProcess (see :func:`run_mpi`)."""
    return run_mpi


@pytest.fixture(autouse=True)
def _collect_between_tests():
    # PETSc/MPI destructors can be collective: free them at a known point.
    yield
    gc.collect()


def run_msorch(*args, timeout: float = 300, cwd=None, env=None) -> subprocess.CompletedProcess:
    """``python -m msorch ARGS`` with the MPI environment; output captured as text.

    ``tests/e2e`` is on PYTHONPATH so specs can name its test solvers (``faulty:Faulty``).
    """
    extra = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "e2e")]), **(env or {})}
    return subprocess.run([sys.executable, "-m", "msorch", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env=mpi_env(extra))


@pytest.fixture
def msorch():
    """``msorch("run", spec, "-o", outdir)`` -> CompletedProcess (see :func:`run_msorch`)."""
    return run_msorch
