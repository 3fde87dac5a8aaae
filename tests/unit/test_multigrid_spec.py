"""``patterns: [{kind: multigrid}]``: the bad inputs of issue 13 are spec errors before launch,
each with its YAML path, what was expected and a fix (built from jobs/multigrid_poisson.yaml)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from msorch.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[2]
JOB = yaml.safe_load((ROOT / "jobs" / "multigrid_poisson.yaml").read_text())


def edited(edit) -> dict:
    data = copy.deepcopy(JOB)
    edit(data)
    return data


def only(data, path: str):
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data))
    found = info.value.problems
    assert [p.path for p in found] == [path], [str(p) for p in found]
    return found[0]


def test_the_shipped_job_is_valid_and_drives_its_coarse_levels():
    job = parse_spec(yaml.safe_dump(JOB))
    assert job.driven == frozenset({"mid", "coarse"})
    assert job.patterns[0].levels == ("fine", "mid", "coarse")


def test_levels_that_do_not_nest():
    p = only(edited(lambda d: d["solvers"]["mid"]["params"].update(nx=60)), "patterns[0].levels[1]")
    assert "60 x 64 cells do not nest in the finer level's 128 x 128" in p.message
    assert "nx: 64, ny: 64" in p.fix
    p = only(edited(lambda d: d["solvers"]["coarse"]["params"].update(x1=2.0)), "patterns[0].levels[2]")
    assert "differs from the finer level's" in p.message


def test_a_cycle_with_one_level():
    p = only(edited(lambda d: d["patterns"][0].update(levels=["fine"])), "patterns[0].levels")
    assert "at least two levels, got 1" in p.message and "levels: [fine, coarse]" in p.fix


def test_a_solver_without_the_level_interface():
    def edit(d):
        d["solvers"]["coarse"] = {"kind": "test.null", "ranks": 1}
    p = only(edited(edit), "patterns[0].levels[2]")
    assert "does not implement the multigrid level interface" in p.message and "level_" in p.message
    assert "fem.heat" in p.fix


def test_unknown_level_and_different_physics_and_coupled_coarse_level():
    p = only(edited(lambda d: d["patterns"][0].update(levels=["fine", "mdi", "coarse"])), "patterns[0].levels[1]")
    assert "no solver named 'mdi'" in p.message and "mid" in p.fix
    p = only(edited(lambda d: d["solvers"]["mid"]["params"].update(conductivity=2.0)), "patterns[0].levels[1]")
    assert "conductivity = 2.0 differs from the finest level's 1.0" in p.message
    p = only(edited(lambda d: d["solvers"]["coarse"]["params"].update(top="insulated")), "patterns[0].levels[2]")
    assert "top: insulated does not constrain the same nodes" in p.message and "top: exact" in p.fix


def test_cg_needs_a_symmetric_cycle():
    p = only(edited(lambda d: d["patterns"][0].update(outer="cg", nu2=2)), "patterns[0].outer")
    assert "symmetric positive definite" in p.message


def test_smoother_settings():
    """type: multicolor (default) takes only omega in (0, 2); PETSc options need type: petsc."""
    ok = parse_spec(yaml.safe_dump(edited(lambda d: d["patterns"][0].update(
        smoother={"type": "petsc", "pc_sor_omega": 1.2}, transfer="p1"))))
    assert ok.patterns[0].smoother == {"type": "petsc", "pc_sor_omega": 1.2} and ok.patterns[0].transfer == "p1"
    assert parse_spec(yaml.safe_dump(JOB)).patterns[0].transfer == "bilinear"
    p = only(edited(lambda d: d["patterns"][0].update(smoother={"pc_type": "jacobi"})), "patterns[0].smoother.pc_type")
    assert "not a setting of the multicolour smoother" in p.message and "type: petsc" in p.fix
    p = only(edited(lambda d: d["patterns"][0].update(smoother={"omega": 2.5})), "patterns[0].smoother.omega")
    assert "(0, 2)" in p.message
    p = only(edited(lambda d: d["patterns"][0].update(smoother={"type": "jacobi"})), "patterns[0].smoother.type")
    assert "multicolor" in p.message and "petsc" in p.fix
    p = only(edited(lambda d: d["patterns"][0].update(transfer="cubic")), "patterns[0].transfer")


def test_an_implicit_scheme_is_refused_before_launch():
    """The coarse levels solve once per step; an implicit scheme's re-runs of a window would leave them behind."""
    def edit(d):
        d["solvers"].update(a={"kind": "test.null", "ranks": 1}, b={"kind": "test.null", "ranks": 1})
        d["couplings"] = [{"from": "a.out", "to": "b.in"}, {"from": "b.out", "to": "a.in"}]
        d["scheme"] = {"kind": "implicit", "max_iterations": 5,
                       "convergence": [{"field": "b.in", "relative": 1e-6}]}
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(edited(edit)))
    found = [p for p in info.value.problems if p.path == "patterns[0].levels[0]"]
    assert found and "scheme.kind is implicit" in found[0].message, [str(p) for p in info.value.problems]
    assert "kind: explicit" in found[0].fix
