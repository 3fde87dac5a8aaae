"""``kind: ldc``: local defect correction (Hackbusch 1984; FAC's two-level form, McCormick 1989).

One coarse global ``fem.heat`` (``defect_correction: true``) and one fine patch
``fem.heat`` (``coarse: {...}`` naming the coarse grid, sides ``patch``), each
on its own ranks.  The entry expands into the three couplings and the implicit
scheme that make the runtime's iteration loop the LDC iteration (one window
per time step; a stationary problem is one window):

    coarse solve (rows inside the patch: b = A_c w)  ->  coarse solution to the patch
    ->  patch solve with prolonged boundary values  ->  w = injected fine solution
    and the corrected rows' mask back to the coarse level  ->  until w stops changing

```yaml
patterns:
  - {kind: ldc, coarse: coarse, patch: patch, tolerance: 1.0e-7, max_iterations: 10}
```

The physics is in :mod:`solvers.fem.defect`, the grid transfers in
:mod:`couplings.patch_transfer`.  After every fine solve the patch's rank 0
sends one row (window, iteration, relative L2 change of the coarse solution
since the previous solve, its max-norm change [K], relative L2 change of w) to
the coordinator, which writes them to ``results.h5`` under ``/ldc/<patch>/``
and prints the first and last window's histories at the end.  The change of w
is also the scheme's convergence measure (progress line, ``/coupling/residuals``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msorch.spec import _setting as setting
from msorch.spec import did_you_mean

LDC_FIELDS = (("temperature", "coarse_temperature", "coarse"), ("patch_temperature", "patch_temperature", "patch"),
              ("patch_inside", "patch_inside", "patch"))


@dataclass(frozen=True)
class LdcSpec:
    """A coarse solver and a nested fine patch iterated by local defect correction."""

    kind: str = setting(doc="ldc", example="ldc")
    coarse: str = setting(doc="the coarse (global) solver: fem.heat with defect_correction: true",
                          example="coarse")
    patch: str = setting(doc="the fine patch solver: fem.heat with coarse: {...} and sides patch",
                         example="patch")
    tolerance: float = setting(1.0e-7, "stop when the composite solution in the patch (w at the coarse nodes) "
                               "changes by less than this, relative (L2)", gt=0)
    max_iterations: int = setting(10, "LDC iterations per window at most", ge=1)


def _solver_checks(p: LdcSpec, ctx) -> list[tuple[str, str, str]]:
    from solvers.fem.heat import HeatSolver
    out = []
    for key, name in (("coarse", p.coarse), ("patch", p.patch)):
        if name not in ctx.solvers:
            out.append((key, f"no solver named {name!r}", did_you_mean(name, ctx.solvers, "solvers")))
        elif not (isinstance(ctx.solvers[name].get("cls"), type) and issubclass(ctx.solvers[name]["cls"],
                                                                                HeatSolver)):
            out.append((key, f"solver {name!r} is {ctx.solvers[name].get('kind')!r}, but LDC levels are fem.heat",
                        "use kind: fem.heat"))
    if p.coarse == p.patch:
        out.append(("patch", "the patch and the coarse level are the same solver", "name two solvers"))
    return out


def check(p: LdcSpec, ctx) -> list[tuple[str, str, str]]:
    out = _solver_checks(p, ctx)
    if out:
        return out
    c, f = ctx.solvers[p.coarse], ctx.solvers[p.patch]
    cp, fp = c.get("params"), f.get("params")
    if cp is None or fp is None:
        return out   # already reported at the solver's params
    if not cp.defect_correction:
        out.append(("coarse", f"solver {p.coarse!r} does not take a defect correction",
                    f"set solvers.{p.coarse}.params.defect_correction: true"))
    if fp.coarse is None:
        out.append(("patch", f"solver {p.patch!r} is not a patch (no coarse grid)",
                    f"set solvers.{p.patch}.params.coarse: {{x0: {cp.x0}, x1: {cp.x1}, y0: {cp.y0}, y1: {cp.y1}, "
                    f"nx: {cp.nx}, ny: {cp.ny}}} and its sides to patch"))
        return out
    grid = fp.coarse
    for key in ("x0", "x1", "y0", "y1", "nx", "ny"):
        if getattr(grid, key) != getattr(cp, key):
            out.append(("patch", f"solver {p.patch!r} nests in a coarse grid with {key} = {getattr(grid, key)}, "
                        f"but the coarse solver {p.coarse!r} has {key} = {getattr(cp, key)}: the levels do not nest",
                        f"set solvers.{p.patch}.params.coarse.{key}: {getattr(cp, key)}"))
    if c.get("dt") is not None and f.get("dt") is not None and abs(c["dt"] - f["dt"]) > 1e-12 * c["dt"]:
        out.append(("patch", f"the levels step with different dt ({c['dt']:g} s and {f['dt']:g} s); LDC corrects "
                    "one time step at a time", f"give both solvers the same dt"))
    if cp.peak != fp.peak or cp.alpha != fp.alpha or cp.beta != fp.beta or cp.conductivity != fp.conductivity \
            or cp.capacity != fp.capacity or cp.steady != fp.steady or cp.source != fp.source:
        out.append(("patch", "the levels solve different problems (peak, alpha, beta, conductivity, capacity, "
                    "steady or source differ)", "give the patch the coarse solver's physical settings"))
    return out


def expand(raw: dict, document: dict) -> dict:
    """The couplings coarse <-> patch and the implicit scheme iterating them (raw YAML)."""
    coarse, patch = raw.get("coarse"), raw.get("patch")
    if not isinstance(coarse, str) or not isinstance(patch, str):
        return {}
    couplings = [{"from": f"{coarse if side == 'coarse' else patch}.{out}",
                  "to": f"{patch if side == 'coarse' else coarse}.{inp}", "mapping": "nearest"}
                 for out, inp, side in LDC_FIELDS]
    scheme = {"kind": "implicit", "staggering": "serial", "order": [coarse, patch],
              "max_iterations": raw.get("max_iterations", 10),
              "convergence": [{"field": f"{coarse}.patch_temperature", "relative": raw.get("tolerance", 1.0e-7)}]}
    return {"couplings": couplings, "scheme": scheme}


def drives(raw: dict) -> tuple[str, ...]:
    return ()


def describe(p: LdcSpec) -> str:
    return (f"pattern ldc: coarse {p.coarse}, patch {p.patch}: local defect correction to {p.tolerance:g} "
            f"(relative), at most {p.max_iterations} iterations per window")


# --- runtime: per-iteration history on the patch's rank 0 -------------------------------------
class HistoryHook:
    """On the patch's ranks: after every fine solve, how much the coarse solution and w changed."""

    def __init__(self, ctx, index: int, p: LdcSpec):
        self.ctx, self.index, self.p = ctx, index, p
        self.window, self.iteration = -1, 0
        self.previous = None            # (coarse, w) of the previous solve, rank 0

    def setup(self, worker) -> None:
        patch = getattr(worker.solver, "patch", None)
        if worker.group.Get_rank() == 0 and patch is not None:
            patch.on_solve = self.record

    def window_start(self, w: int) -> None:
        self.window, self.iteration = w, 0

    def before_steps(self) -> None:
        self.iteration += 1

    @staticmethod
    def _change(now: np.ndarray, before: np.ndarray) -> tuple[float, float]:
        diff = now - before
        norm = float(np.linalg.norm(now))
        rel = float(np.linalg.norm(diff)) / norm if norm > 0 else float(np.linalg.norm(diff))
        return rel, float(np.abs(diff).max()) if diff.size else 0.0

    def record(self, coarse: np.ndarray, w: np.ndarray) -> None:
        from msorch.messages import TAG_PATTERN0
        if self.previous is None:
            change = change_max = w_change = np.nan      # nothing to compare with yet
        else:
            change, change_max = self._change(coarse, self.previous[0])
            w_change = self._change(w, self.previous[1])[0]
        self.previous = (coarse.copy(), w.copy())
        row = np.array([self.window, self.iteration, change, change_max, w_change], dtype=np.float64)
        self.ctx.world.Send(row, dest=0, tag=TAG_PATTERN0 + self.index)


def roles(ctx, name: str, index: int, p: LdcSpec):
    from couplings.patterns import Roles
    if name == p.patch:
        return Roles(hooks=[HistoryHook(ctx, index, p)])
    return Roles()


# --- statistics (couplings.patterns stats protocol): /ldc/<patch>/ in results.h5 ---------------
COLUMNS = ("window", "iteration", "coarse_change", "coarse_change_max", "patch_change")


def columns(p, job) -> tuple[str, ...]:
    return COLUMNS


def group(p) -> str:
    return f"ldc/{p.patch}"


def datasets(rows: np.ndarray, p, job) -> dict[str, np.ndarray]:
    """Per fine solve (= LDC iteration when dt = window): window, iteration (1-based), the changes
    since the previous solve of the coarse solution (coarse_change, relative L2; coarse_change_max
    [K]) and of w, the composite solution at the patch's coarse nodes (patch_change, relative L2);
    NaN for the very first; shapes (n_iterations,)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    return {"window": rows[:, 0].astype(np.int64), "iteration": rows[:, 1].astype(np.int64),
            "coarse_change": rows[:, 2], "coarse_change_max": rows[:, 3], "patch_change": rows[:, 4]}


def summary(rows: np.ndarray, p, job) -> list[str]:
    d = datasets(rows, p, job)
    if not len(d["window"]):
        return [f"ldc {p.patch}: no iterations"]
    windows = np.unique(d["window"])
    lines = [f"ldc {p.patch}: {len(d['window'])} iterations in {len(windows)} windows"]
    for w in dict.fromkeys([windows[0], windows[-1]]):
        sel = d["window"] == w
        for key, what in (("coarse_change", "coarse solution"), ("patch_change", "patch solution w")):
            hist = " ".join("-" if not np.isfinite(v) else f"{v:.1e}" for v in d[key][sel])
            lines.append(f"ldc {p.patch}: window {w + 1}: {what} change per iteration {hist}")
    return lines


def _kind():
    from . import PatternKind
    return {"ldc": PatternKind(LdcSpec, check, drives, describe, runtime="couplings.patterns.ldc:roles",
                               stats="couplings.patterns.ldc", expand=expand)}


PATTERN_KINDS = _kind()
