"""Checkpoints: one HDF5 file per checkpoint, written collectively, atomically, with checksums.

A checkpoint holds the coordinator's state and every solver rank's ``state()`` at one
instant, plus the run's metadata. It knows nothing of physics: a state is a
``dict[str, numpy.ndarray]`` of any dtype and shape (empty and 0-d arrays included).

File layout (``format_version`` 1)
----------------------------------
::

    checkpoint_000042.h5
    /                                   attrs: format = "msorch-checkpoint", format_version = 1,
                                               index, created (ISO 8601 UTC), checksum = "crc32",
                                               meta (JSON text from rank 0), layout (JSON {solver: group size}),
                                               complete = 1 (set last, just before the final flush)
    /coordinator/<key>                  the coordinator's state (the rank that passed solver=None)
    /solvers/<name>/rank<r>/<key>       group rank r of solver <name>; the rank group has attr world_rank
    every dataset                       attr crc32 = zlib.crc32 of the array's raw C-order bytes as stored

Arrays of dtype bool, int/uint (1-8 bytes), float (2, 4, 8 bytes) or complex (8, 16 bytes) are
stored natively (readable by ``h5dump``). Any other dtype without Python objects (unicode,
datetime64, structured, long double...) is stored as ``uint8`` with a trailing axis of length
``itemsize`` and attr ``numpy_dtype`` = ``repr(numpy.lib.format.dtype_to_descr(dtype))``, so every
state round-trips bitwise. Groups keep insertion order (``track_order``), so keys come back in
the order they were written. Big arrays are contiguous (no chunking, no compression).

Atomicity
---------
The file is written as ``.checkpoint_<index>.h5.tmp`` in the same directory. Once every rank's
data is written, the ``complete`` attribute is set, the file is flushed (``MPI_File_sync`` on the
MPI-IO driver) and closed; then rank 0 ``fsync``s the file, renames it to its final name and
``fsync``s the directory. A crash at any point before the rename leaves only the temporary name,
which :func:`find_checkpoints` never lists; a crash after it leaves a complete file.

Parallel writing and the Debian h5py
------------------------------------
Debian ships two h5py builds, ``h5py._debian_h5py_serial`` and ``h5py._debian_h5py_mpi``
(package ``python3-h5py-mpi``). ``import h5py`` picks the MPI build when the process runs under
an MPI launcher (env ``OMPI_COMM_WORLD_SIZE`` for Open MPI or ``MPI_LOCALNRANKS`` for MPICH is
set) or when ``H5PY_ALWAYS_USE_MPI`` is set, else the serial build; ``h5py.get_config().mpi`` tells
which one was loaded. This module only does ``import h5py`` and never imports a build directly
(loading both HDF5 libraries into one process is asking for trouble).

With the MPI build and more than one rank, the ``"mpio"`` strategy is used: the ranks'
key/shape/dtype lists are exchanged with one small ``allgather``; every rank creates all groups
and datasets in the same order (HDF5 metadata writes are collective); each rank writes its own
arrays independently, in contiguous writes of up to ``SLAB_BYTES``, computing the crc32 slab by
slab; a second small ``allgather`` exchanges checksums and error flags, which every rank then
writes as attributes, followed by the ``complete`` marker. Otherwise (serial h5py, e.g. a script
started without ``mpirun``, or one rank) the ``"gather"`` strategy is used: ranks ``Send`` their
arrays in slabs of at most ``SLAB_BYTES`` to rank 0, which writes them serially; rank 0 then
needs one slab of memory, not the whole state, and checksums are still computed by the owners.

A bad state on any rank (object dtype, a key containing '/', keys differing within a group,
duplicate group ranks) is detected after the first ``allgather`` and raises
:class:`CheckpointError` on every rank, so no rank is left waiting in a collective.

Reading needs no MPI: any process opens the file read-only with the default driver and reads
only the groups it asks for, checking each dataset's crc32. On file systems without ``flock``
(some NFS/Lustre mounts) set ``HDF5_USE_FILE_LOCKING=FALSE`` in the job's environment.
"""
from __future__ import annotations

import ast
import datetime
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

__all__ = [
    "COORDINATOR", "FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError",
    "write_checkpoint", "read_checkpoint", "read_solver_states", "find_checkpoints",
    "latest_valid", "verify_checkpoint", "prune", "checkpoint_name",
]

FORMAT = "msorch-checkpoint"
FORMAT_VERSION = 1
#: Name for the coordinator's part in :func:`read_checkpoint` (the spec forbids it as a solver name).
COORDINATOR = "coordinator"
#: Largest single write/read/message [bytes]; keeps MPI counts and HDF5 I/O requests below 2 GiB.
SLAB_BYTES = 256 * 2**20

_NAME_RE = re.compile(r"^checkpoint_(\d{6,})\.h5$")
_TMP_RE = re.compile(r"^\.checkpoint_(\d{6,})\.h5\.tmp$")
_KEY_RE = re.compile(r"^[^/.][^/]*$")
# HDF5 stores these natively and h5py reads them back with the same dtype and bytes.
_NATIVE = {("b", 1), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("u", 8),
           ("f", 2), ("f", 4), ("f", 8), ("c", 8), ("c", 16)}
# v108 lower bound: attributes over 64 KiB (long spec text in meta) go to dense storage.
_LIBVER = ("v108", "v110")
# Align big datasets to 1 MiB: whole pages locally, whole stripes on Lustre/GPFS.
_ALIGN = {"alignment_threshold": 4 * 2**20, "alignment_interval": 2**20}
_TAG = 7301


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, or a file is not a complete, intact checkpoint.

    The message names the file and, where one is at fault, the dataset.
    """


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`read_checkpoint` returns.

    Attributes
    ----------
    path : Path
    index : int
        The ``index`` passed to :func:`write_checkpoint`.
    meta : dict
        Rank 0's ``meta`` (decoded JSON).
    layout : dict[str, int]
        Solver name -> group size at write time.
    coordinator : dict[str, np.ndarray] or None
        The coordinator's state, if it was requested (and present).
    solvers : dict[str, dict[int, dict[str, np.ndarray]]]
        Solver -> group rank -> state, for what was requested.
    """

    path: Path
    index: int
    meta: dict
    layout: dict[str, int]
    coordinator: dict[str, np.ndarray] | None
    solvers: dict[str, dict[int, dict[str, np.ndarray]]]

    def state(self, solver: str | None = None, group_rank: int = 0) -> dict[str, np.ndarray]:
        """The state of the coordinator (``solver=None``) or of one solver rank, as written."""
        if solver is None or solver == COORDINATOR:
            if self.coordinator is None:
                raise CheckpointError(f"{self.path}: coordinator state was not read or is absent")
            return self.coordinator
        try:
            return self.solvers[solver][group_rank]
        except KeyError:
            raise CheckpointError(
                f"{self.path}: state of {solver} rank {group_rank} was not read") from None


def checkpoint_name(index: int) -> str:
    """File name of checkpoint ``index``: ``checkpoint_{index:06d}.h5``."""
    return f"checkpoint_{index:06d}.h5"


# ----------------------------------------------------------------------------------- writing
class _SelfComm:
    """The one-process communicator used when ``comm`` is None (no MPI needed)."""

    rank = 0
    size = 1

    def allgather(self, obj):
        return [obj]

    def bcast(self, obj, root=0):
        return obj

    def Barrier(self):
        pass

    def Free(self):
        pass


@dataclass(frozen=True)
class _Item:
    """One array ready to write, in its stored form."""

    key: str
    data: np.ndarray          # C-contiguous, in the stored dtype/shape
    descr: str | None         # numpy dtype descr when stored as raw bytes

    def entry(self) -> tuple:
        """What the other ranks need to create the dataset: (key, shape, dtype, descr)."""
        return (self.key, self.data.shape, self.data.dtype.str, self.descr)


def _group_path(solver: str | None, group_rank: int) -> str:
    return "/coordinator" if solver is None else f"/solvers/{solver}/rank{group_rank}"


def _crc(data: np.ndarray, crc: int = 0) -> int:
    """zlib.crc32 of ``data``'s bytes (C order), continuing from ``crc``."""
    return zlib.crc32(memoryview(np.asarray(data).reshape(-1)).cast("B"), crc) if data.size else crc


def _stored_form(key: str, value) -> _Item:
    """Validate one state entry and turn it into what goes to disk."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"state key {key!r}: must be a non-empty str without '/' not starting with '.'")
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise ValueError(f"state[{key!r}]: dtype {arr.dtype} holds Python objects; only plain data can be saved")
    if arr.dtype.itemsize == 0:
        raise ValueError(f"state[{key!r}]: zero-size dtype {arr.dtype} cannot be saved")
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")   # not ascontiguousarray: it turns 0-d arrays into 1-d
    if arr.dtype.fields is None and (arr.dtype.kind, arr.dtype.itemsize) in _NATIVE:
        return _Item(key, arr, None)
    # reshape(-1) first: a 0-d array cannot change its itemsize in a view.
    data = arr.reshape(-1).view(np.uint8).reshape(arr.shape + (arr.dtype.itemsize,))
    return _Item(key, data, repr(np.lib.format.dtype_to_descr(arr.dtype)))


def _slabs(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple[slice, ...]]:
    """Selections splitting an array along axis 0 into pieces of at most ~SLAB_BYTES."""
    if len(shape) == 0:
        yield ()
        return
    if 0 in shape:
        return
    row = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    step = max(1, SLAB_BYTES // row)
    for a in range(0, shape[0], step):
        yield (slice(a, min(a + step, shape[0])),)


def _validate_layout(infos: list[dict]) -> tuple[dict[str, int], list[str]]:
    """Check the gathered rank descriptions; return (layout, problems). Same result on every rank."""
    problems = [info["error"] for info in infos if info["error"]]
    coordinators = [r for r, info in enumerate(infos) if info["solver"] is None]
    if len(coordinators) > 1:
        problems.append(f"world ranks {coordinators} all passed solver=None; only the coordinator may")
    groups: dict[str, list[int]] = {}
    for r, info in enumerate(infos):
        if info["solver"] is not None:
            groups.setdefault(info["solver"], []).append(r)
    layout = {}
    for name, ranks in groups.items():
        if not isinstance(name, str) or not _KEY_RE.match(name) or name == COORDINATOR:
            problems.append(f"solver name {name!r} is not usable as a group name")
            continue
        layout[name] = len(ranks)
        if any(infos[r]["error"] for r in ranks):
            continue   # that rank already said what is wrong; its rank and keys mean nothing
        got = sorted(infos[r]["group_rank"] for r in ranks)
        if got != list(range(len(ranks))):
            problems.append(f"solver {name}: group ranks {got} are not 0..{len(ranks) - 1} (world ranks {ranks})")
        first = infos[ranks[0]]["entries"]
        for r in ranks[1:]:
            keys, want = sorted(e[0] for e in infos[r]["entries"]), sorted(e[0] for e in first)
            if keys != want:
                problems.append(f"solver {name}: world rank {r} has keys {keys}, world rank "
                                f"{ranks[0]} has {want}; keys must match within a group")
    return layout, problems


class _Writer:
    """The parts of a write shared by both strategies; one instance per write_checkpoint call."""

    def __init__(self, tmp: Path, comm, index: int, infos: list[dict], layout: dict[str, int]):
        self.tmp, self.comm, self.index, self.infos, self.layout = tmp, comm, index, infos, layout
        # Contiguous layout; never write fill values: every byte is written by its owner anyway,
        # and parallel HDF5 would otherwise write the whole file twice.
        self.dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)

    def create_all(self, f: h5py.File) -> dict[tuple[int, str], h5py.Dataset]:
        """Root attributes, groups and every rank's datasets, in the same order on every rank."""
        root = self.infos[0]
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["index"] = self.index
        f.attrs["created"] = root["created"]
        f.attrs["checksum"] = "crc32"
        f.attrs["meta"] = root["meta"]
        f.attrs["layout"] = json.dumps(self.layout)
        dsets = {}
        for r, info in enumerate(self.infos):
            gpath = _group_path(info["solver"], info["group_rank"])
            grp = f.create_group(gpath, track_order=True)
            grp.attrs["world_rank"] = r
            for key, shape, dtype, descr in info["entries"]:
                dset = grp.create_dataset(key, shape=tuple(shape), dtype=np.dtype(dtype), dcpl=self.dcpl)
                if descr is not None:
                    dset.attrs["numpy_dtype"] = descr
                dsets[(r, key)] = dset
        return dsets

    def finish(self, f: h5py.File, dsets: dict, error: str | None, crcs: dict[str, int]) -> str | None:
        """Exchange errors and checksums (every rank), then attributes and marker on the file's ranks."""
        results = self.comm.allgather((error, crcs))
        errors = [e for e, _ in results if e]
        if f is not None:
            if not errors:
                for r, (_, rank_crcs) in enumerate(results):   # same order everywhere: collective
                    for key, crc in rank_crcs.items():
                        dsets[(r, key)].attrs["crc32"] = np.uint32(crc)
                f.attrs["complete"] = 1
            f.flush()
        return "; ".join(errors) or None


def _write_mpio(w: _Writer, items: list[_Item]) -> str | None:
    """All ranks open the file with MPI-IO; metadata collective, data independent."""
    comm = w.comm
    with h5py.File(w.tmp, "w", driver="mpio", comm=comm, libver=_LIBVER, **_ALIGN) as f:
        dsets = w.create_all(f)
        error, crcs = None, {}
        try:
            for item in items:
                dset, crc = dsets[(comm.rank, item.key)], 0
                for sel in _slabs(item.data.shape, item.data.itemsize):
                    dset.write_direct(item.data, sel, sel)
                    crc = _crc(item.data[sel], crc)   # while the kernel writes the slab back
                crcs[item.key] = crc
        except Exception as exc:  # noqa: BLE001 - reported to every rank in finish(), then raised
            error = f"world rank {comm.rank}: writing {item.key}: {exc}"
        return w.finish(f, dsets, error, crcs)


def _write_gather(w: _Writer, items: list[_Item]) -> str | None:
    """Ranks Send their arrays slab by slab to rank 0, which writes the file alone."""
    comm = w.comm
    if comm.size > 1:
        from mpi4py import MPI
    crcs = {}
    if comm.rank != 0:
        for item in items:
            crc = 0
            for sel in _slabs(item.data.shape, item.data.itemsize):
                piece = item.data[sel]
                comm.Send([piece.reshape(-1).view(np.uint8), MPI.BYTE], dest=0, tag=_TAG)
                crc = _crc(piece, crc)
            crcs[item.key] = crc
        return w.finish(None, {}, None, crcs)
    error, f, dsets = None, None, {}
    try:
        f = h5py.File(w.tmp, "w", libver=_LIBVER, **_ALIGN)
        dsets = w.create_all(f)
    except Exception as exc:  # noqa: BLE001
        error = f"creating {w.tmp}: {exc}"
    mine = {item.key: item for item in items}
    buf = np.empty(0, np.uint8)   # one receive buffer, reused: no page faults per slab
    for r, info in enumerate(w.infos):
        for key, shape, dtype, _ in info["entries"]:
            shape, dtype, crc = tuple(shape), np.dtype(dtype), 0
            for sel in _slabs(shape, dtype.itemsize):
                if r == 0:
                    data, src = mine[key].data, sel
                    crc = _crc(data[sel], crc)
                else:
                    # Keep receiving after an error: the senders would block forever otherwise.
                    slab_shape = (sel[0].stop - sel[0].start,) + shape[1:] if sel else ()
                    nbytes = dtype.itemsize * int(np.prod(slab_shape, dtype=np.int64))
                    if buf.nbytes < nbytes:
                        buf = np.empty(nbytes, np.uint8)
                    comm.Recv([buf[:nbytes], MPI.BYTE], source=r, tag=_TAG)
                    data = buf[:nbytes].view(dtype).reshape(slab_shape)
                    src = (slice(0, slab_shape[0]),) if sel else ()
                if error is None:
                    try:
                        dsets[(r, key)].write_direct(data, src, sel)
                    except Exception as exc:  # noqa: BLE001
                        error = f"writing {dsets[(r, key)].name}: {exc}"
            if r == 0:
                crcs[key] = crc
    try:
        return w.finish(f if error is None else None, dsets, error, crcs)
    finally:
        if f is not None:
            f.close()


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(comm, directory: Path, index: int, *, solver: str | None, group_rank: int,
                     state: dict[str, np.ndarray], meta: dict | None = None,
                     keep: int | None = None, strategy: str | None = None) -> Path:
    """Write checkpoint ``index`` of every rank's state into one HDF5 file. Collective.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        All ranks taking part (normally COMM_WORLD); None means this process alone.
    directory : Path
        Where the file goes; created by rank 0 if missing.
    index : int
        Checkpoint number (>= 0); the file is ``directory / f"checkpoint_{index:06d}.h5"``.
    solver : str or None
        This rank's solver group name; None on the coordinator.
    group_rank : int
        This rank's rank within its solver group (ignored on the coordinator).
    state : dict[str, np.ndarray]
        This rank's state; any shape (0-d and empty included) and any dtype without objects.
    meta : dict, optional
        JSON-able run metadata (spec text, window, time, versions, rank layout); rank 0's is
        stored, other ranks' is ignored.
    keep : int, optional
        If given, rank 0 calls ``prune(directory, keep)`` after the rename.
    strategy : {"mpio", "gather"}, optional
        Force a write strategy (tests, benchmarks). Default: "mpio" when h5py has MPI and
        the communicator has more than one rank, else "gather" (see module docstring).

    Returns
    -------
    Path
        The final file name, on every rank, once the file is complete and renamed.

    Raises
    ------
    CheckpointError
        On every rank, if any rank's state is unusable, the rank layout is inconsistent, or the
        write fails; the temporary file is then removed and no complete-looking file is left.
    """
    directory = Path(directory)
    final = directory / checkpoint_name(index)
    tmp = directory / f".{final.name}.tmp"
    own = comm is None
    if not own and comm.Is_inter():
        raise CheckpointError(f"{final}: write_checkpoint needs an intracommunicator")
    comm = _SelfComm() if own else comm.Dup()   # private tags and collectives
    try:
        rank = comm.rank
        items: list[_Item] = []
        error = None
        root = {}
        group_rank = 0 if solver is None else group_rank
        try:
            if index < 0:
                raise ValueError(f"index must be >= 0, got {index}")
            if not isinstance(group_rank, (int, np.integer)) or group_rank < 0:
                raise ValueError(f"group_rank must be an int >= 0, got {group_rank!r}")
            if rank == 0:
                directory.mkdir(parents=True, exist_ok=True)
                root = {"meta": json.dumps({} if meta is None else meta),
                        "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            items = [_stored_form(k, v) for k, v in state.items()]
        except Exception as exc:  # noqa: BLE001 - every rank must learn of it, or the others hang
            error = f"world rank {rank}: {exc}"
        valid_rank = isinstance(group_rank, (int, np.integer))
        info = {"solver": solver, "group_rank": int(group_rank) if valid_rank else -1,
                "entries": [it.entry() for it in items], "error": error, **root}
        infos = comm.allgather(info)
        layout, problems = _validate_layout(infos)
        if problems:
            raise CheckpointError(f"{final}: cannot write checkpoint:\n- " + "\n- ".join(problems))

        if strategy is None:
            strategy = "mpio" if comm.size > 1 and h5py.get_config().mpi else "gather"
        if strategy not in ("mpio", "gather") or (strategy == "mpio" and (own or not h5py.get_config().mpi)):
            raise CheckpointError(f"{final}: strategy {strategy!r} is unknown or needs the MPI build "
                                  f"of h5py and a communicator")
        writer = _write_mpio if strategy == "mpio" else _write_gather
        try:
            error = writer(_Writer(tmp, comm, index, infos, layout), items)
        except Exception as exc:  # noqa: BLE001
            error = f"world rank {rank}: {exc}"

        if rank == 0:
            if error is None:
                try:
                    _fsync_path(tmp)
                    os.replace(tmp, final)
                    _fsync_path(directory, directory=True)
                except OSError as exc:
                    error = f"finishing {tmp}: {exc}"
            if error is not None:
                tmp.unlink(missing_ok=True)
            elif keep is not None:
                prune(directory, keep)
        error = comm.bcast(error, root=0)
        if error is not None:
            raise CheckpointError(f"{final}: write failed: {error}")
        return final
    finally:
        if not own:
            comm.Free()


# ----------------------------------------------------------------------------------- reading
def _open(path: Path) -> h5py.File:
    """Open a checkpoint read-only and check its header; CheckpointError if it is not usable."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: truncated or not an HDF5 file ({exc})") from None
    try:
        if f.attrs.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an msorch checkpoint (no format={FORMAT!r} attribute)")
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION or version < 1:
            raise CheckpointError(f"{path}: format_version {version} not supported (this code reads "
                                  f"1..{FORMAT_VERSION})")
        if int(f.attrs.get("complete", 0)) != 1:
            raise CheckpointError(f"{path}: incomplete checkpoint (no 'complete' marker)")
    except CheckpointError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001 - damaged attribute heap etc.
        f.close()
        raise CheckpointError(f"{path}: damaged file header ({exc})") from None
    return f


def _header(f: h5py.File, path: Path) -> tuple[int, dict, dict[str, int]]:
    try:
        return int(f.attrs["index"]), json.loads(f.attrs["meta"]), json.loads(f.attrs["layout"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: damaged root attributes ({exc})") from None


def _read_dataset(path: Path, dset: h5py.Dataset, verify: bool, keep: bool) -> np.ndarray | None:
    """Read one dataset slab by slab, checking its crc32; returns it (if ``keep``) as written."""
    name = dset.name
    try:
        shape, dtype = dset.shape, dset.dtype
        if dtype.isnative:
            # h5py spells native types with an explicit '<': the buffer format becomes '<d',
            # which mpi4py's buffer calls reject. '=' gives the plain 'd' numpy itself uses.
            dtype = dtype.newbyteorder("=")
        stored = int(dset.attrs["crc32"])
        descr = dset.attrs.get("numpy_dtype")
        out = np.empty(shape, dtype) if keep else None
        buf = None   # verification only: one slab-sized buffer, reused
        crc = 0
        for sel in _slabs(shape, dtype.itemsize):
            if out is not None:
                dset.read_direct(out, sel, sel)
                piece = out[sel]
            else:
                if buf is None:   # the first slab is the largest
                    buf = np.empty((sel[0].stop - sel[0].start,) + shape[1:] if sel else (), dtype)
                piece = buf[:sel[0].stop - sel[0].start] if sel else buf
                dset.read_direct(piece, sel, (slice(0, piece.shape[0]),) if sel else ())
            if verify:
                crc = _crc(piece, crc)
    except Exception as exc:  # noqa: BLE001 - HDF5 read errors, missing attrs
        raise CheckpointError(f"{path}: dataset {name}: unreadable ({exc})") from None
    if verify and crc != stored:
        raise CheckpointError(f"{path}: dataset {name}: checksum mismatch "
                              f"(stored crc32 {stored:#010x}, data has {crc:#010x})")
    if out is None:
        return None
    if descr is not None:
        if isinstance(descr, bytes):
            descr = descr.decode()
        try:
            dt = np.lib.format.descr_to_dtype(ast.literal_eval(descr))
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: dataset {name}: bad numpy_dtype {descr!r} ({exc})") from None
        out = out.reshape(-1).view(dt).reshape(shape[:-1])
    return out


def _read_group(path: Path, f: h5py.File, gpath: str, verify: bool) -> dict[str, np.ndarray]:
    try:
        grp = f[gpath]
        names = list(grp.keys())
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: group {gpath} missing or unreadable ({exc})") from None
    out = {}
    for key in names:
        try:
            dset = grp[key]
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: dataset {gpath}/{key}: unreadable ({exc})") from None
        out[key] = _read_dataset(path, dset, verify, keep=True)
    return out


def _check_layout(path: Path, f: h5py.File, layout: dict[str, int]) -> None:
    """Every solver rank of ``layout`` has a group, and nothing else is there."""
    try:
        have = {name: sorted(f["solvers"][name].keys()) for name in f["solvers"]} if "solvers" in f else {}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: group /solvers unreadable ({exc})") from None
    want = {name: sorted(f"rank{r}" for r in range(n)) for name, n in layout.items()}
    if have != want:
        raise CheckpointError(f"{path}: solver groups {have} do not match layout {layout}")


def read_checkpoint(path, *, solver: str | None = None, group_rank: int | None = None,
                    verify: bool = True) -> Checkpoint:
    """Read metadata and the requested part of a checkpoint. Not collective (any rank, any time).

    Parameters
    ----------
    path : path-like
    solver : str, optional
        None: everything. ``COORDINATOR`` (``"coordinator"``): the coordinator's state only.
        A solver name: that solver's ranks (all, or just ``group_rank``).
    group_rank : int, optional
        With ``solver``: only this group rank.
    verify : bool
        Check the crc32 of every dataset read.

    Raises
    ------
    CheckpointError
        Naming the file and the dataset at fault, or "truncated or not an HDF5 file",
        "incomplete checkpoint", or the part that was asked for but is not there.
    """
    path = Path(path)
    with _open(path) as f:
        index, meta, layout = _header(f, path)
        coordinator = None
        solvers: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        if solver is None or solver == COORDINATOR:
            if "coordinator" in f:
                coordinator = _read_group(path, f, "/coordinator", verify)
            elif solver == COORDINATOR:
                raise CheckpointError(f"{path}: no coordinator state in this checkpoint")
        if solver is None:
            _check_layout(path, f, layout)
            names = list(layout)
        elif solver != COORDINATOR:
            if solver not in layout:
                raise CheckpointError(f"{path}: no solver {solver!r} (layout: {layout})")
            names = [solver]
        else:
            names = []
        for name in names:
            if group_rank is not None and solver is not None:
                if not 0 <= group_rank < layout[name]:
                    raise CheckpointError(f"{path}: solver {name} has {layout[name]} ranks, "
                                          f"no group rank {group_rank}")
                ranks = [group_rank]
            else:
                ranks = list(range(layout[name]))
            solvers[name] = {r: _read_group(path, f, _group_path(name, r), verify) for r in ranks}
    return Checkpoint(path, index, meta, layout, coordinator, solvers)


def read_solver_states(path, solver: str, verify: bool = True) -> list[dict[str, np.ndarray]]:
    """All group ranks' states of ``solver``, in group-rank order (for re-layout on restart)."""
    ckpt = read_checkpoint(path, solver=solver, verify=verify)
    return [ckpt.solvers[solver][r] for r in range(ckpt.layout[solver])]


def verify_checkpoint(path) -> None:
    """Check the whole file: header, complete marker, layout, every dataset's crc32.

    Reads one slab (<= ``SLAB_BYTES``) at a time, so memory stays small for any file size.

    Raises
    ------
    CheckpointError
        Naming the file and the first dataset at fault.
    """
    path = Path(path)
    with _open(path) as f:
        _, _, layout = _header(f, path)
        _check_layout(path, f, layout)
        datasets: list[str] = []
        try:
            f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: cannot walk the file ({exc})") from None
        for name in datasets:
            try:
                dset = f[name]
            except Exception as exc:  # noqa: BLE001
                raise CheckpointError(f"{path}: dataset /{name}: unreadable ({exc})") from None
            _read_dataset(path, dset, verify=True, keep=False)


# ----------------------------------------------------------------------------------- directory
def _indexed(directory: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := pattern.match(p.name))]
    return sorted(found, key=lambda t: t[0], reverse=True)


def _is_complete(path: Path) -> bool:
    try:
        _open(path).close()
        return True
    except CheckpointError:
        return False


def find_checkpoints(directory) -> list[Path]:
    """Complete checkpoints in ``directory`` (final name, opens, ``complete`` marker), newest first.

    Newest = highest index. Temporary files of unfinished writes are never listed. Data is not
    verified here (see :func:`latest_valid`).
    """
    return [p for _, p in _indexed(directory, _NAME_RE) if _is_complete(p)]


def latest_valid(directory, verify: bool = True) -> tuple[Path, list[str]]:
    """The newest checkpoint that passes :func:`verify_checkpoint` (or just opens, if not ``verify``).

    Returns
    -------
    (Path, list[str])
        The checkpoint, and one line per newer file that was skipped, with the reason.

    Raises
    ------
    CheckpointError
        If no checkpoint in ``directory`` is usable (the message lists every reason).
    """
    skipped = []
    for _, path in _indexed(directory, _NAME_RE):
        try:
            if verify:
                verify_checkpoint(path)
            else:
                _open(path).close()
            return path, skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
    detail = "".join(f"\n- {s}" for s in skipped)
    raise CheckpointError(f"{directory}: no valid checkpoint{detail}")


def prune(directory, keep: int) -> list[Path]:
    """Delete complete checkpoints older than the newest ``keep``; return what was deleted.

    Also deletes temporary files left by crashed writes older than the newest complete
    checkpoint. Damaged (not complete) files are left alone for inspection.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    complete = find_checkpoints(directory)
    doomed = complete[keep:]
    if complete:
        newest = int(_NAME_RE.match(complete[0].name).group(1))
        doomed += [p for i, p in _indexed(directory, _TMP_RE) if i < newest]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
