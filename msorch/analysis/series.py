"""Reading one field of a run's results as a snapshot matrix.

A *series* is one output field of one solver over the output times, as
``msorch run`` writes it (see :mod:`msorch.output`): ``time (n_t,)``,
``points (n_points, dim)`` and ``<field> (n_t, n_points[, c])``.  The methods
of :mod:`msorch.analysis.methods` work on its snapshot matrix, one column per
output time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["AnalysisError", "Series", "available_fields", "load_series", "uniform_step", "delay_embed"]

#: Datasets of a solver's results file that are not fields.
from ..xdmf import point_sets

_NOT_FIELDS = ("time", "points")


class AnalysisError(Exception):
    """Bad input to an analysis: the message says what was expected and how to fix it."""


@dataclass(frozen=True)
class Series:
    """One field over time.

    Attributes
    ----------
    solver, field : str
        Where it comes from.
    time : ndarray, shape (n_t,)
        Output times, in the run's time unit (s; tau for reduced LJ units).
    points : ndarray, shape (n_points, dim)
        The solver's result points.
    values : ndarray, shape (n_t, n_points) or (n_t, n_points, c)
    """

    solver: str
    field: str
    time: np.ndarray
    points: np.ndarray
    values: np.ndarray

    @property
    def snapshots(self) -> np.ndarray:
        """(n_points * c, n_t) float64: column j is the field at ``time[j]``, flattened point-major."""
        return np.ascontiguousarray(self.values.reshape(len(self.time), -1).T, dtype=np.float64)

    @property
    def line(self) -> np.ndarray | None:
        """(n_points,) coordinate along the one varying axis of the points, or None.

        Wavenumbers and phase speeds are defined for scalar fields on such
        1-D point sets (bins along a road, a profile axis).
        """
        if self.values.ndim != 2 or len(self.points) < 3:
            return None
        varying = [d for d in range(self.points.shape[1]) if np.ptp(self.points[:, d]) > 0]
        return self.points[:, varying[0]].astype(np.float64) if len(varying) == 1 else None


def _open_results(outdir: Path):
    import h5py
    path = Path(outdir) / "results.h5"
    if not Path(outdir).is_dir():
        raise AnalysisError(f"no such output directory: {outdir}. Fix: give the -o directory of a finished "
                            "'msorch run'")
    if not path.exists():
        raise AnalysisError(f"no results.h5 in {outdir}: not the output directory of a run, or the run has "
                            "not written its results yet. Fix: run the job first ('msorch run SPEC -o OUTDIR')")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise AnalysisError(f"cannot read {path}: {exc}") from exc


def available_fields(outdir) -> dict[str, list[str]]:
    """{solver: [field, ...]} of the fields written to ``OUTDIR/results.h5`` (solvers in spec order)."""
    import h5py
    with _open_results(outdir) as f:
        out = {}
        for name in f:
            # solvers are external links to <solver>.h5; other groups are the coordinator's
            # (coupling, timing, pattern statistics)
            if not isinstance(f.get(name, getlink=True), h5py.ExternalLink):
                continue
            try:
                group = f[name]
            except KeyError:  # an external link whose file is missing (the solver wrote no output)
                out[name] = []
                continue
            out[name] = []
            for path in point_sets(group):   # "/" and the further point sets ("box/...")
                g = group if path == "/" else group[path.lstrip("/")]
                prefix = path.strip("/") + "/" if path != "/" else ""
                out[name] += [prefix + k for k in g if k not in _NOT_FIELDS
                              and isinstance(g[k], h5py.Dataset) and g[k].ndim >= 2]
        return out


def resolve_field(names: list[str], field: str) -> str:
    """``field`` as listed in ``names``: a bare name also finds the one field of that name in a
    further point set ("temperature" -> "box/temperature"); unchanged when nothing matches."""
    if field in names:
        return field
    matches = [k for k in names if k.rpartition("/")[2] == field]
    return matches[0] if len(matches) == 1 else field


def load_series(outdir, solver: str, field: str, t_from: float | None = None,
                t_to: float | None = None) -> Series:
    """Read ``solver``'s ``field`` for output times in [t_from, t_to] (None: no bound)."""
    fields = available_fields(outdir)
    if solver not in fields:
        raise AnalysisError(f"no solver {solver!r} in the results of {outdir}. Fix: use one of "
                            f"{', '.join(sorted(fields)) or '(none)'}")
    field = resolve_field(fields[solver], field)
    if field not in fields[solver]:
        known = ", ".join(fields[solver]) or "(none: the solver wrote no fields; see its output: block)"
        raise AnalysisError(f"solver {solver!r} has no field {field!r} in the results of {outdir}. "
                            f"Fix: use one of {known}")
    with _open_results(outdir) as f:
        group = f[solver]
        if "/" in field:
            where, _, field = field.rpartition("/")
            group = group[where]
        time = group["time"][:]
        points = group["points"][:]
        keep = np.ones(len(time), dtype=bool)
        if t_from is not None:
            keep &= time >= t_from - 1e-9 * max(1.0, abs(t_from))
        if t_to is not None:
            keep &= time <= t_to + 1e-9 * max(1.0, abs(t_to))
        index = np.flatnonzero(keep)
        values = group[field][index[0]:index[-1] + 1] if len(index) else np.zeros((0,) + group[field].shape[1:])
    if not np.all(np.isfinite(values)):
        raise AnalysisError(f"{solver}.{field} holds NaN or Inf values: cannot analyse it")
    if values.ndim == 2 and values.shape[1] > 1 and np.all(values == values[:, :1]):
        # a whole-domain scalar written at every point (md.lj's temperature in results files of
        # format 1, before point sets): one value per snapshot
        values, points = values[:, :1], points[:1]
    return Series(solver, field, time[keep], points, values)


def uniform_step(time: np.ndarray, what: str = "the series") -> float:
    """The constant output interval of ``time``; an error when the times are not evenly spaced.

    DMD's continuous eigenvalues ln(mu)/dt need one dt.
    """
    steps = np.diff(time)
    if len(steps) == 0 or steps.min() <= 0:
        raise AnalysisError(f"{what} needs increasing output times, got {len(time)}")
    dt = float(np.median(steps))
    if np.max(np.abs(steps - dt)) > 1e-6 * dt:
        raise AnalysisError(f"{what} has unevenly spaced output times (steps {steps.min():g} .. {steps.max():g}): "
                            "DMD needs a constant interval. Fix: keep output.every constant, or pick a time range "
                            "with --from/--to")
    return dt


def delay_embed(X: np.ndarray, delays: int) -> np.ndarray:
    """Hankel (time-delay) matrix of shape (n * delays, n_t - delays + 1).

    Row block i holds the snapshots shifted by i steps, so that a series with
    few points (a scalar temperature) still spans several modes; DMD's
    eigenvalues are those of the embedded linear dynamics, and the first
    block of a mode is its spatial shape.
    """
    n, m = X.shape
    if delays <= 1:
        return X
    cols = m - delays + 1
    return np.vstack([X[:, i:i + cols] for i in range(delays)])
