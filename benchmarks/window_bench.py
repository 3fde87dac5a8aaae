"""What a user pays per explicit coupling window, coordinator included.

Two ``test.null`` solvers that do no work exchange n doubles each way every
window (explicit, parallel staggering), on 1+1 and 2+2 ranks plus the
coordinator, through the real ``msorch run``.  The per-window cost is the
mean wall time between consecutive window ends on a group root (leases,
progress reports, channel traffic and Python overhead all included), over the
last 80 % of the windows.  Baseline in the same run: raw mpi4py moving the same
bytes each way between the same number of ranks (``Sendrecv`` per pair).

Reference (from the issue, 2-core machine): preCICE 3.4.1 C++ solver dummies
23–28 µs per window at n = 1 over MPI and 9–10.5 ms at n = 125,000.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [(1, 20000), (1000, 5000), (125_000, 400)]
LAYOUTS = [(1, 1), (2, 2)]
PRECICE = {1: "23-28 us", 125_000: "9-10.5 ms"}

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


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMPI_MCA_mpi_yield_when_idle="1",
                OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def msorch_window(n: int, windows: int, ranks: int, workdir: Path) -> float:
    import h5py
    spec = workdir / f"w_{n}_{ranks}.yaml"
    spec.write_text(SPEC.format(n=n, windows=windows, ranks=ranks))
    out = workdir / f"out_{n}_{ranks}"
    subprocess.run([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(out)], check=True, env=env(),
                   stdout=subprocess.DEVNULL)
    with h5py.File(out / "results.h5") as f:
        t = f["timing/a"][:]
    return float(t[len(t) // 5:].mean())


def raw_window(n: int, windows: int, ranks: int) -> float:
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(2 * ranks), sys.executable, __file__,
           "--raw", str(n), str(windows)]
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
        print(f"{t[len(t) // 5:].mean():.9e}")


def main():
    if "--raw" in sys.argv:
        raw_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    print("per-window cost of an explicit window, two no-op solvers, n doubles each way, coordinator included")
    print(f"{'n':>8} {'ranks':>6} {'msorch':>12} {'raw mpi4py':>12} {'ratio':>7}   preCICE 3.4.1 C++ (ref.)")
    with tempfile.TemporaryDirectory() as tmp:
        for n, windows in CASES:
            for ranks, _ in LAYOUTS:
                t_ms = msorch_window(n, windows, ranks, Path(tmp))
                t_raw = raw_window(n, windows, ranks)
                unit, scale = ("us", 1e6)
                print(f"{n:>8} {ranks}+{ranks:<4} {t_ms * scale:10.2f}{unit} {t_raw * scale:10.2f}{unit} "
                      f"{t_ms / t_raw:7.2f}   {PRECICE.get(n, '')}", flush=True)


if __name__ == "__main__":
    main()
