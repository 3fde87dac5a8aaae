"""``msorch submit`` on the local SLURM: a walltime shorter than the run.

The job asks for 2 minutes with the warning signal 70 s before the limit; its
work takes about 80 s, so the first allocation is warned before it finishes:
it checkpoints, stops with exit 3 and requeues itself, and the requeued run
resumes from the checkpoint ("finishes across several allocations"; slurmctld
checks limits every 30 s, so the warning comes within about +-15 s of its due
time and a third allocation may be needed).
Reference: the same job run to the end in one go with ``msorch run``;
the final fields must be bitwise equal.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import ROOT, run_msorch
from msorch import slurm

SPEC = """name: walltime
time: {start: 0.0, end: 160.0, window: 0.1}
solvers:
  a: {kind: test.null, params: {n: 4, offset: 1.0}}
  b: {kind: "faulty:Faulty", ranks: 2, params: {n: 4, sleep: SLEEP}}
couplings:
  - {from: a.out, to: b.in}
  - {from: b.out, to: a.in}
scheme: {kind: explicit, staggering: serial}
checkpoint: {every_windows: 100000, keep: 2}
resources: {time: "2", signal_before: 70}
progress: false
"""

pytestmark = pytest.mark.slurm


def test_walltime_checkpoint_requeue_and_finish(local_slurm, tmp_path):
    spec = tmp_path / "walltime.yaml"
    spec.write_text(SPEC.replace("SLEEP", "0.05"))
    quick = tmp_path / "quick.yaml"   # the same arithmetic without the sleeps
    quick.write_text(SPEC.replace("SLEEP", "0.0"))
    ref = run_msorch("run", quick, "-o", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "slurm"
    r = run_msorch("submit", spec, "-o", out)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split()[-1]
    state = slurm.wait(job_id, timeout=600)
    log = "".join(p.read_text() for p in out.glob("slurm-*.out"))
    assert state == "COMPLETED", log
    assert "stopped after a checkpoint" in log and f"requeued SLURM job {job_id}" in log, log
    assert "restarting from" in log, log
    for solver in ("a", "b"):
        with h5py.File(tmp_path / "ref" / f"{solver}.h5") as fa, h5py.File(out / f"{solver}.h5") as fb:
            assert np.array_equal(fa["time"][:], fb["time"][:])
            assert np.array_equal(fa["out"][:], fb["out"][:])
    status = run_msorch("status", out)
    assert "walltime finished, 1600/1600 windows" in status.stdout and f"slurm job {job_id}: COMPLETED" in status.stdout


def test_submit_with_the_srun_launcher(local_slurm, tmp_path):
    """resources.launcher: srun starts the ranks with srun --mpi=pmix inside the allocation."""
    spec = tmp_path / "srun.yaml"
    spec.write_text(SPEC.replace("SLEEP", "0.0").replace("end: 160.0", "end: 1.0")
                    .replace('resources: {time: "2", signal_before: 70}', 'resources: {time: "2", launcher: srun}'))
    out = tmp_path / "out"
    r = run_msorch("submit", spec, "-o", out)
    assert r.returncode == 0, r.stderr
    state = slurm.wait(r.stdout.split()[-1], timeout=120)
    log = "".join(p.read_text() for p in out.glob("slurm-*.out"))
    assert state == "COMPLETED", log
    assert "--launcher srun" in (out / slurm.SCRIPT_NAME).read_text()
    with h5py.File(out / "results.h5") as f:
        assert f.attrs["finished"] == 1
        np.testing.assert_array_equal(f["a/out"][:, 0], np.arange(11.0))
