"""Everything PETSc-specific of the FEM solver: matrices, vectors, KSP, options.

Follows dolfinx's habit (``python/dolfinx/fem/petsc.py``): each KSP gets its
own options prefix, the user's ``petsc_options`` are pushed under it, the KSP
reads them with ``setFromOptions()`` and the entries are removed again so they
cannot leak into another object.  All functions taking a communicator are
collective on it.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from functools import cache
from typing import Iterator, Mapping

import numpy as np
import petsc4py
from mpi4py import MPI

# PETSC_COMM_WORLD = COMM_SELF: PETSc's start-up and shut-down are then local to
# each process.  This module is imported lazily, on the solver's ranks only, when
# the solver first needs PETSc; every object it makes names its group's
# communicator explicitly, so no collective ever involves ranks that never use PETSc.
petsc4py.init(comm=MPI.COMM_SELF)
from petsc4py import PETSc  # noqa: E402  (must follow petsc4py.init)

__all__ = ["PETSc", "default_options", "unique_prefix", "aij_matrix", "make_ksp", "solve"]

_prefixes = itertools.count()


def _has_pc(kind: str) -> bool:
    pc = PETSc.PC().create(comm=PETSc.COMM_SELF)
    try:
        pc.setType(kind)
        return True
    except PETSc.Error:
        return False
    finally:
        pc.destroy()


@cache
def _default_options() -> tuple[tuple[str, str], ...]:
    """CG + an algebraic multigrid (hypre, else GAMG) solved to ~machine precision.

    The tolerance is this tight because partitioned (Dirichlet–Neumann) coupling
    compares interface values to 1e-12: the linear solve must be well below it.
    """
    opts = {"ksp_type": "cg", "ksp_rtol": "1e-14", "ksp_atol": "1e-50", "ksp_max_it": "5000"}
    if _has_pc("hypre"):
        opts["pc_type"] = "hypre"
    elif _has_pc("gamg"):
        opts["pc_type"] = "gamg"
    else:
        opts.update(pc_type="bjacobi", sub_pc_type="icc")
    return tuple(opts.items())


def default_options() -> dict[str, str]:
    """The options every KSP starts from (see :func:`_default_options`)."""
    return dict(_default_options())


def unique_prefix(base: str) -> str:
    """An options prefix ``f"{base}_{n}_"`` not given out before in this process."""
    return f"{base}_{next(_prefixes)}_"


@contextmanager
def pushed_options(prefix: str, options: Mapping[str, str]) -> Iterator[None]:
    """Put ``options`` (keys with or without a leading '-') under ``prefix`` for the block."""
    db = PETSc.Options()
    keys = [prefix + key.lstrip("-") for key in options]
    for key, value in zip(keys, options.values()):
        # YAML gives booleans as bool; PETSc wants lower case.
        db.setValue(key, str(value).lower() if isinstance(value, bool) else str(value))
    try:
        yield
    finally:
        for key in keys:
            db.delValue(key)


def aij_matrix(comm, n_global: int, lo: int, hi: int, indptr: np.ndarray,
               indices: np.ndarray, values: np.ndarray):
    """Distributed AIJ matrix whose rows [lo, hi) on this rank are the given CSR rows.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The group's communicator (collective).
    n_global : int
        Global number of rows and columns.
    lo, hi : int
        This rank's rows; the same range is its block of columns.
    indptr, indices, values : ndarray
        Local CSR rows with global column numbers.
    """
    mat = PETSc.Mat().create(comm=comm)
    mat.setSizes(((hi - lo, n_global), (hi - lo, n_global)))
    mat.setType(PETSc.Mat.Type.AIJ)
    # Preallocating from CSR with values also inserts them.
    mat.setPreallocationCSR((indptr.astype(PETSc.IntType), indices.astype(PETSc.IntType),
                             np.asarray(values, dtype=PETSc.ScalarType)))
    mat.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
    mat.assemble()
    return mat


def make_ksp(comm, mat, prefix: str, options: Mapping[str, str]):
    """A KSP on ``mat`` configured by ``default_options()`` updated with ``options``."""
    ksp = PETSc.KSP().create(comm=comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(mat)
    with pushed_options(prefix, {**default_options(), **options}):
        ksp.setFromOptions()
    ksp.setUp()
    return ksp


def solve(ksp, rhs, x) -> int:
    """Solve into ``x`` (its content is the initial guess); raise if PETSc gave up.

    Returns the number of iterations.
    """
    ksp.solve(rhs, x)
    reason = ksp.getConvergedReason()
    if reason < 0:
        raise RuntimeError(
            f"linear solve ({ksp.getOptionsPrefix()}) failed: KSP reason {reason} after "
            f"{ksp.getIterationNumber()} iterations, residual {ksp.getResidualNorm():.3e}; "
            "loosen ksp_rtol or choose another pc_type in petsc_options")
    return ksp.getIterationNumber()
