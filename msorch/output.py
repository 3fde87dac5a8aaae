"""HDF5 results: one file per solver group, linked from ``results.h5``.

Layout of ``OUTDIR/results.h5`` (what users open)::

    /                       attrs: spec (YAML text), versions (JSON), layout, job name
    /<solver>               external link to OUTDIR/<solver>.h5:/
        time      (n_out,)                  float64, seconds
        points    (n_points, dim)           float64, the solver's result_points()
        <field>   (n_out, n_points[, c])    one dataset per results() entry
        <set>/    a further point set (Solver.result_sets(), e.g. md.lj's ``box``
                  for whole-box scalars): its own ``points`` and fields, and
                  ``time`` as a hard link to the solver's ``time``
    /coupling/iterations    (n_windows,)    int64, fixed-point iterations per window
    /coupling/residuals     (n_windows, n_measures) relative residuals at the last iteration
                            (attr measures: the convergence fields, JSON)
    /coupling/converged     (n_windows,)    int8
    /timing/<solver>        (n_windows,)    wall seconds per window on the group root
    /timing/<solver>.phases (n_windows, n_ranks, 5)  seconds per phase on each rank of the group
                            (attrs: phases = compute, wait, exchange, output, checkpoint; ranks =
                            world ranks); see msorch.timing

Each group gathers its rows to its root (``Gatherv``), which writes its own
file, so groups never wait for each other to write.

**Killed at any instant, never unreadable.**  ``format_version`` (attribute of ``results.h5`` and of every solver file) is
:data:`FORMAT_VERSION`; files without it were written before point sets existed
(version 1; see the README's "Results files" section for reading them).

The per-solver files are written in
HDF5's single-writer/multiple-reader (SWMR) mode: every dataset is created at the
first output, then only extended, and HDF5 orders its metadata writes so that the
file on disk is consistent at every moment — a SIGKILL in the middle of an append
leaves the rows written so far.  Such a file carries a "still open for writing"
mark: readers open it with ``h5py.File(path, "r", swmr=True)`` (or after
``h5clear -s``), and ``--restart`` clears the mark itself before it truncates the
file back to the checkpoint.  (SWMR rather than write-then-rename segments: it
costs nothing per output, and readers keep one file per solver.)  Next to each, the root
keeps ``OUTDIR/<solver>.xmf`` (+ ``<solver>.mesh.h5``) for ParaView up to date
at every flush (see :mod:`msorch.xdmf`).  Points and field rows are
in group-rank order (rank 0's part first).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .arrays import gather_rows
from .xdmf import XdmfWriter
from .timing import PHASES

FORMAT_VERSION = 2   # 2: several point sets per solver (groups); 1 (no attribute): one point set


class GroupWriter:
    """Writes one solver's results (collective over the group).

    The root keeps the rows of the outputs since the last flush in memory and
    opens its file only to append them (at most once a second, before every
    checkpoint and at the end), in SWMR mode: the file is closed, and unmarked,
    at almost every instant, and consistent at every instant.
    """

    def __init__(self, group, outdir: Path, solver: str, output_spec):
        self.group, self.every = group, output_spec.every
        self.fields = output_spec.fields
        self.root = group.Get_rank() == 0
        self.path = Path(outdir) / f"{solver}.h5"
        self.xdmf = XdmfWriter(outdir, solver) if self.root else None   # OUTDIR/<solver>.xmf for ParaView
        self.started = False
        self.count = 0                   # outputs in the file and in `pending`
        self.pending: list[tuple[float, dict[str, np.ndarray]]] = []
        self._first = None               # (points, topology) until the file exists
        self._flushed = self._sidecar_written = time.monotonic()
        self._sidecar_stale = False      # rows on disk that the XDMF does not name yet

    def maybe_write(self, window_index: int, t: float, solver) -> None:
        """Write when ``window_index`` (windows completed) is a multiple of ``every``."""
        if window_index % self.every or self.fields == ():
            return
        results = solver.results()
        names = sorted(results) if self.fields is None else \
            [n for n in sorted(results) if n in self.fields or n.rpartition("/")[2] in self.fields]
        if not self.started:
            self.started = True
            points, counts = gather_rows(self.group, np.asarray(solver.result_points(), dtype=np.float64))
            sets = {name: gather_rows(self.group, np.asarray(pts, dtype=np.float64))[0]
                    for name, pts in sorted(solver.result_sets().items())}
            self._first = (points, self._gather_topology(solver, counts), sets)
        gathered = {name: gather_rows(self.group, np.asarray(results[name]))[0] for name in names}
        if not self.root:
            return
        self.pending.append((t, gathered))
        self.count += 1
        if time.monotonic() - self._flushed > 1.0:
            self.flush()

    def _open(self):
        """The file for appending (created at the first flush with every dataset), in SWMR mode."""
        import h5py
        if self._first is None:
            f = h5py.File(self.path, "a", libver="latest")
        else:
            points, topology, sets = self._first
            f = h5py.File(self.path, "w", libver="latest")
            f.attrs["format_version"] = FORMAT_VERSION
            f.create_dataset("points", data=points)
            self.xdmf.set_mesh("/", points, topology)
            f.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8")
            for name, set_points in sets.items():
                g = f.create_group(name)
                g.create_dataset("points", data=set_points)
                g["time"] = f["time"]          # a hard link: one time axis for every set
                self.xdmf.set_mesh(f"/{name}", set_points)
            for name, data in self.pending[0][1].items():
                f.create_dataset(name, shape=(0, *data.shape), maxshape=(None, *data.shape), dtype=data.dtype,
                                 chunks=(1, *data.shape))
            self._first = None
        f.swmr_mode = True   # from here on HDF5 keeps the file consistent on disk at every write
        return f

    def resume(self, count: int) -> None:
        """Continue a results file after a restart: keep its first ``count`` outputs, drop the rest."""
        self.started = True
        self.count = count
        if not self.root or self.fields == ():
            return
        import h5py
        clear_write_mark(self.path)   # left by a run killed while it had the file open
        with h5py.File(self.path, "a") as f:
            for dset in _extendable(f):
                dset.resize((count, *dset.shape[1:]))
            self.xdmf.write(f)   # the sidecar must not name the rows just dropped

    def _gather_topology(self, solver, counts) -> np.ndarray | None:
        """The group's result_topology() triangles in gathered point numbering (root), or None (collective)."""
        local = solver.result_topology()
        if not any(self.group.allgather(local is not None)):
            return None
        local = np.zeros((0, 3), np.int64) if local is None else np.asarray(local, np.int64).reshape(-1, 3)
        offset = int(counts[:self.group.Get_rank()].sum())
        return gather_rows(self.group, local + offset)[0]

    def flush(self, sidecar: bool | None = None):
        """Append the pending outputs to the file (root; a no-op elsewhere or with none pending).

        ``sidecar``: rewrite the XDMF too; by default at most once a second (its XML
        grows with every output, and checkpoints flush as often as every window).
        """
        now = time.monotonic()
        if sidecar is None:
            sidecar = now - self._sidecar_written > 1.0
        self._flushed = now
        if not self.pending:
            return
        f = self._open()
        try:
            n = len(f["time"])
            k = len(self.pending)
            f["time"].resize((n + k,))
            f["time"][n:] = [t for t, _ in self.pending]
            for name in self.pending[0][1]:
                dset = f[name]
                dset.resize((n + k, *dset.shape[1:]))
                dset[n:] = np.stack([rows[name] for _, rows in self.pending])
            f.flush()
            if sidecar:
                self.xdmf.write(f)   # after the flush: the XML never names rows not on disk
                self._sidecar_written = now
            self._sidecar_stale = not sidecar
        finally:
            f.close()
        self.pending.clear()

    def close(self):
        if not self.root:
            return
        if self.pending:
            self.flush(sidecar=True)
        elif self._sidecar_stale:
            import h5py
            with h5py.File(self.path, "r") as f:
                self.xdmf.write(f)
            self._sidecar_stale = False


def _extendable(f) -> list:
    """Every dataset of a solver file that grows by one row per output (once each: ``time`` is
    hard-linked into every point set)."""
    import h5py
    found = []

    def visit(_name, obj):   # HDF5 visits objects, not links: each dataset once
        if isinstance(obj, h5py.Dataset) and obj.maxshape[0] is None:
            found.append(obj)
    f.visititems(visit)
    return found


def clear_write_mark(path: Path) -> None:
    """Remove the "open for writing" mark that a killed SWMR writer leaves in ``path``'s superblock.

    HDF5 refuses to open such a file for writing until the mark is cleared; its own
    tool ``h5clear -s`` does that (Debian: hdf5-tools; h5py has no call for it).
    """
    import subprocess

    import h5py
    try:
        h5py.File(path, "r+").close()
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if "h5clear" not in str(exc):
            raise
    from .environ import child_env
    subprocess.run(["h5clear", "-s", str(path)], check=True, capture_output=True, env=child_env())


def write_summary(outdir: Path, job, layout, records: dict[str, np.ndarray], n_measures: int,
                  extra_attrs: dict, phases: dict[str, np.ndarray] | None = None) -> Path:
    """The coordinator's ``results.h5``: metadata, coupling history, links to the groups."""
    import h5py
    path = Path(outdir) / "results.h5"
    with h5py.File(path, "w") as f:
        f.attrs["job"] = job.name
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["spec"] = job.text
        f.attrs["layout"] = json.dumps({k: list(v) for k, v in layout.groups.items()})
        for key, value in extra_attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        for name in job.solvers:
            f[name] = h5py.ExternalLink(f"{name}.h5", "/")
        coupling = f.create_group("coupling")
        timing = f.create_group("timing")
        first = next(iter(records.values())) if records else np.zeros((0, 4 + n_measures))
        coupling["iterations"] = first[:, 1].astype(np.int64)
        coupling["converged"] = first[:, 3].astype(np.int8)
        coupling["residuals"] = first[:, 4:4 + n_measures]
        coupling.attrs["measures"] = json.dumps([c.field for c in job.scheme.convergence])
        for name, rows in records.items():
            timing[name] = rows[:, 2]
        for name, table in (phases or {}).items():
            dset = timing.create_dataset(f"{name}.phases", data=table)
            dset.attrs["phases"] = json.dumps(PHASES)
            dset.attrs["ranks"] = json.dumps(list(layout.groups[name]))
    return path


def write_pattern_stats(path: Path, groups: dict[str, dict[str, np.ndarray]]) -> None:
    """Coupling patterns' per-window statistics into ``results.h5`` (``groups``: HDF5 path -> datasets)."""
    import h5py
    with h5py.File(path, "a") as f:
        for name, datasets in groups.items():
            g = f.require_group(name)
            for key, data in datasets.items():
                g[key] = data

