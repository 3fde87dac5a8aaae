"""The ``kind: hmm`` entry of a job's ``patterns:`` list: its fields and checks.

Read by the spec validator before launch (no MPI here).  The runtime is
:mod:`couplings.patterns.hmm`; the full shape, with an example, is in its
docstring and in the README section "Heterogeneous multiscale method".
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from msorch.spec import did_you_mean, setting


@dataclass(frozen=True)
class QuerySpec:
    """Which macro output holds the queries and what each component sets on a micro instance."""

    field: str = setting(doc="the macro's output field of queries '<macro>.<output>'",
                         example="road.flux_query")
    sets: tuple[str, ...] = setting(doc="micro Params fields (its query_settings) or inputs, one per "
                                        "query component, in order", example=["density"])


@dataclass(frozen=True)
class AnswerSpec:
    """Which macro input receives the answers and which micro outputs fill it."""

    field: str = setting(doc="the macro's input field of answers '<macro>.<input>'",
                         example="road.flux_answer")
    observables: tuple[str, ...] = dataclasses.field(metadata={
        "key": "from", "doc": "micro output fields, one per answer component, in order", "example": ["flow"]})
    average: str = setting("mean", "over micro time after relax_time: the mean of every step's value, "
                           "or the last value", choices=("mean", "last"))


@dataclass(frozen=True)
class CacheSpec:
    """Answers kept by query (stateless mode)."""

    tolerance: float = setting(0.0, "reuse a cached answer for a query within this max-norm distance "
                               "in query space (0: exact key only)", ge=0)


@dataclass(frozen=True)
class SurrogateSpec:
    """An on-the-fly regression of answers over query space, used when it is certain enough."""

    max_std: float = setting(doc="answer from the surrogate when its predictive standard deviation "
                             "is below this (answer units)", gt=0, example=1.0e-3)
    kind: str = setting("gp", "surrogate model (gp: Gaussian-process regression, scikit-learn)",
                        choices=("gp",))
    min_samples: int = setting(8, "micro answers needed before the surrogate answers anything", ge=1)


@dataclass(frozen=True)
class HMMSpec:
    """A macro solver completing its missing law from a farm of micro instances."""

    kind: str = setting(doc="pattern kind", example="hmm")
    macro: str = setting(doc="the solver that asks (name under solvers:)", example="road")
    micro: str = setting(doc="the micro model: a solver whose ranks form the farm", example="ring")
    query: QuerySpec = setting(doc="macro output field of queries and the micro settings it sets")
    answer: AnswerSpec = setting(doc="macro input field of answers and the micro outputs filling it")
    micro_time: float = setting(doc="micro time averaged per query (after relax_time)", units="s", gt=0,
                                example=1.0)
    relax_time: float = setting(0.0, "micro time run and discarded before averaging", units="s", ge=0)
    mode: str = setting("stateless", "stateless: a query sets up a fresh (reused) instance; stateful: one "
                        "persistent instance per macro point, advanced every window",
                        choices=("stateless", "stateful"))
    instance_ranks: int = setting(1, "ranks per micro instance (divides the micro solver's ranks)", ge=1)
    cache: CacheSpec | None = setting(CacheSpec(), "answer cache (stateless); null: none")
    surrogate: SurrogateSpec | None = setting(None, "surrogate model (stateless); null: none")
    on_failure: str = setting("error", "a micro instance that fails twice: end the job (error), or answer "
                              "from the surrogate / nearest cached answer with a warning (surrogate)",
                              choices=("error", "surrogate"))
    chunk: int | None = setting(None, "queries per work unit handed to a farm rank (default: automatic)",
                                ge=1)

    @property
    def name(self) -> str:
        """``<macro>.<micro>``: how results and messages name this pattern."""
        return f"{self.macro}.{self.micro}"


def drives(raw: dict) -> tuple[str, ...]:
    micro = raw.get("micro")
    return (micro,) if isinstance(micro, str) else ()


def describe(p: HMMSpec) -> str:
    extras = [p.mode, f"micro_time {p.micro_time:g} s", f"relax {p.relax_time:g} s",
              f"{p.instance_ranks} rank(s) per instance"]
    if p.cache is not None and p.mode == "stateless":
        extras.append(f"cache tolerance {p.cache.tolerance:g}")
    if p.surrogate is not None:
        extras.append(f"{p.surrogate.kind} surrogate max_std {p.surrogate.max_std:g}")
    return (f"pattern hmm: {p.macro} asks {p.micro} (farm): {p.query.field}[{', '.join(p.query.sets)}] -> "
            f"{p.answer.field}[{', '.join(p.answer.observables)}] ({', '.join(extras)})")


def _whole_steps(span: float, dt: float) -> bool:
    n = span / dt
    return abs(n - round(n)) <= 1e-9 * max(n, 1.0)


def check(p: HMMSpec, ctx) -> list[tuple[str, str, str]]:
    """Everything about one hmm entry that needs the rest of the job (see module docstring)."""
    out: list[tuple[str, str, str]] = []
    add = lambda key, what, fix: out.append((key, what, fix))
    solvers = ctx.solvers
    for key in ("macro", "micro"):
        name = getattr(p, key)
        if name not in solvers:
            add(key, f"no solver named {name!r}", did_you_mean(name, solvers, "solvers"))
    if p.macro == p.micro:
        add("micro", f"solver {p.micro!r} cannot answer its own queries",
            "name a second solver entry as micro: the farm's micro model")
    if out:
        return out
    macro, micro = solvers[p.macro], solvers[p.micro]
    _check_fields(p, macro, add)
    _check_micro(p, micro, macro, add)
    _check_modes(p, add)
    _check_use(p, ctx, add)
    return out


def _check_fields(p: HMMSpec, macro: dict, add) -> None:
    for key, spec, side in (("query.field", p.query, "outputs"), ("answer.field", p.answer, "inputs")):
        solver, dot, name = spec.field.partition(".")
        if not dot or not name:
            add(key, f"expected '<macro>.<field>', got {spec.field!r}",
                f"write {p.macro}.<one of its {side}>")
            continue
        if solver != p.macro:
            add(key, f"{spec.field!r} is not a field of the macro solver {p.macro!r}",
                f"name one of {p.macro!r}'s {side}: {p.macro}.<field>")
            continue
        fields = macro[side]
        if fields is not None and name not in fields:
            add(key, f"solver {p.macro!r} ({macro['kind']}) has no {side[:-1]} {name!r}",
                did_you_mean(name, fields, f"{side} of {p.macro!r}"))
    if not p.query.sets:
        add("query.sets", "no micro setting or input to set", "list at least one, e.g. sets: [density]")
    if not p.answer.observables:
        add("answer.from", "no micro output to answer with", "list at least one, e.g. from: [flow]")


def _check_micro(p: HMMSpec, micro: dict, macro: dict, add) -> None:
    cls, params = micro["cls"], micro["params"]
    if cls is not None:
        settable = tuple(getattr(cls, "query_settings", ()))
        inputs = micro["inputs"] or ()
        names = [f.name for f in dataclasses.fields(cls.Params)] if dataclasses.is_dataclass(cls.Params) else []
        for i, name in enumerate(p.query.sets):
            if name in settable or name in inputs:
                if p.mode == "stateful" and name not in inputs:
                    add(f"query.sets[{i}]", f"{name!r} is a setting of {p.micro!r}: a persistent (stateful) "
                        "instance takes queries as inputs only",
                        f"use mode: stateless, or set one of its inputs: {', '.join(inputs) or 'none'}")
                continue
            known = list(settable) + list(inputs)
            what = (f"{name!r} is a setting of {p.micro!r} ({micro['kind']}) that queries may not set "
                    "(not in its query_settings)" if name in names else
                    f"{p.micro!r} ({micro['kind']}) has no query setting or input {name!r}")
            add(f"query.sets[{i}]", what, did_you_mean(name, known, "query settings and inputs"))
        outputs = micro["outputs"]
        if outputs is not None:
            for i, name in enumerate(p.answer.observables):
                if name not in outputs:
                    add(f"answer.from[{i}]", f"{p.micro!r} ({micro['kind']}) produces no output {name!r}",
                        did_you_mean(name, outputs, f"outputs of {p.micro!r}"))
        if params is not None and macro["cls"] is not None and macro["params"] is not None \
                and p.answer.field.partition(".")[2] in (macro["inputs"] or ()):
            _check_units(p, _units(cls, params), _units(macro["cls"], macro["params"]), add)
    dt, ranks = micro["dt"], micro["ranks"]
    if dt is not None:
        for key, span in (("micro_time", p.micro_time), ("relax_time", p.relax_time)):
            if key == "micro_time" and span < dt * (1 - 1e-12):
                add(key, f"micro_time {span:g} s is shorter than the micro solver's step dt = {dt:g} s",
                    f"use micro_time >= {dt:g} (a whole number of steps), or lower solvers.{p.micro}.dt")
            elif not _whole_steps(span, dt):
                n = max(1, round(span / dt))
                add(key, f"{key} {span:g} s is not a whole number of micro steps dt = {dt:g} s",
                    f"use {key}: {n * dt:.12g} ({n} steps)")
    if ranks is not None and ranks % p.instance_ranks:
        add("instance_ranks", f"{p.instance_ranks} ranks per instance do not divide the farm's "
            f"{ranks} ranks (solvers.{p.micro}.ranks)",
            f"use instance_ranks: {math.gcd(ranks, p.instance_ranks)}, or ranks: "
            f"{ranks + (-ranks) % p.instance_ranks} for solver {p.micro!r}")


def _units(cls, params) -> dict[str, str]:
    """Units the class declares in ``field_info`` (the rest are compared at setup)."""
    describe = getattr(cls, "describe_fields", None)
    try:
        return {name: info.units for name, info in describe(params).items()} if describe else {}
    except Exception:   # a plugin's placeholder error is its own check's business
        return {}


def _check_units(p: HMMSpec, micro_units: dict, macro_units: dict, add) -> None:
    target = macro_units.get(p.answer.field.partition(".")[2])
    if target is None:
        return
    for i, name in enumerate(p.answer.observables):
        have = micro_units.get(name)
        if have is not None and have != target:
            add(f"answer.from[{i}]", f"micro output {p.micro}.{name} is in {have!r} but the answer field "
                f"{p.answer.field} is in {target!r}",
                "answer with an output in the same units, or convert in the micro solver")


def _check_modes(p: HMMSpec, add) -> None:
    if p.mode == "stateful":
        if p.surrogate is not None:
            add("surrogate", "a stateful (history-dependent) farm cannot be answered by a surrogate",
                "remove surrogate, or use mode: stateless")
        if p.on_failure == "surrogate":
            add("on_failure", "a stateful farm has no surrogate or cache to fall back on",
                "use on_failure: error")
    elif p.on_failure == "surrogate" and p.surrogate is None and p.cache is None:
        add("on_failure", "on_failure: surrogate needs a surrogate or a cache to answer failed queries from",
            "add surrogate: {kind: gp, max_std: 1.0e-3}, keep the cache, or use on_failure: error")


def _check_use(p: HMMSpec, ctx, add) -> None:
    answer = p.answer.field
    for i, c in enumerate(ctx.couplings):
        if c.ref == answer:
            add("answer.field", f"{answer} is also fed by couplings[{i}]",
                "an input takes one source: remove that coupling or answer into another input")
        if p.micro in (c.source, c.target):
            add("micro", f"the farm's micro solver {p.micro!r} appears in couplings[{i}]; farm instances "
                "talk only to the macro", "remove that coupling, or use another solver entry as micro")
    for j, other in ctx.patterns:   # the valid entries before this one
        if getattr(other, "micro", None) == p.micro:
            add("micro", f"solver {p.micro!r} is already the farm of patterns[{j}]",
                "give each pattern its own micro solver entry")
            break


def _kind():
    from . import PatternKind
    return {"hmm": PatternKind(HMMSpec, check, drives, describe, runtime="couplings.patterns.hmm:roles", stats="couplings.patterns.hmm_stats")}


PATTERN_KINDS = _kind()
