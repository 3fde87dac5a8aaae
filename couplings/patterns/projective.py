"""Equation-free coarse projective integration (``patterns: [{kind: projective}]``).

Gear & Kevrekidis (SIAM J. Sci. Comput. 24, 2003); Kevrekidis et al., Commun. Math.
Sci. 1 (2003).  A micro model (any registered solver) advances a few *macro
observables* U without a macro equation.  Every coupling window is one projective
step of length Delta (the window):

1. **lift** U into a micro state (a :class:`StateLifting` or a small class named in
   the spec), then **heal**: ``heal_runs`` constrained runs of ``heal`` micro time
   each, after which the observables are reset to U (the fast variables relax onto
   the slow manifold while U stays put; Gear, Kaper, Kevrekidis & Zagaris 2005);
2. **burst**: ``burst / micro_dt`` micro steps, **restricting** U after each;
3. **estimate** dU/dt: the least-squares slope of U over the last ``fit`` of the burst;
4. **extrapolate** from the fit's centre to the window end: forward Euler
   (``scheme: euler``), Heun's predictor-corrector with a second lift-heal-burst at
   the predicted state (``heun``), or Adams-Bashforth of order 3 over the last three
   derivative estimates (``adams``: one burst per step; Heun for the first two), and
   lift the result.

When ``burst`` equals the window nothing is extrapolated and no lift happens after
the first: the micro model runs throughout (the reference the projective run is
compared with, at the same restriction).

Spec (validated before launch by :func:`check`)::

    time: {start: 0.0, end: 5.0, window: 0.5}       # the projective step Delta
    solvers:
      mm: {kind: "solvers.examples.michaelis_menten:MichaelisMenten", params: {epsilon: 0.01}}
                                                      # its dt is the window (default): one step each
    patterns:
      - kind: projective
        solver: mm
        micro_dt: 5.0e-4           # the micro model's own step
        burst: 0.02                # micro time per derivative estimate (whole micro steps)
        fit: 0.01                  # tail of the burst the slope is fitted over (default: all)
        heal: 0.02                 # micro time per constrained run after a lift
        heal_runs: 1
        heal_order: 0              # 0 | 1 (project the other state arrays back over the run)
        scheme: adams              # euler | heun | adams
        observables: [x]           # the macro state: micro outputs (lift: state)
        lift: state                # state | "package.module:Class"
        lift_options: {}           # numbers handed to the lifting class
        tolerance: 1.0e-9          # lifting must reproduce U to this (relative, max norm)

The solver entry writes its results as usual: its own results at the lifted state
after each step, plus ``macro_<observable>`` (U) and ``micro_steps`` (cumulative
micro steps, at every point).  A lifting class has
``__init__(solver, observables, options)``, ``restrict() -> {name: array}``,
``lift({name: array}, t)`` (``t``: the time of a new macro state, None for the
reset after a constrained run) and optionally ``initial() -> {name: array} | None``
(a macro initial state to lift at the start), ``remember(t, state)`` (the micro
state at each burst end), ``work_per_step()`` (micro work per step, e.g. vehicle
updates), class attributes ``observables`` (names it restricts; None: any) and
``max_ranks``, and a classmethod ``check(params, options) -> [(key, what, fix)]``.
Each projective step sends one row (window, micro steps, micro work, largest lift
error) to the coordinator: ``/projective/<solver>/`` in results.h5 and a summary
line with the ratio to running the micro model throughout.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass

import numpy as np

from msorch.solver import Solver
from msorch.spec import did_you_mean, setting

__all__ = ["ProjectiveSpec", "ProjectiveError", "ProjectiveSolver", "StateLifting", "AgentDensityLifting",
           "check", "drives", "describe", "roles"]


class ProjectiveError(RuntimeError):
    """The projective step cannot go on (a lifting that does not reproduce the macro state, ...)."""


@dataclass(frozen=True)
class ProjectiveSpec:
    """Coarse projective integration of a micro solver's observables, one projective step per window."""

    kind: str = setting(doc="pattern kind", example="projective")
    solver: str = setting(doc="the micro model (name under solvers:); its dt is the window", example="mm")
    micro_dt: float = setting(doc="the micro model's step", units="s", gt=0, example=5.0e-4)
    burst: float = setting(doc="micro time per derivative estimate, after healing (whole micro steps; "
                           "equal to the window: no extrapolation)", units="s", gt=0, example=0.005)
    observables: tuple[str, ...] = setting(doc="the macro state: names the lifting restricts and lifts",
                                           example=["x"])
    fit: float | None = setting(None, "tail of the burst over which dU/dt is fitted (default: the whole "
                                "burst)", units="s", gt=0)
    heal: float = setting(0.0, "micro time of each constrained run after a lift", units="s", ge=0)
    heal_runs: int = setting(0, "constrained runs after a lift (observables reset to U after each)", ge=0)
    heal_order: int = setting(0, "constrained runs of order 0 (the other state arrays kept as the run left "
                              "them) or 1 (projected back over the run with their final slope: "
                              "O(heal^2) instead of O(heal) off the slow manifold; lift: state only)",
                              choices=(0, 1))
    scheme: str = setting("adams", "projective forward Euler (1st order), Heun's predictor-corrector (2nd "
                          "order, two bursts per step) or Adams-Bashforth of order 3 on the derivative "
                          "history (one burst per step; Heun for the first two)",
                          choices=("euler", "heun", "adams"))
    lift: str = setting("state", "state: the observables are arrays of the micro solver's state() and "
                        "outputs; or 'package.module:Class'")
    lift_options: dict[str, float] = dataclasses.field(default_factory=dict, metadata={
        "doc": "numbers handed to the lifting class", "units": ""})
    tolerance: float = setting(1e-9, "largest relative (max-norm) difference between U and the "
                               "restriction of its lift", gt=0)


# ----------------------------------------------------------------------------- checks (front end)
def drives(raw: dict) -> tuple[str, ...]:
    """None: the micro solver is stepped by windows (one projective step per window)."""
    return ()


def describe(p: ProjectiveSpec) -> str:
    steps = round(p.burst / p.micro_dt)
    heal = f", heal {p.heal_runs} x {p.heal:g} s" if p.heal_runs else ""
    return (f"pattern projective: {p.solver} ({', '.join(p.observables)}): {p.scheme}, bursts of {steps} micro "
            f"steps of {p.micro_dt:g} s{heal}, lift {p.lift}")


def _whole(span: float, dt: float) -> bool:
    n = span / dt
    return abs(n - round(n)) <= 1e-9 * max(n, 1.0)


def lifting_class(name: str):
    if name == "state":
        return StateLifting
    from couplings.patterns import load
    return load(name)


def check(p: ProjectiveSpec, ctx) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    add = lambda key, what, fix: out.append((key, what, fix))
    if p.solver not in ctx.solvers:
        add("solver", f"no solver named {p.solver!r}", did_you_mean(p.solver, ctx.solvers, "solvers"))
        return out
    s = ctx.solvers[p.solver]
    window = ctx.time.window if ctx.time is not None else None
    if window is not None and s["dt"] is not None and abs(s["dt"] / window - 1) > 1e-9:
        add("solver", f"solver {p.solver!r} has dt = {s['dt']:g} s, but a projective step is one window "
            f"({window:g} s)", f"remove solvers.{p.solver}.dt (it defaults to the window); the micro step is "
            f"micro_dt")
    for key, span in (("burst", p.burst), ("heal", p.heal), ("fit", p.fit)):
        if span and not _whole(span, p.micro_dt):
            n = max(1, round(span / p.micro_dt))
            add(key, f"{key} {span:g} s is not a whole number of micro steps micro_dt = {p.micro_dt:g} s",
                f"use {key}: {n * p.micro_dt:.12g} ({n} steps)")
    if window is not None and p.burst > window * (1 + 1e-12):
        add("burst", f"the burst ({p.burst:g} s) is longer than the projective step (the window, {window:g} s)",
            f"use burst <= {window:g}, or a longer time.window")
    if p.fit is not None and p.fit > p.burst * (1 + 1e-12):
        add("fit", f"fit ({p.fit:g} s) is longer than the burst ({p.burst:g} s)", "use fit <= burst")
    if round((p.fit or p.burst) / p.micro_dt) < 2:
        add("fit" if p.fit else "burst", "the slope needs at least 2 micro steps", "lengthen it")
    if p.heal_runs and not p.heal:
        add("heal", "heal_runs > 0 with heal: 0 heals nothing", "set heal to a micro time, or heal_runs: 0")
    if not p.observables:
        add("observables", "no macro observable", "list at least one, e.g. observables: [x]")
    try:
        cls = lifting_class(p.lift)
    except Exception as exc:   # noqa: BLE001 - any import problem is the user's to fix
        add("lift", f"cannot load lifting class {p.lift!r}: {exc}",
            "use lift: state, or 'package.module:Class' importable from where msorch runs")
        return out
    known = getattr(cls, "observables", None)
    if known is None and p.lift == "state" and s["outputs"] is not None:
        known = s["outputs"]
    if known is not None:
        for i, name in enumerate(p.observables):
            if name not in known:
                add(f"observables[{i}]", f"{p.lift!r} lifting of {p.solver!r} ({s['kind']}) cannot restrict "
                    f"{name!r}", did_you_mean(name, known, "observables"))
    max_ranks = getattr(cls, "max_ranks", None)
    if max_ranks is not None and s["ranks"] is not None and s["ranks"] > max_ranks:
        add("lift", f"lifting {p.lift!r} works on at most {max_ranks} rank(s); solver {p.solver!r} has "
            f"{s['ranks']}", f"use solvers.{p.solver}.ranks: {max_ranks}")
    if hasattr(cls, "check") and s["params"] is not None:
        for key, what, fix in cls.check(s["params"], dict(p.lift_options)):
            add(f"lift_options.{key}", what, fix)
    return out


# ----------------------------------------------------------------------------- liftings
class StateLifting:
    """Observables that are both outputs and state() arrays of the micro solver (e.g. x of an ODE).

    Restriction: ``get(name)``.  Lifting a new macro state: the observables'
    arrays set to U, the other floating-point arrays (the fast variables) from the
    micro states at the ends of the last two bursts, extrapolated linearly to the
    lift time (both ends are healed states, so the slope is the slow manifold's);
    the constrained-run reset only sets the observables.
    """

    observables = None
    max_ranks = None

    def __init__(self, solver, observables, options):
        self.solver, self.names = solver, tuple(observables)
        self.template = None
        keys = set(solver.state())
        missing = [n for n in self.names if n not in keys]
        if missing:
            raise ProjectiveError(f"lift: state needs the observables {missing} among the arrays of "
                                  f"{type(solver).__name__}.state() (it has {sorted(keys)}). Fix: name state "
                                  "arrays as observables, or write a lifting class (lift: 'module:Class')")

    def restrict(self) -> dict[str, np.ndarray]:
        return {n: np.array(self.solver.get(n), dtype=np.float64) for n in self.names}

    def remember(self, t_b: float, state_b: dict) -> None:
        """The micro state at the end of a burst (the last two are kept as the lifting's template)."""
        last = self.template[-1:] if self.template else []
        self.template = last + [(t_b, {k: np.array(v) for k, v in state_b.items()})]

    def state(self) -> dict[str, np.ndarray]:
        """The template, for checkpoints."""
        out = {"t": np.array([t for t, _ in self.template or []], dtype=np.float64)}
        for j, (_, st) in enumerate(self.template or []):
            out.update({f"{j}.{k}": v for k, v in st.items()})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.template = [(float(t), {k.partition(".")[2]: np.array(v) for k, v in state.items()
                                     if k.startswith(f"{j}.")}) for j, t in enumerate(state["t"])] or None

    def lift(self, macro: dict[str, np.ndarray], t: float | None = None) -> None:
        """Observables := U. With a time ``t`` (a lift after extrapolation) the other arrays come
        from the last burst extrapolated to t along their own slope (so the fast variables start
        near the slow manifold); without, they stay as they are (constrained runs)."""
        state = self.solver.state()
        if t is not None and self.template:
            # the unobserved arrays at t, linearly from the ends of the last two bursts (healed
            # states, spaced by a projective step: slow-manifold slopes, no fast transient in them)
            (ta, a), (tb, b) = self.template[0], self.template[-1]
            for k, v in b.items():
                if k in self.names or not np.issubdtype(v.dtype, np.floating):
                    continue
                state[k] = v if tb == ta else v + (t - tb) * (v - a[k]) / (tb - ta)
        for n in self.names:
            if np.shape(state[n]) != np.shape(macro[n]):
                raise ProjectiveError(f"lift: state array {n!r} has shape {np.shape(state[n])}, the macro state "
                                      f"{np.shape(macro[n])}")
            state[n] = np.array(macro[n], dtype=np.asarray(state[n]).dtype)
        self.solver.restore(state)

    def initial(self):
        return None

    def project_back(self, before: dict, after: dict, n: int) -> None:
        """The non-observable state arrays extrapolated back n steps with their last step's slope.

        After a run of n steps from a lift the fast variables sit on the slow manifold of the
        drifted observables; projecting them back to the run's start puts them (to second order)
        on the slow manifold of U, where the lift resets the observables.
        """
        state = {}
        for k, v in after.items():
            v = np.asarray(v)
            if k in self.names or not np.issubdtype(v.dtype, np.floating):
                state[k] = v
            else:
                state[k] = v - n * (v - np.asarray(before[k]))
        self.solver.restore(state)


class AgentDensityLifting:
    """Vehicle density of a one-rank ``traffic.idm`` ring as the macro state.

    Restriction (``density`` [veh/m] per bin): the cumulative vehicle count N(x),
    piecewise linear between vehicles (N(x_i) = i), differenced over each bin:
    continuous in the positions, so its time derivative is not a sum of jumps,
    and summing to the number of vehicles exactly.
    Lifting: vehicles placed where the cumulative of the target density takes
    whole values (same count, same order and driver classes), each at the IDM
    equilibrium speed of its gap; a few fixed-point corrections of the target
    make the restriction of the lift equal U.  ``lift_options``:
    ``bump_amplitude`` (relative), ``bump_center`` [m], ``bump_width`` [m]:
    the initial macro state, the uniform density times (1 + A (g - mean g))
    with g a Gaussian (A = 0: start from the solver's own vehicles).
    """

    observables = ("density",)
    max_ranks = 1
    OPTIONS = ("bump_amplitude", "bump_center", "bump_width")

    @classmethod
    def check(cls, params, options):
        out = [(k, f"unknown option {k!r}", did_you_mean(k, cls.OPTIONS, "options"))
               for k in options if k not in cls.OPTIONS]
        if getattr(params, "road", "ring") != "ring":
            out.append(("road", "the density lifting is for a ring road", "use road: ring"))
        if options.get("bump_width", 1.0) <= 0:
            out.append(("bump_width", "must be > 0", "use a width in metres"))
        return out

    def __init__(self, solver, observables, options):
        from solvers.traffic import idm_kernel as K
        from solvers.traffic.fundamental import idm_equilibrium_table
        self.solver, self.K, self.options = solver, K, dict(options)
        self.edges = np.asarray(solver.seg.edges, dtype=np.float64)
        self.L = float(self.edges[-1] - self.edges[0])
        p = solver.params
        self.s_table, self.v_table = idm_equilibrium_table(p.v0, p.T, p.s0, p.delta, 2000)

    def _cumulative(self, x_sorted: np.ndarray, at: np.ndarray) -> np.ndarray:
        """N(at): piecewise linear through (x_i, i), periodic continuation on the ring."""
        n, L = len(x_sorted), self.L
        xs = np.concatenate([x_sorted[-1:] - L, x_sorted, x_sorted[:1] + L])
        ns = np.arange(-1, n + 1, dtype=np.float64)
        return np.interp(at, xs, ns)

    def work_per_step(self) -> float:
        """Vehicle updates per micro step."""
        return float(self.solver.state()["veh"].reshape(self.K.NCOL, -1).shape[1])

    def restrict(self) -> dict[str, np.ndarray]:
        x = np.sort(self.solver.state()["veh"][self.K.X])
        return {"density": np.diff(self._cumulative(x, self.edges)) / np.diff(self.edges)}

    def _place(self, rho: np.ndarray, n: int) -> np.ndarray:
        m = np.concatenate([[0.0], np.cumsum(rho * np.diff(self.edges))])   # cumulative at the edges
        return np.interp(np.arange(n) + 0.5, m, self.edges)

    def lift(self, macro: dict[str, np.ndarray], t: float | None = None) -> None:
        K = self.K
        state = self.solver.state()
        veh = np.array(state["veh"], dtype=np.float64).reshape(K.NCOL, -1)
        n = veh.shape[1]
        rho = np.asarray(macro["density"], dtype=np.float64)
        total = float(np.sum(rho * np.diff(self.edges)))
        if np.any(rho <= 0) or abs(total - n) > 1e-6 * n:
            raise ProjectiveError(f"the density profile holds {total:.9g} vehicles (min {rho.min():.3g} veh/m) but "
                                  f"the ring has {n}: a lift must keep the vehicle count and positive densities")
        order = np.argsort(veh[K.X], kind="stable")
        target = rho.copy()
        for _ in range(30):            # fixed point: restrict(lift(target)) = rho
            x = self._place(target, n)
            got = np.diff(self._cumulative(x, self.edges)) / np.diff(self.edges)
            err = rho - got
            if np.max(np.abs(err)) <= 1e-12 * np.max(rho):
                break
            target = np.maximum(target + err, 1e-9 * np.max(rho))
        gap = np.diff(np.concatenate([x, x[:1] + self.L])) - veh[K.LEN, order]
        veh[K.X, order] = x
        if t is not None:    # a new macro state: equilibrium speeds; a constrained-run reset keeps them
            veh[K.V, order] = np.interp(gap, self.s_table, self.v_table, left=0.0)
        state["veh"] = veh
        self.solver.restore(state)

    def initial(self):
        A = float(self.options.get("bump_amplitude", 0.0))
        if not A:
            return None
        n = self.solver.state()["veh"].reshape(self.K.NCOL, -1).shape[1]
        mid = 0.5 * (self.edges[1:] + self.edges[:-1])
        c, w = self.options.get("bump_center", self.L / 2), self.options.get("bump_width", self.L / 10)
        d = (mid - c + self.L / 2) % self.L - self.L / 2
        g = np.exp(-0.5 * (d / w) ** 2)
        return {"density": n / self.L * (1 + A * (g - g.mean()))}


# ----------------------------------------------------------------------------- run time
def roles(ctx, name: str, index: int, p):
    from couplings.patterns import Roles
    if name == p.solver:
        return Roles(solver=lambda worker: ProjectiveSolver(worker.group, worker.spec, p, ctx, index))
    return Roles()


# --- per-window statistics (couplings.patterns stats protocol): /projective/<solver>/ in results.h5
COLUMNS = ("window", "micro_steps", "micro_work", "lift_error")


def columns(p, job) -> tuple[str, ...]:
    return COLUMNS


def datasets(rows: np.ndarray, p, job) -> dict[str, np.ndarray]:
    """window, micro_steps, micro_work (steps x the lifting's work per step, e.g. vehicle updates),
    lift_error (largest relative max-norm lift error) per projective step, (n_steps,) each."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    return {name: rows[:, j].astype(np.int64) if j < 2 else rows[:, j] for j, name in enumerate(COLUMNS)}


def group(p) -> str:
    return f"projective/{p.solver}"


def summary(rows: np.ndarray, p, job) -> list[str]:
    d = datasets(rows, p, job)
    steps, work = int(d["micro_steps"].sum()), float(d["micro_work"].sum())
    throughout = round((job.time.end - job.time.start) / p.micro_dt)
    per_step = work / steps if steps else 0.0
    ratio = throughout * per_step / work if work else float("inf")
    return [f"projective {p.solver}: {steps} micro steps ({work:.6g} micro work) in {len(d['window'])} projective "
            f"steps; the micro model throughout: {throughout} steps ({throughout * per_step:.6g}), "
            f"{ratio:.3g}x more; largest lift error {np.max(d['lift_error'], initial=0.0):.2e}"]


def _adams_weights(nodes, a: float, b: float) -> np.ndarray:
    """w_j = integral over [a, b] of the Lagrange polynomials through ``nodes`` (Adams-Bashforth)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    w = np.empty(len(nodes))
    for j in range(len(nodes)):
        others = np.delete(nodes, j)
        poly = np.poly1d(others, r=True) / np.prod(nodes[j] - others)
        prim = poly.integ()
        w[j] = prim(b) - prim(a)
    return w


def _slope(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values (k, ...) over times (k,)."""
    tc = times - times.mean()
    return np.tensordot(tc, values - values.mean(axis=0), axes=(0, 0)) / np.sum(tc ** 2)


class ProjectiveSolver(Solver):
    """The micro solver wrapped so that one ``advance`` is one projective step (see module docstring).

    Fields, ``get``/``put`` and results are the micro solver's; results add
    ``macro_<name>`` (U) and ``micro_steps``.
    """

    def __init__(self, comm, spec, p: ProjectiveSpec, ctx=None, index: int = 0):
        super().__init__(comm, spec.params)
        self.p, self.ctx, self.index = p, ctx, index
        self.micro = spec.cls(comm, spec.params)

    # --- the micro model's face ------------------------------------------------
    def initialize(self, t0):
        p = self.p
        self.micro.initialize(t0)
        self.lifting = lifting_class(p.lift)(self.micro, p.observables, dict(p.lift_options))
        self.steps = 0
        self.history: list = []       # (t_c, dU/dt) of the last derivative estimates (adams)
        self.t0 = t0
        self.lift_error = 0.0
        self.n_burst = round(p.burst / p.micro_dt)
        self.n_fit = round((p.fit or p.burst) / p.micro_dt)
        self.n_heal = round(p.heal / p.micro_dt)
        initial = self.lifting.initial()
        if initial is not None:
            self._lift(initial, t0, extrapolated=True)
            self._heal(t0)
        self.U = self.lifting.restrict()

    def fields(self):
        return self.micro.fields()

    def get(self, name):
        return self.micro.get(name)

    def put(self, name, data):
        self.micro.put(name, data)

    def results(self):
        out = dict(self.micro.results())
        n = len(self.micro.result_points())
        for k, v in self.U.items():
            if len(v) == n:
                out[f"macro_{k}"] = v.copy()
        out["micro_steps"] = np.full(n, float(self.steps))
        return out

    def result_points(self):
        return self.micro.result_points()

    def state(self):
        st = {f"micro.{k}": v for k, v in self.micro.state().items()}
        st.update({f"macro.{k}": v.copy() for k, v in self.U.items()})
        st["projective.steps"] = np.array([self.steps], dtype=np.int64)
        if hasattr(self.lifting, "state"):
            st.update({f"lifting.{k}": v for k, v in self.lifting.state().items()})
        st["projective.history_t"] = np.array([h[0] for h in self.history], dtype=np.float64)
        for k in self.U:
            st[f"projective.history.{k}"] = np.array([h[1][k] for h in self.history], dtype=np.float64)
        return st

    def restore(self, state):
        self.micro.restore({k[6:]: v for k, v in state.items() if k.startswith("micro.")})
        self.U = {k[6:]: np.array(v) for k, v in state.items() if k.startswith("macro.")}
        self.steps = int(state["projective.steps"][0])
        if hasattr(self.lifting, "restore"):
            self.lifting.restore({k[8:]: v for k, v in state.items() if k.startswith("lifting.")})
        ts = state["projective.history_t"]
        self.history = [(float(tj), {k: np.array(state[f"projective.history.{k}"][j]) for k in self.U})
                        for j, tj in enumerate(ts)]

    def finalize(self):
        self.micro.finalize()

    # --- the projective step -----------------------------------------------------
    def _micro_run(self, t: float, n: int, record: int = 0):
        """n micro steps from t; returns (times, U samples) of the last ``record`` steps.

        When recording, the lifting's ``remember`` (if any) gets the final micro state."""
        dt = self.p.micro_dt
        times, samples = [], []
        for i in range(n):
            self.micro.advance(t + i * dt, dt)
            if i >= n - record:
                times.append(t + (i + 1) * dt)
                samples.append(self.lifting.restrict())
        if record and hasattr(self.lifting, "remember"):
            self.lifting.remember(t + n * dt, self.micro.state())
        self.steps += n
        return np.array(times), samples

    def _lift(self, U: dict, t: float, extrapolated: bool = False) -> None:
        self.lifting.lift(U, t if extrapolated else None)
        got = self.lifting.restrict()
        for k, target in U.items():
            scale = max(float(np.max(np.abs(target))), 1e-300)
            err = float(np.max(np.abs(got[k] - target))) / scale if np.size(target) else 0.0
            err = self._max(err)
            self.lift_error = max(self.lift_error, err)
            if not err <= self.p.tolerance:
                raise ProjectiveError(
                    f"projective {self.p.solver!r} at t = {t:g}: lifting {self.p.lift!r} reproduces the macro "
                    f"state {k!r} only to {err:.3g} (relative, max norm; tolerance {self.p.tolerance:g}). "
                    "Fix: a lifting that can set this state exactly, or a looser tolerance")

    def _max(self, v: float) -> float:
        from mpi4py import MPI
        return self.comm.allreduce(v, op=MPI.MAX) if self.comm.Get_size() > 1 else v

    def _heal(self, t: float) -> None:
        """Constrained runs (Gear, Kaper, Kevrekidis & Zagaris, SIAM J. Appl. Dyn. Syst. 4, 2005)."""
        p = self.p
        if not p.heal_runs:
            return
        U = {k: v.copy() for k, v in self.lifting.restrict().items()}
        project = p.heal_order == 1 and hasattr(self.lifting, "project_back")
        for _ in range(p.heal_runs):
            if project:
                self._micro_run(t, self.n_heal - 1)
                before = self.micro.state()
                self._micro_run(t, 1)
                self.lifting.project_back(before, self.micro.state(), self.n_heal)
            else:
                self._micro_run(t, self.n_heal)
            self._lift(U, t)

    def advance(self, t, dt):
        before, self.lift_error = self.steps, 0.0
        self._step(t, dt)
        if self.ctx is not None and self.comm.Get_rank() == 0:
            from msorch.messages import TAG_PATTERN0
            work = getattr(self.lifting, "work_per_step", lambda: 1.0)()
            row = np.array([round((t - self.t0) / dt), self.steps - before, (self.steps - before) * work,
                            self.lift_error], dtype=np.float64)
            self.ctx.world.Send(row, dest=0, tag=TAG_PATTERN0 + self.index)

    def _evaluate(self, t: float):
        """Heal, burst from t; returns (t_c, U_c, dU/dt): the least-squares line through the
        restrictions of the last ``fit`` of the burst, at its centre time t_c."""
        self._heal(t)
        times, samples = self._micro_run(t, self.n_burst, record=self.n_fit)
        tc = float(times.mean())
        Uc = {k: np.mean([s_[k] for s_ in samples], axis=0) for k in samples[-1]}
        slope = {k: _slope(times, np.array([s_[k] for s_ in samples])) for k in samples[-1]}
        return tc, Uc, slope

    def _step(self, t, dt):
        p = self.p
        end = t + dt
        if dt - p.burst <= 1e-12 * dt:          # burst = window: the micro model runs throughout
            self._micro_run(t, self.n_burst)
            self.U = self.lifting.restrict()
            return
        tc, Uc, f1 = self._evaluate(t)
        self.history = (self.history + [(tc, f1)])[-3:]
        if p.scheme == "euler":
            new = {k: Uc[k] + (end - tc) * f1[k] for k in Uc}
        elif p.scheme == "adams" and len(self.history) == 3:
            w = _adams_weights([h[0] for h in self.history], tc, end)
            new = {k: Uc[k] + sum(wj * h[1][k] for wj, h in zip(w, self.history)) for k in Uc}
        else:   # Heun: trapezoid between t_c and the window end, F there from a second burst
            self._lift({k: Uc[k] + (end - tc) * f1[k] for k in Uc}, end, extrapolated=True)
            tc2, _, f2 = self._evaluate(end)
            a = (end - tc) / (tc2 - tc)
            new = {k: Uc[k] + 0.5 * (end - tc) * (2 * f1[k] + a * (f2[k] - f1[k])) for k in Uc}
        for k, v in new.items():
            if not np.all(np.isfinite(v)):
                raise ProjectiveError(f"projective {p.solver!r}: the extrapolated {k!r} is not finite at "
                                      f"t = {end:g}")
        self._lift(new, end, extrapolated=True)
        self.U = new


def _kind():
    from . import PatternKind
    return {"projective": PatternKind(ProjectiveSpec, check, drives, describe, runtime="couplings.patterns.projective:roles", stats="couplings.patterns.projective")}


PATTERN_KINDS = _kind()
