"""``traffic.idm``: Intelligent Driver Model agents on a single-lane road.

The road ``[0, road_length)`` is a ring or an open road.  It is cut into
``bins`` equal bins (the points of the per-bin output fields) and the bins are
split over the group's ranks; each rank moves the vehicles of its segment with
the numba kernel :func:`solvers.traffic.idm_kernel.idm_step`.

One step, on every rank (all communication is buffer-based):

1. if there are sources: ``Allgather`` each rank's rear and front vehicle,
   insert vehicles at the sources this rank owns (inflow at x = 0, on-ramps);
2. ``Allgather`` the rear vehicles again: the leader of a segment's front
   vehicle is the rear vehicle of the next non-empty segment downstream;
3. the IDM kernel moves every vehicle (parallel update, old-state leaders);
4. off-ramps remove crossing vehicles, the downstream end removes leavers;
5. vehicles past the segment end migrate to the next rank (``Sendrecv`` of
   the count, then ``Sendrecv`` of the packed rows).

Every decision depends only on global state and on streams or hashes keyed by
source or vehicle id, never on the rank count, so 1-rank and N-rank runs give
bitwise identical trajectories.

Vehicle hand-over (``handover: true``): ``vehicles_out`` lists the vehicles
that left in the last step and ``vehicles_in`` queues vehicles for insertion at
x = 0, both arrays of ``handover_slots`` rows laid out as documented in
:mod:`solvers.traffic.handover`.

HMM micro model (``patterns: [{kind: hmm, micro: ...}]``): a query sets
``density`` (and optionally the driver parameters, :attr:`IDMSolver.query_settings`);
the ring then holds N vehicles of the population (``class_*``, in exact
proportions, evenly interleaved) at their multi-class equilibrium
(:mod:`solvers.traffic.population`) and is stretched from ``road_length`` to
N / density so the density is exact.  The observables are the ordinary
``flow`` [veh/s], ``density`` [veh/m] and ``speed`` [m/s] fields; with
``bins: 1`` each is one ring average.  :meth:`IDMSolver.reset` re-initializes
without recompiling, and :meth:`IDMSolver.advance_batch` moves many one-rank
rings in one numba call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from msorch.solver import FieldSpec, param

from . import idm_kernel as K
from .agents import AgentRoadSolver
from .fundamental import idm_diagram, idm_equilibrium_table
from .rng import hash_uniform, make_stream, pack_stream, unpack_stream
from .population import even_classes, jam_spacing, place, ring_count
from .road import segment
from .settings import CorridorParams, RampParams, corridor_problems, demand_at, raise_if_invalid, ramp_problems

__all__ = ["IDMParams", "IDMSolver"]

_ID_STRIDE = float(2 ** 40)   # ids of vehicles made by source k: (k + 1) * 2^40 + counter


@dataclass(frozen=True)
class IDMParams(RampParams, CorridorParams):
    road: Literal["ring", "open"] = param("ring", "road topology")
    road_length: float = param(5000.0, "road length", units="m")
    bins: int = param(50, "number of equal bins for the per-bin fields (>= ranks)")
    v0: float = param(30.0, "desired speed", units="m/s")
    T: float = param(1.5, "safe time headway", units="s")
    s0: float = param(2.0, "minimum gap", units="m")
    a: float = param(1.5, "maximum acceleration", units="m/s^2")
    b: float = param(1.67, "comfortable deceleration", units="m/s^2")
    delta: float = param(4.0, "acceleration exponent")
    length: float = param(5.0, "vehicle length", units="m")
    class_fractions: tuple[float, ...] = param((), "fractions of driver/vehicle classes (empty: one class)")
    class_v0: tuple[float, ...] = param((), "v0 per class (empty: v0)", units="m/s")
    class_T: tuple[float, ...] = param((), "T per class (empty: T)", units="s")
    class_s0: tuple[float, ...] = param((), "s0 per class (empty: s0)", units="m")
    class_a: tuple[float, ...] = param((), "a per class (empty: a)", units="m/s^2")
    class_b: tuple[float, ...] = param((), "b per class (empty: b)", units="m/s^2")
    class_length: tuple[float, ...] = param((), "vehicle length per class (empty: length)", units="m")
    update: Literal["ballistic", "euler"] = param("ballistic", "time integration of the kinematics")
    initial_vehicles: int = param(0, "vehicles placed evenly over the road at the start")
    initial_speed: Optional[float] = param(None, "their speed (None: equilibrium speed of the spacing)",
                                           units="m/s")
    initial_perturbation: float = param(0.0, "vehicle 0 starts this far behind its place", units="m")
    density: float = param(0.0, "> 0: start with the population at this density at its equilibrium "
                           "(ring: stretched to N/density for an exact density; open road: on "
                           "density_region); replaces initial_vehicles", units="veh/m")
    density_region: tuple[float, ...] = param((), "(start, end) of the open road stretch filled at "
                                              "density (empty: the whole road)", units="m")
    inflow: Literal["none", "flow", "density", "channel"] = param(
        "none", "upstream boundary (open road): none, a fixed flow, a fixed density, or inputs")
    inflow_flow: float = param(0.5, "inflow demand for inflow: flow", units="veh/s")
    inflow_density: float = param(0.02, "inflow density for inflow: density", units="veh/m")
    inflow_speed: Optional[float] = param(None, "insertion speed cap (None: v0, or v_e of the density)",
                                          units="m/s")
    inflow_speed_rule: Literal["density", "flow"] = param(
        "density", "inflow: channel without inflow_speed: insert at v_e of the upstream_density input, or "
        "(flow) at the speed of the free-flow equilibrium state carrying the upstream_flow input (the "
        "state a macro road's boundary flux sends into an uncongested entry)")
    outflow: Literal["free", "density", "channel"] = param(
        "free", "downstream boundary (open road): free, or traffic of a fixed density / the "
                "downstream_density input beyond the end")
    outflow_density: float = param(0.0, "density beyond the end for outflow: density (0: free)",
                                   units="veh/m")
    merge_headway: float = param(0.5, "on-ramp vehicles merge into gaps of s0 + merge_headway * vT "
                                 "ahead and behind")
    merge_zone: float = param(50.0, "length of the on-ramps' acceleration lanes (downstream of the ramp)",
                              units="m")
    merge_rule: Literal["nose", "largest_gap"] = param(
        "nose", "where on-ramp vehicles merge: nose (the gap around the ramp position) or largest_gap "
        "(the middle of the largest gap on the acceleration lane, Treiber & Kesting's on-ramp; the lane "
        "must lie on one rank's segment)")
    handover: bool = param(False, "add the vehicles_out output and vehicles_in input")
    handover_slots: int = param(16, "rows of the hand-over arrays")
    seed: int = param(0, "seed of the class-assignment streams and off-ramp draws")


def _classes(p: IDMParams) -> np.ndarray:
    """(n_classes, 7) rows (fraction, v0, T, s0, a, b, length)."""
    fr = p.class_fractions or (1.0,)
    cols = [fr]
    for name in ("v0", "T", "s0", "a", "b", "length"):
        vals = getattr(p, "class_" + name)
        cols.append(vals if vals else (getattr(p, name),) * len(fr))
    return np.array(cols, dtype=np.float64).T


class IDMSolver(AgentRoadSolver):
    """IDM vehicles on a ring or open single-lane road, parallel by road segments.

    Fields: see :class:`solvers.traffic.agents.AgentRoadSolver` (the empty-bin
    speed is the class-0 v0).  Inputs: ``upstream_flow`` [veh/s] and
    ``upstream_density`` [veh/m] (``inflow: channel``; the density sets the
    insertion speed cap v_e), ``downstream_density`` [veh/m] (``outflow:
    channel``; see below), ``vehicles_in`` (``handover``).

    Downstream density rho_d > 0 (``outflow: density`` or ``channel``): the
    vehicle that left last stays visible as a leader beyond the end and drives
    on at the equilibrium speed v_e(1/rho_d - l), as the traffic downstream
    does; followers settle behind it at that speed and spacing, so a congested
    downstream state limits the outflow to Q_e(rho_d).
    """

    Params = IDMParams
    query_settings = ("density", "v0", "T", "s0", "a", "b", "delta", "length", "initial_speed",
                      "initial_perturbation")

    @classmethod
    def boundary_inputs(cls, p):
        ins = ()
        if p.road == "open" and p.inflow == "channel":
            ins += ("upstream_flow", "upstream_density")
        if p.road == "open" and p.outflow == "channel":
            ins += ("downstream_density",)
        return ins

    @classmethod
    def field_names(cls, p):
        outs, ins = super().field_names(p)
        if p.road == "open" and p.inflow == "channel":
            outs += ("upstream_supply",)
        return outs, ins

    @classmethod
    def check(cls, p):
        probs = []
        n = len(p.class_fractions) or 1
        for name in ("v0", "T", "s0", "a", "b", "length"):
            vals = getattr(p, "class_" + name)
            if vals and len(vals) != n:
                probs.append((f"class_{name}", f"has {len(vals)} values for {n} classes",
                              f"give one value per class_fractions entry, or leave it empty"))
        if p.class_fractions and (min(p.class_fractions) < 0 or abs(sum(p.class_fractions) - 1) > 1e-9):
            probs.append(("class_fractions", "fractions must be >= 0 and sum to 1", "rescale them"))
        if probs:
            return probs
        cl = _classes(p)
        if np.any(cl[:, 1:] <= 0):
            probs.append(("class_*", "v0, T, a, b and length must be > 0, s0 > 0", "fix the values"))
        if p.road_length <= 0 or p.bins < 1:
            probs.append(("road_length", "road_length must be > 0 and bins >= 1", "fix them"))
        probs += ramp_problems(p, p.road_length) + corridor_problems(p)
        # (position, is an on-ramp): an on-ramp's acceleration lane reaches merge_zone downstream
        src = sorted(([(0.0, False)] if p.road == "open" else []) + [(x, True) for x in p.onramp_positions])
        sep = cls.source_spacing(p)
        if any(b - a < sep + (p.merge_zone if ramp else 0.0) for (a, ramp), (b, _) in zip(src, src[1:])):
            probs.append(("onramp_positions", f"sources (inflow at 0 and on-ramps) closer than {sep:.1f} m "
                          f"(plus merge_zone {p.merge_zone:g} m after an on-ramp)",
                          "space them further apart (insertion looks one safe gap either way)"))
        if p.initial_vehicles * float(cl[:, 6].max()) > p.road_length:
            probs.append(("initial_vehicles", "the vehicles do not fit on the road", "use fewer"))
        if p.road == "ring" and (p.inflow != "none" or p.outflow != "free" or p.handover):
            probs.append(("road", "a ring has no inflow, outflow or hand-over", "use road: open"))
        probs += cls._density_problems(p, cl)
        return probs

    @staticmethod
    def _density_problems(p, cl) -> list[tuple[str, str, str]]:
        if p.density == 0 and not p.density_region:
            return []
        if p.density < 0 or (p.density > 0 and p.initial_vehicles):
            return [("density", "must be >= 0, and not given together with initial_vehicles",
                     "give either density or initial_vehicles")]
        if p.density_region:
            r = p.density_region
            if p.road == "ring" or len(r) != 2 or not 0 <= r[0] < r[1] <= p.road_length:
                return [("density_region", "needs (start, end) with 0 <= start < end <= road_length on "
                         "an open road", "fix it, or leave it empty for the whole road")]
        jam = 1.0 / jam_spacing(cl)
        if p.density > jam * (1 + 1e-12):
            return [("density", f"{p.density:.6g} veh/m is above the population's jam density {jam:.6g} veh/m",
                     "use a smaller density")]
        return []

    @staticmethod
    def source_spacing(p) -> float:
        """Smallest distance [m] between two sources: two safe gaps and two lengths (plus, after an
        on-ramp, its acceleration lane merge_zone: see :meth:`check`)."""
        cl = _classes(p)
        return float(2 * (cl[:, 3].max() + cl[:, 1].max() * cl[:, 2].max()) + 2 * cl[:, 6].max())

    # ------------------------------------------------------------------ setup
    def initialize(self, t0):
        p = self.params
        raise_if_invalid(type(self), p)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.ring = p.road == "ring"
        self.cls = _classes(p)
        self.cum_frac = np.cumsum(self.cls[:, 0])
        self.n_ring = ring_count(p.density, p.road_length, self.cls[:, 0]) if self.ring and p.density else 0
        self.L = self.n_ring / p.density if self.n_ring else p.road_length      # road length [m]
        self.seg = segment(self.L, p.bins, self.rank, self.size)
        # sources: 0 = upstream inflow (open road), then the on-ramps
        self.src_x = np.array([0.0] + list(p.onramp_positions))
        self.src_q = np.array([0.0] + list(p.onramp_flows))
        self.src_active = np.array([p.road == "open" and (p.inflow != "none" or p.handover)]
                                   + [True] * len(p.onramp_positions))
        self.src_own = (self.src_x >= self.seg.lo) & (self.src_x < self.seg.hi) & self.src_active
        self.src_bin = np.searchsorted(self.seg.edges, self.src_x, side="right") - 1 - self.seg.bin_lo
        if p.merge_rule == "largest_gap":
            for xr in p.onramp_positions:
                lo, hi = self.seg.lo, self.seg.hi
                if lo <= xr < hi and xr + p.merge_zone > hi and not self.seg.last:
                    raise ValueError(f"traffic.idm: merge_rule largest_gap needs each acceleration lane on one "
                                     f"rank's segment, but [{xr:g}, {xr + p.merge_zone:g}] m crosses {hi:g} m; "
                                     f"use fewer ranks, or move the on-ramp")
        self.sink_x = np.array(p.offramp_positions, dtype=np.float64)
        self.sink_bin = np.searchsorted(self.seg.edges, self.sink_x, side="right") - 1 - self.seg.bin_lo
        self.streams = [make_stream(p.seed, (0,))] + [make_stream(p.seed, (1, k))
                                                      for k in range(len(self.src_x))]
        self.src_demand = np.zeros(len(self.src_x))       # accumulated demand [veh]
        self.src_count = np.zeros(len(self.src_x), dtype=np.int64)
        self.setup_counts(p.handover_slots)
        self.up_flow_in = float(p.inflow_flow if p.inflow == "flow" else 0.0)
        self.up_density_in = float(p.inflow_density if p.inflow == "density" else 0.0)
        self.down_density_in = float(p.outflow_density if p.outflow == "density" else 0.0)
        self.exit_ghost = np.zeros(4)     # (present, x, v, length) of the last vehicle that left
        self.veh = self._initial_vehicles()
        self.work = np.zeros((2, max(64, 2 * self.veh.shape[1])))
        self.lead = np.zeros(4)
        self._checked_dt = None
        # a ring on one rank without ramps: no gathers, sources or sinks, a step is idm_kernel.ring_step
        self.one_rank_ring = self.ring and self.size == 1 and not len(self.sink_x) and not self.src_active.any()

    @property
    def tables(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per class, the equilibrium table (gaps s, speeds v) of :func:`idm_equilibrium_table`."""
        key = (self.params.delta, self.cls[:, 1:4].tobytes())
        if getattr(self, "_tables_key", None) != key:     # built on first use, kept across reset()
            self._tables = [idm_equilibrium_table(c[1], c[2], c[3], self.params.delta, 1000) for c in self.cls]
            self._tables_key = key
        return self._tables

    def reset(self, params) -> None:
        """New settings, back to t = 0 (HMM instance reuse): re-initializes the arrays only;
        the numba kernel stays compiled and the equilibrium tables are kept when unchanged."""
        self.params = params
        self.initialize(0.0)

    def _new_vehicles(self, n: int, stream) -> np.ndarray:
        """(NCOL, n) vehicles with classes drawn from ``stream`` (x, v, id left 0)."""
        veh = K.empty(n)
        c = np.searchsorted(self.cum_frac, stream.random(n) * self.cum_frac[-1], side="right")
        c = np.minimum(c, len(self.cls) - 1)
        self._set_class(veh, c)
        return veh

    def _set_class(self, veh, c) -> None:
        veh[K.CLS] = c
        veh[K.V0:K.LEN + 1] = self.cls[c, 1:].T
        K.set_derived(veh)

    def _initial_vehicles(self) -> np.ndarray:
        p = self.params
        if p.density > 0:
            return self._vehicles_at_density()
        n = p.initial_vehicles
        veh = self._new_vehicles(n, self.streams[0])   # drawn for all vehicles on every rank
        spacing = p.road_length / max(n, 1)
        veh[K.X] = spacing * np.arange(n)
        if n:
            veh[K.X, 0] -= p.initial_perturbation
            if veh[K.X, 0] < 0:
                veh[K.X, 0] += p.road_length if self.ring else -veh[K.X, 0]
        veh[K.ID] = np.arange(n)
        if p.initial_speed is None:
            for c, (s, v) in enumerate(self.tables):
                m = veh[K.CLS] == c
                veh[K.V, m] = np.interp(spacing - veh[K.LEN, m], s, v)
        else:
            veh[K.V] = p.initial_speed
        veh = veh[:, np.argsort(veh[K.X], kind="stable")]
        mine = veh[:, (veh[K.X] >= self.seg.lo) & (veh[K.X] < self.seg.hi)]
        self.cum["initial"] += self.bin_sum(mine[K.X])
        return np.ascontiguousarray(mine)

    def _vehicles_at_density(self) -> np.ndarray:
        """This rank's vehicles of the population at ``density`` in equilibrium (module doc)."""
        p = self.params
        lo, hi = (p.density_region if p.density_region else (0.0, self.L))
        n = self.n_ring if self.ring else int(round(p.density * (hi - lo)))
        veh = K.empty(n)
        self._set_class(veh, even_classes(n, self.cls[:, 0]))
        span = self.L if self.ring else n / p.density if n else 0.0
        veh[K.X], veh[K.V] = place(self.cls, veh[K.CLS].astype(np.int64), p.delta, lo, span, p.initial_speed)
        if n and not self.ring and veh[K.X, -1] >= self.L:
            veh = veh[:, veh[K.X] < self.L]             # rounding of n may push the front one past the end
            n = veh.shape[1]
        veh[K.ID] = np.arange(n)
        if n:
            veh[K.X, 0] -= p.initial_perturbation
            if veh[K.X, 0] < 0:
                veh[K.X, 0] += self.L if self.ring else -veh[K.X, 0]
        veh = veh[:, np.argsort(veh[K.X], kind="stable")]
        mine = veh[:, (veh[K.X] >= self.seg.lo) & (veh[K.X] < self.seg.hi)]
        self.cum["initial"] += self.bin_sum(mine[K.X])
        return np.ascontiguousarray(mine)

    # ------------------------------------------------------------------ step
    def advance(self, t, dt):
        p = self.params
        if dt != self._checked_dt:
            self._check_dt(dt)
        self.last_dt = dt
        self.step_in = self.step_out = 0
        n = self.veh.shape[1]
        if self.work.shape[1] < n:
            self.work = np.zeros((2, 2 * n))
        if self.one_rank_ring:      # the hot path of an HMM micro ring: one numba call per step
            self.step_in = self.step_out = K.ring_step(self.veh, self.L, p.delta, p.update == "ballistic", dt,
                                                       self.lead, self.work[0], self.work[1])
            return
        if self.src_active.any():
            self._insert(t, dt)
        K.idm_step(self.veh, self._leader(), dt, p.delta, p.update == "ballistic", self.work[0], self.work[1])
        if len(self.sink_x):
            self._offramps()
        self._boundary_and_migrate()

    @classmethod
    def advance_batch(cls, instances, t, dt):
        """One step of many instances on this rank; one numba call moves all one-rank rings.

        Rings on one rank without ramps go through
        :func:`idm_kernel.ring_batch_step` (bitwise what :meth:`advance` gives);
        any other instance is advanced by its own :meth:`advance`.
        """
        rings = []
        for inst in instances:
            if inst.one_rank_ring:
                rings.append(inst)
            else:
                inst.advance(t, dt)
        if not rings:
            return
        for inst in rings:
            if dt != inst._checked_dt:
                inst._check_dt(dt)
            inst.last_dt = dt
        batch = cls._batch_arrays(rings)
        K.ring_batch_step(batch["vehs"], batch["lengths"], batch["deltas"], batch["ballistic"], dt,
                          batch["lead"], batch["acc"], batch["xold"], batch["crossed"])
        for inst, m in zip(rings, batch["crossed"].tolist()):
            inst.step_in = inst.step_out = m

    _batch: dict = {}

    @classmethod
    def _batch_arrays(cls, rings) -> dict:
        """The kernel's arguments, rebuilt only when an instance's arrays or settings changed."""
        key = tuple(id(r) for r in rings)
        b = cls._batch.get("key") == key and cls._batch
        if not b or any(r.veh is not v for r, v in zip(rings, b["arrays"])) or \
                any(r.L != L for r, L in zip(rings, b["lengths"])):
            from numba.typed import List
            arrays = [r.veh for r in rings]
            n = max(a.shape[1] for a in arrays)
            b = {"key": key, "arrays": arrays, "vehs": List(arrays),
                 "lengths": np.array([r.L for r in rings]),
                 "deltas": np.array([r.params.delta for r in rings]),
                 "ballistic": np.array([r.params.update == "ballistic" for r in rings]),
                 "lead": np.zeros(4), "acc": np.zeros(max(n, 1)), "xold": np.zeros(max(n, 1)),
                 "crossed": np.zeros(len(rings), dtype=np.int64)}
            cls._batch = b
        return b

    def _check_dt(self, dt) -> None:
        vmax = max(float(self.cls[:, 1].max()), float(self.veh[K.V].max(initial=0.0)))
        if vmax * dt >= float(np.diff(self.seg.edges).min()):
            raise ValueError(f"traffic.idm: dt = {dt} s lets a vehicle at {vmax} m/s cross a whole "
                             f"bin ({np.diff(self.seg.edges).min():.3g} m); use fewer bins or a smaller dt")
        self._checked_dt = dt

    def _ends(self) -> np.ndarray:
        """(size, 8) per rank: n, rear (x, v, len), front (x, v, T, s0). Collective."""
        v = self.veh
        mine = np.zeros(8)
        if v.shape[1]:
            mine[:] = (v.shape[1], v[K.X, 0], v[K.V, 0], v[K.LEN, 0],
                       v[K.X, -1], v[K.V, -1], v[K.T, -1], v[K.S0, -1])
        if self.size == 1:
            return mine[None, :]
        out = np.empty((self.size, 8))
        self.comm.Allgather(mine, out)
        return out

    def _ghost(self, ends: np.ndarray, downstream: bool):
        """The nearest vehicle on another rank's segment, or this one's after a full ring lap.

        Returns the ``ends`` row and the position offset (+-L when wrapped) or None.
        """
        r, L = self.rank, self.L
        for k in range(1, self.size + 1):
            q = r + k if downstream else r - k
            wrapped = q >= self.size or q < 0
            if wrapped and not self.ring:
                return None
            if ends[q % self.size, 0] > 0:
                return ends[q % self.size], (L if downstream else -L) if wrapped else 0.0
        return None

    def _leader(self) -> np.ndarray:
        """(4,) leader of this rank's front vehicle: (present, x, v, length). Collective."""
        p, lead, veh = self.params, self.lead, self.veh
        if self.size == 1 and self.ring:         # the hot single-rank ring: no gather needed
            if veh.shape[1]:
                lead[:] = (1.0, veh[K.X, 0] + self.L, veh[K.V, 0], veh[K.LEN, 0])
            else:
                lead[0] = 0.0
            return lead
        g = self._ghost(self._ends(), downstream=True)
        if g is not None:
            row, off = g
            lead[:] = (1.0, row[1] + off, row[2], row[3])
        elif self.seg.last and self.down_density_in > 0:
            lead[:] = self.exit_ghost
        else:
            lead[:] = 0.0
        return lead

    def _insert(self, t, dt):
        """Insert at most one vehicle per owned source (collective: gathers the ends)."""
        p = self.params
        ends = self._ends()
        for k in range(len(self.src_x)):
            if not self.src_active[k]:
                continue
            if k == 0 and p.inflow == "channel":
                q = self.up_flow_in
            elif k == 0 and p.inflow == "density":
                s, v = self.tables[0]
                rho = p.inflow_density
                q = rho * float(np.interp(1.0 / rho - self.cls[0, 6], s, v))
            else:
                q = self.src_q[k] if k else (demand_at(p, t, dt) if p.inflow == "flow" else 0.0)
            self.src_demand[k] += q * dt
            if not self.src_own[k]:
                continue
            if k == 0 and len(self.mail.inbox):
                h = self.mail.inbox[0]
                new = K.empty(1)
                self._set_class(new, np.array([int(min(max(h[3], 0), len(self.cls) - 1))]))
                x_at = min(max(h[1], 0.0), 0.5 * (self.seg.hi - self.seg.lo))
                if self._try_insert(k, new, x_at, h[2], ends, ramp=False):
                    self.mail.pop()
                    self.step_in += 1
                    self.cum["in"][0] += 1
                continue
            if self.src_demand[k] < 1.0:
                continue
            state = self.streams[k + 1].bit_generator.state
            new = self._new_vehicles(1, self.streams[k + 1])
            v_cap = self._inflow_speed() if k == 0 else float(new[K.V0, 0])
            if k > 0 and p.merge_rule == "largest_gap":
                done = self._try_merge(k, new, v_cap, ends)
            else:
                done = self._try_insert(k, new, self.src_x[k], v_cap, ends, ramp=k > 0)
            if done:
                self.src_demand[k] -= 1.0
                if k == 0:
                    self.step_in += 1
                    self.cum["in"][0] += 1
                else:
                    self.cum["created"][self.src_bin[k]] += 1
            else:
                # the same vehicle tries again next step: rewind its class draw
                self.streams[k + 1].bit_generator.state = state

    def _inflow_speed(self) -> float:
        p = self.params
        if p.inflow_speed is not None:
            return p.inflow_speed
        if p.inflow == "channel" and p.inflow_speed_rule == "flow":
            # the state a Godunov boundary flux q sends into a free road: the free-branch state
            # carrying q (capacity's speed for q >= capacity); a congested entry caps the speed
            # at the leader's anyway
            fd = self._entry_diagram()
            k = int(np.argmax(fd.q))
            q = min(max(self.up_flow_in, 0.0), float(fd.q[k]))
            rho = float(np.interp(q, fd.q[:k + 1], fd.rho[:k + 1]))
            return q / rho if rho > 0 else float(self.cls[0, 1])
        rho = self.up_density_in if p.inflow == "channel" else (p.inflow_density if p.inflow == "density" else 0)
        if rho > 0:
            s, v = self.tables[0]
            return float(np.interp(1.0 / rho - self.cls[0, 6], s, v))
        return float(self.cls[0, 1])

    def _try_insert(self, k, new, x_at, v_cap, ends, ramp: bool) -> bool:
        """Insert vehicle ``new`` (NCOL, 1) near ``x_at`` [m] if it fits, at speed min(v_cap, leader speed).

        The upstream inflow enters at ``x_at`` with the IDM's desired gap s0 + vT
        to its leader, so insertion never forces braking.  An on-ramp vehicle
        merges into the middle of the gap around the ramp (within ``merge_zone``)
        and accepts gaps of s0 + merge_headway * vT ahead and behind.  All
        inputs are global state, so the decision does not depend on the layout.
        """
        p, veh = self.params, self.veh
        n = veh.shape[1]
        i = int(np.searchsorted(veh[K.X], x_at, side="right"))
        if i < n:
            xl, vl, ll = veh[K.X, i], veh[K.V, i], veh[K.LEN, i]
        else:
            g = self._ghost(ends, downstream=True)
            xl, vl, ll = (g[0][1] + g[1], g[0][2], g[0][3]) if g is not None else (np.inf, np.inf, 0.0)
        length, s0, T = new[K.LEN, 0], new[K.S0, 0], new[K.T, 0]
        h = p.merge_headway if ramp else 1.0
        if ramp:
            if i > 0:
                xf, vf, tf, sf = veh[K.X, i - 1], veh[K.V, i - 1], veh[K.T, i - 1], veh[K.S0, i - 1]
            else:
                g = self._ghost(ends, downstream=False)
                xf, vf, tf, sf = (g[0][4] + g[1], g[0][5], g[0][6], g[0][7]) if g is not None \
                    else (-np.inf, 0.0, 0.0, 0.0)
            # the acceleration lane runs from the ramp nose x_at to x_at + merge_zone; the new
            # vehicle may sit past this segment's end until the migration later in this step
            mid = 0.5 * (xf + xl - ll + length) if np.isfinite(xf + xl) else x_at
            x_at = max(min(mid, x_at + p.merge_zone, xl - ll), x_at)
            if x_at - length - xf < sf + h * vf * tf:
                return False
        v_ins = min(v_cap, vl)
        if xl - ll - x_at < s0 + h * v_ins * T:
            return False
        new[K.X, 0] = x_at
        new[K.V, 0] = v_ins
        new[K.ID, 0] = (k + 1) * _ID_STRIDE + self.src_count[k]
        self.src_count[k] += 1
        self.veh = np.concatenate([veh[:, :i], new, veh[:, i:]], axis=1)
        return True

    def _try_merge(self, k, new, v_cap, ends) -> bool:
        """Merge on-ramp vehicle ``new`` (NCOL, 1) into the largest gap on the acceleration lane.

        The lane is [x_r, x_r + merge_zone] (x_r the ramp position, m).  Candidate gaps are
        those between consecutive vehicles (the nearest ones outside the lane, or another
        rank's, included) with their part inside the lane; the largest such part wins (the
        upstream-most on ties).  The vehicle goes to the middle of that part at speed
        min(v_cap, leader speed) and is accepted when its gaps ahead and behind are at least
        s0 + merge_headway * vT of itself and of its follower (Treiber & Kesting's on-ramp
        rule: the middle of the largest gap of the merging zone).
        """
        p, veh = self.params, self.veh
        n = veh.shape[1]
        xr = self.src_x[k]
        xe = xr + p.merge_zone
        x = veh[K.X]
        i0 = int(np.searchsorted(x, xr, side="left"))     # first vehicle on (or past) the lane
        i1 = int(np.searchsorted(x, xe, side="right"))    # first vehicle past the lane
        up = self._ghost(ends, downstream=False) if i0 == 0 else None
        down = self._ghost(ends, downstream=True) if i1 == n else None
        # followers j - 1 and leaders j for j = i0 .. i1 (index -1 / n: a ghost or nobody)
        xf = np.concatenate([[up[0][4] + up[1] if up is not None else -np.inf] if i0 == 0 else [],
                             x[max(i0 - 1, 0):i1]])
        xl = np.concatenate([x[i0:i1 + 1] - veh[K.LEN, i0:i1 + 1],
                             [down[0][1] + down[1] - down[0][3] if down is not None else np.inf]
                             if i1 == n else []])
        lo, hi = np.maximum(xf, xr), np.minimum(xl, xe)
        g = int(np.argmax(hi - lo))
        length, s0, T = new[K.LEN, 0], new[K.S0, 0], new[K.T, 0]
        x_at = min(max(0.5 * (lo[g] + length + hi[g]), xr), hi[g])
        j = i0 + g                                         # the leader's index (n: ghost or none)
        vl = veh[K.V, j] if j < n else (down[0][2] if down is not None else np.inf)
        v_ins = min(v_cap, vl)
        h = p.merge_headway
        if xl[g] - x_at < s0 + h * v_ins * T:
            return False
        if np.isfinite(xf[g]):
            if j > 0:
                vf, tf, sf = veh[K.V, j - 1], veh[K.T, j - 1], veh[K.S0, j - 1]
            else:
                vf, tf, sf = up[0][5], up[0][6], up[0][7]
            if x_at - length - xf[g] < sf + h * vf * tf:
                return False
        new[K.X, 0] = x_at
        new[K.V, 0] = v_ins
        new[K.ID, 0] = (k + 1) * _ID_STRIDE + self.src_count[k]
        self.src_count[k] += 1
        self.veh = np.concatenate([veh[:, :j], new, veh[:, j:]], axis=1)
        return True

    def _offramps(self):
        p, veh = self.params, self.veh
        n = veh.shape[1]
        xo, xn = self.work[1, :n], veh[K.X]
        leave = np.zeros(n, dtype=bool)
        for j, xs in enumerate(self.sink_x):
            crossed = (xo < xs) & (xn >= xs)
            if self.ring:
                crossed |= (xo < xs + self.L) & (xn >= xs + self.L)
            if not crossed.any():
                continue
            go = crossed & ~leave & (hash_uniform(p.seed, j + 1, veh[K.ID]) < p.offramp_fractions[j])
            if go.any():
                # the vehicle may have crossed the ramp from the previous segment: count it where it was
                self.cum["removed"][min(max(self.sink_bin[j], 0), self.seg.n_local - 1)] += int(go.sum())
                leave |= go
        if leave.any():
            self.veh = np.ascontiguousarray(veh[:, ~leave])

    def _boundary_and_migrate(self):
        p, seg, veh = self.params, self.seg, self.veh
        L = self.L
        k = int(np.searchsorted(veh[K.X], seg.hi, side="left"))
        passing = veh[:, k:]
        m = passing.shape[1]
        if not self.ring and seg.last:
            self._move_exit_ghost(passing)
        if m == 0 and self.size == 1:
            return self.mail.flush() if p.handover else None
        self.veh = veh = veh[:, :k]
        if not self.ring and seg.last:
            if m:
                self.step_out += m
                self.cum["out"][-1] += m
                if p.handover:
                    self.mail.post(passing[K.X] - L, passing[K.V], passing[K.CLS])
            passing = passing[:, :0]
        elif self.ring and seg.last and m:
            self.step_out += m
            passing = passing.copy()
            passing[K.X] -= L
        if self.size == 1:
            if passing.shape[1]:             # ring on one rank: the leavers re-enter at the back
                self.step_in += passing.shape[1]
                self.veh = np.concatenate([passing, veh], axis=1)
            else:
                self.veh = np.ascontiguousarray(veh)
        else:
            rows = self.shift_rows(self.comm, passing.T, *self.neighbours(self.comm, self.ring), K.NCOL,
                                   np.float64)
            if len(rows):
                if self.ring and seg.first:
                    self.step_in += len(rows)
                self.veh = np.concatenate([rows.T, veh], axis=1)
            else:
                self.veh = np.ascontiguousarray(veh)
        if p.handover:
            self.mail.flush()

    def _move_exit_ghost(self, leavers) -> None:
        """Drive the exit ghost on at v_e(rho_d); the rearmost vehicle that just left replaces it."""
        if self.down_density_in <= 0:
            self.exit_ghost[0] = 0.0
            return
        s, v = self.tables[0]
        v_down = float(np.interp(1.0 / self.down_density_in - self.cls[0, 6], s, v))
        g = self.exit_ghost
        g[1] += g[2] * self.last_dt
        g[2] = v_down
        if leavers.shape[1]:
            g[:] = (1.0, leavers[K.X, 0], min(leavers[K.V, 0], v_down), leavers[K.LEN, 0])

    # ------------------------------------------------------------------ fields
    def fields(self):
        f = super().fields()
        if "upstream_supply" in self.field_names(self.params)[0]:
            f["upstream_supply"] = FieldSpec("float64", 1, "veh/s", f["upstream_flow"].points)
        return f

    def entry_supply(self) -> float:
        """What the road entry can take [veh/s] (inflow: channel; the macro road upstream bounds
        its boundary flux by it, so a queue reaching the entry spills back into the macro road).

        The supply S(rho) = Q_e(max(rho, rho_c)) of the class-0 IDM equilibrium diagram at
        the density rho of the first bin, less the vehicles already handed over that wait for
        a gap beyond the one in progress: S - max(0, waiting - 1) / dt, at least 0.
        """
        rho = float(self.get("density")[0])
        waiting = float(self.src_demand[0]) + len(self.mail.inbox)
        return max(0.0, float(self._entry_diagram().supply(rho)) - max(0.0, waiting - 1.0) / self.last_dt)

    def _entry_diagram(self):
        """The class-0 IDM equilibrium diagram (:func:`fundamental.idm_diagram`), built on first use."""
        if getattr(self, "_supply_fd", None) is None:
            c = self.cls[0]
            self._supply_fd = idm_diagram(c[1], c[2], c[3], self.params.delta, c[6])
        return self._supply_fd

    def get(self, name):
        if name == "upstream_supply" and "upstream_supply" in self.field_names(self.params)[0]:
            return np.array([self.entry_supply()]) if self.seg.first else np.zeros(0)
        return super().get(name)

    def results(self):
        """Per-bin fields and counts (:meth:`AgentRoadSolver.results`) plus ``count_queued``
        [veh], shape (n_local_bins,): demand accumulated at a source (the upstream end, an
        on-ramp) and hand-over arrivals not yet on the road, in the source's bin.  With it,
        initial + the integrated demands == out + removed + present + queued."""
        out = super().results()
        q = np.zeros(self.seg.n_local)
        for k in np.flatnonzero(self.src_own):
            q[self.src_bin[k]] += self.src_demand[k]
        if self.seg.first:
            q[0] += len(self.mail.inbox)
        out["count_queued"] = q
        return out

    def positions(self):
        return self.veh[K.X]

    def speeds(self):
        return self.veh[K.V]

    def free_speed(self):
        return float(self.cls[0, 1])

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64)
        if name == "upstream_flow":
            self.up_flow_in = float(data[0]) if len(data) else self.up_flow_in
        elif name == "upstream_density":
            self.up_density_in = float(data[0]) if len(data) else self.up_density_in
        elif name == "downstream_density":
            self.down_density_in = float(data[0]) if len(data) else self.down_density_in
        elif name == "vehicles_in":
            self.mail.receive(data)
        else:
            raise KeyError(f"traffic.idm has no input {name!r}")

    def vehicles(self) -> np.ndarray:
        """This rank's vehicles as rows (n, NCOL), columns :data:`idm_kernel.COLUMNS`; a copy."""
        return self.veh.T.copy()

    # ------------------------------------------------------------------ state
    def state(self):
        return {"veh": self.veh.copy(), "src_demand": self.src_demand.copy(), "src_count": self.src_count.copy(),
                "streams": np.stack([pack_stream(g) for g in self.streams]),
                "inputs": np.array([self.up_flow_in, self.up_density_in, self.down_density_in]),
                "exit_ghost": self.exit_ghost.copy(),
                **self.count_state()}

    def restore(self, state):
        self.veh = np.ascontiguousarray(state["veh"], dtype=np.float64).reshape(K.NCOL, -1).copy()
        self.src_demand = state["src_demand"].copy()
        self.src_count = state["src_count"].copy()
        for g, packed in zip(self.streams, state["streams"]):
            unpack_stream(g, packed)
        self.up_flow_in, self.up_density_in, self.down_density_in = map(float, state["inputs"])
        self.exit_ghost = state["exit_ghost"].copy()
        self.count_restore(state)
        if self.work.shape[1] < self.veh.shape[1]:
            self.work = np.zeros((2, 2 * self.veh.shape[1]))
