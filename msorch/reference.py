"""The settings reference: job spec sections and solvers' settings and fields, as text or Markdown.

Everything here is read from code, never written by hand: the spec sections
from the dataclasses of :mod:`msorch.spec` (annotations, defaults, ``doc``,
``units`` and range rules in their field metadata), a solver's settings from
its ``Params`` dataclass (declared with :func:`msorch.solver.param`), and its
fields from ``field_names()`` and the optional ``field_info`` class attribute
(:class:`msorch.solver.FieldInfo`).  Nothing starts MPI: a field's units and
extensiveness are known before launch only when the solver declares them;
otherwise they come from ``fields()`` at the channel handshake, and the
reference says so.  Declared ``field_info`` is checked against ``fields()``
when a run sets up (:func:`msorch.solver.field_info_mismatches`).

``msorch solvers`` lists the registered kinds, ``msorch solvers KIND`` prints
one, ``msorch solvers --markdown`` writes ``docs/spec-reference.md``.
"""
from __future__ import annotations

import dataclasses
import inspect
import textwrap
from dataclasses import MISSING, dataclass
from typing import Any, Literal, get_args, get_origin

from . import registry, spec
from .solver import Solver

REGENERATE = "msorch solvers --markdown > docs/spec-reference.md"

# YAML keys of the document whose values are read by a dataclass of their own
# (their annotation there is a plain mapping/list); new sections are found by name.
_ENTRY_OF = {"solvers": "_SolverEntry", "couplings": "_CouplingEntry", "scheme": "SchemeSpec"}
_DESCRIPTIONS = {"_SolverEntry": "One solver: its kind, ranks, step and settings (`params:`, see Solvers below).",
                 "_CouplingEntry": "One coupling: data from a solver's output field to another's input field."}


@dataclass(frozen=True)
class Setting:
    """One key of a settings dataclass, as shown to people."""

    key: str
    type: str
    default: str          # YAML text, or "required"
    units: str
    allowed: str          # allowed values or range, "" when any value of the type
    doc: str


@dataclass(frozen=True)
class FieldDoc:
    name: str
    direction: str        # "output", "input", "output, input"
    units: str            # "" when only known at the handshake
    components: str
    extensive: str        # "yes" / "no" / ""
    doc: str


@dataclass(frozen=True)
class SolverDoc:
    kind: str
    target: str           # package.module:Class
    summary: str
    settings: list[Setting]
    fields: list[FieldDoc]
    notes: list[str]


# --- types and values --------------------------------------------------------
def _type_name(tp: Any) -> str:
    if tp in (float, int, str, bool):
        return tp.__name__
    if tp is Any or tp is object:
        return "any"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    origin, args = get_origin(tp) or tp, get_args(tp)
    if origin is Literal:
        return "str" if all(isinstance(a, str) for a in args) else "value"
    if origin in spec._UNIONS:
        names = [_type_name(a) for a in args if a is not spec._NONE]
        return " or ".join(names) + (" or null" if spec._NONE in args else "")
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"list of {len(args)} ({', '.join(map(_type_name, args))})"
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}" if len(args) == 2 else "mapping"
    return getattr(tp, "__name__", repr(tp))


def _literals(tp: Any) -> tuple | None:
    """The values of a Literal annotation (also inside Optional), else None."""
    tp = spec._non_null(tp)
    return get_args(tp) if get_origin(tp) is Literal else None


def _allowed(tp: Any, slot) -> str:
    values = _literals(tp) or slot.rules.get("choices")
    if values:
        return ", ".join(map(str, values))
    phrases = [spec._RULES[name][1](arg) for name, arg in slot.rules.items()]
    return " and ".join(p for p in phrases if p)


def _default(f: dataclasses.Field) -> str:
    if f.default is MISSING and f.default_factory is MISSING:
        return "required"
    value = f.default if f.default_factory is MISSING else f.default_factory()
    if dataclasses.is_dataclass(value):
        return "(defaults below)"
    return "null" if value is None else spec._as_yaml(value)


def settings_of(cls: type) -> list[Setting]:
    """Every YAML key of dataclass ``cls`` (a spec section or a solver's ``Params``)."""
    rows = []
    for f, hint in spec._fields(cls):
        slot = spec._Slot.of(f)
        doc = slot.doc or ("; ".join(_summary(c) for c in _dataclasses_in(hint)) + " (section below)"
                           if _dataclasses_in(hint) else "")
        rows.append(Setting(spec._yaml_key(f), _type_name(hint), _default(f), slot.units,
                            _allowed(hint, slot), " ".join(doc.split())))
    return rows


# --- solvers -----------------------------------------------------------------
def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(cls.__name__ + "("):   # dataclasses make up a signature when undocumented
        return _DESCRIPTIONS.get(cls.__name__, "")
    return " ".join(doc.split("\n\n")[0].split())


def describe_solver(kind: str) -> SolverDoc:
    """Settings and fields of the solver ``kind`` (registered name or ``module:Class``).

    Raises :class:`msorch.registry.PluginError` when it does not resolve to a Solver.
    """
    cls = registry.load("solver", kind)
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise registry.PluginError(f"solver {kind!r} is {cls!r}, not a subclass of msorch.solver.Solver")
    target = registry._entry_points("solver").get(kind, f"{cls.__module__}:{cls.__qualname__}")
    notes = []
    try:
        defaults = cls.Params()
    except TypeError:
        defaults = None
        notes.append("Params has required settings: the fields below are the class's declared "
                     "outputs and inputs.")
    if defaults is not None:
        outs, ins = cls.field_names(defaults)
        declared = cls.describe_fields(defaults)
    else:
        outs, ins = tuple(cls.outputs), tuple(cls.inputs)
        declared = {}
    if cls.field_names.__func__ is not Solver.field_names.__func__:
        notes.append("Which fields exist depends on the settings; listed: those of the default settings"
                     + (", then the other declared ones." if set(cls.field_info) - {*outs, *ins} else "."))
    fields = []
    names = list(dict.fromkeys([*outs, *ins, *cls.field_info]))
    for name in names:
        direction = ", ".join(d for d, group in (("output", outs), ("input", ins)) if name in group) \
            or "with other settings"
        info = declared.get(name) or cls.field_info.get(name)
        if info is None:
            fields.append(FieldDoc(name, direction, "", "", "", "(declared by fields() at the handshake)"))
        else:
            fields.append(FieldDoc(name, direction, info.units or "1", str(info.components),
                                   "yes" if info.extensive else "no", " ".join(info.doc.split())))
    if any(not f.units for f in fields):
        notes.append("Fields without units here declare them only in fields() after initialize(); the "
                     "coupling handshake checks units, components and extensiveness at setup.")
    return SolverDoc(kind, target, _summary(cls), settings_of(cls.Params), fields, notes)


# --- spec sections -------------------------------------------------------------
def spec_sections() -> list[tuple[str, str, list[Setting]]]:
    """(YAML path, description, settings) of every job spec section, document first."""
    out: list[tuple[str, str, list[Setting]]] = []
    seen: set[type] = set()

    def visit(path: str, cls: type, doc: str):
        if cls in seen:
            return
        seen.add(cls)
        out.append((path, doc, settings_of(cls)))
        for f, hint in spec._fields(cls):
            key = spec._yaml_key(f)
            for sub in _dataclasses_in(hint) or _entry_dataclass(cls, key):
                item = "[]" if get_origin(spec._non_null(hint)) in (tuple, list) else ""
                name = ".<name>" if key == "solvers" else ""
                visit(f"{path}.{key}{name}{item}".lstrip("."), sub, _summary(sub))

    visit("", spec._Document, "The top level of a job spec.")
    try:   # pattern kinds declare their entries' dataclasses in couplings/patterns
        from couplings.patterns import KINDS
    except ImportError:
        KINDS = {}
    for kind in sorted(KINDS):
        visit(f"patterns[] (kind: {kind})", KINDS[kind].spec, _summary(KINDS[kind].spec))
    return out


def _dataclasses_in(tp: Any) -> list[type]:
    if dataclasses.is_dataclass(tp):
        return [tp]
    return [c for a in get_args(tp) for c in _dataclasses_in(a)]


def _entry_dataclass(owner: type, key: str) -> list[type]:
    """The dataclass reading a plain-annotated key of the document (``solvers``, ``couplings``, ...)."""
    if owner is not spec._Document:
        return []
    singular = key.rstrip("s")
    candidates = [_ENTRY_OF.get(key), f"_{singular.capitalize()}Entry", f"{singular.capitalize()}Spec"]
    for name in filter(None, candidates):
        cls = getattr(spec, name, None)
        if dataclasses.is_dataclass(cls):
            return [cls]
    return []


# --- formatting ------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else ""


def _md_settings(rows: list[Setting]) -> list[str]:
    lines = ["| key | type | default | units | allowed | description |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([f"`{r.key}`", _md_cell(r.type), f"`{_md_cell(r.default)}`",
                                        _md_cell(r.units), _md_cell(r.allowed), _md_cell(r.doc)]) + " |")
    return lines


def solver_markdown(doc: SolverDoc, level: int = 3) -> str:
    lines = [f"{'#' * level} `{doc.kind}`", "", f"`{doc.target}` — {doc.summary}", ""]
    lines += ["Settings (`params:`):", ""] + (_md_settings(doc.settings) if doc.settings else ["(none)"])
    lines += ["", "Fields:", "", "| field | direction | units | components | extensive | description |",
              "|---|---|---|---|---|---|"]
    for f in doc.fields:
        lines.append("| " + " | ".join([f"`{f.name}`", f.direction, _md_cell(f.units) or "at handshake",
                                        f.components, f.extensive, _md_cell(f.doc)]) + " |")
    lines += [""] + [f"- {n}" for n in doc.notes]
    return "\n".join(lines).rstrip() + "\n"


def solver_text(doc: SolverDoc) -> str:
    """The terminal form of ``msorch solvers KIND``."""
    def wrap(text, indent, rest=None):
        return textwrap.fill(text, 100, initial_indent=indent, subsequent_indent=rest or indent)
    lines = [f"{doc.kind}  ({doc.target})", wrap(doc.summary, "  "), "", "settings (params:):"]
    if not doc.settings:
        lines.append("  (none)")
    for s in doc.settings:
        head = f"  {s.key}: {s.type} = {s.default}" + (f"  [{s.units}]" if s.units else "")
        lines.append(head)
        if s.allowed:
            lines.append(f"      allowed: {s.allowed}")
        if s.doc:
            lines.append(wrap(s.doc, "      "))
    lines += ["", "fields:"]
    for f in doc.fields:
        if f.units:
            lines.append(f"  {f.name} ({f.direction}): [{f.units}], {f.components} component(s), "
                         f"{'extensive' if f.extensive == 'yes' else 'intensive'}" + (f" — {f.doc}" if f.doc else ""))
        else:
            lines.append(f"  {f.name} ({f.direction}): units at the handshake")
    lines += [wrap(n, "  note: ", "        ") for n in doc.notes]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The whole of ``docs/spec-reference.md``."""
    lines = ["# Job spec and solver reference", "",
             f"Generated from the code by `{REGENERATE}`; do not edit by hand.",
             "A test (`tests/unit/test_reference.py`) fails when this file is out of date.", "",
             "## Job spec sections", ""]
    for path, doc, rows in spec_sections():
        lines += [f"### `{path or '(top level)'}`", "", doc, ""] + _md_settings(rows) + [""]
    lines += ["## Solvers", "", "Registered kinds (entry points in group `msorch.solvers`); any "
              "`package.module:Class` works the same way (`msorch solvers package.module:Class`).", ""]
    for kind in registry.names("solver"):
        try:
            lines.append(solver_markdown(describe_solver(kind)))
        except registry.PluginError as exc:
            lines += [f"### `{kind}`", "", f"cannot be loaded: {exc}", ""]
    return "\n".join(lines).rstrip() + "\n"


def kinds_text() -> str:
    """The terminal form of ``msorch solvers``: registered kinds with their one-line summary."""
    lines = []
    for kind in registry.names("solver"):
        try:
            cls = registry.load("solver", kind)
            summary = _summary(cls).split(". ")[0]
        except registry.PluginError as exc:
            summary = f"(cannot be loaded: {exc})"
        lines.append(f"{kind:16s} {summary}")
    lines.append("\n'msorch solvers KIND' (or package.module:Class) prints its settings and fields.")
    return "\n".join(lines) + "\n"
