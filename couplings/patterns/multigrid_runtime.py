"""Multigrid cycles across solver groups at run time (spec: :mod:`couplings.patterns.multigrid`).

Roles
-----
* **Finest level** (``levels[0]``): an ordinary stepped solver, wrapped by
  :class:`FinestLevel`.  Its linear solver is set to PETSc's ``richardson``
  (or ``cg``, ``outer: cg``) with ``pc_type python``: the preconditioner
  :class:`CyclePC` applies one cycle across the groups, so a Richardson
  iteration with step 1 *is* a multigrid iteration ``x += B (b - A x)``, and
  PETSc measures ``||b - A x||`` after every cycle (the per-cycle residual
  history, taken by a KSP monitor).
* **Coarse levels** (``levels[1:]``): run by the pattern (:class:`CoarseLevel`
  plus :class:`ServeHook`).  In every window each serves *visits* from the next
  finer level until that level says the window is over.

One visit of level k+1 by level k (``code`` V, W or F)
------------------------------------------------------
1. level k's root sends a header ``[code, dt]`` to level k+1's root, which
   broadcasts it in its group;
2. every rank of level k restricts its own residual rows (``P^T r``, partial
   sums on the coarse rows they touch, :class:`couplings.grid_transfer.GridTransfer`,
   bilinear or P1 by the pattern's ``transfer``)
   and sends each coarse rank the part it owns (M -> N by node number);
   the coarse ranks add the parts in fine-rank order (bitwise reproducible)
   and zero the constrained rows;
3. level k+1 approximates ``A_{k+1} e = r_{k+1}`` from ``e = 0``: V one
   cycle, W two W cycles, F an F then a V cycle; the coarsest level solves
   exactly.  A cycle at level k+1: ``nu1`` smoothing steps, residual, visit of
   k+2 (recursively), correction, ``nu2`` smoothing steps;
4. level k+1 sends each fine rank the coarse values on the rows it touches;
   level k prolongs (``P e``) and corrects.

Data moves with buffer calls (``Isend``/``Irecv``/``Ibcast``) over one
intercommunicator per pair of neighbouring levels.  Waiting ranks poll with
an exponentially growing sleep (up to 1 ms) instead of spinning in MPI: on an
oversubscribed node the levels that are not working then leave the cores to
the one that is.

A window ends, for the coarse levels, when the finest level has run its
``window/dt`` steps: its root then sends ``END``, which each level passes on.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from couplings.patterns import Roles
from msorch.messages import TAG_PATTERN0
from msorch.solver import NoParams, Solver

END, V, W, F = 0, 1, 2, 3
_CODES = {"V": V, "W": W, "F": F}
_HEADER, _RESTRICT, _PROLONG = 1, 2, 3
_TAG_INTERCOMM0 = 860      # on ctx.data: 860 + 8 * pattern index + link index (creating intercommunicators)
_OPTION_KEY = "msorch_multigrid"   # KSP option naming the pattern whose CyclePC this is

# Pattern index -> the finest level's LevelNode on this process (one group per process, so unique);
# CyclePC, created by PETSc from the options, finds its node here.
_NODES: dict[str, "LevelNode"] = {}


class MultigridError(RuntimeError):
    """A cycle cannot go on; the message names the level and what to change."""


def roles(ctx, name: str, index: int, p) -> Roles:
    if name not in p.levels:
        return Roles()
    k = p.levels.index(name)
    if k == 0:
        return Roles(solver=lambda worker: FinestLevel(worker, index, p))
    return Roles(solver=lambda worker: CoarseLevel(worker, index, p, k), hooks=[ServeHook()])


def wait(requests: list, spin: int = 100) -> None:
    """Complete ``requests``, sleeping (20 us doubling to 1 ms) after ``spin`` unsuccessful tests."""
    from mpi4py import MPI
    if not requests:
        return
    tries, sleep = 0, 0.0
    while not MPI.Request.Testall(requests):
        tries += 1
        if tries > spin:
            sleep = min(1e-3, sleep * 2 or 2e-5)
            time.sleep(sleep)


def _box(job, name: str):
    from couplings.grid_transfer import Box
    s = job.solvers[name]
    return Box(*s.cls.level_box(s.params))


class LevelNode:
    """One level's part of the cycles on one rank: its solver, links to the neighbouring levels.

    Collective over the level's group (and, for the links, the neighbours' groups) when built.
    """

    def __init__(self, worker, index: int, p, k: int, solver):
        from couplings.grid_transfer import Box, GridTransfer, hull, overlaps
        ctx = worker.ctx
        self.worker, self.p, self.index, self.k, self.solver = worker, p, index, k, solver
        self.group = worker.group
        self.rank, self.size = self.group.Get_rank(), self.group.Get_size()
        self.last = k == len(p.levels) - 1
        self.name = p.levels[k]
        g = solver.level_grid()
        self.lo, self.hi = g.lo, g.hi
        n = self.hi - self.lo
        self.box = Box(g.x0, g.x1, g.y0, g.y1, g.nx, g.ny)
        self.r = np.zeros(n)
        self.e = np.zeros(n)
        self.dt = None
        self.visits = 0
        self.header = np.zeros(2)
        self.code = _CODES[p.cycle]
        groups = ctx.layout.groups
        self.up = self.down = None
        # Links in level order (k-1, k) before (k, k+1): every pair is made by a chain, no cycle.
        if k > 0:
            self.up = self.group.Create_intercomm(0, ctx.data, groups[p.levels[k - 1]][0],
                                                  _TAG_INTERCOMM0 + 8 * index + k - 1)
            fine = _box(ctx.job, p.levels[k - 1])
            m = self.up.Get_remote_size()
            hulls = [hull(fine, self.box, *fine.ownership(m, q)) for q in range(m)]
            # (fine rank, start, stop) of the parts this rank receives (restriction) and sends back.
            self.up_parts = [(q, s, e) for q, _, s, e in overlaps(hulls, [(self.lo, self.hi)])]
            self.up_bufs = [np.empty(e - s) for _, s, e in self.up_parts]
            self.b = np.zeros(n)
            self.x = np.zeros(n)
            self.constrained = np.asarray(solver.level_constrained())
        if not self.last:
            self.down = self.group.Create_intercomm(0, ctx.data, groups[p.levels[k + 1]][0],
                                                    _TAG_INTERCOMM0 + 8 * index + k)
            coarse = _box(ctx.job, p.levels[k + 1])
            self.transfer = GridTransfer(self.box, coarse, self.lo, self.hi, p.transfer)
            c0, c1 = self.transfer.hull
            m = self.down.Get_remote_size()
            owned = [coarse.ownership(m, q) for q in range(m)]
            self.down_parts = [(q, s - c0, e - c0) for _, q, s, e in overlaps([(c0, c1)], owned)]
            self.e_hull = np.zeros(c1 - c0)
        self.smoother = dict(p.smoother)
        self.coarse_options = None
        if self.last:
            self.coarse_options = {"ksp_type": "preonly", "pc_type": "lu" if self.size == 1 else "redundant",
                                   **p.coarse}

    # --- one cycle at this level (x improved in place, b the right-hand side) -----------------
    def cycle(self, x: np.ndarray, b: np.ndarray, code: int) -> None:
        s = self.solver
        if self.last:
            s.level_solve(x, b)
            return
        s.level_smooth(x, b, self.p.nu1)
        s.level_residual(x, b, self.r)
        s.level_correct(x, self.visit(code, self.r))
        # CG needs a symmetric cycle: the post-smoother must then be the adjoint of the pre-smoother.
        s.level_smooth(x, b, self.p.nu2, self.p.outer == "cg")

    def program(self, x: np.ndarray, b: np.ndarray, code: int) -> None:
        """Approximate ``A x = b`` from x = 0 as a visit of type ``code`` asks."""
        x[:] = 0.0
        if self.last:
            self.solver.level_solve(x, b)
        elif code == V:
            self.cycle(x, b, V)
        elif code == W:
            self.cycle(x, b, W)
            self.cycle(x, b, W)
        else:   # F: an F cycle, then a V cycle on the same equation
            self.cycle(x, b, F)
            self.cycle(x, b, V)

    def visit(self, code: int, r: np.ndarray) -> np.ndarray:
        """Send the restricted residual to the next coarser level, return the prolonged correction."""
        self.worker.phase = f"multigrid: level {self.p.levels[self.k + 1]!r} computing a correction"
        down = self.down
        if self.rank == 0:
            down.Send(np.array([float(code), -1.0 if self.dt is None else self.dt]), dest=0, tag=_HEADER)
        part = self.transfer.restrict(r)
        requests = [down.Isend(part[s:e], dest=q, tag=_RESTRICT) for q, s, e in self.down_parts]
        requests += [down.Irecv(self.e_hull[s:e], source=q, tag=_PROLONG) for q, s, e in self.down_parts]
        wait(requests)
        self.worker.phase = "multigrid: cycle"
        return self.transfer.prolong(self.e_hull, out=self.e)

    def end_window(self) -> None:
        """Tell the coarser levels that this window's solves are over (root only sends)."""
        if self.down is not None and self.rank == 0:
            self.down.Send(np.array([float(END), 0.0]), dest=0, tag=_HEADER)

    # --- coarse levels: serve the finer level until it ends the window ---------------------------
    def serve_window(self) -> None:
        while True:
            self.worker.phase = f"multigrid: waiting for level {self.p.levels[self.k - 1]!r}"
            if self.rank == 0:
                wait([self.up.Irecv(self.header, source=0, tag=_HEADER)])
            if self.size > 1:
                wait([self.group.Ibcast(self.header, root=0)])
            code, dt = int(self.header[0]), float(self.header[1])
            if code == END:
                self.end_window()
                return
            self.worker.phase = "multigrid: cycle"
            self.dt = None if dt < 0 else dt
            self.solver.level_prepare(self.dt, self.smoother, self.coarse_options)
            wait([self.up.Irecv(buf, source=q, tag=_RESTRICT) for (q, _, _), buf in zip(self.up_parts, self.up_bufs)])
            b = self.b
            b[:] = 0.0
            for (_, s, e), buf in zip(self.up_parts, self.up_bufs):   # fine-rank order: same sums every run
                b[s - self.lo:e - self.lo] += buf
            b[self.constrained] = 0.0
            self.program(self.x, b, code)
            self.visits += 1
            wait([self.up.Isend(self.x[s - self.lo:e - self.lo], dest=q, tag=_PROLONG)
                  for q, s, e in self.up_parts])

    def release(self) -> None:
        self.solver.level_release()
        for comm in (self.up, self.down):
            if comm is not None:
                comm.Free()
        self.up = self.down = None


# ---------------------------------------------------------------------------------------------
# The finest level
# ---------------------------------------------------------------------------------------------


class CyclePC:
    """PETSc ``pc_type python`` context: one cycle across the levels from a zero initial guess."""

    def setFromOptions(self, pc):   # noqa: N802  (PETSc's name)
        from petsc4py import PETSc
        key = PETSc.Options(pc.getOptionsPrefix()).getString(_OPTION_KEY, "")
        self.node = _NODES[key]

    def setUp(self, pc):   # noqa: N802
        self.node.solver.level_prepare(None, self.node.smoother)

    def apply(self, pc, r, e):
        with r as rb, e as eb:
            eb[:] = 0.0
            self.node.cycle(eb, rb, self.node.code)


class FinestLevel(Solver):
    """The finest level's solver, its linear solves done by cycles (see module docstring).

    Fields, ``get``/``put``, results and state are the wrapped solver's.
    """

    def __init__(self, worker, index: int, p):
        spec = worker.spec
        job = worker.ctx.job
        options = {"ksp_type": p.outer, "pc_type": "python",
                   "pc_python_type": f"{__name__}.CyclePC", _OPTION_KEY: str(index),
                   "ksp_norm_type": "unpreconditioned", "ksp_rtol": repr(p.tolerance), "ksp_atol": "0",
                   "ksp_max_it": str(p.max_cycles)}
        params = dataclasses.replace(spec.params, petsc_options=options)
        super().__init__(worker.group, params)
        self.inner = spec.cls(worker.group, params)
        self.worker, self.p, self.index = worker, p, index
        self.field_info = spec.cls.field_info
        self.substeps = spec.substeps
        self.window_start_t = job.time.start
        self.window = job.time.window
        self.step_in_window = 0
        self.rows: list[tuple] = []
        self.history: list[tuple] = []
        self._monitored = None
        self._last_print = 0.0
        self.progress = job.progress
        self.n_windows = job.time.n_windows

    def initialize(self, t0):
        self.inner.initialize(t0)
        self.node = LevelNode(self.worker, self.index, self.p, 0, self.inner)
        _NODES[str(self.index)] = self.node

    def _monitor(self, ksp, its, rnorm):
        self.history.append((its, rnorm, time.perf_counter()))

    def advance(self, t, dt):
        inner, node = self.inner, self.node
        node.dt = dt
        inner.level_prepare(dt, node.smoother)
        if inner.ksp is not self._monitored:   # a new KSP (first step, new dt)
            inner.ksp.setMonitor(self._monitor)
            self._monitored = inner.ksp
        self.history = [(0, np.nan, time.perf_counter())]   # start mark; the monitor's cycle 0 replaces it
        try:
            inner.advance(t, dt)
        except RuntimeError as exc:
            if "linear solve" not in str(exc):
                raise
            res = ", ".join(f"{h[1]:.3g}" for h in self.history[1:][-6:])
            raise MultigridError(
                f"multigrid {self.p.name!r} at t = {t:g}: the residual did not fall below {self.p.tolerance:g} "
                f"||b|| in {self.p.max_cycles} {self.p.cycle}({self.p.nu1},{self.p.nu2}) cycles (last residuals "
                f"{res}). Fix: raise max_cycles, more smoothing (nu1, nu2), cycle: W, or outer: cg") from None
        w = int(math.floor((t - self.window_start_t) / self.window + 1e-6))
        self._record(w, t)
        self.step_in_window += 1
        if self.step_in_window == self.substeps:
            self.step_in_window = 0
            node.end_window()
            if self.worker.group.Get_rank() == 0 and self.rows:
                # One message per window to the coordinator, before the window's report.
                self.worker.ctx.world.Send(np.array(self.rows, dtype=np.float64), dest=0,
                                           tag=TAG_PATTERN0 + self.index)
            self.rows = []

    def _record(self, w: int, t: float) -> None:
        """Per-cycle rows (multigrid_stats.COLUMNS) and the progress line of this solve."""
        h = self.history[1:]
        if not h:
            return
        r0 = h[0][1] if h[0][1] > 0 else 1.0
        prev_r, prev_t = None, self.history[0][2]
        for its, r, stamp in h:
            factor = r / prev_r if prev_r else np.nan
            self.rows.append((w, self.step_in_window, its, r, r / r0, factor, stamp - prev_t))
            prev_r, prev_t = r, stamp
        if not (self.progress and self.worker.group.Get_rank() == 0):
            return
        now = time.perf_counter()
        last = w == self.n_windows - 1 and self.step_in_window == self.substeps - 1
        if now - self._last_print < 0.5 and h[-1][2] - self.history[0][2] < 0.005 and not last:
            return
        self._last_print = now
        p = self.p
        factors = " ".join(f"{row[5]:.3f}" for row in self.rows[-(len(h) - 1):]) if len(h) > 1 else "-"
        print(f"[msorch] multigrid {p.name}: window {w + 1} step {self.step_in_window + 1}: {len(h) - 1} "
              f"{p.cycle}({p.nu1},{p.nu2}) cycles, residual {h[0][1]:.3e} -> {h[-1][1]:.3e}; factor per cycle "
              f"{factors}", flush=True)

    # --- the wrapped solver's face ------------------------------------------------------------
    def fields(self):
        return self.inner.fields()

    def get(self, name):
        return self.inner.get(name)

    def put(self, name, data):
        self.inner.put(name, data)

    def results(self):
        return self.inner.results()

    def result_points(self):
        return self.inner.result_points()

    def result_topology(self):
        return self.inner.result_topology()

    def result_sets(self):
        return self.inner.result_sets()

    def state(self):
        return self.inner.state()

    def restore(self, state):
        self.step_in_window = 0
        self.inner.restore(state)

    def restore_all(self, states):
        self.step_in_window = 0
        self.inner.restore_all(states)

    def finalize(self):
        _NODES.pop(str(self.index), None)
        self.node.release()
        self.inner.finalize()


# ---------------------------------------------------------------------------------------------
# Coarse levels
# ---------------------------------------------------------------------------------------------


class CoarseLevel(Solver):
    """A coarse level's place in the ordinary worker: no fields, no steps; :class:`ServeHook` serves."""

    def __init__(self, worker, index: int, p, k: int):
        super().__init__(worker.group, NoParams())
        spec = worker.spec
        last = k == len(p.levels) - 1
        # The coarsest level's own KSP is the exact coarse solve; the others' is never used.
        size = worker.group.Get_size()
        options = ({"ksp_type": "preonly", "pc_type": "lu" if size == 1 else "redundant", **p.coarse} if last
                   else {"ksp_type": "preonly", "pc_type": "none"})
        self.inner = spec.cls(worker.group, dataclasses.replace(spec.params, petsc_options=options))
        self.worker, self.p, self.index, self.k = worker, p, index, k

    def initialize(self, t0):
        self.inner.initialize(t0)
        self.node = LevelNode(self.worker, self.index, self.p, self.k, self.inner)

    def fields(self):
        return {}

    def advance(self, t, dt):
        pass

    def results(self):
        return {}

    def state(self):
        return {"visits": np.array([self.node.visits], dtype=np.int64)}

    def restore(self, state):
        self.node.visits = int(state["visits"][0])

    def restore_all(self, states):
        self.restore(states[0])

    def finalize(self):
        self.node.release()
        self.inner.finalize()


class ServeHook:
    """Serves the finer level's visits during every window (coarse levels)."""

    def setup(self, worker) -> None:
        self.node = worker.solver.node

    def window_start(self, w: int) -> None:
        self.node.serve_window()
