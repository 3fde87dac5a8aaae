"""One live run per output directory (issue 10).

A run's processes hold a lock on OUTDIR for their whole life; when ``msorch run``'s
process group is SIGKILLed, its ranks stop within a second (their launcher is
gone), and a restart started at once waits for them instead of racing them.
Reference for the restarts: the same job run to the end in one go, compared
bitwise (``assert_same_results``).
"""
from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path

import pytest

from conftest import run_msorch
from test_restart import assert_same_results, heat_job, start, wait_for_checkpoint


def rank_pids(outdir: Path) -> list[int]:
    """Processes whose command line runs the msorch runtime into ``outdir`` (a /proc scan: no procps)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"msorch.runtime" in argv and str(outdir).encode() in argv:
            pids.append(int(entry.name))
    return pids


def kill_front_end_group(proc) -> float:
    """SIGKILL the front end's process group (front end and mpirun); returns the time of the kill."""
    t = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return t


def test_second_run_on_a_live_outdir_waits_then_names_the_holder(tmp_path):
    spec = heat_job(tmp_path, windows=600, every=1000)
    out = tmp_path / "out"
    proc = start(spec, out)
    try:
        while not (out / "status.json").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        owner = (out / ".msorch-owner.json").read_text()
        t0 = time.monotonic()
        r = run_msorch("run", spec, "-o", out, "--restart", "auto")
        waited = time.monotonic() - t0
        if proc.poll() is None:   # still running: the second run must have been refused
            assert r.returncode == 2, r.stderr
            assert "in use by a live run" in r.stderr and f"pid {proc.pid}" in r.stderr, r.stderr
            assert platform.node() in r.stderr and "'partitioned_heat'" in r.stderr
            assert waited >= 5.0, "gave up without waiting for the holder"
            assert (out / ".msorch-owner.json").read_text() == owner, "the refused run wrote to OUTDIR"
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def race_once(spec: Path, out: Path, ref: Path) -> None:
    proc = start(spec, out)
    wait_for_checkpoint(out, proc)
    time.sleep(0.3)   # a few more checkpoints, so that `keep` deletes old ones while the ranks run
    kill_front_end_group(proc)
    r = run_msorch("run", spec, "-o", out, "--restart", "latest")   # at once, as a user would
    assert r.returncode == 0, r.stderr
    assert "restarting from" in r.stdout
    assert not rank_pids(out)
    assert_same_results(ref, out, ("left", "right"))


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("long_reference")
    spec = heat_job(tmp, windows=300, every=5)
    r = run_msorch("run", spec, "-o", tmp / "out")
    assert r.returncode == 0, r.stderr
    return spec, tmp / "out"


def test_ranks_stop_within_a_second_when_their_launcher_is_killed(long_reference, tmp_path):
    spec, _ = long_reference
    out = tmp_path / "out"
    proc = start(spec, out)
    wait_for_checkpoint(out, proc)
    assert rank_pids(out), "no rank found to watch"
    t_kill = kill_front_end_group(proc)
    while rank_pids(out):
        assert time.monotonic() - t_kill < 1.5, "ranks outlived their mpirun by more than a second"
        time.sleep(0.02)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    time.sleep(0.5)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files


def test_restart_at_once_after_killing_the_front_end_group(long_reference, tmp_path):
    """The race of issue 10, once here; 20 times in a row in the verify stage."""
    spec, ref = long_reference
    for i in range(1):
        race_once(spec, tmp_path / f"out{i}", ref)


@pytest.mark.verify
def test_restart_race_twenty_times_in_a_row(long_reference, tmp_path):
    spec, ref = long_reference
    for i in range(20):
        race_once(spec, tmp_path / f"out{i}", ref)
