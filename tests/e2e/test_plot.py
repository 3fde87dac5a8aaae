"""``msorch plot`` draws a finished run (real matplotlib, real results file)."""
from conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_pictures_of_coupling_timing_and_fields(msorch, tmp_path):
    r = msorch("run", ROOT / "jobs" / "decay_pair.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    r = msorch("plot", tmp_path)
    assert r.returncode == 0, r.stderr
    names = {p.split("/")[-1] for p in r.stdout.split()}
    assert names == {"coupling.png", "timing.png", "a.png", "b.png"}
    for name in names:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000


def test_plot_without_results_says_so(msorch, tmp_path):
    r = msorch("plot", tmp_path)
    assert r.returncode == 2 and "no results.h5" in r.stderr
