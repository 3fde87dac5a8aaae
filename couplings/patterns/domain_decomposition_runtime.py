"""Run-time part of the domain-decomposition recipes: per-iteration interface statistics.

The recipes themselves are couplings and a scheme (see
:mod:`couplings.patterns.domain_decomposition`); this hook only observes.  On
the first solver of ``between`` it reads, before the steps of every iteration,
the interface data g_k the worker is about to give the solver (the Dirichlet
data of Schwarz, the relaxed interface value of Dirichlet–Neumann: what the
acceleration produced), and its group root sends one float64 row
(window, k, ‖g_k − g_{k−1}‖₂, ⟨g_k − g_{k−1}, g_{k−1} − g_{k−2}⟩, ‖g_k‖₂) to the
coordinator.  Norms are over the whole group (one small ``Allreduce``).
"""
from __future__ import annotations

import numpy as np

from couplings.patterns import Roles

__all__ = ["roles", "IterationRecorder"]


class IterationRecorder:
    """Hook on the first solver's ranks (see the module docstring)."""

    def __init__(self, ctx, index: int, source: str, field: str):
        self.ctx, self.index, self.source, self.field = ctx, index, source, field
        self.inbound = None
        self.window = -1
        self.k = 0
        self.prev = self.prev_change = None

    def setup(self, worker):
        self.worker = worker
        couplings = worker.job.couplings
        for inb in worker.inbound:
            c = couplings[inb.index]
            if c.source == self.source and c.target_field == self.field:
                self.inbound = inb
        if self.inbound is None:
            raise RuntimeError(f"domain decomposition: no coupling {self.source}.* -> "
                               f"{worker.name}.{self.field} on this solver")

    def window_start(self, w: int):
        self.window, self.k = w, 0
        self.prev = self.prev_change = None

    def before_steps(self):
        from mpi4py import MPI
        from msorch.messages import TAG_PATTERN0
        g = np.array(self.inbound.used[1:], dtype=np.float64).ravel()
        local = np.zeros(3)
        local[2] = g @ g
        change = None
        if self.prev is not None:
            change = g - self.prev
            local[0] = change @ change
            if self.prev_change is not None:
                local[1] = change @ self.prev_change
        total = np.empty(3)
        self.worker.group.Allreduce(local, total, op=MPI.SUM)
        nan = float("nan")
        row = np.array([self.window, self.k, np.sqrt(total[0]) if change is not None else nan,
                        total[1] if self.prev_change is not None else nan, np.sqrt(total[2])])
        if self.worker.group.Get_rank() == 0:
            self.ctx.world.Send(row, dest=0, tag=TAG_PATTERN0 + self.index)
        self.prev_change, self.prev = change, g
        self.k += 1


def roles(ctx, name: str, index: int, pattern) -> Roles:
    """The recorder on the first solver of ``between``; nothing elsewhere."""
    first, second = pattern.between
    if name != first:
        return Roles()
    field = pattern.dirichlet if pattern.kind == "schwarz" else pattern.value
    return Roles(hooks=[IterationRecorder(ctx, index, second, field)])
