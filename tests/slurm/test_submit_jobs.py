"""Every shipped job through ``msorch submit`` on the local SLURM, as the README tells users:
the installed ``msorch`` command, from a directory outside the repository, no PYTHONPATH.

Reference: the same (shortened) spec run with ``msorch run`` on this machine; every
dataset of every solver's results must be bitwise equal (same code, same rank layout,
seeded randomness), except wall-clock timings.  One job is also submitted with
``--launcher srun`` (ranks started by ``srun --mpi=pmix`` inside the allocation).

The singleton trap of issue 8 is what this guards: a front end that initialized MPI
(the FEM and MD plugins import petsc4py/mpi4py) exported Open MPI's singleton variables
into the batch job, whose ranks then exited 1 without a word.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import MPI_ENV, ROOT
from msorch import slurm

pytestmark = pytest.mark.slurm

MSORCH = Path(sys.executable).with_name("msorch")
JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.yaml"))
MAX_WINDOWS = 6    # enough to couple, checkpoint and write a few outputs; keeps the stage short


def user_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MPI_ENV)
    return env


def msorch(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(MSORCH), *map(str, args)], cwd=cwd, env=user_env(), capture_output=True,
                          text=True, timeout=900)


def short_spec(job: str, directory: Path) -> Path:
    """The shipped spec with at most MAX_WINDOWS windows, beside any file it names relative to itself."""
    spec = yaml.safe_load((ROOT / "jobs" / f"{job}.yaml").read_text())
    t = spec["time"]
    n = round((t["end"] - t["start"]) / t["window"])
    if n > MAX_WINDOWS:
        t["end"] = t["start"] + MAX_WINDOWS * t["window"]
    resources = spec.setdefault("resources", {}) or {}
    resources.pop("time", None)   # the local cluster has no time limit; no walltime warning here
    spec["resources"] = resources
    path = directory / f"{job}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    for other in (ROOT / "jobs").iterdir():   # input files the spec names relative to itself
        if other.suffix != ".yaml" and not (directory / other.name).exists():
            (shutil.copytree if other.is_dir() else shutil.copy)(other, directory / other.name)
    return path


def results(outdir: Path) -> dict[str, np.ndarray]:
    """Every dataset of the run's results, by path; wall-clock measurements (timing/, *seconds) left out."""
    found = {}
    with h5py.File(outdir / "results.h5") as f:
        def visit(name, obj):
            wall_clock = name.startswith("timing") or "/timing" in name or name.endswith("seconds")
            if isinstance(obj, h5py.Dataset) and not wall_clock:
                found[name] = np.asarray(obj[()])
        f.visititems(visit)
    return found


@pytest.fixture(scope="module")
def submitted(local_slurm, tmp_path_factory):
    """Submit every job at once (SLURM runs them as slots free up); job name -> (spec, outdir, job id)."""
    tmp = tmp_path_factory.mktemp("user")
    jobs = {}
    for job in JOBS:
        spec = short_spec(job, tmp)
        out = tmp / f"sub-{job}"
        r = msorch("submit", spec, "-o", out, cwd=tmp)
        assert r.returncode == 0, f"{job}: {r.stderr}"
        jobs[job] = (spec, out, r.stdout.split()[-1])
    (tmp / "srun").mkdir()
    spec = short_spec("partitioned_heat", tmp / "srun")
    r = msorch("submit", spec, "-o", tmp / "sub-srun", "--launcher", "srun", cwd=tmp)
    assert r.returncode == 0, r.stderr
    jobs["srun"] = (spec, tmp / "sub-srun", r.stdout.split()[-1])
    return jobs


@pytest.mark.parametrize("job", JOBS + ["srun"])
def test_submitted_job_completes_with_the_results_of_msorch_run(submitted, job, tmp_path):
    spec, out, job_id = submitted[job]
    local = msorch("run", spec, "-o", tmp_path / "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    state = slurm.wait(job_id, timeout=900)
    log = "".join(p.read_text() for p in out.glob("slurm-*.out"))
    assert state == "COMPLETED", f"{job}: {state}\n{log}"
    if job == "srun":
        assert "srun --mpi=pmix" in (out / slurm.SCRIPT_NAME).read_text() or "--launcher srun" in \
            (out / slurm.SCRIPT_NAME).read_text()
    mine, theirs = results(tmp_path / "local"), results(out)
    assert sorted(mine) == sorted(theirs), job
    for name in mine:
        assert np.array_equal(mine[name], theirs[name], equal_nan=mine[name].dtype.kind == "f"), \
            f"{job}: {name} differs between msorch run and msorch submit"
