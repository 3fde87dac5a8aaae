"""What a user pays per explicit coupling window, coordinator included.

Two ``test.null`` solvers that do no work exchange n doubles each way every
window (explicit, parallel staggering), on 1+1 and 2+2 ranks plus the
coordinator, through the real ``msorch run``.  The per-window cost is the
mean wall time between consecutive window ends on a group root (leases,
progress reports, channel traffic and Python overhead all included), over the
last 80 % of the windows.  Baseline in the same run: raw mpi4py moving the same
bytes each way between the same number of ranks (``Sendrecv`` per pair).

A third case runs the same pair with an implicit scheme whose windows converge
at the first iteration (both offsets 0, so every value stays 0): what the
implicit machinery (state snapshot, convergence sums and their reduction over
all solver ranks) adds to a window; printed as a ratio to the explicit window.

Reference (``shared/references.md``, "Peer figures measured on this machine
kind"): preCICE 3.4.1 C++, one ``Participant`` per process, both under one
``mpirun`` (MPMD), ``m2n:mpi``, logging disabled, ``parallel-explicit``,
nearest-neighbour mapping, 1 rank each, time per window on participant A:
9.7–10.4 µs at n = 1, 43.9 µs at n = 1,000, 4.1–5.1 ms at n = 125,000.

``--compare TREE``: also run msorch from another checkout (e.g. the commit
before a change, ``git archive <commit> | tar -x -C TREE``), interleaved with
this one, and print both: before/after under the same machine load.
``--repeat N``: best (lowest mean) of N runs per case; the N rounds go over all cases in
turn, so that one slow spell of the machine cannot take all of a case's runs.
``--percentile P``: print the P-th percentile of the per-window times instead of
the mean (msorch and raw alike; on a loaded machine the mean measures the load,
a low percentile the windows that ran undisturbed).
The implicit case takes the local convergence sums (two 1-rank solvers, no
acceleration: each rank measures what it sends and what it receives, no message
for the sums; ``Worker._bind_residuals``); ``MSORCH_CONVERGENCE_REDUCTION=1`` in
the environment measures it with the per-iteration ``Allreduce`` instead.
"""
from __future__ import annotations

import os
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [(1, 20000), (1000, 5000), (125_000, 400)]
IMPLICIT_CASES = [(1, 20000), (1000, 5000)]
LAYOUTS = [(1, 1), (2, 2)]
# preCICE 3.4.1, m2n:mpi, no logging, parallel-explicit, 1 rank each (shared/references.md, 2026-12-03)
PRECICE = {1: "9.7-10.4 us", 1000: "43.9 us", 125_000: "4.1-5.1 ms"}

SPEC = """name: window_bench
time: {{start: 0.0, end: {windows}.0, window: 1.0}}
solvers:
  a: {{kind: test.null, ranks: {ranks}, params: {{n: {n}, offset: 1.0}}, output: {{fields: []}}}}
  b: {{kind: test.null, ranks: {ranks}, params: {{n: {n}}}, output: {{fields: []}}}}
couplings:
  - {{from: a.out, to: b.in}}
  - {{from: b.out, to: a.in}}
scheme: {{kind: explicit, staggering: parallel}}
progress: false
"""

# Offsets 0: every value stays 0, so each window converges at its first iteration.
IMPLICIT_SPEC = SPEC.replace("offset: 1.0", "offset: 0.0").replace(
    "scheme: {{kind: explicit, staggering: parallel}}",
    "scheme: {{kind: implicit, staggering: parallel, convergence: [{{field: a.in, relative: 1.0e-6}}]}}")


def env(root: Path = ROOT):
    return dict(os.environ, PYTHONPATH=str(root), OMPI_MCA_mpi_yield_when_idle="1",
                OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


STAT = None   # None: mean; else the percentile (--percentile)


def _stat(t: np.ndarray) -> float:
    return float(t.mean() if STAT is None else np.percentile(t, STAT))


def msorch_window(n: int, windows: int, ranks: int, workdir: Path, implicit: bool = False,
                  root: Path = ROOT) -> float:
    """Seconds per window (mean or --percentile) over the last 80 % of ``windows`` (msorch from ``root``)."""
    import h5py
    tag = f"{n}_{ranks}_{'i' if implicit else 'e'}_{abs(hash(str(root)))}"
    spec = workdir / f"w_{tag}.yaml"
    spec.write_text((IMPLICIT_SPEC if implicit else SPEC).format(n=n, windows=windows, ranks=ranks))
    out = workdir / f"out_{tag}"
    subprocess.run([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(out)], check=True, env=env(root),
                   stdout=subprocess.DEVNULL, cwd=root)
    with h5py.File(out / "results.h5") as f:
        t = f["timing/a"][:]
        if implicit:
            assert (f["coupling/iterations"][:] == 1).all(), "every implicit window must take one iteration"
    shutil.rmtree(out)
    return _stat(t[len(t) // 5:])


def raw_window(n: int, windows: int, ranks: int) -> float:
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(2 * ranks), sys.executable, __file__,
           "--raw", str(n), str(windows), str(STAT)]
    out = subprocess.run(cmd, check=True, env=env(), capture_output=True, text=True).stdout
    return float(out.split()[-1])


def raw_main(n: int, windows: int):
    """Each rank of the first half pairs with one of the second half; each pair swaps n/ranks doubles."""
    from mpi4py import MPI
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    half = size // 2
    peer = rank + half if rank < half else rank - half
    part = n // half + (1 if (rank % half) < n % half else 0)
    send, recv = np.ones(part), np.empty(part)
    times = []
    for _ in range(windows):
        t0 = time.perf_counter()
        world.Sendrecv(send, dest=peer, sendtag=1, recvbuf=recv, source=peer, recvtag=1)
        send += 1.0   # the "solver" step, as null does
        times.append(time.perf_counter() - t0)
    t = np.array(times)
    if rank == 0:
        print(f"{_stat(t[len(t) // 5:]):.9e}")


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.2f}us"


def main():
    global STAT
    if "--raw" in sys.argv:
        STAT = None if sys.argv[4] == "None" else float(sys.argv[4])
        raw_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another checkout of msorch to run beside this one")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the lowest mean is printed")
    parser.add_argument("--quick", action="store_true", help="n = 1 and 1,000 on 1+1 only")
    parser.add_argument("--percentile", type=float, help="print this percentile of the per-window times, not the mean")
    args = parser.parse_args()
    STAT = args.percentile
    trees = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    cases = [c for c in CASES if c[0] <= 1000] if args.quick else CASES
    layouts = LAYOUTS[:1] if args.quick else LAYOUTS

    explicit_cases = [(n, windows, ranks) for n, windows in cases for ranks, _ in layouts]
    implicit_cases = [(n, windows, ranks) for n, windows in IMPLICIT_CASES for ranks, _ in layouts]
    runs = [("raw", case, None) for case in explicit_cases] + \
        [(kind, case, root) for kind, group in (("explicit", explicit_cases), ("implicit", implicit_cases))
         for case in group for root in trees]
    # The repeats go round all the runs in turn.  This VM's speed changes over tens of seconds:
    # the best of N runs made back to back can all fall in one slow spell, and an implicit case
    # measured minutes after its explicit one is divided by another machine's figure.  Spread
    # out, each case's best comes from N different moments.
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for kind, (n, windows, ranks), root in runs:
                t = raw_window(n, windows, ranks) if kind == "raw" else \
                    msorch_window(n, windows, ranks, Path(tmp), kind == "implicit", root)
                key = (kind, n, ranks, root)
                best[key] = min(best.get(key, float("inf")), t)

    print("per-window cost of an explicit window, two no-op solvers, n doubles each way, coordinator included"
          + ("" if STAT is None else f" ({STAT:g}th percentile of the per-window times)"))
    extra = f" {'--compare':>12}" if args.compare else ""
    print(f"{'n':>8} {'ranks':>6} {'msorch':>12}{extra} {'raw mpi4py':>12} {'ratio':>7}   "
          "preCICE 3.4.1 C++ (m2n:mpi, no logging, parallel-explicit, 1+1)")
    for n, _, ranks in explicit_cases:
        t_ms = [best["explicit", n, ranks, root] for root in trees]
        t_raw = best["raw", n, ranks, None]
        other = "".join(f" {_us(t)}" for t in t_ms[1:])
        print(f"{n:>8} {ranks}+{ranks:<4} {_us(t_ms[0])}{other} {_us(t_raw)} "
              f"{t_ms[0] / t_raw:7.2f}   {PRECICE.get(n, '') if ranks == 1 else ''}")
    print("implicit window converging at its first iteration vs the explicit window above")
    print(f"{'n':>8} {'ranks':>6} {'implicit':>12}{extra} {'/ explicit':>12}")
    for n, _, ranks in implicit_cases:
        t_im = [best["implicit", n, ranks, root] for root in trees]
        other = "".join(f" {_us(t)}" for t in t_im[1:])
        ratios = " ".join(f"{t / best['explicit', n, ranks, root]:7.2f}" for t, root in zip(t_im, trees))
        print(f"{n:>8} {ranks}+{ranks:<4} {_us(t_im[0])}{other}      {ratios}")


if __name__ == "__main__":
    main()
