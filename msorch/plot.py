"""``msorch plot OUTDIR``: PNG pictures of a run for people.

Reads ``OUTDIR/results.h5`` and writes ``OUTDIR/plots/``:

- ``coupling.png``: iterations and final residuals per window (implicit schemes);
- ``timing.png``: wall seconds per window of every solver group;
- ``<solver>.png``: each output field at the first and last output time —
  a line over the coordinate for 1-D points, a colour map over (x, y) for 2-D
  and 3-D points (first two coordinates), a time series where all points hold
  the same value (whole-domain scalars).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _axes_grid(plt, n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _field(ax, name, times, points, data):
    """One field (n_out, n_points[, c]) on one axis; vectors are shown by magnitude."""
    values = data if data.ndim == 2 else np.linalg.norm(data, axis=2)
    label = name if data.ndim == 2 else f"|{name}|"
    if values.shape[1] == 1 or np.allclose(values, values[:, :1]):
        ax.plot(times, values[:, 0], marker=".")
        ax.set_xlabel("t")
    elif len(varying := [d for d in range(points.shape[1]) if np.ptp(points[:, d]) > 0]) <= 1:
        x = points[:, varying[0]] if varying else np.arange(len(points))
        order = np.argsort(x)
        for k in sorted({0, len(times) - 1}):
            ax.plot(x[order], values[k, order], marker=".", label=f"t = {times[k]:g}")
        ax.set_xlabel("xyz"[varying[0]] if varying else "point")
        ax.legend(fontsize=7)
    else:
        a, b = varying[:2]
        sc = ax.scatter(points[:, a], points[:, b], c=values[-1], s=12, cmap="viridis")
        ax.figure.colorbar(sc, ax=ax)
        ax.set_xlabel("xyz"[a])
        ax.set_ylabel("xyz"[b])
        label += f" at t = {times[-1]:g}"
    ax.set_title(label, fontsize=9)


def plot(outdir: Path) -> list[Path]:
    """Write the pictures; returns their paths."""
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    target = outdir / "plots"
    target.mkdir(exist_ok=True)
    written = []
    with h5py.File(outdir / "results.h5", "r") as f:
        solvers = [k for k in f if k not in ("coupling", "timing")]
        iterations = f["coupling/iterations"][:]
        if len(iterations) and iterations.max() > 1:
            fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
            a.bar(np.arange(1, len(iterations) + 1), iterations)
            a.set_xlabel("window")
            a.set_ylabel("iterations")
            residuals = f["coupling/residuals"][:]
            names = json.loads(f["coupling"].attrs.get("measures", "[]")) or [f"measure {j}" for j in
                                                                               range(residuals.shape[1])]
            for j, name in enumerate(names):
                b.semilogy(np.arange(1, len(residuals) + 1), residuals[:, j], marker=".", label=name)
            b.set_xlabel("window")
            b.set_ylabel("relative residual")
            b.legend(fontsize=7)
            written.append(_save(fig, target / "coupling.png"))
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for name in f["timing"]:
            ax.semilogy(np.arange(1, len(f["timing"][name]) + 1), f["timing"][name][:] * 1e3, label=name)
        ax.set_xlabel("window")
        ax.set_ylabel("wall time per window [ms]")
        ax.legend(fontsize=7)
        written.append(_save(fig, target / "timing.png"))
        for solver in solvers:
            g = f[solver]
            fields = [k for k in g if k not in ("time", "points")]
            if not fields or not len(g["time"]):
                continue
            fig, axes = _axes_grid(plt, len(fields))
            times, points = g["time"][:], g["points"][:]
            for ax, name in zip(axes, fields):
                _field(ax, name, times, points, g[name][:])
            fig.suptitle(solver)
            written.append(_save(fig, target / f"{solver}.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
