"""Local defect correction, serial parts: grid transfers, the peak's source, spec errors.

The LDC runs themselves are in tests/e2e/test_ldc.py.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from conftest import ROOT
from couplings import patch_transfer as pt
from msorch.spec import SpecError, parse_spec
from solvers.fem.grid import Rectangle
from solvers.fem.manufactured import Manufactured, Peak

COARSE = Rectangle(0.0, 1.0, 0.0, 1.0, 32, 32)
PEAK_JOB = yaml.safe_load((ROOT / "jobs" / "ldc_peak.yaml").read_text())


def test_nested_patch_places_and_injects_exactly():
    """Reference: the coordinates themselves — a nested patch's coarse nodes are fine nodes, so
    injection of any nodal function returns its values at the coarse nodes exactly."""
    patch = Rectangle(0.5625, 0.875, 0.15625, 0.46875, 160, 160)
    assert pt.nesting_problems(COARSE, patch) == []
    where = pt.placement(COARSE, patch)
    assert (where.i0, where.j0, where.mx, where.my, where.rx, where.ry) == (18, 5, 10, 10, 16, 16)
    f = lambda p: np.sin(3 * p[:, 0]) + p[:, 1] ** 2
    fine = f(patch.coordinates(np.arange(patch.n_nodes)))
    w = pt.inject(COARSE, where, fine)
    nodes = where.coarse_nodes(COARSE)
    np.testing.assert_allclose(w[nodes], f(COARSE.coordinates(nodes)), rtol=0, atol=1e-15)
    inside = pt.inside_mask(COARSE, where)
    assert inside.sum() == 9 * 9 and inside[nodes].sum() == 81      # strictly interior coarse nodes


def test_cubic_prolongation_is_exact_for_cubics_along_grid_lines():
    """Reference: 4-point Lagrange interpolation reproduces cubics exactly; the P1 interpolant has
    the error h²/4 · f'' at mid-cell for f = y³ (here 3 y/4 · H², nonzero)."""
    nodes = COARSE.coordinates(np.arange(COARSE.n_nodes))
    values = nodes[:, 1] ** 3 - 2 * nodes[:, 0] ** 3
    t = np.linspace(0.15625, 0.46875, 161)
    side = np.column_stack([np.full_like(t, 0.5625), t])               # a patch's left side
    exact = t ** 3 - 2 * 0.5625 ** 3
    np.testing.assert_allclose(pt.prolong(COARSE, values, side, "cubic"), exact, atol=1e-13)
    assert np.abs(pt.prolong(COARSE, values, side, "linear") - exact).max() > 1e-4


def test_shift_keeps_overlap_and_fills_the_rest():
    """A shift by whole coarse cells is one by whole fine cells: overlapping nodes keep their value."""
    a = pt.Placement(2, 3, 4, 4, 2, 2)
    b = pt.Placement(3, 2, 4, 4, 2, 2)
    old = np.arange(81.0)
    moved = pt.shift(old, a, b, np.full(81, -1.0)).reshape(9, 9)
    # new (i, j) = old (i + 2, j - 2)
    np.testing.assert_array_equal(moved[2:, :7], old.reshape(9, 9)[:7, 2:])
    assert np.all(moved[:2] == -1) and np.all(moved[:, 7:] == -1)


def test_peak_source_matches_the_laplacian_of_the_solution():
    """Reference: central differences of u (h = 1e-4) give −Δu + ∂u/∂t to O(h²), the source by construction."""
    m = Manufactured(3.0, 0.5, 2.0, 1.5, Peak(1.0, 0.02, 0.7, 0.3, 0.4, -0.2))
    pts = np.array([[0.7, 0.3], [0.71, 0.29], [0.66, 0.33], [0.2, 0.8]])
    h, t = 1e-4, 0.05
    u = lambda p, s=t: m.temperature(p, s)
    lap = sum((u(pts + d) - 2 * u(pts) + u(pts - d)) / h ** 2 for d in (np.array([h, 0]), np.array([0, h])))
    dudt = (u(pts, t + h) - u(pts, t - h)) / (2 * h)
    np.testing.assert_allclose(m.source_at(pts, t), 1.5 * dudt - 2.0 * lap, rtol=2e-5, atol=1e-6)


def _problems(edit) -> list:
    data = copy.deepcopy(PEAK_JOB)
    edit(data)
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data))
    return info.value.problems


def test_levels_that_do_not_nest_are_spec_errors_with_a_fix():
    def edit(d):
        d["solvers"]["patch"]["params"]["nx"] = 155          # h = 0.3125/155 does not divide 1/32
        d["solvers"]["patch"]["params"]["x0"] = 0.57          # not on a coarse line
    found = {p.path: p for p in _problems(edit)}
    assert "solvers.patch.params.x0" in found and "use x0: 0.5625" in str(found["solvers.patch.params.x0"])
    edit2 = lambda d: d["solvers"]["patch"]["params"].__setitem__("nx", 155)
    found = {p.path: p for p in _problems(edit2)}
    assert "solvers.patch.params.nx" in found and "do not nest" in str(found["solvers.patch.params.nx"])


def test_patch_outside_the_coarse_domain_is_a_spec_error():
    def edit(d):
        d["solvers"]["patch"]["params"].update(x0=0.875, x1=1.1875)
    found = {p.path: str(p) for p in _problems(edit)}
    assert "solvers.patch.params.x1" in found and "leaves the coarse domain" in found["solvers.patch.params.x1"]


def test_pattern_checks_the_coarse_grid_and_the_levels():
    def edit(d):
        d["solvers"]["coarse"]["params"]["nx"] = 16
        d["solvers"]["coarse"]["params"]["defect_correction"] = False
    found = [str(p) for p in _problems(edit) if p.path == "patterns[0].patch" or p.path == "patterns[0].coarse"]
    assert any("levels do not nest" in s and "coarse.nx: 16" in s for s in found), found
    assert any("defect_correction: true" in s for s in found), found
