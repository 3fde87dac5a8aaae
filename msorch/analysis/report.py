"""``msorch analyze OUTDIR``: run the methods on a run's fields, write analysis.h5, PNGs and a summary.

Layout of ``OUTDIR/analysis.h5`` (written as ``.analysis.h5.tmp`` and renamed
when complete, so a reader never sees half a file)::

    /                            attrs: source (OUTDIR), conventions (text), methods
    /<solver>/<field>            attrs: t_from, t_to, dt, n_snapshots, n_values, delays
        pod/singular_values (r,)   pod/energy (r,) fraction of the fluctuation energy (about the time mean)
        pod/modes (n, k)           pod/coefficients (k, n_t)   pod/mean (n,) the time mean
        dmd/lambda (r,) complex    continuous eigenvalue, 1/time unit, = ln(mu)/dt
        dmd/mu (r,) complex        discrete eigenvalue over one output interval
        dmd/growth_rate (r,)       Re lambda             dmd/frequency (r,)  Im lambda / 2 pi (cycles/time)
        dmd/period (r,)            1/|frequency| (inf for real lambda)
        dmd/amplitude (r,)         RMS over points of |b phi| at t_from
        dmd/modes (n, r) complex   unit columns          dmd/b (r,) complex
        dmd/wavenumber (r,), dmd/phase_speed (r,)        1-D point sets only (else NaN)
        bopdmd/...                 as dmd/, plus lambda_std (r,) with bagging
        mrdmd/nodes (m, 7)         level, leaf, t_start, t_end, Re lambda, Im lambda, energy
        mrdmd/scales/period, frequency, energy_fraction, amplitude, n_modes (n_scales,)
        mrdmd/fields (n_scales, n_t, n)   each scale's field     mrdmd/background (n_t, n)
        mrdmd attrs: levels, residual_norm

Modes are sorted by amplitude, largest first; ``n`` is the field's values
per snapshot (points x components), ``n_t`` the snapshots used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import methods as M
from .series import AnalysisError, Series, available_fields, load_series, resolve_field, uniform_step

__all__ = ["Options", "analyze", "CONVENTIONS", "METHODS"]

METHODS = ("pod", "dmd", "bopdmd", "mrdmd")

CONVENTIONS = ("lambda = ln(mu)/dt is the continuous-time eigenvalue in 1/(run time unit); growth_rate = Re lambda; "
               "frequency = Im lambda / (2 pi) in cycles per time unit; period = 1/|frequency|; omega = Im lambda; "
               "a mode evolves as b phi exp(lambda (t - t_from)); phase_speed = -Im lambda / k with k the "
               "wavenumber (rad per length unit) of the mode's phase along a 1-D point set")


@dataclass(frozen=True)
class Options:
    """What to analyse and how (the command-line options)."""

    solvers: tuple[str, ...] = ()          # empty: all
    fields: tuple[str, ...] = ()           # empty: all of each solver
    methods: tuple[str, ...] = ("pod", "dmd", "mrdmd")
    rank: float | int = 0
    t_from: float | None = None
    t_to: float | None = None
    delays: int | None = None              # None: automatic (delay-embed series with few values)
    levels: int | None = None
    trials: int = 0
    plots: bool = True


def _selected(outdir, opts: Options) -> list[tuple[str, str]]:
    fields = available_fields(outdir)
    solvers = opts.solvers or tuple(fields)
    for s in solvers:
        if s not in fields:
            raise AnalysisError(f"no solver {s!r} in the results of {outdir}. Fix: use one of "
                                f"{', '.join(fields) or '(none)'}")
    if opts.fields and not opts.solvers:
        # --field alone: the solvers that have it
        solvers = tuple(s for s in solvers if any(resolve_field(fields[s], f) in fields[s] for f in opts.fields)) \
            or solvers[:1]
    pairs = []
    for s in solvers:
        wanted = [resolve_field(fields[s], f) for f in opts.fields]
        for f in wanted:
            if f not in fields[s]:
                raise AnalysisError(f"solver {s!r} has no field {f!r} in the results of {outdir}. Fix: use one "
                                    f"of {', '.join(fields[s]) or '(none)'}")
        pairs += [(s, f) for f in (wanted or fields[s])]
    if not pairs:
        raise AnalysisError(f"no fields to analyse in {outdir}: the solvers wrote none (see their output: blocks)")
    return pairs


def _analyse(series: Series, opts: Options) -> dict:
    what = f"{series.solver}.{series.field}"
    X = series.snapshots
    t = series.time
    check_len = len(t)
    if check_len < 3:
        raise AnalysisError(f"{what} has {check_len} snapshot(s) in the chosen time range: at least 3 are "
                            "needed. Fix: write outputs more often (output.every), run longer or widen --from/--to")
    dt = uniform_step(t, what)
    delays = opts.delays or M.auto_delays(X.shape[0], X.shape[1])
    out = {"series": series, "dt": dt, "delays": delays}
    x = series.line
    if "pod" in opts.methods:
        out["pod"] = M.pod(X)
    if "dmd" in opts.methods:
        out["dmd"] = M.dmd(X, dt, opts.rank, x=x, delays=delays, what=what)
    if "bopdmd" in opts.methods:
        out["bopdmd"] = M.bopdmd(X, t, opts.rank, x=x, delays=delays, trials=opts.trials, what=what)
    if "mrdmd" in opts.methods:
        out["mrdmd"] = M.mrdmd(X, dt, opts.rank, levels=opts.levels, delays=delays, what=what)
    return out


def _write_modes(g, r: M.DMDModes) -> None:
    g.attrs["rank"] = r.rank
    g.attrs["delays"] = r.delays
    for name, value in (("lambda", r.lam), ("mu", r.mu), ("growth_rate", r.growth_rate),
                        ("frequency", r.frequency), ("omega", r.omega), ("period", r.period),
                        ("amplitude", r.amplitude), ("modes", r.modes), ("b", r.b),
                        ("wavenumber", r.wavenumber), ("phase_speed", r.phase_speed)):
        g[name] = value
    if r.method == "bopdmd":
        g["lambda_std"] = r.std


def _write(path: Path, outdir: Path, results: list[dict], opts: Options) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["source"] = str(outdir)
        f.attrs["conventions"] = CONVENTIONS
        f.attrs["methods"] = ",".join(opts.methods)
        for res in results:
            s: Series = res["series"]
            g = f.require_group(s.solver).create_group(s.field)
            g.attrs.update(t_from=float(s.time[0]), t_to=float(s.time[-1]), dt=res["dt"],
                           n_snapshots=len(s.time), n_values=s.snapshots.shape[0], delays=res["delays"])
            if "pod" in res:
                p = res["pod"]
                h = g.create_group("pod")
                h["singular_values"], h["energy"] = p.singular_values, p.energy
                h["modes"], h["coefficients"], h["mean"] = p.modes, p.coefficients, p.mean
            for name in ("dmd", "bopdmd"):
                if name in res:
                    _write_modes(g.create_group(name), res[name])
            if "mrdmd" in res:
                m = res["mrdmd"]
                h = g.create_group("mrdmd")
                h.attrs.update(levels=m.levels, residual_norm=m.residual_norm, delays=m.delays)
                h["nodes"] = m.nodes
                sc = h.create_group("scales")
                for key in ("period", "frequency", "energy_fraction", "amplitude", "n_modes"):
                    sc[key] = np.array([getattr(x, key) for x in m.scales], dtype=np.float64)
                h["fields"] = m.fields
                h["background"] = m.background


def _fmt_time(v: float) -> str:
    return "inf" if not np.isfinite(v) else f"{v:.4g}"


def summary_lines(res: dict, top: int = 8) -> list[str]:
    """Terminal summary of one series' results."""
    s: Series = res["series"]
    lines = [f"{s.solver}.{s.field}: {len(s.time)} snapshots, t = {s.time[0]:g} .. {s.time[-1]:g} "
             f"every {res['dt']:g}, {s.snapshots.shape[0]} values"
             + (f" (delay-embedded x{res['delays']})" if res["delays"] > 1 else "")]
    if "pod" in res:
        e = res["pod"].energy
        lines.append("  POD energy (fluctuations about the time mean): " + ", ".join(f"{100 * v:.4g}%" for v in e[:5])
                     + f"  (first mode {100 * e[0]:.5g}%, {int(np.searchsorted(np.cumsum(e), 0.999) + 1)} "
                       "modes hold 99.9%)")
    for name in ("dmd", "bopdmd"):
        if name not in res:
            continue
        r: M.DMDModes = res[name]
        lines.append(f"  {name.upper()} (rank {r.rank}), largest modes; lambda = ln(mu)/dt, frequency = Im lambda/2pi:")
        lines.append("      growth 1/t   frequency 1/t      period   amplitude  time scale"
                     + ("   phase speed" if np.any(np.isfinite(r.phase_speed)) else ""))
        shown = 0
        # Fewer than 0.1 cycles visible (over the record, or over the mode's decay time if shorter):
        # not an oscillation but a relaxation or trend (noisy fits leave a small Im lambda on those).
        span = s.time[-1] - s.time[0]
        with np.errstate(divide="ignore"):
            visible = np.minimum(span, 1 / np.abs(r.growth_rate))
        real = np.abs(r.omega) * visible < 2 * np.pi * 0.1
        for j in range(len(r.lam)):
            if r.omega[j] != 0 and np.any(np.isclose(r.lam[:j], np.conj(r.lam[j]), rtol=1e-6, atol=1e-12)):
                continue            # the conjugate partner of a row already shown
            pair = not real[j]
            partner = r.omega[j] != 0 and np.any(np.isclose(r.lam, np.conj(r.lam[j]), rtol=1e-6, atol=1e-12))
            amp = r.amplitude[j] * (2 if partner else 1)
            if partner and real[j]:
                # a near-real pair is one relaxation: its size is that of its real part at t_from
                amp = float(np.sqrt(np.mean((2 * np.real(r.b[j] * r.modes[:, j])) ** 2)))
            g, f = r.growth_rate[j], 0.0 if real[j] else abs(r.frequency[j])
            if abs(r.lam[j]) * r.dt < 1e-9:
                kind = "steady"
            elif pair:
                kind = f"oscillation, {'grows' if g > 0 else 'decays'} in {_fmt_time(1 / abs(g)) if g else 'inf'}"
            else:
                kind = f"relaxation {_fmt_time(1 / abs(g))}" if g < 0 else f"growth {_fmt_time(1 / g)}"
            c = f"   {r.phase_speed[j]:11.4g}" if np.isfinite(r.phase_speed[j]) and pair else ""
            lines.append(f"    {g:11.4g} {f:13.4g} {_fmt_time(1 / f if f else np.inf):>11} {amp:11.4g}  "
                         f"{kind}{c}")
            shown += 1
            if shown >= top:
                break
    if "mrdmd" in res:
        m: M.MultiResolution = res["mrdmd"]
        lines.append(f"  mrDMD ({m.levels + 1} levels, reconstruction error {m.residual_norm:.2e}): "
                     f"{len(m.scales)} oscillatory scale(s) besides the background")
        for k, sc in enumerate(m.scales):
            lines.append(f"    scale {k}: period {sc.period:.5g} (frequency {sc.frequency:.5g}), "
                         f"amplitude (RMS) {sc.amplitude:.4g}, {100 * sc.energy_fraction:.3g}% of the energy, "
                         f"{sc.n_modes} modes")
    return lines


def _plots(outdir: Path, results: list[dict]) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    target = outdir / "plots"
    target.mkdir(exist_ok=True)
    written = []
    for res in results:
        s: Series = res["series"]
        panels = [k for k in ("pod", "dmd", "bopdmd", "mrdmd") if k in res]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
        for ax, name in zip(axes[0], panels):
            if name == "pod":
                e = res["pod"].energy[:30]
                ax.semilogy(np.arange(1, len(e) + 1), np.maximum(e, 1e-300), marker="o")
                ax.set_xlabel("POD mode")
                ax.set_ylabel("energy fraction")
            elif name in ("dmd", "bopdmd"):
                r = res[name]
                sc = ax.scatter(r.growth_rate, r.frequency, c=np.log10(np.maximum(r.amplitude, 1e-300)), s=18)
                fig.colorbar(sc, ax=ax, label="log10 amplitude")
                ax.axvline(0, color="0.6", lw=0.8)
                ax.set_xlabel("growth rate Re lambda [1/t]")
                ax.set_ylabel("frequency Im lambda/2pi [1/t]")
            else:
                m = res["mrdmd"]
                nodes = m.nodes
                keep = nodes[:, 6] > 0
                ax.scatter(0.5 * (nodes[keep, 2] + nodes[keep, 3]) + s.time[0], np.abs(nodes[keep, 5]) / (2 * np.pi),
                           s=6 + 30 * np.sqrt(nodes[keep, 6] / nodes[keep, 6].max()), alpha=0.6)
                for sc_ in m.scales:
                    ax.axhline(sc_.frequency, color="C3", lw=0.8)
                ax.set_yscale("symlog", linthresh=1.0 / max(s.time[-1] - s.time[0], 1e-300))
                ax.set_xlabel("t (bin centre)")
                ax.set_ylabel("|frequency| [1/t]")
            ax.set_title(f"{name}: {s.solver}.{s.field}", fontsize=9)
        fig.tight_layout()
        path = target / f"analysis_{s.solver}_{s.field}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(path)
    return written


def analyze(outdir, opts: Options = Options(), echo=print) -> Path:
    """Analyse, then write ``OUTDIR/analysis.h5`` (atomically) and the PNGs; returns the file's path.

    Every series is analysed before anything is written, so a bad field or
    rank leaves no file behind.
    """
    outdir = Path(outdir)
    for name in opts.methods:
        if name not in METHODS:
            raise AnalysisError(f"unknown method {name!r}. Fix: use one of {', '.join(METHODS)}")
    results = []
    for solver, field in _selected(outdir, opts):
        series = load_series(outdir, solver, field, opts.t_from, opts.t_to)
        X = series.snapshots
        try:
            if X.size and np.all(X == X[:, :1]):
                raise AnalysisError(f"{solver}.{field} is constant in time: nothing to decompose")
            results.append(_analyse(series, opts))
        except AnalysisError as exc:
            if opts.fields:          # asked for by name: an error
                raise
            echo(f"{solver}.{field}: skipped: {exc}")
    if not results:
        raise AnalysisError(f"no field of {outdir} could be analysed (see the lines above)")
    path = outdir / "analysis.h5"
    tmp = outdir / f".analysis.h5.tmp{os.getpid()}"
    try:
        _write(tmp, outdir, results, opts)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    for res in results:
        for line in summary_lines(res):
            echo(line)
    if opts.plots:
        for p in _plots(outdir, results):
            echo(f"plot: {p}")
    echo(f"analysis: {path}")
    return path
