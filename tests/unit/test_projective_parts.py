"""Pieces of the projective pattern (couplings/patterns/projective.py) on one rank (MPI.COMM_SELF)."""
from types import SimpleNamespace

import numpy as np
from mpi4py import MPI

from couplings.patterns.projective import ProjectiveSolver, ProjectiveSpec, _adams_weights
from solvers.examples.michaelis_menten import MichaelisMenten, MMParams


def test_adams_weights_are_the_textbook_ones():
    """Reference: Adams-Bashforth 3 on equal steps h, b_j = h (5/12, -16/12, 23/12) (Hairer, Norsett &
    Wanner, Solving ODEs I, III.1); and exact integrals of quadratics for uneven nodes."""
    assert np.allclose(_adams_weights([0.0, 1.0, 2.0], 2.0, 3.0), [5 / 12, -16 / 12, 23 / 12])
    nodes = [0.1, 0.7, 1.1]
    w = _adams_weights(nodes, 1.1, 1.6)
    assert np.isclose(np.dot(w, np.square(nodes)), (1.6 ** 3 - 1.1 ** 3) / 3)


def make(p_kw, x0=1.0):
    spec = SimpleNamespace(cls=MichaelisMenten, params=MMParams(epsilon=0.01, x0=x0))
    p = ProjectiveSpec(kind="projective", solver="mm", micro_dt=5e-4, burst=0.02, fit=0.01, heal=0.02,
                       heal_runs=1, scheme="adams", observables=("x",), **p_kw)
    s = ProjectiveSolver(MPI.COMM_SELF, spec, p)
    s.initialize(0.0)
    return s


def test_state_restore_continues_bitwise():
    """A projective run restored from state() mid-way (history, template, step count included)
    continues with the same bits as the uninterrupted one."""
    a = make({})
    for i in range(4):
        a.advance(0.5 * i, 0.5)
    saved = a.state()
    for i in range(4, 7):
        a.advance(0.5 * i, 0.5)
    b = make({})
    b.restore(saved)
    for i in range(4, 7):
        b.advance(0.5 * i, 0.5)
    assert np.array_equal(a.U["x"], b.U["x"]) and np.array_equal(a.micro.u, b.micro.u)
    assert a.steps == b.steps


def test_leading_order_slow_law_far_from_the_fast_scale():
    """Reference: the leading-order slow law dx/dt = -x/(2(1+x)), solved by ln x + x = ln x0 + x0 - t/2.
    From x0 = 5 the O(eps) slow-manifold correction is 2e-4 at t = 5, so the projective result must
    follow the leading-order law itself to 1e-3 (the issue's check taken literally)."""
    from scipy.special import lambertw
    s = make({}, x0=5.0)
    for i in range(10):
        s.advance(0.5 * i, 0.5)
    exact = float(np.real(lambertw(5.0 * np.exp(5.0 - 2.5))))
    assert abs(s.U["x"][0] / exact - 1) < 1e-3
