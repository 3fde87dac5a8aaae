"""ParaView itself opens the XDMF sidecars (Debian's ``paraview`` 5.11: pvpython, "XDMF Reader").

ParaView's "XDMF Reader" reads them; its Xdmf3 readers (Xdmf3ReaderS/T, Debian's 2019
Xdmf3) skip attributes given as HyperSlab data items ("Skipping unrecognized array type").

Slow (pvpython starts in seconds) and ParaView is a large install, so this is in the
verify stage; tests/e2e/test_xdmf.py checks the same files with meshio in the default suite.
Reference: the analytic u = x + 10 y + t of ``xdmf_square:Square`` at every output time.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import mpi_env

PVPYTHON = shutil.which("pvpython")

SCRIPT = r'''
import json, sys
from paraview import servermanager
from paraview.simple import XDMFReader
from vtk.numpy_interface import dataset_adapter as dsa
reader = XDMFReader(FileNames=[sys.argv[1]])
reader.UpdatePipelineInformation()
out = {"times": list(reader.TimestepValues), "steps": []}
for t in out["times"]:
    reader.UpdatePipeline(t)
    data = dsa.WrapDataObject(servermanager.Fetch(reader))
    pts = data.Points
    u = data.PointData["u"]
    out["steps"].append({"n_points": int(data.GetNumberOfPoints()), "n_cells": int(data.GetNumberOfCells()),
                         "max_error": float(abs(u - (pts[:, 0] + 10 * pts[:, 1] + t)).max())})
print("RESULT " + json.dumps(out))
'''


@pytest.mark.verify
@pytest.mark.skipif(PVPYTHON is None, reason="ParaView (Debian package paraview) is not installed")
def test_paraview_reads_every_output_time(msorch, tmp_path):
    spec = tmp_path / "sq.yaml"
    spec.write_text(yaml.safe_dump({"time": {"start": 0.0, "end": 0.3, "window": 0.1},
                                    "solvers": {"sq": {"kind": "xdmf_square:Square", "ranks": 2,
                                                       "params": {"n": 5}}}}))
    r = msorch("run", spec, "-o", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "check.py").write_text(SCRIPT)
    env = {k: v for k, v in mpi_env().items() if k != "PYTHONPATH"}
    p = subprocess.run([PVPYTHON, str(tmp_path / "check.py"), str(tmp_path / "out" / "sq.xmf")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, p.stdout + p.stderr
    result = json.loads(line[len("RESULT "):])
    assert result["times"] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    for step in result["steps"]:
        assert step["n_points"] == 25 and step["n_cells"] == 32
        assert step["max_error"] < 1e-12
