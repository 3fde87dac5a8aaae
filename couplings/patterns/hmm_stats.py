"""Per-window statistics of an HMM farm: column names and the end-of-run summary.

The farm's rank 0 sends one float64 row per window to the coordinator (tag
``TAG_PATTERN0 + pattern index``); the coordinator keeps the rows in its
checkpoints and writes them to ``results.h5`` under ``/hmm/<micro>/``:

=====================  ==========================  =====================================
dataset                shape                       meaning
=====================  ==========================  =====================================
window                 (n_windows,) int64          window index (0-based)
asked                  (n_windows,) int64          macro points queried
distinct               (n_windows,) int64          distinct queries (de-duplicated with a cache)
micro                  (n_windows,) int64          answered by micro runs
cache                  (n_windows,) int64          answered by the cache
surrogate              (n_windows,) int64          answered by the surrogate (std < max_std)
fallback               (n_windows,) int64          failed twice, answered by surrogate/nearest
retries                (n_windows,) int64          micro runs repeated after a failure
max_std                (n_windows,) float64        largest surrogate std seen (NaN: none)
farm_seconds           (n_windows,) float64        wall time of the window on farm rank 0
micro_seconds          (n_windows, n_farm_ranks)   wall time in micro runs per farm rank (NaN for
                                                   windows run before a restart on more ranks)
=====================  ==========================  =====================================
"""
from __future__ import annotations

import numpy as np

SCALARS = ("window", "asked", "distinct", "micro", "cache", "surrogate", "fallback", "retries", "max_std",
           "farm_seconds")
COUNTS = ("asked", "distinct", "micro", "cache", "surrogate", "fallback", "retries")


def columns(p, job) -> tuple[str, ...]:
    ranks = job.solvers[p.micro].ranks
    return SCALARS + tuple(f"micro_seconds.{r}" for r in range(ranks))


def datasets(rows: np.ndarray, p, job) -> dict[str, np.ndarray]:
    """Arrays for ``/hmm/<micro>/`` from the rows (n_windows, n_columns)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(columns(p, job)))
    out = {}
    for j, name in enumerate(SCALARS):
        out[name] = rows[:, j].astype(np.int64) if name in COUNTS or name == "window" else rows[:, j]
    out["micro_seconds"] = rows[:, len(SCALARS):]
    return out


def group(p) -> str:
    return f"hmm/{p.micro}"


def summary(rows: np.ndarray, p, job) -> list[str]:
    """End-of-run lines: totals, load balance, surrogate uncertainty."""
    d = datasets(rows, p, job)
    if not len(d["window"]):
        return [f"hmm {p.micro}: no windows"]
    total = {k: int(d[k].sum()) for k in COUNTS}
    per_rank = np.nansum(d["micro_seconds"], axis=0)   # NaN: windows before a restart on more ranks
    balance = per_rank.mean() / per_rank.max() if per_rank.max() > 0 else 1.0
    lines = [f"hmm {p.micro}: {total['asked']} queries in {len(d['window'])} windows: micro {total['micro']}, "
             f"cache {total['cache']}, surrogate {total['surrogate']}, fallback {total['fallback']}, "
             f"retries {total['retries']}",
             f"hmm {p.micro}: micro seconds per farm rank " + " ".join(f"{s:.3f}" for s in per_rank)
             + f" (balance mean/max {balance:.3f})"]
    stds = d["max_std"][np.isfinite(d["max_std"])]
    if p.surrogate is not None:
        lines.append(f"hmm {p.micro}: surrogate max std " + (f"{stds.max():.3g} (last window {stds[-1]:.3g})"
                                                             if len(stds) else "not yet fitted")
                     + f", threshold {p.surrogate.max_std:g}")
    return lines
