"""Overlapping Schwarz (jobs/schwarz_laplace.yaml, coarser) on 1+1 and 2+3 solver ranks.

fem.heat's overlap line (solvers/fem/interior.py) is a distributed matrix-vector product whose
rows follow the node ownership, so every rank count must give the same traces.  Reference: the
1+1 run — same iteration count, same per-iteration changes (relative 1e-8: the changes are
differences of values of order 1 that each rank layout's AMG-preconditioned CG solves to rtol
1e-14, not bitwise), same solution (1e-10); and both equal the analytic harmonic
u = 1 + x² − y², which the 5-point stencil reproduces at the nodes (1e-9 after the 1e-12
relative Schwarz tolerance).
"""
from __future__ import annotations

import pytest
import h5py
import numpy as np
import yaml

from conftest import ROOT


def exact(points):
    return 1 + points[:, 0] ** 2 - points[:, 1] ** 2


def run(msorch, tmp_path, left_ranks, right_ranks):
    """jobs/schwarz_laplace.yaml on h = 0.05, 20 cells in y, with the given group sizes."""
    spec = yaml.safe_load((ROOT / "jobs" / "schwarz_laplace.yaml").read_text())
    spec["solvers"]["left"].update(ranks=left_ranks)
    spec["solvers"]["right"].update(ranks=right_ranks)
    spec["solvers"]["left"]["params"].update(nx=12, ny=20)
    spec["solvers"]["right"]["params"].update(nx=12, ny=20)
    name = f"r{left_ranks}{right_ranks}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = msorch("run", path, "-o", tmp_path / name)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp_path / name / "results.h5"


@pytest.mark.verify   # minutes of MPI runs on 2 cores: in the verify stage (the SLURM stage runs every job)
def test_one_plus_one_and_two_plus_three_ranks_agree(msorch, tmp_path):
    runs = {}
    for ranks in ((1, 1), (2, 3)):
        results = run(msorch, tmp_path, *ranks)
        with h5py.File(results) as f:
            runs[ranks] = {"its": int(f["coupling/iterations"][0]), "change": f["schwarz/left-right/change"][:],
                           **{s: (f[f"{s}/points"][:], f[f"{s}/temperature"][-1]) for s in ("left", "right")}}
        print(f"\nschwarz {ranks[0]}+{ranks[1]} ranks: {runs[ranks]['its']} iterations")
    one, many = runs[(1, 1)], runs[(2, 3)]
    assert one["its"] == many["its"]
    big = one["change"] > 1e-6 * one["change"][1]
    assert np.allclose(many["change"][big], one["change"][big], rtol=1e-8)
    for solver in ("left", "right"):
        (p1, u1), (p2, u2) = one[solver], many[solver]
        assert np.array_equal(p1, p2)
        assert np.abs(u1 - u2).max() < 1e-10
        assert np.abs(u2 - exact(p2)).max() < 1e-9
