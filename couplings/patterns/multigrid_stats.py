"""Per-cycle residual histories of a multigrid pattern: ``/multigrid/<finest level>/`` in results.h5.

The finest level's rank 0 sends, once per window, one float64 row per cycle
(cycle 0: the initial residual) of every solve of the window; the coordinator
keeps them in checkpoints and writes:

============  =====================  ==============================================
dataset       shape                  meaning
============  =====================  ==============================================
window        (n_rows,) int64        window index (0-based)
step          (n_rows,) int64        step within the window (one solve per step)
cycle         (n_rows,) int64        cycles done (0: before the first)
residual      (n_rows,) float64      ||b - A x||_2 (the level's own units of b)
relative      (n_rows,) float64      residual / ||b||_2 (x starts from zero)
factor        (n_rows,) float64      residual / the previous cycle's (NaN at cycle 0)
seconds       (n_rows,) float64      wall time of the cycle
============  =====================  ==============================================
"""
from __future__ import annotations

import numpy as np

COLUMNS = ("window", "step", "cycle", "residual", "relative", "factor", "seconds")
INTS = ("window", "step", "cycle")


def columns(p, job) -> tuple[str, ...]:
    return COLUMNS


def datasets(rows: np.ndarray, p, job) -> dict[str, np.ndarray]:
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    return {name: rows[:, j].astype(np.int64) if name in INTS else rows[:, j] for j, name in enumerate(COLUMNS)}


def group(p) -> str:
    return f"multigrid/{p.name}"


def solve_factors(d: dict[str, np.ndarray]) -> np.ndarray:
    """Mean convergence factor of every solve: (r_n / r_0)^(1/n) over its n cycles, (n_solves,)."""
    starts = np.flatnonzero(d["cycle"] == 0)
    ends = np.append(starts[1:], len(d["cycle"])) - 1
    n = d["cycle"][ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (d["residual"][ends] / d["residual"][starts]) ** (1.0 / np.maximum(n, 1)), np.nan)


def summary(rows: np.ndarray, p, job) -> list[str]:
    d = datasets(rows, p, job)
    if not len(d["cycle"]):
        return [f"multigrid {p.name}: no solves"]
    starts = np.flatnonzero(d["cycle"] == 0)
    ends = np.append(starts[1:], len(d["cycle"])) - 1
    cycles = d["cycle"][ends]
    factors = solve_factors(d)
    seconds = d["seconds"][d["cycle"] > 0]
    first = d["factor"][starts[0] + 1:ends[0] + 1]
    return [f"multigrid {p.name}: {len(starts)} solves, {int(cycles.sum())} {p.cycle}({p.nu1},{p.nu2}) cycles "
            f"(mean {cycles.mean():.2f}, max {int(cycles.max())} per solve); convergence factor per cycle: mean "
            f"{np.nanmean(factors):.4f}, worst solve {np.nanmax(factors):.4f}; "
            f"{seconds.mean() * 1e3 if len(seconds) else 0.0:.3f} ms per cycle",
            f"multigrid {p.name}: first solve, factor per cycle " + " ".join(f"{f:.4f}" for f in first)]
