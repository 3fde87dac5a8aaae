"""MUSCLE3's reaction–diffusion example, run by MUSCLE3 and by msorch.

The same coupled model runs three ways, and the script checks that all three
end in the same state (1e-12 relative; they do the same floating-point work):

1. **MUSCLE3** (PyPI ``muscle3``, installed into a throw-away venv, by default
   ``/tmp/msorch-muscle3-venv``, reused when present): ``muscle_manager
   --start-all`` with ``benchmarks/muscle3/{diffusion,reaction}.py`` and
   ``reaction_diffusion.ymmsl``.
2. **msorch**: ``msorch run jobs/reaction_diffusion.yaml`` (1 coordinator +
   1 + 1 solver ranks under ``mpirun``).
3. **sequential**: the two msorch solvers called in a plain loop in this
   process, which gives the compute time without any coupling.

Timings (wall seconds, one run each):

* *end to end*: from starting ``muscle_manager`` / ``msorch run`` to its exit.
* *coupled phase*: from the macro model's first send to the end of its last
  step. MUSCLE3: ``perf_counter`` in ``diffusion.py``. msorch: the sum of the
  per-window wall times of the diffusion group (``results.h5:/timing/diffusion``;
  it leaves out the initial exchange, one 800-byte message).

Reference (from the issue, MUSCLE3 on a 2-core machine): coupled phase about
0.2 s of a 2.7 s run, ~0.6 ms per message one way. Target: msorch >= 10x
faster in the coupled phase, and faster end to end.

Usage: ``/usr/bin/python3 benchmarks/muscle3_bench.py [--venv DIR] [--startup]``
(the msorch side runs with this interpreter; the MUSCLE3 side in the venv).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "muscle3"
JOB = ROOT / "jobs" / "reaction_diffusion.yaml"
REFERENCE = {"coupled_s": 0.2, "end_to_end_s": 2.7, "message_ms": 0.6}
RTOL = 1e-12
MICRO_DT = 2.469136e-8
#: case -> (extra yMMSL files for MUSCLE3, overrides of the msorch reaction params)
CASES = {
    "example": ((), {}),
    # micro t_max = micro dt: no micro step, so the coupled phase is the coupling itself
    "coupling only": (("coupling_only.ymmsl",), {"t_max": MICRO_DT}),
}

IMPLEMENTATIONS = """ymmsl_version: v0.1
settings:
  output_dir: {out}
implementations:
  diffusion:
    executable: {python}
    args: [{diffusion}]
  reaction:
    executable: {python}
    args: [{reaction}]
"""


def ensure_venv(venv: Path) -> Path:
    """The venv's interpreter, with muscle3 installed (created on first use).

    A plain venv (no system site-packages) keeps the wheel's numpy away from
    Debian's.
    """
    python = venv / "bin" / "python"
    if not (venv / "bin" / "muscle_manager").exists():
        print(f"creating {venv} and installing muscle3 from PyPI ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "muscle3"], check=True)
    return python


def run_muscle3(venv: Path, workdir: Path, overrides: tuple[str, ...]) -> dict:
    """Run the MUSCLE3 model; returns final_U, coupled_s, end_to_end_s, steps, version.

    ``overrides``: extra yMMSL files in ``benchmarks/muscle3`` applied last.
    """
    python = ensure_venv(venv)
    version = subprocess.run([str(python), "-c", "import libmuscle; print(libmuscle.__version__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    out, run_dir = workdir / "muscle3_out", workdir / "muscle3_run"
    out.mkdir()
    run_dir.mkdir()
    impl = workdir / "implementations.ymmsl"
    impl.write_text(IMPLEMENTATIONS.format(out=out, python=python, diffusion=HERE / "diffusion.py",
                                           reaction=HERE / "reaction.py"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    cmd = [str(venv / "bin" / "muscle_manager"), "--start-all", "--run-dir", str(run_dir),
           str(HERE / "reaction_diffusion.ymmsl"), str(impl), *(str(HERE / f) for f in overrides)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"muscle_manager failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                 f"logs: {run_dir}")
    timing = json.loads((out / "timing.json").read_text())
    return {"final_U": np.load(out / "final_U.npy"), "coupled_s": timing["coupled_s"],
            "steps": timing["steps"], "per_step": np.array(timing["step_s"]), "end_to_end_s": elapsed,
            "version": version}


def write_job(workdir: Path, reaction_params: dict) -> Path:
    """jobs/reaction_diffusion.yaml with ``reaction_params`` overriding the micro model's."""
    import yaml
    spec = yaml.safe_load(JOB.read_text())
    spec["solvers"]["reaction"]["params"].update(reaction_params)
    path = workdir / JOB.name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_msorch(job: Path, workdir: Path) -> dict:
    """Run an msorch job; returns final_U, coupled_s, end_to_end_s, windows, per_window."""
    import h5py
    env = msorch_env()
    out = workdir / "msorch_out"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "msorch", "run", str(job), "-o", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"msorch run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    with h5py.File(out / "results.h5") as f:
        per_window = f["timing/diffusion"][:]
        final_U = f["diffusion/state_out"][-1]
    return {"final_U": final_U, "coupled_s": float(per_window.sum()), "windows": len(per_window),
            "per_step": per_window, "end_to_end_s": elapsed}


def run_sequential(job_path: Path, repeats: int = 5) -> dict:
    """Both msorch solvers in one loop in this process: the model's compute time alone.

    The compute is deterministic, so the fastest of ``repeats`` runs is its cost
    (the others add only cold caches and other processes' load).
    """
    from mpi4py import MPI

    from msorch.spec import load_spec
    job = load_spec(str(job_path))
    micro, macro = (job.solvers[name] for name in ("reaction", "diffusion"))
    best = np.inf
    for _ in range(repeats):
        reaction = micro.cls(MPI.COMM_SELF, micro.params)
        diffusion = macro.cls(MPI.COMM_SELF, macro.params)
        reaction.initialize(job.time.start)
        diffusion.initialize(job.time.start)
        window = job.time.window
        t0 = time.perf_counter()
        for w in range(job.time.n_windows):
            t = job.time.start + w * window
            reaction.put("initial_state", diffusion.get("state_out"))
            reaction.advance(t, window)
            diffusion.put("state_in", reaction.get("final_state"))
            diffusion.advance(t, window)
        best = min(best, time.perf_counter() - t0)
    return {"final_U": diffusion.get("state_out").copy(), "coupled_s": best}


def msorch_env() -> dict:
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_mpi_yield_when_idle="1",
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def startup_breakdown(venv: Path) -> None:
    """Where msorch's end-to-end time goes before the first window (each step timed once).

    Each line runs one more piece of what ``msorch run`` does, as its own
    process, so the differences between lines are the pieces' costs.
    """
    py, mpirun = sys.executable, ["mpirun", "-n", "3", "--oversubscribe", "--bind-to", "none"]
    rank_imports = ("from mpi4py import MPI; import msorch.runtime, msorch.worker, msorch.coordinator, "
                    "msorch.channel, h5py, solvers.examples.reaction_diffusion")
    steps = [
        ("python -c pass", [py, "-c", "pass"]),
        ("parent: msorch validate (spec + plugin import)", [py, "-m", "msorch", "validate", str(JOB)]),
        ("mpirun -n 3 python -c pass", [*mpirun, py, "-c", "pass"]),
        ("mpirun -n 3: + mpi4py (MPI_Init)", [*mpirun, py, "-c", "from mpi4py import MPI"]),
        ("mpirun -n 3: + msorch/h5py/scipy imports", [*mpirun, py, "-c", rank_imports]),
        ("msorch run (whole job)", [py, "-m", "msorch", "run", str(JOB), "-o", "{tmp}"]),
        ("MUSCLE3 venv: python -c 'import libmuscle'", [str(venv / "bin" / "python"), "-c", "import libmuscle"]),
    ]
    print("\n== startup breakdown (wall seconds, one run each)")
    with tempfile.TemporaryDirectory(prefix="muscle3_bench_") as tmp:
        for label, cmd in steps:
            cmd = [c.replace("{tmp}", tmp) for c in cmd]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=msorch_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
            print(f"{label:50s}{time.perf_counter() - t0:8.3f}")


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def run_case(name: str, venv: Path, overrides: tuple[str, ...], reaction_params: dict) -> bool:
    """Run one case three ways, print the comparison; True when the final states agree."""
    with tempfile.TemporaryDirectory(prefix="muscle3_bench_") as tmp:
        workdir = Path(tmp)
        job = write_job(workdir, reaction_params)
        seq = run_sequential(job)
        m3 = run_muscle3(venv, workdir, overrides)
        ms = run_msorch(job, workdir)

    diff_ms, diff_seq = max_relative(ms["final_U"], m3["final_U"]), max_relative(seq["final_U"], m3["final_U"])
    steps = m3["steps"]
    print(f"\n== {name}: MUSCLE3 {m3['version']} vs msorch, {len(m3['final_U'])} cells, {steps} macro steps "
          f"({ms['windows']} msorch windows)")
    print(f"final U: max relative difference msorch vs MUSCLE3 {diff_ms:.1e}, "
          f"sequential vs MUSCLE3 {diff_seq:.1e} (tolerance {RTOL:g})")
    print(f"{'':34s}{'MUSCLE3':>10s}{'msorch':>10s}{'ratio':>8s}")
    for key, label in (("end_to_end_s", "end to end [s]"), ("coupled_s", "coupled phase [s]")):
        print(f"{label:34s}{m3[key]:10.4f}{ms[key]:10.4f}{m3[key] / ms[key]:7.1f}x")
    compute = seq["coupled_s"]
    print(f"{'  compute alone (best of 5) [s]':34s}{compute:10.4f}{compute:10.4f}")
    over_m3 = (m3["coupled_s"] - compute) / steps
    over_ms = (ms["coupled_s"] - compute) / steps
    print(f"{'coupling cost per macro step [ms]':34s}{1e3 * over_m3:10.3f}{1e3 * over_ms:10.3f}"
          f"{over_m3 / max(over_ms, 1e-9):7.1f}x   (coupled - compute)/steps")
    med_m3, med_ms = float(np.median(m3["per_step"])), float(np.median(ms["per_step"]))
    print(f"{'median macro step [ms]':34s}{1e3 * med_m3:10.3f}{1e3 * med_ms:10.3f}{med_m3 / med_ms:7.1f}x"
          f"   (robust to load spikes; compute {1e3 * compute / steps:.3f})")
    print(f"{'slowest macro step [ms]':34s}{1e3 * m3['per_step'].max():10.3f}{1e3 * ms['per_step'].max():10.3f}")
    yes = {True: "met", False: "NOT met"}
    print(f"targets: coupled phase >= 10x faster {yes[m3['coupled_s'] >= 10 * ms['coupled_s']]}, "
          f"faster end to end {yes[m3['end_to_end_s'] > ms['end_to_end_s']]}; "
          f"vs the issue's MUSCLE3 coupled phase ({REFERENCE['coupled_s']} s): "
          f"{REFERENCE['coupled_s'] / ms['coupled_s']:.1f}x")
    return diff_ms <= RTOL and diff_seq <= RTOL


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/msorch-muscle3-venv"),
                        help="venv for MUSCLE3 (created with muscle3 from PyPI if missing)")
    parser.add_argument("--startup", action="store_true", help="also time the pieces of msorch's startup")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before: {load} on {os.cpu_count()} cores")
    ok = True
    for name, (overrides, params) in CASES.items():
        ok &= run_case(name, args.venv, overrides, params)
    print(f"\nreference (issue, MUSCLE3, 2 cores): coupled phase {REFERENCE['coupled_s']} s of "
          f"{REFERENCE['end_to_end_s']} s end to end, ~{REFERENCE['message_ms']} ms per message one way")
    if args.startup:
        startup_breakdown(args.venv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load}; same final states: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
