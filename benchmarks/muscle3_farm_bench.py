"""The HMM farm's uneven tasks through MUSCLE3 (issue 11, Must show 5d), beside msorch's farm.

The tasks of ``benchmarks/farm_bench.py`` part (c): per window 100 queries
x_i = i/100 (+ 1e-3 per window), each costing 2 ms x (1 + 9 x_i) of busy work
(2 to 20 ms, growing with the index, 1.09 s of work per window), answered
x + 1.  Two implementations, each with 1 and 2 workers, one run each:

* **MUSCLE3** (PyPI ``muscle3`` in the throw-away venv of
  ``benchmarks/muscle3_bench.py``, reused): ``muscle_manager --start-all``
  with a macro driver sending the window's tasks on a vector port,
  the round-robin load balancer *exactly as MUSCLE3's documentation shows it*
  ("Uncertainty Quantification"), and the task model with ``multiplicity``
  1 or 2 (``benchmarks/muscle3/farm_*.py``, ``farm_*`` below).  Window wall
  seconds measured in the driver (first send to last receive).
* **msorch**: ``farm_bench.run`` (``msorch run``, a stateless ``kind: hmm``
  farm of 1 or 2 ranks, dynamic work units), window seconds from
  ``results.h5:/timing/probe``.

Reported: median seconds per window (first fifth left out, as farm_bench
does), parallel efficiency T1 / (2 T2), overhead over the pure work
(T1 / 1.09 s).  The documented load balancer deals call i to worker
i mod 2 and returns results in order (at most one call in flight per
worker), which with costs growing smoothly along the index is nearly
balanced; its cost is the idle time while the lagging worker finishes.

Usage: ``.venv/bin/python benchmarks/muscle3_farm_bench.py [--venv DIR] [--windows N]``.
The machine's 2 cores are shared: figures measured under load are noisy.
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

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import farm_bench  # noqa: E402  (the msorch side and its task definition)
from muscle3_bench import ensure_venv  # noqa: E402  (the MUSCLE3 venv)

N_TASKS, COST, SPREAD = 100, 2e-3, 10.0
WORK = COST * float(np.sum(1 + (SPREAD - 1) * np.arange(N_TASKS) / N_TASKS))   # seconds per window

MODEL = """ymmsl_version: v0.1
model:
  name: farm
  components:
    macro: {{implementation: farm_driver, ports: {{o_i: tasks_out, s: results_in}}}}
    lb:
      implementation: farm_lb
      ports: {{f_init: front_in, o_i: back_out, s: back_in, o_f: front_out}}
    micro: {{implementation: farm_task, multiplicity: {workers}, ports: {{f_init: task_in, o_f: result_out}}}}
  conduits:
    macro.tasks_out: lb.front_in
    lb.front_out: macro.results_in
    lb.back_out: micro.task_in
    micro.result_out: lb.back_in
settings:
  n_tasks: {n}
  windows: {windows}
  cost: {cost}
  spread: {spread}
  output_dir: {out}
implementations:
  farm_driver: {{executable: {python}, args: [{here}/farm_driver.py]}}
  farm_lb: {{executable: {python}, args: [{here}/farm_lb.py]}}
  farm_task: {{executable: {python}, args: [{here}/farm_task.py]}}
resources:
  macro: {{threads: 1}}
  lb: {{threads: 1}}
  micro: {{threads: 1}}
"""


def run_muscle3(venv: Path, workdir: Path, workers: int, windows: int) -> np.ndarray:
    """Seconds per window of the MUSCLE3 farm with ``workers`` task instances."""
    python = ensure_venv(venv)
    out, run_dir = workdir / f"m3_{workers}", workdir / f"m3_{workers}_run"
    out.mkdir()
    run_dir.mkdir()
    spec = workdir / f"farm_{workers}.ymmsl"
    spec.write_text(MODEL.format(workers=workers, n=N_TASKS, windows=windows, cost=COST, spread=SPREAD,
                                 out=out, python=python, here=HERE / "muscle3"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(venv / "bin" / "muscle_manager"), "--start-all", "--run-dir", str(run_dir),
                           str(spec)], capture_output=True, text=True, env=env, cwd=workdir)
    if proc.returncode != 0:
        sys.exit(f"muscle_manager failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\nlogs: {run_dir}")
    timing = json.loads((out / "farm_timing.json").read_text())
    if timing["wrong"]:
        sys.exit(f"MUSCLE3 farm: {timing['wrong']} wrong answers")
    return np.array(timing["window_s"])


def run_msorch(workdir: Path, workers: int, windows: int) -> np.ndarray:
    return farm_bench.run(workdir, f"ms_{workers}", n=N_TASKS, windows=windows, farm=workers, mode="stateless",
                          cost=COST, spread=SPREAD)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/msorch-muscle3-venv"),
                        help="venv for MUSCLE3 (created with muscle3 from PyPI if missing)")
    parser.add_argument("--windows", type=int, default=6, help="windows per run (first fifth left out)")
    args = parser.parse_args(argv)
    python = ensure_venv(args.venv)
    version = subprocess.run([str(python), "-c", "import libmuscle; print(libmuscle.__version__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
          + ("  (busy machine: noisy figures)" if load[0] > 1.5 else ""))
    print(f"{N_TASKS} tasks per window of {COST * 1e3:.0f}-{COST * SPREAD * 1e3:.0f} ms busy work "
          f"({WORK:.3f} s of work per window), {args.windows} windows; MUSCLE3 {version}")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="muscle3_farm_") as tmp:
        work = Path(tmp)
        for workers in (1, 2):
            for name, fn in (("MUSCLE3", run_muscle3), ("msorch", run_msorch)):
                t0 = time.perf_counter()
                seconds = (fn(args.venv, work, workers, args.windows) if name == "MUSCLE3"
                           else fn(work, workers, args.windows))
                rows[name, workers] = farm_bench.steady(seconds)
                print(f"  {name:8s} {workers} worker(s): {rows[name, workers]:.3f} s per window "
                      f"(run {time.perf_counter() - t0:.1f} s end to end)", flush=True)
    print(f"\n{'':10s}{'1 worker [s]':>14s}{'2 workers [s]':>15s}{'efficiency':>12s}{'T1/work':>10s}")
    for name in ("MUSCLE3", "msorch"):
        t1, t2 = rows[name, 1], rows[name, 2]
        print(f"{name:10s}{t1:14.3f}{t2:15.3f}{t1 / (2 * t2):12.3f}{t1 / WORK:10.3f}")
    print(f"msorch vs MUSCLE3 at 2 workers: {rows['MUSCLE3', 2] / rows['msorch', 2]:.2f}x faster per window")
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
