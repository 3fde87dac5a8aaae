"""Job specs: YAML text into frozen, validated objects, before anything launches.

The format is described in ``prompts/schema.md``.  :func:`parse_spec` reads the
whole document and collects *every* problem it finds (type errors, unknown
keys with a did-you-mean, dangling references between solvers, couplings and
the scheme, step sizes that do not divide the window, ...) and raises them
together as one :class:`SpecError`; each :class:`Problem` names the YAML path,
what was expected and found, and a concrete fix.

Typed sections are declared once, as the dataclasses below: their annotations
give the accepted YAML types and their field metadata the documentation and
range rules (``gt``, ``ge``, ``le``, ``choices``, ``pattern``).  The same
generic reader validates a solver's ``Params`` dataclass, so a plugin gets
type checks, unknown-key hints and messages quoting its ``doc``/``units`` for
free.  Cross-references (``from``/``to``, ``order``, convergence fields) are
checked by :class:`_Reader` afterwards.

YAML quirks handled here: PyYAML implements YAML 1.1, which reads ``1e-10``
as a string (accepted for float settings, not for integer ones) and
``10:00`` as the base-60 integer 600 (switched off: it stays the text
``"10:00"``, which is what a SLURM time limit means).

This module imports no MPI.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import re
import types
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from msorch import registry
from msorch.slurm import walltime_seconds
from msorch.solver import Solver

__all__ = ["TimeSpec", "OutputSpec", "SolverSpec", "CouplingSpec", "ConvergenceSpec",
           "AccelerationSpec", "SchemeSpec", "CheckpointSpec", "ResourcesSpec", "JobSpec",
           "Problem", "SpecError", "load_spec", "parse_spec"]

# ---------------------------------------------------------------------------
# The spec objects
# ---------------------------------------------------------------------------


def _setting(default: Any = MISSING, doc: str = "", units: str = "", **rules):
    """A dataclass field with a description and validation rules (see ``_RULES``)."""
    return field(default=default, metadata={"doc": doc, "units": units, **rules})


_SLURM_TIME = (r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}",
               "in a SLURM time format (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")


@dataclass(frozen=True)
class TimeSpec:
    """Simulated time span [s], cut into coupling windows."""

    start: float = _setting(doc="start time", units="s", example=0.0)
    end: float = _setting(doc="end time", units="s", example=1.0)
    window: float = _setting(doc="coupling window", units="s", gt=0, example=0.1)

    @property
    def n_windows(self) -> int:
        """Number of coupling windows (validated to be integral)."""
        return round((self.end - self.start) / self.window)


@dataclass(frozen=True)
class OutputSpec:
    """When and what a solver writes to the results file."""

    every: int = _setting(1, "write results every N windows", ge=1)
    fields: tuple[str, ...] | None = _setting(None, "output fields to write (default: all)")


@dataclass(frozen=True)
class SolverSpec:
    """One solver of the job: its plugin class, group size and settings."""

    name: str
    kind: str
    cls: type
    ranks: int
    dt: float
    substeps: int
    params: object
    output: OutputSpec
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class CouplingSpec:
    """Data flow from one solver's output field into another's input field."""

    source: str
    source_field: str
    target: str
    target_field: str
    mapping: str = "nearest"
    waveform: str = "linear"

    @property
    def ref(self) -> str:
        """``"target.target_field"``, the name convergence and acceleration use."""
        return f"{self.target}.{self.target_field}"


@dataclass(frozen=True)
class ConvergenceSpec:
    """Convergence measure of one coupling target in implicit iterations."""

    field: str = _setting(doc="a coupling target '<solver>.<input>'", example="left.temperature")
    relative: float | None = _setting(None, "relative tolerance on the change of the field", gt=0)
    absolute: float | None = _setting(None, "absolute tolerance on the change of the field", gt=0)
    over: str = _setting("window", "samples the change is measured over: the whole window's, "
                         "or only the window end's (preCICE)", choices=("window", "end"))


@dataclass(frozen=True)
class AccelerationSpec:
    """Fixed-point acceleration of implicit iterations.

    Method-specific settings default to None, "the method's default" (see
    ``couplings/acceleration.py``); a method declares the ones it uses in its
    ``SETTINGS`` and only those are passed to it.
    """

    kind: str = _setting("constant", "acceleration method")
    relaxation: float = _setting(0.5, "under-relaxation factor", gt=0, le=1)
    initial_relaxation: float = _setting(0.5, "relaxation of the first iteration of a window",
                                         gt=0, le=1)
    reuse: int = _setting(8, "number of past windows whose iterations are reused", ge=0)
    fields: tuple[str, ...] = _setting((), "coupling targets to accelerate")
    filter: str | None = _setting(None, "QR filter of the quasi-Newton columns (default qr2)",
                                  choices=("qr1", "qr2"))
    filter_limit: float | None = _setting(None, "filter threshold (default 2e-3)", gt=0, le=0.5)
    update_at_convergence: bool | None = _setting(
        None, "add the converged iteration's columns to the history (default true)")
    max_used_iterations: int | None = _setting(None, "most quasi-Newton columns kept "
                                               "(default: no limit)", ge=1)
    start: str | None = _setting(None, "Aitken factor of a window's first iteration: "
                                 "initial_relaxation, or from the previous window (default)",
                                 choices=("initial", "previous"))
    over: str | None = _setting(None, "samples the Aitken factor is computed from (default end)",
                                choices=("window", "end"))
    restart: str | None = _setting(None, "IMVJ restart mode (default none)",
                                   choices=("none", "zero", "ls", "svd"))
    chunk_size: int | None = _setting(None, "IMVJ windows between restarts (default 8)", ge=1)
    restart_reuse: int | None = _setting(None, "IMVJ windows used by the ls restart (default 2)",
                                         ge=1)
    truncation: float | None = _setting(None, "IMVJ svd restart: singular values kept above this "
                                        "fraction of the largest (default 1e-3)", gt=0, le=0.5)

    def options(self, settings=None) -> dict[str, Any]:
        """Constructor keywords: the set settings, restricted to ``settings`` if given."""
        skip = ("kind", "fields")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in skip and getattr(self, f.name) is not None}
        return values if settings is None else {k: v for k, v in values.items() if k in settings}


@dataclass(frozen=True)
class SchemeSpec:
    """How solvers are scheduled within a window and whether windows iterate."""

    kind: str = _setting("explicit", "coupling scheme", choices=("explicit", "implicit"))
    staggering: str = _setting("parallel", "how solvers run within a window",
                               choices=("serial", "parallel"))
    order: tuple[str, ...] = _setting((), "solver names in their order within a window")
    max_iterations: int = _setting(50, "iterations per window before giving up", ge=1)
    convergence: tuple[ConvergenceSpec, ...] = _setting((), "convergence measures")
    acceleration: AccelerationSpec | None = _setting(None, "fixed-point acceleration")


@dataclass(frozen=True)
class CheckpointSpec:
    """When checkpoints are written and how many are kept."""

    every_windows: int | None = _setting(None, "checkpoint every N windows", ge=1)
    every_seconds: float | None = _setting(None, "checkpoint every N wall-clock seconds",
                                           units="s", gt=0)
    keep: int = _setting(3, "number of checkpoints kept", ge=1)


@dataclass(frozen=True)
class ResourcesSpec:
    """Batch resources for ``msorch submit``."""

    nodes: int = _setting(1, "number of nodes", ge=1)
    tasks: int | None = _setting(None, "number of MPI tasks (default: the job's total ranks)", ge=1)
    time: str | None = _setting(None, "wall-clock limit", pattern=_SLURM_TIME, example="00:10:00")
    partition: str | None = _setting(None, "SLURM partition")
    account: str | None = _setting(None, "SLURM account")
    extra: tuple[str, ...] = _setting((), "extra sbatch options")
    signal_before: int = _setting(60, "seconds before the time limit to checkpoint and stop "
                                  "(0: no signal)", units="s", ge=0, le=65535)
    launcher: str = _setting("mpirun", "how the ranks start inside the allocation",
                             choices=("mpirun", "srun"))
    placement: dict[str, int] | None = _setting(
        None, "node index (0-based) of each solver group; the coordinator runs on node 0 "
        "(default: pack the groups so that none straddles nodes unless it must)",
        example={"left": 0, "right": 1})


@dataclass(frozen=True)
class JobSpec:
    """A whole validated job."""

    name: str
    time: TimeSpec
    solvers: dict[str, SolverSpec]
    couplings: tuple[CouplingSpec, ...]
    scheme: SchemeSpec
    checkpoint: CheckpointSpec | None
    resources: ResourcesSpec
    hang_timeout: float
    progress: bool
    text: str
    path: str | None
    patterns: tuple = ()             # pattern entries (couplings/patterns: e.g. HMMSpec), in spec order
    driven: frozenset = frozenset()  # solvers that patterns run themselves (not stepped by windows)
    # Recipes' expansions (msorch validate --explain): (pattern index, kind, {"couplings": [...],
    # "scheme": {...}}) as raw YAML pieces, merged into the document before it was validated.
    expansions: tuple = ()

    @property
    def total_ranks(self) -> int:
        """MPI ranks of the job: rank 0 is the coordinator, then every solver group."""
        return 1 + sum(s.ranks for s in self.solvers.values())


# YAML entries that are not spec objects themselves; read by the same machinery.
@dataclass(frozen=True)
class _Document:
    time: TimeSpec
    solvers: dict[str, Any] = _setting(doc="solver entries by name",
                                       example={"left": {"kind": "fem.heat"}})
    name: str | None = _setting(None, "job name", pattern=(r"[A-Za-z0-9_.\-]+",
                                "made of letters, digits, '_', '-' and '.'"))
    couplings: tuple[Any, ...] | None = _setting((), "coupling entries")
    patterns: tuple[Any, ...] | None = _setting((), "coupling patterns (kind: hmm, ...)")
    scheme: dict[str, Any] | None = _setting(None, "coupling scheme")
    checkpoint: CheckpointSpec | None = None
    resources: ResourcesSpec = ResourcesSpec()
    hang_timeout: float = _setting(300.0, "seconds without progress before the job is declared "
                                   "hung", units="s", gt=0)
    progress: bool = _setting(True, "print a progress line per window")


@dataclass(frozen=True)
class _SolverEntry:
    kind: str = _setting(doc="registered solver name or 'package.module:Class'", example="fem.heat")
    ranks: int = _setting(1, "MPI ranks of this solver's group", ge=1)
    dt: float | None = _setting(None, "solver step (default: the window)", units="s", gt=0)
    params: Any = _setting(None, "solver settings")  # checked against the class's Params
    output: OutputSpec = OutputSpec()


@dataclass(frozen=True)
class _CouplingEntry:
    source: str = field(metadata={"key": "from", "doc": "'<solver>.<output field>'",
                                  "example": "right.temperature"})
    target: str = field(metadata={"key": "to", "doc": "'<solver>.<input field>'",
                                  "example": "left.temperature"})
    mapping: str = _setting("nearest", "spatial mapping")
    waveform: str = _setting("linear", "time interpolation inside a window",
                             choices=("linear", "constant"))


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (YAML path), what, and how to fix it."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path or '<spec>'}: {self.message.rstrip('.')}. Fix: {self.fix}"


class SpecError(ValueError):
    """All problems of a spec; ``str()`` is a bulleted list, one line per problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(f"- {p}" for p in self.problems))


_BAD = object()  # "failed; the problem is already recorded"


class _Problems(list):
    def add(self, path: str, message: str, fix: str) -> None:
        self.append(Problem(path, message, fix))


def _join(path: str, key: Any) -> str:
    """YAML path of ``key`` (a mapping key, or a list index) inside ``path``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    if not path or key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}"


def _did_you_mean(word: Any, known, what: str = "") -> str:
    """A fix text: the closest known name, else the list of known names."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    listing = f"known {what}: {', '.join(known)}" if known else f"there are no {what}"
    return f"did you mean {close[0]!r}? ({listing})" if close else f"use one of them; {listing}"


def _shown(value: Any) -> str:
    """How a found value is quoted in a message."""
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null (nothing)"
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_yaml(value: Any) -> str:
    """Inline YAML text of a plain value, for examples in fixes."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    try:
        text = yaml.safe_dump(plain(value), default_flow_style=True, width=10_000,
                              sort_keys=False)
    except yaml.YAMLError:
        return repr(value)
    return text.removesuffix("\n").removesuffix("\n...").strip()


# For pattern kinds (couplings/patterns) declaring their own spec dataclasses.
setting = _setting
did_you_mean = _did_you_mean

# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------


def _without_sexagesimal(resolvers: dict) -> dict:
    """Implicit resolvers where int/float never match text with ':' (YAML 1.1 base 60)."""
    numeric = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    return {first: [(tag, re.compile("(?![^:]*:)" + rx.pattern, rx.flags) if tag in numeric else rx)
                    for tag, rx in entries]
            for first, entries in resolvers.items()}


class _Loader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys and reads ``10:00`` as text."""

    yaml_implicit_resolvers = _without_sexagesimal(yaml.SafeLoader.yaml_implicit_resolvers)

    def __init__(self, text: str):
        super().__init__(text)
        self.node_paths: dict[int, str] = {}
        self.duplicates = _Problems()

    def index_paths(self, root: yaml.Node) -> None:
        """Remember the YAML path of every mapping node (for duplicate-key messages)."""
        stack = [(root, "")]
        while stack:
            node, path = stack.pop()
            if id(node) in self.node_paths:
                continue  # an alias: already seen under its anchor's path
            self.node_paths[id(node)] = path
            if isinstance(node, yaml.MappingNode):
                stack.extend((v, _join(path, k.value if isinstance(k, yaml.ScalarNode) else "?"))
                             for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((v, _join(path, i)) for i, v in enumerate(node.value))

    def construct_mapping(self, node, deep=False):
        seen: dict[tuple, int] = {}
        path = self.node_paths.get(id(node), "")
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # '<<' merges may override keys on purpose
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.add(_join(path, key_node.value), "duplicate key "
                                    f"(first at line {seen[key]}, again at line {line})",
                                    "remove one of them: YAML would silently keep only the last")
            else:
                seen[key] = line
        return super().construct_mapping(node, deep)


def _load_yaml(text: str, problems: _Problems) -> Any:
    """The document's data (None if empty), or ``_BAD`` if it is not YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.index_paths(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = "; ".join(filter(None, [exc.context, exc.problem]))
        problems.add("", f"YAML syntax error at {where}: {what}",
                     f"check indentation, colons and quotes near {where}")
        return _BAD
    except yaml.YAMLError as exc:
        problems.add("", f"cannot read the YAML: {exc}", "save the file as plain UTF-8 text")
        return _BAD
    finally:
        loader.dispose()
    problems.extend(loader.duplicates)
    return data


# ---------------------------------------------------------------------------
# Typed reading: annotation + metadata -> value, or problems
# ---------------------------------------------------------------------------

# rule name -> (holds(value, argument), phrase(argument)); phrases follow "expected <type> ".
_RULES: dict[str, tuple[Callable[[Any, Any], bool], Callable[[Any], str]]] = {
    "gt": (operator.gt, lambda a: f"> {a}"),
    "ge": (operator.ge, lambda a: f">= {a}"),
    "le": (operator.le, lambda a: f"<= {a}"),
    "choices": (lambda v, a: v in a, lambda a: ""),
    "pattern": (lambda v, a: re.fullmatch(a[0], v) is not None, lambda a: a[1]),
}

_TYPE_NAMES = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
_EXAMPLES = {float: 1.0, int: 1, str: "name", bool: True}
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_UNIONS = (Union, types.UnionType)
_NONE = type(None)


@dataclass(frozen=True)
class _Slot:
    """What the messages of one value need to know about where it goes."""

    doc: str = ""
    units: str = ""
    rules: dict = field(default_factory=dict)
    default: Any = None  # None when there is none
    example: Any = None  # shown in fixes; default: the default

    @classmethod
    def of(cls, f: dataclasses.Field) -> _Slot:
        meta = f.metadata
        default = f.default if f.default_factory is MISSING else f.default_factory()
        default = None if default is MISSING else default
        return cls(meta.get("doc", ""), meta.get("units", ""),
                   {k: v for k, v in meta.items() if k in _RULES}, default,
                   meta.get("example", default))

    def item(self) -> _Slot:
        """The slot of one element of a list/dict value: same doc, no rules."""
        return _Slot(self.doc, self.units)

    def about(self) -> str:
        inner = " ".join(filter(None, [self.doc, f"[{self.units}]" if self.units else ""]))
        return f" ({inner})" if inner else ""


def _describe(tp: Any) -> str:
    """'a number', 'a list of 2 items (...)', ... for an annotation."""
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if tp is Any or tp is object:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(_yaml_keys(tp))}"
    origin, args = get_origin(tp) or tp, get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in _UNIONS:
        text = " or ".join(_describe(a) for a in args if a is not _NONE)
        return text + " or null" if _NONE in args else text
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} items ({', '.join(map(_describe, args))})"
    if origin in (tuple, list):
        item = args[0] if args else Any
        return "a list" if item is Any else f"a list (each item {_describe(item)})"
    if origin is dict:
        item = args[1] if args else Any
        return "a mapping" if item is Any else f"a mapping of names to {_describe(item)}"
    return repr(tp)


def _expected(tp: Any, slot: _Slot) -> str:
    if "choices" in slot.rules:
        return "one of " + ", ".join(map(repr, slot.rules["choices"]))
    phrases = [_RULES[name][1](arg) for name, arg in slot.rules.items()]
    return " ".join([_describe(tp), " and ".join(filter(None, phrases))]).strip()


def _example(tp: Any, slot: _Slot = _Slot()) -> Any:
    if slot.example is not None:
        return slot.example
    if "choices" in slot.rules:
        return slot.rules["choices"][0]
    if tp in _EXAMPLES:
        return _EXAMPLES[tp]
    if dataclasses.is_dataclass(tp):
        return {_yaml_key(f): _example(hint, _Slot.of(f)) for f, hint in _fields(tp)
                if _required(f)}
    origin, args = get_origin(tp) or tp, get_args(tp)
    if origin is Literal:
        return args[0]
    if origin in _UNIONS:
        return _example(next(a for a in args if a is not _NONE))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return [_example(a) for a in args]
    if origin in (tuple, list):
        return [_example(args[0])] if args else []
    if origin is dict:
        return {"name": _example(args[1])} if args else {}
    return None


def _mismatch(problems, tp, value, path, slot, fix=None) -> object:
    if fix is None and tp is str and isinstance(value, (int, float, bool)):
        fix = "quote the value so YAML reads it as text"
    if fix is None:
        fix = f"write {_expected(tp, slot)}, e.g. {_as_yaml(_example(tp, slot))}"
    problems.add(path, f"expected {_expected(tp, slot)}{slot.about()}, got {_shown(value)}", fix)
    return _BAD


def _to_float(problems, tp, value, path, slot):
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-10 (no dot) as a string
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return _mismatch(problems, tp, value, path, slot)


def _to_int(problems, tp, value, path, slot):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    fix = None
    if isinstance(value, float) and math.isfinite(value):
        fix = f"use a whole number, e.g. {round(value)}"
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        fix = f"write a plain integer without quotes or exponent, e.g. {round(float(value))}"
    return _mismatch(problems, tp, value, path, slot, fix)


def _to_exact(problems, tp, value, path, slot):
    return value if type(value) is tp else _mismatch(problems, tp, value, path, slot)


def _to_literal(problems, tp, value, path, slot):
    choices = get_args(tp)
    if any(value == c and type(value) is type(c) for c in choices):
        return value
    return _mismatch(problems, tp, value, path, slot, _did_you_mean(value, choices, "values"))


def _to_union(problems, tp, value, path, slot):
    arms = [a for a in get_args(tp) if a is not _NONE]
    if value is None:
        return None if len(arms) < len(get_args(tp)) else _mismatch(problems, tp, value, path, slot)
    if len(arms) == 1:
        return _convert(problems, arms[0], value, path, slot)
    tries = []
    for arm in arms:
        trial = _Problems()
        out = _convert(trial, arm, value, path, slot)
        if not trial:
            return out
        tries.append(trial)
    deeper = [t for t in tries if any(p.path != path for p in t)]
    if len(deeper) == 1:  # the value has the shape of one arm: report what is wrong inside
        problems.extend(deeper[0])
        return _BAD
    return _mismatch(problems, tp, value, path, slot)


def _items(problems, item_tps, values, path, slot):
    out = [_convert(problems, tp, v, _join(path, i), slot.item())
           for i, (tp, v) in enumerate(zip(item_tps, values))]
    return _BAD if any(v is _BAD for v in out) else out


def _to_sequence(problems, tp, value, path, slot):
    if not isinstance(value, (list, tuple)):
        return _mismatch(problems, tp, value, path, slot)
    origin, args = get_origin(tp) or tp, get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            return _mismatch(problems, tp, value, path, slot,
                             f"give exactly {len(args)} items, e.g. {_as_yaml(_example(tp))}")
        item_tps = args
    else:
        item_tps = [args[0] if args else Any] * len(value)
    out = _items(problems, item_tps, value, path, slot)
    return out if out is _BAD else origin(out)


def _to_dict(problems, tp, value, path, slot):
    if not isinstance(value, dict):
        return _mismatch(problems, tp, value, path, slot)
    args = get_args(tp)
    item_tp = args[1] if args else Any
    out, ok = {}, True
    for key, v in value.items():
        if not isinstance(key, str):
            problems.add(_join(path, str(key)), f"expected a name as key, got {_shown(key)}",
                         "quote the key so YAML reads it as text")
            ok = False
            continue
        out[key] = _convert(problems, item_tp, v, _join(path, key), slot.item())
        ok = ok and out[key] is not _BAD
    return out if ok else _BAD


def _to_any(problems, tp, value, path, slot):
    return value


_CONVERTERS = {float: _to_float, int: _to_int, str: _to_exact, bool: _to_exact,
               Any: _to_any, object: _to_any, Literal: _to_literal, Union: _to_union,
               types.UnionType: _to_union, tuple: _to_sequence, list: _to_sequence,
               dict: _to_dict}


def _convert(problems: _Problems, tp: Any, value: Any, path: str, slot: _Slot) -> Any:
    """``value`` as the annotation ``tp`` says, or ``_BAD`` after recording problems."""
    if dataclasses.is_dataclass(tp):
        return _build(problems, tp, value, path, slot)
    converter = _CONVERTERS.get(tp) or _CONVERTERS.get(get_origin(tp))
    if converter is None:
        problems.add(path, f"the annotation {tp!r} is not supported by the spec validator",
                     "(plugin author) annotate with float, int, str, bool, Literal, Optional, "
                     "tuple, list, dict[str, X] or a frozen dataclass")
        return _BAD
    return converter(problems, tp, value, path, slot)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _yaml_keys(cls: type) -> list[str]:
    return [_yaml_key(f) for f in dataclasses.fields(cls) if f.init]


def _required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _non_null(tp: Any) -> Any:
    """``X`` for ``X | None`` (rules only ever see non-null values)."""
    args = get_args(tp)
    if get_origin(tp) in _UNIONS and _NONE in args and len(args) == 2:
        return next(a for a in args if a is not _NONE)
    return tp


def _check_rules(problems, tp, value, path, slot) -> bool:
    broken = [name for name, arg in slot.rules.items()
              if value is not None and not _RULES[name][0](value, arg)]
    if not broken:
        return True
    if "choices" in broken:
        fix = _did_you_mean(value, slot.rules["choices"], "values")
    else:
        fix = f"use {_expected(tp, slot)}"
        if slot.example is not None:
            fix += f", e.g. {_as_yaml(slot.example)}"
    problems.add(path, f"expected {_expected(tp, slot)}{slot.about()}, got {_shown(value)}", fix)
    return False


def _read_fields(problems: _Problems, cls: type, data: Any, path: str,
                 slot: _Slot = _Slot()) -> dict[str, Any] | None:
    """The fields of dataclass ``cls`` found valid in mapping ``data``.

    Absent optional fields get their defaults; invalid or missing required
    fields are left out (and recorded as problems).  None when ``data`` is
    not a mapping at all.
    """
    try:
        fields = _fields(cls)
    except Exception as exc:  # unresolvable annotations are a plugin bug, reported as such
        problems.add(path, f"cannot resolve the annotations of {cls.__qualname__}: {exc}",
                     "(plugin author) import every name used in the annotations")
        return None
    if data is None and not any(_required(f) for f, _ in fields):
        data = {}
    if not isinstance(data, dict):
        _mismatch(problems, cls, data, path, slot)
        return None
    keys = [_yaml_key(f) for f, _ in fields]
    for key in data:
        if key not in keys:
            problems.add(_join(path, str(key)), f"unknown key {key!r}",
                         _did_you_mean(key, keys, "keys"))
    values = {}
    for f, hint in fields:
        key, fslot = _yaml_key(f), _Slot.of(f)
        if key not in data:
            if _required(f):
                problems.add(_join(path, key), f"missing required key {key!r}{fslot.about()}",
                             f"add {key}: {_as_yaml(_example(hint, fslot))}")
            else:
                values[f.name] = fslot.default
            continue
        value = _convert(problems, hint, data[key], _join(path, key), fslot)
        if value is not _BAD and _check_rules(problems, _non_null(hint), value,
                                              _join(path, key), fslot):
            values[f.name] = value
    return values


def _build(problems: _Problems, cls: type, data: Any, path: str, slot: _Slot = _Slot()) -> Any:
    """An instance of dataclass ``cls`` from mapping ``data``, or ``_BAD``."""
    before = len(problems)
    values = _read_fields(problems, cls, data, path, slot)
    if values is None or len(problems) > before:
        return _BAD
    try:
        return cls(**values)
    except Exception as exc:  # e.g. a __post_init__ check of the plugin
        problems.add(path, f"{cls.__qualname__} rejected these settings: {exc}",
                     "change the settings named in the message")
        return _BAD


# ---------------------------------------------------------------------------
# The document: sections, then cross-references
# ---------------------------------------------------------------------------

_MAX_SHOWN = 8


def _split_ref(text: str) -> tuple[str, str] | None:
    solver, dot, name = text.partition(".")
    return (solver, name) if solver and dot and name else None


def _raw_items(raw: Any, key: str, kind: type = dict) -> list[tuple[int, Any]]:
    """(index, item) of the ``kind`` items of list ``raw[key]``, skipping the rest."""
    items = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, e) for i, e in enumerate(items) if isinstance(e, kind)]


class _Reader:
    """Reads one document; every check adds to ``problems`` instead of raising."""

    def __init__(self, problems: _Problems):
        self.problems = problems
        self.add = problems.add
        self.driven: set[str] = set()

    # --- top level --------------------------------------------------------
    def job(self, data: Any, text: str, path: str | None) -> JobSpec | None:
        if data is None:
            self.add("", "the spec is empty", "start from one of the examples in jobs/")
            return None
        data, expansions, origins = self._expand(data)
        start = len(self.problems)
        job = self._job(data, text, path, expansions)
        self._blame_expansions(start, origins)
        return job

    def _job(self, data: Any, text: str, path: str | None, expansions: tuple) -> JobSpec | None:
        doc = _read_fields(self.problems, _Document, data, "")
        if doc is None:
            return None
        time = doc.get("time")
        if time is not None:
            self._check_time(time)
        self.driven = self._driven(data)
        solvers = self._solvers(doc.get("solvers"), time)
        if "solvers" not in doc:  # nothing to check references against
            return None
        couplings, targets = self._couplings(doc.get("couplings") or (), solvers)
        self.targets_complete &= "couplings" in doc
        scheme = self._scheme(doc.get("scheme"), solvers, targets)
        patterns = self._patterns(doc.get("patterns") or (), solvers, couplings, time, scheme)
        resources = doc.get("resources")
        if resources is not None:
            self._check_resources(resources, solvers)
        if self.problems:
            return None
        return JobSpec(
            name=doc["name"] or (Path(path).stem if path else "job"), time=time,
            solvers={name: SolverSpec(**draft) for name, draft in solvers.items()},
            couplings=tuple(couplings), scheme=scheme, checkpoint=doc["checkpoint"],
            resources=resources, hang_timeout=doc["hang_timeout"], progress=doc["progress"],
            text=text, path=path, patterns=tuple(patterns), driven=frozenset(self.driven),
            expansions=expansions)

    # --- pattern recipes (PatternKind.expand) -----------------------------
    def _expand(self, data: Any) -> tuple[Any, tuple, dict]:
        """``data`` with the couplings and scheme that recipe patterns stand for merged in.

        Returns (data, expansions, origins): ``origins`` maps a YAML path prefix of the merged
        document (``couplings[3]``, ``scheme``) to where the piece came from
        (``patterns[0] (expanded couplings[1])``), for :meth:`_blame_expansions`.
        """
        from couplings.patterns import KINDS
        if not isinstance(data, dict) or not isinstance(data.get("patterns"), list):
            return data, (), {}
        user_couplings = data.get("couplings")
        couplings = list(user_couplings) if isinstance(user_couplings, list) else None
        fed = {c["to"]: i for i, c in enumerate(couplings or ()) if isinstance(c, dict)
               and isinstance(c.get("to"), str)}
        scheme_from, scheme = ("user", data.get("scheme")) if data.get("scheme") is not None else (None, None)
        expansions, origins = [], {}
        for i, entry in _raw_items(data, "patterns"):
            kind = KINDS.get(entry.get("kind")) if isinstance(entry.get("kind"), str) else None
            if kind is None or kind.expand is None:
                continue
            path = _join("patterns", i)
            try:
                pieces = kind.expand(entry, data) or {}
            except Exception as exc:  # a recipe must not crash validation: report it instead
                self.add(path, f"the {entry['kind']} recipe could not expand this entry: "
                         f"{type(exc).__name__}: {exc}", "check this entry's settings")
                continue
            if not pieces:
                continue   # the entry itself is invalid: its own check reports why
            expansions.append((i, entry["kind"], pieces))
            for j, c in enumerate(pieces.get("couplings") or ()):
                target = c.get("to")
                if target in fed:
                    where = fed[target]
                    self.add(_join(_join("couplings", where), "to") if isinstance(where, int) else where,
                             f"input {target!r} is also fed by {path} ({entry['kind']})",
                             "remove this coupling (the pattern writes it; msorch validate --explain "
                             "shows what it adds), or write the couplings by hand without the pattern")
                    continue
                if couplings is None:
                    if user_couplings is not None:
                        break   # not a list: reported when the document is read
                    couplings = []
                origins[_join("couplings", len(couplings))] = f"{path} (expanded couplings[{j}])"
                fed[target] = f"{path} (expanded couplings[{j}])"
                couplings.append(c)
            if pieces.get("scheme") is not None:
                if scheme_from == "user":
                    self.add("scheme", f"{path} ({entry['kind']}) sets the coupling scheme itself",
                             "remove scheme: (msorch validate --explain shows the pattern's), or write "
                             "couplings and scheme by hand without the pattern")
                elif scheme_from is not None:
                    self.add(path, f"{scheme_from} already sets the coupling scheme",
                             "keep one recipe that sets a scheme per job")
                else:
                    scheme_from, scheme = path, pieces["scheme"]
                    origins["scheme"] = f"{path} (expanded scheme)"
        if not expansions:
            return data, (), {}
        merged = dict(data)
        if couplings is not None:
            merged["couplings"] = couplings
        if scheme is not None:
            merged["scheme"] = scheme
        return merged, tuple(expansions), origins

    def _blame_expansions(self, start: int, origins: dict) -> None:
        """Problems found in expanded pieces are reported at the pattern that wrote them (and left out
        when the pattern's own check already says the same, with a fix for the pattern's solvers)."""
        if not origins:
            return
        kept = []
        for k, p in enumerate(self.problems):
            for prefix, origin in origins.items() if k >= start else ():
                rest = p.path[len(prefix):]
                if p.path.startswith(prefix) and (not rest or rest[0] in ".["):
                    head, _, tail = origin.rpartition(" (expanded ")
                    own = [q.message for q in self.problems
                           if q.path == head or q.path.startswith(head + ".") or q.path.startswith(head + "[")]
                    if any(m.startswith(p.message.rstrip(".")) for m in own):
                        p = None
                    else:
                        p = Problem(f"{head} (expanded {tail[:-1]}{rest})", p.message, p.fix)
                    break
            if p is not None:
                kept.append(p)
        self.problems[:] = kept

    def _check_time(self, t: TimeSpec) -> None:
        if not t.end > t.start:
            self.add("time.end", f"expected an end time > start = {t.start:g} s, got {t.end:g}",
                     f"set time.end to a time after {t.start:g}, e.g. {t.start + t.window:g}")
            return
        ratio = (t.end - t.start) / t.window
        n = round(ratio) if math.isfinite(ratio) else 0
        if n < 1 or abs(ratio - n) > 1e-9 * ratio:
            n = max(n, 1)
            self.add("time.window",
                     f"(end - start)/window = {ratio:.9g} is not a whole number of windows",
                     f"use window: {(t.end - t.start) / n:.12g} ({n} windows) "
                     f"or end: {t.start + n * t.window:.12g}")

    # --- solvers ----------------------------------------------------------
    def _solvers(self, raw: dict | None, time: TimeSpec | None) -> dict[str, dict]:
        if raw is None:
            return {}
        if not raw:
            self.add("solvers", "no solvers", "add at least one entry under solvers:, e.g. "
                     "left: {kind: fem.heat}")
        drafts = {}
        for name, entry in raw.items():
            path = _join("solvers", name)
            if not name.isidentifier() or name == "coordinator":
                self.add(path, f"{name!r} cannot name a solver "
                         "(identifiers only, not 'coordinator')",
                         "rename it to a Python-style identifier such as left or md_box")
            drafts[name] = self._solver(name, entry, path, time)
        return drafts

    def _solver(self, name: str, entry: Any, path: str, time: TimeSpec | None) -> dict:
        draft = dict(name=name, kind=None, cls=None, ranks=None, dt=None, substeps=None,
                     params=None, output=None, outputs=None, inputs=None)
        values = _read_fields(self.problems, _SolverEntry, entry, path)
        if values is None:
            return draft
        draft.update({key: values.get(key) for key in ("kind", "ranks", "output")})
        if name in self.driven:   # a pattern's farm: its instances write no results of their own
            draft["output"] = OutputSpec(fields=())
        if draft["kind"] is not None:
            draft["cls"] = self._solver_class(draft["kind"], _join(path, "kind"))
        if draft["cls"] is not None and "params" in values:
            self._params(draft, values["params"], _join(path, "params"))
        if time is not None and "dt" in values:
            draft["dt"] = time.window if values["dt"] is None else values["dt"]
            # A pattern's own solver (an HMM farm) steps on its own clock, not the window's.
            draft["substeps"] = 1 if name in self.driven else \
                self._substeps(draft["dt"], time.window, _join(path, "dt"))
        if draft["output"] is not None and draft["output"].fields and draft["outputs"] is not None:
            for i, f in enumerate(draft["output"].fields):
                if f not in draft["outputs"]:
                    self.add(_join(_join(path, "output.fields"), i),
                             f"solver {name!r} has no output {f!r}",
                             _did_you_mean(f, draft["outputs"], "outputs"))
        return draft

    def _solver_class(self, kind: str, path: str) -> type | None:
        known = registry.names("solver")
        if kind not in known and ":" not in kind:
            self.add(path, f"unknown solver kind {kind!r}",
                     _did_you_mean(kind, known, "solver kinds")
                     + " or write 'package.module:Class'")
            return None
        try:
            cls = registry.load("solver", kind)
        except registry.PluginError as exc:
            self.add(path, str(exc), "check the module path and class name (and that the "
                     "package is installed)")
            return None
        except Exception as exc:  # the plugin's own import failed: report, don't crash
            self.add(path, f"loading solver {kind!r} failed: {type(exc).__name__}: {exc}",
                     "fix the plugin module (it must import without errors)")
            return None
        if not (isinstance(cls, type) and issubclass(cls, Solver)
                and dataclasses.is_dataclass(cls.Params)):
            self.add(path, f"{kind!r} resolves to {cls!r}, not a Solver subclass with a "
                     "dataclass Params", "name a class derived from msorch.solver.Solver")
            return None
        return cls

    def _params(self, draft: dict, raw: Any, path: str) -> None:
        cls = draft["cls"]
        params = _build(self.problems, cls.Params, {} if raw is None else raw, path)
        if params is _BAD:
            return
        draft["params"] = params
        try:
            issues = list(cls.check(params))
            outputs, inputs = cls.field_names(params)
        except Exception as exc:
            self.add(path, f"{cls.__qualname__}.check/field_names failed: "
                     f"{type(exc).__name__}: {exc}",
                     "(plugin author) make check() and field_names() total on valid Params")
            return
        for key, what, fix in issues:
            self.add(_join(path, key) if key else path, what, fix)
        draft["outputs"], draft["inputs"] = tuple(outputs), tuple(inputs)

    def _substeps(self, dt: float, window: float, path: str) -> int | None:
        ratio = window / dt
        n = round(ratio)
        if n >= 1 and abs(ratio - n) <= 1e-9 * ratio:
            return n
        n = max(n, 1)
        self.add(path, f"the window {window:g} s is not a whole number of steps dt = {dt:g} s "
                 f"(window/dt = {ratio:.9g})",
                 f"use dt: {window / n:.12g} ({n} step{'s' * (n > 1)} per window), "
                 "or change time.window")
        return None

    # --- couplings --------------------------------------------------------
    def _couplings(self, raw, solvers: dict[str, dict]) -> tuple[list[CouplingSpec], set[str]]:
        """Valid couplings, and the input refs they feed (None if some 'to' is unreadable)."""
        couplings, fed = [], {}
        self.targets_complete = True
        for i, entry in enumerate(raw):
            path = _join("couplings", i)
            values = _read_fields(self.problems, _CouplingEntry, entry, path)
            if values is None:
                self.targets_complete = False
                continue
            before = len(self.problems)
            src = self._endpoint(values.get("source"), _join(path, "from"), solvers, "outputs")
            dst = self._endpoint(values.get("target"), _join(path, "to"), solvers, "inputs")
            if dst is None:
                self.targets_complete = False
            if "mapping" in values:
                self._plugin("mapping", values["mapping"], _join(path, "mapping"))
            if src and dst and src[0] == dst[0]:
                self.add(path, f"solver {src[0]!r} is coupled to itself",
                         "couple two different solvers; feed a solver's own data back inside it")
            if dst:
                ref = ".".join(dst)
                if ref in fed:
                    self.add(_join(path, "to"),
                             f"input {ref!r} is already fed by couplings[{fed[ref]}]",
                             "remove one of the two couplings (an input takes at most one)")
                fed.setdefault(ref, i)
            if len(self.problems) == before and src and dst and "waveform" in values:
                couplings.append(CouplingSpec(*src, *dst, values["mapping"], values["waveform"]))
        return couplings, set(fed)

    def _endpoint(self, text: str | None, path: str, solvers: dict[str, dict], side: str):
        """(solver, field) of a 'solver.field' reference, or None after a problem."""
        if text is None:
            return None
        ref = _split_ref(text)
        if ref is None:
            self.add(path, f"expected '<solver>.<field>', got {text!r}",
                     f"write the solver name, a dot and one of its {side}, e.g. "
                     f"{self._example_ref(solvers, side)}")
            return None
        solver, name = ref
        if solver not in solvers:
            self.add(path, f"no solver named {solver!r}", _did_you_mean(solver, solvers, "solvers"))
            return None
        fields = solvers[solver][side]
        if fields is None:  # the solver itself is broken (already reported): can't check
            return ref
        if name not in fields:
            other = "inputs" if side == "outputs" else "outputs"
            fix = _did_you_mean(name, fields, f"{side} of {solver!r}")
            if name in (solvers[solver][other] or ()):
                fix = f"{name!r} is an {other[:-1]} of {solver!r}: swap from and to? ({fix})"
            self.add(path, f"solver {solver!r} ({solvers[solver]['kind']}) has no {side[:-1]} "
                     f"{name!r}", fix)
            return None
        return ref

    @staticmethod
    def _example_ref(solvers: dict[str, dict], side: str) -> str:
        for name, draft in solvers.items():
            if draft[side]:
                return f"{name}.{draft[side][0]}"
        return "left.temperature"

    def _plugin(self, kind: str, name: str, path: str) -> None:
        """A mapping/acceleration name: registered, or a 'module:Attr' that loads.

        Registered names are trusted here (their modules load on the ranks that
        use them); custom ones are imported now so typos fail before launch.
        """
        known = registry.names(kind)
        if name in known:
            return
        if ":" not in name:
            self.add(path, f"unknown {kind} {name!r}", _did_you_mean(name, known, f"{kind}s"))
            return
        try:
            registry.load(kind, name)
        except Exception as exc:
            self.add(path, str(exc), "check the module path and attribute name")

    # --- patterns ---------------------------------------------------------
    def _driven(self, data: dict) -> set[str]:
        """Solvers named as run by a pattern (read from the raw entries, before validation)."""
        from couplings.patterns import KINDS
        driven = set()
        for _, entry in _raw_items(data, "patterns"):
            kind = KINDS.get(entry.get("kind")) if isinstance(entry.get("kind"), str) else None
            if kind is not None:
                driven.update(kind.drives(entry))
        return driven

    def _patterns(self, raw, solvers: dict[str, dict], couplings, time, scheme) -> list:
        """Valid pattern entries; each kind's dataclass and check from couplings/patterns."""
        from couplings.patterns import KINDS, CheckContext
        valid: list = []
        for i, entry in enumerate(raw):
            path = _join("patterns", i)
            if not isinstance(entry, dict):
                self.add(path, f"expected a mapping with a kind, got {_shown(entry)}",
                         "write e.g. - {kind: hmm, macro: road, micro: ring, ...}")
                continue
            kind = entry.get("kind")
            if not isinstance(kind, str) or kind not in KINDS:
                self.add(_join(path, "kind"), "missing required key 'kind'" if kind is None else
                         f"unknown pattern kind {kind!r}", _did_you_mean(kind, KINDS, "pattern kinds"))
                continue
            pattern = _build(self.problems, KINDS[kind].spec, entry, path)
            if pattern is _BAD:
                continue
            before = len(self.problems)
            ctx = CheckContext(solvers, tuple(couplings), time, tuple(valid), scheme)
            for key, what, fix in KINDS[kind].check(pattern, ctx):
                self.add(_join(path, key), what, fix)
            if len(self.problems) == before:
                valid.append((i, pattern))
        return [p for _, p in valid]

    # --- scheme -----------------------------------------------------------
    def _scheme(self, raw: dict | None, solvers: dict[str, dict], targets: set[str]):
        values = _read_fields(self.problems, SchemeSpec, raw, "scheme")
        if values is None:
            return None
        values["order"] = self._order(values.get("order"), solvers)
        kind = values.get("kind")
        if kind == "implicit" and values.get("convergence") == ():
            example = min(targets, default="left.temperature")
            self.add("scheme.convergence", "an implicit scheme needs at least one convergence "
                     "measure", f"add convergence: [{{field: {example}, relative: 1.0e-6}}]")
        if kind == "explicit":
            for key in ("max_iterations", "convergence", "acceleration"):
                if key in (raw or {}):
                    self.add(_join("scheme", key), f"{key} is only used by implicit schemes",
                             "set scheme.kind: implicit, or remove it")
        # References are checked on the raw entries, so that a type error next
        # to them (already reported) does not hide them.
        for i, entry in _raw_items(raw, "convergence"):
            path = _join("scheme.convergence", i)
            if entry.get("relative") is None and entry.get("absolute") is None:
                self.add(path, "no tolerance given",
                         "add relative: 1.0e-6 and/or absolute: <value>")
            if isinstance(entry.get("field"), str):
                self._target(entry["field"], _join(path, "field"), targets)
        acc = (raw or {}).get("acceleration")
        if isinstance(acc, dict):
            if isinstance(acc.get("kind"), str):
                self._plugin("acceleration", acc["kind"], "scheme.acceleration.kind")
                self._acceleration_settings(acc)
            for i, name in _raw_items(acc, "fields", str):
                self._target(name, _join("scheme.acceleration.fields", i), targets)
        return SchemeSpec(**values) if len(values) == len(dataclasses.fields(SchemeSpec)) else None

    def _acceleration_settings(self, acc: dict) -> None:
        """Settings given for a method that does not use them (per its ``SETTINGS``)."""
        try:
            cls = registry.load("acceleration", acc["kind"])
        except Exception:   # unknown kind or broken plugin: reported by _plugin
            return
        settings = getattr(cls, "SETTINGS", None)
        known = {f.name for f in dataclasses.fields(AccelerationSpec)} - {"kind", "fields"}
        given = {k: v for k, v in acc.items() if k in known}
        # The three original settings were always accepted for every kind: still tolerated.
        legacy = {"relaxation", "initial_relaxation", "reuse"}
        if settings is not None:
            for key in given:
                if key not in settings and key not in legacy:
                    self.add(_join("scheme.acceleration", key),
                             f"{key} is not used by kind {acc['kind']!r}",
                             f"remove it ({acc['kind']} uses: {', '.join(sorted(settings))})")
        check = getattr(cls, "check", None)
        for key, message, fix in (check(given) if callable(check) else ()):
            self.add(_join("scheme.acceleration", key), message, fix)

    def _order(self, order: tuple[str, ...] | None, solvers: dict[str, dict]):
        if order is None:
            return None
        if not order:
            return tuple(solvers)
        for i, name in enumerate(order):
            path = _join("scheme.order", i)
            if name not in solvers:
                self.add(path, f"no solver named {name!r}", _did_you_mean(name, solvers, "solvers"))
            elif name in order[:i]:
                self.add(path, f"solver {name!r} is listed twice", "list each solver once")
        missing = [s for s in solvers if s not in order and s not in self.driven]
        if missing:
            self.add("scheme.order", f"leaves out solver(s) {', '.join(map(repr, missing))}",
                     f"list every solver once, e.g. order: [{', '.join(solvers)}]")
        return order

    def _target(self, ref: str, path: str, targets: set[str]) -> None:
        if ref in targets or not self.targets_complete and _split_ref(ref):
            return
        fix = (_did_you_mean(ref, sorted(targets), "coupling targets") if targets
               else f"add a coupling with to: {ref}")
        self.add(path, f"{ref!r} is not the target ('to') of any coupling", fix)

    # --- resources --------------------------------------------------------
    def _check_resources(self, resources: ResourcesSpec, solvers: dict[str, dict]) -> None:
        for i, line in enumerate(resources.extra):
            if not line.startswith("--") or any(c in line for c in "\n\r\0"):
                self.add(_join("resources.extra", i),
                         f"expected one long sbatch option, got {line!r}",
                         "write it as a single line starting with '--', e.g. '--mem=4G'")
        if resources.time is not None and resources.signal_before:
            limit = walltime_seconds(resources.time)
            if resources.signal_before >= limit:
                self.add("resources.signal_before",
                         f"the signal {resources.signal_before} s before the end comes before "
                         f"the job starts (time limit {limit} s)",
                         "lower signal_before or raise resources.time")
        self._check_placement(resources, solvers)
        ranks = [d["ranks"] for d in solvers.values()]
        if resources.tasks is None or not ranks or None in ranks:
            return
        total = 1 + sum(ranks)
        if resources.tasks < total:
            self.add("resources.tasks", f"expected at least the job's {total} ranks "
                     f"(1 coordinator + {sum(ranks)} solver ranks), got {resources.tasks}",
                     f"set tasks: {total} or remove it (default: the job's ranks)")

    def _check_placement(self, resources: ResourcesSpec, solvers: dict[str, dict]) -> None:
        if resources.placement is None:
            return
        for name, node in resources.placement.items():
            path = _join("resources.placement", name)
            if name not in solvers:
                self.add(path, f"{name!r} is not a solver of this job",
                         _did_you_mean(name, sorted(solvers), "solvers"))
            elif not 0 <= node < resources.nodes:
                self.add(path, f"expected a node index 0..{resources.nodes - 1} "
                         f"(resources.nodes is {resources.nodes}), got {node}",
                         f"use 0..{resources.nodes - 1} or raise resources.nodes to {node + 1}")
        missing = [n for n in solvers if n not in resources.placement]
        if missing:
            self.add("resources.placement", f"no node for {', '.join(map(repr, missing))}",
                     "give every solver a node, e.g. " + ", ".join(f"{n}: 0" for n in missing)
                     + " (or remove placement to pack the groups)")


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def parse_spec(text: str, path: str | None = None) -> JobSpec:
    """Validate YAML ``text`` into a :class:`JobSpec`.

    Parameters
    ----------
    text : str
        The job spec (see ``prompts/schema.md``).
    path : str, optional
        The file it came from; the default job name is its stem.

    Raises
    ------
    SpecError
        With every problem found, if there is any.
    """
    problems = _Problems()
    data = _load_yaml(text, problems)
    job = None if data is _BAD else _Reader(problems).job(data, text, path)
    if problems:
        raise SpecError(problems)
    return job


def load_spec(path) -> JobSpec:
    """Read and validate the job spec file at ``path`` (see :func:`parse_spec`).

    A user's own plugin modules (``kind: "mysolver:Grow"``) are looked for in the
    spec's directory, then the current one, after the installed packages.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem("", f"cannot read {str(path)!r}: {exc}",
                                 "give the path of a readable YAML file")]) from exc
    registry.add_search_path(Path(path).resolve().parent, Path.cwd())
    return parse_spec(text, str(path))
