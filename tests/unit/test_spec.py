"""Job spec validation (msorch/spec.py): every broken spec names its YAML path and a hint.

The solver classes used are the registered ``test.null`` (outputs ``out``,
inputs ``in``) and :class:`KitchenSink` below, referenced as ``module:Class``,
whose ``Params`` uses every annotation the validator supports.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from msorch.solver import Solver, param
from msorch.spec import (AccelerationSpec, CheckpointSpec, ConvergenceSpec, CouplingSpec,
                         JobSpec, OutputSpec, Problem, ResourcesSpec, SchemeSpec, SpecError,
                         TimeSpec, load_spec, parse_spec)
from solvers.null import NullParams, NullSolver


@dataclass(frozen=True)
class Box:
    length: float = param(doc="box edge length", units="m")
    periodic: bool = param(True, "periodic boundaries")


@dataclass(frozen=True)
class KitchenSinkParams:
    conductivity: float = param(doc="thermal conductivity", units="W/(m K)")
    nx: int = param(8, "number of cells")
    label: str = param("x", "a label")
    verbose: bool = param(False, "print more")
    method: Literal["euler", "rk4"] = param("euler", "time integrator")
    tol: Optional[float] = param(None, "solver tolerance")
    cap: float | None = param(None, "temperature cap", units="K")
    spacing: tuple[float, ...] = param((1.0,), "cell widths", units="m")
    pair: tuple[int, str] = param((1, "a"), "an index and a name")
    counts: list[int] = param([1, 2], "cell counts")
    weights: dict[str, float] = param({}, "weights by name")
    box: Box = param(Box(1.0), "simulation box")
    lo: float = param(0.0, "lower bound", units="K")
    hi: float = param(1.0, "upper bound", units="K")
    flux_output: bool = param(False, "also output the heat flux")
    seed: int | Literal["random"] = param("random", "random seed")


class KitchenSink(Solver):
    """Never run: only its class-level API is used by the validator."""

    Params = KitchenSinkParams

    @classmethod
    def field_names(cls, params):
        outputs = ("temperature", "flux") if params.flux_output else ("temperature",)
        return outputs, ("heat",)

    @classmethod
    def check(cls, params):
        if params.hi <= params.lo:
            return [("hi", f"expected hi > lo = {params.lo}, got {params.hi}",
                     f"set hi above {params.lo}")]
        return []


ROOT = Path(__file__).resolve().parents[2]
KIND = f"{__name__}:KitchenSink"  # the module object pytest imported, whatever its name

BASE = """\
name: demo
time: {start: 0.0, end: 1.0, window: 0.1}
solvers:
  a: {kind: test.null, ranks: 2, dt: 0.025, params: {n: 4, offset: 1e-3}}
  b:
    kind: 'KIND'
    ranks: 1
    params:
      conductivity: 2.5
      flux_output: true
      tol: 1e-8
      spacing: [0.5, 1]
      pair: [3, left]
      weights: {x: 2}
      box: {length: 2}
      method: rk4
      seed: 7
    output: {every: 2, fields: [flux]}
couplings:
  - {from: a.out, to: b.heat}
  - {from: b.temperature, to: a.in, mapping: linear, waveform: constant}
scheme:
  kind: implicit
  staggering: serial
  order: [b, a]
  max_iterations: 20
  convergence: [{field: a.in, relative: 1e-10}, {field: b.heat, absolute: 1.0e-3}]
  acceleration: {kind: iqn-ils, relaxation: 0.3, reuse: 2, fields: [a.in]}
checkpoint: {every_windows: 5, keep: 2}
resources: {nodes: 1, tasks: 4, time: "00:10:00", partition: debug}
hang_timeout: 60
progress: false
""".replace("KIND", KIND)

DELETE = object()


def edited(*edits) -> str:
    """BASE with ``(dotted.path, value)`` edits applied (value DELETE removes the key)."""
    data = yaml.safe_load(BASE)
    for dotted, value in edits:
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        node = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return info.value.problems


# (id, spec text, YAML path of the problem, text the problem must contain, problems expected)
CASES = [
    # YAML itself
    ("syntax", "time: {start: 0\nsolvers: [a,\n", "", "at line 2, column 8", 1),
    ("duplicate-top", BASE + "hang_timeout: 90\n", "hang_timeout", "duplicate key", 1),
    ("duplicate-nested", BASE.replace("    ranks: 1\n", "    ranks: 1\n    ranks: 1\n"),
     "solvers.b.ranks", "first at line 7, again at line 8", 1),
    ("empty", "", "", "empty", 1),
    ("not-a-mapping", "- 1\n- 2\n", "", "expected a mapping with keys time, solvers", 1),
    # unknown keys everywhere
    ("top-key", edited(("couplngs", [])), "couplngs", "did you mean 'couplings'", 1),
    ("solver-key", edited(("solvers.a.rank", 2)), "solvers.a.rank", "did you mean 'ranks'", 1),
    ("params-key", edited(("solvers.b.params.conductivty", 1.0)),
     "solvers.b.params.conductivty", "did you mean 'conductivity'", 1),
    ("nested-params-key", edited(("solvers.b.params.box", {"length": 1, "lenght": 2})),
     "solvers.b.params.box.lenght", "did you mean 'length'", 1),
    ("coupling-key", edited(("couplings.0.mapings", "nearest")), "couplings[0].mapings",
     "did you mean 'mapping'", 1),
    ("scheme-key", edited(("scheme.max_iteration", 3)), "scheme.max_iteration",
     "did you mean 'max_iterations'", 1),
    ("acceleration-key", edited(("scheme.acceleration.relax", 0.1)),
     "scheme.acceleration.relax", "did you mean 'relaxation'", 1),
    ("checkpoint-key", edited(("checkpoint.every_window", 3)), "checkpoint.every_window",
     "did you mean 'every_windows'", 1),
    ("resources-key", edited(("resources.partiton", "x")), "resources.partiton",
     "did you mean 'partition'", 1),
    # solver kinds
    ("kind-typo", edited(("solvers.a.kind", "test.nul")), "solvers.a.kind",
     "unknown solver kind 'test.nul'. Fix: did you mean 'test.null'", 1),
    ("kind-no-attr", edited(("solvers.a.kind", "solvers.null:NulSolver")), "solvers.a.kind",
     "has no attribute 'NulSolver'", 1),
    ("kind-no-module", edited(("solvers.a.kind", "no_such_pkg.mod:Solver")), "solvers.a.kind",
     "cannot import module", 1),
    ("kind-not-solver", edited(("solvers.a.kind", "json:dumps")), "solvers.a.kind",
     "not a Solver subclass", 1),
    # params against the Params dataclass
    ("float-text", edited(("solvers.b.params.conductivity", "high")),
     "solvers.b.params.conductivity",
     "expected a number (thermal conductivity [W/(m K)]), got 'high'", 1),
    ("int-bool", edited(("solvers.b.params.nx", True)), "solvers.b.params.nx",
     "expected an integer (number of cells), got True", 1),
    ("int-fraction", edited(("solvers.b.params.nx", 2.5)), "solvers.b.params.nx",
     "use a whole number", 1),
    ("int-exponent-text", edited(("solvers.b.params.nx", "1e3")), "solvers.b.params.nx",
     "e.g. 1000", 1),
    ("str-number", edited(("solvers.b.params.label", 5)), "solvers.b.params.label", "quote", 1),
    ("bool-text", edited(("solvers.b.params.verbose", "maybe")), "solvers.b.params.verbose",
     "true or false", 1),
    ("literal", edited(("solvers.b.params.method", "rk5")), "solvers.b.params.method",
     "did you mean 'rk4'", 1),
    ("union", edited(("solvers.b.params.seed", "rnd")), "solvers.b.params.seed",
     "expected an integer or one of 'random' (random seed), got 'rnd'", 1),
    ("optional", edited(("solvers.b.params.tol", "small")), "solvers.b.params.tol",
     "expected a number", 1),
    ("pipe-none-units", edited(("solvers.b.params.cap", [1])), "solvers.b.params.cap",
     "(temperature cap [K])", 1),
    ("tuple-item", edited(("solvers.b.params.spacing", [1.0, "wide"])),
     "solvers.b.params.spacing[1]", "expected a number (cell widths [m])", 1),
    ("tuple-length", edited(("solvers.b.params.pair", [1])), "solvers.b.params.pair",
     "a list of 2 items", 1),
    ("tuple-item-type", edited(("solvers.b.params.pair", ["x", "y"])),
     "solvers.b.params.pair[0]", "expected an integer", 1),
    ("list-item", edited(("solvers.b.params.counts", [1, "two"])),
     "solvers.b.params.counts[1]", "expected an integer", 1),
    ("dict-value", edited(("solvers.b.params.weights", {"x": "heavy"})),
     "solvers.b.params.weights.x", "expected a number", 1),
    ("nested-missing", edited(("solvers.b.params.box", {"periodic": False})),
     "solvers.b.params.box.length", "missing required key 'length' (box edge length [m])", 1),
    ("params-missing", edited(("solvers.b.params.conductivity", DELETE)),
     "solvers.b.params.conductivity", "missing required key", 1),
    ("params-not-mapping", edited(("solvers.b.params", [1, 2])), "solvers.b.params",
     "expected a mapping with keys conductivity", 1),
    ("check", edited(("solvers.b.params.hi", -1.0)), "solvers.b.params.hi",
     "expected hi > lo = 0.0", 1),
    # solver entries
    ("ranks-zero", edited(("solvers.a.ranks", 0)), "solvers.a.ranks", "an integer >= 1", 1),
    ("ranks-text", edited(("solvers.a.ranks", "two")), "solvers.a.ranks",
     "expected an integer >= 1 (MPI ranks of this solver's group), got 'two'", 1),
    ("dt-divides", edited(("solvers.a.dt", 0.03)), "solvers.a.dt", "dt: 0.0333333333333", 1),
    ("dt-too-big", edited(("solvers.a.dt", 0.2)), "solvers.a.dt", "dt: 0.1 (1 step per window)", 1),
    ("kind-missing", edited(("solvers.a.kind", DELETE)), "solvers.a.kind",
     "missing required key 'kind'", 1),
    ("solver-name", edited(("solvers.coordinator", {"kind": "test.null"}),
                           ("scheme.order", ["b", "a", "coordinator"]),
                           ("resources.tasks", DELETE)),
     "solvers.coordinator", "not 'coordinator'", 1),
    ("output-field", edited(("solvers.b.output.fields", ["flx"])),
     "solvers.b.output.fields[0]", "did you mean 'flux'", 1),
    ("output-every", edited(("solvers.b.output.every", 0)), "solvers.b.output.every", ">= 1", 1),
    # time
    ("end-before-start", edited(("time.end", 0.0)), "time.end", "end time > start", 1),
    ("window-divides", edited(("time.window", 0.3)), "time.window",
     "not a whole number of windows", 1),
    ("window-zero", edited(("time.window", 0)), "time.window", "a number > 0", 1),
    ("time-missing", edited(("time", DELETE)), "time", "missing required key 'time'", 1),
    # couplings
    ("from-solver", edited(("couplings.0.from", "aa.out")), "couplings[0].from",
     "did you mean 'a'", 1),
    ("to-field", edited(("couplings.0.to", "b.heet")), "couplings[0].to",
     "did you mean 'heat'", 1),
    ("from-input", edited(("couplings.0.from", "a.in")), "couplings[0].from",
     "'in' is an input of 'a': swap from and to?", 1),
    ("ref-form", edited(("couplings.0.from", "aout")), "couplings[0].from",
     "expected '<solver>.<field>'", 1),
    ("from-missing", edited(("couplings.0.from", DELETE)), "couplings[0].from",
     "missing required key 'from'", 1),
    ("fed-twice", edited(("couplings.2", {"from": "a.out", "to": "b.heat"})), "couplings[2].to",
     "already fed by couplings[0]", 1),
    ("self-coupling", edited(("couplings.0.from", "b.temperature")), "couplings[0]",
     "coupled to itself", 1),
    ("mapping", edited(("couplings.1.mapping", "nearst")), "couplings[1].mapping",
     "did you mean 'nearest'", 1),
    ("mapping-module", edited(("couplings.1.mapping", "no_such_pkg:Map")), "couplings[1].mapping",
     "cannot import", 1),
    ("waveform", edited(("couplings.0.waveform", "cubic")), "couplings[0].waveform",
     "one of 'linear', 'constant'", 1),
    ("couplings-not-list", edited(("couplings", {"from": "a.out"})), "couplings",
     "expected a list", 1),
    # scheme
    ("scheme-kind", edited(("scheme.kind", "implict")), "scheme.kind",
     "did you mean 'implicit'", 1),
    ("staggering", edited(("scheme.staggering", "seriel")), "scheme.staggering",
     "did you mean 'serial'", 1),
    ("order-twice", edited(("scheme.order", ["b", "b"])), "scheme.order[1]", "listed twice", 2),
    ("order-unknown", edited(("scheme.order", ["b", "a", "c"])), "scheme.order[2]",
     "no solver named 'c'", 1),
    ("order-missing", edited(("scheme.order", ["b"])), "scheme.order",
     "leaves out solver(s) 'a'", 1),
    ("no-convergence", edited(("scheme.convergence", DELETE)), "scheme.convergence",
     "needs at least one convergence measure", 1),
    ("convergence-field", edited(("scheme.convergence.0.field", "a.inn")),
     "scheme.convergence[0].field", "did you mean 'a.in'", 1),
    ("convergence-negative", edited(("scheme.convergence.0.relative", -1)),
     "scheme.convergence[0].relative", "a number > 0", 1),
    ("convergence-none", edited(("scheme.convergence.1", {"field": "b.heat"})),
     "scheme.convergence[1]", "no tolerance", 1),
    ("max-iterations", edited(("scheme.max_iterations", 0)), "scheme.max_iterations", ">= 1", 1),
    ("explicit-with-convergence", edited(("scheme.kind", "explicit")), "scheme.convergence",
     "only used by implicit schemes", 3),
    ("acceleration-kind", edited(("scheme.acceleration.kind", "iqn-il")),
     "scheme.acceleration.kind", "did you mean 'iqn-ils'", 1),
    ("relaxation", edited(("scheme.acceleration.relaxation", 1.5)),
     "scheme.acceleration.relaxation", "a number > 0 and <= 1", 1),
    ("initial-relaxation", edited(("scheme.acceleration.initial_relaxation", 0)),
     "scheme.acceleration.initial_relaxation", "> 0 and <= 1", 1),
    ("reuse", edited(("scheme.acceleration.reuse", -1)), "scheme.acceleration.reuse", ">= 0", 1),
    ("acceleration-field", edited(("scheme.acceleration.fields", ["b.temperature"])),
     "scheme.acceleration.fields[0]", "not the target ('to') of any coupling", 1),
    # checkpoint, resources, top-level scalars
    ("keep", edited(("checkpoint.keep", 0)), "checkpoint.keep", "an integer >= 1", 1),
    ("every-seconds", edited(("checkpoint.every_seconds", -5)), "checkpoint.every_seconds",
     "a number > 0", 1),
    ("slurm-time", edited(("resources.time", "1:2:3:4")), "resources.time", "SLURM time format", 1),
    ("slurm-time-number", edited(("resources.time", 30)), "resources.time", "quote", 1),
    ("sbatch-extra", edited(("resources.extra", ["--mem=4G", "mem=4G"])), "resources.extra[1]",
     "starting with '--'", 1),
    ("signal-before", edited(("resources.signal_before", 600)), "resources.signal_before",
     "time limit 600 s", 1),
    ("signal-range", edited(("resources.signal_before", 70000)), "resources.signal_before",
     "<= 65535", 1),
    ("tasks", edited(("resources.tasks", 3)), "resources.tasks", "at least the job's 4 ranks", 1),
    ("hang-timeout", edited(("hang_timeout", 0)), "hang_timeout", "a number > 0", 1),
    ("progress", edited(("progress", "maybe")), "progress", "true or false", 1),
    ("name", edited(("name", "a/b")), "name", "letters, digits", 1),
]


@pytest.mark.parametrize("text, path, hint, count", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_broken_spec_names_path_and_hint(text, path, hint, count):
    """Each broken spec is one mistake in an otherwise valid spec: the error names
    its YAML path with the expected hint, and nothing else is reported
    (``count`` > 1 only where one mistake really breaks several things)."""
    problems = problems_of(text)
    at_path = [p for p in problems if p.path == path]
    assert at_path, f"no problem at {path!r}: {problems}"
    assert any(hint in f"{p.message}. Fix: {p.fix}" for p in at_path), at_path
    assert len(problems) == count, problems


def test_base_spec_is_valid():
    """The base of all broken cases parses (so each case's error is its own edit)."""
    assert parse_spec(BASE).name == "demo"


def test_all_problems_reported_at_once():
    """Six mistakes in different sections come back together in one SpecError."""
    text = edited(("solvers.a.ranks", "two"),
                  ("solvers.b.params.conductivity", "high"),
                  ("couplings.0.from", "a.outt"),
                  ("scheme.staggering", "seriel"),
                  ("scheme.acceleration.relaxation", 2),
                  ("resources.time", "soon"),
                  ("hang_timeout", -1))
    paths = {p.path for p in problems_of(text)}
    assert paths == {"solvers.a.ranks", "solvers.b.params.conductivity", "couplings[0].from",
                     "scheme.staggering", "scheme.acceleration.relaxation", "resources.time",
                     "hang_timeout"}


def test_error_text_is_one_bullet_per_problem():
    text = edited(("solvers.a.ranks", "two"), ("scheme.kind", "implict"))
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    err = info.value
    assert isinstance(err, ValueError)
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems) == 2
    assert lines[0] == ("- solvers.a.ranks: expected an integer >= 1 (MPI ranks of this solver's "
                        "group), got 'two'. Fix: write an integer >= 1, e.g. 1")
    assert all(line.startswith("- ") and ". Fix: " in line for line in lines)


def test_valid_spec_builds_expected_objects():
    spec = parse_spec(BASE, path="jobs/demo.yaml")
    assert isinstance(spec, JobSpec)
    assert spec.time == TimeSpec(0.0, 1.0, 0.1)
    assert spec.time.n_windows == 10
    assert list(spec.solvers) == ["a", "b"]
    a, b = spec.solvers["a"], spec.solvers["b"]
    assert (a.kind, a.cls, a.ranks, a.dt, a.substeps) == ("test.null", NullSolver, 2, 0.025, 4)
    assert a.params == NullParams(n=4, dim=1, offset=1e-3)
    assert (a.output, a.outputs, a.inputs) == (OutputSpec(), ("out",), ("in",))
    assert (b.kind, b.cls.__name__, b.ranks, b.dt, b.substeps) == (KIND, "KitchenSink", 1, 0.1, 1)
    assert b.params == KitchenSinkParams(
        conductivity=2.5, flux_output=True, tol=1e-8, spacing=(0.5, 1.0), pair=(3, "left"),
        weights={"x": 2.0}, box=Box(2.0), method="rk4", seed=7)
    assert isinstance(b.params.spacing, tuple) and isinstance(b.params.counts, list)
    assert b.output == OutputSpec(every=2, fields=("flux",))
    assert (b.outputs, b.inputs) == (("temperature", "flux"), ("heat",))
    assert spec.couplings == (CouplingSpec("a", "out", "b", "heat"),
                              CouplingSpec("b", "temperature", "a", "in", "linear", "constant"))
    assert [c.ref for c in spec.couplings] == ["b.heat", "a.in"]
    assert spec.scheme == SchemeSpec(
        kind="implicit", staggering="serial", order=("b", "a"), max_iterations=20,
        convergence=(ConvergenceSpec("a.in", relative=1e-10),
                     ConvergenceSpec("b.heat", absolute=1e-3)),
        acceleration=AccelerationSpec("iqn-ils", 0.3, 0.5, 2, ("a.in",)))
    assert spec.checkpoint == CheckpointSpec(every_windows=5, every_seconds=None, keep=2)
    assert spec.resources == ResourcesSpec(nodes=1, tasks=4, time="00:10:00", partition="debug")
    assert (spec.hang_timeout, spec.progress) == (60.0, False)
    assert spec.total_ranks == 4
    assert (spec.text, spec.path) == (BASE, "jobs/demo.yaml")


def test_minimal_spec_defaults():
    spec = parse_spec("time: {start: 0, end: 2, window: 0.5}\n"
                      "solvers:\n  left: {kind: test.null}\n  right: {kind: test.null}\n")
    assert spec.name == "job"
    assert spec.solvers["left"].dt == 0.5 and spec.solvers["left"].substeps == 1
    assert spec.solvers["left"].ranks == 1 and spec.solvers["left"].params == NullParams()
    assert spec.couplings == ()
    assert spec.scheme == SchemeSpec(order=("left", "right"))  # explicit, parallel
    assert spec.checkpoint is None and spec.resources == ResourcesSpec()
    assert (spec.hang_timeout, spec.progress, spec.total_ranks) == (300.0, True, 3)


def test_yaml11_float_quirk_round_trip():
    """PyYAML (YAML 1.1) reads 1e-10 as text; float settings still get the number."""
    assert yaml.safe_load("x: 1e-10")["x"] == "1e-10"  # the quirk this guards against
    spec = parse_spec(BASE)
    assert spec.scheme.convergence[0].relative == 1e-10
    assert spec.solvers["a"].params.offset == 1e-3 and spec.solvers["b"].params.tol == 1e-8
    again = parse_spec(edited())  # loaded and dumped again by PyYAML
    assert "relative: 1e-10" in again.text and again.scheme == spec.scheme


def test_sexagesimal_is_text():
    """YAML 1.1 would read 10:00 as the integer 600; a SLURM limit means text."""
    spec = parse_spec(BASE.replace('time: "00:10:00"', "time: 10:00"))
    assert spec.resources.time == "10:00"


def test_load_spec_from_file(tmp_path):
    path = tmp_path / "heat_demo.yaml"
    path.write_text(BASE.replace("name: demo\n", ""))
    spec = load_spec(path)
    assert (spec.name, spec.path, spec.text) == ("heat_demo", str(path), path.read_text())
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "missing.yaml")
    assert "cannot read" in str(info.value)


def test_merge_keys_are_not_duplicates():
    """A YAML merge (``<<: *anchor``) may override keys on purpose."""
    spec = parse_spec("time: {start: 0, end: 1, window: 0.5}\nsolvers:\n"
                      "  a: &base {kind: test.null, ranks: 2}\n  b: {<<: *base, ranks: 3}\n")
    assert (spec.solvers["a"].ranks, spec.solvers["b"].ranks) == (2, 3)
    assert spec.solvers["b"].kind == "test.null"


def test_spec_module_imports_no_mpi():
    """Validation runs on login nodes and in ``msorch submit``: no MPI import allowed."""
    code = "import sys, msorch.spec; sys.exit('mpi4py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
