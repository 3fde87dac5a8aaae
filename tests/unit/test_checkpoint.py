"""Serial tests of msorch.checkpoint: real HDF5 files on disk, one process (comm=None).

Multi-rank writes are tested in tests/mpi/test_checkpoint_mpi.py.
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

from msorch import checkpoint as ck
from msorch.checkpoint import (COORDINATOR, CheckpointError, find_checkpoints, latest_valid, prune,
                               read_checkpoint, read_solver_states, verify_checkpoint, write_checkpoint)

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "tests" / "mpi" / "scripts" / "ckpt_writer.py"


def many_dtypes() -> dict[str, np.ndarray]:
    """One array of every kind a solver or the coordinator may hold."""
    rng = np.random.default_rng(42)
    pcg = np.random.PCG64(7).state["state"]
    return {
        "time": np.array(0.1 + 0.2),                      # 0-d, a value with an inexact decimal
        "u": rng.standard_normal((7, 3)),
        "ids": rng.integers(-2**63, 2**63 - 1, size=9, dtype=np.int64, endpoint=True),
        "rng": np.array([pcg["state"] & (2**64 - 1), pcg["state"] >> 64, pcg["inc"] & (2**64 - 1),
                         pcg["inc"] >> 64], dtype=np.uint64),
        "empty": np.empty((0, 4)),
        "empty_int": np.zeros(0, dtype=np.int32),
        "nan_inf": np.array([np.nan, -np.inf, np.inf, -0.0]),
        "f32": rng.random((2, 2, 2)).astype(np.float32),
        "f16": rng.random(3).astype(np.float16),
        "c128": rng.random(4) + 1j * rng.random(4),
        "mask": rng.random(6) > 0.5,
        "u8": np.arange(256, dtype=np.uint8),
        "big_endian": np.arange(3, dtype=">i4"),
        "strided": np.arange(20.0).reshape(4, 5)[:, ::2],  # not contiguous in memory
        "labels": np.array(["alpha", "β", ""]),           # unicode: stored as raw bytes
        "label0": np.array("scalar"),                     # 0-d unicode
        "when": np.array(["2026-11-26T09:00", "NaT"], dtype="M8[ms]"),
        "record": np.array([(1.5, [1, 2]), (2.5, [3, 4])], dtype=[("x", "<f8"), ("n", "<i4", (2,))]),
        "longdouble": np.array([1 / 3], dtype=np.longdouble),
    }


def assert_bitwise(got: dict, want: dict) -> None:
    assert list(got) == list(want)                        # keys, in insertion order
    for k in want:
        w = np.asarray(want[k])
        assert got[k].dtype == w.dtype, k
        assert got[k].shape == w.shape, k
        assert got[k].tobytes() == w.tobytes(), k
        # same byte-order spelling ('=' not '<'): it sets the buffer format ('d' or '<d'),
        # and mpi4py's Send/Recv reject '<d'
        assert got[k].dtype.byteorder == w.dtype.byteorder, k


def write(directory, index, state=None, meta=None, **kw) -> Path:
    state = many_dtypes() if state is None else state
    return write_checkpoint(None, directory, index, solver=None, group_rank=0, state=state,
                            meta={"window": index} if meta is None else meta, **kw)


def test_roundtrip_one_rank_all_dtypes(tmp_path):
    """Every dtype/shape round-trips bitwise, keys keep their order, meta and index come back."""
    meta = {"spec": "name: x\n" * 10_000, "window": 3, "time": 0.30000000000000004}   # > 64 KiB attribute
    path = write(tmp_path, 3, meta=meta)
    assert path == tmp_path / "checkpoint_000003.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000003.h5"]   # no temporary left
    got = read_checkpoint(path)
    assert got.index == 3 and got.meta == meta and got.layout == {} and got.solvers == {}
    assert_bitwise(got.coordinator, many_dtypes())
    assert_bitwise(read_checkpoint(path, solver=COORDINATOR).state(None), many_dtypes())
    verify_checkpoint(path)


def test_roundtrip_one_solver_rank_and_slabs(tmp_path, monkeypatch):
    """A lone solver rank (no coordinator); arrays split into many slabs (SLAB_BYTES = 1000)
    are written, checksummed and read back piecewise exactly as written in one piece, and a
    damaged last byte is still caught by the slab-wise verification."""
    monkeypatch.setattr(ck, "SLAB_BYTES", 1000)
    state = {"u": np.random.default_rng(1).random((300, 7)), "v": np.arange(5000, dtype=np.int16)}
    path = write_checkpoint(None, tmp_path, 1, solver="left", group_rank=0, state=state)
    with h5py.File(path, "r") as f:   # the stored checksum is that of the whole array
        assert int(f["solvers/left/rank0/u"].attrs["crc32"]) == ck._crc(state["u"])
    ckpt = read_checkpoint(path, solver="left", group_rank=0)
    assert ckpt.layout == {"left": 1} and ckpt.coordinator is None
    assert_bitwise(ckpt.state("left", 0), state)
    assert_bitwise(read_solver_states(path, "left")[0], state)
    verify_checkpoint(path)
    flip_byte(path, "solvers/left/rank0/u", at=state["u"].nbytes - 1)   # in the last slab
    with pytest.raises(CheckpointError, match="rank0/u: checksum mismatch"):
        verify_checkpoint(path)


def test_layout_is_documented_and_readable_without_msorch(tmp_path):
    """The file is plain HDF5: the documented paths and attributes are there for h5py/h5dump."""
    path = write(tmp_path, 0, state={"u": np.arange(3.0), "s": np.array(["ab"])})
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "msorch-checkpoint" and f.attrs["format_version"] == 1
        assert f.attrs["complete"] == 1 and f.attrs["checksum"] == "crc32"
        assert np.array_equal(f["coordinator/u"][()], np.arange(3.0))
        assert f["coordinator/u"].chunks is None and f["coordinator/u"].compression is None
        assert f["coordinator/s"].attrs["numpy_dtype"] == "'<U2'"


def flip_byte(path: Path, dataset: str, at: int = 0) -> None:
    """Invert one byte of ``dataset``'s raw data in the file."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset() + at
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_flipped_byte_refused_names_file_and_dataset(tmp_path):
    """One flipped bit pattern in /coordinator/u: reading or verifying fails naming file and dataset;
    latest_valid falls back to the previous checkpoint and says why it skipped the newer one."""
    good = write(tmp_path, 1)
    bad = write(tmp_path, 2)
    flip_byte(bad, "coordinator/u", at=17)
    for call in (lambda: read_checkpoint(bad), lambda: verify_checkpoint(bad)):
        with pytest.raises(CheckpointError) as err:
            call()
        assert str(bad) in str(err.value) and "/coordinator/u" in str(err.value)
        assert "checksum mismatch" in str(err.value)
    assert find_checkpoints(tmp_path) == [bad, good]      # structurally complete, data damaged
    path, skipped = latest_valid(tmp_path)
    assert path == good
    assert len(skipped) == 1 and str(bad) in skipped[0] and "/coordinator/u" in skipped[0]
    assert latest_valid(tmp_path, verify=False) == (bad, [])   # cheap mode does not read data


def test_flipped_byte_only_hurts_the_part_that_holds_it(tmp_path):
    """Per-dataset checksums: a reader of an intact part is not refused."""
    write_checkpoint(None, tmp_path, 1, solver="a", group_rank=0, state={"x": np.arange(100.0), "y": np.ones(50)})
    path = tmp_path / "checkpoint_000001.h5"
    flip_byte(path, "solvers/a/rank0/y", at=3)
    with pytest.raises(CheckpointError, match=r"dataset /solvers/a/rank0/y: checksum mismatch"):
        read_checkpoint(path, solver="a", group_rank=0)
    assert read_checkpoint(path, solver="a", verify=False).state("a")["x"].tobytes() == np.arange(100.0).tobytes()


def test_truncated_refused_and_skipped(tmp_path):
    """A file cut in half is refused as truncated (naming the file), is not listed as complete,
    and latest_valid falls back to the previous one."""
    good = write(tmp_path, 4)
    bad = write(tmp_path, 5, state={**many_dtypes(), "big": np.arange(200_000.0)})
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size // 2)
    with pytest.raises(CheckpointError, match="truncated") as err:
        read_checkpoint(bad)
    assert str(bad) in str(err.value)
    assert find_checkpoints(tmp_path) == [good]
    path, skipped = latest_valid(tmp_path)
    assert path == good and len(skipped) == 1 and str(bad) in skipped[0] and "truncated" in skipped[0]


def test_not_hdf5_and_incomplete_refused(tmp_path):
    """Garbage under a checkpoint name, and a file whose 'complete' marker is missing, are refused."""
    (tmp_path / "checkpoint_000009.h5").write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(CheckpointError, match="truncated or not an HDF5 file"):
        verify_checkpoint(tmp_path / "checkpoint_000009.h5")
    p = write(tmp_path, 8)
    with h5py.File(p, "r+") as f:
        del f.attrs["complete"]
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        read_checkpoint(p)
    assert find_checkpoints(tmp_path) == []
    with pytest.raises(CheckpointError, match="no valid checkpoint") as err:
        latest_valid(tmp_path)
    assert "checkpoint_000009.h5" in str(err.value) and "checkpoint_000008.h5" in str(err.value)


def test_unsaveable_state_leaves_no_file(tmp_path):
    """Object arrays and keys with '/' are refused before anything is written."""
    write(tmp_path, 1)
    for state in ({"obj": np.array([{}, []], dtype=object)}, {"a/b": np.zeros(2)}):
        with pytest.raises(CheckpointError, match="cannot write checkpoint"):
            write(tmp_path, 2, state=state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000001.h5"]


def test_inconsistent_rank_layout_refused(tmp_path):
    """A lone rank claiming group rank 1 of a 1-rank group, or no valid group rank, is refused."""
    for group_rank, words in [(1, r"group ranks \[1\] are not 0..0"), (None, "group_rank must be an int")]:
        with pytest.raises(CheckpointError, match=words):
            write_checkpoint(None, tmp_path, 0, solver="a", group_rank=group_rank, state={"x": np.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_missing_parts_refused(tmp_path):
    path = write_checkpoint(None, tmp_path, 0, solver="a", group_rank=0, state={"x": np.zeros(1)})
    with pytest.raises(CheckpointError, match="no solver 'b'"):
        read_checkpoint(path, solver="b")
    with pytest.raises(CheckpointError, match="no group rank 1"):
        read_checkpoint(path, solver="a", group_rank=1)
    with pytest.raises(CheckpointError, match="no coordinator state"):
        read_checkpoint(path, solver=COORDINATOR)


def test_find_and_prune_keep_newest(tmp_path):
    """Newest = highest index, whatever the write order; prune keeps exactly the newest K and
    removes temporaries of crashed older writes, not other files."""
    for i in (3, 11, 7, 1, 9):
        write(tmp_path, i, state={"i": np.array(i)})
    (tmp_path / ".checkpoint_000002.h5.tmp").write_bytes(b"crashed")
    (tmp_path / ".checkpoint_000012.h5.tmp").write_bytes(b"maybe in progress")
    (tmp_path / "notes.txt").write_text("keep me")
    assert [p.name for p in find_checkpoints(tmp_path)] == [f"checkpoint_{i:06d}.h5" for i in (11, 9, 7, 3, 1)]
    deleted = prune(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == [".checkpoint_000002.h5.tmp", "checkpoint_000001.h5",
                                               "checkpoint_000003.h5", "checkpoint_000007.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".checkpoint_000012.h5.tmp", "checkpoint_000009.h5", "checkpoint_000011.h5", "notes.txt"]
    assert prune(tmp_path, keep=2) == []
    write(tmp_path, 12, state={"i": np.array(12)}, keep=1)   # write_checkpoint(keep=) prunes too
    assert [p.name for p in find_checkpoints(tmp_path)] == ["checkpoint_000012.h5"]
    assert read_checkpoint(tmp_path / "checkpoint_000012.h5").coordinator["i"] == 12
    with pytest.raises(ValueError):
        prune(tmp_path, keep=0)


def test_writer_killed_mid_write_leaves_no_complete_file(tmp_path):
    """SIGKILL a process while it writes a 400 MB checkpoint: only the temporary name exists,
    find_checkpoints lists just the previous checkpoint, which still verifies; a later write of
    the same index succeeds over the leftover."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, str(WRITER), str(tmp_path), "1", "4"], check=True, env=env,
                   capture_output=True, timeout=60)
    previous = tmp_path / "checkpoint_000001.h5"
    tmp = tmp_path / ".checkpoint_000002.h5.tmp"
    proc = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path), "2", "400"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp.exists() and tmp.stat().st_size > 16 * 2**20):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "writer never started writing"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    try:
        assert proc.returncode == -signal.SIGKILL
        assert tmp.exists(), "the kill landed after the rename: no mid-write crash was tested"
        assert not (tmp_path / "checkpoint_000002.h5").exists()
        assert find_checkpoints(tmp_path) == [previous]
        assert latest_valid(tmp_path) == (previous, [])
        assert read_checkpoint(previous).meta == {"index": 1}
        path = write(tmp_path, 2, state={"x": np.zeros(3)})
        assert find_checkpoints(tmp_path) == [path, previous] and not tmp.exists()
    finally:
        tmp.unlink(missing_ok=True)   # up to 400 MB; pytest keeps old tmp_path directories
