"""Schwarz and Dirichlet–Neumann recipes (couplings/patterns/domain_decomposition.py): expansion,
validation before launch, ``msorch validate --explain``, and fem.heat's overlap line.

References: a recipe's expansion must equal the couplings and scheme written by hand in
jobs/partitioned_heat.yaml's style (the same validated CouplingSpec/SchemeSpec objects); the
overlap line's values are the P1 interpolant of the analytic u = 1 + x² − y², which the 5-point
stencil reproduces at the nodes (tolerance 1e-10 absolute, the linear solver's rtol 1e-14 on
values of order 1), and linear interpolation of x² between grid lines errs by f(1−f) hx².
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from conftest import ROOT
from couplings.patterns.domain_decomposition import contractions
from msorch.spec import SpecError, parse_spec

JOBS = ROOT / "jobs"


def load(name):
    return yaml.safe_load((JOBS / name).read_text())


def problems(spec: dict) -> list:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(spec, sort_keys=False))
    return info.value.problems


def paths(spec: dict) -> dict:
    return {p.path: p for p in problems(spec)}


def by_hand(spec: dict, couplings, scheme):
    spec = dict(spec)
    spec.pop("patterns")
    spec["couplings"], spec["scheme"] = couplings, scheme
    return parse_spec(yaml.safe_dump(spec, sort_keys=False))


def test_schwarz_expands_to_the_hand_written_couplings_and_scheme():
    spec = load("schwarz_laplace.yaml")
    job = parse_spec(yaml.safe_dump(spec, sort_keys=False))
    tol = spec["patterns"][0]["tolerance"]
    hand = by_hand(spec, [
        {"from": "right.overlap_temperature", "to": "left.temperature", "mapping": "nearest"},
        {"from": "left.overlap_temperature", "to": "right.temperature", "mapping": "nearest"}],
        {"kind": "implicit", "staggering": "serial", "order": ["left", "right"], "max_iterations": 100,
         "convergence": [{"field": "left.temperature", "relative": tol},
                         {"field": "right.temperature", "relative": tol}]})
    assert job.couplings == hand.couplings
    assert job.scheme == hand.scheme
    assert [(i, kind) for i, kind, _ in job.expansions] == [(0, "schwarz")]
    # Additive: the same couplings, both solvers in one stage (each sees the previous iterate).
    spec["patterns"][0]["variant"] = "additive"
    additive = parse_spec(yaml.safe_dump(spec, sort_keys=False))
    assert additive.scheme.staggering == "parallel" and additive.couplings == hand.couplings


def test_dirichlet_neumann_expands_with_the_chosen_acceleration():
    spec = load("dirichlet_neumann_1d.yaml")
    job = parse_spec(yaml.safe_dump(spec, sort_keys=False))
    assert [(c.source, c.source_field, c.target, c.target_field, c.mapping) for c in job.couplings] == [
        ("right", "temperature", "left", "temperature", "nearest"),
        ("left", "heat_flux", "right", "heat_flux", "conservative")]
    acc = job.scheme.acceleration
    assert (acc.kind, acc.relaxation, acc.fields) == ("constant", 0.4, ("left.temperature",))
    assert [c.field for c in job.scheme.convergence] == ["left.temperature", "right.heat_flux"]
    spec["patterns"][0].update(acceleration="iqn-ils", relaxation=0.3)
    acc = parse_spec(yaml.safe_dump(spec, sort_keys=False)).scheme.acceleration
    assert (acc.kind, acc.initial_relaxation) == ("iqn-ils", 0.3)


@pytest.mark.parametrize("overlap, where, words", [
    (-0.1, "patterns[0].overlap", "> 0"),
    (0.0, "patterns[0].overlap", "> 0"),
    (0.7, "patterns[0].overlap", "not smaller than subdomain"),
    (0.1, "patterns[0].overlap", "overlap by 0.2 m, not 0.1 m"),
])
def test_bad_overlaps_fail_before_launch(overlap, where, words):
    spec = load("schwarz_laplace.yaml")
    spec["patterns"][0]["overlap"] = overlap
    found = paths(spec)
    assert where in found, found
    assert words in found[where].message, found[where]


def test_schwarz_between_solvers_without_the_fields_names_what_is_missing():
    spec = load("schwarz_laplace.yaml")
    del spec["solvers"]["right"]["params"]["overlap_line"]
    spec["solvers"]["left"]["params"]["right"] = "exact"
    every = problems(spec)
    found = [p for p in every if p.path == "patterns[0].between"]
    text = "\n".join(str(p) for p in found)
    # The expanded couplings' own complaints about the same fields are not repeated.
    assert not [p for p in every if "expanded" in p.path], every
    assert "solver 'left' (fem.heat) has no input 'temperature'" in text
    assert "set solvers.left.params.right: dirichlet" in text
    assert "solver 'right' (fem.heat) has no output 'overlap_temperature'" in text
    assert "set solvers.right.params.overlap_line: 0.6" in text
    # A trace on the wrong line is named with the line it must be on.
    spec = load("schwarz_laplace.yaml")
    spec["solvers"]["left"]["params"]["overlap_line"] = 0.45
    found = paths(spec)["patterns[0].between"]
    assert "x = 0.45" in found.message and "overlap_line: 0.4" in found.fix


def test_dirichlet_neumann_without_a_neumann_side_is_refused():
    spec = load("dirichlet_neumann_1d.yaml")
    spec["solvers"]["right"]["params"]["left"] = "dirichlet"
    text = "\n".join(str(p) for p in problems(spec))
    assert "solver 'right' (fem.heat) has no input 'heat_flux'" in text
    assert "set the interface side of 'right' to neumann" in text


def test_conflicts_with_hand_written_pieces_and_problems_inside_the_expansion():
    spec = load("schwarz_laplace.yaml")
    spec["scheme"] = {"kind": "explicit"}
    spec["couplings"] = [{"from": "right.overlap_temperature", "to": "left.temperature"}]
    found = paths(spec)
    assert "sets the coupling scheme itself" in found["scheme"].message
    assert "also fed by patterns[0] (schwarz)" in found["couplings[0].to"].message
    # A bad setting that only the expanded coupling uses is reported at the pattern.
    spec = load("schwarz_laplace.yaml")
    spec["patterns"][0]["mapping"] = "nearset"
    found = paths(spec)
    assert "patterns[0] (expanded couplings[0].mapping)" in found, found
    assert "did you mean 'nearest'" in found["patterns[0] (expanded couplings[0].mapping)"].fix


def test_validate_explain_prints_the_expansion(capsys):
    from msorch.cli import main
    assert main(["validate", "--explain", str(JOBS / "schwarz_laplace.yaml")]) == 0
    out = capsys.readouterr().out
    explained = yaml.safe_load(out.split("# patterns[0] (schwarz) expands to:\n", 1)[1])
    assert explained["scheme"]["staggering"] == "serial"
    assert explained["couplings"][0] == {"from": "right.overlap_temperature", "to": "left.temperature",
                                         "mapping": "nearest"}


def test_contraction_of_synthetic_rows():
    """Rows of a geometric sequence with factor -0.5: the signed contraction is -0.5 from the
    third iteration of each window on, NaN before (no previous change)."""
    rows = []
    for w in range(2):
        for k in range(5):   # differences d_k = (-0.5)^k from k = 1 on
            change = 0.5 ** k if k else np.nan
            dot = (-0.5) ** k * (-0.5) ** (k - 1) if k > 1 else np.nan
            rows.append([w, k, change, dot, 1.0])
    c = contractions(np.array(rows))
    assert np.isnan(c[[0, 1, 5, 6]]).all()
    assert np.allclose(c[[2, 3, 4, 7, 8, 9]], -0.5)


@pytest.mark.parametrize("line, nx", [(0.4, 30), (0.43, 12)])
def test_overlap_line_is_the_p1_solution_on_the_line(line, nx):
    """Serial (the MPI rank counts run in tests/mpi/test_schwarz_ranks.py through the job)."""
    from mpi4py import MPI
    from solvers.fem.heat import HeatParams, HeatSolver
    p = HeatParams(x0=0.0, x1=0.6, nx=nx, ny=10, alpha=-1.0, beta=0.0, steady=True, right="dirichlet",
                   overlap_line=line)
    assert HeatSolver.field_names(p)[0][-1] == "overlap_temperature"
    s = HeatSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    pts = s.fields()["temperature"].points
    s.put("temperature", 1 + pts[:, 0] ** 2 - pts[:, 1] ** 2)
    s.advance(0.0, 1.0)
    trace = s.fields()["overlap_temperature"].points
    values = s.get("overlap_temperature")
    s.finalize()
    hx = 0.6 / nx
    f = (line / hx) % 1.0
    assert np.allclose(trace[:, 0], line) and np.allclose(trace[:, 1], np.linspace(0, 1, 11))
    interpolant = 1 + trace[:, 0] ** 2 - trace[:, 1] ** 2 + f * (1 - f) * hx ** 2
    assert np.abs(values - interpolant).max() < 1e-10


def test_overlap_line_outside_the_domain_is_a_params_problem():
    spec = load("schwarz_laplace.yaml")
    spec["solvers"]["left"]["params"]["overlap_line"] = 0.8
    found = paths(spec)
    assert "outside the domain" in found["solvers.left.params.overlap_line"].message


def test_a_recipe_needs_both_solvers():
    spec = load("schwarz_laplace.yaml")
    spec["patterns"][0]["between"] = ["left", "rihgt"]
    found = paths(spec)
    assert "did you mean 'right'" in found["patterns[0].between[1]"].fix
    assert dataclasses.is_dataclass(parse_spec(yaml.safe_dump(load("schwarz_laplace.yaml"))).patterns[0])


@pytest.mark.parametrize("region, active", [("right", lambda x: x < 0.6 - 1e-12), ("left", lambda x: x > 0.6 + 1e-12),
                                            ("line", lambda x: x >= 0)])
def test_interior_dirichlet_line_or_region_takes_the_input(region, active):
    """fem.heat on the unit square with Dirichlet data on the grid line x = 0.6 (and the region
    beyond it): given the exact u = 1 + x² − y² there, the 5-point stencil reproduces u at every
    node (1e-10); given u + 1 on the region, the active part must differ from u (the data is used)
    while the exact outer sides hold."""
    from mpi4py import MPI
    from solvers.fem.heat import HeatParams, HeatSolver
    from solvers.fem.interior import InteriorDirichlet
    p = HeatParams(x0=0.0, x1=1.0, nx=10, ny=5, alpha=-1.0, beta=0.0, steady=True,
                   interior_dirichlet=InteriorDirichlet(0.6, region))
    assert HeatSolver.check(p) == []
    assert HeatSolver.field_names(p) == (("heat_flux", "temperature"), ("temperature",))
    geo = HeatSolver.interface_geometry(p)
    assert geo["dirichlet"] == 0.6 and geo["extent"] == {"right": (0.0, 0.6), "left": (0.6, 1.0)}.get(region, (0.0, 1.0))
    s = HeatSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    pts = s.fields()["temperature"].points
    inside = {"right": pts[:, 0] >= 0.6 - 1e-12, "left": pts[:, 0] <= 0.6 + 1e-12}.get(
        region, np.isclose(pts[:, 0], 0.6))
    assert inside.all() and len(pts) == {"right": 4, "left": 6, "line": 1}[region] * 4   # exact sides excluded
    s.put("temperature", 1 + pts[:, 0] ** 2 - pts[:, 1] ** 2)
    s.advance(0.0, 1.0)
    u, nodes = s.results()["temperature"], s.result_points()
    assert np.abs(u - (1 + nodes[:, 0] ** 2 - nodes[:, 1] ** 2)).max() < 1e-10
    s.put("temperature", 2 + pts[:, 0] ** 2 - pts[:, 1] ** 2)
    s.advance(0.0, 1.0)
    shifted = s.results()["temperature"] - (1 + nodes[:, 0] ** 2 - nodes[:, 1] ** 2)
    s.finalize()
    interior = (nodes[:, 1] > 0) & (nodes[:, 1] < 1) & (nodes[:, 0] > 0) & (nodes[:, 0] < 1)
    assert np.allclose(shifted[interior & np.isclose(nodes[:, 0], 0.6)], 1.0)
    assert (shifted[interior & active(nodes[:, 0])] > 1e-3).all()


def test_interior_dirichlet_off_the_grid_or_with_a_coupled_side_is_refused():
    spec = load("schwarz_laplace.yaml")
    spec["solvers"]["left"]["params"]["interior_dirichlet"] = {"x": 0.31, "region": "right"}
    found = paths(spec)
    assert "use a grid line, e.g. x: 0.3 or 0.32" in found["solvers.left.params.interior_dirichlet.x"].fix
    assert "the right side is dirichlet too" in found["solvers.left.params.interior_dirichlet"].message


def test_recipes_work_for_any_solvers_with_the_named_fields():
    """Two test.null solvers (out = in + offset, no geometry): the recipe only needs the fields
    it is told to use; the geometry checks are skipped for solvers without interface_geometry."""
    spec = {"time": {"start": 0.0, "end": 1.0, "window": 1.0},
            "solvers": {"a": {"kind": "test.null", "params": {"n": 4}},
                        "b": {"kind": "test.null", "params": {"n": 4}}},
            "patterns": [{"kind": "schwarz", "between": ["a", "b"], "overlap": 0.1, "dirichlet": "in",
                          "trace": "out", "variant": "additive"}]}
    job = parse_spec(yaml.safe_dump(spec))
    assert [c.ref for c in job.couplings] == ["a.in", "b.in"]
    assert job.scheme.staggering == "parallel" and job.scheme.order == ("a", "b")
    spec["patterns"] = [{"kind": "dirichlet-neumann", "between": ["a", "b"], "value": "in", "flux": "out"}]
    found = "\n".join(str(p) for p in problems(spec))
    # test.null has no output 'in': the recipe says which role needs it and how to name another field.
    assert "solver 'b' (test.null) has no output 'in' (the interface value it returns)" in found
