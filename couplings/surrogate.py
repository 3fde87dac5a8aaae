"""Answer cache and Gaussian-process surrogate for HMM query farms.

A heterogeneous-multiscale (HMM) farm answers *queries* (points in a query
space of ``n_query`` settings, e.g. a density in veh/m) with *answers*
(``n_answer`` averaged micro observables, e.g. a flow in veh/s).  Two helpers
spare micro runs:

:class:`AnswerCache`
    Stored answers by query: an exact key, or, with ``tolerance > 0``, the
    nearest stored query within that max-norm distance in query space (ties:
    the earliest stored).  A query is stored once; a later answer to the same
    key does not replace it, so an answer once given never changes.

:class:`GPSurrogate`
    Gaussian-process regression (scikit-learn ``GaussianProcessRegressor``)
    with its predictive standard deviation.  The farm answers a query from the
    mean when every component's std is below ``max_std`` (see
    :meth:`GPSurrogate.confident`) and asks the micro model otherwise, then
    :meth:`GPSurrogate.add` s the new answers (the GP is retrained).

Design choices
--------------
* **One GP per answer component.**  Observables differ in scale and in
  smoothness (a flow has a sharp maximum at the critical density where the
  speed is smooth); one multi-output GP in scikit-learn shares a single kernel
  (one set of length scales) across all outputs, so one rough output would
  shorten the length scales of all.  Independent GPs cost ``n_answer`` times
  more, which is negligible at the few hundred samples a farm collects.
* **Kernel** ``C * Matern(nu=5/2, ARD) + White`` on queries scaled to the unit
  box of the training data, targets normalised (``normalize_y``).  Matern 5/2
  rather than the squared exponential: micro answers are often smooth but
  sharply bent (a fundamental diagram near its capacity), where an RBF kernel
  fitted to coarse samples is overconfident -- on the IDM diagram its std stayed
  below 1e-3 veh/s at errors of 1.3e-2, while Matern 5/2 kept errors below its
  threshold (tests/unit/test_traffic_hmm.py).  The white-noise term
  is fitted so that noisy micro averages do not force an interpolating,
  oscillating mean.  The *predictive* GP then uses the signal kernel only with
  the fitted noise as ``alpha``: its std is the uncertainty of the mean (it
  shrinks to the noise-limited level near data), not of one more noisy sample.
  The mean is the same as that of the fitted model.
* **Deterministic:** the optimiser's restarts draw from
  ``RandomState(random_state)`` created anew for every fit, so the same
  training data give the same hyperparameters.
* **Bitwise restore:** the predictor is always built by one function from the
  plain arrays of :meth:`GPSurrogate.state` (training data, input scaling,
  fitted log-hyperparameters, noise) with ``optimizer=None`` -- after a fit as
  well as after :meth:`GPSurrogate.restore` -- so a restored surrogate gives
  bitwise-equal predictions.
* Cost: a fit is O(n^3) in the number of samples ``n`` per component; the
  hyperparameters are refitted on every :meth:`GPSurrogate.add` once
  ``min_samples`` are present.  Intended for n up to a few hundred.

Units: queries and answers in the units of the query/answer fields; std in
answer units.  No MPI here: the farm calls these on one rank (or identically
on every rank).
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["AnswerCache", "GPSurrogate"]


def _as_2d(values, width: int, name: str) -> np.ndarray:
    """``values`` as a C-contiguous float64 array of shape (m, width)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1 and width == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{name} must have shape (m, {width}), got {arr.shape}")
    # + 0.0 turns -0.0 into 0.0 so both give the same exact key
    return np.ascontiguousarray(arr + 0.0)


def _check_count(value, name: str, minimum: int) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class AnswerCache:
    """Answers by query; exact key, or nearest stored query within `tolerance` (max-norm in query space).

    Parameters
    ----------
    n_query, n_answer : int
        Components of a query and of an answer.
    tolerance : float
        0: exact-key hits only.  > 0: a query hits the nearest stored query
        whose max-norm distance is <= ``tolerance`` (in query units).
    """

    def __init__(self, n_query: int, n_answer: int, tolerance: float = 0.0):
        self.n_query = _check_count(n_query, "n_query", 1)
        self.n_answer = _check_count(n_answer, "n_answer", 1)
        if not (np.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self._queries = np.empty((0, self.n_query))
        self._answers = np.empty((0, self.n_answer))
        self._index: dict[bytes, int] = {}
        self._tree = None                    # scipy cKDTree over _queries, rebuilt lazily

    def __len__(self) -> int:
        return len(self._queries)

    def lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored answers for ``queries`` (m, n_query).

        Returns ``answers`` (m, n_answer), NaN where missed, and ``hit`` (m,) bool.
        Queries containing NaN never hit.
        """
        q = _as_2d(queries, self.n_query, "queries")
        answers = np.full((len(q), self.n_answer), np.nan)
        hit = np.zeros(len(q), dtype=bool)
        if not len(self._queries):
            return answers, hit
        rows = np.array([self._index.get(row.tobytes(), -1) for row in q], dtype=np.int64)
        hit = rows >= 0
        if self.tolerance > 0 and not hit.all():
            miss = np.flatnonzero(~hit & np.isfinite(q).all(axis=1))
            if len(miss):
                dist, near = self._kdtree().query(q[miss], k=1, p=np.inf,
                                                  distance_upper_bound=self.tolerance)
                found = np.isfinite(dist)   # misses come back as dist=inf
                rows[miss[found]] = near[found]
                hit[miss[found]] = True
        answers[hit] = self._answers[rows[hit]]
        return answers, hit

    def add(self, queries: np.ndarray, answers: np.ndarray) -> None:
        """Store answers (m, n_answer) of queries (m, n_query); known keys keep their first answer."""
        q = _as_2d(queries, self.n_query, "queries")
        a = _as_2d(answers, self.n_answer, "answers")
        if len(q) != len(a):
            raise ValueError(f"{len(q)} queries but {len(a)} answers")
        keep = []
        for i, row in enumerate(q):
            key = row.tobytes()
            if key in self._index or not np.isfinite(row).all() or not np.isfinite(a[i]).all():
                continue
            self._index[key] = len(self._queries) + len(keep)
            keep.append(i)
        if keep:
            self._queries = np.concatenate([self._queries, q[keep]])
            self._answers = np.concatenate([self._answers, a[keep]])
            self._tree = None

    def state(self) -> dict[str, np.ndarray]:
        """Plain arrays: stored ``queries`` (n, n_query) and ``answers`` (n, n_answer), insertion order."""
        return {"queries": self._queries.copy(), "answers": self._answers.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Replace the contents by a :meth:`state` (the tolerance stays the constructor's)."""
        self._queries = np.empty((0, self.n_query))
        self._answers = np.empty((0, self.n_answer))
        self._index = {}
        self._tree = None
        self.add(state["queries"], state["answers"])

    def _kdtree(self):
        if self._tree is None:
            from scipy.spatial import cKDTree
            self._tree = cKDTree(self._queries)
        return self._tree


class GPSurrogate:
    """Gaussian-process regression (scikit-learn) with predictive std; deterministic; retrains as answers arrive.

    Parameters
    ----------
    n_query, n_answer : int
        Components of a query and of an answer.
    max_std : float
        Confidence threshold (answer units, > 0): :meth:`confident` is true
        where every component's predictive std is below it.
    min_samples : int
        Training samples needed before the GP predicts (before: mean NaN, std inf).
    random_state : int
        Seed of the optimiser restarts (fixed: same data -> same surrogate).
    """

    _NOISE_FLOOR = 1e-10      # normalised-target variance added for conditioning

    def __init__(self, n_query: int, n_answer: int, max_std: float, min_samples: int = 8,
                 random_state: int = 0, n_restarts: int = 1):
        self.n_query = _check_count(n_query, "n_query", 1)
        self.n_answer = _check_count(n_answer, "n_answer", 1)
        if not (np.isfinite(max_std) and max_std > 0):
            raise ValueError(f"max_std must be a finite number > 0, got {max_std!r}")
        self.max_std = float(max_std)
        self.min_samples = _check_count(min_samples, "min_samples", 1)
        self.random_state = int(random_state)
        self.n_restarts = _check_count(n_restarts, "n_restarts", 0)
        self._x = np.empty((0, self.n_query))
        self._y = np.empty((0, self.n_answer))
        self._fit_state: dict[str, np.ndarray] | None = None   # hyperparameters of the predictor
        self._models: list = []

    def __len__(self) -> int:
        return len(self._x)

    @property
    def ready(self) -> bool:
        """True once the GP has been fitted (``min_samples`` reached)."""
        return bool(self._models)

    # ------------------------------------------------------------------ public API
    def predict(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (m, n_answer) and predictive std (m, n_answer); NaN / inf before ``min_samples``."""
        q = _as_2d(queries, self.n_query, "queries")
        mean = np.full((len(q), self.n_answer), np.nan)
        std = np.full((len(q), self.n_answer), np.inf)
        if not self._models or not len(q):
            return mean, std
        xs = (q - self._fit_state["x_shift"]) / self._fit_state["x_scale"]
        for j, model in enumerate(self._models):
            m, s = model.predict(xs, return_std=True)
            mean[:, j] = m
            std[:, j] = s
        std[~np.isfinite(q).all(axis=1)] = np.inf
        return mean, std

    def confident(self, std: np.ndarray) -> np.ndarray:
        """(m,) bool: every component of a row of ``std`` is below ``max_std``."""
        return np.all(np.asarray(std) < self.max_std, axis=1)

    def add(self, queries: np.ndarray, answers: np.ndarray) -> None:
        """Append training samples (non-finite rows are dropped) and refit once ``min_samples`` are present."""
        q = _as_2d(queries, self.n_query, "queries")
        a = _as_2d(answers, self.n_answer, "answers")
        if len(q) != len(a):
            raise ValueError(f"{len(q)} queries but {len(a)} answers")
        ok = np.isfinite(q).all(axis=1) & np.isfinite(a).all(axis=1)
        if not ok.any():
            return
        self._x = np.concatenate([self._x, q[ok]])
        self._y = np.concatenate([self._y, a[ok]])
        if len(self._x) >= self.min_samples:
            self._fit_state = self._fit_hyperparameters()
            self._models = self._build_predictors(self._fit_state)

    def state(self) -> dict[str, np.ndarray]:
        """Plain arrays: training ``x`` (n, n_query), ``y`` (n, n_answer) and, once fitted, the
        input scaling ``x_shift``/``x_scale`` (n_query,), log-hyperparameters ``theta``
        (n_answer, n_theta) and noise ``alpha`` (n_answer,) of the predictive GPs."""
        out = {"x": self._x.copy(), "y": self._y.copy()}
        if self._fit_state is not None:
            out.update({k: v.copy() for k, v in self._fit_state.items()})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Return to a :meth:`state`; predictions are bitwise equal to those of the saved surrogate."""
        self._x = _as_2d(state["x"], self.n_query, "state['x']")
        self._y = _as_2d(state["y"], self.n_answer, "state['y']")
        if "theta" in state:
            self._fit_state = {k: np.array(state[k], dtype=np.float64)
                               for k in ("x_shift", "x_scale", "theta", "alpha")}
            self._models = self._build_predictors(self._fit_state)
        else:
            self._fit_state, self._models = None, []

    # ------------------------------------------------------------------ internals
    def _kernel(self):
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        signal = ConstantKernel(1.0, (1e-4, 1e4)) * Matern(np.full(self.n_query, 0.3), (1e-3, 1e3), nu=2.5)
        return signal + WhiteKernel(1e-4, (self._NOISE_FLOOR, 1e-1))

    def _fit_hyperparameters(self) -> dict[str, np.ndarray]:
        """Maximum-likelihood kernel per answer component on the current data."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        lo, hi = self._x.min(axis=0), self._x.max(axis=0)
        scale = np.where(hi > lo, hi - lo, 1.0)
        xs = (self._x - lo) / scale
        thetas, alphas = [], []
        for j in range(self.n_answer):
            gp = GaussianProcessRegressor(self._kernel(), alpha=self._NOISE_FLOOR, normalize_y=True,
                                          n_restarts_optimizer=self.n_restarts,
                                          random_state=np.random.RandomState(self.random_state))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(xs, self._y[:, j])
            thetas.append(gp.kernel_.k1.theta)
            alphas.append(gp.kernel_.k2.noise_level + self._NOISE_FLOOR)
        return {"x_shift": lo, "x_scale": scale, "theta": np.array(thetas),
                "alpha": np.array(alphas)}

    def _build_predictors(self, fit: dict[str, np.ndarray]) -> list:
        """Predictive GPs (signal kernel, fitted noise as alpha, no optimiser) from plain arrays."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        signal = self._kernel().k1
        xs = (self._x - fit["x_shift"]) / fit["x_scale"]
        models = []
        for j in range(self.n_answer):
            gp = GaussianProcessRegressor(signal.clone_with_theta(fit["theta"][j]),
                                          alpha=float(fit["alpha"][j]), normalize_y=True,
                                          optimizer=None)
            models.append(gp.fit(xs, self._y[:, j]))
        return models
