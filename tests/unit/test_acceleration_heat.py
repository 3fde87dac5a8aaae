"""Implicit coupling of the partitioned heat job against preCICE 3.4.1's iteration counts.

Reference: the table "preCICE 3.4.1 on msorch's own partitioned heat
problem" in ``shared/references.md`` (two pyprecice participants wrapping
``fem.heat`` with ``jobs/partitioned_heat.yaml``'s discretization;
serial-implicit, window 0.1, 10 sub-steps, relative convergence 1e-10 on both
fields, IQN-ILS on the temperature with initial relaxation 0.5, 8 windows
reused, ``reduced-time-grid="false"``).  The job runs in-process through
``heat_dn_harness`` (the worker's algorithm on ``COMM_SELF``;
``tests/e2e/test_implicit_precice.py`` checks ``msorch run`` gives the same
counts).

preCICE-equivalent settings are: ``over: end`` on both convergence measures;
constant relaxation 0.5; Aitken with ``start: previous, over: end``; IQN-ILS
with ``update_at_convergence: true, filter: qr2`` and the table's limit.  With
them every preCICE count of the table is reproduced window by window, except
one window of Aitken on the narrow geometry (see
``couplings/acceleration.py``, "Remaining differences").

The final error is the relative L2 error of both subdomains' temperature
against the manufactured u = 1 + x² + 3y² + 1.2t at t = 1 (the discretization
is exact for it, so only coupling and solver round-off remain; preCICE's
IQN-ILS run ends at 1.2e-15).
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

import heat_dn_harness as harness
from couplings.acceleration import IQNILS, IQNIMVJ, Aitken, ConstantRelaxation

S = MPI.COMM_SELF
BLOCK = dict(blocks=[90], samples=[10])   # 10 samples x 9 interface nodes, as the worker passes
SHIPPED, NARROW = {}, {"right_end": 1.3, "max_iterations": 200}

PRECICE = {   # shared/references.md, iterations per window 1..10
    ("shipped", "constant"): [6] * 10,
    ("shipped", "aitken"): [6] * 10,
    ("shipped", "iqn-ils 1e-2"): [9, 3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("shipped", "iqn-ils 1e-3"): [7, 6, 3, 3, 3, 3, 3, 3, 3, 3],
    ("narrow", "constant"): [14] * 10,
    ("narrow", "aitken"): [11, 10, 10, 10, 11, 12, 10, 10, 10, 10],
    ("narrow", "iqn-ils 1e-2"): [11, 11, 3, 3, 3, 3, 3, 3, 3, 3],
}
GEOMETRIES = {"shipped": SHIPPED, "narrow": NARROW}

# preCICE's settings, spelled in msorch's options.
PRECICE_EQUIVALENT = {
    "constant": lambda: ConstantRelaxation(S, relaxation=0.5, **BLOCK),
    "aitken": lambda: Aitken(S, initial_relaxation=0.5, start="previous", over="end", **BLOCK),
    "iqn-ils 1e-2": lambda: IQNILS(S, initial_relaxation=0.5, reuse=8, filter="qr2",
                                   filter_limit=1e-2, update_at_convergence=True, **BLOCK),
    "iqn-ils 1e-3": lambda: IQNILS(S, initial_relaxation=0.5, reuse=8, filter="qr2",
                                   filter_limit=1e-3, update_at_convergence=True, **BLOCK),
}

# msorch's defaults: what the worker builds from a spec that gives only kind,
# initial_relaxation 0.5 (as the job) and nothing else; convergence over the window.
DEFAULTS = {
    "constant": lambda: ConstantRelaxation(S, relaxation=0.5, **BLOCK),
    "aitken": lambda: Aitken(S, initial_relaxation=0.5, **BLOCK),
    "iqn-ils": lambda: IQNILS(S, initial_relaxation=0.5, reuse=8, **BLOCK),
    "iqn-imvj": lambda: IQNIMVJ(S, initial_relaxation=0.5, **BLOCK),
}
# Which preCICE row each default method is compared with.
PRECICE_ROW = {"constant": "constant", "aitken": "aitken", "iqn-ils": "iqn-ils 1e-2",
               "iqn-imvj": "iqn-ils 1e-2"}


@pytest.mark.parametrize("case", sorted(PRECICE), ids=lambda c: f"{c[0]}-{c[1]}")
def test_precice_equivalent_settings_reproduce_the_table(case):
    """Iterations per window equal preCICE's, window by window.

    One documented exception: Aitken on the narrow geometry, where one
    window differs by one iteration (measured: window 6 with 11 instead of 12,
    or, after a change of fem.heat's round-off, window 10 with 11 instead of
    10; see "Remaining differences" in couplings/acceleration.py); there at
    most one window may differ, by one.
    """
    geometry, method = case
    result = harness.run(PRECICE_EQUIVALENT[method](), over="end", **GEOMETRIES[geometry])
    expected = PRECICE[case]
    print(f"\n  {geometry:8s} {method:13s} msorch {result.iterations} preCICE {expected} "
          f"error {result.error:.1e}")
    assert all(result.converged)
    if case == ("narrow", "aitken"):
        diff = np.abs(np.subtract(result.iterations, expected))
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 1, result.iterations
    else:
        assert result.iterations == expected
    if method.startswith("iqn"):
        assert result.error <= 1e-14      # preCICE: 1.2e-15 (shipped, 1e-2)


def test_defaults_need_no_more_iterations_than_precice_on_both_geometries():
    """With msorch's defaults, mean iterations <= preCICE's on both table geometries.

    Measured (shipped / narrow): constant 6.0 / 14.0 (preCICE 6.0 / 14.0),
    Aitken 6.0 / 10.2 (6.0 / 10.4), IQN-ILS 3.5 / 4.1 (3.6 / 4.6),
    IQN-IMVJ 3.5 / 4.1 (no worse than IQN-ILS).  Final errors at round-off
    (<= 1e-14) for every method on the shipped geometry and for the
    quasi-Newton methods on the narrow one; constant and Aitken end at 4e-14
    and 2e-13 there (constant is bitwise preCICE's algorithm: the error is the
    1e-10 tolerance's, not the method's), bounded here by 1e-12.
    """
    table = {}
    for geometry, kwargs in GEOMETRIES.items():
        for method, make in DEFAULTS.items():
            result = harness.run(make(), **kwargs)
            assert all(result.converged), (geometry, method)
            table[geometry, method] = (np.mean(result.iterations), result.error)
    print("\n  method       shipped (preCICE)          narrow (preCICE)")
    for method in DEFAULTS:
        row = [f"{table[g, method][0]:5.2f} ({np.mean(PRECICE[g, PRECICE_ROW[method]]):4.2f}) "
               f"{table[g, method][1]:.1e}" for g in GEOMETRIES]
        print(f"  {method:10s}  " + "   ".join(row))
    for (geometry, method), (mean, error) in table.items():
        assert mean <= np.mean(PRECICE[geometry, PRECICE_ROW[method]]), (geometry, method, mean)
        bound = 1e-14 if geometry == "shipped" or method.startswith("iqn") else 1e-12
        assert error <= bound, (geometry, method, error)
    for geometry in GEOMETRIES:
        assert table[geometry, "iqn-imvj"][0] <= table[geometry, "iqn-ils"][0]


RATIOS = (0.2, 0.4, 0.7, 1.5, 3.0)   # right subdomain widths; the left one is 1


@pytest.mark.verify
def test_defaults_no_worse_than_precice_equivalent_over_five_width_ratios():
    """The harder third case: right subdomains 0.2, 0.4, 0.7, 1.5 and 3 wide (left 1).

    preCICE itself is not available on this machine, so its counts are
    those of the preCICE-equivalent settings, which reproduce its table above.
    Required: mean iterations over the five cases with msorch's defaults <=
    the preCICE-equivalent ones, per method.  Measured: Aitken 10.04 vs 10.20,
    IQN-ILS 4.00 vs 4.66 (IMVJ 4.00); constant is the same algorithm (13.6).
    Errors: bounded by 1e-12 (measured <= 1.4e-14 for the quasi-Newton methods).
    """
    rows = {"constant": "constant", "aitken": "aitken", "iqn-ils": "iqn-ils 1e-2"}
    means = {}
    for method, make in DEFAULTS.items():
        counts = []
        for width in RATIOS:
            result = harness.run(make(), right_end=1.0 + width, max_iterations=200)
            assert all(result.converged) and result.error <= 1e-12, (method, width, result.error)
            counts.append(np.mean(result.iterations))
        means[method] = np.mean(counts)
    for method, row in rows.items():
        counts = [np.mean(harness.run(PRECICE_EQUIVALENT[row](), over="end", right_end=1.0 + w,
                                      max_iterations=200).iterations) for w in RATIOS]
        means[f"preCICE-equivalent {row}"] = np.mean(counts)
    print("\n" + "\n".join(f"  {k:32s} {v:6.2f}" for k, v in means.items()))
    for method, row in rows.items():
        assert means[method] <= means[f"preCICE-equivalent {row}"], method
    assert means["iqn-imvj"] <= means["iqn-ils"] + 0.05


@pytest.mark.verify
@pytest.mark.parametrize("right_end", [2.0, 1.3, 1.2, 1.4, 1.7, 2.5, 4.0],
                         ids=lambda e: f"width-{e - 1:g}")
def test_every_method_converges_to_round_off(right_end):
    """Final error at round-off for every method (constant, Aitken, IQN-ILS, IQN-IMVJ) once the
    coupling tolerance is below what the 1e-10 of the table allows: relative 1e-12.

    Reference: the manufactured u = 1 + x² + 3y² + 1.2t, reproduced exactly by the
    discretization.  Bound 1e-14, except at width 0.7, where every method — and the
    fixed point itself, also with tolerance 1e-13 — ends at 1.4e-14: that mesh's
    round-off floor, not a method's (measured 1.4e-14 for all four).
    """
    bound = 1.5e-14 if right_end == 1.7 else 1e-14
    for method, make in DEFAULTS.items():
        result = harness.run(make(), right_end=right_end, max_iterations=400, tolerance=1e-12)
        assert all(result.converged), method
        assert result.error <= bound, (method, right_end, result.error)
