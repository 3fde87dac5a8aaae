"""The ``patterns: [{kind: hmm}]`` section: every bad input of issue 11 is a spec error before launch.

Each case breaks one thing in the valid demo job (jobs/hmm_farm_demo.yaml) and
checks the YAML path, what was expected and the fix text of the problem.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from msorch.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "jobs" / "hmm_farm_demo.yaml").read_text())


def spec(edit=None) -> dict:
    data = copy.deepcopy(DEMO)
    if edit:
        edit(data)
    return data


def problems(data) -> list:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data))
    return info.value.problems


def only(data, path: str):
    found = problems(data)
    assert [p.path for p in found] == [path], [str(p) for p in found]
    return found[0]


def hmm(data) -> dict:
    return data["patterns"][0]


def test_the_demo_is_valid_and_lists_its_pattern():
    job = parse_spec(yaml.safe_dump(spec()))
    (p,) = job.patterns
    assert (p.kind, p.macro, p.micro, p.query.sets, p.answer.observables) == \
        ("hmm", "rod", "cell", ("temperature",), ("conductivity",))
    assert job.driven == frozenset({"cell"})
    assert job.solvers["cell"].dt == 1.0   # the micro step: need not divide the window
    r = subprocess.run([sys.executable, "-m", "msorch", "validate", str(ROOT / "jobs" / "hmm_farm_demo.yaml")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "pattern hmm: rod asks cell (farm)" in r.stdout and "run by a pattern" in r.stdout


def test_query_setting_the_micro_solver_does_not_accept():
    p = only(spec(lambda d: hmm(d)["query"].update(sets=["tau"])), "patterns[0].query.sets[0]")
    assert "not in its query_settings" in p.message
    p = only(spec(lambda d: hmm(d)["query"].update(sets=["temprature"])), "patterns[0].query.sets[0]")
    assert "did you mean 'temperature'" in p.fix


def test_answer_the_micro_solver_does_not_produce():
    p = only(spec(lambda d: hmm(d)["answer"].update({"from": ["conductivty"]})), "patterns[0].answer.from[0]")
    assert "produces no output 'conductivty'" in p.message and "did you mean 'conductivity'" in p.fix


def test_unit_mismatch_between_answer_and_macro_input():
    """The Cell's 'bath' input is in K; answering the rod's conductivity (W/(m K)) with a K-valued
    output must fail: the test solver TempCell answers its temperature."""
    def edit(d):
        d["solvers"]["cell"]["kind"] = "tests.unit.test_hmm_spec:TempCell"
        hmm(d)["answer"]["from"] = ["temperature_out"]
    p = only(spec(edit), "patterns[0].answer.from[0]")
    assert "'K'" in p.message and "'W/(m K)'" in p.message


def test_surrogate_threshold_must_be_positive():
    for bad in (0.0, -1.0):
        p = only(spec(lambda d: hmm(d).update(surrogate={"kind": "gp", "max_std": bad})),
                 "patterns[0].surrogate.max_std")
        assert "> 0" in p.message


def test_farm_with_zero_ranks():
    p = only(spec(lambda d: d["solvers"]["cell"].update(ranks=0)), "solvers.cell.ranks")
    assert ">= 1" in p.message


def test_micro_time_shorter_than_the_micro_step():
    p = only(spec(lambda d: hmm(d).update(micro_time=0.25)), "patterns[0].micro_time")
    assert "shorter than the micro solver's step" in p.message and "micro_time >= 1" in p.fix
    p = only(spec(lambda d: hmm(d).update(relax_time=2.5)), "patterns[0].relax_time")
    assert "whole number of micro steps" in p.message


def test_instance_ranks_must_divide_the_farm():
    p = only(spec(lambda d: hmm(d).update(instance_ranks=3)), "patterns[0].instance_ranks")
    assert "do not divide" in p.message


def test_references_with_did_you_mean():
    found = {p.path: p for p in problems(spec(lambda d: hmm(d).update(micro="cel")))}
    assert "did you mean 'cell'" in found["patterns[0].micro"].fix
    p = only(spec(lambda d: hmm(d)["query"].update(field="rod.temprature")), "patterns[0].query.field")
    assert "no output 'temprature'" in p.message
    p = only(spec(lambda d: hmm(d)["answer"].update(field="rod.cell_temperature")), "patterns[0].answer.field")
    assert "no input" in p.message
    found = {p.path: p for p in problems(spec(lambda d: hmm(d).update(kind="hm")))}
    assert "did you mean 'hmm'" in found["patterns[0].kind"].fix   # (and the cell's dt is then checked)
    p = only(spec(lambda d: hmm(d).update(mode="statefull")), "patterns[0].mode")
    assert "did you mean 'stateful'" in p.fix
    p = only(spec(lambda d: hmm(d).update(micro_tim=1.0)), "patterns[0].micro_tim")
    assert "did you mean 'micro_time'" in p.fix


def test_stateful_rules_and_couplings_of_the_farm():
    p = only(spec(lambda d: hmm(d).update(mode="stateful", cache=None)), "patterns[0].query.sets[0]")
    assert "takes queries as inputs only" in p.message and "bath" in p.fix
    p = only(spec(lambda d: (hmm(d).update(mode="stateful", cache=None, surrogate={"max_std": 1.0}),
                             hmm(d)["query"].update(sets=["bath"]))), "patterns[0].surrogate")
    d = spec(lambda d: d.update(couplings=[{"from": "rod.temperature", "to": "cell.bath"}]))
    assert "patterns[0].micro" in [p.path for p in problems(d)]


from solvers.examples.conductivity import Cell  # noqa: E402  (the unit test's own micro class)
from msorch.solver import FieldInfo  # noqa: E402


class TempCell(Cell):
    """A Cell that also outputs its bath temperature (K): a wrong answer for a conductivity."""

    outputs = ("conductivity", "temperature_out")
    field_info = {**Cell.field_info, "temperature_out": FieldInfo("K", "bath temperature")}
