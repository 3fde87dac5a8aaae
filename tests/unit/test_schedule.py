"""The coupling schedule without MPI: stages, fresh vs loop-closing data, waveform weights.

References are worked by hand in each docstring (golden plans of tiny topologies).
"""
from types import SimpleNamespace as NS

import numpy as np
import pytest

from msorch.schedule import interpolation, make_plan


def job(kind="explicit", staggering="serial", order=(), couplings=(), convergence=(), acc_fields=()):
    solvers = {name: None for name in "abc"}
    cs = tuple(NS(source=s, source_field="out", target=t, target_field=f"in_{s}") for s, t in couplings)
    scheme = NS(kind=kind, staggering=staggering, order=tuple(order), convergence=tuple(NS(field=f) for f in convergence),
                acceleration=NS(fields=tuple(acc_fields)) if kind == "implicit" else None)
    return NS(solvers=solvers, couplings=cs, scheme=scheme)


def test_serial_stages_make_forward_data_fresh():
    """a -> b -> c in order [a, b, c]: a->b and b->c arrive within the window; c->a closes the loop."""
    plan, problems = make_plan(job(order="abc", couplings=[("a", "b"), ("b", "c"), ("c", "a")]))
    assert problems == []
    assert plan.stage == {"a": 0, "b": 1, "c": 2}
    assert plan.fresh == frozenset({0, 1})


def test_parallel_staggering_has_no_fresh_data():
    plan, _ = make_plan(job(staggering="parallel", couplings=[("a", "b"), ("b", "a")]))
    assert set(plan.stage.values()) == {0} and plan.fresh == frozenset()


def test_implicit_accelerates_the_loop_closing_data_by_default():
    """Serial [a, b] with a <-> b: b.in_a is fresh, a.in_b closes the loop and is accelerated."""
    plan, problems = make_plan(job("implicit", order="ab", couplings=[("a", "b"), ("b", "a")],
                                   convergence=["a.in_b", "b.in_a"]))
    assert problems == [] and plan.accelerated == (1,) and plan.converged_on == (1, 0)


def test_accelerating_fresh_data_is_refused_with_a_fix():
    _, problems = make_plan(job("implicit", order="ab", couplings=[("a", "b"), ("b", "a")],
                                convergence=["a.in_b"], acc_fields=["b.in_a"]))
    (path, what, fix), = problems
    assert path == "scheme.acceleration.fields[0]" and "received within the iteration" in what and "a.in_b" in fix


def test_implicit_without_a_loop_is_refused():
    _, problems = make_plan(job("implicit", order="ab", couplings=[("a", "b")], convergence=["b.in_a"]))
    assert problems and problems[0][0] == "scheme"


@pytest.mark.parametrize("k_s, k_r, expected", [
    # receiver steps end at fractions (r+1)/k_r; samples sit at i/k_s (0 = window start)
    (1, 2, [(0, 1, 0.5), (1, 1, 0.0)]),             # half-way between start and end, then the end sample
    (2, 1, [(2, 2, 0.0)]),                          # one step: the last sample exactly
    (2, 3, [(0, 1, 2 / 3), (1, 2, 1 / 3), (2, 3, 0.0)]),
    (10, 10, [(i, i + 1, 0.0) for i in range(1, 11)]),
])
def test_linear_waveform_weights(k_s, k_r, expected):
    """Linear interpolation weights: (i0, i1, w1) with value = (1 - w1) S[i0] + w1 S[i1]."""
    ip = interpolation(k_s, k_r, "linear")
    for r, (i0, i1, w1) in enumerate(expected):
        assert ip.i0[r] == i0 and np.isclose(ip.w1[r], w1) and np.isclose(ip.w0[r], 1 - w1)
        if w1:
            assert ip.i1[r] == i1


def test_linear_waveform_reproduces_a_linear_signal_exactly():
    """Samples of s(t) = 3 + 2t read at any receiver step end give s there (up to rounding)."""
    for k_s in (1, 2, 3, 7):
        samples = 3 + 2 * np.arange(k_s + 1) / k_s
        for k_r in (1, 2, 5, 10):
            ip = interpolation(k_s, k_r, "linear")
            got = ip.w0 * samples[ip.i0] + ip.w1 * samples[ip.i1]
            np.testing.assert_allclose(got, 3 + 2 * np.arange(1, k_r + 1) / k_r, rtol=1e-15)


def test_constant_waveform_takes_the_first_sample_at_or_after_the_step_end():
    ip = interpolation(4, 3, "constant")
    assert list(ip.i0) == [2, 3, 4] and list(ip.w1) == [0, 0, 0]
