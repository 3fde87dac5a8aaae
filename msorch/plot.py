"""``msorch plot OUTDIR``: PNG pictures of a run for people.

Reads ``OUTDIR/results.h5`` (and the solvers' files it links) and writes ``OUTDIR/plots/``:

- ``coupling.png``: convergence — iterations and final residuals per window (implicit schemes);
- ``timing.png``: wall seconds per window of every solver group;
- ``timeline.png``: one row per solver rank, its wall time split per window into
  compute / wait / exchange / output / checkpoint (``/timing/<solver>.phases``);
- ``<solver>.png``: each output field — a space–time diagram (x–t colour map)
  for fields on points along one axis (roads, LWR cells, MD profiles), a time
  series for whole-domain scalars (all points equal, or one point), a map at
  the last output time for 2-D/3-D points;
- ``map_<field>.png``: 2-D fields of every solver that has them (e.g. both
  subdomains of a partitioned FEM run) in one picture, at chosen times
  (``--times``; default first, middle and last output), on the solvers'
  triangles (``<solver>.mesh.h5``) or a Delaunay triangulation of the points.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .timing import PHASES
from .xdmf import point_sets

PHASE_COLOURS = {"compute": "#4c72b0", "wait": "#dd8452", "exchange": "#55a868", "output": "#c44e52",
                 "checkpoint": "#8172b3"}


def _axes_grid(plt, n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _varying(points: np.ndarray) -> list[int]:
    return [d for d in range(points.shape[1]) if len(points) and np.ptp(points[:, d]) > 0]


def _magnitude(data: np.ndarray) -> np.ndarray:
    """(n_out, n_points) values: vectors and tensors by their norm."""
    return data if data.ndim == 2 else np.linalg.norm(data.reshape(*data.shape[:2], -1), axis=2)


def _field(ax, name, times, points, data):
    """One field (n_out, n_points[, c]) on one axis."""
    values = _magnitude(data)
    label = name if data.ndim == 2 else f"|{name}|"
    varying = _varying(points)
    if values.shape[1] == 1 or np.allclose(values, values[:, :1]):
        ax.plot(times, values[:, 0], marker=".")
        ax.set_xlabel("t")
    elif len(varying) <= 1:
        x = points[:, varying[0]] if varying else np.arange(len(points), dtype=float)
        order = np.argsort(x, kind="stable")
        if len(times) > 1:   # space-time diagram
            mesh = ax.pcolormesh(x[order], times, values[:, order], shading="nearest", cmap="viridis")
            ax.figure.colorbar(mesh, ax=ax, label=label)
            ax.set_ylabel("t")
        else:
            ax.plot(x[order], values[0, order], marker=".")
        ax.set_xlabel("xyz"[varying[0]] if varying else "point")
    else:
        a, b = varying[:2]
        sc = ax.scatter(points[:, a], points[:, b], c=values[-1], s=12, cmap="viridis")
        ax.figure.colorbar(sc, ax=ax)
        ax.set_xlabel("xyz"[a])
        ax.set_ylabel("xyz"[b])
        label += f" at t = {times[-1]:g}"
    ax.set_title(label, fontsize=9)


def _triangulation(outdir: Path, solver: str, points: np.ndarray):
    import matplotlib.tri as mtri
    mesh = outdir / f"{solver}.mesh.h5"
    if mesh.exists():
        import h5py
        with h5py.File(mesh, "r") as m:
            if "cells" in m and m["cells"].attrs.get("type") == "Triangle":
                return mtri.Triangulation(points[:, 0], points[:, 1], m["cells"][:])
    return mtri.Triangulation(points[:, 0], points[:, 1])


def _maps(plt, f, outdir: Path, solvers: list[str], target: Path, times_wanted) -> list[Path]:
    """map_<field>.png: 2-D fields of all solvers having them, side by side in time, one colour scale."""
    by_field: dict[str, list[str]] = {}
    for s in solvers:
        g = f[s]
        if "points" not in g or not len(g["time"]) or len(_varying(g["points"][:])) != 2:
            continue
        for name in g:
            if name not in ("time", "points") and g[name].ndim >= 2 and g[name].shape[1] == len(g["points"]):
                by_field.setdefault(name, []).append(s)
    written = []
    for name, owners in by_field.items():
        all_times = f[owners[0]]["time"][:]
        wanted = list(times_wanted) if times_wanted else \
            sorted({all_times[0], all_times[len(all_times) // 2], all_times[-1]})
        fig, axes = plt.subplots(1, len(wanted), figsize=(4.6 * len(wanted), 3.6), squeeze=False)
        parts = []
        for s in owners:
            g = f[s]
            t, pts = g["time"][:], g["points"][:]
            values = _magnitude(g[name][:len(t)])
            parts.append((s, pts, _triangulation(outdir, s, pts), t, values))
        lo = min(float(v.min()) for *_, v in parts)
        hi = max(float(v.max()) for *_, v in parts)
        for ax, tw in zip(axes[0], wanted):
            for s, pts, tri, t, values in parts:
                k = int(np.argmin(np.abs(t - tw)))
                im = ax.tripcolor(tri, values[k], shading="gouraud", cmap="inferno", vmin=lo, vmax=hi)
                ax.triplot(tri, color="white", lw=0.15, alpha=0.4)
                ax.plot(*_outline(pts), color="cyan", lw=0.8)
            ax.set_aspect("equal")
            ax.set_title(f"{name}, t = {t[k]:g}", fontsize=9)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        fig.colorbar(im, ax=list(axes[0]), label=name, shrink=0.9)
        fig.suptitle(f"{name}: " + " + ".join(owners))
        written.append(_save(fig, target / f"map_{name}.png", tight=False))
    return written


def _outline(pts: np.ndarray):
    """The bounding box of a solver's points (its subdomain's outline on a map)."""
    x0, y0 = pts[:, :2].min(axis=0)
    x1, y1 = pts[:, :2].max(axis=0)
    return [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]


def _timeline(plt, f, target: Path) -> Path | None:
    """timeline.png: per solver rank, each window's wall time split into phases, end to end."""
    tables = {k[:-len(".phases")]: f["timing"][k] for k in f["timing"] if k.endswith(".phases")}
    if not tables:
        return None
    rows = [(s, r) for s, table in tables.items() for r in range(table.shape[1])]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.6))
    for y, (s, r) in enumerate(rows):
        table = np.nan_to_num(tables[s][:, r, :])        # (n_windows, n_phases); NaN: not measured
        names = json.loads(tables[s].attrs.get("phases", json.dumps(PHASES)))
        flat = table.reshape(-1)
        starts = np.concatenate([[0.0], np.cumsum(flat)[:-1]]).reshape(table.shape)
        for j, phase in enumerate(names):
            keep = table[:, j] > 0
            ax.broken_barh(list(zip(starts[keep, j], table[keep, j])), (y - 0.4, 0.8),
                           facecolors=PHASE_COLOURS.get(phase, "grey"), label=phase if y == 0 else None)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{s} rank {r}" for s, r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("wall time since the first window [s]")
    handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS[p]) for p in PHASES]
    ax.legend(handles, PHASES, ncol=len(PHASES), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("where each rank spends its time, window after window")
    return _save(fig, target / "timeline.png")


def plot(outdir: Path, times: list[float] | None = None) -> list[Path]:
    """Write the pictures; returns their paths.  ``times``: output times of the 2-D maps."""
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    target = outdir / "plots"
    target.mkdir(exist_ok=True)
    written = []
    with h5py.File(outdir / "results.h5", "r") as f:
        solvers = [k for k in f if k not in ("coupling", "timing") and isinstance(f.get(k), h5py.Group)
                   and point_sets(f[k])]
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
            if f["timing"][name].ndim == 1:
                ax.semilogy(np.arange(1, len(f["timing"][name]) + 1), f["timing"][name][:] * 1e3, label=name)
        ax.set_xlabel("window")
        ax.set_ylabel("wall time per window [ms]")
        ax.legend(fontsize=7)
        written.append(_save(fig, target / "timing.png"))
        timeline = _timeline(plt, f, target)
        if timeline:
            written.append(timeline)
        for solver in solvers:
            for path in point_sets(f[solver]):   # the file's root, or groups of several point sets
                g = f[solver] if path == "/" else f[solver][path.lstrip("/")]
                label = solver + path.rstrip("/").replace("/", ".")
                if not len(g["time"]):
                    continue
                times_s, points = g["time"][:], g["points"][:]
                fields = [k for k in g if k not in ("time", "points") and getattr(g[k], "ndim", 0) >= 2
                          and g[k].shape[1] == len(points)]
                if not fields:
                    continue
                fig, axes = _axes_grid(plt, len(fields))
                for ax, name in zip(axes, fields):
                    _field(ax, name, times_s, points, g[name][:len(times_s)])
                fig.suptitle(label)
                written.append(_save(fig, target / f"{label}.png"))
        written += _maps(plt, f, outdir, solvers, target, times)
    return written


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
