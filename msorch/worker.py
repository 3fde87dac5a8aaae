"""The loop on solver ranks: obey the coordinator's leases, run windows, couple.

One :class:`Worker` per solver rank.  It owns the solver instance, the
channels it takes part in, and the per-window algorithm (stages, sub-steps,
waveform interpolation, implicit iterations with roll-back and acceleration).
It knows nothing of other solvers beyond the channels' far ends.
"""
from __future__ import annotations

import math
import os
import time
from sys import getrefcount
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from . import registry
from .channel import Channel, ChannelError, Endpoint
from .convergence import residual_sums, sums_writer
from .messages import (CONTROL_SIZE, NONE, TAG_CHANNEL0, TAG_CONTROL, TAG_REPORT, Control,
                       report_width)
from .output import GroupWriter
from .schedule import Interpolation, checkpoint_due, interpolation
from .solver import field_info_mismatches
from .timing import CHECKPOINT, COMPUTE, EXCHANGE, OUTPUT, TAG_TIMING, WAIT, PhaseClock


TAG_RESIDUALS = 19   # between the two iterating ranks (ctx.solvers): convergence sums, see _bind_residuals


def _match_points(points: np.ndarray, old_points: np.ndarray, old_values: np.ndarray, what: str) -> np.ndarray:
    """Columns of ``old_values`` (k, n_old, c) at ``points`` (n, dim), found by exact coordinates."""
    from scipy.spatial import cKDTree
    if not len(points):
        return old_values[:, :0]
    dist, idx = cKDTree(old_points).query(points)
    if np.any(dist > 1e-12 * (1.0 + np.abs(old_points).max())):
        raise RuntimeError(f"{what}: this rank's points are not in the checkpoint; a layout change "
                           "needs the same global point set")
    return old_values[:, idx]


def _reads_sample0(interp: Interpolation) -> bool:
    """Whether a receiver's sub-steps read sample 0 (the window start) of a waveform.

    :meth:`Worker._input_at` reads ``used[i0]`` always and ``used[i1]`` when ``w1 != 0``.
    """
    return any(i0 == 0 or (w1 != 0.0 and i1 == 0) for i0, i1, w1 in zip(interp.i0, interp.i1, interp.w1))


def _snapshot(state: dict) -> dict:
    """A private copy of a solver's :meth:`~msorch.solver.Solver.state` (same keys, same arrays' values).

    An ndarray that owns its data (``base`` None) and that nothing but ``state`` refers to
    (reference count ``_SOLE``) cannot change behind the snapshot's back, so it is kept as
    it is: a copy without the copying (~0.4 us per array at n = 1; ``test.null`` returns
    such fresh copies).  Anything else (the solver's live arrays, views of them, arrays it
    keeps a reference to) is copied.
    """
    snap = {}
    for k in state:
        v = state[k]
        snap[k] = v if type(v) is np.ndarray and v.base is None and getrefcount(v) == _SOLE else np.array(v, copy=True)
    return snap


def _sole_count() -> int:
    """The reference count :func:`_snapshot` sees for an array only its ``state`` dict holds.

    Measured with the same statements (it depends on the interpreter); 0 (always copy)
    unless one more holder shows as exactly one more reference.
    """
    def count(state):
        for k in state:
            v = state[k]
            return getrefcount(v)
    held = np.zeros(1)
    fresh = count({"x": np.zeros(1)})
    return fresh if count({"x": held}) == fresh + 1 else 0


_SOLE = _sole_count()


def _copier(dst: np.ndarray, src: np.ndarray):
    """A callable doing ``dst[...] = src`` (``src`` one sample, or all of ``dst``'s), bound once.

    C-contiguous real blocks: memoryview slice copies (~0.08 us each against ~0.3-0.45 us
    for numpy's assignment with its view and broadcast set-up at n = 1); else numpy.
    """
    if (dst.flags.c_contiguous and src.flags.c_contiguous and dst.dtype == src.dtype
            and dst.dtype.kind in "fiu" and src.size and dst.size % src.size == 0):
        flat = memoryview(dst.reshape(-1))
        whole = memoryview(src.reshape(-1))
        if src.size == dst.size:
            def copy():
                flat[:] = whole
            return copy
        pieces = [flat[i:i + src.size] for i in range(0, dst.size, src.size)]

        def copy():
            for piece in pieces:
                piece[:] = whole
        return copy

    def copy():
        dst[...] = src
    return copy


class CouplingDataError(RuntimeError):
    """Non-finite values about to leave a solver through a channel."""


@dataclass
class Inbound:
    """A channel this rank receives on, and the waveform it feeds the solver.

    ``used`` has shape (k_s + 1, n_local, components): sample 0 is the window
    start, samples 1..k_s the values the solver reads in this window.
    """

    index: int
    field: str
    channel: Channel
    interp: Interpolation
    used: np.ndarray
    value: np.ndarray      # (n_local, components) scratch for interpolated inputs
    view_shape: tuple
    fresh: bool

    def __post_init__(self):
        # Sub-steps that fall on a sample read it in place: views made once.
        self.exact = [self.used[i].reshape(self.view_shape) if w1 == 0.0 else None
                      for i, w1 in zip(self.interp.i0, self.interp.w1)]
        # Views for the window's end: the samples before the last, the first, the last.
        self.head, self.first, self.last = self.used[:-1], self.used[0], self.used[-1]


@dataclass
class Outbound:
    """An output field sent on one or more channels; ``samples`` (k, n_local, c)."""

    field: str
    channels: list
    samples: np.ndarray
    view_shape: tuple

    def __post_init__(self):
        self.views = list(self.samples.reshape(self.view_shape))   # one writable view per sub-step
        self.finite = _finite_test(self.samples)


def _finite_test(block: np.ndarray):
    """A callable -> bool: whether every value of ``block`` (any shape) is finite now.

    None for non-float blocks.  Made once per output block: the window loop
    only calls it.  Up to 8 values: element-wise over a memoryview (no numpy
    call); more: a sum is finite only if every term is, and only an overflowing
    sum needs the element-wise test.
    """
    if block.dtype.kind not in "fc":
        return None
    if block.size <= 8 and block.dtype in (np.float64, np.float32):
        flat = memoryview(block.reshape(-1))
        return lambda: all(map(math.isfinite, flat))
    if block.dtype.kind == "f" and block.flags.c_contiguous:
        # a 1-D view's sum and math.isfinite: ~1.5 us less at n = 1,000 than the 3-D sum and
        # a numpy scalar ufunc (isfinite of a numpy scalar alone costs ~1 us here)
        flat = block.reshape(-1)
        return lambda: math.isfinite(flat.sum()) or bool(np.isfinite(block).all())
    return lambda: bool(np.isfinite(block.sum()) or np.isfinite(block).all())


class Worker:
    """Runs one solver rank (see module docstring). Collective over its group."""

    def __init__(self, ctx, name: str, hooks=(), make_solver=None):
        self.ctx, self.name = ctx, name
        # Coupling patterns (couplings/patterns): hooks called at setup, window start and
        # before the steps; make_solver(worker) replaces the spec's class (an HMM farm).
        self.hooks, self.make_solver = list(hooks), make_solver
        self.job = ctx.job
        self.spec = self.job.solvers[name]
        self.group = ctx.group
        self.root = self.group.Get_rank() == 0
        self.phase = "construct"
        self.window = NONE
        self.step = 0
        self._reports = []     # (Isend request, its array) of the last report, see _report

    # --- setup ------------------------------------------------------------
    def setup(self):
        job, spec = self.job, self.spec
        self.phase = "construct"
        self.solver = self.make_solver(self) if self.make_solver else spec.cls(self.group, spec.params)
        self.phase = "initialize"
        self.solver.initialize(job.time.start)
        self.phase = "fields"
        fields = self.solver.fields()
        drift = field_info_mismatches(self.solver, fields)
        if drift:
            raise ChannelError("; ".join(drift))
        self.phase = "channels"
        self.inbound: list[Inbound] = []
        outbound: dict[str, Outbound] = {}
        for i, c in enumerate(job.couplings):
            src = Endpoint(c.source, c.source_field, self.ctx.layout.groups[c.source])
            dst = Endpoint(c.target, c.target_field, self.ctx.layout.groups[c.target])
            mine = (c.source_field if c.source == self.name else
                    c.target_field if c.target == self.name else None)
            if mine is None:
                continue
            if mine not in fields:
                raise ChannelError(f"solver {self.name!r} declares no FieldSpec for {mine!r} "
                                   f"(fields(): {sorted(fields)})")
            k_s = job.solvers[c.source].substeps
            channel = Channel(self.ctx.data, self.group, src, dst, fields[mine], c.mapping, k_s,
                              TAG_CHANNEL0 + i)
            fs = fields[mine]
            if c.source == self.name:
                out = outbound.get(mine)
                if out is None:
                    shape = (len(fs.points), fs.components)
                    out = outbound[mine] = Outbound(mine, [], np.zeros((k_s, *shape), np.dtype(fs.dtype)),
                                                    (k_s, *fs.shape))
                out.channels.append(channel)
            else:
                shape = (len(fs.points), fs.components)
                self.inbound.append(Inbound(
                    i, mine, channel, interpolation(k_s, spec.substeps, c.waveform),
                    np.zeros((k_s + 1, *shape), np.dtype(fs.dtype)), np.zeros(shape, np.dtype(fs.dtype)),
                    fs.shape, i in self.ctx.plan.fresh))
        self.outbound = list(outbound.values())
        self._initial_exchange()
        self._setup_implicit()
        for hook in self.hooks:
            hook.setup(self)
        self.phase = "output"
        self.writer = GroupWriter(self.group, self.ctx.outdir, self.name, self.spec.output)
        self.n_measures = len(self.ctx.plan.converged_on)
        self.rows: list[float] = []          # flat report rows (messages.report_width columns)
        self.clock = PhaseClock()

    def _initial_exchange(self):
        """Every output's value at t0 becomes sample 0 of its receivers' first window."""
        self.phase = "initial exchange"
        for out in self.outbound:
            out.samples.reshape(out.view_shape)[0] = self.solver.get(out.field)
            self._check_finite(out, 1)
            for ch in out.channels:
                ch.send(out.samples[:1])
        for inb in self.inbound:
            inb.used[:] = inb.channel.recv(1)[0]
        for out in self.outbound:
            for ch in out.channels:
                ch.wait_sent()

    def _setup_implicit(self):
        # A solver that a pattern runs itself (an HMM farm) takes no part in the iterations.
        self.implicit = self.job.scheme.kind == "implicit" and self.name not in self.job.driven
        self.accelerator = None
        if not self.implicit:
            return
        plan, scheme = self.ctx.plan, self.job.scheme
        # Ordered as plan.accelerated, so slices line up across ranks for the accelerator.
        by_index = {inb.index: inb for inb in self.inbound}
        self.acc_inbound = [by_index[i] for i in plan.accelerated if i in by_index]
        measures = {i: k for k, i in enumerate(plan.converged_on)}
        self.measure_of = {inb.index: measures[inb.index] for inb in self.inbound if inb.index in measures}
        self.criteria = [(c.relative, c.absolute) for c in scheme.convergence]
        # Per-iteration convergence sums (n_measures, 2) and their reduction, made once.
        self._sums = np.zeros((len(plan.converged_on), 2))
        self._total = np.empty_like(self._sums)
        self.measure_end = [c.over == "end" for c in scheme.convergence]
        acc = scheme.acceleration
        if acc is not None:
            cls = registry.load("acceleration", acc.kind)
            # Every rank names every accelerated field (size 0 where it holds none):
            # per-field scaling reduces over all of them collectively.
            blocks = [by_index[i].used[1:].size if i in by_index else 0 for i in plan.accelerated]
            samples = [self.job.solvers[self.job.couplings[i].source].substeps for i in plan.accelerated]
            self.accelerator = cls(self.ctx.solvers, blocks=blocks, samples=samples,
                                   **acc.options(getattr(cls, "SETTINGS", None)))

    # --- the window loop ----------------------------------------------------
    def _bind(self):
        """Everything the window loop would otherwise look up or make per window.

        Persistent MPI requests on every channel (explicit receives land in the
        waveform itself), the hooks' bound methods, per-sub-step put/get lists.
        Called once, after setup and any restore (the arrays stay the same).
        """
        self._window_hooks = [hook.window_start for hook in self.hooks]
        self._step_hooks = [hook.before_steps for hook in self.hooks if hasattr(hook, "before_steps")]
        for out in self.outbound:
            for ch in out.channels:
                ch.bind_send(out.samples)
        self._sends = [ch for out in self.outbound for ch in out.channels]
        for inb in self.inbound:
            inb.landing = inb.channel.bind_recv(None if self.implicit else inb.used[1:])
        self._fresh = [inb for inb in self.inbound if inb.fresh]
        self._closing = [inb for inb in self.inbound if not inb.fresh]
        # The end-of-window copies into sample 0 (the next window's start) only where a
        # sub-step reads sample 0 (a receiver with more steps than the sender has samples)
        # or, for loop-closing data, where samples 1..k_s-1 exist; the others are made by
        # _sync_window_start before anything else reads the waveform (checkpoint, end of run).
        # Nothing else reads sample 0: residuals and acceleration use samples 1..k_s.
        lazy = lambda inb: not _reads_sample0(inb.interp)
        self._fresh_copy = [inb for inb in self._fresh if not lazy(inb)]
        self._closing_copy = [inb for inb in self._closing if not (lazy(inb) and len(inb.used) == 2)]
        self._deferred = [inb for inb in self.inbound if inb not in self._fresh_copy + self._closing_copy]
        self._puts = [[(inb.field, inb.exact[s], inb) for inb in self.inbound] for s in range(self.spec.substeps)]
        self._gets = [[(out.field, out.views[s]) for out in self.outbound] for s in range(self.spec.substeps)]
        self._sent_measures, self._received_measures, self._sent_next, self._sent_close = [], [], [], []
        self._local_sums = False
        self._max_iterations = self.job.scheme.max_iterations
        # Implicit loop-closing inbounds: the window's last received sample is held over the next
        # window (closes in _make_implicit_window); the receive lands in the channel's fixed array, bound here.
        self._hold = [_copier(inb.used[1:] if inb in self._deferred else inb.used, inb.landing[-1])
                      for inb in self._closing] if self.implicit else []
        if self.implicit:
            self._bind_residuals()

    def _bind_residuals(self):
        """Where it is exact, measure convergence locally on both ranks: no message for it at all.

        The receiver's residual of a loop-closing coupling is ``data - used[1:]``.  Without
        acceleration ``used[1:]`` is what the sender sent in the previous iteration (its last
        sample, held, at a window's first iteration), and with one rank per side and the
        identity map ``data`` is the sender's block itself: the sender can compute the same
        sums from the same bits (:func:`residual_sums`, the one kernel of both sides).  With
        two iterating ranks and every measured coupling between them, each rank then knows
        every measure: those of its outputs as their sender (before the data arrives), those
        of its inputs as their receiver.  The convergence ``Allreduce`` (one more
        synchronisation per iteration, ~3-5 us of an n = 1 window) is not needed, and the
        totals are bitwise the reduction's (one contributor per measure: ``x + 0.0`` is ``x``
        for sums of squares).  Collective over ``ctx.solvers``; every rank decides the same
        (a MIN reduction of the local conditions, once).  Otherwise nothing changes.
        ``MSORCH_CONVERGENCE_REDUCTION=1`` in the environment keeps the reduction (tests and
        benchmarks compare the two).
        """
        job, plan, comm = self.job, self.ctx.plan, self.ctx.solvers
        measured = {i: m for m, i in enumerate(plan.converged_on)}
        ok = (self.n_measures > 0 and not os.environ.get("MSORCH_CONVERGENCE_REDUCTION")
              and job.scheme.acceleration is None and comm.Get_size() == 2
              and self.group.Get_size() == 1 and not self.hooks
              and not any(i in plan.fresh or job.couplings[i].source in job.driven
                          or job.couplings[i].target in job.driven for i in measured)
              # this rank sends or receives every measured coupling, not both: the peer the other
              and all((job.couplings[i].source == self.name) != (job.couplings[i].target == self.name)
                      for i in measured)
              and all(inb.channel._op is None and len(inb.channel._recv_from) == 1
                      for inb in self.inbound if inb.index in measured))
        flag = np.array([int(ok)], dtype=np.int64)
        comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)
        if not flag[0]:
            return
        peer = 1 - comm.Get_rank()
        flat = self._sums_flat = memoryview(self._sums.reshape(-1))
        # What each receiver uses now (restored after a restart) becomes its sender's "previous".
        received = sorted((inb for inb in self.inbound if inb.index in measured), key=lambda inb: inb.index)
        requests = [comm.Isend(inb.used[1:], dest=peer, tag=TAG_RESIDUALS) for inb in received]
        for inb in received:
            m = measured[inb.index]
            data, used = (inb.landing[-1], inb.used[-1]) if self.measure_end[m] else (inb.landing, inb.used[1:])
            self._received_measures.append(sums_writer(flat, 2 * m, data, used))
        sent = sorted((ch.tag - TAG_CHANNEL0, out) for out in self.outbound for ch in out.channels
                      if ch.tag - TAG_CHANNEL0 in measured)
        for i, out in sent:
            prev = np.empty_like(out.samples)
            comm.Recv(prev, source=peer, tag=TAG_RESIDUALS)
            m = measured[i]
            block = out.samples
            data, before = (block[-1], prev[-1]) if self.measure_end[m] else (block, prev)
            self._sent_measures.append(sums_writer(flat, 2 * m, data, before))
            # What the receiver uses next: all samples (next iteration), the last one held (next
            # window).  One sample: the same copy either way, made while the data travels.
            if len(block) == 1:
                self._sent_measures.append(_copier(prev, block))
            else:
                self._sent_next.append(_copier(prev, block))
                self._sent_close.append(_copier(prev, block[-1]))
        MPI.Request.Waitall(requests)
        self.measure_of = {}          # the receives measure nothing now: the writers above do
        self._local_sums = True

    def _next_event(self, w: int, control: Control) -> int:
        """The first window >= ``w`` after which this rank may report, checkpoint or stop.

        The loop runs the (exact) tests of :meth:`_after_event` only there.
        """
        n_windows = self.job.time.n_windows
        events = [control.lease_end, n_windows - 1] + [x for x in (control.report_at, control.stop_at,
                                                                  control.checkpoint_at) if x >= w]
        every = self.job.checkpoint.every_windows if self.job.checkpoint else None
        if every:
            events.append(w + (-(w + 1)) % every)   # the first v >= w with (v + 1) % every == 0
        return min(events)

    def run(self, first_window: int = 0):
        job = self.job
        n_windows = job.time.n_windows
        control = Control(lease_end=first_window - 1, report_at=NONE)
        if first_window == 0:
            self.writer.maybe_write(0, job.time.start, self.solver)
        self._bind()
        self._t0, self._width = job.time.start, job.time.window
        # The writer writes when (windows done) % every == 0; called only then.
        write_every = self.writer.every if self.writer.fields != () else 0
        writer, solver = self.writer, self.solver
        clock = self.clock = PhaseClock()
        self._steps = self._make_steps()
        run_window = self._make_implicit_window() if self.implicit else self._make_explicit_window()
        # Start every group's clock together: setup skew is not a window's cost.
        self.phase = "waiting for the other solvers"
        self.ctx.solvers.Barrier()
        perf = time.perf_counter
        last_window_done = clock.restart()
        self.stopped_early = False
        rows, marks, window_end, explicit = self.rows, clock.marks, PhaseClock.END, not self.implicit
        no_residuals = (0.0,) * self.n_measures
        next_event = NONE
        for w in range(first_window, n_windows):
            if w > control.lease_end:
                control = self._next_control()
                next_event = self._next_event(w, control)
                clock.lap(WAIT)
            self.window = w
            if explicit:
                now = run_window(w)
                rows += (w, 1, now - last_window_done, 1)
                if no_residuals:
                    rows += no_residuals
            else:
                iterations, residuals, converged = run_window(w)
                now = perf()
                rows += (w, iterations, now - last_window_done, converged)
                rows += residuals
            last_window_done = now
            if write_every and (w + 1) % write_every == 0:
                self.phase = "output"
                writer.maybe_write(w + 1, self._t0 + (w + 1) * self._width, solver)
                clock.lap(OUTPUT)
            # Without output the loop's own few statements since the last lap are
            # charged to the next window's first phase: one clock read less per window.
            marks += window_end
            if w == next_event:
                if self._after_event(w, control):
                    break
                next_event = self._next_event(w + 1, control)
        self.phase = "finalize"
        self._sync_window_start()
        for ch in self._sends:
            ch.wait_sent()
        self._wait_reported()
        self.writer.close()
        self.solver.finalize()

    def _after_event(self, w: int, control: Control) -> bool:
        """Report, checkpoint, stop after window ``w`` as due; returns whether to stop."""
        n_windows = self.job.time.n_windows
        checkpoint = w < n_windows - 1 and checkpoint_due(self.job, w, control)
        if checkpoint or w in (control.report_at, control.lease_end, control.stop_at, n_windows - 1):
            self._report()
        if checkpoint:
            self.clock.lap(WAIT)
            self._checkpoint(w)
            self.clock.lap(CHECKPOINT)
        if w == control.stop_at and w < n_windows - 1:
            self.stopped_early = True
            return True
        return False

    def _make_steps(self):
        """A callable ``steps(t_w)``: the window's sub-steps from ``t_w`` (s) and the sends of
        their samples (explicit and implicit windows alike).

        One closure over everything :meth:`_bind` bound (the solver's methods, the channels'
        request ``start``/``wait`` callables, per-sub-step put/get lists): a window's Python is
        its own statements, without attribute look-ups and calls through the channels.
        """
        worker, solver = self, self.solver
        put, advance, get, input_at = solver.put, solver.advance, solver.get, self._input_at
        marks, perf, dt = self.clock.marks, time.perf_counter, self.spec.dt
        step_hooks, sent_measures = self._step_hooks, self._sent_measures
        waits = [ch.send_ops()[1] for ch in self._sends]
        sub_steps = list(zip(self._puts, self._gets))
        outputs = [(out, out.finite, [ch.send_ops()[0] for ch in out.channels], len(out.samples))
                   for out in self.outbound]

        def steps(t_w: float) -> None:
            nonlocal marks
            for before_steps in step_hooks:
                before_steps()
            for wait in waits:
                wait()               # the previous window's sends: their blocks are rewritten now
            s = 0
            for puts, gets in sub_steps:
                worker.step += 1
                worker.phase = "put"
                for field, exact, inb in puts:
                    put(field, exact if exact is not None else input_at(inb, s))
                worker.phase = "advance"
                advance(t_w + s * dt, dt)
                worker.phase = "get"
                for field, view in gets:
                    view[...] = get(field)
                s += 1
            marks += (COMPUTE, perf())
            worker.phase = "send"
            for out, finite, starts, k in outputs:
                if finite is not None and not finite():
                    worker._check_finite(out, k)
                for start in starts:
                    start()
            for write in sent_measures:
                write()              # the sums of what was sent, while the data travels (the block stays)
            marks += (EXCHANGE, perf())
            worker.phase = "receive"
        return steps

    def _make_explicit_window(self):
        """A callable ``window(w)`` running explicit window ``w``; returns its end (perf_counter s).

        Fresh inputs, sub-steps, send, loop-closing inputs (which land in ``Inbound.used[1:]``
        directly), the end-of-window copies :meth:`_bind` kept: the explicit case of one
        iteration of :meth:`_make_implicit_window`, bound once.
        """
        worker, steps, marks, perf = self, self._steps, self.clock.marks, time.perf_counter
        window_hooks, t0, width = self._window_hooks, self._t0, self._width
        fresh = [inb.channel.recv_ops() for inb in self._fresh]
        closing = [inb.channel.recv_ops() for inb in self._closing]
        copies = [_copier(inb.head, inb.last) for inb in self._closing_copy] + \
                 [_copier(inb.first, inb.last) for inb in self._fresh_copy]

        def window(w: int) -> float:
            nonlocal marks
            if window_hooks or fresh:
                for window_start in window_hooks:
                    window_start(w)
                marks += (EXCHANGE, perf())
                worker.phase = "receive"
                for start, wait in fresh:
                    start()
                    wait()
                marks += (WAIT, perf())
            steps(t0 + w * width)
            for start, wait in closing:
                start()
                wait()               # lands in used[1:]; held constant over the next window
            for copy in copies:
                copy()
            now = perf()
            marks += (WAIT, now)
            return now
        return window

    def _sync_window_start(self) -> None:
        """Make the end-of-window copies that explicit windows defer (see :meth:`_bind`).

        Idempotent: afterwards every waveform is exactly what the per-window copies give.
        """
        for inb in getattr(self, "_deferred", ()):
            if inb.fresh:
                inb.first[...] = inb.last
            else:
                inb.head[...] = inb.last

    # --- checkpoints ----------------------------------------------------------
    def _checkpoint(self, w: int):
        """Join the collective checkpoint after window ``w`` (results flushed first)."""
        from .checkpoint import write_checkpoint
        self.phase = "checkpoint"
        self.writer.flush()
        write_checkpoint(self.ctx.world, self.ctx.outdir / "checkpoints", w + 1, solver=self.name,
                         group_rank=self.group.Get_rank(), state=self.checkpoint_state())

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """Everything this rank needs to continue bitwise: solver, waveforms, accelerator, output count."""
        self._sync_window_start()
        state = {f"solver.{k}": np.asarray(v) for k, v in self.solver.state().items()}
        for inb in self.inbound:
            state[f"inbound.{inb.index}"] = inb.used
            state[f"inbound.{inb.index}.points"] = inb.channel.spec.points
        if self.accelerator is not None:
            state.update({f"accel.{k}": np.asarray(v) for k, v in self.accelerator.state().items()})
        state["worker.outputs"] = np.array([self.writer.count], dtype=np.int64)
        state["worker.step"] = np.array([self.step], dtype=np.int64)
        return state

    def restore_checkpoint(self, states: list[dict[str, np.ndarray]], same: bool):
        """Return to a :meth:`checkpoint_state` (after :meth:`setup`).

        ``same``: the checkpoint has this group's rank count, and ``states`` is
        ``[this rank's state]``.  Otherwise ``states`` holds all old ranks' states
        in group-rank order, and the solver redistributes
        itself (:meth:`Solver.restore_all`), waveforms are matched to this rank's
        points by coordinates, and the accelerator starts without history.
        """
        self.phase = "restore"
        part = lambda state, prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        mine = states[0]
        if same:
            self.solver.restore(part(mine, "solver."))
        else:
            self.solver.restore_all([part(state, "solver.") for state in states])
        for inb in self.inbound:
            key = f"inbound.{inb.index}"
            if same:
                inb.used[...] = mine[key]
            else:
                inb.used[...] = _match_points(inb.channel.spec.points,
                                              np.concatenate([st[f"{key}.points"] for st in states]),
                                              np.concatenate([st[key] for st in states], axis=1), key)
        if self.accelerator is not None and same:
            self.accelerator.restore(part(mine, "accel."))
        self.step = int(mine["worker.step"][0])
        self.writer.resume(int(mine["worker.outputs"][0]))   # meaningful on the group root

    def _next_control(self) -> Control:
        self.phase = "waiting for the coordinator"
        buf = np.empty(CONTROL_SIZE, dtype=np.int64)
        if self.root:
            self.ctx.world.Recv(buf, source=0, tag=TAG_CONTROL)
        self.group.Bcast(buf, root=0)
        return Control.unpack(buf)

    def _report(self):
        # Every rank's phase rows go to the root (one small Gather per report), then to rank 0.
        # Both lists are flat (filled with += in the loop) and emptied in place.
        phases = self.clock.take_rows()
        gathered = np.empty((self.group.Get_size(), *phases.shape)) if self.root else None
        self.group.Gather(phases, gathered, root=0)
        if self.root and self.rows:
            rows = np.fromiter(self.rows, np.float64, len(self.rows)).reshape(-1, report_width(self.n_measures))
            # Not waited for: a blocking send of a large report waits for the coordinator to
            # wake and post its receive (up to its poll interval, ~1 ms), with both solvers stalled.
            self._wait_reported()
            world = self.ctx.world
            self._reports = [(world.Isend(rows, dest=0, tag=TAG_REPORT), rows)]
            phases = np.ascontiguousarray(gathered.transpose(1, 0, 2))
            self._reports.append((world.Isend(phases, dest=0, tag=TAG_TIMING), phases))
        self.rows.clear()

    def _wait_reported(self) -> None:
        """Complete the previous report's sends (their arrays are kept alive until then)."""
        for request, _ in self._reports:
            request.Wait()
        self._reports = []

    def _make_implicit_window(self):
        """A callable ``window(w)`` running implicit window ``w`` to convergence; returns
        (iterations, relative residuals, converged).

        Per iteration: fresh inputs, sub-steps, send, loop-closing inputs, convergence;
        then the solver rolls back to the window start's snapshot unless the window is
        done.  Bound once, as :meth:`_make_explicit_window`.
        """
        worker, steps, marks, perf = self, self._steps, self.clock.marks, time.perf_counter
        state, restore = self.solver.state, self.solver.restore
        window_hooks, t0, width, max_it = self._window_hooks, self._t0, self._width, self._max_iterations
        acc, sums, local_sums = self.accelerator, self._sums, self._local_sums
        received_measures, sent_next = self._received_measures, self._sent_next
        decide = self._make_decision()
        # The window's last values start the next one; loop-closing data is held constant:
        # fresh inputs' first sample, the held last received sample (inb.used[...] = inb.new[-1];
        # sample 0 deferred where nothing reads it, see _bind), the sender's copy of what its
        # receiver holds (prev[...] = block[-1]).
        closes = [_copier(inb.first, inb.last) for inb in self._fresh_copy] + self._hold + self._sent_close

        def receiving(inb):
            start, wait = inb.channel.recv_ops()
            measure = (lambda: worker._measure(sums, inb, inb.landing)) if inb.index in self.measure_of else None
            copy = _copier(inb.used[1:], inb.landing) if inb.fresh else None
            return start, wait, measure, copy
        fresh = [receiving(inb) for inb in self._fresh]
        closing = [receiving(inb)[:3] for inb in self._closing]
        for inb in self._closing:
            inb.new = inb.landing    # loop-closing data is kept beside what was used: acceleration combines them

        def window(w: int) -> tuple[int, list[float], int]:
            nonlocal marks
            t_w = t0 + w * width
            for window_start in window_hooks:
                window_start(w)
            worker.phase = "state"
            snapshot = _snapshot(state())
            if fresh:           # else the snapshot counts as the sub-steps' compute
                marks += (COMPUTE, perf())
            if acc is not None:
                acc.new_window()
            k = 0
            while True:
                if not local_sums:       # (local sums: every entry is rewritten, see _bind_residuals)
                    sums.fill(0.0)
                if fresh:
                    marks += (EXCHANGE, perf())
                    worker.phase = "receive"
                    for start, wait, measure, copy in fresh:
                        start()
                        wait()
                        if measure is not None:
                            measure()
                        copy()
                    marks += (WAIT, perf())
                steps(t_w)
                for start, wait, measure in closing:
                    start()
                    wait()
                    if measure is not None:
                        measure()
                for write in received_measures:
                    write()
                marks += (WAIT, perf())
                rel, ok = decide()
                k += 1
                if ok or k == max_it:
                    if acc is not None:
                        worker.phase = "acceleration"
                        acc.converged(*worker._acc_vectors())
                    for close in closes:
                        close()
                    return k, rel, ok
                worker._accelerate()
                for copy in sent_next:
                    copy()                        # prev[...] = block: what the receiver uses next
                marks += (EXCHANGE, perf())
                worker.phase = "restore"
                restore(snapshot)
                marks += (COMPUTE, perf())
        return window

    def _measure(self, sums, inb, data):
        m = self.measure_of[inb.index]
        if self.measure_end[m]:     # only the window end's sample (preCICE's measure)
            r2, x2 = residual_sums(data[-1], inb.used[-1])
        else:
            r2, x2 = residual_sums(data, inb.used[1:])
        sums[m, 0] += r2
        sums[m, 1] += x2

    def _input_at(self, inb: Inbound, s: int) -> np.ndarray:
        exact = inb.exact[s]
        if exact is not None:
            return exact
        ip = inb.interp
        i0, i1, w1 = ip.i0[s], ip.i1[s], ip.w1[s]
        if w1 == 0.0:
            return inb.used[i0].reshape(inb.view_shape)
        np.multiply(inb.used[i0], ip.w0[s], out=inb.value)
        inb.value += w1 * inb.used[i1]
        return inb.value.reshape(inb.view_shape)

    def _make_decision(self):
        """A callable -> (relative residual per criterion, converged 0/1) of the iteration just run.

        From the local sums when every rank has every measure (:meth:`_bind_residuals`:
        nothing to wait for; the decision's few statements count for the next lap's phase),
        else from their ``Allreduce`` over all solver ranks.
        """
        worker, criteria, sqrt = self, self.criteria, math.sqrt
        sums, total, comm, local = self._sums, self._total, self.ctx.solvers, self._local_sums
        marks, perf = self.clock.marks, time.perf_counter
        flat = memoryview((sums if local else total).reshape(-1))

        def decide() -> tuple[list[float], int]:
            nonlocal marks
            worker.phase = "convergence"
            if not local:
                comm.Allreduce(sums, total)
                marks += (WAIT, perf())
            rel, ok, i = [], 1, 0
            for relative, absolute in criteria:
                r, x = sqrt(flat[i]), sqrt(flat[i + 1])
                i += 2
                rel.append(r / x if x > 0 else r)
                if relative is not None and not (r <= relative * x):
                    ok = 0
                if absolute is not None and not (r <= absolute):
                    ok = 0
            return rel, ok
        return decide

    def _accelerate(self):
        self.phase = "acceleration"
        for inb in self.inbound:
            if not inb.fresh and inb.index not in self.ctx.plan.accelerated:
                inb.used[1:] = inb.new
        if self.accelerator is None:
            for inb in self.acc_inbound:
                inb.used[1:] = inb.new
            return
        nxt = self.accelerator.update(*self._acc_vectors())
        pos = 0
        for inb in self.acc_inbound:
            size = inb.used[1:].size
            inb.used[1:] = nxt[pos:pos + size].reshape(inb.used[1:].shape)
            pos += size

    def _acc_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's (x, x_tilde) of the accelerated fields: what was used, what came back."""
        if not self.acc_inbound:
            return np.zeros(0), np.zeros(0)
        return (np.concatenate([inb.used[1:].ravel() for inb in self.acc_inbound]),
                np.concatenate([inb.new.ravel() for inb in self.acc_inbound]))

    def _check_finite(self, out: Outbound, k: int):
        block = out.samples[:k]
        if block.dtype.kind not in "fc":
            return
        # A sum is finite only if every term is; small blocks are cheaper element-wise.
        ok = all(map(math.isfinite, block.flat)) if block.size <= 8 and block.dtype.kind == "f" \
            else np.isfinite(block.sum()) or np.isfinite(block).all()
        if not ok:
            bad = int((~np.isfinite(block)).sum())
            raise CouplingDataError(f"solver {self.name!r} produced {bad} non-finite value(s) (NaN/Inf) "
                                    f"in output field {out.field!r} in window {self.window}")
