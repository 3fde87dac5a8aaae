"""Coupling patterns: reusable recipes named in a job spec's ``patterns:`` list.

Each pattern kind registers one :class:`PatternKind` in :data:`KINDS`:

- ``spec``: a frozen dataclass read from the YAML entry by the spec validator
  (same rules as every other section: types, ``doc``/``units``, ``gt``/``ge``/
  ``choices``, unknown keys with a did-you-mean).  Its first field is
  ``kind: str``.
- ``check(pattern, ctx) -> list[(key, what, fix)]``: cross-checks against the
  solvers and couplings of the job (``ctx`` is a :class:`CheckContext`);
  ``key`` is the YAML path inside the entry (``"query.sets[0]"``).
- ``drives(raw_entry) -> tuple[str, ...]``: the solvers this pattern runs
  itself instead of the window loop (e.g. an HMM farm's micro solver); read
  from the raw YAML mapping before validation, so their ``dt`` need not divide
  the window and they need no place in ``scheme.order``.
- ``describe(pattern) -> str``: one line for ``msorch validate``.
- ``expand`` (optional): raw couplings/scheme the entry stands for (see the field).
- ``runtime``: ``"module:function"``; on solver ranks the runtime calls
  ``function(ctx, name, index, pattern)`` (imported only there, never by the
  front end) and gets a :class:`Roles` for solver ``name``.
- ``stats`` (optional): a module whose per-window rows (float64, sent by the
  pattern to the coordinator with tag ``TAG_PATTERN0 + index``) the
  coordinator keeps in checkpoints, writes to results.h5 and summarises:
  ``columns(p, job)``, ``datasets(rows, p, job)``, ``group(p)``,
  ``summary(rows, p, job)``.

To add a kind (schwarz, dirichlet-neumann, multigrid, projective, ...): write
its spec dataclass and check in a module here that imports no MPI at top
level, its runtime in another, and add one entry to :data:`KINDS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class CheckContext:
    """What a pattern's check may look at.

    ``solvers``: name -> dict with keys kind, cls, ranks, dt, params, outputs,
    inputs (None where that part of the entry was invalid, already reported);
    ``couplings``: the valid CouplingSpec list; ``time``: the TimeSpec or None;
    ``patterns``: (YAML index, pattern) of the valid entries before this one;
    ``scheme``: the SchemeSpec (the user's or a recipe's), or None where it was invalid.
    """

    solvers: dict[str, dict]
    couplings: tuple
    time: Any
    patterns: tuple = ()
    scheme: Any = None


@dataclass
class Roles:
    """What a pattern does on one solver's ranks (see :mod:`msorch.worker`).

    ``solver``: a callable ``(worker) -> Solver`` that the worker uses instead
    of constructing the spec's class (a pattern that runs the solver itself,
    like an HMM farm), or None; ``hooks``: objects given to the worker, each
    with methods ``setup(worker)`` (end of setup), ``window_start(w)`` (before
    the window's state is saved) and optionally ``before_steps()`` (before the
    first step of every iteration).
    """

    solver: Callable | None = None
    hooks: list = field(default_factory=list)


@dataclass(frozen=True)
class PatternKind:
    spec: type
    check: Callable
    drives: Callable[[dict], tuple[str, ...]]
    describe: Callable[[Any], str]
    runtime: str
    stats: str = ""      # module with columns(p, job), datasets(rows, p, job), group(p), summary(rows, p, job)
    # expand(raw_entry, raw_document) -> {"couplings": [...], "scheme": {...}}: raw YAML that the
    # pattern adds to the job before couplings and scheme are validated (a recipe such as Schwarz);
    # None for kinds that only act at run time.
    expand: Callable | None = None


# Modules of this package that define ``PATTERN_KINDS: dict[str, PatternKind]``
# (spec-side only: no MPI at import).  Adding a kind = adding its module here.
_KIND_MODULES = ("hmm_spec", "projective", "domain_decomposition", "multigrid", "ldc", "road_zones")


def _kinds() -> dict[str, PatternKind]:
    import importlib
    kinds: dict[str, PatternKind] = {}
    for name in _KIND_MODULES:
        kinds.update(importlib.import_module(f"{__name__}.{name}").PATTERN_KINDS)
    return kinds


KINDS: dict[str, PatternKind] = _kinds()


def load(target: str):
    """The function named ``module:function`` (imported on first use)."""
    import importlib
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def driven_solvers(job) -> frozenset[str]:
    """Names of the solvers that patterns run themselves (not stepped by windows)."""
    return frozenset(getattr(job, "driven", ()) or ())


def stats_module(pattern):
    """The stats module of a pattern's kind, or None."""
    import importlib
    target = KINDS[pattern.kind].stats
    return importlib.import_module(target) if target else None


def roles(ctx, name: str) -> Roles:
    """Every pattern's part on solver ``name``'s ranks, merged."""
    merged = Roles()
    for i, pattern in enumerate(getattr(ctx.job, "patterns", ())):
        r = load(KINDS[pattern.kind].runtime)(ctx, name, i, pattern)
        if r.solver is not None:
            merged.solver = r.solver
        merged.hooks.extend(r.hooks)
    return merged
