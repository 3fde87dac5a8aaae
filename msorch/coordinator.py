"""World rank 0: drives the schedule with leases, prints progress, reports failures.

The coordinator never touches field data.  It grants every solver group a
*lease* — permission to run windows up to some index — and extends all leases
together once each group has reported reaching the lease's midpoint, so that
fast windows run without waiting for it and every group stops at the same
window when a checkpoint or an early stop is due.  Lease length adapts to the
measured window rate (about :data:`LEASE_SECONDS` of work per lease).

It sleeps between polls instead of blocking in MPI, which would spin a core
that the solver ranks need.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from . import signals, status
from .messages import NONE, TAG_CONTROL, TAG_ERROR, TAG_PATTERN0, TAG_REPORT, TAG_STALL, Control, report_width
from .output import write_pattern_stats, write_summary
from .schedule import checkpoint_due
from .timing import PHASES, TAG_TIMING
from .watchdog import watchdogs_possible

LEASE_SECONDS = 0.05
MAX_SLEEP = 1e-3


class JobFailed(RuntimeError):
    """The run cannot go on; the message names the solver, rank and window."""


class Coordinator:
    def __init__(self, ctx):
        self.ctx = ctx
        self.job = ctx.job
        self.roots = {name: ranks[0] for name, ranks in ctx.layout.groups.items()}
        self.width = report_width(len(ctx.plan.converged_on))
        self.records: dict[str, list[np.ndarray]] = {name: [] for name in self.roots}
        # per group: (n_windows, n_ranks, len(PHASES)) seconds per phase (see msorch.timing)
        self.phases: dict[str, list[np.ndarray]] = {name: [] for name in self.roots}
        self.first_window = 0
        self._eta_base: tuple[int, float] | None = None   # (windows done, perf_counter) at the first report
        self.position = {name: NONE for name in self.roots}
        self.stalls: dict[int, dict] = {}   # world rank -> its watchdog's "stuck" note
        # Coupling patterns' per-window statistics rows (tag TAG_PATTERN0 + i; couplings/patterns).
        self.pattern_stats = _pattern_stats(self.job)
        self.pattern_rows: list[list[np.ndarray]] = [[] for _ in self.pattern_stats]
        self._written = NONE
        self._last_status = 0.0
        self._last_print = 0.0

    def run(self, first_window: int = 0) -> dict[str, np.ndarray]:
        from mpi4py import MPI
        world = self.ctx.world
        n = self.job.time.n_windows
        self.t_start = time.perf_counter()
        self.first_window = first_window
        # Without watchdogs (no MPI_THREAD_MULTIPLE) only the group roots' reports tell progress.
        watched = [r for ranks in self.ctx.layout.groups.values() for r in ranks] if watchdogs_possible() \
            else list(self.roots.values())
        self.heard_from = {r: time.monotonic() for r in watched}
        self.position = {name: first_window - 1 for name in self.roots}
        self.last_checkpoint = time.monotonic()
        self.stopped_early = False
        self.write_status("running")   # from the start: the directory now says whose run it holds
        lease = self._grant(first_window, min(n - 1, first_window + 1))
        status = MPI.Status()
        sleep = 0.0
        while min(self.position.values()) < n - 1:
            if world.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                sleep = 0.0
                self._handle(status)
            else:
                self._check_hang()
                sleep = min(MAX_SLEEP, sleep * 2 or 2e-5)
                time.sleep(sleep)
            done = min(self.position.values())
            if done >= 0 and done < n - 1 and all(p == done for p in self.position.values()) \
                    and checkpoint_due(self.job, done, lease) and done != self._written:
                self._checkpoint(done)
            if lease.stop_at != NONE and done == lease.stop_at:
                self.stopped_early = True
                break
            if lease.lease_end < n - 1 and done >= lease.report_at and lease.stop_at == NONE:
                lease = self._grant(lease.lease_end + 1, min(n - 1, lease.lease_end + self._chunk()))
        self.wall = time.perf_counter() - self.t_start
        return {name: np.vstack(rows) if rows else np.zeros((0, self.width)) for name, rows in self.records.items()}

    def _grant(self, start: int, end: int) -> Control:
        """Extend every group's lease to ``end``; attach a due checkpoint or stop at ``start``."""
        every_s = self.job.checkpoint.every_seconds if self.job.checkpoint else None
        ckpt = stop = NONE
        # SLURM's warning before the time limit (--signal), or a user: checkpoint, then stop.
        if signals.stop_requested() and start < self.job.time.n_windows - 1:
            ckpt = stop = start
        elif every_s and time.monotonic() - self.last_checkpoint >= every_s:
            ckpt = start
        control = Control(lease_end=end, report_at=start + (end - start) // 2, checkpoint_at=ckpt, stop_at=stop)
        buf = control.pack()
        for root in self.roots.values():
            self.ctx.world.Send(buf, dest=root, tag=TAG_CONTROL)
        return control

    def _checkpoint(self, done: int):
        from .checkpoint import write_checkpoint
        state = {"window": np.array([done], dtype=np.int64)}
        for name, rows in self.records.items():
            state[f"records.{name}"] = np.vstack(rows) if rows else np.zeros((0, self.width))
        for name, rows in self.phase_table().items():
            state[f"phases.{name}"] = rows
        for i, rows in enumerate(self.pattern_rows):
            state[f"patterns.{i}"] = np.vstack(rows) if rows else np.zeros((0, self.pattern_stats[i][2]))
        t = self.job.time.start + (done + 1) * self.job.time.window
        path = write_checkpoint(self.ctx.world, self.ctx.outdir / "checkpoints", done + 1, solver=None,
                                group_rank=0, state=state, keep=self.job.checkpoint.keep if self.job.checkpoint else 3,
                                meta={"job": self.job.name, "window": done, "time": t, "spec": self.job.text,
                                      "layout": {k: list(v) for k, v in self.ctx.layout.groups.items()}})
        self._written = done
        self.last_checkpoint = time.monotonic()
        if self.job.progress:
            print(f"[msorch] checkpoint after window {done + 1}: {path}", flush=True)

    def restore(self, state: dict[str, np.ndarray]) -> int:
        """Continue from a checkpoint's coordinator state; returns the first window to run."""
        for name in self.records:
            rows = state.get(f"records.{name}")
            self.records[name] = [rows] if rows is not None and len(rows) else []
            rows = state.get(f"phases.{name}")   # absent in checkpoints written before the timeline
            n_ranks = len(self.ctx.layout.groups[name])
            if rows is None or rows.shape[1:] != (n_ranks, len(PHASES)):
                # no phases, or another rank layout: NaN rows keep them aligned with the windows
                done = len(self.records[name][0]) if self.records[name] else 0
                rows = np.full((done, n_ranks, len(PHASES)), np.nan)
            self.phases[name] = [rows] if len(rows) else []
        for i in range(len(self.pattern_rows)):
            rows = state.get(f"patterns.{i}")
            width = self.pattern_stats[i][2]
            if rows is not None and rows.shape[1] != width:   # restart on another number of ranks:
                fitted = np.full((len(rows), width), np.nan)    # per-rank columns cut or NaN-padded
                fitted[:, :min(width, rows.shape[1])] = rows[:, :width]
                rows = fitted
            self.pattern_rows[i] = [rows] if rows is not None and len(rows) else []
        self._written = int(state["window"][0])
        return self._written + 1

    def _chunk(self) -> int:
        """Windows per lease: about LEASE_SECONDS of the slowest group's recent pace."""
        pace = max((rows[-1][:, 2].mean() for rows in self.records.values() if rows), default=0.0)
        return int(np.clip(LEASE_SECONDS / max(pace, 1e-7), 2, 1_000_000))

    def _handle(self, status):
        from mpi4py import MPI
        world, src, tag = self.ctx.world, status.Get_source(), status.Get_tag()
        if tag == TAG_REPORT:
            buf = np.empty(status.Get_count(MPI.DOUBLE), dtype=np.float64)
            world.Recv(buf, source=src, tag=TAG_REPORT)
            rows = buf.reshape(-1, self.width)
            name = self.ctx.layout.solver_of(src)[0]
            self.records[name].append(rows)
            # The root sends its ranks' phase rows right after: take them now, so that
            # records and phases always cover the same windows (checkpoints included).
            world.Probe(source=src, tag=TAG_TIMING, status=status)
            buf = np.empty(status.Get_count(MPI.DOUBLE), dtype=np.float64)
            world.Recv(buf, source=src, tag=TAG_TIMING)
            self.phases[name].append(buf.reshape(-1, len(self.ctx.layout.groups[name]), len(PHASES)))
            self.position[name] = int(rows[-1, 0])
            self.heard_from[src] = time.monotonic()
            if name == next(iter(self.roots)):
                self._progress(rows)
                if time.monotonic() - self._last_status >= 1.0:
                    self.write_status("running")
        elif tag == TAG_STALL:
            note = world.recv(source=src, tag=TAG_STALL)
            self.heard_from[src] = time.monotonic()
            if note["kind"] == "stuck":
                self.stalls[src] = dict(note, at=time.monotonic() - note["seconds"])
            elif note["kind"] == "resumed":
                self.stalls.pop(src, None)
        elif tag == TAG_ERROR:
            report = world.recv(source=src, tag=TAG_ERROR)
            raise JobFailed(report)
        elif 0 <= tag - TAG_PATTERN0 < len(self.pattern_rows):
            buf = np.empty(status.Get_count(MPI.DOUBLE), dtype=np.float64)
            world.Recv(buf, source=src, tag=tag)
            self.pattern_rows[tag - TAG_PATTERN0].append(buf.reshape(-1, self.pattern_stats[tag - TAG_PATTERN0][2]))
        else:
            raise JobFailed(f"unexpected message with tag {tag} from world rank {src}")

    def _check_hang(self):
        """A rank stuck in its own code, or silent, for hang_timeout ends the job.

        Ranks that wait for a peer which still makes progress (a long window of
        many steps) are not hung; ``hang_timeout`` must exceed the longest single step.
        """
        limit = self.job.hang_timeout
        now = time.monotonic()
        silent = [r for r, heard in self.heard_from.items() if now - heard > limit]
        if not silent:
            return
        # Name who is stuck in its own code; then a rank that went silent (its watchdog
        # could not run); the ranks that wait for them only last.
        computing = [n for n in self.stalls.values() if not n["waiting"] and now - n["at"] >= limit]
        quiet = [r for r in silent if r not in self.stalls]
        if computing:
            note = min(computing, key=lambda n: n["at"])
            raise JobFailed(f"{note['who']} made no progress for {limit:g} s: stuck in {note['phase']} "
                            f"in {note['where']} (hang_timeout: {limit:g} s)")
        if quiet:
            name, rank = self.ctx.layout.solver_of(quiet[0])
            raise JobFailed(f"solver {name!r} rank {rank} (world rank {quiet[0]}) made no progress for {limit:g} s "
                            f"and did not answer (hang_timeout: {limit:g} s)")
        if len(silent) == len(self.heard_from):   # everyone waits for everyone: a deadlock
            note = min(self.stalls.values(), key=lambda n: n["at"])
            raise JobFailed(f"no rank made progress for {limit:g} s; the first to stop was {note['who']}, "
                            f"waiting in {note['phase']} in {note['where']} (hang_timeout: {limit:g} s)")

    def _progress(self, rows):
        """One line per window; windows faster than 5 ms get a line every 0.5 s instead."""
        if not self.job.progress:
            return
        n, window = self.job.time.n_windows, self.job.time.window
        for row in rows:
            now = time.perf_counter()
            w = int(row[0])
            if row[2] < 0.005 and w != n - 1 and now - self._last_print < 0.5:
                continue
            self._last_print = now
            t = self.job.time.start + (w + 1) * window
            extra = ""
            if self.job.scheme.kind == "implicit":
                res = " ".join(f"{r:.2e}" for r in row[4:])
                extra = f"  iterations {int(row[1]):3d}  residual {res}{'' if row[3] else '  NOT CONVERGED'}"
            eta = self.eta(w + 1)
            eta = f"  ETA {eta:.{1 if eta < 10 else 0}f} s" if eta is not None and w != n - 1 else ""
            print(f"[msorch] window {w + 1:>{len(str(n))}}/{n}  t = {t:.6g}{extra}  {row[2] * 1e3:.3f} ms{eta}",
                  flush=True)

    def eta(self, done: int) -> float | None:
        """Seconds to finish at the window rate since the first finished window of this run
        (setup and the first window's warm-up excluded); None until two windows are done."""
        now = time.perf_counter()
        if self._eta_base is None or done < self._eta_base[0]:
            if done > self.first_window:
                self._eta_base = (done, now)
            return None
        d0, t0 = self._eta_base
        return (self.job.time.n_windows - done) * (now - t0) / (done - d0) if done > d0 else None

    def phase_table(self) -> dict[str, np.ndarray]:
        """Per group: (n_windows, n_ranks, len(PHASES)) seconds per phase, all windows so far."""
        return {name: np.concatenate(rows) if rows else np.zeros((0, len(self.ctx.layout.groups[name]), len(PHASES)))
                for name, rows in self.phases.items()}

    def write_status(self, state: str, message: str | None = None) -> None:
        """OUTDIR/status.json: state (running|finished|stopped|failed), windows done, time reached."""
        done = min(self.position.values()) + 1 if self.position else 0
        t = self.job.time.start + done * self.job.time.window
        status.write(self.ctx.outdir, job=self.job.name, state=state, windows_done=done,
                     windows=self.job.time.n_windows, time=t, last_checkpoint_window=self._written + 1,
                     message=message, solvers=list(self.roots),
                     eta_seconds=self.eta(done) if state == "running" else None)
        self._last_status = time.monotonic()

    def finish(self, records, extra_attrs: dict):
        phases = self.phase_table()
        path = write_summary(self.ctx.outdir, self.job, self.ctx.layout, records,
                             len(self.ctx.plan.converged_on), extra_attrs, phases=phases)
        if self.job.scheme.kind == "implicit":
            first = next(iter(records.values()))
            its = first[:, 1]
            print(f"[msorch] iterations per window: mean {its.mean():.2f}, max {int(its.max())}, "
                  f"total {int(its.sum())}", flush=True)
        for name, rows in records.items():
            if len(rows):
                t = rows[:, 2]
                print(f"[msorch] {name}: {t.sum():.3f} s in {len(t)} windows (mean {t.mean() * 1e3:.3f} ms, "
                      f"max {t.max() * 1e3:.3f} ms)", flush=True)
            if len(phases.get(name, ())):
                per_rank = np.nansum(phases[name], axis=0)   # (n_ranks, len(PHASES)); NaN: not measured
                split = ", ".join(f"{p} {per_rank[:, j].mean():.3f}" for j, p in enumerate(PHASES))
                print(f"[msorch] {name}: seconds per rank (mean over {len(per_rank)}): {split}", flush=True)
        if self.pattern_stats:
            groups = {}
            for (pattern, module, width), rows in zip(self.pattern_stats, self.pattern_rows):
                if module is None:   # a pattern kind without per-window statistics
                    continue
                table = np.vstack(rows) if rows else np.zeros((0, width))
                groups[module.group(pattern)] = module.datasets(table, pattern, self.job)
                for line in module.summary(table, pattern, self.job):
                    print(f"[msorch] {line}", flush=True)
            write_pattern_stats(path, groups)
        print(f"[msorch] done in {self.wall:.3f} s; results: {path}", flush=True)


def _pattern_stats(job) -> list[tuple]:
    """(pattern, stats module, row width) of every pattern that reports per-window rows."""
    if not job.patterns:
        return []
    from couplings.patterns import stats_module
    out = []
    for p in job.patterns:
        module = stats_module(p)
        out.append((p, module, len(module.columns(p, job)) if module else 0))
    return out


def fail(world, message: str) -> None:
    """Print ``message`` and end the whole job (every rank) with exit code 1."""
    print(f"msorch: error: {message}", file=sys.stderr, flush=True)
    world.Abort(1)
