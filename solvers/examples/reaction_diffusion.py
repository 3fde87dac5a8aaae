"""MUSCLE3's reaction–diffusion example as two msorch solvers.

The model of MUSCLE3's documentation (``docs/source/examples/python/
{diffusion,reaction}.py``), rewritten against the msorch Solver API:

* :class:`Diffusion` (macro): a concentration ``U`` on ``round(x_max/dx)``
  cells. Each macro step it receives the reacted ``U`` and applies one explicit
  diffusion step ``dU[1:-1] = d * lap(U) * dt`` with the boundary cells taking
  their neighbour's increment (``dU[0] = dU[1]``, ``dU[-1] = dU[-2]``).
* :class:`Reaction` (micro): restarts from the macro state every macro step and
  integrates ``dU/dt = k U`` with forward Euler over ``t_max`` in steps of
  ``dt``; one msorch step (= one coupling window) runs the whole micro loop.

In a job, couple ``diffusion.state_out -> reaction.initial_state`` and
``reaction.final_state -> diffusion.state_in`` under an explicit, serial
scheme with ``order: [reaction, diffusion]`` (``jobs/reaction_diffusion.yaml``):
reaction then reads diffusion's state of the previous window (the initial
state in window 0) and diffusion reads reaction's output of the same window,
which is MUSCLE3's send / receive sequence.

Both models reproduce MUSCLE3's floating-point arithmetic operation for
operation, including how its loops count time, so the two programs agree to
rounding (``tests/e2e/test_reaction_diffusion.py``,
``benchmarks/muscle3_bench.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from msorch.solver import FieldSpec, Solver, param

__all__ = ["Diffusion", "Reaction", "cell_points"]

#: Units of U on both ends of each channel (a relative concentration).
UNITS = "1"


def cell_points(x_max: float, dx: float) -> np.ndarray:
    """Coordinates of the cells, shape (round(x_max/dx), 1) [m]: cell i at i*dx.

    MUSCLE3's example sizes its grid as ``int(round(x_max / dx))``.
    """
    n = int(round(x_max / dx))
    return (np.arange(n, dtype=np.float64) * dx).reshape(n, 1)


def _check_grid(params) -> list[tuple[str, str, str]]:
    if not (params.dx > 0 and params.x_max >= 3 * params.dx):
        return [("x_max", f"needs at least 3 cells of dx = {params.dx!r}, got x_max = {params.x_max!r}",
                 "make x_max >= 3*dx with dx > 0")]
    return []


@dataclass(frozen=True)
class DiffusionParams:
    x_max: float = param(1.0, "length of the domain", units="m")
    dx: float = param(0.01, "cell size; the grid has round(x_max/dx) cells", units="m")
    d: float = param(0.0405, "diffusion coefficient", units="m^2/s")
    background: float = param(1e-20, "initial concentration everywhere", units="1")
    peaks: tuple[int, ...] = param((25, 50, 75), "cells that start at the peak value")
    peak: float = param(2.0, "initial concentration of the peak cells", units="1")


class Diffusion(Solver):
    """Macro model: explicit diffusion of U, one step per window (single rank).

    Fields: output ``state_out`` (U after this window's step; the initial U at
    t0), input ``state_in`` (the reacted U this window's step starts from);
    both shape (n,), units ``"1"``. Results: ``state_out``.
    """

    Params = DiffusionParams
    outputs = ("state_out",)
    inputs = ("state_in",)

    @classmethod
    def check(cls, params):
        problems = _check_grid(params)
        n = int(round(params.x_max / params.dx)) if params.dx > 0 else 0
        bad = [i for i in params.peaks if not 0 <= i < n]
        if bad:
            problems.append(("peaks", f"cells {bad} lie outside the grid of {n} cells",
                             f"use cell indices in 0..{n - 1}"))
        return problems

    def initialize(self, t0):
        if self.comm.Get_size() != 1:
            raise ValueError("Diffusion is a serial model: give it ranks: 1")
        p = self.params
        self.points = cell_points(p.x_max, p.dx)
        self.U = np.full(len(self.points), p.background)
        self.U[list(p.peaks)] = p.peak
        self.dU = np.zeros_like(self.U)
        # 1/dx^2 would round differently from MUSCLE3's "/ dx**2"; keep its form.
        self.dx2 = p.dx ** 2

    def fields(self):
        spec = FieldSpec("float64", 1, UNITS, self.points)
        return {"state_out": spec, "state_in": spec}

    def put(self, name, data):
        np.copyto(self.U, data)

    def advance(self, t, dt):
        U, dU = self.U, self.dU
        # Same operation order as MUSCLE3's example, for identical rounding.
        dU[1:-1] = self.params.d * ((U[:-2] + U[2:] - 2.0 * U[1:-1]) / self.dx2) * dt
        dU[0] = dU[1]
        dU[-1] = dU[-2]
        U += dU

    def get(self, name):
        return self.U

    def state(self):
        return {"U": self.U.copy()}

    def restore(self, state):
        np.copyto(self.U, state["U"])


@numba.njit(cache=True)
def _react(U, k, dt, t_start, t_end):
    """The micro loop in place: U += k U dt while t + dt < t_end (t summed step by step).

    Per element the same IEEE operations in the same order as MUSCLE3's numpy
    ``U += k * U * dt`` ((k*U)*dt, then the add; no fused multiply-add), compiled
    so that 100 cells x 100 steps cost microseconds, not a hundred numpy calls.
    """
    t = t_start
    while t + dt < t_end:
        for i in range(U.size):
            U[i] += k * U[i] * dt
        t += dt


@dataclass(frozen=True)
class ReactionParams:
    x_max: float = param(1.0, "length of the domain (as the macro model's)", units="m")
    dx: float = param(0.01, "cell size (as the macro model's)", units="m")
    k: float = param(-40500.0, "reaction rate in dU/dt = k U", units="1/s")
    dt: float = param(2.469136e-8, "micro time step", units="s")
    t_max: float = param(2.469136e-6, "micro run time per macro step", units="s")


class Reaction(Solver):
    """Micro model: forward-Euler reaction over ``t_max``, restarted every window.

    Fields: input ``initial_state`` (the macro U the micro run starts from),
    output ``final_state`` (U after the micro run); both shape (n,), units ``"1"``.

    The number of micro steps follows MUSCLE3's loop ``while t + dt < t_start +
    t_max`` in floating point, so it is 99 or 100 depending on ``t_start``. MUSCLE3's
    ``t_start`` is the macro model's clock, counted by repeated addition of the
    macro step; this solver counts its own clock the same way (``clock += dt``
    per window) instead of using the framework's ``t = start + w*window``: the
    two can differ in the last bits, and near a tie that changes the step count.
    """

    Params = ReactionParams
    outputs = ("final_state",)
    inputs = ("initial_state",)

    @classmethod
    def check(cls, params):
        problems = _check_grid(params)
        if not (params.dt > 0 and params.t_max >= params.dt):
            problems.append(("dt", f"needs 0 < dt <= t_max, got dt = {params.dt!r}, t_max = {params.t_max!r}",
                             "choose a micro step no longer than the micro run time"))
        return problems

    def initialize(self, t0):
        if self.comm.Get_size() != 1:
            raise ValueError("Reaction is a serial model: give it ranks: 1")
        p = self.params
        self.points = cell_points(p.x_max, p.dx)
        self.U_in = np.zeros(len(self.points))
        self.U = np.zeros(len(self.points))
        self.clock = np.array([t0])
        _react(np.zeros(1), 0.0, 1.0, 0.0, 0.5)   # compile (or load from cache) during setup

    def fields(self):
        spec = FieldSpec("float64", 1, UNITS, self.points)
        return {"initial_state": spec, "final_state": spec}

    def put(self, name, data):
        np.copyto(self.U_in, data)

    def advance(self, t, dt):
        k, micro_dt = self.params.k, self.params.dt
        U = self.U
        np.copyto(U, self.U_in)
        t_start = float(self.clock[0])
        _react(U, k, micro_dt, t_start, t_start + self.params.t_max)
        self.clock[0] = t_start + dt

    def get(self, name):
        return self.U

    def state(self):
        return {"U_in": self.U_in.copy(), "U": self.U.copy(), "clock": self.clock.copy()}

    def restore(self, state):
        np.copyto(self.U_in, state["U_in"])
        np.copyto(self.U, state["U"])
        np.copyto(self.clock, state["clock"])
