"""AnswerCache and GPSurrogate (couplings/surrogate.py) against an analytic function.

Reference: f(x) = (sin(3 x0) + x1^2, exp(-x0)) on [0, 1]^2 -- smooth, so a GP
through ~30 samples must interpolate it to well below 1e-2 and its predictive
std must be small near data and large far from it.
"""
import numpy as np
import pytest

from couplings.surrogate import AnswerCache, GPSurrogate


def f(x):
    return np.c_[np.sin(3 * x[:, 0]) + x[:, 1] ** 2, np.exp(-x[:, 0])]


@pytest.fixture(scope="module")
def trained():
    x = np.random.RandomState(1).uniform(0, 1, (30, 2))
    gp = GPSurrogate(2, 2, max_std=1e-2, min_samples=8)
    gp.add(x[:5], f(x[:5]))
    assert not gp.ready                 # 5 < min_samples
    gp.add(x[5:], f(x[5:]))
    assert gp.ready
    return gp, x


def test_before_min_samples_std_is_inf():
    gp = GPSurrogate(1, 1, max_std=0.1, min_samples=4)
    gp.add([[0.0], [1.0]], [[0.0], [1.0]])
    mean, std = gp.predict([[0.5]])
    assert np.isnan(mean).all() and np.isinf(std).all()
    assert not gp.confident(std).any()


def test_gp_interpolates_and_std_shrinks_near_data(trained):
    gp, x = trained
    q = np.random.RandomState(2).uniform(0, 1, (200, 2))
    mean, std = gp.predict(q)
    assert np.abs(mean - f(q)).max() < 1e-2
    _, std_data = gp.predict(x)
    _, std_far = gp.predict([[3.0, 3.0]])
    assert std_data.max() < 1e-3            # near data: noise-limited
    assert std_far.min() > 100 * std_data.max()
    assert gp.confident(std_data).all() and not gp.confident(std_far).any()


def test_std_covers_the_error(trained):
    """Between samples the true error stays within a few predictive stds (calibration)."""
    gp, _ = trained
    q = np.random.RandomState(3).uniform(0, 1, (200, 2))
    mean, std = gp.predict(q)
    assert np.mean(np.abs(mean - f(q)) <= 3 * std + 1e-9) > 0.9


def test_restore_is_bitwise_and_deterministic(trained):
    gp, x = trained
    q = np.random.RandomState(4).uniform(-0.5, 1.5, (50, 2))
    mean, std = gp.predict(q)
    state = gp.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    again = GPSurrogate(2, 2, max_std=1e-2, min_samples=8)
    again.restore(state)
    mean2, std2 = again.predict(q)
    assert np.array_equal(mean, mean2) and np.array_equal(std, std2)
    # same data, fresh fit: same hyperparameters (fixed random_state)
    fresh = GPSurrogate(2, 2, max_std=1e-2, min_samples=8)
    fresh.add(x, f(x))
    assert np.array_equal(fresh.state()["theta"], state["theta"])
    # a restored surrogate keeps learning exactly like the original
    more = np.random.RandomState(5).uniform(0, 1, (3, 2))
    gp2 = GPSurrogate(2, 2, max_std=1e-2, min_samples=8)
    gp2.restore(state)
    gp2.add(more, f(more))
    fresh.add(more, f(more))
    assert np.array_equal(gp2.predict(q)[0], fresh.predict(q)[0])


def test_exact_cache_hits_only_equal_keys():
    c = AnswerCache(2, 1)
    c.add([[0.1, 0.2], [0.3, -0.0]], [[1.0], [2.0]])
    answers, hit = c.lookup([[0.1, 0.2], [0.3, 0.0], [0.1, 0.2 + 1e-15]])
    assert hit.tolist() == [True, True, False]
    assert answers[:2, 0].tolist() == [1.0, 2.0] and np.isnan(answers[2, 0])
    c.add([[0.1, 0.2]], [[9.0]])            # a stored answer is never replaced
    assert c.lookup([[0.1, 0.2]])[0][0, 0] == 1.0
    assert len(c) == 2


def test_tolerance_cache_is_max_norm_nearest():
    c = AnswerCache(2, 1, tolerance=0.05)
    c.add([[0.0, 0.0], [0.08, 0.0]], [[1.0], [2.0]])
    q = [[0.04, 0.04],      # max-norm 0.04 from the first: hit (its euclidean distance is 0.057)
         [0.05, 0.0],       # 0.05 from first, 0.03 from second: the nearest
         [0.0, 0.051],      # 0.051 > tolerance: miss
         [np.nan, 0.0]]
    answers, hit = c.lookup(q)
    assert hit.tolist() == [True, True, False, False]
    assert answers[:2, 0].tolist() == [1.0, 2.0]


def test_cache_state_restore():
    c = AnswerCache(1, 2, tolerance=0.1)
    c.add([[1.0], [2.0]], [[1.0, 10.0], [2.0, 20.0]])
    d = AnswerCache(1, 2, tolerance=0.1)
    d.restore(c.state())
    q = [[1.05], [1.96], [3.0]]
    for a, b in zip(c.lookup(q), d.lookup(q)):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("kwargs", [dict(max_std=0.0), dict(max_std=-1.0), dict(max_std=np.nan),
                                    dict(max_std=1.0, min_samples=0)])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        GPSurrogate(1, 1, **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        AnswerCache(2, 1).lookup(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="tolerance"):
        AnswerCache(1, 1, tolerance=-1.0)
