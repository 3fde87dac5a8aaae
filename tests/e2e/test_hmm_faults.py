"""HMM farm failures and restart (issue 11, Must show 6), through ``msorch run``.

Micro cells of ``hmm_faulty:FaultyCell`` misbehave for bath temperatures above
0.5 K (the rod's hot end).  References: the run must end (exit 1) naming the
query values, farm rank and exception; degrade with a warning when the spec
allows; and a SIGKILLed run restarted from its checkpoint must reproduce an
uninterrupted run bit for bit, cache and surrogate included.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT, run_msorch
from test_hmm_farm import hmm_stats, rod, run, write_job
from test_restart import kill_everything, start, wait_for_checkpoint


def faulty(mode: str, **pattern):
    def edit(d):
        d["solvers"]["cell"]["kind"] = "hmm_faulty:FaultyCell"
        d["solvers"]["cell"]["params"]["fail"] = mode
        d["patterns"][0].update(pattern)
    return edit


@pytest.mark.parametrize("mode, cause", [("raise", "ValueError: injected failure"),
                                         ("nan", "the answer is not finite")])
def test_a_failing_micro_instance_ends_the_job_naming_query_and_rank(tmp_path, mode, cause):
    t0 = time.monotonic()
    _, r = run(tmp_path, write_job(tmp_path, mode, faulty(mode)), code=1)
    assert time.monotonic() - t0 < 60
    message = r.stderr
    assert "failed twice on farm rank" in message and "query temperature=" in message, message
    assert cause in message and "macro point" in message, message


def test_a_hung_micro_instance_is_named_within_30_s(tmp_path):
    def edit(d):
        faulty("hang")(d)
        d["hang_timeout"] = 4.0
    t0 = time.monotonic()
    _, r = run(tmp_path, write_job(tmp_path, "hang", edit), code=1)
    assert time.monotonic() - t0 < 30 + 10   # + start-up of 4 ranks on a busy machine
    assert "made no progress" in r.stderr and "micro run of query temperature=" in r.stderr, r.stderr
    assert "solver 'cell'" in r.stderr


@pytest.mark.verify   # three runs: in the verify stage
def test_retry_once_then_fallback_with_a_warning(tmp_path):
    """raise_once: every failing query succeeds on its retry: same bits as a clean run, retries
    counted.  raise + on_failure: surrogate: answered by the nearest cached answer, warned, counted."""
    clean, _ = run(tmp_path, write_job(tmp_path, "clean"))
    once, _ = run(tmp_path, write_job(tmp_path, "once", faulty("raise_once")))
    assert np.array_equal(rod(once), rod(clean))
    assert hmm_stats(once)["retries"].sum() > 0
    out, r = run(tmp_path, write_job(tmp_path, "degrade", faulty("raise", on_failure="surrogate")))
    assert "warning" in r.stderr and "answered by the surrogate or the nearest cached answer" in r.stderr
    s = hmm_stats(out)
    assert s["fallback"].sum() > 0 and np.isfinite(rod(out)).all()
    assert "fallback" in r.stdout


def rod_after_kill(out: Path) -> np.ndarray:
    """The rod's results as a killed run left them: once the killed ranks' file locks are gone (a
    moment after exit), as a single-writer/multiple-reader reader if the file is still marked open."""
    deadline = time.monotonic() + 20
    while True:
        for swmr in (False, True):
            try:
                with h5py.File(out / "rod.h5", "r", swmr=swmr) as f:
                    return f["temperature"][:]
            except OSError:
                pass
        assert time.monotonic() < deadline, "rod.h5 stays unreadable after the kill"
        time.sleep(0.2)


def surrogate_job(tmp_path: Path) -> Path:
    def edit(d):
        d["time"]["end"] = 0.04   # 80 windows
        d["patterns"][0]["surrogate"] = {"kind": "gp", "max_std": 2.0e-4, "min_samples": 6}
        d["checkpoint"] = {"every_windows": 20, "keep": 3}
    return write_job(tmp_path, "surrogate", edit)


def test_sigkill_then_restart_is_bitwise_with_cache_and_surrogate(tmp_path):
    """Reference: the same job uninterrupted.  Both the micro runs and the surrogate must have
    answered queries (else the test would not cover the checkpointed cache and GP state)."""
    spec = surrogate_job(tmp_path)
    ref, _ = run(tmp_path, spec)
    s_ref = hmm_stats(ref)
    assert s_ref["surrogate"].sum() > 0 and s_ref["micro"].sum() > 0
    out = tmp_path / "killed"
    proc = start(spec, out)
    wait_for_checkpoint(out, proc)
    kill_everything(proc, spec)
    assert len(rod_after_kill(out)) < len(rod(ref)), "the kill must come before the end"
    r = run_msorch("run", spec, "-o", out, "--restart", "latest", cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert np.array_equal(rod(out), rod(ref))
    s = hmm_stats(out)
    for key in ("window", "asked", "distinct", "micro", "cache", "surrogate", "fallback"):
        assert np.array_equal(s[key], s_ref[key]), key
    assert np.array_equal(s["max_std"], s_ref["max_std"], equal_nan=True)
