"""POD, DMD, BOP-DMD and multiresolution DMD of a snapshot matrix (PyDMD underneath).

Conventions, the same everywhere in ``msorch analyze``:

- Snapshots ``X`` have shape (n, n_t): column j is the state at ``t[j]``.
- A DMD mode evolves as ``phi(x) * b * exp(lambda * (t - t[0]))`` with the
  *continuous-time* eigenvalue ``lambda = ln(mu) / dt`` (``mu``: the discrete
  eigenvalue of the one-step map, ``dt``: the output interval), in 1/(run time unit).
- ``growth_rate = Re(lambda)`` [1/time]; ``frequency = Im(lambda) / (2 pi)``
  [cycles per time unit, i.e. Hz for runs in seconds]; ``period = 1/|frequency|``.
  Angular frequency is ``Im(lambda)`` and is stored as ``omega``.
- ``amplitude``: the RMS over the points of ``|b| |phi|`` at ``t[0]``
  (modes are scaled to unit norm; a real oscillation is a complex-conjugate
  pair, whose two amplitudes add up to the real signal's peak amplitude).
- On 1-D point sets (``x``): ``wavenumber k`` [rad per length unit] is the
  |phi|^2-weighted slope of the mode's unwrapped phase along x, and the
  ``phase_speed = -Im(lambda) / k`` [length per time unit]: the mode
  ``exp(i (k x + omega t))`` keeps its phase on ``x = -omega/k t``.

Rank (``rank``): an integer keeps that many modes; a number in (0, 1) the
modes holding that fraction of the POD energy; 0 Gavish–Donoho's optimal
hard threshold; -1 all.  Series with few points are delay-embedded first
(:func:`msorch.analysis.series.delay_embed`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .series import AnalysisError, delay_embed

__all__ = ["POD", "DMDModes", "MultiResolution", "Scale", "pod", "dmd", "bopdmd", "mrdmd", "auto_delays",
           "check_rank"]


def _pydmd():
    """Import PyDMD quietly (it imports matplotlib.pyplot: force a file backend first)."""
    import matplotlib
    matplotlib.use("Agg")
    import pydmd
    return pydmd


def check_rank(rank, n_rows: int, n_snapshots: int, what: str) -> None:
    """An error when an integer ``rank`` needs more snapshots (or rows) than the series has."""
    if isinstance(rank, float) and not (0 < rank < 1 or rank in (0.0, -1.0)):
        raise AnalysisError(f"rank {rank:g}: expected an integer >= 1, a fraction in (0, 1), 0 (optimal "
                            "threshold) or -1 (all)")
    if n_snapshots < 3:
        raise AnalysisError(f"{what} has {n_snapshots} snapshot(s): DMD needs at least 3. Fix: write outputs "
                            "more often (output.every) or run longer")
    if isinstance(rank, (int, np.integer)) and rank >= 1 and rank > min(n_rows, n_snapshots - 1):
        raise AnalysisError(f"{what}: rank {rank} needs at least {rank + 1} snapshots and {rank} values per "
                            f"snapshot, the series has {n_snapshots} snapshots of {n_rows} values. Fix: ask for "
                            f"--rank {max(1, min(n_rows, n_snapshots - 1))} or less, or write outputs more often")


def auto_delays(n_rows: int, n_snapshots: int) -> int:
    """Delay-embedding depth: none for fields with >= 16 values per snapshot, else enough to give ~32 rows."""
    if n_rows >= 16:
        return 1
    return int(max(1, min(-(-32 // n_rows), n_snapshots // 3)))


# ----------------------------------------------------------------------------- POD
@dataclass
class POD:
    """Proper orthogonal decomposition of the fluctuations about the time mean (SVD of the centred
    snapshots, as usual for POD: Taira et al., AIAA J. 55, 2017), or of the raw snapshots.

    singular_values (r,); energy (r,) fraction sigma_i^2 / sum sigma^2;
    modes (n, k) unit columns; coefficients (k, n_t); mean (n,) (zeros when not centered).
    """

    singular_values: np.ndarray
    energy: np.ndarray
    modes: np.ndarray
    coefficients: np.ndarray
    mean: np.ndarray
    centered: bool


def pod(X: np.ndarray, keep: int = 20, centered: bool = True) -> POD:
    """POD of ``X`` (n, n_t); keeps the first ``keep`` modes and all singular values.

    ``centered``: decompose ``X`` minus its time mean (the mean field is kept in ``mean``), so
    the energy fractions are those of the fluctuations; otherwise the raw snapshots.
    """
    mean = X.mean(axis=1) if centered else np.zeros(X.shape[0])
    U, s, Vt = np.linalg.svd(X - mean[:, None], full_matrices=False)
    total = float(np.sum(s ** 2))
    energy = s ** 2 / total if total > 0 else np.zeros_like(s)
    k = min(keep, len(s))
    return POD(s, energy, U[:, :k], s[:k, None] * Vt[:k], mean, centered)


# ----------------------------------------------------------------------------- DMD
@dataclass
class DMDModes:
    """DMD modes sorted by amplitude, largest first (see the module docstring for units).

    lam, mu (r,) complex; modes (n, r) complex unit columns; b (r,) complex
    amplitudes of the unit modes; amplitude (r,) float; wavenumber,
    phase_speed (r,) float (NaN off 1-D point sets); std (r,) complex
    spread of lam over BOP-DMD's bags (NaN without bagging).
    """

    method: str
    dt: float
    lam: np.ndarray
    mu: np.ndarray
    modes: np.ndarray
    b: np.ndarray
    amplitude: np.ndarray
    wavenumber: np.ndarray
    phase_speed: np.ndarray
    std: np.ndarray
    delays: int = 1
    rank: int = 0

    @property
    def growth_rate(self) -> np.ndarray:
        return self.lam.real

    @property
    def omega(self) -> np.ndarray:
        return self.lam.imag

    @property
    def frequency(self) -> np.ndarray:
        return self.lam.imag / (2 * np.pi)

    @property
    def period(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(self.lam.imag != 0, 2 * np.pi / np.abs(self.lam.imag), np.inf)


def _wavenumbers(modes: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    if x is None:
        return np.full(modes.shape[1], np.nan)
    order = np.argsort(x)
    xs = x[order]
    out = np.empty(modes.shape[1])
    for j in range(modes.shape[1]):
        phi = modes[order, j]
        w = np.abs(phi) ** 2
        theta = np.unwrap(np.angle(phi))
        xm = np.average(xs, weights=w)
        out[j] = np.sum(w * (xs - xm) * (theta - np.average(theta, weights=w))) / np.sum(w * (xs - xm) ** 2)
    return out


def _finish(method, dt, lam, modes_full, b, n, x, delays, std=None) -> DMDModes:
    modes = modes_full[:n]                          # the first delay block is the field itself
    norms = np.linalg.norm(modes, axis=0)
    norms[norms == 0] = 1.0
    modes = modes / norms
    b = b * norms
    amplitude = np.abs(b) / np.sqrt(n)
    order = np.argsort(-amplitude, kind="stable")
    lam, modes, b, amplitude = lam[order], modes[:, order], b[order], amplitude[order]
    k = _wavenumbers(modes, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(np.abs(k) > 0, -lam.imag / k, np.nan)
    std = np.full(len(lam), np.nan + 0j) if std is None else np.asarray(std)[order]
    return DMDModes(method, dt, lam, np.exp(lam * dt), modes, b, amplitude, k, c, std, delays, len(lam))


def dmd(X: np.ndarray, dt: float, rank=0, x=None, delays: int = 1, what: str = "the series") -> DMDModes:
    """Exact DMD (PyDMD ``DMD``) of ``X`` (n, n_t) sampled every ``dt``; ``lam = ln(mu)/dt``."""
    n = X.shape[0]
    Z = delay_embed(X, delays)
    check_rank(rank, Z.shape[0], Z.shape[1], what)
    pydmd = _pydmd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = pydmd.DMD(svd_rank=rank, exact=True).fit(Z)
    mu = np.asarray(d.eigs, dtype=complex)
    if len(mu) == 0:
        raise AnalysisError(f"{what}: DMD found no modes (the series is zero, or the rank threshold removed all)")
    with np.errstate(divide="ignore"):
        lam = np.log(mu) / dt
    return _finish("dmd", dt, lam, np.asarray(d.modes), np.asarray(d.amplitudes), n, x, delays)


def bopdmd(X: np.ndarray, t: np.ndarray, rank=0, x=None, delays: int = 1, trials: int = 0,
           what: str = "the series") -> DMDModes:
    """Optimized DMD by variable projection, bagged when ``trials`` > 0 (PyDMD ``BOPDMD``).

    Fits continuous eigenvalues directly to the (possibly noisy) snapshots at
    times ``t``; robust to measurement noise where exact DMD is biased.
    """
    n = X.shape[0]
    Z = delay_embed(X, delays)
    tz = np.asarray(t[:Z.shape[1]], dtype=np.float64) - t[0]
    check_rank(rank, Z.shape[0], Z.shape[1], what)
    if not (isinstance(rank, (int, np.integer)) and rank >= 1):
        rank = _threshold_rank(Z, rank)
    pydmd = _pydmd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = pydmd.BOPDMD(svd_rank=int(rank), num_trials=trials, trial_size=0.8 if trials else 0.6,
                         varpro_opts_dict={"maxiter": 60}).fit(Z, tz)
    lam = np.asarray(d.eigs, dtype=complex)
    std = np.asarray(d.eigenvalues_std) if trials else None
    return _finish("bopdmd", float(np.median(np.diff(t))), lam, np.asarray(d.modes), np.asarray(d.amplitudes),
                   n, x, delays, std)


def _threshold_rank(Z: np.ndarray, rank) -> int:
    """The integer rank PyDMD's svd_rank rule (0, fraction, -1) picks for Z."""
    from pydmd.utils import compute_rank
    return max(1, int(compute_rank(Z, rank)))


# ----------------------------------------------------------------------------- mrDMD
@dataclass
class Scale:
    """One separated time scale: oscillatory modes whose frequencies cluster together.

    period [time unit]: 2 pi over the energy-weighted mean |Im lambda|;
    frequency = 1/period; energy_fraction of the reconstructed signal's
    energy; amplitude: RMS of the scale's field over points and times.
    """

    period: float
    frequency: float
    energy_fraction: float
    amplitude: float
    n_modes: int
    omega_min: float
    omega_max: float


@dataclass
class MultiResolution:
    """Multiresolution DMD (Kutz, Fu & Brunton 2016, PyDMD ``MrDMD``) and the scales found in it.

    ``nodes``: one row per kept mode: level, leaf, t_start, t_end, Re lambda,
    Im lambda, energy (sum of squares of its real contribution).
    ``scales`` sorted slowest first; ``fields`` (n_scales, n_t, n): each
    scale's reconstructed field; ``background`` (n_t, n): the modes with less
    than one cycle over the whole record (means, steps, trends);
    ``residual_norm``: relative error of the whole reconstruction.
    """

    levels: int
    nodes: np.ndarray
    scales: list[Scale] = field(default_factory=list)
    fields: np.ndarray = None
    background: np.ndarray = None
    residual_norm: float = 0.0
    delays: int = 1


def _node_contributions(m, level: int, n_cols: int):
    """Yield (leaf, column slice, lam * dt_sample, contribution (n_rows, bin) complex) per mode."""
    bins = np.array_split(np.arange(n_cols), 2 ** level)
    for leaf, cols in enumerate(bins):
        d = m.dmd_tree[level, leaf]
        if len(cols) == 0 or d.eigs is None or not len(d.eigs):
            continue
        dyn = np.asarray(d.dynamics)
        modes = np.asarray(d.modes)
        with np.errstate(divide="ignore"):
            lam = np.log(np.asarray(d.eigs, dtype=complex))
        for j in range(len(lam)):
            yield leaf, slice(cols[0], cols[-1] + 1), lam[j], modes[:, j], dyn[j, :len(cols)]


def mrdmd(X: np.ndarray, dt: float, rank=0, levels: int | None = None, max_cycles: int = 1,
          gap: float = 3.0, min_energy: float = 1e-4, delays: int = 1, what: str = "the series") -> MultiResolution:
    """Multiresolution DMD and its separation into time scales.

    Level l fits DMD in 2^l equal time bins to what the coarser levels left,
    keeping modes with at most ``max_cycles`` cycles per bin.  The kept
    oscillatory modes are grouped into scales by their |Im lambda|: sorted,
    they are cut wherever two neighbours differ by more than a factor ``gap``;
    modes with less than ``min_energy`` of the signal's energy are ignored when
    grouping (they still add to the nearest scale's field).
    ``levels`` defaults to the deepest whose bins hold >= 8 snapshots.
    """
    n = X.shape[0]
    Z = delay_embed(X, delays)
    n_cols = Z.shape[1]
    check_rank(rank, Z.shape[0], n_cols, what)
    if n_cols < 16:
        raise AnalysisError(f"{what}: multiresolution DMD needs at least 16 snapshots, has {n_cols}")
    if levels is None:
        levels = int(np.floor(np.log2(n_cols / 8)))
    levels = max(0, min(levels, int(np.log2(n_cols / 4.0))))
    pydmd = _pydmd()

    def builder(level, leaf):
        bin_len = n_cols // 2 ** level
        if isinstance(rank, (int, np.integer)) and rank >= 1:
            return pydmd.DMD(svd_rank=int(min(rank, max(1, bin_len - 1))))
        return pydmd.DMD(svd_rank=rank)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pydmd.MrDMD(builder, max_level=levels, max_cycles=max_cycles).fit(Z)
    t_record = n_cols * dt
    rows, parts = [], []
    total_energy = float(np.sum(X[:, :n_cols] ** 2)) or 1.0
    for level in range(levels + 1):
        for leaf, cols, lam_dt, mode, dyn in _node_contributions(m, level, n_cols):
            contrib = np.real(np.outer(mode[:n], dyn))
            energy = float(np.sum(contrib ** 2))
            lam = lam_dt / dt
            rows.append((level, leaf, cols.start * dt, cols.stop * dt, lam.real, lam.imag, energy))
            parts.append((cols, contrib))
    nodes = np.array(rows, dtype=np.float64).reshape(-1, 7)
    background = np.zeros((n_cols, n))
    omega = np.abs(nodes[:, 5])
    slow_cut = 2 * np.pi / t_record              # less than one cycle over the record: background
    osc = omega >= slow_cut
    strong = osc & (nodes[:, 6] >= min_energy * total_energy)
    # group the strong oscillatory modes by gaps in log |omega|
    order = np.argsort(omega[strong])
    w_sorted = omega[strong][order]
    cuts = np.flatnonzero(w_sorted[1:] > gap * w_sorted[:-1]) + 1
    groups = np.split(w_sorted, cuts) if len(w_sorted) else []
    edges = [(g[0], g[-1]) for g in groups]
    fields = np.zeros((len(edges), n_cols, n))
    members = [[] for _ in edges]
    for i, (cols, contrib) in enumerate(parts):
        if not osc[i]:
            background[cols] += contrib.T
            continue
        if not edges:
            background[cols] += contrib.T
            continue
        # nearest scale in log omega (weak modes included)
        dist = [0.0 if lo <= omega[i] <= hi else min(abs(np.log(omega[i] / lo)), abs(np.log(omega[i] / hi)))
                for lo, hi in edges]
        s = int(np.argmin(dist))
        fields[s][cols] += contrib.T
        members[s].append(i)
    recon = background + fields.sum(axis=0)
    scales = []
    for s, (lo, hi) in enumerate(edges):
        idx = np.array(members[s])
        e = nodes[idx, 6]
        w_mean = float(np.sum(omega[idx] * e) / np.sum(e)) if np.sum(e) > 0 else float(np.mean(omega[idx]))
        scales.append(Scale(2 * np.pi / w_mean, w_mean / (2 * np.pi), float(np.sum(fields[s] ** 2)) / total_energy,
                            float(np.sqrt(np.mean(fields[s] ** 2))), len(idx), float(lo), float(hi)))
    residual = float(np.linalg.norm(recon.T - X[:, :n_cols]) / (np.linalg.norm(X[:, :n_cols]) or 1.0))
    return MultiResolution(levels, nodes, scales, fields, background, residual, delays)
