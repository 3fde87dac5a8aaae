"""Multigrid cycles whose levels are separate solver groups (``patterns: [{kind: multigrid}]``).

Each level is an ordinary solver entry (e.g. ``fem.heat``) at its own
resolution on its own ranks, finest first; coarse levels usually on fewer
ranks (agglomerated).  The finest level is stepped by the windows as usual;
every linear solve of its step (one per step: a window of ``window/dt``
steps runs as many solves) is done by cycles across the levels instead of its
own Krylov solver.  The coarse levels are run by the pattern (like an HMM
farm): they wait for residuals from the next finer level, smooth, recurse and
send corrections back.  Runtime: :mod:`couplings.patterns.multigrid_runtime`;
per-cycle residuals: :mod:`couplings.patterns.multigrid_stats`; the level
interface: :mod:`couplings.patterns.multigrid_level`.

Spec (validated before launch by :func:`check`)::

    solvers:
      fine:   {kind: fem.heat, ranks: 4, params: {steady: true, nx: 256, ny: 256, source: 1.0}}
      mid:    {kind: fem.heat, ranks: 2, params: {steady: true, nx: 128, ny: 128}}
      coarse: {kind: fem.heat, ranks: 1, params: {steady: true, nx: 64, ny: 64}}
    patterns:
      - kind: multigrid
        levels: [fine, mid, coarse]     # finest first; each halves nx and ny of the one before
        cycle: V                        # V | W | F
        nu1: 1                          # pre-smoothing steps
        nu2: 1                          # post-smoothing steps
        smoother: {}                    # {type: multicolor, omega: 1} (default) or {type: petsc, <options>}
        transfer: bilinear              # bilinear | p1 (prolongation P, restriction P^T)
        coarse: {}                      # PETSc options of the coarsest solve (default: LU)
        outer: richardson               # richardson: plain cycles; cg: cycles precondition CG
        tolerance: 1.0e-10              # ||b - A x|| <= tolerance ||b|| ends a solve
        max_cycles: 50                  # more is an error naming the residuals

A solve starts from zero (the solver's own convention) and runs cycles until
the residual 2-norm has dropped by ``tolerance`` relative to ``||b||``.  One
window is therefore one or more complete solves, never a partial one:
checkpoints and outputs never hold a half-converged iterate, the job's length
does not depend on the convergence, and the finest level can be coupled to
other solvers by the ordinary window machinery (explicit schemes: an implicit
scheme would re-run the finest level's steps within a window, which the
coarse levels cannot follow).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from msorch.spec import did_you_mean, setting

CYCLES = ("V", "W", "F")


@dataclass(frozen=True)
class MultigridSpec:
    """Cycles over solver groups at nested resolutions (see module docstring)."""

    kind: str = setting(doc="pattern kind", example="multigrid")
    levels: tuple[str, ...] = setting(doc="solver names of the levels, finest first; each level halves nx and ny "
                                      "of the one before", example=["fine", "mid", "coarse"])
    cycle: str = setting("V", "cycle shape: V (one coarse visit per level), W (two), F (an F then a V visit)",
                         choices=CYCLES)
    nu1: int = setting(1, "smoothing steps before the coarse-grid correction", ge=0)
    nu2: int = setting(1, "smoothing steps after the coarse-grid correction", ge=0)
    smoother: dict[str, str | float] = dataclasses.field(default_factory=dict, metadata={
        "doc": "every level's smoother. type: multicolor (default; one step = one red-black Gauss-Seidel sweep "
               "on the global grid colouring, the same on any rank count; omega: over-relaxation, default 1) "
               "or type: petsc (a PETSc KSP; the other keys are its options on top of {ksp_type: richardson, "
               "pc_type: sor}: one step = one local symmetric Gauss-Seidel sweep per rank block, Jacobi "
               "between blocks)", "units": ""})
    transfer: str = setting("bilinear", "prolongation P (restriction P^T): bilinear (textbook pair with red-black "
                            "Gauss-Seidel) or p1 (the nested P1 embedding, Galerkin-consistent)",
                            choices=("bilinear", "p1"))
    coarse: dict[str, str] = dataclasses.field(default_factory=dict, metadata={
        "doc": "PETSc options of the coarsest level's solve, on top of {ksp_type: preonly, pc_type: lu} "
               "(redundant LU on several ranks)", "units": ""})
    outer: str = setting("richardson", "richardson: one cycle per iteration (plain multigrid); cg: the cycle "
                         "preconditions conjugate gradients", choices=("richardson", "cg"))
    tolerance: float = setting(1.0e-10, "a solve ends when ||b - A x||_2 <= tolerance ||b||_2", gt=0, le=1)
    max_cycles: int = setting(50, "cycles per solve before the run fails", ge=1)

    @property
    def name(self) -> str:
        """The finest level's name: how results and messages name this pattern."""
        return self.levels[0] if self.levels else "multigrid"


def drives(raw: dict) -> tuple[str, ...]:
    """The coarse levels: run by the pattern, not stepped by windows."""
    levels = raw.get("levels")
    if not isinstance(levels, list):
        return ()
    return tuple(x for x in levels[1:] if isinstance(x, str) and x != (levels[0] if levels else None))


def describe(p: MultigridSpec) -> str:
    cyc = f"{p.cycle}({p.nu1},{p.nu2})"
    outer = "" if p.outer == "richardson" else ", preconditioning CG"
    smoother = p.smoother.get("type", "multicolor")
    return (f"pattern multigrid: {cyc} cycles over {len(p.levels)} levels {' -> '.join(p.levels)}{outer}, "
            f"{smoother} smoother, {p.transfer} transfer, "
            f"tolerance {p.tolerance:g}, at most {p.max_cycles} cycles per solve")


def check(p: MultigridSpec, ctx) -> list[tuple[str, str, str]]:
    """Level names, the level interface, nesting, same physics, no couplings on coarse levels."""
    from couplings.grid_transfer import Box, nesting_problem
    from couplings.patterns.multigrid_level import missing
    out: list[tuple[str, str, str]] = []
    add = lambda key, what, fix: out.append((key, what, fix))
    solvers = ctx.solvers
    if len(p.levels) < 2:
        add("levels", f"a cycle needs at least two levels, got {len(p.levels)}",
            "name the finest level and at least one coarser solver entry (half its nx and ny), e.g. "
            "levels: [fine, coarse]")
    seen: set[str] = set()
    for k, name in enumerate(p.levels):
        key = f"levels[{k}]"
        if name in seen:
            add(key, f"solver {name!r} is named twice", "give each level its own solver entry")
        seen.add(name)
        if name not in solvers:
            add(key, f"no solver named {name!r}", did_you_mean(name, solvers, "solvers"))
            continue
        cls = solvers[name]["cls"]
        if cls is not None and missing(cls):
            add(key, f"solver {name!r} ({solvers[name]['kind']}) does not implement the multigrid level interface "
                f"(it lacks {', '.join(missing(cls)[:3])}{', ...' if len(missing(cls)) > 3 else ''})",
                "name solvers whose kind is a level, such as fem.heat (couplings/patterns/multigrid_level.py "
                "describes the interface)")
    for j, other in ctx.patterns:
        shared = set(getattr(other, "levels", ())) & seen
        if shared:
            add("levels", f"{', '.join(sorted(shared))} already a level of patterns[{j}]",
                "give each multigrid pattern its own solver entries")
    if out:
        return out
    finest = solvers[p.levels[0]]
    unnested = False
    for k, name in enumerate(p.levels):
        s = solvers[name]
        if s["params"] is None or finest["params"] is None:
            continue
        for key, what, fix in s["cls"].level_problems(finest["params"], s["params"], k > 0):
            add(f"levels[{k}]", f"solvers.{name}.params.{key}: {what}", fix)
        if k > 0:
            prev = solvers[p.levels[k - 1]]
            if prev["params"] is not None and not unnested:   # one problem per chain, at its first link
                fine_box, box = Box(*prev["cls"].level_box(prev["params"])), Box(*s["cls"].level_box(s["params"]))
                problem = nesting_problem(fine_box, box)
                if problem:
                    fix = (f"use nx: {fine_box.nx // 2}, ny: {fine_box.ny // 2} for {name!r} (and the same box)"
                           if fine_box.nx % 2 == 0 and fine_box.ny % 2 == 0 else
                           f"give {p.levels[k - 1]!r} even nx and ny, twice those of {name!r}")
                    add(f"levels[{k}]", f"solver {name!r}: {problem}", fix)
                    unnested = True
            if s["ranks"] is not None and s["params"] is not None:
                nodes = Box(*s["cls"].level_box(s["params"])).n_nodes
                if s["ranks"] > nodes:
                    add(f"levels[{k}]", f"solver {name!r} has {s['ranks']} ranks for {nodes} nodes",
                        f"use ranks: {max(1, nodes // 64)} or fewer")
    for i, c in enumerate(ctx.couplings):
        for name in p.levels[1:]:
            if name in (c.source, c.target):
                add(f"levels[{p.levels.index(name)}]",
                    f"the coarse level {name!r} appears in couplings[{i}]; coarse levels talk only to their "
                    "neighbouring levels", f"couple the finest level {p.levels[0]!r} instead")
    if p.outer == "cg" and (p.nu1 != p.nu2 or p.cycle == "F" or p.nu1 == 0):
        add("outer", "conjugate gradients need a symmetric positive definite preconditioner: a V or W cycle "
            f"with nu1 = nu2 >= 1 (got {p.cycle}({p.nu1},{p.nu2}))",
            "use cycle: V or W with nu1 = nu2 >= 1, or outer: richardson")
    if getattr(ctx.scheme, "kind", None) == "implicit":
        add("levels[0]", f"scheme.kind is implicit: it re-runs the finest level {p.levels[0]!r}'s steps within a "
            "window, which the coarse levels (solving once per step) cannot follow",
            "use scheme: {kind: explicit}")
    out.extend(smoother_problems(p.smoother))
    if p.nu1 + p.nu2 == 0:
        add("nu1", "no smoothing at all: the cycle would only correct from the coarse levels",
            "use nu1: 1, nu2: 1")
    return out


SMOOTHER_TYPES = ("multicolor", "petsc")


def smoother_problems(smoother: dict) -> list[tuple[str, str, str]]:
    """(key, what, fix) for a ``smoother`` mapping that is neither a multicolour nor a PETSc smoother."""
    out = []
    kind = smoother.get("type", "multicolor")
    if kind not in SMOOTHER_TYPES:
        return [("smoother.type", f"expected one of {', '.join(SMOOTHER_TYPES)}, got {kind!r}",
                 "use type: multicolor (red-black Gauss-Seidel) or type: petsc (PETSc options)")]
    if kind == "petsc":
        if "omega" in smoother:
            out.append(("smoother.omega", "omega belongs to type: multicolor; a PETSc smoother takes PETSc options",
                        "write pc_sor_omega instead"))
        return out
    for key, value in smoother.items():
        if key == "type":
            continue
        if key != "omega":
            out.append((f"smoother.{key}", f"{key!r} is not a setting of the multicolour smoother (type and omega "
                        "are)", "add type: petsc to pass PETSc options to a PETSc smoother, or remove it"))
        elif isinstance(value, str) or not 0.0 < float(value) < 2.0:
            out.append(("smoother.omega", f"expected a number in (0, 2), got {value!r}",
                        "use omega: 1 (Gauss-Seidel) or a value like 1.15 (over-relaxation)"))
    return out


def _kind():
    from . import PatternKind
    return {"multigrid": PatternKind(MultigridSpec, check, drives, describe,
                                     runtime="couplings.patterns.multigrid_runtime:roles",
                                     stats="couplings.patterns.multigrid_stats")}


PATTERN_KINDS = _kind()
