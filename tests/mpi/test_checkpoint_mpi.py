"""msorch.checkpoint on real MPI ranks (mpirun fixture from tests/conftest.py).

Layout used (tests/mpi/scripts/ckpt_states.py): world rank 0 coordinator, rank 1 solver "a"
(1 rank), ranks 2-3 solver "b" (2 ranks, group ranks in reverse world order).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from msorch.checkpoint import CheckpointError, find_checkpoints, latest_valid, read_checkpoint

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _load_states():
    # by path, not via sys.path: the scripts folder holds other areas' modules too
    spec = importlib.util.spec_from_file_location("ckpt_states", SCRIPTS / "ckpt_states.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_states = _load_states()
LAYOUT, make_state, same = _states.LAYOUT, _states.make_state, _states.same


def check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("slab", ["default", "96"])
@pytest.mark.parametrize("strategy", ["mpio", "gather"])
def test_roundtrip_four_ranks(mpirun, tmp_path, strategy, slab):
    """Coordinator + 1-rank solver + 2-rank solver write 3 checkpoints (keep=2); every rank reads
    its own part back and rank 0 reads everything: bitwise equal (float64, int64, uint64 RNG
    words, bool, float32, unicode, empty arrays with rank-dependent shapes, 0-d arrays).
    With slab=96 every array bigger than 96 bytes is written/sent in several pieces.
    Then, in this (serial h5py) process: the file written in parallel verifies, and a flipped byte
    in solver b rank 1 is refused for that rank only."""
    args = [str(SCRIPTS / "ckpt_roundtrip.py"), str(tmp_path), strategy] + ([slab] if slab != "default" else [])
    out = check(mpirun(4, args, timeout=120))
    assert "ROUNDTRIP OK" in out
    newest, older = find_checkpoints(tmp_path)
    assert (newest.name, older.name) == ("checkpoint_000002.h5", "checkpoint_000001.h5")
    ckpt = read_checkpoint(newest)
    for s, r in LAYOUT.values():
        assert same(ckpt.state(s, r), make_state(s, r)) == []
    with h5py.File(newest, "r") as f:
        offset = f["solvers/b/rank1/u"].id.get_offset()
    with open(newest, "r+b") as fh:
        fh.seek(offset + 5)
        byte = fh.read(1)
        fh.seek(offset + 5)
        fh.write(bytes([byte[0] ^ 0x01]))
    assert same(read_checkpoint(newest, solver="b", group_rank=0).state("b", 0), make_state("b", 0)) == []
    with pytest.raises(CheckpointError, match=r"checkpoint_000002\.h5: dataset /solvers/b/rank1/u: checksum"):
        read_checkpoint(newest, solver="b", group_rank=1)
    assert latest_valid(tmp_path)[0] == older


@pytest.mark.parametrize("strategy", ["mpio", "gather"])
def test_bad_state_on_one_rank_raises_everywhere(mpirun, tmp_path, strategy):
    """An object array, a key missing in a group, or a duplicated group rank on one rank makes
    all 4 ranks raise CheckpointError (no rank hangs in a collective) and leaves no file."""
    out = check(mpirun(4, [str(SCRIPTS / "ckpt_errors.py"), str(tmp_path), strategy], timeout=120))
    for case, words in [("object", "world rank 3"), ("keys", "keys must match"), ("ranks", "group ranks [0, 0]")]:
        lines = [ln for ln in out.splitlines() if ln.startswith(f"RAISED {case} ")]
        assert len(lines) == 4, out
        assert all(words in ln and "checkpoint_000001.h5" in ln for ln in lines), lines
    assert "NOT RAISED" not in out
    assert "FILES []" in out


def test_parallel_writer_killed_mid_write(tmp_path):
    """SIGKILL the whole mpirun job (its process group) while 3 ranks write 400 MB with MPI-IO:
    the previous checkpoint stays the newest complete one and still verifies."""
    from conftest import mpi_env  # the fixture's environment (root, oversubscribe, PYTHONPATH)

    writer = str(SCRIPTS / "ckpt_writer.py")
    cmd = ["mpirun", "--oversubscribe", "-n", "3", sys.executable, writer, str(tmp_path)]
    subprocess.run(cmd + ["1", "4", "mpi"], check=True, capture_output=True, timeout=120, env=mpi_env())
    previous = tmp_path / "checkpoint_000001.h5"
    tmp = tmp_path / ".checkpoint_000002.h5.tmp"
    proc = subprocess.Popen(cmd + ["2", "400", "mpi"], env=mpi_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # MPI-IO allocates the whole file up front: wait until data is arriving in it
        while not (tmp.exists() and os.stat(tmp).st_blocks * 512 > 32 * 2**20):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "writer never started writing"
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # mpirun and its ranks: the group we started
        proc.wait()
    try:
        assert tmp.exists(), "the kill landed after the rename: no mid-write crash was tested"
        assert find_checkpoints(tmp_path) == [previous]
        assert latest_valid(tmp_path) == (previous, [])
        assert read_checkpoint(previous).meta == {"index": 1}
    finally:
        tmp.unlink(missing_ok=True)   # up to 400 MB; pytest keeps old tmp_path directories


def test_one_rank_under_mpirun(mpirun, tmp_path):
    """Under mpirun -n 1 Debian's h5py loads its MPI build; a 1-rank COMM_WORLD write (the
    coordinator alone) still goes through and reads back in this serial-h5py process."""
    out = check(mpirun(1, [str(SCRIPTS / "ckpt_writer.py"), str(tmp_path), "3", "1", "mpi"], timeout=60))
    assert "DONE" in out
    ckpt = read_checkpoint(tmp_path / "checkpoint_000003.h5")
    assert ckpt.layout == {} and ckpt.meta == {"index": 3}
    assert ckpt.coordinator["marker"].dtype == np.int64 and ckpt.coordinator["marker"] == 3
