"""fem.heat against the manufactured solution of the preCICE partitioned heat tutorial.

Reference (``/work/shared/references.md``, "Partitioned heat conduction"):
u = 1 + x² + α y² + β t with α = 3, β = 1.2 on [0,2]×[0,1], f = β − 2 − 2α, k = ρc = 1.

Why the tolerances can be near machine precision: P1 on right triangles is the
5-point stencil, whose truncation error vanishes for quadratics; ∂u/∂t = β is
constant in space, so consistent and lumped mass give the same β ∫φ_i, and
implicit Euler is exact for a solution linear in t.  The discrete solution is
therefore the nodal interpolant of u up to the linear solver's rtol (1e-14)
and rounding, which accumulates to ~1e-14 over 100 steps.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mpi4py import MPI

from solvers.fem.heat import HeatParams, HeatSolver

ALPHA, BETA = 3.0, 1.2


def analytic(points, t):
    """The tutorial's u, written out independently of solvers.fem.manufactured."""
    return 1.0 + points[:, 0] ** 2 + ALPHA * points[:, 1] ** 2 + BETA * t


def rel_l2(solver, t):
    u, pts = solver.results()["temperature"], solver.result_points()
    exact = analytic(pts, t)
    return np.linalg.norm(u - exact) / np.linalg.norm(exact)


def make(**kw):
    solver = HeatSolver(MPI.COMM_SELF, HeatParams(**kw))
    solver.initialize(0.0)
    return solver


@pytest.mark.parametrize("material", [{}, {"conductivity": 2.5, "capacity": 0.4}])
def test_monolithic_matches_manufactured_solution_every_step(material):
    """All sides exact, 20x10 cells, dt 0.01, 100 steps: relative nodal L2 error < 1e-10 at each step.

    Reference: the analytic u (module docstring says why the discrete solution equals it).
    The second case checks that k and ρc enter the operator and the manufactured source
    f = ρc β − k (2 + 2α) consistently.
    """
    solver = make(nx=20, ny=10, **material)
    t, worst = 0.0, 0.0
    for _ in range(100):
        solver.advance(t, 0.01)
        t += 0.01
        worst = max(worst, rel_l2(solver, t))
        assert worst < 1e-10
    assert t == pytest.approx(1.0)
    print(f"worst relative L2 error over 100 steps: {worst:.2e}")
    solver.finalize()


def test_wrong_source_is_detected():
    """Negative control for the test above: a source off by 1 W/m^3 must give an error >> 1e-10."""
    solver = make(source=BETA - 2 - 2 * ALPHA + 1.0)
    solver.advance(0.0, 0.01)
    assert rel_l2(solver, 0.01) > 1e-6


@pytest.mark.parametrize("sides", [{"left": "insulated"}, {"bottom": "insulated"}])
def test_insulated_sides_where_the_exact_solution_has_zero_flux(sides):
    """Reference: ∂u/∂x = 2x = 0 on x = 0 and ∂u/∂y = 2αy = 0 on y = 0, so the analytic u
    satisfies insulated conditions there and stays the discrete solution (1e-10 over 20 steps).

    Not both at once: at a corner between two natural sides the P1 load ∫φ (hx hy/3 or /6)
    differs from the quarter cell hx hy/4 the stiffness row sees, so the corner is not exact.
    """
    solver = make(**sides)
    t = 0.0
    for _ in range(20):
        solver.advance(t, 0.05)
        t += 0.05
        assert rel_l2(solver, t) < 1e-10


def exact_inflow(points, hy, x_side, k=1.0):
    """∫ k ∇u·n φ_i ds on a vertical side x = x_side with outward normal n = +x: 2 x k hy per
    inner node, the nodal heat flow entering the domain [W] (the heat flux −k∇u points inward
    since u grows with x). The field has no corner nodes: those lie on exact sides."""
    return np.full(len(points), 2.0 * x_side * k * hy)


def test_neumann_side_with_exact_nodal_inflow():
    """Right side neumann fed the analytic nodal inflow 2 x1 k hy: the solution stays the analytic
    u (1e-10). Reference: the consistent boundary load of the exact normal flux, which for this
    quadratic is exactly what the half-cell 5-point rows at the side need:
    (hy/hx)(u_i − u_W) + (hx/2hy)(2u_i − u_N − u_S) + β hx hy/2 − f hx hy/2 = 2 x1 hy."""
    solver = make(right="neumann")
    assert solver.field_names(solver.params) == (("temperature",), ("heat_flux",))
    spec = solver.fields()["heat_flux"]
    assert spec.extensive and spec.units == "W" and np.all(spec.points[:, 0] == 2.0)
    t = 0.0
    for _ in range(10):
        solver.put("heat_flux", exact_inflow(spec.points, 0.1, 2.0))
        solver.advance(t, 0.1)
        t += 0.1
        assert rel_l2(solver, t) < 1e-10
    # Negative control: no inflow (insulated) must be visibly wrong.
    solver.put("heat_flux", np.zeros(len(spec.points)))
    solver.advance(t, 0.1)
    assert rel_l2(solver, t + 0.1) > 1e-4


def test_dirichlet_side_reports_the_exact_outflow():
    """Right side dirichlet fed the analytic u: heat_flux at the side's nodes is the flow
    leaving, −k ∂u/∂n hy = −k 2 x1 hy = −0.4 W (heat enters: u grows with x).

    Reference: the analytic flux; the residual reaction is exact for this quadratic (the same
    half-cell row as in the Neumann test). Tolerance 1e-10 (solver rtol 1e-14, rounding).
    """
    solver = make(right="dirichlet")
    pts = solver.fields()["temperature"].points
    t = 0.0
    for _ in range(5):
        solver.put("temperature", analytic(pts, t + 0.1))
        solver.advance(t, 0.1)
        t += 0.1
        assert rel_l2(solver, t) < 1e-10
        assert np.all((pts[:, 1] > 0) & (pts[:, 1] < 1))     # corners belong to exact sides
        np.testing.assert_allclose(solver.get("heat_flux"), -0.4, atol=1e-10)


def dirichlet_neumann_window(left, right, t, dt, relax=0.5, tol=1e-12, max_it=200):
    """One implicit-Euler step of the Dirichlet–Neumann iteration, done by hand.

    left reads the interface temperature and writes heat_flux (leaving it), which right reads
    as inflow; right writes temperature back. Returns the number of iterations.
    """
    left_state, right_state = left.state(), right.state()
    interface = right.get("temperature")
    for it in range(1, max_it + 1):
        left.restore(left_state)
        left.put("temperature", interface)
        left.advance(t, dt)
        right.restore(right_state)
        right.put("heat_flux", left.get("heat_flux"))
        right.advance(t, dt)
        new = right.get("temperature")
        change = np.linalg.norm(new - interface) / np.linalg.norm(new)
        if change < tol:
            return it
        interface = relax * new + (1 - relax) * interface
    raise AssertionError(f"no convergence in {max_it} iterations (change {change:.2e})")


@pytest.mark.parametrize("initial", [None, 1.0])
def test_dirichlet_neumann_reproduces_the_monolithic_solution(initial):
    """Two 10x10 subdomains [0,1]x[0,1] (dirichlet at x=1) and [1,2]x[0,1] (neumann at x=1),
    10 steps of dt 0.1 (the tutorial's windows), relaxation 0.5 to a relative change < 1e-12.

    References: (a) the analytic u — both subdomains' relative L2 error < 1e-8 at every step
    (the tutorial's own check); (b) the monolithic 20x10 solution — every node of both
    subdomains equals it to 1e-10, because with the residual flux the converged interface
    equations are the monolithic ones.  With ``initial = 1.0`` the solution is not the analytic
    one (error > 1e-4 at the first step), so (b) is then a genuine check of the coupling, not of
    the manufactured solution; (a) is skipped for it.
    """
    common = dict(ny=10, initial=initial)
    left = make(x0=0.0, x1=1.0, nx=10, right="dirichlet", **common)
    right = make(x0=1.0, x1=2.0, nx=10, left="neumann", **common)
    mono = make(x0=0.0, x1=2.0, nx=20, **common)
    mono_u = lambda: mono.results()["temperature"].reshape(11, 21)  # noqa: E731
    t, dt = 0.0, 0.1
    for step in range(10):
        its = dirichlet_neumann_window(left, right, t, dt)
        mono.advance(t, dt)
        t += dt
        if initial is None:
            assert rel_l2(left, t) < 1e-8 and rel_l2(right, t) < 1e-8
        elif step == 0:
            assert rel_l2(mono, t) > 1e-4
        u_mono = mono_u()
        np.testing.assert_allclose(left.results()["temperature"].reshape(11, 11), u_mono[:, :11],
                                   rtol=0, atol=1e-10 * np.abs(u_mono).max())
        np.testing.assert_allclose(right.results()["temperature"].reshape(11, 11), u_mono[:, 10:],
                                   rtol=0, atol=1e-10 * np.abs(u_mono).max())
        np.testing.assert_allclose(right.get("temperature"), u_mono[1:-1, 10], rtol=1e-10)
    print(f"D-N iterations in the last window: {its}")


def test_state_restore_is_bitwise():
    """advance, save, advance 3 more, restore, re-advance 3: identical bits (reference: the first
    run); also when the state is restored into a fresh instance (restart from a checkpoint)."""
    for sides in ({"right": "dirichlet"}, {"left": "neumann"}):
        solver = make(**sides)
        name = "temperature" if "right" in sides else "heat_flux"
        npts = len(solver.fields()[name].points)
        solver.put(name, np.linspace(1.0, 2.0, npts))
        solver.advance(0.0, 0.01)
        saved = solver.state()
        runs = []
        for solver in (solver, solver, make(**sides)):
            solver.restore(saved)
            for k in range(1, 4):
                solver.put(name, np.linspace(1.0, 2.0, npts) * (1 + k))
                solver.advance(0.01 * k, 0.01)
            runs.append({**solver.state(), **{f"get_{n}": solver.get(n)
                                              for n in solver.field_names(solver.params)[0]}})
        for run in runs[1:]:
            assert run.keys() == runs[0].keys()
            for key in runs[0]:
                assert run[key].tobytes() == runs[0][key].tobytes(), key
        # The saved state was not aliased by later steps.
        assert saved["u"].tobytes() != runs[0]["u"].tobytes()


def test_steady_mode_is_a_poisson_solve():
    """steady: −Δu = −(2 + 2α) with exact boundary values at t + dt: the solution is the analytic
    u at t + dt whatever the state before (reference: analytic u; 1e-10)."""
    solver = make(steady=True, initial=0.0)
    solver.advance(0.0, 0.5)
    assert rel_l2(solver, 0.5) < 1e-10


def test_petsc_options_reach_the_ksp_and_do_not_leak():
    """User options under the instance prefix: gmres + jacobi is used (and still converges to the
    analytic u, 1e-10); the options are gone from the global database afterwards."""
    from solvers.fem.petsc_backend import PETSc

    solver = make(petsc_options={"ksp_type": "gmres", "-pc_type": "jacobi", "ksp_rtol": "1e-13"})
    solver.advance(0.0, 0.01)
    assert solver.ksp.getType() == "gmres" and solver.ksp.getPC().getType() == "jacobi"
    assert rel_l2(solver, 0.01) < 1e-10
    assert not PETSc.Options().hasName(solver.prefix + "ksp_type")
    other = make()
    other.advance(0.0, 0.01)
    assert other.ksp.getType() == "cg"


def test_field_names_follow_the_boundary_conditions():
    """Fixed names, present only when the settings make them exist."""
    names = HeatSolver.field_names
    assert names(HeatParams()) == (("temperature",), ())
    assert names(HeatParams(right="dirichlet")) == (("heat_flux", "temperature"), ("temperature",))
    assert names(HeatParams(top="neumann")) == (("temperature",), ("heat_flux",))
    solver = make(right="dirichlet")
    fields = solver.fields()
    assert fields["temperature"].units == "K" and not fields["temperature"].extensive
    assert fields["heat_flux"].extensive and fields["heat_flux"].shape == (9,)
    assert solver.result_points().shape == (21 * 11, 2)
    with pytest.raises(KeyError):
        solver.put("heat_flux", np.zeros(9))
    # Next to an insulated side the corner is coupled too.
    assert make(right="dirichlet", top="insulated").fields()["temperature"].shape == (10,)


def test_check_catches_invalid_settings():
    """Two coupled sides, a singular steady problem and bad sizes are reported with a path and a fix."""
    assert HeatSolver.check(HeatParams(right="dirichlet", left="insulated")) == []
    problems = HeatSolver.check(HeatParams(left="neumann", right="dirichlet"))
    assert [p[0] for p in problems] == ["right"] and "only one side" in problems[0][1]
    problems = HeatSolver.check(HeatParams(steady=True, left="neumann", right="insulated",
                                           bottom="insulated", top="insulated"))
    assert [p[0] for p in problems] == ["steady"]
    bad = dataclasses.replace(HeatParams(), nx=0, x1=-1.0, conductivity=0.0)
    assert {p[0] for p in HeatSolver.check(bad)} == {"nx", "x1", "conductivity"}
    assert all(len(p) == 3 and p[2] for p in HeatSolver.check(bad))
