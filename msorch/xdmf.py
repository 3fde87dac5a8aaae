"""XDMF sidecars: ``paraview OUTDIR/<solver>.xmf`` opens a solver's whole run.

An XDMF file is small XML that tells ParaView (or any XDMF 3 reader) how to
read the HDF5 datasets msorch already writes; no field value is copied.  For
each point set of a solver's results file (a group holding ``time`` and
``points``; today the file's root) it describes one temporal collection: one
grid per output time whose attributes are hyperslabs (row k) of the
``(n_out, n_points[, c])`` field datasets.

The cells of a point set, and its coordinates padded to three columns (XDMF
geometry is 2-D or 3-D), go in ``OUTDIR/<solver>.mesh.h5`` (written once,
under a temporary name then renamed); the cells are chosen by what is known:

- triangles from the solver's :meth:`msorch.solver.Solver.result_topology`
  (FEM meshes), in the gathered point numbering;
- a polyline through the points in coordinate order when they vary along one
  axis only (roads, 1-D profiles and bins);
- otherwise one vertex per point (particles, bins in 2-D/3-D, whole-domain
  scalars).

In ParaView open it with the "XDMF Reader" (offered first when it asks which
reader to use): ParaView 5.11's Xdmf3 readers skip HyperSlab attributes.
meshio reads the mesh and times (not HyperSlabs).

The group root rewrites the XML at every results flush and at the end of the
run (temporary file, then rename), always after the HDF5 flush, so the XML
never names rows that are not on disk and a killed run still opens.
"""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

_NUMBER = {"f": "Float", "i": "Int", "u": "UInt", "b": "UChar"}


def cells_for(points: np.ndarray, topology: np.ndarray | None = None) -> tuple[str, np.ndarray]:
    """(XDMF topology type, connectivity (n_cells, nodes per cell) int64) for a point set."""
    n = len(points)
    if topology is not None and len(topology):
        return "Triangle", np.asarray(topology, dtype=np.int64).reshape(-1, 3)
    varying = [d for d in range(points.shape[1]) if n and np.ptp(points[:, d]) > 0] if points.ndim == 2 else []
    if n > 1 and len(varying) == 1:
        order = np.argsort(points[:, varying[0]], kind="stable").astype(np.int64)
        return "Polyline", np.stack([order[:-1], order[1:]], axis=1)
    return "Polyvertex", np.arange(n, dtype=np.int64).reshape(-1, 1)


def point_sets(f) -> list[str]:
    """HDF5 paths ('/' or '/name/...') of the groups of an open file that hold ``time`` and ``points``."""
    import h5py
    found = []

    def visit(group, path):
        if "time" in group and "points" in group:
            found.append(path)
        for key, item in group.items():
            if isinstance(item, h5py.Group):
                visit(item, f"{path.rstrip('/')}/{key}")
    visit(f, "/")
    return found


def _atomic_write(path: Path, data: bytes | None = None, writer=None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if writer is not None:
        writer(tmp)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


class XdmfWriter:
    """Keeps ``OUTDIR/<solver>.xmf`` (and its ``.mesh.h5``) up to date; used on a group's root."""

    def __init__(self, outdir: Path, solver: str):
        self.outdir, self.solver = Path(outdir), solver
        self.xmf = self.outdir / f"{solver}.xmf"
        self.mesh = self.outdir / f"{solver}.mesh.h5"
        self.cells: dict[str, tuple[str, np.ndarray]] = {}
        self.xyz: dict[str, np.ndarray] = {}   # point coordinates padded to 3 columns (XDMF's XYZ)

    def set_mesh(self, path: str, points: np.ndarray, topology: np.ndarray | None = None) -> None:
        """Cells of the point set at ``path`` (gathered points; topology in gathered numbering)."""
        self.cells[path] = cells_for(points, topology)
        points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
        self.xyz[path] = np.zeros((len(points), 3))
        self.xyz[path][:, :min(3, points.shape[1])] = points[:, :3]
        self._write_mesh()

    def _write_mesh(self) -> None:
        import h5py

        def write(tmp):
            with h5py.File(tmp, "w") as m:
                for path, (kind, cells) in self.cells.items():
                    d = m.create_dataset(_mesh_key(path), data=cells)
                    d.attrs["type"] = kind
                    m.create_dataset(_mesh_key(path, "points"), data=self.xyz[path])
        _atomic_write(self.mesh, writer=write)

    def _load_mesh(self, f, path: str) -> None:
        """Cells of a point set not set in this process (a restarted run): from the mesh file an
        earlier run wrote, else from the points in the results file."""
        import h5py
        keys = (_mesh_key(path), _mesh_key(path, "points"))
        if self.mesh.exists():
            with h5py.File(self.mesh, "r") as m:
                if all(k in m for k in keys):
                    self.cells[path] = (str(m[keys[0]].attrs["type"]), m[keys[0]][:])
                    self.xyz[path] = m[keys[1]][:]
                    return
        self.set_mesh(path, f[path]["points"][:])

    def write(self, f) -> Path:
        """Rewrite the XML for the rows now in the open results file ``f`` (after its flush)."""
        sets = point_sets(f)
        for path in sets:
            if path not in self.cells:
                self._load_mesh(f, path)
        h5_name = Path(f.filename).name
        parts = ['<?xml version="1.0" ?>', '<Xdmf Version="3.0">', "  <Domain>"]
        for path in sets:
            parts += self._collection(f, path, h5_name)
        parts += ["  </Domain>", "</Xdmf>", ""]
        _atomic_write(self.xmf, "\n".join(parts).encode())
        return self.xmf

    def _collection(self, f, path: str, h5_name: str) -> list[str]:
        g = f[path]
        times = g["time"][:]
        n = len(g["points"])
        kind, cells = self.cells[path]
        base = path.rstrip("/")
        fields = [k for k, v in g.items() if k not in ("time", "points") and hasattr(v, "shape")
                  and len(v.shape) >= 2 and v.shape[0] >= len(times) and v.shape[1] == n]
        label = self.solver + (base.replace("/", ".") if base else "")
        ref = lambda name: f"{h5_name}:{base}/{name}"
        geometry = ('      <Geometry GeometryType="XYZ">\n' + _item((n, 3), np.float64, f"{self.mesh.name}:/"
                    f"{_mesh_key(path, 'points')}") + "\n      </Geometry>")
        topo = (f'      <Topology TopologyType="{kind}" NumberOfElements="{len(cells)}"'
                + (f' NodesPerElement="{cells.shape[1]}"' if kind != "Triangle" else "") + ">\n"
                + _item(cells.shape, cells.dtype, f"{self.mesh.name}:/{_mesh_key(path)}") + "\n      </Topology>")
        out = [f"    <Grid Name={quoteattr(label)} GridType=\"Collection\" CollectionType=\"Temporal\">"]
        for k, t in enumerate(times):
            out.append(f'     <Grid Name={quoteattr(f"{label} {k}")} GridType="Uniform">')
            out.append(f'      <Time Value="{float(t)!r}"/>')
            out.append(topo)
            out.append(geometry)
            for name in fields:
                out.append(_attribute(name, g[name], k, ref(name)))
            out.append("     </Grid>")
        out.append("    </Grid>")
        return out


def _mesh_key(path: str, what: str = "cells") -> str:
    return what if path == "/" else what + path.replace("/", ".")


def _item(shape, dtype, ref: str) -> str:
    dtype = np.dtype(dtype)
    dims = " ".join(str(int(s)) for s in shape)
    return (f'        <DataItem Dimensions="{dims}" NumberType="{_NUMBER.get(dtype.kind, "Float")}" '
            f'Precision="{dtype.itemsize}" Format="HDF">{escape(ref)}</DataItem>')


def _slab(start, stride, count, full, dtype, ref: str) -> str:
    rows = len(full)
    sel = (f'          <DataItem Dimensions="3 {rows}" NumberType="UInt" Format="XML">'
           f'{" ".join(map(str, start))} {" ".join(map(str, stride))} {" ".join(map(str, count))}</DataItem>')
    dims = " ".join(str(int(c)) for c in (count[1:] if count[0] == 1 else count))   # the row, without the 1
    dtype = np.dtype(dtype)   # the result's type too: ParaView's Xdmf3 reader skips the array without it
    return (f'        <DataItem ItemType="HyperSlab" Dimensions="{dims}" Type="HyperSlab" '
            f'NumberType="{_NUMBER.get(dtype.kind, "Float")}" Precision="{dtype.itemsize}">\n{sel}\n'
            + _item(full, dtype, ref).replace("        <DataItem", "          <DataItem") + "\n        </DataItem>")


def _attribute(name: str, dset, k: int, ref: str) -> str:
    shape = dset.shape
    n = shape[1]
    comps = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    kind = {1: "Scalar", 3: "Vector", 9: "Tensor"}.get(comps, "Matrix")
    start = (k, 0) + (0,) * (len(shape) - 2)
    count = (1, n) + tuple(shape[2:])
    slab = _slab(start, (1,) * len(shape), count, shape, dset.dtype, ref)
    return (f'      <Attribute Name={quoteattr(name)} AttributeType="{kind}" Center="Node">\n{slab}\n'
            f"      </Attribute>")
