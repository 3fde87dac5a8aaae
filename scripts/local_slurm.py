#!/usr/bin/python3
"""A real SLURM cluster on localhost (one node, or several), for tests.

Usage::

    scripts/local_slurm.py start|stop|status|env [--dir DIR] [--nodes K] [--port P]

``start`` writes a private ``slurm.conf`` under DIR (default ``$MSORCH_SLURM_DIR``
or ``/tmp/msorch-slurm``), creates a private munge key, and starts ``munged``,
``slurmctld`` and ``slurmd`` as root, then waits until ``sinfo`` shows the node
idle.  Nothing under ``/etc`` is touched: clients find the cluster through
``SLURM_CONF=DIR/slurm.conf`` (``env`` prints the export line), and munge talks
on a private socket named in ``AuthInfo``.  ``stop`` cancels the cluster's jobs
and ends every daemon it started by the pids they recorded.

Containers may lack cgroups and systemd, hence ``proctrack/linuxproc``,
``task/none`` and daemons started directly.  The node advertises
``max(nproc, 8)`` CPUs (``MSORCH_SLURM_CPUS`` overrides) with
``SlurmdParameters=config_overrides``, so a job with more MPI ranks than cores
(oversubscribed, as the tests run them) can still be scheduled.

``--nodes K`` (or ``MSORCH_SLURM_NODES=K``) with K > 1 starts K ``slurmd`` on
this host as nodes ``n1..nK``: each is its own SLURM node (``slurmd -N nI``,
``NodeHostname`` this host, ``NodeAddr=127.0.0.1``, its own ``Port``, spool,
pid and log file, ``%n`` in the paths).  Debian 12's slurm-wlm 22.05.8 is built
with ``--enable-multiple-slurmd``: ``scontrol show config`` reports
``MULTIPLE_SLURMD = Yes`` and step daemons call themselves ``slurmstepd-n1``.
Two more things must differ per node on one host: the PMIx plugin's per-step
client directory (under ``TmpFS``, hence ``TmpFS=DIR/tmp/%n``), and Open MPI's
shared-memory segments (see ``TASK_PROLOG``).  The nodes
share this machine's cores, so jobs spanning them really run here; SLURM still
schedules, launches (``srun``, ``SLURMD_NODENAME``) and accounts them per node.
The default stays one node named after the host.  Clusters running at the same
time need their own ``--dir`` and ``--port``; ``start`` in a DIR whose cluster
has another size replaces it (``DIR/.nodes`` records K and the port, so
``stop`` and ``status`` need neither).

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
DEFAULT_NODES = int(os.environ.get("MSORCH_SLURM_NODES", "1"))
START_TIMEOUT = 30.0  # seconds until the node must be idle


# slurmd adds the "export" lines a TaskProlog prints to every task's environment.
# Nodes that share one host must not share memory: Open MPI names its shared-memory
# (vader) segments after the host name, job and node-local rank, so ranks of two
# "nodes" here would map each other's segments (seen: SIGSEGV in
# mca_btl_vader_poll_handle_frag).  Between nodes real clusters talk over the
# network; these do so over TCP as well.
TASK_PROLOG = "#!/bin/sh\necho export OMPI_MCA_btl=self,tcp\n"


class LocalSlurmError(RuntimeError):
    """The local cluster could not be started or queried; ``str()`` says why."""


@dataclass(frozen=True)
class Layout:
    """Paths of one private cluster, all under ``root``."""

    root: Path
    nodes: int = 1          # 1: one node named after the host; K > 1: nodes n1..nK
    port: int = CTLD_PORT   # slurmctld's; the slurmd ports follow it

    @property
    def node_names(self) -> list[str]:
        return [node_name()] if self.nodes == 1 else [f"n{i}" for i in range(1, self.nodes + 1)]

    def slurmd_key(self, node: str) -> str:
        """Pid/log file stem of the slurmd of ``node``."""
        return "slurmd" if self.nodes == 1 else f"slurmd-{node}"

    @property
    def daemon_keys(self) -> list[str]:
        """Pid file stems of every daemon, in stop order."""
        return [self.slurmd_key(n) for n in self.node_names] + ["slurmctld", "munged"]

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
    """Text of a minimal ``slurm.conf`` for ``lay`` (one node, or ``lay.nodes`` on this host)."""
    host = node_name()
    cpus, mem = _node_hardware()
    cpus = int(os.environ.get("MSORCH_SLURM_CPUS", max(cpus, 8)))
    # Leave headroom so a little memory taken by others never drains the node.
    mem = max(256, int(mem * 0.9))
    r = lay.root
    lines = [
        f"# Written by scripts/local_slurm.py: a private {lay.nodes}-node test cluster.",
        "ClusterName=msorch-local" + ("" if lay.nodes == 1 else f"{lay.nodes}n"),
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={lay.port}",
        f"SlurmdPort={lay.port + 1}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # cred_expire also delays a requeued job's restart (default 120 s); keep tests quick.
        f"AuthInfo=socket={lay.munge_socket},cred_expire=10",
        f"StateSaveLocation={r / 'state'}",
        # %n: each slurmd of a multi-node cluster has its own spool, pid and log file.
        f"SlurmdSpoolDir={r / 'spool'}" + ("" if lay.nodes == 1 else "/%n"),
        # The PMIx plugin puts each step's client directory under TmpFS: one per node,
        # or the second slurmstepd of a step finds the first one's and fails (EEXIST).
        *([f"TmpFS={r / 'tmp'}/%n", f"TaskProlog={r / 'task_prolog.sh'}"] if lay.nodes > 1 else []),
        f"SlurmctldPidFile={lay.pid_file('slurmctld')}",
        f"SlurmdPidFile={lay.pid_file(lay.slurmd_key('%n'))}",
        f"SlurmctldLogFile={lay.log_file('slurmctld')}",
        f"SlurmdLogFile={lay.log_file(lay.slurmd_key('%n'))}",
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
    ]
    if lay.nodes == 1:
        lines.append(f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN")
    else:
        # Several slurmd on this host: same NodeHostname, own Port each.  The memory
        # is shared, so each node advertises its share.
        mem = max(128, mem // lay.nodes)
        lines += [f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={lay.port + 1 + i} "
                  f"CPUs={cpus} RealMemory={mem} State=UNKNOWN" for i, n in enumerate(lay.node_names)]
    lines += [f"PartitionName=debug Nodes={','.join(lay.node_names)} Default=YES MaxTime=INFINITE State=UP", ""]
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
    # "slurmd-n1" is the pid file of the slurmd of node n1.
    return pid if comm == daemon.split("-")[0] and _alive(pid) else None


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


def node_states(lay: Layout) -> dict[str, str]:
    """State of each of our nodes as ``sinfo`` reports it (e.g. ``idle``); {} if unreachable."""
    try:
        res = _run(["sinfo", "-h", "-N", "-n", ",".join(lay.node_names), "-o", "%N %T"], lay, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if res.returncode != 0:
        return {}
    return dict(line.split()[:2] for line in res.stdout.splitlines() if len(line.split()) >= 2)


def node_state(lay: Layout) -> str | None:
    """State of the first node (the only one by default), or None if unreachable."""
    return node_states(lay).get(lay.node_names[0])


def is_up(lay: Layout) -> bool:
    """True when all daemons run and every node is usable (idle, mixed or allocated)."""
    if not all(_read_pid(lay, d) for d in lay.daemon_keys):
        return False
    states = node_states(lay)
    return all((states.get(n) or "").rstrip("*~#").split("+")[0] in
               ("idle", "mixed", "allocated", "completing") for n in lay.node_names)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _prepare(lay: Layout) -> None:
    for sub in ("state", "spool", "log", "run"):
        (lay.root / sub).mkdir(parents=True, exist_ok=True)
    if lay.nodes > 1:
        for n in lay.node_names:
            (lay.root / "spool" / n).mkdir(exist_ok=True)
            (lay.root / "tmp" / n).mkdir(parents=True, exist_ok=True)
        prolog = lay.root / "task_prolog.sh"
        prolog.write_text(TASK_PROLOG)
        prolog.chmod(0o755)
    (lay.root / ".nodes").write_text(f"{lay.nodes} {lay.port}\n")
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


def layout(root: Path = DEFAULT_DIR, nodes: int | None = None, port: int | None = None) -> Layout:
    """The cluster at ``root``: ``nodes``/``port`` as given, else as its last start recorded, else the defaults."""
    root = Path(root).resolve()
    try:
        k, p = (int(w) for w in (root / ".nodes").read_text().split()[:2])
    except (OSError, ValueError):
        k, p = DEFAULT_NODES, CTLD_PORT
    return Layout(root, k if nodes is None else int(nodes), p if port is None else int(port))


def start(root: Path = DEFAULT_DIR, timeout: float = START_TIMEOUT, nodes: int | None = None,
          port: int | None = None) -> Layout:
    """Start the cluster (or reuse a running one of that size) and wait until every node is idle.

    ``nodes`` (default ``MSORCH_SLURM_NODES`` or 1) slurmd on this host; ``port``
    (default ``MSORCH_SLURM_PORT`` or 16817) is slurmctld's, the slurmd listen
    on the next ``nodes`` ports.
    """
    nodes = DEFAULT_NODES if nodes is None else int(nodes)
    if nodes < 1:
        raise LocalSlurmError(f"nodes: expected at least 1, got {nodes}")
    lay = Layout(Path(root).resolve(), nodes, CTLD_PORT if port is None else int(port))
    if is_up(lay) and layout(lay.root) == lay:
        return lay
    _check_tools()
    stop(lay.root)  # leftovers of a half-started cluster, or one of another size
    _prepare(lay)
    _spawn([_sbin("munged"), f"--socket={lay.munge_socket}", f"--key-file={lay.munge_key}",
            f"--pid-file={lay.pid_file('munged')}", f"--log-file={lay.log_file('munged')}",
            f"--seed-file={lay.munge_dir / 'munged.seed'}", "--force"], lay, "munged")
    _wait_pidfile(lay, "munged")
    # -c: cold start, so jobs of an earlier session are not resurrected.
    _spawn([_sbin("slurmctld"), "-c", "-f", str(lay.conf)], lay, "slurmctld")
    _wait_pidfile(lay, "slurmctld")
    for node in lay.node_names:
        key = lay.slurmd_key(node)
        # -N: which node of slurm.conf this daemon is (several share this host).
        _spawn([_sbin("slurmd"), "-c", "-f", str(lay.conf), *(["-N", node] if lay.nodes > 1 else [])],
               lay, key)
        _wait_pidfile(lay, key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = node_states(lay)
        if all((states.get(n) or "").rstrip("*~#") == "idle" for n in lay.node_names):
            return lay
        for n in lay.node_names:
            if (states.get(n) or "").startswith(("drain", "down")):
                # ReturnToService=2 normally revives it; nudge it in case it registered oddly.
                _run(["scontrol", "update", f"NodeName={n}", "State=RESUME"], lay)
        time.sleep(0.5)
    logs = "\n".join(f"{k} log:\n{_tail(lay.log_file(k))}" for k in lay.daemon_keys[:-1])
    raise LocalSlurmError(f"nodes not all idle after {timeout:.0f} s (states {node_states(lay)!r}).\n{logs}")


def stop(root: Path = DEFAULT_DIR, grace: float = 10.0) -> None:
    """Cancel this cluster's jobs, then end its daemons (SIGTERM, SIGKILL after ``grace`` s)."""
    lay = layout(root)
    if _read_pid(lay, "slurmctld") and lay.conf.exists():
        try:
            _run(["scancel", f"--user={os.geteuid()}"], lay, timeout=10)
            _wait_jobs_gone(lay, 10.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
    # Every slurmd with a pid file here, whatever size the cluster had when it started.
    slurmds = sorted(p.stem for p in (lay.root / "run").glob("slurmd*.pid"))
    for daemon in [*slurmds, "slurmctld", "munged"]:
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
    """One line per daemon plus the state of each node."""
    lay = layout(root)
    lines = [f"{d}: " + (f"running (pid {p})" if (p := _read_pid(lay, d)) else "stopped")
             for d in reversed(lay.daemon_keys)]
    states = node_states(lay)
    lines += [f"node {n}: {states.get(n) or 'unreachable'}" for n in lay.node_names]
    lines.append(f"SLURM_CONF={lay.conf}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="private cluster directory")
    ap.add_argument("--nodes", type=int, default=None,
                    help="start: number of slurmd nodes on this host (default MSORCH_SLURM_NODES or 1)")
    ap.add_argument("--port", type=int, default=None,
                    help="start: slurmctld port, slurmd use the next ones (default MSORCH_SLURM_PORT or 16817)")
    args = ap.parse_args(argv)
    lay = layout(args.dir)
    try:
        if args.action == "start":
            t0 = time.monotonic()
            lay = start(lay.root, nodes=args.nodes, port=args.port)
            print(f"local SLURM ({', '.join(lay.node_names)}) up in {time.monotonic() - t0:.1f} s; "
                  f"export SLURM_CONF={lay.conf}")
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
