"""Inside the MPI job: split the world into coordinator and solver groups, run.

Started on every rank by ``msorch run`` (through mpirun/srun, or in place
when already launched with the right size) as ``python -m msorch.runtime``.
"""
from __future__ import annotations

from . import signals

if __name__ == "__main__":
    signals.install()  # before the slow imports: an early SIGUSR1 must not kill the rank
    from . import liveness
    liveness.stop_with_launcher()   # a rank whose mpirun is gone writes nothing more

import argparse
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import outdir as outdir_lock
from . import placement
from .layout import Layout
from .messages import STOPPED, TAG_ERROR
from .schedule import Plan, make_plan
from .spec import JobSpec, load_spec


@dataclass
class Context:
    """What every rank of a run shares: the job, its layout and communicators.

    ``world``: COMM_WORLD (control); ``data``: a duplicate for channel traffic;
    ``group``: this solver's communicator (None on the coordinator);
    ``solvers``: all solver ranks (implicit-coupling reductions; None on the coordinator).
    """

    job: JobSpec
    layout: Layout
    plan: Plan
    world: object
    data: object
    group: object
    solvers: object
    outdir: Path
    nodes: list | None = None   # node name of every world rank (on the coordinator; msorch.placement)


def versions() -> dict:
    import mpi4py
    import numpy
    info = {"python": platform.python_version(), "numpy": numpy.__version__, "mpi4py": mpi4py.__version__}
    for mod in ("h5py", "petsc4py", "numba", "scipy"):
        module = sys.modules.get(mod)
        if module is not None:
            info[mod] = getattr(module, "__version__", "?")
    from . import __version__
    info["msorch"] = __version__
    return info


def run(spec_path: str, outdir: str, restart: str | None = None) -> int:
    """Run the job on this MPI world; returns the exit code (0 ok, 3 stopped after a checkpoint).

    ``restart``: a checkpoint file to continue from (resolved by the caller).
    """
    from mpi4py import MPI
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    job = load_spec(spec_path)
    layout = Layout.from_job(job)
    if world.Get_size() != layout.size:
        if rank == 0:
            print(f"msorch: error: this MPI job has {world.Get_size()} ranks but {job.name!r} needs "
                  f"{layout.size} ({layout.describe()})", file=sys.stderr, flush=True)
        return 2
    plan, problems = make_plan(job)
    role = layout.solver_of(rank)
    names = list(layout.groups)
    group = world.Split(names.index(role[0]) if role else MPI.UNDEFINED, rank)
    # Ranks that a pattern runs itself (an HMM farm) reduce among themselves, not with the iterating solvers.
    solvers = world.Split((1 if role[0] in job.driven else 0) if role else MPI.UNDEFINED, rank)
    data = world.Dup()
    out = Path(outdir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not os.environ.get(outdir_lock.HELD_VAR):   # started by hand: nobody checked the directory
            try:
                outdir_lock.acquire(out, job.name)
            except outdir_lock.OutdirError as exc:
                print(f"msorch: error: {exc}", file=sys.stderr, flush=True)
                world.Abort(2)
    nodes = world.gather(placement.this_node(), root=0)   # where each rank really runs
    world.Barrier()
    outdir_lock.join(out)   # every rank, for its whole life: a restart waits until all are gone
    ctx = Context(job, layout, plan, world, data, group, solvers, out, nodes)
    if rank == 0:
        return _coordinate(ctx, restart)
    _work(ctx, role[0], role[1], restart)
    return 0


def _coordinate(ctx, restart) -> int:
    from .checkpoint import read_checkpoint
    from .coordinator import Coordinator, JobFailed, fail
    coordinator = Coordinator(ctx)
    print(f"[msorch] {ctx.job.name}: {ctx.layout.describe()}; {ctx.job.time.n_windows} windows", flush=True)
    if len(set(ctx.nodes)) > 1 or int(os.environ.get("SLURM_JOB_NUM_NODES") or 1) > 1:
        print(f"[msorch] placement: {placement.describe(ctx.layout, ctx.nodes)}", flush=True)
    try:
        first = 0
        if restart:
            first = coordinator.restore(read_checkpoint(restart, solver="coordinator").state())
            print(f"[msorch] restarting from {restart} at window {first + 1}", flush=True)
        records = coordinator.run(first)
        coordinator.finish(records, {"versions": versions(), "wall_seconds": coordinator.wall,
                                     "finished": int(not coordinator.stopped_early),
                                     "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                     "placement": placement.record(ctx.layout, ctx.nodes)})
    except JobFailed as exc:
        coordinator.write_status("failed", str(exc))
        fail(ctx.world, str(exc))
    except BaseException:
        message = "the coordinator failed:\n" + traceback.format_exc()
        coordinator.write_status("failed", message)
        fail(ctx.world, message)
    coordinator.write_status("stopped" if coordinator.stopped_early else "finished")
    if coordinator.stopped_early:
        print("[msorch] stopped after a checkpoint on request; continue with --restart latest", flush=True)
        return STOPPED
    return 0


def _work(ctx, name: str, group_rank: int, restart) -> None:
    from .watchdog import Watchdog, watchdogs_possible
    from .worker import Worker
    roles = None
    if ctx.job.patterns:   # coupling patterns (couplings/patterns) acting on this solver
        from couplings.patterns import roles as pattern_roles
        roles = pattern_roles(ctx, name)
    worker = Worker(ctx, name, hooks=roles.hooks, make_solver=roles.solver) if roles else Worker(ctx, name)
    label = f"solver {name!r} rank {group_rank} (world rank {ctx.world.Get_rank()})"
    watchdog = Watchdog(ctx.world, worker, label, after=ctx.job.hang_timeout / 2) if watchdogs_possible() else None
    if watchdog:
        watchdog.start()
    try:
        worker.setup()
        first = 0
        if restart:
            from .checkpoint import COORDINATOR, read_checkpoint
            worker.phase = "reading the checkpoint"
            layout = read_checkpoint(restart, solver=COORDINATOR).layout
            same = layout.get(name) == len(ctx.layout.groups[name])
            if same:
                checkpoint = read_checkpoint(restart, solver=name, group_rank=group_rank)
                old = [checkpoint.state(name, group_rank)]
            else:   # another rank count: every rank needs every old rank's state
                checkpoint = read_checkpoint(restart, solver=name)
                old = [checkpoint.state(name, r) for r in range(checkpoint.layout[name])]
            worker.restore_checkpoint(old, same)
            first = checkpoint.index
        worker.run(first)
        if watchdog:   # no sends from it once MPI shuts down
            watchdog.stop()
            watchdog.join()
    except BaseException as exc:
        where = f"window {worker.window}" if worker.window >= 0 else "setup"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        message = f"{label} failed in {where} during {worker.phase}: {detail}"
        if os.environ.get("MSORCH_TRACEBACK"):
            message += "\n" + traceback.format_exc()
        ctx.world.send(message, dest=0, tag=TAG_ERROR)
        # The coordinator aborts the whole job; never return into a half-finished run.
        time.sleep(60)
        os._exit(1)


def main(argv=None) -> int:
    signals.install()  # launchers pass SIGUSR1 to every rank; only rank 0 acts on it
    parser = argparse.ArgumentParser(prog="python -m msorch.runtime", description=__doc__)
    parser.add_argument("spec")
    parser.add_argument("-o", "--outdir", required=True)
    parser.add_argument("--restart", help="checkpoint file to continue from")
    args = parser.parse_args(argv)
    return run(args.spec, args.outdir, args.restart)


if __name__ == "__main__":
    sys.exit(main())
