"""A macro rod whose conductivity law comes from micro cells: the HMM farm's test pair.

:class:`Rod` (macro): 1-D heat equation u_t = (k u_x)_x on [0, length] with
fixed end temperatures, explicit finite differences on ``n`` cells.  Its
conductivity per cell either comes from the analytic law
k(u) = k0 (1 + beta u) (``law: analytic``, the reference) or from its input
``conductivity`` (``law: input``), answered by an HMM farm at the cell-centre
temperatures it gives as output ``cell_temperature`` (the queries).

:class:`Cell` (micro): a relaxation x' = (k(T) - x) / tau towards the same law
at a bath temperature T, by implicit Euler.  A query sets ``temperature``
(a Params setting), or a persistent cell takes it through its input ``bath``.
After a relaxation of many tau, x equals k(T) to rounding, so the HMM rod must
match the analytic rod to rounding: an independent reference.  ``cost``
seconds of busy work per step (growing with T by ``cost_spread``) make tasks
of chosen, uneven cost for load-balancing tests.

The steady state of the analytic rod is known in closed form (Kirchhoff
transform): K(u) = k0 (u + beta u^2 / 2) is linear in x between the ends.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param

K_UNITS = "W/(m K)"


def law(u: np.ndarray, k0: float, beta: float) -> np.ndarray:
    """k(u) = k0 (1 + beta u) [W/(m K)] for temperatures u [K] (any shape)."""
    return k0 * (1.0 + beta * u)


@dataclass(frozen=True)
class RodParams:
    n: int = param(32, "cells")
    length: float = param(1.0, "rod length", units="m")
    left: float = param(1.0, "temperature at x = 0", units="K")
    right: float = param(0.0, "temperature at x = length", units="K")
    initial: float = param(0.0, "initial temperature inside", units="K")
    law: Literal["input", "analytic"] = param("input", "conductivity from the input 'conductivity' "
                                              "(HMM answers) or from k0 (1 + beta u)")
    k0: float = param(1.0, "analytic law: k at u = 0", units=K_UNITS)
    beta: float = param(1.0, "analytic law: slope", units="1/K")


class Rod(Solver):
    """Cells split evenly over the group's ranks for the coupling fields; every rank
    integrates the whole (small) rod, after gathering the conductivity."""

    Params = RodParams
    outputs = ("temperature", "cell_temperature")
    inputs = ("conductivity",)
    field_info = {"temperature": FieldInfo("K", "cell temperatures"),
                  "cell_temperature": FieldInfo("K", "cell temperatures: the HMM queries"),
                  "conductivity": FieldInfo(K_UNITS, "conductivity per cell: the HMM answers")}

    def initialize(self, t0):
        p, size, rank = self.params, self.comm.Get_size(), self.comm.Get_rank()
        self.h = p.length / p.n
        self.counts = np.array([p.n * (r + 1) // size - p.n * r // size for r in range(size)])
        self.lo = int(self.counts[:rank].sum())
        self.hi = self.lo + int(self.counts[rank])
        self.points = ((np.arange(self.lo, self.hi) + 0.5) * self.h)[:, None]
        self.u = np.full(p.n, p.initial, dtype=np.float64)
        self.k = law(self.u, p.k0, p.beta)
        self.k_local = self.k[self.lo:self.hi].copy()

    def fields(self):
        return {"temperature": FieldSpec("float64", 1, "K", self.points),
                "cell_temperature": FieldSpec("float64", 1, "K", self.points),
                "conductivity": FieldSpec("float64", 1, K_UNITS, self.points)}

    def advance(self, t, dt):
        p = self.params
        if p.law == "analytic":
            self.k = law(self.u, p.k0, p.beta)
        elif self.comm.Get_size() > 1:
            self.comm.Allgatherv(self.k_local, (self.k, self.counts))
        else:
            self.k[:] = self.k_local
        # Cell-centred fluxes; face conductivity = harmonic mean, boundary faces use the
        # end temperatures at half a cell.
        u, k, h = self.u, self.k, self.h
        kf = 2.0 * k[:-1] * k[1:] / (k[:-1] + k[1:])
        flux = np.empty(p.n + 1)
        flux[1:-1] = -kf * (u[1:] - u[:-1]) / h
        flux[0] = -k[0] * (u[0] - p.left) / (h / 2)
        flux[-1] = -k[-1] * (p.right - u[-1]) / (h / 2)
        self.u = u - dt / h * (flux[1:] - flux[:-1])

    def get(self, name):
        return self.u[self.lo:self.hi]

    def put(self, name, data):
        self.k_local[...] = data

    def state(self):
        return {"u": self.u.copy(), "k": self.k_local.copy()}

    def restore(self, state):
        self.u = state["u"].copy()
        self.k_local[...] = state["k"]

    def results(self):
        return {"temperature": self.get("temperature")}


@dataclass(frozen=True)
class CellParams:
    temperature: float = param(0.0, "bath temperature T (a query setting)", units="K")
    k0: float = param(1.0, "k at T = 0", units=K_UNITS)
    beta: float = param(1.0, "slope of k(T)", units="1/K")
    tau: float = param(1.0, "relaxation time of x towards k(T)", units="s")
    cost: float = param(0.0, "busy seconds per step (benchmarks, load-balancing tests)", units="s")
    cost_spread: float = param(1.0, "the cost grows linearly with T from cost (T=0) to cost*cost_spread "
                               "(T=1)")
    sleep: bool = param(False, "spend the cost sleeping instead of computing (tests on a busy machine)")


class Cell(Solver):
    """One relaxing value x on group rank 0 (other ranks of an instance hold no points)."""

    Params = CellParams
    outputs = ("conductivity",)
    inputs = ("bath",)
    query_settings = ("temperature",)
    field_info = {"conductivity": FieldInfo(K_UNITS, "the relaxing conductivity x"),
                  "bath": FieldInfo("K", "bath temperature; overrides the setting once put")}

    def initialize(self, t0):
        n = 1 if self.comm.Get_rank() == 0 else 0
        self.points = np.zeros((n, 1))
        self.x = np.zeros(n)
        self.bath = np.full(n, self.params.temperature)

    def reset(self, params):
        self.params = params
        self.x[:] = 0.0
        self.bath[:] = params.temperature

    def fields(self):
        return {"conductivity": FieldSpec("float64", 1, K_UNITS, self.points),
                "bath": FieldSpec("float64", 1, "K", self.points)}

    def _spend(self):
        p = self.params
        if p.cost <= 0:
            return
        seconds = p.cost * (1.0 + (p.cost_spread - 1.0) * min(max(float(self.bath[0]) if len(self.bath)
                                                                     else 0.0, 0.0), 1.0))
        if p.sleep:
            time.sleep(seconds)
            return
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def advance(self, t, dt):
        p = self.params
        self._spend()
        r = dt / p.tau
        self.x = (self.x + r * law(self.bath, p.k0, p.beta)) / (1.0 + r)

    @classmethod
    def advance_batch(cls, instances, t, dt):
        """One vectorised step of many cells (each on its own rank-1 communicator)."""
        p = instances[0].params
        for cell in instances:
            cell._spend()
        x = np.array([c.x[0] for c in instances])
        bath = np.array([c.bath[0] for c in instances])
        r = dt / np.array([c.params.tau for c in instances]) if len(instances) > 1 else dt / p.tau
        k = law(bath, np.array([c.params.k0 for c in instances]), np.array([c.params.beta for c in instances]))
        x = (x + r * k) / (1.0 + r)
        for c, v in zip(instances, x):
            c.x[0] = v

    def get(self, name):
        return self.x

    def put(self, name, data):
        self.bath[...] = data

    def state(self):
        return {"x": self.x.copy(), "bath": self.bath.copy()}

    def restore(self, state):
        self.x, self.bath = state["x"].copy(), state["bath"].copy()
