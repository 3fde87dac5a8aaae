"""The ``msorch`` command: validate, run, submit, status, plot.

Exit codes: 0 success, 2 invalid spec or arguments (or no usable checkpoint),
1 run failure, 3 stopped after a checkpoint on request (SIGUSR1, e.g. SLURM's
walltime warning): run again with ``--restart latest`` to finish.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from . import outdir as outdir_mod
from .layout import Layout
from .messages import STOPPED

JOB_IDS = "slurm_jobs.txt"  # in OUTDIR: one SLURM job id per line, as submitted


def check_job(path: str):
    """Load and validate a spec, schedule included; raises SpecError with every problem."""
    from .schedule import make_plan
    from .spec import Problem, SpecError, load_spec
    job = load_spec(path)
    _, problems = make_plan(job)
    if problems:
        raise SpecError([Problem(*p) for p in problems])
    return job


def _describe(job) -> str:
    from . import placement
    layout = Layout.from_job(job)
    scheme = job.scheme
    lines = [f"{job.name}: valid",
             f"  ranks: {layout.size} ({layout.describe()})",
             *([f"  placement on {job.resources.nodes} nodes: " + placement.describe(layout, [
                 str(i) for i in placement.plan(layout, job.resources.nodes, job.resources.placement)])]
               if job.resources.nodes > 1 else []),
             f"  time: {job.time.start:g} .. {job.time.end:g} s in {job.time.n_windows} windows of {job.time.window:g} s",
             f"  scheme: {scheme.kind}, {scheme.staggering} staggering"]
    for name, s in job.solvers.items():
        steps = "run by a pattern" if name in job.driven else f"{s.substeps} per window"
        lines.append(f"  solver {name}: {s.kind}, {s.ranks} rank(s), dt {s.dt:g} s ({steps})")
    for c in job.couplings:
        lines.append(f"  coupling {c.source}.{c.source_field} -> {c.target}.{c.target_field} "
                     f"({c.mapping}, {c.waveform} waveform)")
    if job.patterns:
        from couplings.patterns import KINDS
        lines.extend(f"  {KINDS[p.kind].describe(p)}" for p in job.patterns)
    return "\n".join(lines)


def cmd_validate(args) -> int:
    job = check_job(args.spec)
    print(_describe(job))
    if getattr(args, "explain", False):
        print(_explain(job))
    return 0


def _explain(job) -> str:
    """The couplings and scheme each recipe pattern added to the job, as the YAML a user would write."""
    import yaml
    if not job.expansions:
        return "no pattern of this job expands into couplings or a scheme"
    blocks = []
    for index, kind, pieces in job.expansions:
        text = yaml.safe_dump(pieces, sort_keys=False, default_flow_style=None, width=100)
        blocks.append(f"# patterns[{index}] ({kind}) expands to:\n{text.rstrip()}")
    return "\n".join(blocks)


def cmd_run(args) -> int:
    from . import launch
    job = check_job(args.spec)
    layout = Layout.from_job(job)
    outdir = args.outdir or str(Path("out") / job.name)
    in_place = launch.mpi_size_in_place()
    if in_place is not None:
        if in_place != layout.size:
            print(f"msorch: error: started under MPI with {in_place} ranks, but {job.name!r} needs "
                  f"{layout.size} ({layout.describe()}). Start it with 'mpirun -n {layout.size} msorch run "
                  f"{args.spec}', or run 'msorch run {args.spec}' without mpirun and it launches itself.",
                  file=sys.stderr)
            return 2
        return _run_in_place(args, job, outdir)
    cmd_restart = _take_outdir(args, job, outdir)
    if cmd_restart is _NOT_FOUND:
        return 2
    from . import placement
    try:   # several nodes: which rank runs where (resources.placement, or packed)
        hostfile = None if args.dry_run else placement.hostfile_for_allocation(job, layout, outdir)
    except (ValueError, RuntimeError) as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 2
    cmd = launch.launch_command(layout.size, args.spec, outdir, launcher=args.launcher, restart=cmd_restart,
                                hostfile=hostfile)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    code = launch.run_launched(cmd, layout, extra_env={outdir_mod.HELD_VAR: "1"})
    if code == STOPPED and os.environ.get("SLURM_JOB_ID"):
        # Walltime warning inside a batch job: put the job back in the queue; its
        # script resumes with --restart auto (see msorch.slurm.batch_script).
        from . import slurm
        slurm.requeue(os.environ["SLURM_JOB_ID"])
        print(f"[msorch] requeued SLURM job {os.environ['SLURM_JOB_ID']}", flush=True)
    return code


_NOT_FOUND = object()   # "no usable checkpoint": exit 2


def _take_outdir(args, job, outdir: str):
    """Hold OUTDIR for this run, check what it holds, pick the checkpoint; returns the restart file or None.

    Raises OutdirError (exit 2, nothing touched) or returns _NOT_FOUND for a
    strict ``--restart latest`` without a usable checkpoint.
    """
    if args.dry_run:   # look, don't take
        if not args.overwrite:
            outdir_mod.check_reuse(outdir, job.name, args.restart, overwrite=False)
        return resolve_restart(args.restart, outdir) if args.restart else None
    outdir_mod.acquire(outdir, job.name, check=lambda: outdir_mod.check_reuse(
        outdir, job.name, args.restart, overwrite=args.overwrite and not args.restart))
    if not args.restart:
        return None
    restart = resolve_restart(args.restart, outdir)
    if restart is _NOT_FOUND:
        return _NOT_FOUND
    if restart is None and outdir_mod.previous_run(outdir):   # auto, nothing to continue: start afresh
        removed = outdir_mod.remove_run(outdir)
        print(f"[msorch] no checkpoint to continue from: starting {job.name} from the beginning "
              f"(removed the earlier run's {', '.join(removed)})", flush=True)
    return restart


def _run_in_place(args, job, outdir: str) -> int:
    """Already one rank of an MPI job of the right size: rank 0 takes OUTDIR, everyone runs."""
    from mpi4py import MPI

    from . import liveness
    from .checkpoint import CheckpointError
    world = MPI.COMM_WORLD
    liveness.stop_with_launcher()
    restart = None
    if world.Get_rank() == 0:
        try:
            restart = _take_outdir(args, job, outdir)
        except (outdir_mod.OutdirError, CheckpointError) as exc:
            print(f"msorch: error: {exc}", file=sys.stderr, flush=True)
            restart = _NOT_FOUND
    failed = world.bcast(restart is _NOT_FOUND, root=0)   # tiny control messages
    restart = world.bcast(None if failed else restart, root=0)
    if failed:
        return 2
    if args.dry_run:
        return 0
    os.environ[outdir_mod.HELD_VAR] = "1"   # rank 0 holds it now; the runtime only joins
    from .runtime import run
    return run(args.spec, outdir, restart)


def cmd_submit(args) -> int:
    from . import slurm
    job = check_job(args.spec)
    outdir = Path(args.outdir or Path("out") / job.name).resolve()
    # Refuse now what the batch job's first run would refuse (it runs with the same flags).
    if not args.overwrite:
        outdir_mod.check_reuse(outdir, job.name, args.restart, overwrite=False)
    script = slurm.batch_script(job, args.spec, outdir, restart=args.restart, launcher=args.launcher,
                                overwrite=args.overwrite)
    if args.dry_run:
        print(script, end="")
        return 0
    job_id = slurm.submit(script, outdir)
    with open(outdir / JOB_IDS, "a") as f:
        f.write(job_id + "\n")
    print(job_id)
    return 0


def cmd_status(args) -> int:
    """Where a run is: its state and time reached, checkpoints, SLURM jobs."""
    from .checkpoint import find_checkpoints
    outdir = Path(args.outdir)
    if not outdir.is_dir():
        print(f"msorch: error: no such output directory: {outdir}", file=sys.stderr)
        return 2
    from . import status
    state = status.read(outdir)
    if state is None:
        print("run: not started (no status.json)")
    else:
        print(f"run: {state['job']} {state['state']}, {state['windows_done']}/{state['windows']} windows, "
              f"t = {state['time']:g} s (as of {state['updated']})")
        if state.get("message"):
            print(f"  {state['message']}")
        if state["state"] == "running" and state.get("eta_seconds") is not None:
            print(f"  estimated time to finish: {state['eta_seconds']:.0f} s (at this run's window rate)")
    checkpoints = find_checkpoints(outdir / "checkpoints") if (outdir / "checkpoints").is_dir() else []
    print(f"checkpoints: {len(checkpoints)}" + (f", newest {checkpoints[0]}" if checkpoints else ""))
    ids = (outdir / JOB_IDS).read_text().split() if (outdir / JOB_IDS).exists() else []
    if ids:
        from . import slurm
        for job_id in ids:
            try:
                state = slurm.job_state(job_id)
            except slurm.SlurmUnreachable as exc:
                print(f"slurm jobs {', '.join(ids)}: SLURM could not be reached ({exc.short}); point at your "
                      "cluster with SLURM_CONF=/path/to/slurm.conf (the local test cluster: "
                      "eval $(scripts/local_slurm.py env))")
                break
            except slurm.SlurmError as exc:
                state = f"unknown ({exc})"
            print(f"slurm job {job_id}: {state}")
    return 0


def resolve_restart(which: str, outdir: str):
    """The checkpoint file to restart from.

    ``which``: a checkpoint path; ``latest``, the newest valid one in
    OUTDIR/checkpoints, or :data:`_NOT_FOUND` (exit 2) when there is none; ``auto``,
    the same but None (start from the beginning) when there is none — what a
    requeued batch job needs, which may not have reached its first checkpoint.
    """
    from .checkpoint import CheckpointError, latest_valid, verify_checkpoint
    if which not in ("latest", "auto"):
        verify_checkpoint(which)
        return which
    directory = Path(outdir) / "checkpoints"
    try:
        if not directory.is_dir() or not any(directory.iterdir()):
            raise CheckpointError(f"no checkpoint in {directory}")
        path, skipped = latest_valid(directory)
    except CheckpointError as exc:
        if which == "auto":
            return None
        print(f"msorch: cannot restart: no usable checkpoint ({exc}). Run without --restart to start "
              "from the beginning, or use --restart auto to continue when possible", file=sys.stderr)
        return _NOT_FOUND
    for reason in skipped:
        print(f"msorch: skipping a damaged checkpoint: {reason}", file=sys.stderr)
    return str(path)


def cmd_plot(args) -> int:
    from .plot import plot
    if not (Path(args.outdir) / "results.h5").exists():
        print(f"msorch: error: no results.h5 in {args.outdir}", file=sys.stderr)
        return 2
    for path in plot(Path(args.outdir), args.times):
        print(path)
    return 0


def cmd_solvers(args) -> int:
    """The settings reference: registered kinds, one solver's settings and fields, or the Markdown page."""
    from . import reference, registry
    registry.add_search_path(Path.cwd())   # a user's package.module:Class next to where they work
    if args.markdown:
        sys.stdout.write(reference.markdown())
    elif args.kind:
        try:
            sys.stdout.write(reference.solver_text(reference.describe_solver(args.kind)))
        except registry.PluginError as exc:
            print(f"msorch: error: {exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(reference.kinds_text())
    return 0


def cmd_report(args) -> int:
    """One self-contained HTML page of a run."""
    from .report import write_report
    outdir = Path(args.outdir)
    if not (outdir / "results.h5").exists() and not (outdir / "status.json").exists():
        print(f"msorch: error: no results.h5 or status.json in {outdir}", file=sys.stderr)
        return 2
    print(write_report(outdir, Path(args.output) if args.output else None))
    return 0


def cmd_analyze(args) -> int:
    """Data-driven scales of a run: POD, DMD, BOP-DMD, mrDMD -> OUTDIR/analysis.h5, PNGs, a summary."""
    from .analysis import AnalysisError, Options, analyze
    try:
        rank = float(args.rank)
        rank = int(rank) if rank == int(rank) else rank
        opts = Options(solvers=tuple(args.solver or ()), fields=tuple(args.field or ()),
                       methods=tuple(args.method or ("pod", "dmd", "mrdmd")), rank=rank,
                       t_from=args.t_from, t_to=args.t_to, delays=args.delays, levels=args.levels,
                       trials=args.trials, plots=not args.no_plots)
        analyze(Path(args.outdir), opts)
    except (AnalysisError, ValueError) as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msorch", description="MPI-parallel multiscale co-simulation orchestrator.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check a job spec without running it",
                       description="Check a job spec: every problem is listed with its YAML path and a fix.")
    p.add_argument("spec", help="job spec (YAML)")
    p.add_argument("--explain", action="store_true",
                   help="also print the couplings and scheme that recipe patterns (schwarz, ...) expand into")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("run", help="run a job", description="Run a job: validates the spec, then launches "
                       "1 coordinator + each solver's ranks with mpirun (or runs in place under mpirun/srun).")
    p.add_argument("spec", help="job spec (YAML)")
    p.add_argument("-o", "--outdir", help="output directory (default: out/<job name>)")
    p.add_argument("--dry-run", action="store_true", help="print the launch line and exit")
    p.add_argument("--restart", metavar="CHECKPOINT|latest|auto",
                   help="continue from a checkpoint file, or the newest valid one in OUTDIR/checkpoints "
                   "(latest: exit 2 if there is none; auto: then start from the beginning)")
    p.add_argument("--overwrite", action="store_true",
                   help="OUTDIR holds an earlier run: remove its files and start afresh")
    p.add_argument("--launcher", choices=("mpirun", "srun"), default="mpirun",
                   help="how to start the ranks when not already under MPI (default: mpirun)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("submit", help="submit a job to SLURM with sbatch",
                       description="Write a batch script from the spec's resources: block and submit it. With a "
                       "time limit, the job checkpoints at SLURM's warning signal and requeues itself until done.")
    p.add_argument("spec", help="job spec (YAML)")
    p.add_argument("-o", "--outdir", help="output directory (default: out/<job name>)")
    p.add_argument("--dry-run", action="store_true", help="print the batch script and exit")
    p.add_argument("--restart", metavar="CHECKPOINT|latest|auto", help="start from a checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="the batch job removes an earlier run's files in OUTDIR and starts afresh")
    p.add_argument("--launcher", choices=("mpirun", "srun"),
                   help="how the batch job starts its ranks (default: the spec's resources.launcher)")
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser("status", help="where a run is", description="State and time reached of a run, "
                       "its checkpoints and SLURM job states, from an output directory.")
    p.add_argument("outdir")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("plot", help="PNG pictures of a run's results",
                       description="Write OUTDIR/plots/: coupling iterations and residuals, time per window, "
                       "and every solver's output fields.")
    p.add_argument("outdir")
    p.add_argument("--times", type=float, nargs="+", metavar="T",
                   help="output times [s] of the 2-D field maps (default: first, middle, last)")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("solvers", help="solver kinds, their settings and fields",
                       description="List the registered solver kinds; with KIND (a registered name or "
                       "package.module:Class) print its settings (type, default, units, allowed values) and fields.")
    p.add_argument("kind", nargs="?", help="a solver kind, e.g. fem.heat")
    p.add_argument("--markdown", action="store_true",
                   help="print the whole reference (spec sections and every solver) as Markdown: "
                   "msorch solvers --markdown > docs/spec-reference.md")
    p.set_defaults(func=cmd_solvers)
    p = sub.add_parser("report", help="one self-contained HTML page of a run",
                       description="Write OUTDIR/report.html: spec, layout, summary, warnings, plots, timing "
                       "and checkpoints in one file that opens offline.")
    p.add_argument("outdir")
    p.add_argument("-o", "--output", help="where to write the page (default: OUTDIR/report.html)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("analyze", help="data-driven scales of a run (POD, DMD, multiresolution DMD)",
                       description="Decompose a run's output fields: POD energy spectrum, DMD continuous "
                       "eigenvalues (lambda = ln(mu)/dt; frequency = Im lambda/2pi in cycles per time unit), "
                       "modes, phase speeds on 1-D point sets, and mrDMD time scales. Writes OUTDIR/analysis.h5 "
                       "and OUTDIR/plots/analysis_*.png.")
    p.add_argument("outdir")
    p.add_argument("--solver", action="append", help="solver to analyse (repeatable; default: all)")
    p.add_argument("--field", action="append", help="field to analyse (repeatable; default: all)")
    p.add_argument("--method", action="append", choices=("pod", "dmd", "bopdmd", "mrdmd"),
                   help="method (repeatable; default: pod, dmd, mrdmd)")
    p.add_argument("--rank", default="0", help="DMD rank: N modes, a POD-energy fraction in (0,1), "
                   "0 optimal hard threshold (default), -1 all")
    p.add_argument("--from", dest="t_from", type=float, help="first output time to use")
    p.add_argument("--to", dest="t_to", type=float, help="last output time to use")
    p.add_argument("--delays", type=int, help="delay-embedding depth (default: automatic for fields with "
                   "fewer than 16 values)")
    p.add_argument("--levels", type=int, help="mrDMD levels below the top (default: bins of >= 8 snapshots)")
    p.add_argument("--trials", type=int, default=0, help="BOP-DMD bags (0: optimized DMD without bagging)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.set_defaults(func=cmd_analyze)
    return parser


def _front_end_without_mpi(argv) -> None:
    """Importing plugins (to validate their Params) must not start MPI in the front end.

    An MPI initialized here would make this process an Open MPI singleton whose
    variables leak into what it starts (see :mod:`msorch.environ`), and costs
    start-up time.  Only ``msorch run`` started as a rank of an MPI job
    (``mpirun -n N msorch run ...``) initializes MPI, because it then runs the job.
    """
    from . import launch
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["run"] and launch.mpi_size_in_place() is not None:
        return
    import mpi4py
    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False


def main(argv=None) -> int:
    from . import signals
    signals.install()
    _front_end_without_mpi(argv)
    from .checkpoint import CheckpointError
    from .slurm import SlurmError
    from .spec import SpecError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"msorch: invalid spec {args.spec}:\n{exc}", file=sys.stderr)
        return 2
    except SlurmError as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 1
    except CheckpointError as exc:
        print(f"msorch: cannot restart: {exc}", file=sys.stderr)
        return 2
    except outdir_mod.OutdirError as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
