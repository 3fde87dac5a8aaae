"""The HMM farm at run time: macro queries answered by micro instances on the farm's ranks.

Spec (validated by :mod:`couplings.patterns.hmm_spec`)::

    solvers:
      rod:  {kind: "solvers.examples.conductivity:Rod", ranks: 1, dt: 1.0e-3, params: {...}}
      cell: {kind: "solvers.examples.conductivity:Cell", ranks: 2, dt: 0.5, params: {...}}
    patterns:
      - kind: hmm
        macro: rod                    # the solver that asks
        micro: cell                   # its ranks are the farm; its dt is the micro step; its
                                      # params the base settings of every instance
        query:  {field: rod.cell_temperature, sets: [temperature]}  # components -> settings/inputs
        answer: {field: rod.conductivity, from: [conductivity], average: mean}   # mean | last
        micro_time: 2.0               # micro seconds averaged per query, after relax_time
        relax_time: 30.0              # discarded first (stateful: once, at the first window)
        mode: stateless               # stateless | stateful
        instance_ranks: 1             # ranks per instance; divides the micro solver's ranks
        cache: {tolerance: 0.0}       # stateless default; null: no cache
        surrogate: {kind: gp, max_std: 1.0e-3, min_samples: 8}   # optional (stateless)
        on_failure: error             # error | surrogate
        chunk: null                   # queries per work unit (default: automatic)

The contract (refining ``/work/briefs/hmm_contract.md``)
--------------------------------------------------------
* **Micro model**: an ordinary Solver.  A query component named in
  ``query.sets`` sets a ``Params`` field listed in the class's
  ``query_settings`` (``dataclasses.replace`` on the spec's base params, then
  :meth:`Solver.reset`, or construction for a new instance), or an input
  (``put`` once before the run with every value of the field equal to the
  component, held constant: the solver keeps what it was given).  Settings of
  type int are rounded, bool taken as nonzero.  ``reset(params)`` must leave
  the instance as construction + ``initialize(0)`` would (answers then do not
  depend on which instance, or which farm rank, ran a query).
* **Units**: every observable's units equal the answer field's: checked
  before launch where both classes declare ``field_info``, and at setup from
  ``fields()`` always.
* **Observables** (``answer.from``): output fields read with ``get`` after
  each step, reduced over all values of the instance (mean for intensive,
  sum for extensive fields, ``FieldSpec.extensive``; over the instance's
  ranks when ``instance_ranks > 1``), then over micro time: the mean of the
  ``micro_time/dt`` steps after ``relax_time`` (``average: mean``) or the
  last step (``last``).
* **Macro side**: the query is an output field (n_local, len(sets)); the
  answer an input field (n_local, len(from)) on the same points.  At the
  start of every window, before the window's state is saved for implicit
  iterations, each macro rank sends its query (its state after the previous
  window) and receives the answers, which are ``put`` before the first step
  of every iteration of the window.  Per-step queries: make the window the
  macro dt.  Answers therefore never change within a window, and stateful
  instances are advanced once per window: implicit iterations of the macro
  (which restart from the window-start state) see the same answers, which is
  what rolling the micro state back and re-advancing it with the same query
  would give.
* **Stateless farm**: queries of a window are de-duplicated (with a cache),
  looked up in the cache (:class:`couplings.surrogate.AnswerCache`), then the
  surrogate (:class:`couplings.surrogate.GPSurrogate`, used where every
  component's std < ``max_std``), and the rest are *tasks*, broadcast to the
  farm.  Tasks are self-scheduled: each team leader takes the next work unit
  (``chunk`` queries) from a counter on farm rank 0 with an atomic MPI
  fetch-and-add (one-sided, so no rank waits for a dealer that is busy
  computing), and ranks that draw cheap queries take more units; answers go
  back to farm rank 0 in one ``Gatherv``.  Work units are sized to about
  0.2 ms of the measured micro work per query.  Instances are
  kept in a pool per team and reused through ``reset``.  A class with an
  ``advance_batch`` classmethod runs a whole work unit in lock-step with one
  batch call per step (``instance_ranks: 1`` only).  Answers depend only on
  their query, so any number of farm ranks gives the same bits; new answers
  go into the cache and the surrogate in query order (deterministic).
* **Stateful farm**: one persistent instance per macro point, owned by team
  ``point * n_teams // n_points`` (static: the state lives there); every
  window each advances ``micro_time`` with its point's query as inputs.
* **Failures**: a stateless instance that raises or answers NaN/Inf is run
  once more on a freshly constructed instance; if that fails too the job ends
  with the query's values, macro point, farm rank and exception named, or,
  with ``on_failure: surrogate``, the query is answered by the surrogate (any
  std) or else the nearest cached answer, with a warning on stderr, and
  counted as ``fallback``.  A stateful instance is not retried (its state
  after a failed step is unknown).  A hung instance is named by the watchdog
  (phase ``micro run of query ...``) after ``hang_timeout``.
* **Checkpoints**: cache and surrogate (farm rank 0), stateful instances'
  ``state()`` (each rank), the windows done; restart is bitwise.
* **Results**: per window (coordinator, ``/hmm/<micro>/`` in results.h5 and
  the summary): queries asked, distinct, answered by micro / cache /
  surrogate / fallback, retries, surrogate max std, micro seconds per farm
  rank (see :mod:`couplings.patterns.hmm_stats`).

Data moves with buffer calls only (``Send``/``Recv``/``Bcast``/``Gatherv``).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
import typing

import numpy as np

from couplings.patterns import Roles
from msorch.arrays import allgather_json
from msorch.messages import TAG_PATTERN0
from msorch.solver import NoParams, Solver

# Tags on ctx.data (macro <-> farm root) for pattern i: _TAG0 + 4 i + {0 setup, 1 query, 2 answer}.
_TAG0 = 600
_UNIT_SECONDS = 2e-4   # target micro work per work unit (one atomic fetch, ~3 us, per unit)


class HMMError(RuntimeError):
    """The farm cannot go on; the message names the query, farm rank and cause."""


def roles(ctx, name: str, index: int, p) -> Roles:
    if name == p.micro:
        return Roles(solver=lambda worker: FarmSolver(worker, index, p), hooks=[FarmHook()])
    if name == p.macro:
        return Roles(hooks=[MacroSide(ctx, index, p)])
    return Roles()


def _tags(index: int) -> tuple[int, int, int]:
    base = _TAG0 + 4 * index
    return base, base + 1, base + 2


def _describe(names, rows) -> str:
    """'query temperature=0.5' or '12 queries temperature=0.1..0.9'."""
    rows = np.asarray(rows)
    if len(rows) == 1:
        return "query " + ", ".join(f"{n}={v:.9g}" for n, v in zip(names, rows[0]))
    return f"{len(rows)} queries " + ", ".join(f"{n}={rows[:, j].min():.6g}..{rows[:, j].max():.6g}"
                                               for j, n in enumerate(names))


class _Phase:
    """The worker phase 'micro run of <queries>', formatted only when the watchdog reports it.

    The watchdog pickles the phase into its note: it then travels as the plain text.
    """

    __slots__ = ("names", "rows")

    def __init__(self, names, rows):
        self.names, self.rows = names, rows

    def __str__(self) -> str:
        return "micro run of " + _describe(self.names, self.rows)

    def __reduce__(self):
        return str, (str(self),)


# ---------------------------------------------------------------------------
# Macro side: a hook in the ordinary worker
# ---------------------------------------------------------------------------


class MacroSide:
    """On each macro rank: send the window's queries, receive and ``put`` the answers."""

    def __init__(self, ctx, index: int, p):
        self.ctx, self.p = ctx, p
        self.qname = p.query.field.partition(".")[2]
        self.aname = p.answer.field.partition(".")[2]
        self.farm_root = ctx.layout.groups[p.micro][0]
        self.tags = _tags(index)

    def setup(self, worker) -> None:
        from msorch.arrays import send_json
        self.worker, self.solver = worker, worker.solver
        p, fields = self.p, worker.solver.fields()
        problems = [f"{p.macro} declares no FieldSpec for {n!r}" for n in (self.qname, self.aname)
                    if n not in fields]
        nq, na = len(p.query.sets), len(p.answer.observables)
        fq, fa = fields.get(self.qname), fields.get(self.aname)
        if not problems:
            if fq.components != nq:
                problems.append(f"{p.query.field} has {fq.components} component(s) but query.sets names {nq}")
            if fa.components != na:
                problems.append(f"{p.answer.field} has {fa.components} component(s) but answer.from names {na}")
            if len(fq.points) != len(fa.points):
                problems.append(f"{p.query.field} ({len(fq.points)} points) and {p.answer.field} "
                                f"({len(fa.points)}) differ on rank {worker.group.Get_rank()}")
        if problems:
            raise HMMError(f"hmm {p.macro} -> {p.micro}: " + "; ".join(problems))
        self.n, self.nq = len(fq.points), nq
        self.answer = np.zeros((self.n, na))
        self.shape = fa.shape
        data = self.ctx.data
        data.Send(np.array([self.n], dtype=np.int64), dest=self.farm_root, tag=self.tags[0])
        if worker.group.Get_rank() == 0:
            send_json(data, {"units": fa.units}, self.farm_root, self.tags[0])

    def window_start(self, w: int) -> None:
        if not self.n:
            return
        worker, data = self.worker, self.ctx.data
        worker.phase = "hmm: send queries"
        q = np.ascontiguousarray(self.solver.get(self.qname), dtype=np.float64).reshape(self.n, self.nq)
        if not math.isfinite(float(q.sum())):
            raise HMMError(f"solver {self.p.macro!r} asks {int((~np.isfinite(q)).sum())} non-finite "
                           f"quer(y/ies) in {self.p.query.field} in window {w}")
        data.Send(q, dest=self.farm_root, tag=self.tags[1])
        worker.phase = "receive"   # waiting for the farm
        data.Recv(self.answer, source=self.farm_root, tag=self.tags[2])

    def before_steps(self) -> None:
        self.solver.put(self.aname, self.answer.reshape(self.shape))


# ---------------------------------------------------------------------------
# Farm side: a worker of its own on the micro solver's ranks
# ---------------------------------------------------------------------------


class FarmSolver(Solver):
    """The micro solver's place in the ordinary worker: no fields, no steps of its own.

    Its state is the farm's (cache, surrogate, persistent instances), so the
    worker's checkpoints and restarts carry it; :class:`FarmHook` serves the
    window's queries at the window start.
    """

    def __init__(self, worker, index: int, p):
        super().__init__(worker.group, NoParams())
        self.farm = Farm(worker, index, p)

    def fields(self):
        return {}

    def advance(self, t, dt):
        pass

    def results(self):
        return {}

    def state(self):
        return self.farm.state()

    def restore(self, state):
        self.farm.restore(state)

    def restore_all(self, states):
        if self.farm.p.mode == "stateful":
            raise HMMError(f"a stateful farm ({self.farm.p.micro!r}) restarts on the ranks of its checkpoint only")
        self.farm.restore(states[0])   # stateless: all of it lives on farm rank 0 (old rank 0)

    def finalize(self):
        self.farm.finalize()


class FarmHook:
    """Serves the farm at every window start on the micro solver's ranks."""

    def setup(self, worker) -> None:
        self.farm = worker.solver.farm

    def window_start(self, w: int) -> None:
        self.farm.serve(w)


class Farm:
    """Answers the macro's queries every window (collective over the farm's ranks)."""

    def __init__(self, worker, index: int, p):
        from msorch.arrays import recv_json
        self.worker, self.p, self.index = worker, p, index
        ctx = self.ctx = worker.ctx
        group = worker.group
        self.rank, self.size = group.Get_rank(), group.Get_size()
        self.world_rank = ctx.world.Get_rank()
        self.comm = group.Dup()
        k = p.instance_ranks
        self.k, self.n_teams, self.team_index = k, self.size // k, self.rank // k
        self.team = group.Split(self.team_index, self.rank)
        self.leader = self.team.Get_rank() == 0
        self.root = self.rank == 0
        spec = ctx.job.solvers[p.micro]
        self.cls, self.base, self.dt = spec.cls, spec.params, spec.dt
        self.n_relax = round(p.relax_time / self.dt)
        self.n_run = round(p.micro_time / self.dt)
        self.mean = p.answer.average == "mean"
        self.names = tuple(p.query.sets)
        settable = set(getattr(self.cls, "query_settings", ()))
        hints = typing.get_type_hints(self.cls.Params)
        self.set_params = [(j, n, _caster(hints.get(n))) for j, n in enumerate(self.names) if n in settable]
        self.set_inputs = [(j, n) for j, n in enumerate(self.names) if n not in settable]
        self.observables = tuple(p.answer.observables)
        self.nq, self.na = len(self.names), len(self.observables)
        self.batch = k == 1 and callable(getattr(self.cls, "advance_batch", None))
        self.tags = _tags(index)
        self.pool: list = []
        self.task_seconds = 0.0   # running estimate of one query's micro seconds (work-unit size)
        self.micro_seconds = 0.0
        self.retries = 0
        self.windows_done = 0
        # Macro ranks announce their point counts; rank 0 of the macro its answer units.
        macro_ranks = ctx.layout.groups[p.macro]
        counts = np.zeros(len(macro_ranks), dtype=np.int64)
        units = None
        if self.root:
            worker.phase = "receive"
            for i, r in enumerate(macro_ranks):
                ctx.data.Recv(counts[i:i + 1], source=r, tag=self.tags[0])
            units = recv_json(ctx.data, macro_ranks[0], self.tags[0])["units"]
        self.comm.Bcast(counts, root=0)
        self.counts, self.macro_ranks = counts, macro_ranks
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n_points = int(counts.sum())
        worker.phase = "construct"
        first = self._construct(self.base)
        self._describe_fields(first, units)
        if p.mode == "stateful":
            self._setup_stateful(first)
        else:
            self.pool.append(first)
        self.cache = self.surrogate = None
        if self.root and p.mode == "stateless":
            from couplings.surrogate import AnswerCache, GPSurrogate
            if p.cache is not None:
                self.cache = AnswerCache(self.nq, self.na, p.cache.tolerance)
            if p.surrogate is not None:
                s = p.surrogate
                self.surrogate = GPSurrogate(self.nq, self.na, s.max_std, s.min_samples)
        self.queries = np.empty((self.n_points, self.nq))
        self.answers = np.empty((self.n_points, self.na))
        self._row = np.zeros(10 + self.size)
        self._win = None
        if p.mode == "stateless" and self.n_teams > 1:
            from mpi4py import MPI
            # The shared work-unit counter (one int64 on farm rank 0), zeroed before first use.
            self._win = MPI.Win.Allocate(8 if self.root else 0, 8, comm=self.comm)
            if self.root:
                self._win.Lock(0, MPI.LOCK_EXCLUSIVE)
                self._win.Put(np.zeros(1, dtype=np.int64), 0)
                self._win.Unlock(0)
            self.comm.Barrier()

    # --- instances ----------------------------------------------------------
    def _construct(self, params):
        inst = self.cls(self.team, params)
        inst.initialize(0.0)
        return inst

    def _describe_fields(self, inst, macro_units) -> None:
        """Observable reductions (extensive: sum) and input shapes, from one instance; units checked."""
        fields = inst.fields()
        missing = [n for n in (*self.observables, *(n for _, n in self.set_inputs)) if n not in fields]
        if missing:
            raise HMMError(f"micro solver {self.p.micro!r} declares no FieldSpec for {', '.join(missing)}")
        self.extensive = [fields[n].extensive for n in self.observables]
        self.input_shapes = {n: fields[n].shape for _, n in self.set_inputs}
        if macro_units is not None:
            wrong = [f"{n} is in {fields[n].units!r}" for n in self.observables if fields[n].units != macro_units]
            if wrong:
                raise HMMError(f"hmm {self.p.macro} -> {self.p.micro}: the answer field {self.p.answer.field} "
                               f"is in {macro_units!r} but micro output {'; '.join(wrong)}")

    def _params(self, row):
        """The base Params with the query's settings (``dataclasses.replace`` semantics)."""
        if not self.set_params:
            return self.base
        changes = {n: cast(row[j]) for j, n, cast in self.set_params}
        base = self.base
        if hasattr(base, "__post_init__") or not hasattr(base, "__dict__"):
            return dataclasses.replace(base, **changes)
        # Same result as replace() without re-running __init__ (a few us per query): a copy of
        # the frozen instance's fields with the query's values in place.
        new = object.__new__(type(base))
        object.__setattr__(new, "__dict__", {**base.__dict__, **changes})
        return new

    def _put_inputs(self, instances, rows) -> None:
        """Every value of each queried input = its query component (one vectorised fill per input)."""
        g = len(instances)
        for j, name in self.set_inputs:
            buf, views = self._input_buffer(name, g)
            buf[:g] = np.asarray(rows, dtype=np.float64)[:, j].reshape((g,) + (1,) * (buf.ndim - 1))
            for inst, view in zip(instances, views):
                inst.put(name, view)

    def _input_buffer(self, name: str, g: int):
        """A (>= g, *shape) buffer for input ``name`` and its row views, kept between windows."""
        cached = self._inputs.get(name) if hasattr(self, "_inputs") else None
        if cached is None or len(cached[0]) < g:
            if not hasattr(self, "_inputs"):
                self._inputs = {}
            buf = np.zeros((max(g, 1), *self.input_shapes[name]))
            self._inputs[name] = cached = (buf, list(buf))
        return cached

    # --- one run of a group of instances -------------------------------------
    def _step(self, instances, t: float) -> None:
        if self.batch and len(instances) > 1:
            self.cls.advance_batch(instances, t, self.dt)
        else:
            for inst in instances:
                inst.advance(t, self.dt)
        self.worker.step += 1

    def _observe(self, instances) -> np.ndarray:
        """(g, n_answer): every instance's observables reduced over its values (and ranks)."""
        g = len(instances)
        sums = np.empty((g, self.na, 2)) if self.k > 1 else None
        out = np.empty((g, self.na))
        for j, name in enumerate(self.observables):
            values = [inst.get(name) for inst in instances]
            if sums is None:   # instances of one class have equally many values: one block
                block = np.concatenate(values).reshape(g, -1) if g > 1 else \
                    np.asarray(values[0], dtype=np.float64).reshape(1, -1)
                if block.shape[1] == 1:
                    out[:, j] = block[:, 0]
                else:
                    out[:, j] = block.sum(axis=1) if self.extensive[j] else block.mean(axis=1)
            else:
                sums[:, j, 0] = [v.sum() for v in values]
                sums[:, j, 1] = [v.size for v in values]
        if sums is not None:
            total = np.empty_like(sums)
            self.team.Allreduce(sums, total)
            for j in range(self.na):
                out[:, j] = total[:, j, 0] if self.extensive[j] else total[:, j, 0] / total[:, j, 1]
        return out

    def _run(self, instances, t0: float, relax: bool) -> np.ndarray:
        """Relax (optionally), then run micro_time; returns the averaged observables (g, n_answer)."""
        t, dt = t0, self.dt
        for _ in range(self.n_relax if relax else 0):
            self._step(instances, t)
            t += dt
        acc = np.zeros((len(instances), self.na))
        for s in range(self.n_run):
            self._step(instances, t)
            t += dt
            if self.mean or s == self.n_run - 1:
                acc += self._observe(instances)
        return acc / self.n_run if self.mean else acc

    # --- stateless -----------------------------------------------------------
    def _answer_rows(self, rows: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Answers (g, n_answer) and failed flags (g,) for task rows (g, n_query) on this team.

        Batch classes run the rows in lock-step; others one at a time (one instance, reused),
        so that one failing query never touches another's run.
        """
        g = len(rows)
        if g > 1 and not self.batch:
            pairs = [self._answer_rows(rows[i:i + 1], points[i:i + 1]) for i in range(g)]
            return np.vstack([a for a, _ in pairs]), np.concatenate([f for _, f in pairs])
        while len(self.pool) < g:
            self.pool.append(self._construct(self._params(rows[len(self.pool)])))
        instances = self.pool[:g]
        self.worker.phase = _Phase(self.names, rows)
        start = time.perf_counter()
        error = None
        try:
            for inst, row in zip(instances, rows):
                inst.reset(self._params(row))
            self._put_inputs(instances, rows)
            answers = self._run(instances, 0.0, relax=True)
        except Exception as exc:   # retried one by one below
            answers, error = np.full((g, self.na), np.nan), exc
        bad = ~np.isfinite(answers).all(axis=1)
        failed = np.zeros(g, dtype=bool)
        for i in np.flatnonzero(bad):
            self.retries += 1
            answers[i], failed[i], fresh = self._retry(rows[i], int(points[i]), error if g == 1 else None)
            if fresh is not None:   # the failed instance may be in any state: replace it
                self.pool[i] = fresh
        self.micro_seconds += time.perf_counter() - start
        return answers, failed

    def _retry(self, row, point: int, first_error) -> tuple[np.ndarray, bool, object]:
        """Run one failed query again on a fresh instance; (answer, failed, the instance or None)."""
        what = _describe(self.names, row[None])
        self.worker.phase = "micro run (retry) of " + what
        error, inst = None, None
        try:
            inst = self._construct(self._params(row))
            self._put_inputs([inst], [row])
            answer = self._run([inst], 0.0, relax=True)[0]
            if np.isfinite(answer).all():
                return answer, False, inst
            error = f"the answer is not finite ({', '.join(f'{v:g}' for v in answer)})"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        first = f"{type(first_error).__name__}: {first_error}; " if first_error is not None else ""
        message = (f"hmm farm {self.p.micro!r}: {what} (macro point {point}) failed twice on farm rank "
                   f"{self.rank} (world rank {self.world_rank}): {first}{error}")
        if self.p.on_failure == "error":
            raise HMMError(message)
        print(f"[msorch] warning: {message}; answered by the surrogate or the nearest cached answer",
              file=sys.stderr, flush=True)
        return np.full(self.na, np.nan), True, None

    def _unit(self, m: int) -> int:
        """Rows per work unit: about _UNIT_SECONDS of micro work, at most a quarter of a team's share."""
        if self.p.chunk:
            return self.p.chunk
        if self.task_seconds > 0:
            unit = int(_UNIT_SECONDS / self.task_seconds)
        else:
            unit = m // (8 * self.n_teams)
        return int(np.clip(unit, 1, max(1, m // (4 * self.n_teams))))

    def _run_tasks(self, tasks: np.ndarray, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """Answers for every task row (m, n_query + 1: values, macro point), dealt over the teams.

        Work units of ``unit`` rows are self-scheduled: every team leader takes the next unit
        index from a counter on farm rank 0 with an atomic MPI fetch-and-add, so ranks that
        draw cheap queries take more units and nobody waits for a dealer.
        Returns (answers (m, n_answer), failed (m,)) on farm rank 0; empty arrays elsewhere.
        """
        m = len(tasks)
        rows, points = tasks[:, :self.nq], tasks[:, self.nq]
        if self.n_teams == 1:
            units = [(s, min(s + unit, m)) for s in range(0, m, unit)]
            return self._team_loop(rows, points, units)
        from mpi4py import MPI
        done: list[tuple[int, int]] = []
        answers, failed = np.empty((m, self.na)), np.zeros(m, dtype=bool)
        for s, e in self._unit_source(self._fetched_units(m, unit) if self.leader else None):
            answers[s:e], failed[s:e] = self._answer_rows(rows[s:e], points[s:e])
            done.append((s, e))
        # Everything back to farm rank 0: which rows each rank answered, and how.
        self.worker.phase = "receive"
        mine = np.concatenate([np.arange(s, e) for s, e in done]) if done and self.leader else np.zeros(0, np.int64)
        block = np.column_stack([answers[mine], failed[mine].astype(np.float64)])
        sizes = np.empty(self.size, dtype=np.int64) if self.root else None
        self.comm.Gather(np.array([len(mine)], dtype=np.int64), sizes, root=0)
        idx = np.empty(int(sizes.sum()), dtype=np.int64) if self.root else None
        got = np.empty((int(sizes.sum()), self.na + 1)) if self.root else None
        self.comm.Gatherv(mine.astype(np.int64), (idx, sizes) if self.root else None, root=0)
        self.comm.Gatherv(np.ascontiguousarray(block), (got, sizes * (self.na + 1)) if self.root else None, root=0)
        if not self.root:
            return np.zeros((0, self.na)), np.zeros(0, dtype=bool)
        answers[idx], failed[idx] = got[:, :self.na], got[:, self.na] != 0
        # All fetches of this window are over (everyone passed the gather): reset the counter.
        self._win.Lock(0, MPI.LOCK_EXCLUSIVE)
        self._win.Put(np.zeros(1, dtype=np.int64), 0)
        self._win.Unlock(0)
        return answers, failed

    def _fetched_units(self, m: int, unit: int):
        """(start, stop) work units taken from the shared counter until none are left."""
        from mpi4py import MPI
        one, got = np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        while True:
            self._win.Lock(0, MPI.LOCK_SHARED)
            self._win.Fetch_and_op(one, got, 0, 0, MPI.SUM)
            self._win.Unlock(0)
            s = int(got[0]) * unit
            if s >= m:
                return
            yield s, min(s + unit, m)

    def _team_loop(self, rows, points, units):
        """Run ``units`` [(start, stop)] (leader), or follow the leader's broadcasts (others)."""
        answers, failed = np.empty((len(rows), self.na)), np.zeros(len(rows), dtype=bool)
        for s, e in self._unit_source(units if self.leader else None):
            answers[s:e], failed[s:e] = self._answer_rows(rows[s:e], points[s:e])
        return answers, failed

    def _unit_source(self, units):
        """Yield work units: the leader's, shared with its team when instances span ranks."""
        buf = np.empty(2, dtype=np.int64)
        if self.k == 1:
            yield from units
            return
        units = iter(units or ())
        while True:
            if self.leader:
                buf[:] = next(units, (-1, -1))
            self.team.Bcast(buf, root=0)
            if buf[0] < 0:
                return
            yield int(buf[0]), int(buf[1])

    def _serve_stateless(self, w: int) -> np.ndarray:
        """Farm rank 0 gets every macro query, answers from cache, surrogate or micro; returns stats."""
        counts = np.zeros(5)   # distinct, micro, cache, surrogate, fallback
        max_std = np.nan
        tasks = np.zeros((0, self.nq + 1))
        if self.root:
            q = self.queries
            if self.cache is not None and len(q):
                distinct, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
                inverse = inverse.reshape(-1)
            else:
                distinct, first, inverse = q, np.arange(len(q)), None
            answers = np.full((len(distinct), self.na), np.nan)
            todo = np.ones(len(distinct), dtype=bool)
            if self.cache is not None and len(distinct):
                cached, hit = self.cache.lookup(distinct)
                answers[hit] = cached[hit]
                todo &= ~hit
                counts[2] = hit.sum()
            if self.surrogate is not None and todo.any():
                mean, std = self.surrogate.predict(distinct[todo])
                if np.isfinite(std).any():
                    max_std = float(std[np.isfinite(std)].max())
                sure = self.surrogate.confident(std)
                idx = np.flatnonzero(todo)[sure]
                answers[idx] = mean[sure]
                todo[idx] = False
                counts[3] = sure.sum()
            todo_idx = np.flatnonzero(todo)
            tasks = np.column_stack([distinct[todo_idx], first[todo_idx].astype(np.float64)])
            counts[0], counts[1] = len(distinct), len(todo_idx)
        head = np.array([len(tasks), self._unit(len(tasks))], dtype=np.int64)
        if self.size > 1:
            self.comm.Bcast(head, root=0)
            if not self.root:
                tasks = np.empty((int(head[0]), self.nq + 1))
            self.comm.Bcast(tasks, root=0)
        before = self.micro_seconds
        micro, failed = self._run_tasks(tasks, int(head[1]))
        if len(tasks):
            spent = self.micro_seconds - before
            estimate = spent * self.n_teams / len(tasks)
            self.task_seconds = estimate if not self.task_seconds else 0.5 * (self.task_seconds + estimate)
        if self.root:
            if failed.any():
                micro[failed] = self._fallback(tasks[failed, :self.nq])
                counts[4] = failed.sum()
            good = ~failed
            if self.cache is not None:
                self.cache.add(tasks[good, :self.nq], micro[good])
            if self.surrogate is not None and good.any():
                self.worker.phase = "surrogate training"
                self.surrogate.add(tasks[good, :self.nq], micro[good])
            answers[todo_idx] = micro
            self.answers[...] = answers if inverse is None else answers[inverse]
        return np.concatenate([counts, [max_std]])

    def _fallback(self, rows: np.ndarray) -> np.ndarray:
        if self.surrogate is not None and self.surrogate.ready:
            return self.surrogate.predict(rows)[0]
        stored = self.cache.state() if self.cache is not None else {"queries": np.zeros((0, self.nq))}
        if len(stored["queries"]):
            from scipy.spatial import cKDTree
            _, near = cKDTree(stored["queries"]).query(rows, p=np.inf)
            return stored["answers"][near]
        raise HMMError(f"hmm farm {self.p.micro!r}: {_describe(self.names, rows)} failed and there is no "
                       "surrogate or cached answer yet to answer from (on_failure: surrogate)")

    # --- stateful --------------------------------------------------------------
    def _setup_stateful(self, first) -> None:
        self._stateful_stats = np.array([self.n_points, self.n_points, 0, 0, 0, np.nan])
        lo = self.n_points * self.team_index // self.n_teams
        hi = self.n_points * (self.team_index + 1) // self.n_teams
        self.owned = (lo, hi)
        self.pool = [first] + [self._construct(self.base) for _ in range(max(0, hi - lo - 1))]
        self.pool = self.pool[:hi - lo]
        if hi - lo == 0:
            first.finalize()
        # Counts of answer rows per farm rank for the Gatherv (team members send none).
        teams = [(self.n_points * t // self.n_teams, self.n_points * (t + 1) // self.n_teams)
                 for t in range(self.n_teams)]
        self.gather_counts = np.array([(teams[r // self.k][1] - teams[r // self.k][0]) if r % self.k == 0 else 0
                                       for r in range(self.size)], dtype=np.int64)

    def _serve_stateful(self, w: int) -> np.ndarray:
        if self.size > 1:
            self.comm.Bcast(self.queries, root=0)
        lo, hi = self.owned
        rows = self.queries[lo:hi]
        start = time.perf_counter()
        mine = np.zeros((hi - lo, self.na))
        if hi > lo:
            self.worker.phase = _Phase(self.names, rows)
            try:
                self._put_inputs(self.pool, rows)
                # The instances' clock: relax_time once, then micro_time per window.
                relax = self.windows_done == 0
                t0 = 0.0 if relax else self.p.relax_time + self.windows_done * self.p.micro_time
                mine = self._run(self.pool, t0, relax)
            except Exception as exc:
                raise HMMError(f"hmm farm {self.p.micro!r}: a persistent instance of points {lo}..{hi - 1} "
                               f"({_describe(self.names, rows)}) failed on farm rank {self.rank} "
                               f"(world rank {self.world_rank}): {type(exc).__name__}: {exc}") from exc
            # A sum is finite only if every term is: the per-row search only when it is not.
            bad = [] if math.isfinite(float(mine.sum())) else np.flatnonzero(~np.isfinite(mine).all(axis=1))
            if len(bad) and self.leader:
                i = int(bad[0])
                raise HMMError(f"hmm farm {self.p.micro!r}: the persistent instance of macro point {lo + i} "
                               f"({_describe(self.names, rows[i:i + 1])}) answered non-finite values on farm "
                               f"rank {self.rank} (world rank {self.world_rank})")
        self.micro_seconds += time.perf_counter() - start
        send = mine if self.leader else np.zeros((0, self.na))
        if self.size > 1:
            self.comm.Gatherv(np.ascontiguousarray(send),
                              (self.answers, self.gather_counts * self.na) if self.root else None, root=0)
        else:
            self.answers[...] = mine
        return self._stateful_stats

    # --- the window ---------------------------------------------------------------
    def serve(self, w: int) -> None:
        """Receive the window's queries, answer all, send the answers back (collective over the farm)."""
        data = self.ctx.data
        t0 = time.perf_counter()
        self.micro_seconds = 0.0
        retries = self.retries
        if self.root:
            self.worker.phase = "receive"
            for i, r in enumerate(self.macro_ranks):
                a, b = self.offsets[i], self.offsets[i + 1]
                if b > a:
                    data.Recv(self.queries[a:b], source=r, tag=self.tags[1])
        stats = self._serve_stateless(w) if self.p.mode == "stateless" else self._serve_stateful(w)
        self.windows_done += 1
        if self.root:
            self.worker.phase = "send answers"
            for i, r in enumerate(self.macro_ranks):
                a, b = self.offsets[i], self.offsets[i + 1]
                if b > a:
                    data.Send(self.answers[a:b], dest=r, tag=self.tags[2])
        row = self._row   # window, asked, distinct, micro, cache, surrogate, fallback, retries,
        #                   max_std, farm seconds, micro seconds per farm rank (hmm_stats.columns)
        if self.size > 1:
            mine = np.array([self.micro_seconds, self.retries - retries])
            ranks = np.empty((self.size, 2)) if self.root else None
            self.comm.Gather(mine, ranks, root=0)
            if self.root:
                row[10:], row[7] = ranks[:, 0], ranks[:, 1].sum()
        else:
            row[10], row[7] = self.micro_seconds, self.retries - retries
        if self.root:
            row[0], row[1], row[2:7], row[8] = w, self.n_points, stats[:5], stats[5]
            row[9] = time.perf_counter() - t0
            # One small row per window to the coordinator; it precedes the window's report.
            self.ctx.world.Send(row, dest=0, tag=TAG_PATTERN0 + self.index)

    # --- checkpoints ------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = {"windows_done": np.array([self.windows_done], dtype=np.int64),
               "task_seconds": np.array([self.task_seconds])}
        if self.cache is not None:
            out.update({f"cache.{k}": v for k, v in self.cache.state().items()})
        if self.surrogate is not None:
            out.update({f"surrogate.{k}": v for k, v in self.surrogate.state().items()})
        if self.p.mode == "stateful":
            for i, inst in enumerate(self.pool):
                out.update({f"instance{i}.{k}": np.asarray(v) for k, v in inst.state().items()})
        if self.size > 1:
            # Checkpoints want the same keys on every rank of a group: empty where a rank holds none
            # (key names are tiny control data).
            keys = set().union(*allgather_json(self.comm, sorted(out)))
            out.update({k: np.zeros(0) for k in sorted(keys) if k not in out})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        part = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        self.windows_done = int(state["windows_done"][0])
        self.task_seconds = float(state["task_seconds"][0])
        if self.cache is not None:
            self.cache.restore(part("cache."))
        if self.surrogate is not None:
            self.surrogate.restore(part("surrogate."))
        if self.p.mode == "stateful":
            for i, inst in enumerate(self.pool):
                inst.restore(part(f"instance{i}."))

    def finalize(self) -> None:
        for inst in self.pool:
            inst.finalize()
        if self._win is not None:
            self._win.Free()
            self._win = None


def _caster(tp):
    """Query value (float) -> the setting's type."""
    if tp is int:
        return lambda v: int(round(float(v)))
    if tp is bool:
        return lambda v: bool(v != 0)
    return float
