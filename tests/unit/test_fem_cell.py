"""fem.cell (periodic cell problem, homogenized tensor) against analytic homogenization results.

References (``/work/shared/references.md``, "Homogenization"):
- laminates: arithmetic mean of the phases along the layers, harmonic mean across
  (k1 = 1, k2 = 10, θ = 0.5: 5.5 and 1/(0.5/1 + 0.5/10) = 1.818182);
- 1D-periodic a(y) = 2 + sin(2π y1): across the layers the harmonic mean
  ⟨1/a⟩⁻¹ = √(2² − 1²) = √3 (∫ dθ/(a + b sin θ) = 2π/√(a² − b²)), along them ⟨a⟩ = 2;
- two-phase checkerboard: √(k1 k2) (Dykhne 1970), √10 = 3.162278 for 1 and 10;
- laminate of anisotropic phases, layers normal to e1 (flux q1 and tangential gradient
  continuous across the layers; e.g. Milton, *The Theory of Composites*, §9.3):
  A11 = ⟨1/K11⟩⁻¹, A12 = A11 ⟨K12/K11⟩, A22 = ⟨K22 − K12²/K11⟩ + A11 ⟨K12/K11⟩².
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from mpi4py import MPI

from solvers.fem.cell import TENSOR, CellParams, CellSolver, homogenized
from solvers.fem.microstructure import Microstructure, cell_tensors

SQRT3 = math.sqrt(3.0)


def anisotropic_laminate(m: Microstructure, x) -> np.ndarray:
    """The closed-form laminate tensor (module docstring), written out from the phase tensors.

    ``x``: one macro point (2,) -> (2, 2), or points (n, 2) -> (n, 2, 2)."""
    pts = np.atleast_2d(np.asarray(x, dtype=float))
    n = len(pts)
    k_a = cell_tensors(m, pts, np.tile([m.theta / 2, 0.5], (n, 1))).reshape(n, 2, 2)
    k_b = cell_tensors(m, pts, np.tile([(1 + m.theta) / 2, 0.5], (n, 1))).reshape(n, 2, 2)

    def mean(f):
        return m.theta * f(k_a) + (1 - m.theta) * f(k_b)

    a11 = 1.0 / mean(lambda k: 1.0 / k[:, 0, 0])
    r = mean(lambda k: k[:, 0, 1] / k[:, 0, 0])
    a22 = mean(lambda k: k[:, 1, 1] - k[:, 0, 1] ** 2 / k[:, 0, 0]) + a11 * r * r
    out = np.stack([a11, a11 * r, a11 * r, a22], axis=1).reshape(n, 2, 2)
    return out[0] if np.ndim(x) == 1 else out


def rates(errors):
    """Observed orders log2(e_n / e_2n) between successive refinements."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


def test_laminate_along_and_across_to_1e10():
    """Must show 1: k1 = 1, k2 = 10, θ = 0.5, layers across y1 (angle 0) and across y2 (angle π/2).
    The interface lies on element edges, so χ is piecewise linear and P1 is exact: 1e-10."""
    across, along = 1.0 / (0.5 / 1.0 + 0.5 / 10.0), 5.5
    a = homogenized(CellParams(kind="laminate", k1=1.0, k2=10.0, theta=0.5, n=8))
    np.testing.assert_allclose(a, [[across, 0.0], [0.0, along]], rtol=0, atol=1e-10)
    b = homogenized(CellParams(kind="laminate", k1=1.0, k2=10.0, theta=0.5, n=8, angle=math.pi / 2))
    np.testing.assert_allclose(b, [[along, 0.0], [0.0, across]], rtol=0, atol=1e-10)
    print(f"laminate: across {a[0, 0]:.12f} (1.818182), along {a[1, 1]:.12f} (5.5)")


def test_laminate_at_an_angle_is_the_rotated_tensor():
    """Layers at 30°: A* = R diag(across, along) Rᵀ (the periodic cell of the rotated laminate is
    the rotated square); also θ = 0.25 on n = 8 (interface on an edge): exact to 1e-10."""
    phi = math.radians(30.0)
    across, along = 1.0 / (0.25 / 2.0 + 0.75 / 7.0), 0.25 * 2.0 + 0.75 * 7.0
    r = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    a = homogenized(CellParams(kind="laminate", k1=2.0, k2=7.0, theta=0.25, n=8, angle=phi))
    np.testing.assert_allclose(a, r @ np.diag([across, along]) @ r.T, rtol=0, atol=1e-10)


def test_smooth_coefficient_converges_to_sqrt3_at_second_order():
    """Must show 1: a(y) = 2 + sin(2π y1): across the layers → √3 (harmonic mean), along → 2.

    The coefficient is sampled at triangle centroids (midpoint rule of ⟨1/a⟩ per layer of
    elements), so the error is O(h²): the observed order must lie in [1.9, 2.1] and the error at
    n = 64 below 1e-4 (the next term, (h²/24)·⟨(1/a)''⟩/⟨1/a⟩², is 8e-5 here)."""
    errors = []
    for n in (8, 16, 32, 64):
        a = homogenized(CellParams(kind="smooth", k1=2.0, amplitude=1.0, n=n))
        errors.append(abs(a[0, 0] - SQRT3))
        # Along the layers the flux is exactly the (midpoint-sampled) arithmetic mean.
        assert abs(a[1, 1] - 2.0) < 1e-12 and abs(a[0, 1]) < 1e-12
    observed = rates(errors)
    print("smooth 2 + sin(2 pi y1): n, |A11 - sqrt(3)|, observed order")
    for n, e, p in zip((8, 16, 32, 64), errors, [None, *observed]):
        print(f"  {n:3d}  {e:.3e}  {'' if p is None else f'{p:.3f}'}")
    assert all(1.9 < p < 2.1 for p in observed), observed
    assert errors[-1] < 1e-4


def test_checkerboard_converges_slowly_to_sqrt10():
    """Must show 1: checkerboard k1 = 1, k2 = 10 → √(k1 k2) = √10 (Dykhne).

    The flux is singular at the four-phase corners: the gradient grows like r^(α−1) with
    α = (2/π) arccos((κ−1)/(κ+1)) = 0.39 for contrast κ = 10, so the energy error, and with it
    the error of A*, falls only like h^(2α) = h^0.78 (observed: ~0.8, against 2 for the smooth
    case).  The observed order is printed and must stay between 0.5 and 1.2 on every
    refinement, with the error shrinking each time and below 0.16 at n = 64 (it is ~4.5 %
    there: slow, as expected).  A* must stay
    isotropic (A11 = A22 by the 90° symmetry of the cell, A12 = 0)."""
    ns = (8, 16, 32, 64)
    errors = []
    for n in ns:
        a = homogenized(CellParams(kind="checkerboard", k1=1.0, k2=10.0, n=n))
        errors.append(a[0, 0] - math.sqrt(10.0))
        assert abs(a[0, 0] - a[1, 1]) < 1e-10 and abs(a[0, 1]) < 1e-10
    observed = rates(errors)
    print("checkerboard 1/10: n, A11 - sqrt(10), observed order")
    for n, e, p in zip(ns, errors, [None, *observed]):
        print(f"  {n:3d}  {e:+.4e}  {'' if p is None else f'{p:.3f}'}")
    assert all(e > 0 for e in errors), "P1 is a conforming (upper-bound) method in energy"
    assert all(0.5 < p < 1.2 for p in observed), observed
    assert errors[-1] < 0.16


def test_graded_laminate_matches_the_anisotropic_laminate_formula():
    """graded_laminate at several macro points: A*(x) equals the closed-form laminate of its
    (x-dependent, anisotropic) phases to 1e-10 (interfaces on element edges: P1 exact), and the
    tensors really differ from point to point (that is what makes HMM queries distinct)."""
    m = Microstructure(kind="graded_laminate", k1=1.0, k2=10.0, theta=0.5, amplitude=0.5, anisotropy=0.1,
                       turn=math.pi / 2)
    cell = CellSolver(MPI.COMM_SELF, CellParams(**dataclasses.asdict(m), n=8))
    cell.initialize(0.0)
    seen = []
    for x in ((0.1, 0.2), (0.5, 0.5), (0.9, 0.3), (0.25, 0.75)):
        cell.reset(dataclasses.replace(cell.params, x1=x[0], x2=x[1]))
        cell.advance(0.0, 1.0)
        got = cell.get(TENSOR).reshape(2, 2)
        np.testing.assert_allclose(got, anisotropic_laminate(m, np.array(x)), rtol=0, atol=1e-10)
        seen.append(got)
    cell.finalize()
    assert min(np.abs(a - b).max() for i, a in enumerate(seen) for b in seen[i + 1:]) > 0.05


def test_reset_reuses_the_mesh_and_equals_a_fresh_instance():
    """reset(params) keeps matrix, KSP and vectors (same objects) and gives bitwise the result of a
    fresh instance; a new mesh size re-initializes."""
    base = CellParams(kind="graded_laminate", amplitude=0.5, anisotropy=0.1, turn=1.0, n=8)
    cell = CellSolver(MPI.COMM_SELF, base)
    cell.initialize(0.0)
    cell.advance(0.0, 1.0)
    ksp, mat = cell.ksp, cell.A
    query = dataclasses.replace(base, x1=0.3, x2=0.8, k1=2.0)
    cell.reset(query)
    assert not cell.solved
    cell.advance(0.0, 1.0)
    assert cell.ksp is ksp and cell.A is mat
    fresh = CellSolver(MPI.COMM_SELF, query)
    fresh.initialize(0.0)
    fresh.advance(0.0, 1.0)
    np.testing.assert_array_equal(cell.get(TENSOR), fresh.get(TENSOR))
    cell.reset(dataclasses.replace(query, n=4))
    assert cell.n_nodes == 16
    for s in (cell, fresh):
        s.finalize()


def test_correctors_are_periodic_zero_mean_and_match_the_1d_solution():
    """Smooth 1D coefficient: χ_1 depends on y1 only, with χ_1' = ⟨1/a⟩⁻¹/a − 1 (the flux is
    constant); check zero mean, independence of y2, and the discrete derivative against it (O(h²))."""
    n = 32
    cell = CellSolver(MPI.COMM_SELF, CellParams(kind="smooth", k1=2.0, amplitude=1.0, n=n))
    cell.initialize(0.0)
    cell.advance(0.0, 1.0)
    chi = cell.correctors()[:, 0].reshape(n, n)        # [j (y2), i (y1)]
    cell.finalize()
    assert abs(chi.mean()) < 1e-12
    np.testing.assert_allclose(chi, np.broadcast_to(chi[0], chi.shape), atol=1e-12)
    y_mid = (np.arange(n) + 0.5) / n
    slope = np.diff(np.append(chi[0], chi[0, 0])) * n
    exact = SQRT3 / (2.0 + np.sin(2 * np.pi * y_mid)) - 1.0
    assert np.abs(slope - exact).max() < 0.02


def test_check_reports_bad_settings():
    """Bad input is a spec error with the setting's name."""
    bad = CellSolver.check(CellParams(kind="smooth", k1=1.0, amplitude=2.0, n=1))
    assert {p[0] for p in bad} == {"k1", "n"}
    assert CellSolver.check(CellParams(kind="laminate", theta=1.5))[0][0] == "theta"
    assert CellSolver.check(CellParams()) == []


@pytest.mark.parametrize("name", ["x1", "x2", "k1", "k2", "theta", "angle"])
def test_query_settings_name_params_fields(name):
    """The contract: query_settings are Params fields (an HMM query may set them)."""
    assert name in CellSolver.query_settings
    assert name in {f.name for f in dataclasses.fields(CellParams)}
