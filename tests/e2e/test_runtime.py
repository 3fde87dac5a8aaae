"""The msorch command end to end on real MPI ranks: launch, schedules, failures.

Solvers here are ``test.null`` (out = in + offset) and ``faulty:Faulty``, so the
expected values follow from a few lines of arithmetic written in each test.
"""
from __future__ import annotations

import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import mpi_env, ROOT

PAIR = """name: pair
time: {{start: 0.0, end: {end}, window: 0.1}}
solvers:
  a: {{kind: {kind_a}, ranks: {ranks_a}, params: {{n: {n}, offset: 1.0{params_a}}}}}
  b: {{kind: {kind_b}, ranks: {ranks_b}, dt: {dt_b}, params: {{n: {n}{params_b}}}}}
couplings:
  - {{from: a.out, to: b.in}}
  - {{from: b.out, to: a.in}}
scheme: {{kind: explicit, staggering: {staggering}}}
hang_timeout: {hang}
"""


def pair(tmp_path, end=1.0, kind_a="test.null", kind_b="test.null", ranks_a=1, ranks_b=2, n=7, dt_b=0.1,
         staggering="serial", params_a="", params_b="", hang=60):
    path = tmp_path / "pair.yaml"
    path.write_text(PAIR.format(**locals()))
    return path


def test_validate_prints_layout(msorch, tmp_path):
    r = msorch("validate", pair(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "ranks: 4 (rank 0: coordinator; ranks 1: a; ranks 2-3: b)" in r.stdout


def test_invalid_spec_fails_before_launch_with_exit_2(msorch, tmp_path):
    spec = pair(tmp_path, ranks_b="two")
    r = msorch("run", spec, "-o", tmp_path / "out")
    assert r.returncode == 2
    assert "solvers.b.ranks" in r.stderr
    assert not (tmp_path / "out").exists(), "nothing may be launched or written for an invalid spec"


def test_dry_run_prints_the_launch_line(msorch, tmp_path):
    r = msorch("run", pair(tmp_path), "-o", tmp_path / "out", "--dry-run")
    assert r.returncode == 0
    assert r.stdout.startswith("mpirun -n 4 ")
    assert "-m msorch.runtime" in r.stdout


def test_in_place_with_the_wrong_size_says_so(tmp_path):
    spec = pair(tmp_path)
    cmd = ["mpirun", "--oversubscribe", "-n", "2", sys.executable, "-m", "msorch", "run", str(spec),
           "-o", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=mpi_env())
    assert r.returncode == 2
    assert "started under MPI with 2 ranks" in r.stderr and "needs 4" in r.stderr


def test_in_place_with_the_right_size_runs(tmp_path):
    spec = pair(tmp_path, ranks_b=1)
    cmd = ["mpirun", "--oversubscribe", "-n", "3", sys.executable, "-m", "msorch", "run", str(spec),
           "-o", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=mpi_env())
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        assert f["a/out"][-1, 0] == 10.0


def test_explicit_serial_with_subcycling_and_m_to_n(msorch, tmp_path):
    """Serial staggering a -> b, b sub-cycled twice per window on 2 ranks, a on 1.

    Reference by hand: a.out = a.in + 1, with a.in = b's value at the end of the
    previous window; b reads a's waveform linearly interpolated inside the window
    (half-way value at its first sub-step) and b.out = b.in.  So at the end of
    window w both equal w, and b's mid-window sample is w - 0.5.
    """
    r = msorch("run", pair(tmp_path, dt_b=0.05), "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        assert np.allclose(f["a/time"][:], np.linspace(0, 1, 11))
        np.testing.assert_array_equal(f["a/out"][:], np.arange(11.0)[:, None] * np.ones((1, 7)))
        np.testing.assert_array_equal(f["b/out"][:], np.arange(11.0)[:, None] * np.ones((1, 7)))
        assert f["b/points"].shape == (7, 1)
        assert list(f["coupling/iterations"][:]) == [1] * 10
    status = msorch("status", tmp_path / "out")
    assert "run: pair finished, 10/10 windows, t = 1 s" in status.stdout


def test_explicit_parallel_lags_one_window(msorch, tmp_path):
    """Parallel (Jacobi) staggering: each solver reads the other's previous window.

    Reference recursion: a_{w+1} = b_w + 1, b_{w+1} = a_w, a_0 = b_0 = 0.
    """
    r = msorch("run", pair(tmp_path, staggering="parallel", n=5, ranks_a=2, ranks_b=3), "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    a, b = [0.0], [0.0]
    for _ in range(10):
        a, b = a + [b[-1] + 1], b + [a[-1]]
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        np.testing.assert_array_equal(f["a/out"][:, 0], a)
        np.testing.assert_array_equal(f["b/out"][:, 0], b)


@pytest.mark.parametrize("mode, expected", [
    ("raise", "solver 'b' rank 1 (world rank 3) failed in window 1 during advance: ValueError: injected failure"),
    ("kill", "solver 'b' rank 1 (world rank 3) was killed by signal 9"),
    ("nan", "non-finite value(s) (NaN/Inf) in output field 'out' in window 1"),
])
def test_a_failing_rank_ends_the_job_with_a_message(msorch, tmp_path, mode, expected):
    """An exception, a SIGKILL or NaN output in rank 1 of a 2-rank solver (4 ranks in all)."""
    spec = pair(tmp_path, end=100.0, kind_b="faulty:Faulty", params_b=f", mode: {mode}, at_step: 1, rank: 1")
    start = time.monotonic()
    r = msorch("run", spec, "-o", tmp_path / "out", timeout=120)
    assert r.returncode == 1
    assert expected in r.stderr, r.stderr
    assert time.monotonic() - start < 30
    if mode != "kill":   # a killed rank takes the coordinator with it before it can write
        status = msorch("status", tmp_path / "out")
        assert "pair failed" in status.stdout and expected in status.stdout


def test_a_hanging_rank_is_reported_after_the_hang_timeout(msorch, tmp_path):
    spec = pair(tmp_path, end=100.0, kind_b="faulty:Faulty", params_b=", mode: hang, at_step: 1, rank: 1", hang=10)
    start = time.monotonic()
    r = msorch("run", spec, "-o", tmp_path / "out", timeout=120)
    elapsed = time.monotonic() - start
    assert r.returncode == 1
    assert "solver 'b' rank 1" in r.stderr and "no progress for 10 s" in r.stderr, r.stderr
    assert elapsed < 30


def test_a_window_longer_than_the_hang_timeout_is_not_a_hang(msorch, tmp_path):
    """b takes 10 steps of 0.3 s per window (3 s) with hang_timeout 2 s: each step is
    progress, and a waiting for b meanwhile is not hung."""
    spec = pair(tmp_path, end=0.2, kind_b="faulty:Faulty", dt_b=0.01, params_b=", sleep: 0.3", hang=2, n=3)
    r = msorch("run", spec, "-o", tmp_path / "out", timeout=120)
    assert r.returncode == 0, r.stderr
