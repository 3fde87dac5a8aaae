#!/usr/bin/python3
"""A real single-node SLURM cluster on localhost, for tests.

Usage::

    scripts/local_slurm.py start|stop|status|env [--dir DIR]

``start`` writes a private ``slurm.conf`` under DIR (default ``$MSORCH_SLURM_DIR``
or ``/tmp/msorch-slurm``), creates a private munge key, and starts ``munged``,
``slurmctld`` and ``slurmd`` as root, then waits until ``sinfo`` shows the node
idle.  Nothing under ``/etc`` is touched: clients find the cluster through
``SLURM_CONF=DIR/slurm.conf`` (``env`` prints the export line), and munge talks
on a private socket named in ``AuthInfo``.  ``stop`` cancels the cluster's jobs
and ends the three daemons by the pids they recorded.

Containers may lack cgroups and systemd, hence ``proctrack/linuxproc``,
``task/none`` and daemons started directly.  The node advertises
``max(nproc, 8)`` CPUs (``MSORCH_SLURM_CPUS`` overrides) with
``SlurmdParameters=config_overrides``, so a job with more MPI ranks than cores
(oversubscribed, as the tests run them) can still be scheduled.

Only the standard library is used, so the system ``python3`` runs this before
any venv exists; ``tests/slurm/conftest.py`` imports it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("MSORCH_SLURM_DIR", "/tmp/msorch-slurm"))
# Off the default 6817/6818 so a site-wide SLURM on the same host is not disturbed.
CTLD_PORT = int(os.environ.get("MSORCH_SLURM_PORT", "16817"))
DAEMONS = ("slurmd", "slurmctld", "munged")  # stop order: reverse of start order
START_TIMEOUT = 30.0  # seconds until the node must be idle


class LocalSlurmError(RuntimeError):
    """The local cluster could not be started or queried; ``str()`` says why."""


@dataclass(frozen=True)
class Layout:
    """Paths of one private cluster, all under ``root``."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def munge_key(self) -> Path:
        return self.munge_dir / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"

    def env(self) -> dict[str, str]:
        """Environment that points SLURM clients at this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))


def node_name() -> str:
    """Short host name: what ``slurmd`` calls its own node."""
    return socket.gethostname().split(".")[0]


def _node_hardware() -> tuple[int, int]:
    """(cpus, real memory in MB) as ``slurmd -C`` reports them."""
    cpus, mem = os.cpu_count() or 1, 1024
    try:
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for word in out.split():
        key, _, value = word.partition("=")
        if key == "CPUs" and value.isdigit():
            cpus = int(value)
        elif key == "RealMemory" and value.isdigit():
            mem = int(value)
    return cpus, mem


def slurm_conf(lay: Layout) -> str:
    """Text of a minimal single-node ``slurm.conf`` for ``lay``."""
    host = node_name()
    cpus, mem = _node_hardware()
    cpus = int(os.environ.get("MSORCH_SLURM_CPUS", max(cpus, 8)))
    # Leave headroom so a little memory taken by others never drains the node.
    mem = max(256, int(mem * 0.9))
    r = lay.root
    lines = [
        "# Written by scripts/local_slurm.py: a private single-node test cluster.",
        "ClusterName=msorch-local",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={CTLD_PORT}",
        f"SlurmdPort={CTLD_PORT + 1}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # cred_expire also delays a requeued job's restart (default 120 s); keep tests quick.
        f"AuthInfo=socket={lay.munge_socket},cred_expire=10",
        f"StateSaveLocation={r / 'state'}",
        f"SlurmdSpoolDir={r / 'spool'}",
        f"SlurmctldPidFile={lay.pid_file('slurmctld')}",
        f"SlurmdPidFile={lay.pid_file('slurmd')}",
        f"SlurmctldLogFile={lay.log_file('slurmctld')}",
        f"SlurmdLogFile={lay.log_file('slurmd')}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        f"PlugStackConfig={r / 'plugstack.conf'}",
        # No cgroups or systemd in containers: track processes through /proc.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        # Pending jobs whose begin time passed (requeued ones) start within seconds.
        "SchedulerParameters=sched_interval=2,bf_interval=2",
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "JobRequeue=1",
        # Short grace between SIGTERM and SIGKILL at the time limit; no extra overtime.
        "KillWait=5",
        "OverTimeLimit=0",
        # Keep finished jobs visible to `scontrol show job` for 10 minutes.
        "MinJobAge=600",
        "InactiveLimit=0",
        "MailProg=/bin/true",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]
    return "\n".join(lines)


def _read_pid(lay: Layout, daemon: str) -> int | None:
    """Pid recorded for ``daemon`` if that process still runs and is that daemon.

    The name check keeps a stale pid file (left by a machine restart, its pid
    since reused) from making us signal some unrelated process.
    """
    try:
        pid = int(lay.pid_file(daemon).read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == daemon and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _run(cmd: list[str], lay: Layout, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=lay.env())


def node_state(lay: Layout) -> str | None:
    """State of our node as ``sinfo`` reports it (e.g. ``idle``), or None if unreachable."""
    try:
        res = _run(["sinfo", "-h", "-N", "-n", node_name(), "-o", "%T"], lay, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    state = res.stdout.strip()
    return state if res.returncode == 0 and state else None


def is_up(lay: Layout) -> bool:
    """True when all three daemons run and the node is usable (idle, mixed or allocated)."""
    if not all(_read_pid(lay, d) for d in DAEMONS):
        return False
    state = node_state(lay) or ""
    return state.rstrip("*~#").split("+")[0] in ("idle", "mixed", "allocated", "completing")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _prepare(lay: Layout) -> None:
    for sub in ("state", "spool", "log", "run"):
        (lay.root / sub).mkdir(parents=True, exist_ok=True)
    # munged refuses directories that others can write to, and clients of any
    # user need to traverse to its socket.
    lay.root.chmod(0o755)
    lay.munge_dir.mkdir(mode=0o755, exist_ok=True)
    lay.munge_dir.chmod(0o755)
    if not lay.munge_key.exists():
        _write_private(lay.munge_key, os.urandom(128))  # 1024-bit key, as `mungekey` makes
    (lay.root / "plugstack.conf").write_text("")
    lay.conf.write_text(slurm_conf(lay))


def _wait_pidfile(lay: Layout, daemon: str, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _read_pid(lay, daemon)
        if pid:
            return pid
        time.sleep(0.2)
    raise LocalSlurmError(f"{daemon} did not start; last log lines:\n{_tail(lay.log_file(daemon))}")


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def _spawn(cmd: list[str], lay: Layout, daemon: str) -> None:
    """Run a daemonising command; its own log file receives anything it prints."""
    with open(lay.log_file(daemon), "ab") as log:
        res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=lay.env(), timeout=30)
    if res.returncode != 0:
        raise LocalSlurmError(f"`{' '.join(cmd)}` exited {res.returncode}; log:\n{_tail(lay.log_file(daemon))}")


def _check_tools() -> None:
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "scontrol")
               if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if missing:
        raise LocalSlurmError(f"missing {', '.join(missing)}: run scripts/bootstrap.sh "
                              "(installs slurm-wlm and munge)")
    if os.geteuid() != 0:
        raise LocalSlurmError("the local SLURM runs slurmd as root: start it as root")


def _sbin(tool: str) -> str:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or tool


def start(root: Path = DEFAULT_DIR, timeout: float = START_TIMEOUT) -> Layout:
    """Start the cluster (or reuse a running one) and wait until the node is idle."""
    lay = Layout(Path(root).resolve())
    if is_up(lay):
        return lay
    _check_tools()
    stop(lay.root)  # leftovers of a half-started cluster
    _prepare(lay)
    _spawn([_sbin("munged"), f"--socket={lay.munge_socket}", f"--key-file={lay.munge_key}",
            f"--pid-file={lay.pid_file('munged')}", f"--log-file={lay.log_file('munged')}",
            f"--seed-file={lay.munge_dir / 'munged.seed'}", "--force"], lay, "munged")
    _wait_pidfile(lay, "munged")
    # -c: cold start, so jobs of an earlier session are not resurrected.
    _spawn([_sbin("slurmctld"), "-c", "-f", str(lay.conf)], lay, "slurmctld")
    _wait_pidfile(lay, "slurmctld")
    _spawn([_sbin("slurmd"), "-c", "-f", str(lay.conf)], lay, "slurmd")
    _wait_pidfile(lay, "slurmd")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = node_state(lay) or ""
        if state.rstrip("*~#") == "idle":
            return lay
        if state.startswith(("drain", "down")):
            # ReturnToService=2 normally revives it; nudge it in case it registered oddly.
            _run(["scontrol", "update", f"NodeName={node_name()}", "State=RESUME"], lay)
        time.sleep(0.5)
    raise LocalSlurmError(
        f"node {node_name()} not idle after {timeout:.0f} s (state {node_state(lay)!r}).\n"
        f"slurmctld log:\n{_tail(lay.log_file('slurmctld'))}\nslurmd log:\n{_tail(lay.log_file('slurmd'))}")


def stop(root: Path = DEFAULT_DIR, grace: float = 10.0) -> None:
    """Cancel this cluster's jobs, then end its daemons (SIGTERM, SIGKILL after ``grace`` s)."""
    lay = Layout(Path(root).resolve())
    if _read_pid(lay, "slurmctld") and lay.conf.exists():
        try:
            _run(["scancel", f"--user={os.geteuid()}"], lay, timeout=10)
            _wait_jobs_gone(lay, 10.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for daemon in DAEMONS:
        pid = _read_pid(lay, daemon)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        lay.pid_file(daemon).unlink(missing_ok=True)


def _wait_jobs_gone(lay: Layout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = _run(["squeue", "-h", "-o", "%i %T"], lay, timeout=10)
        if res.returncode != 0 or not res.stdout.strip():
            return
        time.sleep(0.5)


def status(root: Path = DEFAULT_DIR) -> str:
    """One line per daemon plus the node state."""
    lay = Layout(Path(root).resolve())
    lines = [f"{d}: " + (f"running (pid {p})" if (p := _read_pid(lay, d)) else "stopped")
             for d in reversed(DAEMONS)]
    lines.append(f"node {node_name()}: {node_state(lay) or 'unreachable'}")
    lines.append(f"SLURM_CONF={lay.conf}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="private cluster directory")
    args = ap.parse_args(argv)
    lay = Layout(args.dir.resolve())
    try:
        if args.action == "start":
            t0 = time.monotonic()
            start(lay.root)
            print(f"local SLURM up in {time.monotonic() - t0:.1f} s; export SLURM_CONF={lay.conf}")
        elif args.action == "stop":
            stop(lay.root)
            print("local SLURM stopped")
        elif args.action == "status":
            print(status(lay.root))
            return 0 if is_up(lay) else 1
        else:
            print(f"export SLURM_CONF={lay.conf}")
    except LocalSlurmError as exc:
        print(f"local_slurm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
