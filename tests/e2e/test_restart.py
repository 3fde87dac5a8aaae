"""Checkpoints and restart through ``msorch run``: SIGKILL mid-run, damaged files, SIGUSR1.

Reference: the same job run to the end in one go.  "Bitwise" means every
stored output array is equal with ``np.array_equal`` (no tolerance).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT, kill_matching, mpi_env, run_msorch

JOBS = ROOT / "jobs"


def heat_job(tmp_path, windows: int = 60, every: int = 5) -> Path:
    spec = yaml.safe_load((JOBS / "partitioned_heat.yaml").read_text())
    spec["time"]["end"] = windows * 0.1
    spec["solvers"]["right"]["ranks"] = 2
    spec["checkpoint"] = {"every_windows": every, "keep": 3}
    path = tmp_path / "heat.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def md_job(tmp_path) -> Path:
    spec = yaml.safe_load((JOBS / "lj_fluid.yaml").read_text())
    spec["checkpoint"] = {"every_windows": 2, "keep": 3}
    spec["solvers"]["fluid"]["output"]["every"] = 1
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


JOB_MAKERS = {"partitioned_heat": (heat_job, ("left", "right")), "lj_fluid": (md_job, ("fluid",))}


def start(spec, outdir, *extra) -> subprocess.Popen:
    env = mpi_env({"PYTHONPATH": str(ROOT)})
    return subprocess.Popen([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(outdir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)


def wait_for_checkpoint(outdir: Path, proc, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while not list((outdir / "checkpoints").glob("checkpoint_*.h5")):
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def kill_everything(proc, spec) -> None:
    """SIGKILL the front end, mpirun and every rank, as a node failure would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    kill_matching(f"msorch.runtime {spec}")


def assert_same_results(a: Path, b: Path, solvers) -> None:
    for solver in solvers:
        with h5py.File(a / f"{solver}.h5") as fa, h5py.File(b / f"{solver}.h5") as fb:
            names = []
            fa.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            assert names and all(name in fb for name in names) and len(fa) == len(fb)
            times = fb["time"][:]
            assert len(np.unique(times)) == len(times), "an output time appears twice"
            for name in names:   # every point set's datasets (md.lj: box/...)
                assert np.array_equal(fa[name][:], fb[name][:]), f"{solver}/{name} differs"


def uninterrupted(tmp_path_factory, job):
    tmp = tmp_path_factory.mktemp(f"reference_{job}")
    spec = JOB_MAKERS[job][0](tmp)
    r = run_msorch("run", spec, "-o", tmp / "out")
    assert r.returncode == 0, r.stderr
    return spec, tmp / "out"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return uninterrupted(tmp_path_factory, "partitioned_heat")


# lj_fluid's kill and layout change run in the verify stage (default-suite time; md.lj's
# bitwise restore on 1, 2 and 4 ranks stays in the MPI stage, tests/mpi/test_md_ranks.py)
@pytest.mark.parametrize("job", [pytest.param(j, marks=pytest.mark.verify) if j == "lj_fluid" else j
                                 for j in sorted(JOB_MAKERS)])
def test_sigkill_mid_run_then_restart_is_bitwise_identical(tmp_path_factory, tmp_path, job):
    """partitioned_heat (implicit, IQN-ILS history in the checkpoint) and lj_fluid
    (Langevin random streams in the checkpoint) on 2-rank groups."""
    spec, ref = uninterrupted(tmp_path_factory, job)
    solvers = JOB_MAKERS[job][1]
    out = tmp_path / "out"
    proc = start(spec, out)
    wait_for_checkpoint(out, proc)
    kill_everything(proc, spec)
    with h5py.File(ref / f"{solvers[0]}.h5") as f, h5py.File(out / f"{solvers[0]}.h5") as g:
        assert len(g["time"]) < len(f["time"]), "the kill must come before the end"
    r = run_msorch("run", spec, "-o", out, "--restart", "latest")
    assert r.returncode == 0, r.stderr
    assert "restarting from" in r.stdout
    assert_same_results(ref, out, solvers)
    with h5py.File(out / "results.h5") as f, h5py.File(ref / "results.h5") as g:
        assert np.array_equal(f["coupling/iterations"][:], g["coupling/iterations"][:])


def test_damaged_newest_checkpoint_falls_back_to_the_previous(reference, tmp_path):
    spec, ref = reference
    out = tmp_path / "out"
    r = run_msorch("run", spec, "-o", out)
    assert r.returncode == 0
    newest, previous = sorted((out / "checkpoints").glob("checkpoint_*.h5"))[::-1][:2]
    with h5py.File(newest) as f:
        offset = f["solvers/left/rank0/solver.u"].id.get_offset()
    data = bytearray(newest.read_bytes())
    data[offset + 3] ^= 0x40
    newest.write_bytes(bytes(data))
    r = run_msorch("run", spec, "-o", out, "--restart", str(newest))
    assert r.returncode == 2
    assert newest.name in r.stderr and "solver.u" in r.stderr
    r = run_msorch("run", spec, "-o", out, "--restart", "latest")
    assert r.returncode == 0, r.stderr
    assert "skipping a damaged checkpoint" in r.stderr and previous.name in r.stdout
    assert_same_results(ref, out, ("left", "right"))


def test_sigusr1_checkpoints_and_stops_with_exit_3_then_finishes(reference, tmp_path):
    """What SLURM's walltime warning (--signal=B:USR1@T) triggers."""
    spec, ref = reference
    spec2 = tmp_path / "heat.yaml"
    s = yaml.safe_load(spec.read_text())
    s["checkpoint"] = {"every_windows": 1000, "keep": 2}   # only the requested checkpoint
    spec2.write_text(yaml.safe_dump(s, sort_keys=False))
    out = tmp_path / "out"
    proc = start(spec2, out)
    while not (out / "left.h5").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    assert "stopped after a checkpoint" in stdout
    assert len(list((out / "checkpoints").glob("checkpoint_*.h5"))) == 1
    r = run_msorch("run", spec2, "-o", out, "--restart", "latest")
    assert r.returncode == 0, r.stderr
    assert_same_results(ref, out, ("left", "right"))


@pytest.mark.parametrize("job, ranks", [("partitioned_heat", {"left": 2, "right": 1}),
                                        pytest.param("lj_fluid", {"fluid": 1}, marks=pytest.mark.verify)])
def test_restart_on_another_rank_layout(tmp_path_factory, tmp_path, job, ranks):
    """Checkpoint written with one layout, continued with another (fem.heat and md.lj
    redistribute their state; waveforms are matched by coordinates; the accelerator
    restarts without history).  Reference: the uninterrupted run.  Tolerances:
    partitioned_heat converges each window to 1e-10, so the continuation agrees to
    well below 1e-9; for MD, different summation orders diverge chaotically, so only
    the first output after the restart (100 steps on) is compared, to 1e-8, on
    whole-box observables."""
    spec, ref = uninterrupted(tmp_path_factory, job)
    solvers = JOB_MAKERS[job][1]
    out = tmp_path / "out"
    r = run_msorch("run", spec, "-o", out)
    assert r.returncode == 0, r.stderr
    first = sorted((out / "checkpoints").glob("checkpoint_*.h5"))[0]
    s = yaml.safe_load(spec.read_text())
    for name, n in ranks.items():
        s["solvers"][name]["ranks"] = n
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(s, sort_keys=False))
    r = run_msorch("run", other, "-o", out, "--restart", str(first))
    assert r.returncode == 0, r.stderr
    n_before = int(first.stem.split("_")[1])   # windows completed at the checkpoint
    for solver in solvers:
        with h5py.File(ref / f"{solver}.h5") as fa, h5py.File(out / f"{solver}.h5") as fb:
            assert np.array_equal(fa["time"][:], fb["time"][:])
            # MD profiles count particles per bin, which jump by one when a particle
            # crosses a bin edge a rounding error later: compare whole-box values there.
            names = [n for n in fa if n not in ("time", "points")] if job == "partitioned_heat" else \
                ["box/potential_energy", "box/kinetic_energy", "box/total_energy", "box/pressure",
                 "box/temperature"]
            for name in names:
                a, b = fa[name][:], fb[name][:]
                k = np.searchsorted(fa["time"][:], fa["time"][0] + n_before * s["time"]["window"] - 1e-9)
                assert np.array_equal(a[:k + 1], b[:k + 1]), f"{name}: rows before the restart changed"
                upto = len(a) if job == "partitioned_heat" else k + 2
                tol = 1e-9 if job == "partitioned_heat" else 1e-8
                np.testing.assert_allclose(b[:upto], a[:upto], rtol=tol, atol=tol * np.abs(a).max())
