"""XDMF sidecars for ParaView, read back with an independent reader (meshio's XDMF 3 reader).

meshio reads the mesh (geometry, topology) and the temporal collection's steps and
times; it does not read HyperSlab data items, so the per-time attribute rows are
resolved here from the XML (start/stride/count) and compared with the solver's
known values u = x + 10 y + t — an analytic reference independent of the writer.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import yaml

from conftest import MPI_ENV, ROOT, kill_matching

meshio = pytest.importorskip("meshio")

SPEC = {"time": {"start": 0.0, "end": 0.3, "window": 0.1},
        "solvers": {"sq": {"kind": "xdmf_square:Square", "ranks": 2, "dt": 0.05, "params": {"n": 5}}}}


def _steps(xmf):
    """(time, {attribute: values}) per grid of the temporal collection, hyperslabs resolved with h5py."""
    out = []
    root = ET.parse(xmf).getroot()
    for grid in root.iter("Grid"):
        if grid.get("GridType") != "Uniform":
            continue
        values = {}
        for attr in grid.findall("Attribute"):
            slab = attr.find("DataItem")
            sel, data = slab.findall("DataItem")
            start, stride, count = np.array(sel.text.split(), dtype=int).reshape(3, -1)
            name, path = data.text.strip().split(":")
            with h5py.File(xmf.parent / name, "r") as f:
                index = tuple(slice(a, a + s * c, s) for a, s, c in zip(start, stride, count))
                values[attr.get("Name")] = f[path][index].reshape([int(d) for d in slab.get("Dimensions").split()])
        out.append((float(grid.find("Time").get("Value")), values))
    return out


def _check_square(xmf, n):
    with meshio.xdmf.TimeSeriesReader(xmf) as reader:
        points, cells = reader.read_points_cells()
        n_steps = reader.num_steps
    assert points.shape == (n * n, 3) and np.all(points[:, 2] == 0)
    (block,) = cells
    assert block.type == "triangle" and len(block.data) == 2 * (n - 1) ** 2
    # The triangles tile the square: positive areas summing to 1 (independent of the numbering).
    a, b, c = (points[block.data[:, k], :2] for k in range(3))
    area = 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    assert np.all(np.abs(area) > 0) and np.isclose(np.abs(area).sum(), 1.0)
    steps = _steps(xmf)
    assert len(steps) == n_steps
    for t, values in steps:
        np.testing.assert_allclose(values["u"], points[:, 0] + 10 * points[:, 1] + t, rtol=0, atol=1e-12)
    return steps


def test_triangles_from_two_ranks_open_with_meshio(msorch, tmp_path):
    """2 ranks, each giving its triangles in its own numbering: one consistent mesh, 4 output times."""
    spec = tmp_path / "sq.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    r = msorch("run", spec, "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = _check_square(tmp_path / "out" / "sq.xmf", 5)
    np.testing.assert_allclose([t for t, _ in steps], [0.0, 0.1, 0.2, 0.3], atol=1e-12)


def test_roads_are_polylines_and_single_points_vertices(msorch, tmp_path):
    """1-D points (a road, profiles) become a polyline in coordinate order; one point a vertex."""
    r = msorch("run", ROOT / "jobs" / "decay_pair.yaml", "-o", tmp_path / "d", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with meshio.xdmf.TimeSeriesReader(tmp_path / "d" / "a.xmf") as reader:
        points, (block,) = reader.read_points_cells()
        assert block.type == "vertex" and len(points) == 1 and reader.num_steps == 11
    spec = tmp_path / "road.yaml"
    spec.write_text(yaml.safe_dump({"time": {"start": 0, "end": 0.2, "window": 0.1},
                                    "solvers": {"road": {"kind": "test.null", "ranks": 2, "params": {"n": 6}}}}))
    r = msorch("run", spec, "-o", tmp_path / "r", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with meshio.xdmf.TimeSeriesReader(tmp_path / "r" / "road.xmf") as reader:
        points, (block,) = reader.read_points_cells()
    assert block.type == "line" and len(block.data) == 5
    assert np.all(block.data[1:, 0] == block.data[:-1, 1])                 # one chain
    assert np.all(np.diff(points[block.data[:, 0], 0]) > 0)                # in coordinate order


def test_a_killed_run_still_opens(tmp_path):
    """SIGKILL of the whole job while it writes: the sidecar names only rows that are on disk."""
    spec = tmp_path / "sq.yaml"
    slow = dict(SPEC, time={"start": 0.0, "end": 10.0, "window": 0.1})
    slow["solvers"] = {"sq": dict(SPEC["solvers"]["sq"], params={"n": 5, "sleep": 0.02})}
    slow["checkpoint"] = {"every_windows": 3}
    spec.write_text(yaml.safe_dump(slow))
    out = tmp_path / "out"
    env = dict(os.environ, **MPI_ENV, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "e2e")]))
    proc = subprocess.Popen([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(out)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    xmf = out / "sq.xmf"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if xmf.exists() and xmf.read_text().count("<Time ") >= 3:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no XDMF with 3 output times within 120 s")
        # meanwhile `msorch status` tells the estimated time to finish, from the window rate
        while time.monotonic() < deadline and proc.poll() is None:
            state = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
            if state.get("eta_seconds"):
                break
            time.sleep(0.05)
        status = subprocess.run([sys.executable, "-m", "msorch", "status", str(out)], capture_output=True,
                                text=True, env=env)
        assert "estimated time to finish:" in status.stdout, status.stdout
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kill_matching(f"msorch.runtime {spec}")   # ranks outlive a killed mpirun for a moment
    deadline = time.monotonic() + 10   # a rank's files close a moment after its command line is gone
    while True:
        try:
            h5py.File(out / "sq.h5", "r").close()
            break
        except BlockingIOError:
            assert time.monotonic() < deadline, "sq.h5 still locked 10 s after the kill"
            time.sleep(0.1)
        except OSError as exc:
            # killed in the middle of an append: HDF5's SWMR "open for writing" mark stays in the
            # superblock, and plain readers (ParaView, meshio) need it cleared, as the README says
            assert "h5clear" in str(exc), exc
            subprocess.run(["h5clear", "-s", str(out / "sq.h5")], check=True)
    steps = _check_square(xmf, 5)
    assert 3 <= len(steps) < 101
