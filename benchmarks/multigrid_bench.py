"""Multigrid across solver groups vs PETSc's own multigrid on the same problem (issue 13, Must show 2).

Problem: steady P1 Poisson (``fem.heat``, ``steady: true``) on [0,1]^2 with n x n cells, source 10,
Dirichlet u = 1 + x^2 + 3 y^2 on all sides; x starts from zero; solved to ||b - A x|| <= tol ||b||.

* **msorch**: ``patterns: [{kind: multigrid}]`` with four levels n, n/2, n/4, n/8 as separate
  ``fem.heat`` groups on 4 -> 2 -> 1 -> 1 ranks, V(1,1) with the pattern's defaults (red-black
  Gauss-Seidel, bilinear transfer), coarsest LU.
  Time per cycle: the ``seconds`` of results.h5 (``/multigrid/fine``), cycles 1..n.
* **PCMG**: PETSc's ``pc_type mg`` on 4 ranks (``mpirun -n 4``), the same cycle as far as PETSc has
  it: the same four rediscretised, Dirichlet-eliminated operators, the same bilinear interpolation
  (coarse boundary columns removed, so R = P^T zeroes the restricted residual on the boundary exactly
  as the pattern does), redundant LU on the coarsest level, outer ``richardson`` measuring the true
  residual; the smoother is PETSc's ``richardson`` + ``sor`` with one step before and after (a local
  symmetric Gauss-Seidel sweep per rank block: PETSc has no red-black Gauss-Seidel for AIJ); a
  smoothing step costs about one matrix-vector product in both (msorch multiplies each colour's rows
  only).
* **GAMG**: PETSc's algebraic multigrid preconditioning CG, as a black-box reference (iterations
  and time, not the same cycle).

Prints iterations, solve seconds, seconds per cycle and msorch/PCMG (target <= 3 at n = 1024), and
the load average first: on a loaded machine compare the ratio, not the seconds.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/multigrid_bench.py [--n 1024] [--tol 1e-10]``
(the PCMG part runs itself under ``mpirun -n 4 ... --petsc``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = 10.0
RANKS = (4, 2, 1, 1)


def job_spec(n: int, tol: float, cycle: str = "V", nu: int = 1, ranks=RANKS, outer: str = "richardson",
             smoother: dict | None = None, transfer: str = "bilinear") -> dict:
    """The msorch job: len(ranks) levels n, n/2, ... as fem.heat groups (finest first)."""
    base = {"x0": 0.0, "x1": 1.0, "y0": 0.0, "y1": 1.0, "steady": True, "source": SOURCE, "beta": 0.0}
    names = [f"level{k}" for k in range(len(ranks))]
    solvers = {name: {"kind": "fem.heat", "ranks": r, "params": dict(base, nx=n >> k, ny=n >> k)}
               for k, (name, r) in enumerate(zip(names, ranks))}
    solvers[names[0]]["output"] = {"every": 1, "fields": ["temperature"]}
    return {"name": f"multigrid_{n}", "time": {"start": 0.0, "end": 1.0, "window": 1.0}, "hang_timeout": 3000,
            "solvers": solvers,
            "patterns": [{"kind": "multigrid", "levels": names, "cycle": cycle, "nu1": nu, "nu2": nu,
                          "tolerance": tol, "max_cycles": 60, "outer": outer, "smoother": dict(smoother or {}),
                          "transfer": transfer}]}


def run_msorch(spec: dict, outdir: Path) -> dict:
    """Run the spec with ``msorch run``; per-cycle table of /multigrid/<finest> and the fine solution."""
    import h5py
    import yaml
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "msorch", "run", str(path), "-o", str(outdir / "out"), "--overwrite"],
                       capture_output=True, text=True, env=env, timeout=3000)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"msorch run failed:\n{r.stdout}\n{r.stderr}")
    first = next(iter(spec["solvers"]))
    with h5py.File(outdir / "out" / "results.h5") as f:
        g = f[f"multigrid/{first}"]
        table = {k: g[k][:] for k in ("cycle", "residual", "relative", "factor", "seconds")}
    with h5py.File(outdir / "out" / f"{first}.h5") as f:
        table["u"] = f["temperature"][-1]
    table["wall"] = wall
    table["stdout"] = r.stdout
    return table


# --------------------------------------------------------------------------------------------------
# PETSc side (under mpirun): PCMG and GAMG on PETSC_COMM_WORLD
# --------------------------------------------------------------------------------------------------


def _level_matrices(PETSc, comm, n: int):
    """(A, A_bc, b, lo, hi, boundary mask) of the n x n level, rows split as fem.heat splits them."""
    from solvers.fem.grid import SIDES, Rectangle, local_rows
    from solvers.fem.petsc_backend import aij_matrix
    g = Rectangle(0.0, 1.0, 0.0, 1.0, n, n)
    size, rank = comm.Get_size(), comm.Get_rank()
    lo, hi = g.ownership(size, rank)
    rows = local_rows(g, lo, hi)
    A = aij_matrix(comm, g.n_nodes, lo, hi, rows.indptr, rows.indices, rows.stiffness)
    side = np.unique(np.concatenate([g.side_nodes(s) for s in SIDES]))
    mine = side[(side >= lo) & (side < hi)]
    A_bc = A.duplicate(copy=True)
    A_bc.zeroRowsColumns(mine.astype(PETSc.IntType), diag=1.0)
    xy = g.coordinates(np.arange(lo, hi))
    gv, b = A.createVecRight(), A.createVecRight()
    with gv as a:
        a[:] = 0.0
        a[mine - lo] = 1.0 + xy[mine - lo, 0] ** 2 + 3.0 * xy[mine - lo, 1] ** 2
    A.mult(gv, b)
    with b as bb, gv as a:
        bb[:] = SOURCE * rows.volume - bb
        bb[mine - lo] = a[mine - lo]
    gv.destroy()
    return A, A_bc, b, (lo, hi), mine - lo


def _interpolation(PETSc, comm, n: int):
    """Bilinear P from the (n/2)^2 to the n^2 grid, coarse boundary columns removed, as a PETSc AIJ matrix."""
    from couplings.grid_transfer import Box, prolongation_rows
    fine, coarse = Box(0.0, 1.0, 0.0, 1.0, n, n), Box(0.0, 1.0, 0.0, 1.0, n // 2, n // 2)
    size, rank = comm.Get_size(), comm.Get_rank()
    lo, hi = fine.ownership(size, rank)
    clo, chi = coarse.ownership(size, rank)
    import scipy.sparse as sp
    cols = np.concatenate(prolongation_rows(fine, coarse, lo, hi, "bilinear"))
    rows = np.tile(np.arange(hi - lo), 4)
    nc = coarse.nx + 1
    boundary = (cols % nc == 0) | (cols % nc == coarse.nx) | (cols // nc == 0) | (cols // nc == coarse.ny)
    # Four entries of 1/4 per row (repeated columns summed: 1 at a coarse node, 1/2 + 1/2 at an edge midpoint).
    local = sp.csr_matrix((np.where(boundary, 0.0, 0.25), (rows, cols)), shape=(hi - lo, coarse.n_nodes))
    local.sum_duplicates()
    local.sort_indices()
    indptr, cols, vals = (local.indptr.astype(PETSc.IntType), local.indices.astype(PETSc.IntType), local.data)
    P = PETSc.Mat().createAIJ(((hi - lo, fine.n_nodes), (chi - clo, coarse.n_nodes)), csr=(indptr, cols, vals),
                              comm=comm)
    return P


def petsc_main(n: int, tol: float) -> None:
    import petsc4py
    petsc4py.init(sys.argv[:1])
    from mpi4py import MPI
    from petsc4py import PETSc
    comm = MPI.COMM_WORLD
    out = {}
    levels = [_level_matrices(PETSc, comm, n >> k) for k in range(len(RANKS))]
    A, A_bc, b = levels[0][0], levels[0][1], levels[0][2]
    interps = [_interpolation(PETSc, comm, n >> k) for k in range(len(RANKS) - 1)]
    opts = PETSc.Options()
    for key, value in {"mg_levels_ksp_type": "richardson", "mg_levels_pc_type": "sor",
                       "mg_levels_ksp_max_it": "1", "mg_coarse_ksp_type": "preonly",
                       "mg_coarse_pc_type": "redundant", "mg_coarse_redundant_pc_type": "lu"}.items():
        opts.setValue("pcmg_" + key, value)
    for name in ("pcmg", "gamg"):
        ksp = PETSc.KSP().create(comm=comm)
        ksp.setOptionsPrefix(name + "_")
        ksp.setOperators(A_bc)
        pc = ksp.getPC()
        if name == "pcmg":
            ksp.setType("richardson")
            pc.setType("mg")
            L = len(RANKS)
            pc.setMGLevels(L)
            pc.setMGType(PETSc.PC.MGType.MULTIPLICATIVE)
            pc.setMGCycleType(PETSc.PC.MGCycleType.V)
            for l in range(1, L):                      # PETSc level l: 0 = coarsest
                pc.setMGInterpolation(l, interps[L - 1 - l])
            for l in range(L):
                pc.getMGSmoother(l).setOperators(levels[L - 1 - l][1])
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        else:
            ksp.setType("cg")
            pc.setType("gamg")
        ksp.setTolerances(rtol=tol, atol=0.0, max_it=200)
        ksp.setFromOptions()
        history = []
        ksp.setMonitor(lambda k, its, r: history.append((time.perf_counter(), r)))
        x = b.duplicate()
        t0 = time.perf_counter()
        ksp.setUp()
        t1 = time.perf_counter()
        ksp.solve(b, x)
        t2 = time.perf_counter()
        its = ksp.getIterationNumber()
        res = np.array([h[1] for h in history])
        stamps = np.array([h[0] for h in history])
        u = comm.gather(x.getArray().copy(), root=0)
        if comm.Get_rank() == 0:
            out[name] = {"iterations": its, "setup": t1 - t0, "solve": t2 - t1,
                         "per_cycle": float(np.diff(stamps).mean()) if its else 0.0,
                         "residual": res.tolist(), "reason": ksp.getConvergedReason()}
            if name == "pcmg":
                np.save(os.environ["MG_BENCH_U"], np.concatenate(u))
        ksp.destroy()
        x.destroy()
    for m in [P for P in interps] + [M for lv in levels for M in lv[:3]]:
        m.destroy()
    if comm.Get_rank() == 0:
        print("PETSC_RESULT " + json.dumps(out), flush=True)


def run_petsc(n: int, tol: float, u_path: Path) -> dict:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1", MG_BENCH_U=str(u_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    r = subprocess.run(["mpirun", "--oversubscribe", "-n", str(RANKS[0]), sys.executable, __file__, "--petsc",
                        "--n", str(n), "--tol", repr(tol)], capture_output=True, text=True, env=env, timeout=3000)
    line = [x for x in r.stdout.splitlines() if x.startswith("PETSC_RESULT ")]
    if r.returncode or not line:
        raise RuntimeError(f"PETSc reference failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(line[0][len("PETSC_RESULT "):])


def compare(n: int, tol: float, workdir: Path) -> dict:
    """Run both; returns the figures (also printed)."""
    mg = run_msorch(job_spec(n, tol), workdir / "msorch")
    ref = run_petsc(n, tol, workdir / "pcmg_u.npy")
    u_ref = np.load(workdir / "pcmg_u.npy")
    cycles = int(mg["cycle"][-1])
    per_cycle = float(mg["seconds"][1:].mean())
    pcmg = ref["pcmg"]
    figures = {"n": n, "unknowns": (n + 1) ** 2, "msorch_cycles": cycles, "msorch_per_cycle": per_cycle,
               "msorch_solve": float(mg["seconds"].sum()), "msorch_wall": mg["wall"],
               "msorch_factor": float((mg["residual"][-1] / mg["residual"][0]) ** (1 / cycles)),
               "pcmg_cycles": pcmg["iterations"], "pcmg_per_cycle": pcmg["per_cycle"], "pcmg_solve": pcmg["solve"],
               "pcmg_factor": float((pcmg["residual"][-1] / pcmg["residual"][0]) ** (1 / pcmg["iterations"])),
               "gamg_iterations": ref["gamg"]["iterations"], "gamg_solve": ref["gamg"]["solve"],
               "gamg_setup": ref["gamg"]["setup"],
               "solution_difference": float(np.abs(mg["u"] - u_ref).max() / np.abs(u_ref).max())}
    figures["ratio_per_cycle"] = per_cycle / pcmg["per_cycle"]
    print(f"n = {n} ({figures['unknowns']} unknowns on the finest level), tolerance {tol:g}, load {os.getloadavg()[0]:.1f}")
    print(f"  msorch (levels 4->2->1->1 ranks): {cycles} V(1,1) cycles, factor {figures['msorch_factor']:.4f}, "
          f"{figures['msorch_solve']:.3f} s solve, {per_cycle * 1e3:.2f} ms per cycle (run wall {mg['wall']:.1f} s)")
    print(f"  PETSc PCMG (4 ranks, same transfer, SOR smoother): {pcmg['iterations']} cycles, factor {figures['pcmg_factor']:.4f}, "
          f"{pcmg['solve']:.3f} s solve, {pcmg['per_cycle'] * 1e3:.2f} ms per cycle")
    print(f"  PETSc GAMG + CG (4 ranks):        {ref['gamg']['iterations']} iterations, {ref['gamg']['solve']:.3f} s "
          f"solve (+ {ref['gamg']['setup']:.3f} s setup)")
    print(f"  msorch / PCMG time per cycle: {figures['ratio_per_cycle']:.2f} (target <= 3); solutions differ by "
          f"{figures['solution_difference']:.2e} (relative max norm)")
    return figures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--petsc", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.petsc:
        sys.path.insert(0, str(ROOT))
        petsc_main(args.n, args.tol)
        return 0
    with tempfile.TemporaryDirectory(prefix="mg_bench_") as tmp:
        compare(args.n, args.tol, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
