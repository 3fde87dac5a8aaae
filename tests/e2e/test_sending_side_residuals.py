"""Implicit convergence measured locally on both ranks (msorch.worker.Worker._bind_residuals).

Two 1-rank solvers, no acceleration, identity maps: each rank computes the
convergence sums of what it sends (as the sender) and of what it receives (as
the receiver), with the same kernel, so neither an ``Allreduce`` per iteration
nor a message for the sums is needed.  Reference: the same job with the reduction
(``MSORCH_CONVERGENCE_REDUCTION=1``), i.e. the receiver-side measure the
worker used before; every stored array must be equal bit for bit (iterations,
residuals, outputs), including after a restart from a mid-run checkpoint
(the senders' "previous" blocks are rebuilt from the receivers' restored
waveforms).  The job: ``jobs/decay_pair.yaml`` (10 sub-steps, so 10-sample
waveforms) without acceleration, one measure over the whole window and one
over its end only, plain fixed-point iterations (9 per window).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import yaml

from conftest import ROOT, run_msorch


def _spec(tmp_path: Path) -> Path:
    spec = yaml.safe_load((ROOT / "jobs" / "decay_pair.yaml").read_text())
    spec["scheme"].pop("acceleration")
    spec["scheme"]["max_iterations"] = 60
    spec["scheme"]["convergence"] = [{"field": "a.g", "relative": 1.0e-12},
                                     {"field": "b.g", "relative": 1.0e-10, "over": "end"}]
    spec["checkpoint"] = {"every_windows": 3, "keep": 5}
    path = tmp_path / "decay_plain.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _arrays(outdir: Path) -> dict:
    """Every dataset of every .h5 in ``outdir`` except timing (wall-clock) ones."""
    out = {}
    for f in sorted(outdir.glob("*.h5")):
        with h5py.File(f) as h:
            h.visititems(lambda name, obj: out.__setitem__(f"{f.name}/{name}", obj[()])
                         if isinstance(obj, h5py.Dataset) and not name.startswith("timing") else None)
    return out


def _assert_bitwise(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.asarray(a[name]).tobytes() == np.asarray(b[name]).tobytes(), name


def test_sending_side_sums_equal_the_reduction_bitwise_also_after_restart(tmp_path):
    spec = _spec(tmp_path)
    r = run_msorch("run", spec, "-o", tmp_path / "reduce", env={"MSORCH_CONVERGENCE_REDUCTION": "1"})
    assert r.returncode == 0, r.stderr
    r = run_msorch("run", spec, "-o", tmp_path / "send")
    assert r.returncode == 0, r.stderr
    reference, sent = _arrays(tmp_path / "reduce"), _arrays(tmp_path / "send")
    iterations = reference["results.h5/coupling/iterations"]
    assert iterations.min() > 2 and reference["results.h5/coupling/converged"].all()
    _assert_bitwise(reference, sent)

    # Restart the sending-side run from its first checkpoint (after window 3 of 10).
    first = sorted((tmp_path / "send" / "checkpoints").glob("checkpoint_*.h5"))[0]
    restarted = tmp_path / "restarted"
    shutil.copytree(tmp_path / "send", restarted)
    r = run_msorch("run", spec, "-o", restarted, "--restart", str(restarted / "checkpoints" / first.name))
    assert r.returncode == 0, r.stderr
    assert "restarting from" in r.stdout
    _assert_bitwise(reference, _arrays(restarted))
