"""Domain-decomposition recipes: overlapping Schwarz and Dirichlet–Neumann (spec side).

A recipe is shorthand for couplings and a scheme a user could write by hand
(``msorch validate --explain`` prints them); it works for any two solvers
exposing the fields it names.  The runtime part
(:mod:`couplings.patterns.domain_decomposition_runtime`) only *observes*: on
the first solver of ``between`` it records, every iteration, how much the
interface data it is given changed, so the contraction per iteration can be
read from ``results.h5``.

``kind: schwarz`` — overlapping alternating Schwarz (Schwarz 1870; P.-L. Lions
1988) between ``a`` and ``b`` whose domains overlap by ``overlap``::

    patterns:
      - {kind: schwarz, between: [left, right], overlap: 0.2, variant: multiplicative,
         tolerance: 1.0e-10, max_iterations: 200}

expands to ``b.<trace> -> a.<dirichlet>`` and ``a.<trace> -> b.<dirichlet>``
(each solver's Dirichlet data on its artificial boundary is the other's
solution on that line; ``mapping`` nearest), an implicit scheme with
``serial`` staggering in the order [a, b] (multiplicative: b already sees a's
new solution) or ``parallel`` staggering (additive: both use the previous
iterate, so one iteration is half a multiplicative one), and relative
convergence ``tolerance`` on both exchanged traces.  With ``fem.heat`` the
Dirichlet data go into a ``dirichlet`` side and the trace is
``overlap_temperature`` on the line ``overlap_line``.

``kind: dirichlet-neumann`` — the classical Dirichlet–Neumann iteration
(Bjørstad & Widlund 1986; Quarteroni & Valli 1999, ch. 1) between ``d`` (given
the interface value, returns the flux) and ``n`` (given the flux, returns the
value)::

    patterns:
      - {kind: dirichlet-neumann, between: [left, right], relaxation: 0.5,
         acceleration: constant, tolerance: 1.0e-10, max_iterations: 50}

expands to ``n.<value> -> d.<value>`` (nearest) and ``d.<flux> -> n.<flux>``
(conservative), implicit serial [d, n], convergence on both, and the
acceleration of the value d receives: ``constant`` with factor ``relaxation``
(theta), or ``aitken`` / ``iqn-ils`` / ``iqn-imvj`` starting from it.

Geometry: solver classes that define ``interface_geometry(params) ->
{"extent": (x_lo, x_hi), "dirichlet": x or None, "trace": x or None}``
(fem.heat does) are checked before launch: the overlap must be positive,
smaller than both subdomains and equal to the solvers' actual overlap, and
each trace line must lie on the other's artificial boundary.

Per iteration the first solver's ranks send one row (window, iteration,
‖g_k − g_{k−1}‖₂, ⟨g_k − g_{k−1}, g_{k−1} − g_{k−2}⟩, ‖g_k‖₂) of the interface data
g_k it is given (after acceleration) to the coordinator: ``/<kind>/<a>-<b>/``
in results.h5, datasets named after the columns; the contraction of iteration k
is ``dot_k / change_{k−1}²`` (signed) or ``change_k / change_{k−1}``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msorch.spec import did_you_mean, setting

__all__ = ["SchwarzSpec", "DirichletNeumannSpec", "PATTERN_KINDS", "expand_schwarz",
           "expand_dirichlet_neumann", "contractions"]

_ACCELERATIONS = ("constant", "aitken", "iqn-ils", "iqn-imvj")


@dataclass(frozen=True)
class SchwarzSpec:
    """Overlapping Schwarz between two solvers (see the module docstring)."""

    kind: str = setting(doc="pattern kind", example="schwarz")
    between: tuple[str, str] = setting(doc="the two subdomain solvers; the first runs first "
                                       "(multiplicative)", example=["left", "right"])
    overlap: float = setting(doc="width of the overlap of the two subdomains", units="m", gt=0,
                             example=0.1)
    variant: str = setting("multiplicative", "multiplicative: serial, b sees a's new solution; "
                           "additive: parallel, both see the previous iterate",
                           choices=("multiplicative", "additive"))
    tolerance: float = setting(1e-8, "relative change of both exchanged traces at convergence", gt=0)
    max_iterations: int = setting(100, "Schwarz iterations per window before giving up", ge=1)
    dirichlet: str = setting("temperature", "input field of both solvers taking the Dirichlet data of "
                             "their artificial boundary")
    trace: str = setting("overlap_temperature", "output field of both solvers giving their solution on the "
                         "other's artificial boundary")
    mapping: str = setting("nearest", "spatial mapping of the traces")


@dataclass(frozen=True)
class DirichletNeumannSpec:
    """Dirichlet–Neumann iteration between two solvers (see the module docstring)."""

    kind: str = setting(doc="pattern kind", example="dirichlet-neumann")
    between: tuple[str, str] = setting(doc="[the solver given the interface value, the solver given the "
                                       "flux]; they run in this order", example=["left", "right"])
    relaxation: float = setting(0.5, "relaxation theta of the interface value (constant), or the first "
                                "iteration's (aitken, iqn-ils, iqn-imvj)", gt=0, le=1)
    acceleration: str = setting("constant", "acceleration of the interface value", choices=_ACCELERATIONS)
    tolerance: float = setting(1e-8, "relative change of both exchanged fields at convergence", gt=0)
    max_iterations: int = setting(50, "iterations per window before giving up", ge=1)
    value: str = setting("temperature", "the interface value: output of the second solver, input of the "
                         "first")
    flux: str = setting("heat_flux", "the interface flux: output of the first solver, input of the second "
                        "(extensive, mapped conservatively)")


# --- expansion (raw YAML in, raw YAML out: validated afterwards like hand-written pieces) ----------

def _pair(entry) -> tuple[str, str] | None:
    pair = entry.get("between") if isinstance(entry, dict) else None
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair) \
            and pair[0] != pair[1]:
        return pair[0], pair[1]
    return None


def _get(entry: dict, cls, name: str):
    """The raw setting, or the dataclass default when absent (validation reports bad types)."""
    import dataclasses
    if name in entry:
        return entry[name]
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _order(pair, document) -> list[str]:
    """[a, b] then the job's other solvers (the scheme's order must name them all)."""
    solvers = document.get("solvers") if isinstance(document, dict) else None
    others = [s for s in (solvers or {}) if s not in pair] if isinstance(solvers, dict) else []
    return [*pair, *others]


def expand_schwarz(entry: dict, document: dict) -> dict:
    """The couplings and scheme of a ``schwarz`` entry ({} when ``between`` is unusable)."""
    pair = _pair(entry)
    if pair is None:
        return {}
    a, b = pair
    g = lambda name: _get(entry, SchwarzSpec, name)
    dirichlet, trace, tol = g("dirichlet"), g("trace"), g("tolerance")
    return {
        "couplings": [{"from": f"{b}.{trace}", "to": f"{a}.{dirichlet}", "mapping": g("mapping")},
                      {"from": f"{a}.{trace}", "to": f"{b}.{dirichlet}", "mapping": g("mapping")}],
        "scheme": {"kind": "implicit",
                   "staggering": "parallel" if g("variant") == "additive" else "serial",
                   "order": _order(pair, document), "max_iterations": g("max_iterations"),
                   "convergence": [{"field": f"{a}.{dirichlet}", "relative": tol},
                                   {"field": f"{b}.{dirichlet}", "relative": tol}]},
    }


def expand_dirichlet_neumann(entry: dict, document: dict) -> dict:
    """The couplings and scheme of a ``dirichlet-neumann`` entry ({} when ``between`` is unusable)."""
    pair = _pair(entry)
    if pair is None:
        return {}
    d, n = pair
    g = lambda name: _get(entry, DirichletNeumannSpec, name)
    value, flux, tol, kind = g("value"), g("flux"), g("tolerance"), g("acceleration")
    acc = {"kind": kind, "relaxation" if kind == "constant" else "initial_relaxation": g("relaxation"),
           "fields": [f"{d}.{value}"]}
    return {
        "couplings": [{"from": f"{n}.{value}", "to": f"{d}.{value}", "mapping": "nearest"},
                      {"from": f"{d}.{flux}", "to": f"{n}.{flux}", "mapping": "conservative"}],
        "scheme": {"kind": "implicit", "staggering": "serial", "order": _order(pair, document),
                   "max_iterations": g("max_iterations"),
                   "convergence": [{"field": f"{d}.{value}", "relative": tol},
                                   {"field": f"{n}.{flux}", "relative": tol}],
                   "acceleration": acc},
    }


# --- checks ------------------------------------------------------------------------------------

def _geometry(draft: dict):
    """A solver's interface_geometry, or None when its class does not declare one."""
    cls, params = draft.get("cls"), draft.get("params")
    fn = getattr(cls, "interface_geometry", None)
    if fn is None or params is None:
        return None
    try:
        return fn(params)
    except Exception:   # noqa: BLE001 - a plugin's geometry is optional; without it, no geometry checks
        return None


def _needs(out, ctx, name: str, side: str, field: str, role: str, hint: str) -> None:
    draft = ctx.solvers[name]
    have = draft.get(side)
    if have is None or field in have:
        return
    kind = draft.get("kind")
    fix = hint if draft.get("cls") is not None and hasattr(draft["cls"], "interface_geometry") else \
        f"give {name!r} an {side[:-1]} {field!r}, or name another field ({did_you_mean(field, have, side)})"
    out.append(("between", f"solver {name!r} ({kind}) has no {side[:-1]} {field!r} ({role})", fix))


def _solvers_ok(out, ctx, pair) -> bool:
    ok = True
    for i, name in enumerate(pair):
        if name not in ctx.solvers:
            out.append((f"between[{i}]", f"no solver named {name!r}",
                        did_you_mean(name, ctx.solvers, "solvers")))
            ok = False
    if pair[0] == pair[1]:
        out.append(("between", f"both entries name {pair[0]!r}", "name two different solvers"))
        ok = False
    return ok


def _close(x: float, y: float, scale: float) -> bool:
    return abs(x - y) <= 1e-9 * max(scale, 1.0)


def check_schwarz(p: SchwarzSpec, ctx) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if not _solvers_ok(out, ctx, p.between):
        return out
    a, b = p.between
    geo = {name: _geometry(ctx.solvers[name]) for name in (a, b)}
    for name, other in ((a, b), (b, a)):
        g = geo[name]
        side_hint = "left" if g and geo[other] and g["extent"][0] > geo[other]["extent"][0] else "right"
        _needs(out, ctx, name, "inputs", p.dirichlet, "the Dirichlet data of its artificial boundary",
               f"set solvers.{name}.params.{side_hint}: dirichlet (the side inside {other!r})")
        line = (f"{geo[other]['extent'][1 if side_hint == 'left' else 0]:g}" if g and geo[other]
                else "<x of the other's artificial boundary>")
        _needs(out, ctx, name, "outputs", p.trace, f"its solution on the artificial boundary of {other!r}",
               f"set solvers.{name}.params.overlap_line: {line}")
    if out or geo[a] is None or geo[b] is None:
        return out
    # Geometry along x: which one lies left, their overlap, and the lines the traces are taken on.
    (l, gl), (r, gr) = sorted(geo.items(), key=lambda kv: kv[1]["extent"][0])
    (l0, l1), (r0, r1) = gl["extent"], gr["extent"]
    scale = max(abs(l0), abs(l1), abs(r0), abs(r1))
    for name, (x0, x1) in ((l, gl["extent"]), (r, gr["extent"])):
        if p.overlap >= x1 - x0:
            out.append(("overlap", f"the overlap {p.overlap:g} m is not smaller than subdomain {name!r} "
                        f"(width {x1 - x0:g} m, x in [{x0:g}, {x1:g}])",
                        f"use an overlap below {min(l1 - l0, r1 - r0):g} m"))
    if out:
        return out
    actual = l1 - r0
    if not _close(actual, p.overlap, scale):
        what = "do not overlap" if actual <= 0 else f"overlap by {actual:g} m"
        out.append(("overlap", f"solvers {l!r} (x in [{l0:g}, {l1:g}]) and {r!r} (x in [{r0:g}, {r1:g}]) "
                    f"{what}, not {p.overlap:g} m",
                    f"set solvers.{r}.params.x0: {l1 - p.overlap:.12g}"
                    + (f" or overlap: {actual:.12g}" if actual > 0 else "")))
        return out
    for name, g, boundary, want in ((l, gl, l1, r0), (r, gr, r0, l1)):
        if g["dirichlet"] is not None and not _close(g["dirichlet"], boundary, scale):
            out.append(("between", f"solver {name!r} takes its Dirichlet data at x = {g['dirichlet']:g}, "
                        f"not on its artificial boundary x = {boundary:g}",
                        f"make the side at x = {boundary:g} of {name!r} dirichlet"))
        if g["trace"] is not None and not _close(g["trace"], want, scale):
            out.append(("between", f"solver {name!r} gives its trace at x = {g['trace']:g}, not on the "
                        f"other's artificial boundary x = {want:g}",
                        f"set solvers.{name}.params.overlap_line: {want:.12g}"))
    return out


def check_dirichlet_neumann(p: DirichletNeumannSpec, ctx) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if not _solvers_ok(out, ctx, p.between):
        return out
    d, n = p.between
    _needs(out, ctx, d, "inputs", p.value, "the interface value it is given",
           f"set the interface side of {d!r} to dirichlet")
    _needs(out, ctx, d, "outputs", p.flux, "the interface flux it returns",
           f"set the interface side of {d!r} to dirichlet")
    _needs(out, ctx, n, "inputs", p.flux, "the interface flux it is given",
           f"set the interface side of {n!r} to neumann")
    _needs(out, ctx, n, "outputs", p.value, "the interface value it returns",
           f"set the interface side of {n!r} to neumann")
    gd, gn = _geometry(ctx.solvers[d]), _geometry(ctx.solvers[n])
    if out or gd is None or gn is None or gd["dirichlet"] is None:
        return out
    x = gd["dirichlet"]
    scale = max(map(abs, (*gd["extent"], *gn["extent"])))
    if not any(_close(x, e, scale) for e in gn["extent"]):
        out.append(("between", f"{d!r}'s interface is at x = {x:g}, but {n!r} spans x in "
                    f"[{gn['extent'][0]:g}, {gn['extent'][1]:g}]: the subdomains do not meet there",
                    f"let {n!r} start or end at x = {x:g}"))
    return out


def describe_schwarz(p: SchwarzSpec) -> str:
    return (f"pattern schwarz ({p.variant}) between {p.between[0]} and {p.between[1]}: overlap {p.overlap:g} m, "
            f"traces {p.trace} -> {p.dirichlet}, relative tolerance {p.tolerance:g}, at most "
            f"{p.max_iterations} iterations")


def describe_dirichlet_neumann(p: DirichletNeumannSpec) -> str:
    return (f"pattern dirichlet-neumann: {p.between[0]} given {p.value}, {p.between[1]} given {p.flux}; "
            f"{p.acceleration} relaxation {p.relaxation:g}, relative tolerance {p.tolerance:g}, at most "
            f"{p.max_iterations} iterations")


def drives(entry) -> tuple[str, ...]:
    return ()   # the solvers stay in the window loop: the recipe is couplings and a scheme


# --- per-iteration statistics (the coordinator's side; rows from the runtime) --------------------

COLUMNS = ("window", "iteration", "change", "dot", "norm")


def columns(p, job) -> tuple[str, ...]:
    return COLUMNS


def group(p) -> str:
    return f"{p.kind}/{p.between[0]}-{p.between[1]}"


def datasets(rows: np.ndarray, p, job) -> dict[str, np.ndarray]:
    """Per-iteration arrays (n_rows,) for ``/<kind>/<a>-<b>/``, plus ``contraction`` (signed; NaN where
    undefined: a window's first two iterations, or no change before)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    out = {name: rows[:, j] for j, name in enumerate(COLUMNS)}
    out["window"] = out["window"].astype(np.int64)
    out["iteration"] = out["iteration"].astype(np.int64)
    out["contraction"] = contractions(rows)
    return out


def contractions(rows: np.ndarray) -> np.ndarray:
    """Signed factor dot_k / change_{k-1}^2 of each row (NaN without a previous change in its window)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    out = np.full(len(rows), np.nan)
    for k in range(1, len(rows)):
        same = rows[k, 0] == rows[k - 1, 0] and rows[k, 1] == rows[k - 1, 1] + 1
        prev = rows[k - 1, 2]
        if same and np.isfinite(prev) and prev > 0 and np.isfinite(rows[k, 3]):
            out[k] = rows[k, 3] / (prev * prev)
    return out


def summary(rows: np.ndarray, p, job) -> list[str]:
    d = datasets(rows, p, job)
    if not len(d["window"]):
        return [f"{p.kind} {p.between[0]}-{p.between[1]}: no iterations recorded"]
    c = d["contraction"]
    tail = c[np.isfinite(c)][-3:]
    its = np.bincount(d["window"])
    factor = f"{np.median(tail):.4g}" if len(tail) else "n/a"
    return [f"{p.kind} {p.between[0]}-{p.between[1]}: {its[its > 0].mean():.2f} iterations per window; "
            f"contraction per iteration (median of the last 3) {factor}"]


def _kinds():
    from . import PatternKind
    runtime = "couplings.patterns.domain_decomposition_runtime:roles"
    return {
        "schwarz": PatternKind(SchwarzSpec, check_schwarz, drives, describe_schwarz, runtime=runtime,
                               stats=__name__, expand=expand_schwarz),
        "dirichlet-neumann": PatternKind(DirichletNeumannSpec, check_dirichlet_neumann, drives,
                                         describe_dirichlet_neumann, runtime=runtime, stats=__name__,
                                         expand=expand_dirichlet_neumann),
    }


PATTERN_KINDS = _kinds()
