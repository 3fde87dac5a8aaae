"""``msorch plot`` draws a finished run (real matplotlib, real results file)."""
import pytest

from conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_pictures_of_coupling_timing_and_fields(msorch, tmp_path):
    r = msorch("run", ROOT / "jobs" / "decay_pair.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    r = msorch("plot", tmp_path)
    assert r.returncode == 0, r.stderr
    names = {p.split("/")[-1] for p in r.stdout.split()}
    assert names == {"coupling.png", "timing.png", "timeline.png", "a.png", "b.png"}
    for name in names:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000


def test_plot_without_results_says_so(msorch, tmp_path):
    r = msorch("plot", tmp_path)
    assert r.returncode == 2 and "no results.h5" in r.stderr


def test_timeline_and_2d_map_from_two_ranks(msorch, tmp_path):
    """A 2-rank triangulated square: the timeline has a row per rank; the 2-D map is drawn on its triangles."""
    import h5py
    import numpy as np
    import yaml
    spec = tmp_path / "sq.yaml"
    spec.write_text(yaml.safe_dump({"time": {"start": 0.0, "end": 0.3, "window": 0.1},
                                    "solvers": {"sq": {"kind": "xdmf_square:Square", "ranks": 2, "params": {"n": 5}}},
                                    "checkpoint": {"every_windows": 1}}))
    r = msorch("run", spec, "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "sq: seconds per rank (mean over 2): compute" in r.stdout
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        phases = f["timing/sq.phases"]
        assert phases.shape == (3, 2, 5)
        # every window's phases add up to about its wall time on the root (the row spans output to output)
        assert abs(phases[:, 0, :].sum() - f["timing/sq"][:].sum()) < 0.5
        # checkpoints after windows 1 and 2 appear in rows 2 and 3 (a row runs from output to output)
        assert phases[0, :, 4].sum() == 0 and np.all(phases[1:, :, 4] > 0)
        assert np.all(phases[:, :, 0] > 0)   # every rank computes in every window
    r = msorch("plot", tmp_path / "out", "--times", "0.1", "0.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = {p.split("/")[-1] for p in r.stdout.split()}
    assert {"timeline.png", "map_u.png", "sq.png"} <= names
    for name in ("timeline.png", "map_u.png"):
        assert (tmp_path / "out" / "plots" / name).read_bytes().startswith(PNG)


@pytest.mark.verify
def test_idm_ring_waves_space_time(msorch, tmp_path):
    """jobs/idm_ring_waves.yaml: string-unstable IDM (a = 0.73 m/s^2) grows stop-and-go waves.

    Reference: Treiber & Kesting, Traffic Flow Dynamics, ch. 15 — the homogeneous state (v_e = 11.8 m/s
    at 25 m spacing) is unstable for this a, so late in the run some bins stand (v < 1 m/s) while others
    run faster than v_e; the plot is the space-time diagram in docs/img.
    """
    import h5py
    r = msorch("run", ROOT / "jobs" / "idm_ring_waves.yaml", "-o", tmp_path / "w", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "w" / "ring.h5") as f:
        late = f["speed"][:][f["time"][:] > 600]
    assert late.min() < 1.0 and late.max() > 15.0
    r = msorch("plot", tmp_path / "w", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "w" / "plots" / "ring.png").exists()
