"""One channel exchange against raw mpi4py ``Send``/``Recv`` of the same bytes.

Run as ``python benchmarks/channel_bench.py``: it starts itself under mpirun
twice, for 1 -> 1 ranks (2 processes) and 2 -> 3 ranks (5 processes).  Each
case ping-pongs a field of 8 B, 8 kB, 1 MB and 10 MB (float64 on matching 1-D
point sets) through two msorch channels (there and back) and through the
hand-written raw equivalent: every source rank sends the contiguous slices the
target ranks own, straight from its array into theirs.  Time per one-way
exchange = round trip / 2; the ratio is msorch / raw (1.0 = no overhead).

Two msorch columns: ``send``/``recv`` (the channel API as a user script calls
it) and ``bound``: the persistent requests the window loop uses
(``bind_send``/``send_bound``, ``bind_recv``/``recv_bound``: MPI requests made
once, no buffer parsing per transfer).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = {"8 B": 1, "8 kB": 1_000, "1 MB": 125_000, "10 MB": 1_250_000}
CASES = {"1->1": (1, 1), "2->3": (2, 3)}


def _blocks(n: int, parts: int) -> list[tuple[int, int]]:
    return [(n * r // parts, n * (r + 1) // parts) for r in range(parts)]


def _repeats(n: int) -> int:
    return max(20, min(20000, int(2e8 / (n * 8 + 4000))))


def bench(m: int, k: int) -> list[tuple[str, float, float]]:
    """Collective over m + k ranks; returns rows (size label, msorch s, bound s, raw s) on rank 0."""
    from mpi4py import MPI

    from msorch.channel import Channel, Endpoint
    from msorch.solver import FieldSpec

    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    a_ranks, b_ranks = tuple(range(m)), tuple(range(m, m + k))
    mine_a = rank in a_ranks
    group = world.Split(0 if mine_a else 1, rank)
    me = group.Get_rank()
    rows = []
    for label, n in SIZES.items():
        lo, hi = _blocks(n, m if mine_a else k)[me]
        points = np.arange(lo, hi, dtype=float)[:, None]
        spec = FieldSpec("float64", 1, "1", points)
        ab = Channel(world, group, Endpoint("a", "out", a_ranks), Endpoint("b", "in", b_ranks), spec, "nearest", 1, 101)
        ba = Channel(world, group, Endpoint("b", "out", b_ranks), Endpoint("a", "in", a_ranks), spec, "nearest", 1, 102)
        block = np.random.default_rng(rank).random((1, hi - lo, 1))
        reps = _repeats(n)

        def channel_round():
            if mine_a:
                ab.send(block)
                ab.wait_sent()
                ba.recv()
            else:
                got = ab.recv()
                ba.send(got)
                ba.wait_sent()

        # The window loop's path: requests bound once; b sends back what landed.
        bab, bba = (Channel(world, group, Endpoint(x, "out", s), Endpoint(y, "in", t), spec, "nearest", 1, tag)
                    for x, y, s, t, tag in (("a", "b", a_ranks, b_ranks, 103), ("b", "a", b_ranks, a_ranks, 104)))
        if mine_a:
            bab.bind_send(block)
            bba.bind_recv()
        else:
            bba.bind_send(bab.bind_recv())

        def bound_round():
            if mine_a:
                bab.send_bound()
                bab.wait_sent()
                bba.recv_bound()
            else:
                bab.recv_bound()
                bba.send_bound()
                bba.wait_sent()

        # Raw: the same messages written by hand (overlaps of contiguous blocks).
        a_blocks, b_blocks = _blocks(n, m), _blocks(n, k)
        local = block.reshape(-1)
        inbox = np.empty_like(local)

        def overlaps(src_blocks, dst_blocks, my_index, outgoing):
            pairs = []
            mlo, mhi = (src_blocks if outgoing else dst_blocks)[my_index]
            for j, (olo, ohi) in enumerate(dst_blocks if outgoing else src_blocks):
                s, e = max(mlo, olo), min(mhi, ohi)
                if s < e:
                    pairs.append((j, s - mlo, e - mlo))
            return pairs

        if mine_a:
            sends = [(b_ranks[j], s, e) for j, s, e in overlaps(a_blocks, b_blocks, me, True)]
            recvs = [(b_ranks[j], s, e) for j, s, e in overlaps(b_blocks, a_blocks, me, False)]
        else:
            recvs = [(a_ranks[j], s, e) for j, s, e in overlaps(a_blocks, b_blocks, me, False)]
            sends = [(a_ranks[j], s, e) for j, s, e in overlaps(b_blocks, a_blocks, me, True)]

        def raw_round():
            if mine_a:
                reqs = [world.Isend(local[s:e], dest=d, tag=7) for d, s, e in sends]
                MPI.Request.Waitall(reqs)
                reqs = [world.Irecv(inbox[s:e], source=src, tag=8) for src, s, e in recvs]
                MPI.Request.Waitall(reqs)
            else:
                reqs = [world.Irecv(inbox[s:e], source=src, tag=7) for src, s, e in recvs]
                MPI.Request.Waitall(reqs)
                reqs = [world.Isend(inbox[s:e], dest=d, tag=8) for d, s, e in sends]
                MPI.Request.Waitall(reqs)

        timings = []
        rounds = (channel_round, bound_round, raw_round)
        for fn in rounds * 2:   # interleaved, best of two
            for _ in range(min(reps, 50)):
                fn()
            world.Barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            world.Barrier()
            timings.append((time.perf_counter() - t0) / reps / 2)
        rows.append((label, *(min(timings[i], timings[i + len(rounds)]) for i in range(len(rounds)))))
    return rows


def main():
    if os.environ.get("OMPI_COMM_WORLD_SIZE"):
        m, k = (int(v) for v in sys.argv[1:3])
        rows = bench(m, k)
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_rank() == 0:
            for label, t_ch, t_bound, t_raw in rows:
                print(f"{sys.argv[3]:>5} {label:>6} {t_ch * 1e6:12.2f} {t_bound * 1e6:12.2f} {t_raw * 1e6:12.2f} "
                      f"{t_ch / t_raw:7.2f} {t_bound / t_raw:7.2f}", flush=True)
        return
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OMPI_MCA_mpi_yield_when_idle="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("channel exchange vs raw mpi4py Send/Recv of the same bytes (one way, microseconds)")
    print(f"{'case':>5} {'size':>6} {'msorch':>12} {'bound':>12} {'raw':>12} {'ratio':>7} {'bound':>7}")
    for case, (m, k) in CASES.items():
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(m + k), sys.executable,
               __file__, str(m), str(k), case]
        subprocess.run(cmd, check=True, env=env)


if __name__ == "__main__":
    main()
