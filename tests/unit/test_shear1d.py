"""continuum.shear1d: 1-D momentum diffusion against the sudden-start Couette series.

Reference: the separation-of-variables solution of rho du/dt = eta d2u/dy2 with
u(0, t) = U, u(H, t) = 0, u(y, 0) = 0 (``couette_startup``; e.g. Nie, Chen, E &
Robbins, J. Fluid Mech. 500, 55, 2004), summed to 2000 terms (truncation error
below 1e-6 at t >= 1 for these parameters).
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from solvers.continuum.shear1d import Shear1DParams, Shear1DSolver, couette_startup

H, U, ETA, RHO = 50.0, 0.5, 2.14, 0.813


def run(n_cells, dt, t_end, theta=0.5, **kw):
    s = Shear1DSolver(MPI.COMM_SELF, Shear1DParams(y0=0.0, y1=H, n_cells=n_cells, viscosity=ETA, density=RHO,
                                                   u_lo=U, theta=theta, **kw))
    s.initialize(0.0)
    for k in range(int(round(t_end / dt))):
        s.advance(k * dt, dt)
    return s


def test_series_is_the_steady_profile_at_late_times_and_zero_at_start():
    """The series itself: linear Couette profile for t >> H^2/nu, fluid at rest for t -> 0+
    away from the moving wall (independent limits of the formula)."""
    y = np.linspace(0, H, 11)
    assert np.allclose(couette_startup(y, 1e5, U, H, ETA, RHO), U * (1 - y / H), atol=1e-12)
    assert np.allclose(couette_startup(y[2:], 1e-3, U, H, ETA, RHO), 0.0, atol=1e-3)


@pytest.mark.parametrize("t", [20.0, 50.0, 100.0])
def test_crank_nicolson_matches_series(t):
    """h = 1.25, dt = 0.1 (the hybrid job's grid): measured max |u - series| 2.0e-4, 8.0e-5, 1.8e-5
    sigma/tau at t = 20, 50, 100 (O(h^2 + dt^2), the sudden start's error decaying); asserted
    < 5e-4 (0.1 % of U), far below the MD error bars (~0.02-0.08) the continuum is compared with."""
    s = run(40, 0.1, t)
    err = np.max(np.abs(s.u - couette_startup(s.y, t, U, H, ETA, RHO)))
    assert err < 5e-4, err


def test_second_order_in_space_and_time():
    """Halving h and dt together divides the error at t = 50 by ~4 (Crank-Nicolson is
    second order in both; the sudden start's first-step error decays away by then)."""
    errs = []
    for n, dt in ((10, 1.0), (20, 0.5), (40, 0.25)):
        s = run(n, dt, 50.0)
        errs.append(np.max(np.abs(s.u - couette_startup(s.y, 50.0, U, H, ETA, RHO))))
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(3.0 < r < 5.0 for r in ratios), (errs, ratios)


def test_backward_euler_first_order_and_inputs_replace_boundary_values():
    """theta = 1 converges at first order in dt (error ratio ~2 per halving); a coupled
    lower_velocity replaces u_lo (only its flow component counts)."""
    errs = [np.max(np.abs(run(80, dt, 50.0, theta=1.0).u - couette_startup(np.linspace(0, H, 81), 50.0, U, H,
                                                                              ETA, RHO))) for dt in (1.0, 0.5)]
    assert 1.6 < errs[0] / errs[1] < 2.4, errs
    s = Shear1DSolver(MPI.COMM_SELF, Shear1DParams(y0=0.0, y1=H, n_cells=40, viscosity=ETA, density=RHO,
                                                   origin=(2.5, 0.0, 2.5)))
    s.initialize(0.0)
    for k in range(500):
        s.put("lower_velocity", np.array([[U, 7.0, 7.0]]))
        s.advance(k * 0.1, 0.1)
    assert np.max(np.abs(s.u - couette_startup(s.y, 50.0, U, H, ETA, RHO))) < 5e-4
    v = s.get("velocity")
    assert v.shape == (41, 3) and np.all(v[:, 1:] == 0.0) and np.array_equal(v[:, 0], s.u)
    assert np.allclose(s.fields()["velocity"].points[:, [0, 2]], 2.5) and s.fields()["velocity"].points[-1, 1] == H
    # the shear stress at the wall: eta du/dy of the series (differentiated numerically, fine grid)
    yf = np.array([0.0, 1e-4])
    ref = ETA * np.diff(couette_startup(yf, 50.0, U, H, ETA, RHO))[0] / 1e-4
    assert abs(s.get("shear_stress")[0] - ref) < 0.02 * abs(ref)


def test_invalid_settings_are_reported():
    problems = Shear1DSolver.check(Shear1DParams(y0=1.0, y1=0.5, n_cells=1, viscosity=-1.0, theta=0.2,
                                                 origin=(0.0, 0.0)))
    keys = {k for k, _, _ in problems}
    assert {"y1", "n_cells", "viscosity", "theta", "origin"} <= keys
    assert Shear1DSolver.check(Shear1DParams()) == []
