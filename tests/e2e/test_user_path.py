"""The user's path as the README tells it: the installed ``msorch`` command, run from
directories outside the repository, with no PYTHONPATH.

Covers: a user's solver module beside the spec (issue 9.1), output directories that
would mix or overwrite runs (9.2), ``--restart latest`` (strict) and ``auto`` (9.3),
a folder named ``msorch`` in the working directory (9.4), ``msorch status`` without
SLURM (9.5), a front end that never initializes MPI and failures before the
coordinator starts that say why (issue 8).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import MPI_ENV, ROOT

MSORCH = Path(sys.executable).with_name("msorch")
JOBS = ROOT / "jobs"


def user_env(**extra) -> dict:
    """A user's shell: the MPI settings of this machine, no PYTHONPATH, no MPI job variables."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("PMIX_", "OMPI_COMM_WORLD", "OMPI_MCA_ess"))}
    env.update(MPI_ENV, **extra)
    return env


def user(*args, cwd, timeout=300, **extra) -> subprocess.CompletedProcess:
    """``msorch ARGS`` as a user types it in ``cwd``."""
    return subprocess.run([str(MSORCH), *map(str, args)], cwd=cwd, env=user_env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def readme_solver() -> str:
    """The Python block of the README's "Your own solver" section, as a user would copy it."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Your own solver"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


GROW_SPEC = """name: grow
time: {start: 0.0, end: 0.5, window: 0.1}
solvers:
  a: {kind: "mysolver:Decay", dt: 0.01, params: {rate: 2.0}}
  b: {kind: "mysolver:Decay", dt: 0.01, params: {rate: 3.0, initial: 0.0}}
couplings:
  - {from: a.u, to: b.g}
  - {from: b.u, to: a.g}
scheme: {kind: explicit, staggering: parallel}
"""


@pytest.fixture
def user_solver_dir(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "mysolver.py").write_text(readme_solver())
    (d / "grow.yaml").write_text(GROW_SPEC)
    return d


def test_readme_user_solver_beside_the_spec_runs_without_pythonpath(user_solver_dir, tmp_path):
    """The README's solver, saved as mysolver.py beside grow.yaml: found from the spec's own directory
    (front end and every rank), whether msorch runs there or elsewhere."""
    r = user("run", "grow.yaml", "-o", "out", cwd=user_solver_dir)
    assert r.returncode == 0, r.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = user("run", user_solver_dir / "grow.yaml", "-o", "out", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    with h5py.File(user_solver_dir / "out" / "results.h5") as f, h5py.File(elsewhere / "out" / "results.h5") as g:
        assert np.array_equal(f["a/u"][:], g["a/u"][:])
        assert f["a/u"][-1, 0] < 1.0   # it decayed: the user's class really ran


def test_folder_named_msorch_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    """A clone or folder called msorch (or solvers) where the user works: ranks and front end
    still import the installed package, and the run writes its results."""
    for name in ("msorch", "solvers", "couplings"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the shadow package was imported')\n")
    r = user("run", JOBS / "partitioned_heat.yaml", "-o", "msorch/out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "msorch" / "out" / "results.h5").exists()


def test_output_directory_holds_one_run(tmp_path):
    """Another job's run, or a finished run, is never mixed into or replaced silently (exit 2,
    nothing touched); --overwrite removes the old run's files first; --restart continues."""
    out = tmp_path / "out"
    assert user("run", JOBS / "partitioned_heat.yaml", "-o", out, cwd=tmp_path).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    r = user("run", JOBS / "idm_ring.yaml", "-o", out, cwd=tmp_path)
    assert r.returncode == 2
    assert "another job, 'partitioned_heat'" in r.stderr and "--overwrite" in r.stderr, r.stderr
    r = user("run", JOBS / "partitioned_heat.yaml", "-o", out, cwd=tmp_path)
    assert r.returncode == 2 and "finished run of 'partitioned_heat'" in r.stderr, r.stderr
    r = user("run", JOBS / "idm_ring.yaml", "-o", out, "--restart", "latest", cwd=tmp_path)
    assert r.returncode == 2 and "same job" in r.stderr, r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before, "a refused run touched OUTDIR"

    r = user("run", JOBS / "idm_ring.yaml", "-o", out, "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert "left.h5" not in names and "right.h5" not in names and {"ring.h5", "results.h5"} <= names
    with h5py.File(out / "results.h5") as f:
        assert f.attrs["job"] == "idm_ring"


def test_restart_latest_is_strict_and_auto_is_lenient(tmp_path):
    """--restart latest without a checkpoint: exit 2 "no usable checkpoint", nothing run;
    --restart auto: starts from the beginning (what a requeued batch job needs)."""
    r = user("run", JOBS / "decay_pair.yaml", "-o", "out", "--restart", "latest", cwd=tmp_path)
    assert r.returncode == 2 and "no usable checkpoint" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "results.h5").exists()
    r = user("run", JOBS / "decay_pair.yaml", "-o", "out", "--restart", "auto", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "results.h5").exists()


def test_status_without_slurm_says_so_in_one_line(tmp_path):
    out = tmp_path / "out"
    assert user("run", JOBS / "decay_pair.yaml", "-o", out, cwd=tmp_path).returncode == 0
    (out / "slurm_jobs.txt").write_text("12345\n")
    env = {k: v for k, v in user_env().items() if k != "SLURM_CONF"}
    if Path("/etc/slurm/slurm.conf").exists():   # a site cluster here: point at none instead
        (tmp_path / "empty.conf").write_text("")
        env["SLURM_CONF"] = str(tmp_path / "empty.conf")
    r = subprocess.run([str(MSORCH), "status", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "run: decay_pair finished" in r.stdout
    lines = [line for line in r.stdout.splitlines() if "slurm" in line.lower()]
    assert len(lines) == 1 and "SLURM could not be reached" in lines[0] and "SLURM_CONF" in lines[0], r.stdout
    assert "error:" not in r.stdout and r.stderr == ""


def test_front_end_never_initializes_mpi():
    """Validating every shipped job imports every solver plugin; MPI must stay uninitialized
    (an MPI singleton in the front end leaks its variables into sbatch and mpirun)."""
    code = ("import sys\n"
            "from msorch.cli import main\n"
            "for job in sys.argv[1:]:\n"
            "    assert main(['validate', job]) == 0, job\n"
            "from mpi4py import MPI\n"
            "print('initialized' if MPI.Is_initialized() else 'not initialized')\n"
            "print('petsc imported' if 'petsc4py.PETSc' in sys.modules else 'no petsc')\n")
    jobs = sorted(map(str, JOBS.glob("*.yaml")))
    r = subprocess.run([sys.executable, "-c", code, *jobs], env=user_env(), capture_output=True, text=True,
                       timeout=300, cwd=ROOT.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == ["not initialized", "no petsc"], r.stdout


RANK_ONLY_FAILURE = '''
import os
from msorch.solver import Solver
if os.environ.get("OMPI_COMM_WORLD_RANK"):
    raise RuntimeError("this plugin cannot load on rank " + os.environ["OMPI_COMM_WORLD_RANK"])
class Fragile(Solver):
    outputs = ("out",)
'''


def test_failure_before_the_coordinator_starts_says_why(tmp_path):
    """A rank that dies while loading the spec (before any coordinator exists) is reported with
    its exception, not only "the MPI job ended with exit code 1"."""
    (tmp_path / "fragile.py").write_text(RANK_ONLY_FAILURE)
    (tmp_path / "f.yaml").write_text("time: {start: 0.0, end: 0.2, window: 0.1}\n"
                                     "solvers: {a: {kind: 'fragile:Fragile', ranks: 2}}\n")
    r = user("run", "f.yaml", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1
    last = [line for line in r.stderr.splitlines() if line.startswith("msorch: error:")][-1]
    assert "RuntimeError: this plugin cannot load on rank" in last, r.stderr
    assert re.search(r"world rank \d", last), last
