"""The ``msorch`` command: validate, run.

Exit codes: 0 success, 2 invalid spec or arguments (or no usable checkpoint),
1 run failure, 3 stopped after a checkpoint on request (SIGUSR1, e.g. SLURM's
walltime warning): run again with ``--restart latest`` to finish.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .layout import Layout


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
    layout = Layout.from_job(job)
    scheme = job.scheme
    lines = [f"{job.name}: valid",
             f"  ranks: {layout.size} ({layout.describe()})",
             f"  time: {job.time.start:g} .. {job.time.end:g} s in {job.time.n_windows} windows of {job.time.window:g} s",
             f"  scheme: {scheme.kind}, {scheme.staggering} staggering"]
    for name, s in job.solvers.items():
        lines.append(f"  solver {name}: {s.kind}, {s.ranks} rank(s), dt {s.dt:g} s ({s.substeps} per window)")
    for c in job.couplings:
        lines.append(f"  coupling {c.source}.{c.source_field} -> {c.target}.{c.target_field} "
                     f"({c.mapping}, {c.waveform} waveform)")
    return "\n".join(lines)


def cmd_validate(args) -> int:
    job = check_job(args.spec)
    print(_describe(job))
    return 0


def cmd_run(args) -> int:
    from . import launch
    job = check_job(args.spec)
    layout = Layout.from_job(job)
    outdir = args.outdir or str(Path("out") / job.name)
    restart = resolve_restart(args.restart, outdir) if args.restart else None
    in_place = launch.mpi_size_in_place()
    if in_place is not None:
        if in_place != layout.size:
            print(f"msorch: error: started under MPI with {in_place} ranks, but {job.name!r} needs "
                  f"{layout.size} ({layout.describe()}). Start it with 'mpirun -n {layout.size} msorch run "
                  f"{args.spec}', or run 'msorch run {args.spec}' without mpirun and it launches itself.",
                  file=sys.stderr)
            return 2
        from .runtime import run
        return run(args.spec, outdir, restart)
    cmd = launch.launch_command(layout.size, args.spec, outdir, launcher=args.launcher, restart=restart)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return launch.run_launched(cmd, layout)


def resolve_restart(which: str, outdir: str) -> str:
    """The checkpoint file to restart from: a path, or ``latest`` valid one in OUTDIR/checkpoints."""
    from .checkpoint import latest_valid, verify_checkpoint
    if which != "latest":
        verify_checkpoint(which)
        return which
    path, skipped = latest_valid(Path(outdir) / "checkpoints")
    for reason in skipped:
        print(f"msorch: skipping a damaged checkpoint: {reason}", file=sys.stderr)
    return str(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msorch", description="MPI-parallel multiscale co-simulation orchestrator.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check a job spec without running it",
                       description="Check a job spec: every problem is listed with its YAML path and a fix.")
    p.add_argument("spec", help="job spec (YAML)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("run", help="run a job", description="Run a job: validates the spec, then launches "
                       "1 coordinator + each solver's ranks with mpirun (or runs in place under mpirun/srun).")
    p.add_argument("spec", help="job spec (YAML)")
    p.add_argument("-o", "--outdir", help="output directory (default: out/<job name>)")
    p.add_argument("--dry-run", action="store_true", help="print the launch line and exit")
    p.add_argument("--restart", metavar="CHECKPOINT|latest",
                   help="continue from a checkpoint file, or the newest valid one in OUTDIR/checkpoints")
    p.add_argument("--launcher", choices=("mpirun", "srun"), default="mpirun",
                   help="how to start the ranks when not already under MPI (default: mpirun)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .spec import SpecError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"msorch: invalid spec {args.spec}:\n{exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"msorch: cannot restart: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"msorch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
