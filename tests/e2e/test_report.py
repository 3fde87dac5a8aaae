"""``msorch report OUTDIR``: one self-contained HTML page (checked for content, no external URL)."""
from __future__ import annotations

import re

import yaml

from conftest import ROOT


def test_report_is_self_contained_and_complete(msorch, tmp_path):
    spec = yaml.safe_load((ROOT / "jobs" / "decay_pair.yaml").read_text())
    spec["checkpoint"] = {"every_windows": 4}
    path = tmp_path / "decay.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = msorch("run", path, "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = msorch("report", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert r.stdout.strip().endswith("report.html")
    # offline: no external resources of any kind
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<script" not in page
    # every picture of msorch plot is embedded
    pictures = sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.png"))
    assert len(pictures) >= 4 and page.count('src="data:image/png;base64,') == len(pictures)
    for name in pictures:
        assert f"<figcaption>{name}</figcaption>" in page
    # spec, layout, summary, timing per rank, checkpoints
    assert "rate:" in page and "<h2>Layout (world ranks)</h2>" in page
    assert "<td>state</td><td>finished</td>" in page and "<td>windows</td><td>10/10</td>" in page
    assert re.search(r"<td>a rank 0</td>(<td>\d+\.\d{3}</td>){6}", page)
    assert "checkpoint_" in page and "<h2>Warnings</h2><p>none</p>" in page
    assert "<h2>ParaView</h2>" in page and "a.xmf" in page


def test_report_of_an_unfinished_run_warns(msorch, tmp_path):
    (tmp_path / "status.json").write_text('{"job": "x", "state": "failed", "windows_done": 2, "windows": 5, '
                                          '"time": 0.2, "message": "solver boom", "updated": "now"}')
    r = msorch("report", tmp_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "report.html").read_text()
    assert "solver boom" in page and "no results.h5 yet" in page
