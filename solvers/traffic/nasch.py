"""``traffic.nasch``: the Nagel–Schreckenberg cellular automaton.

Cells of ``cell_length`` [m] hold at most one car with an integer speed
0..vmax [cells/step].  One step (parallel update, Nagel & Schreckenberg 1992):
accelerate v <- min(v + 1, vmax); brake to the gap v <- min(v, gap); with
probability p slow down v <- max(v - 1, 0); move x <- x + v.

The cells are cut into ``bins`` bins (``cells`` divisible by ``bins``) and the
bins split over the group's ranks.  Each rank draws its slow-down decisions
from its own stream ``Generator(PCG64(SeedSequence(seed, spawn_key=(rank,))))``
whose state is part of :meth:`NaSchSolver.state`, so runs are reproducible
for a given rank count (results differ between rank counts, as the draws are
assigned to different cars).  Across a rank border a rank needs the first
car of the next segment (``Sendrecv`` of one int64) and hands over the cars
that moved past its end (``Sendrecv`` of the count, then the (position, speed)
pairs).  One step is ``step`` seconds; ``advance`` requires dt == step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from msorch.solver import param

from .agents import AgentRoadSolver
from .rng import make_stream, pack_stream, unpack_stream
from .road import segment
from .settings import raise_if_invalid

__all__ = ["NaSchParams", "NaSchSolver"]


@dataclass(frozen=True)
class NaSchParams:
    road: Literal["ring", "open"] = param("ring", "road topology")
    cells: int = param(1000, "number of cells")
    cell_length: float = param(7.5, "cell length", units="m")
    bins: int = param(10, "number of equal bins for the per-bin fields (divides cells, >= ranks)")
    vmax: int = param(5, "maximum speed", units="cells/step")
    p: float = param(0.25, "random slow-down probability")
    step: float = param(1.0, "duration of one update", units="s")
    initial_density: float = param(0.0, "fraction of cells occupied at the start")
    initial_placement: Literal["even", "random"] = param(
        "even", "cars evenly spaced, or each cell occupied with probability initial_density (rank streams)")
    initial_speed: int = param(0, "initial speed of those cars", units="cells/step")
    inflow: Literal["none", "probability", "channel"] = param(
        "none", "open road: a car enters the empty first cell with probability alpha each step, "
                "or alpha = upstream_flow * step from the input")
    alpha: float = param(0.5, "entry probability per step for inflow: probability")
    handover: bool = param(False, "add the vehicles_out output and vehicles_in input")
    handover_slots: int = param(16, "rows of the hand-over arrays")
    seed: int = param(0, "seed of the per-rank streams")


class NaSchSolver(AgentRoadSolver):
    """Nagel–Schreckenberg cars on a ring or open road (fields: see AgentRoadSolver).

    Inputs: ``upstream_flow`` [veh/s] (``inflow: channel``), ``vehicles_in``
    (``handover``; queued cars enter the first cell when it is empty, ahead of
    the random inflow).  The empty-bin speed is vmax.
    """

    Params = NaSchParams

    @classmethod
    def boundary_inputs(cls, p):
        return ("upstream_flow",) if p.road == "open" and p.inflow == "channel" else ()

    @classmethod
    def check(cls, p):
        probs = []
        if p.cells < 1 or p.bins < 1 or p.cells % p.bins:
            probs.append(("bins", f"bins ({p.bins}) must divide cells ({p.cells})", "choose a divisor"))
        if p.vmax < 1 or not 0 <= p.p <= 1:
            probs.append(("p", "need vmax >= 1 and 0 <= p <= 1", "fix them"))
        elif p.bins >= 1 and p.cells // max(p.bins, 1) < p.vmax:
            probs.append(("bins", "a bin is shorter than vmax cells", "use fewer bins"))
        if not 0 <= p.initial_density <= 1 or not 0 <= p.initial_speed <= p.vmax:
            probs.append(("initial_density", "density in [0, 1] and speed in [0, vmax]", "fix them"))
        if p.road == "ring" and (p.inflow != "none" or p.handover):
            probs.append(("road", "a ring has no inflow or hand-over", "use road: open"))
        return probs

    def initialize(self, t0):
        p = self.params
        raise_if_invalid(type(self), p)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.ring = p.road == "ring"
        self.seg = segment(p.cells * p.cell_length, p.bins, self.rank, self.size)
        per_bin = p.cells // p.bins
        self.lo, self.hi = self.seg.bin_lo * per_bin, self.seg.bin_hi * per_bin     # cells [lo, hi)
        self.rng = make_stream(p.seed, (self.rank,))
        self.setup_counts(p.handover_slots)
        self.alpha = p.alpha if p.inflow == "probability" else 0.0
        if p.initial_placement == "even":
            n = int(round(p.initial_density * p.cells))
            pos = (np.arange(n, dtype=np.int64) * p.cells) // max(n, 1)
            pos = pos[(pos >= self.lo) & (pos < self.hi)]
        else:                                   # each cell occupied with probability initial_density
            pos = self.lo + np.flatnonzero(self.rng.random(self.hi - self.lo) < p.initial_density)
        self.pos, self.vel = pos, np.full(len(pos), p.initial_speed, dtype=np.int64)
        self.cum["initial"] += self.bin_sum(self.positions())
        self.nxt, self.prv = (self.neighbours(self.comm, self.ring) if self.size > 1 else (None, None))

    def _leader_cell(self) -> int:
        """Cell of the first car downstream of this segment (or a cell far enough away)."""
        p = self.params
        far = self.hi + p.vmax + 1           # no car within reach: the gap cannot limit the speed
        if self.size == 1:
            if self.ring and len(self.pos):
                return int(self.pos[0]) + p.cells
            return far
        mine = np.array([self.pos[0] if len(self.pos) else self.hi + p.vmax + 1], dtype=np.int64)
        got = np.array([far], dtype=np.int64)
        # a rank sends its first car upstream; an empty segment (>= vmax cells) never limits anyone
        self.comm.Sendrecv(mine, dest=self.prv, sendtag=21, recvbuf=got, source=self.nxt, recvtag=21)
        lead = int(got[0])
        if self.ring and self.rank == self.size - 1:
            lead += p.cells
        return lead

    def advance(self, t, dt):
        p = self.params
        if abs(dt - p.step) > 1e-9 * p.step:
            raise ValueError(f"traffic.nasch: dt = {dt} s but one automaton update is step = {p.step} s; "
                             f"set the solver's dt to {p.step}")
        self.last_dt = dt
        self.step_in = self.step_out = 0
        lead = self._leader_cell()
        pos, vel = self.pos, self.vel
        gap = np.empty_like(pos)
        gap[:-1] = pos[1:] - pos[:-1] - 1
        if len(pos):
            gap[-1] = lead - pos[-1] - 1
        vel = np.minimum(np.minimum(vel + 1, p.vmax), gap)
        slow = self.rng.random(len(vel)) < p.p
        vel = np.where(slow, np.maximum(vel - 1, 0), vel)
        pos = pos + vel
        k = int(np.searchsorted(pos, self.hi, side="left"))
        out_pos, out_vel = pos[k:], vel[k:]
        pos, vel = pos[:k], vel[:k]
        if self.seg.last and len(out_pos):
            self.step_out += len(out_pos)
            if self.ring:
                out_pos = out_pos - p.cells
            else:
                self.cum["out"][-1] += len(out_pos)
                if p.handover:
                    self.mail.post((out_pos - p.cells) * p.cell_length, out_vel * p.cell_length / p.step,
                                   np.zeros(len(out_pos)))
                out_pos, out_vel = out_pos[:0], out_vel[:0]
        if self.size == 1:
            arrived = np.column_stack([out_pos, out_vel])
        else:
            arrived = self.shift_rows(self.comm, np.column_stack([out_pos, out_vel]), self.nxt, self.prv, 2,
                                      np.int64)
        if len(arrived):
            if self.ring and self.seg.first:
                self.step_in += len(arrived)
            pos = np.concatenate([arrived[:, 0], pos])
            vel = np.concatenate([arrived[:, 1], vel])
        self.pos, self.vel = pos, vel
        if not self.ring and self.seg.first:
            self._inflow()
        if p.handover:
            self.mail.flush()

    def _inflow(self):
        """A car enters cell 0 if it is empty: a queued hand-over car first, else with probability alpha."""
        p = self.params
        if len(self.pos) and self.pos[0] == 0:
            return
        if len(self.mail.inbox):
            v = int(round(self.mail.inbox[0, 2] * p.step / p.cell_length))
            self.mail.pop()
        elif self.alpha > 0 and self.rng.random() < self.alpha:
            v = p.vmax
        else:
            return
        gap = int(self.pos[0]) - 1 if len(self.pos) else p.vmax
        self.pos = np.concatenate([[0], self.pos]).astype(np.int64)
        self.vel = np.concatenate([[min(max(v, 0), p.vmax, gap)], self.vel]).astype(np.int64)
        self.step_in += 1
        self.cum["in"][0] += 1

    # ------------------------------------------------------------------ fields
    def positions(self):
        """Cell centres [m]."""
        return (self.pos + 0.5) * self.params.cell_length

    def speeds(self):
        return self.vel * (self.params.cell_length / self.params.step)

    def free_speed(self):
        return self.params.vmax * self.params.cell_length / self.params.step

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64)
        if name == "upstream_flow":
            if len(data):
                self.alpha = float(min(max(data[0] * self.params.step, 0.0), 1.0))
        elif name == "vehicles_in":
            self.mail.receive(data)
        else:
            raise KeyError(f"traffic.nasch has no input {name!r}")

    def state(self):
        return {"pos": self.pos.copy(), "vel": self.vel.copy(), "rng": pack_stream(self.rng),
                "alpha": np.array([self.alpha]), **self.count_state()}

    def restore(self, state):
        self.pos, self.vel = state["pos"].astype(np.int64), state["vel"].astype(np.int64)
        unpack_stream(self.rng, state["rng"])
        self.alpha = float(state["alpha"][0])
        self.count_restore(state)
