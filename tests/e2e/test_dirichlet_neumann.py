"""Dirichlet–Neumann through the ``dirichlet-neumann`` recipe (jobs/dirichlet_neumann_1d.yaml).

Reference (analytic, 1-D): −u'' = f on (0, a + b), Dirichlet at both ends, interface at x = a.
The left subdomain (width a) given the interface value g returns the flux k (g − ·)/a + const,
the right one (width b) given that flux returns the interface value −(b/a) g + const, so with the
relaxation g ← θ g̃ + (1 − θ) g the interface error is multiplied by 1 − θ (1 + b/a) per
iteration (Quarteroni & Valli 1999, §1.2), and θ = a/(a + b) converges in one step.  fem.heat
with insulated top and bottom and data uniform in y is exactly this 1-D problem, and its P1
solution of the quadratic u = 1 + x² is exact at the nodes, so the measured factor is the
analytic one to round-off (tolerance 1e-6, reached to 1e-9 while the change is above 1e-7 of the
first) and the converged solution is exact to the iteration's tolerance (1e-9 absolute).
Aitken and IQN-ILS see a map that is affine with one slope (1-D): their secant step after one
relaxed iteration is the exact solution, so the interface value given in the third iteration is
converged: its change in the fourth is below 1e-10 of the first.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT

JOBS = ROOT / "jobs"
PATTERN = "dirichlet-neumann/left-right"


def dn_spec(a=2 / 3, theta=0.4, acceleration="constant", h=1 / 30) -> dict:
    """jobs/dirichlet_neumann_1d.yaml on (0, 1) with the interface at x = a."""
    spec = yaml.safe_load((JOBS / "dirichlet_neumann_1d.yaml").read_text())
    spec["solvers"]["left"]["params"].update(x1=a, nx=max(round(a / h), 1))
    spec["solvers"]["right"]["params"].update(x0=a, nx=max(round((1 - a) / h), 1))
    # theta 0.2 at b/a = 1/2 (factor 0.7) needs ~80 iterations to the job's 1e-12
    spec["patterns"][0].update(relaxation=theta, acceleration=acceleration, max_iterations=150)
    return spec


def run(msorch, tmp_path, spec, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / name
    r = msorch("run", path, "-o", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out / "results.h5"


def factors(results):
    """(iterations, converged, signed factors of the iterations whose change is above 1e-7 of the first)."""
    with h5py.File(results) as f:
        g = f[PATTERN]
        change, c = g["change"][:], g["contraction"][:]
        its, ok = int(f["coupling/iterations"][0]), bool(f["coupling/converged"][0])
    use = np.isfinite(c) & (change > 1e-7 * change[1])
    return its, ok, c[use], change


def check_exact(results):
    with h5py.File(results) as f:
        for solver in ("left", "right"):
            pts, u = f[f"{solver}/points"][:], f[f"{solver}/temperature"][-1]
            assert np.abs(u - (1 + pts[:, 0] ** 2)).max() < 1e-9, solver


def test_job_contracts_by_one_minus_theta_times_one_plus_b_over_a(msorch, tmp_path):
    results = run(msorch, tmp_path, yaml.safe_load((JOBS / "dirichlet_neumann_1d.yaml").read_text()), "job")
    its, ok, c, _ = factors(results)
    print(f"\ndirichlet_neumann_1d: {its} iterations, factors {c.min():.9f} .. {c.max():.9f} (analytic 0.4)")
    assert ok and len(c) >= 10
    assert np.abs(c - 0.4).max() < 1e-6
    check_exact(results)


@pytest.mark.verify
def test_factors_for_three_thetas_two_width_ratios_and_accelerations(msorch, tmp_path):
    """Must-show 2: θ = 0.2, 0.4, 0.6 for b/a = 1 (a = 1/2) and b/a = 1/2 (a = 2/3); Aitken and
    IQN-ILS from θ = 0.2 reach the one-step optimum within 3 iterations."""
    for a in (0.5, 2 / 3):
        ratio = (1 - a) / a
        for theta in (0.2, 0.4, 0.6):
            results = run(msorch, tmp_path, dn_spec(a, theta), f"c{a:.3f}_{theta}")
            its, ok, c, _ = factors(results)
            want = 1 - theta * (1 + ratio)
            print(f"b/a {ratio:.2f} theta {theta}: factor {np.median(c):+.9f} (analytic {want:+.4f}), "
                  f"{its} iterations")
            assert ok and np.abs(c - want).max() < 1e-6
            check_exact(results)
        for acc in ("aitken", "iqn-ils"):
            results = run(msorch, tmp_path, dn_spec(a, 0.2, acc), f"{acc}{a:.3f}")
            its, ok, _, change = factors(results)
            first = int(np.argmax(change[1:] < 1e-10 * change[1])) + 1   # g_first = g_{first-1}
            print(f"b/a {ratio:.2f} {acc}: interface value converged in iteration {first} "
                  f"(msorch iterations {its}: the convergence check needs one more)")
            assert ok and first - 1 <= 2, change   # the value given in iteration 3 (index 2) is converged
            check_exact(results)
