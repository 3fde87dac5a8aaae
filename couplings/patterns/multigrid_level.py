"""The small interface a solver implements to be one level of a multigrid cycle.

A level is an ordinary registered solver on its own ranks (``fem.heat``
implements it in :mod:`solvers.fem.level`).  The multigrid pattern
(:mod:`couplings.patterns.multigrid`) only moves vectors between levels and
calls these methods; what the operator is and how it is smoothed stay inside
the solver.  No MPI or PETSc here: the front end imports this module.

Vectors are numpy float64 arrays of this rank's owned nodes, shape
``(hi - lo,)``, in the level's node numbering (below).  All instance methods
are collective over the level's communicator.

Grid contract
-------------
A level is a structured grid of ``nx x ny`` cells on a box (:class:`LevelGrid`),
nodes numbered ``j (nx + 1) + i`` (x fastest) and owned in contiguous blocks
``[N r // size, N (r + 1) // size)``.  Levels nest: each coarser level has
half the cells in each direction on the same box, and the transfer between
them is P1 prolongation with restriction ``P^T``
(:mod:`couplings.grid_transfer`).

Class methods (read by ``msorch validate`` before launch)
----------------------------------------------------------
``level_box(params) -> (x0, x1, y0, y1, nx, ny)``
    The grid the settings describe.
``level_problems(fine_params, params, coarse: bool) -> [(key, what, fix)]``
    Why ``params`` cannot be a level under ``fine_params`` (the finest level's
    settings; the same object for the finest level itself): the physics must be
    the same so that the coarse operator approximates the fine one.

Instance methods (on the level's ranks)
---------------------------------------
``level_grid() -> LevelGrid``
``level_prepare(dt, smoother, coarse)``
    Build (or keep) the operator for time step ``dt`` [s] (None: keep the
    current operator) and the smoother from PETSc-style options ``smoother``;
    ``coarse`` (options, or None) when this is the coarsest level, whose
    ``level_solve`` must then solve exactly.
``level_residual(x, b, out)``
    ``out = b - A x``.
``level_smooth(x, b, nu, adjoint=False)``
    ``nu`` smoothing steps on ``A x = b``, improving ``x`` in place;
    ``adjoint``: the adjoint steps (e.g. the colours in reverse order), asked
    for the post-smoothing when the cycle must be symmetric (``outer: cg``).
``level_solve(x, b)``
    ``x = A^{-1} b`` (coarsest level).
``level_correct(x, e)``
    ``x += e`` (the coarse-grid correction, already prolonged); constrained
    (Dirichlet) rows stay as they are.
``level_constrained() -> ndarray``
    Local indices of the constrained rows: a restricted residual is zero there.
``level_release()``
    Free what ``level_prepare`` made.
"""
from __future__ import annotations

from dataclasses import dataclass

INSTANCE_METHODS = ("level_grid", "level_prepare", "level_residual", "level_smooth", "level_solve",
                    "level_correct", "level_constrained", "level_release")
CLASS_METHODS = ("level_box", "level_problems")


@dataclass(frozen=True)
class LevelGrid:
    """A level's grid and this rank's node range [lo, hi)."""

    x0: float
    x1: float
    y0: float
    y1: float
    nx: int
    ny: int
    lo: int
    hi: int


def missing(cls) -> list[str]:
    """Names of the level interface that ``cls`` lacks (empty: it is a level)."""
    return [name for name in CLASS_METHODS + INSTANCE_METHODS if not callable(getattr(cls, name, None))]

