"""Checkpoint write bandwidth against ``dd ... conv=fsync`` of the same size on the same disk.

Run (serial; it starts ``mpirun`` itself)::

    PYTHONPATH=/work/main /usr/bin/python3 benchmarks/checkpoint_bench.py [--sizes 100M 1G]
        [--dir DIR] [--ranks 3] [--strategy mpio|gather] [--repeat 1]

Each size S is written as 1 coordinator (a few small arrays) + ``ranks-1`` solver ranks holding
equal shares of S in float64, through :func:`msorch.checkpoint.write_checkpoint` (the time from a
barrier before the call to its return on rank 0: checksums, HDF5 writes, fsync, rename). The
reference is ``dd if=/dev/zero of=DIR/dd.bin bs=16M count=S/16M conv=fsync``, timed around the
process. Both include fsync. With ``--repeat K`` the two alternate K times and a last row
compares the best (shortest) time of each, which filters out a noisy shared machine. All files
are deleted afterwards.

WARM-UP: on these VMs the first large write of a process runs 3-4x slower than the next ones
(a plain Python ``f.write`` + ``fsync`` of 1 GiB: 317 MB/s first, then 1327 and 1368 MB/s),
because guest memory touched for the first time is slow to hand out; this is the machine, not
HDF5 or MPI-IO (the same happens with checksums switched off). So both sides get one untimed
write of the same size first: dd runs twice and the second is timed, and every checkpoint run
writes (and deletes) one checkpoint before the timed one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BS = 16 * 2**20
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(text: str) -> int:
    """'100M' -> 104857600 bytes (binary units); rounded to whole 16 MiB dd blocks."""
    n = int(float(text[:-1]) * UNITS[text[-1].upper()]) if text[-1].upper() in UNITS else int(text)
    return max(1, round(n / BS)) * BS


def run_dd(directory: Path, nbytes: int) -> float:
    """Seconds for dd to write and fsync ``nbytes`` of zeros."""
    target = directory / "dd.bin"
    for _ in range(2):   # the first is the warm-up (see WARM-UP in the module docstring)
        t0 = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={BS}", f"count={nbytes // BS}",
                        "conv=fsync"], check=True, capture_output=True)
        dt = time.perf_counter() - t0
        target.unlink()
    return dt


def run_checkpoint(directory: Path, nbytes: int, ranks: int, strategy: str) -> float:
    """Seconds for one ``write_checkpoint`` of ``nbytes`` of solver state on ``ranks`` MPI ranks."""
    env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_mpi_yield_when_idle": "1", "PYTHONPATH": str(ROOT)}
    cmd = ["mpirun", "--oversubscribe", "-n", str(ranks), sys.executable, __file__, "--worker",
           "--bytes", str(nbytes), "--dir", str(directory), "--strategy", strategy]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env})
    for line in out.stdout.splitlines():
        if line.startswith("WRITE_SECONDS"):
            return float(line.split()[1])
    raise RuntimeError(f"no timing in worker output:\n{out.stdout}\n{out.stderr}")


def worker(directory: Path, nbytes: int, strategy: str) -> None:
    """On every rank: build this rank's share, write one checkpoint, report the time on rank 0."""
    import numpy as np
    from mpi4py import MPI

    from msorch.checkpoint import write_checkpoint

    comm = MPI.COMM_WORLD
    n_solver = comm.size - 1
    if comm.rank == 0:
        solver, group_rank = None, 0
        state = {"time": np.array(1.0), "history": np.zeros((20, 100))}
    else:
        solver, group_rank = "field", comm.rank - 1
        share = nbytes // 8 // n_solver
        state = {"u": np.random.default_rng(comm.rank).random(share)}   # random: no zero-page tricks
    for index in (1, 0):   # checkpoint 1 is the warm-up (see WARM-UP in the module docstring)
        comm.Barrier()
        t0 = time.perf_counter()
        path = write_checkpoint(comm, directory, index, solver=solver, group_rank=group_rank, state=state,
                                meta={"bench": True}, strategy=strategy)
        dt = time.perf_counter() - t0
        comm.Barrier()
        if comm.rank == 0 and index:
            path.unlink()
    if comm.rank == 0:
        print(f"WRITE_SECONDS {dt:.6f} {path.stat().st_size}", flush=True)
        path.unlink()


def report(label: str, nbytes: int, t_dd: float, t_ck: float) -> None:
    bw_dd, bw_ck = nbytes / t_dd / 1e6, nbytes / t_ck / 1e6
    print(f"{label:>9} {bw_dd:9.0f} {bw_ck:10.0f} {bw_ck / bw_dd:6.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["100M", "1G"])
    ap.add_argument("--dir", type=Path, default=None,
                    help="directory on the disk to test (default: a temp dir under the repo)")
    ap.add_argument("--ranks", type=int, default=3, help="MPI ranks: 1 coordinator + ranks-1 solver ranks")
    ap.add_argument("--strategy", default=None, choices=["mpio", "gather"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.dir, args.bytes, args.strategy)
        return
    strategy = args.strategy or "mpio"
    directory = Path(tempfile.mkdtemp(prefix="ckpt_bench_", dir=args.dir or ROOT))
    try:
        print(f"# dir {directory}, {args.ranks} ranks (1 coordinator + {args.ranks - 1} solver), "
              f"strategy {strategy}")
        print(f"{'size':>9} {'dd MB/s':>9} {'ckpt MB/s':>10} {'ratio':>6}")
        for text in args.sizes:
            nbytes = parse_size(text)
            runs = []
            for _ in range(args.repeat):   # interleaved, so both see the same disk weather
                runs.append((run_dd(directory, nbytes), run_checkpoint(directory, nbytes, args.ranks, strategy)))
                report(text, nbytes, *runs[-1])
            if args.repeat > 1:
                report(f"{text} best", nbytes, min(r[0] for r in runs), min(r[1] for r in runs))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
