"""``msorch report OUTDIR``: one self-contained HTML page of a run.

Spec, rank layout, run summary (state, windows, wall time, versions),
warnings (non-converged windows, failure messages), every picture of
``msorch plot`` embedded as base64 PNG, the per-phase timing table and the
checkpoints.  No external URL, script or stylesheet: it opens offline, from
a mail attachment or a copied file.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .timing import PHASES

_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.6em;overflow:auto}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}.warn{color:#a40}"""


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">' \
           f"<figcaption>{html.escape(path.name)}</figcaption></figure>"


def write_report(outdir: Path, output: Path | None = None) -> Path:
    """Write the page (default ``OUTDIR/report.html``); returns its path."""
    import h5py

    from . import status
    from .checkpoint import find_checkpoints
    outdir = Path(outdir)
    output = output or outdir / "report.html"
    state = status.read(outdir) or {}
    parts = [f"<h1>msorch run: {html.escape(str(state.get('job', outdir.name)))}</h1>"]
    warnings = []
    results = outdir / "results.h5"
    summary = [["output directory", str(outdir.resolve())]]
    if state:
        summary += [["state", state.get("state")], ["windows", f"{state.get('windows_done')}/{state.get('windows')}"],
                    ["time reached [s]", state.get("time")], ["status updated", state.get("updated")]]
        if state.get("message"):
            warnings.append(f"run message: {state['message']}")
    spec_text, layout, timing_rows = "", {}, []
    if results.exists():
        with h5py.File(results, "r") as f:
            spec_text = str(f.attrs.get("spec", ""))
            layout = json.loads(f.attrs.get("layout", "{}"))
            for key in ("wall_seconds", "finished", "host", "started"):
                if key in f.attrs:
                    summary.append([key.replace("_", " "), f.attrs[key]])
            summary.append(["results format", int(f.attrs.get("format_version", 1))])
            if "versions" in f.attrs:
                summary.append(["versions", f.attrs["versions"]])
            if "coupling/converged" in f:
                conv = f["coupling/converged"][:]
                its = f["coupling/iterations"][:]
                if len(its):
                    summary.append(["iterations per window", f"mean {its.mean():.2f}, max {int(its.max())}, "
                                    f"total {int(its.sum())}"])
                bad = np.flatnonzero(conv == 0) + 1
                if len(bad):
                    warnings.append(f"{len(bad)} window(s) did not converge: {', '.join(map(str, bad[:20]))}"
                                    + (" ..." if len(bad) > 20 else ""))
            for key in f.get("timing", {}):
                if key.endswith(".phases"):
                    table = f["timing"][key][:]
                    for r in range(table.shape[1]):
                        sums = np.nansum(table[:, r, :], axis=0)   # NaN: windows before a layout change
                        timing_rows.append([f"{key[:-7]} rank {r}", *(f"{v:.3f}" for v in sums), f"{sums.sum():.3f}"])
                elif key in f["timing"] and f["timing"][key].ndim == 1:
                    t = f["timing"][key][:]
                    if len(t):
                        summary.append([f"{key}: wall per window", f"mean {t.mean() * 1e3:.3f} ms, max "
                                        f"{t.max() * 1e3:.3f} ms, total {t.sum():.3f} s"])
        from .plot import plot
        pictures = plot(outdir)
    else:
        warnings.append("no results.h5 yet: the run has not finished (or was killed); "
                        "restart it with --restart latest")
        pictures = []
    parts.append("<h2>Summary</h2>" + _table(["", "value"], summary))
    parts.append("<h2>Warnings</h2>" + ("".join(f'<p class="warn">{html.escape(w)}</p>' for w in warnings)
                                        if warnings else "<p>none</p>"))
    if layout:
        rows, rank = [["coordinator", "0"]], 1
        for name, ranks in layout.items():
            rows.append([name, ", ".join(map(str, ranks))])
        parts.append("<h2>Layout (world ranks)</h2>" + _table(["group", "ranks"], rows))
    if timing_rows:
        parts.append("<h2>Timing [s per rank]</h2>" + _table(["rank", *PHASES, "total"], timing_rows))
    checkpoints = find_checkpoints(outdir / "checkpoints") if (outdir / "checkpoints").is_dir() else []
    parts.append("<h2>Checkpoints</h2>" + (_table(["file", "bytes"], [[p.name, p.stat().st_size] for p in checkpoints])
                                           if checkpoints else "<p>none</p>"))
    sidecars = sorted(p.name for p in outdir.glob("*.xmf"))
    if sidecars:
        parts.append("<h2>ParaView</h2><pre>" + html.escape("\n".join(f"paraview {outdir / n}" for n in sidecars))
                     + "</pre>")
    parts.append("<h2>Pictures</h2>" + "".join(_png(p) for p in pictures))
    if spec_text:
        parts.append(f"<h2>Spec</h2><pre>{html.escape(spec_text)}</pre>")
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>msorch report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    output.write_text(page)
    return output
