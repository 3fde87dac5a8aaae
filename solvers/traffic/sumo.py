"""``traffic.sumo``: a SUMO road run through libsumo on one rank, with ``traffic.idm``'s settings.

SUMO is serial, so the solver group has one rank.  The road is a chain of
single-lane edges, upstream to downstream: generated (``net_file`` empty: a ring
or straight road of ``bins`` equal edges, built with netconvert by
:mod:`solvers.traffic.sumo_network`) or named by ``edges`` in a SUMO network
``net_file``.  Each edge is one bin of the per-bin fields, so densities, flows
and speeds are *per edge*, read from SUMO's edge aggregates
(``edge.getLastStepVehicleNumber/MeanSpeed``: a few calls per edge, none per
vehicle).  A vehicle's road coordinate is the length of the edges before its
edge plus its position on it.

Vehicles follow SUMO's own IDM (``carFollowModel="IDM"``) with the msorch IDM
parameters (minGap = s0, tau = T, accel = a, decel = b, maxSpeed = v0, delta;
``update: ballistic`` selects ``--step-method.ballistic``).  Vehicles never
teleport (``--time-to-teleport -1``; ``teleport: fatal`` instead ends the run
when SUMO would teleport one), so counts balance exactly:
``initial + in == out + present``.

Coupling at the road's end edges (as ``traffic.idm``):

* ``inflow: channel``: the ``upstream_flow`` input [veh/s] accumulates demand; at
  each whole vehicle one is added on the first edge (``depart now``, front at the
  edge start, speed ``inflow_speed`` or v0; the ``upstream_density`` input sets
  v_e of that density instead) and SUMO inserts it when its insertion check
  passes; it counts as ``in`` when it enters the network.  ``inflow: flow``: a
  fixed demand ``inflow_flow``.
* ``handover``: ``vehicles_in`` rows (:mod:`solvers.traffic.handover`) are added
  with their speed; vehicles that reach the end of the last edge are reported in
  ``vehicles_out`` with the speed they had in the step before (SUMO has no state
  for a vehicle that arrived).

The SUMO clock runs one step ahead of msorch's: initial vehicles are inserted
by one SUMO step at set-up, so msorch time t is SUMO time t - t0 + step_length.

Checkpoints: SUMO's own saved state (``simulation.saveState`` with 17 digits and
its random-number state) inside the HDF5 checkpoint, plus the adapter's
counters; ``loadState`` puts it back and the run continues bitwise (tested).  A
ring's routes repeat their lap for 1e5 s of driving at v0.

Errors: libsumo raises ``TraCIException`` with SUMO's message; SUMO's start-up
errors are read from its error log and quoted.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from msorch.solver import param

from .agents import AgentRoadSolver
from .fundamental import idm_equilibrium_table
from .handover import NC as HNC
from .idm import IDMParams
from .road import Segment, segment
from .settings import raise_if_invalid
from .sumo_network import net_edge_lengths, write_road, write_routes

__all__ = ["SumoParams", "SumoSolver"]

# SUMO 1.15 leaves the type of a vehicle added through TraCI out of its saved state, which
# then loads it as DEFAULT_VEHTYPE: so the IDM type *is* the default type.
_VTYPE = "DEFAULT_VEHTYPE"


@dataclass(frozen=True)
class SumoParams(IDMParams):
    net_file: str = param("", "SUMO network (.net.xml); empty: generate a ring or road of `bins` edges")
    edges: tuple[str, ...] = param((), "with net_file: the road's single-lane edges, upstream to downstream")
    route_file: str = param("", "extra SUMO routes/vehicles loaded at start (they count as in/present)")
    step_length: float = param(0.1, "SUMO's step length; must equal the solver's dt", units="s")
    teleport: Literal["never", "fatal"] = param(
        "never", "never: SUMO never teleports a blocked vehicle (it waits); fatal: a vehicle blocked for "
                 "time_to_teleport ends the run (a teleport would break the vehicle balance)")
    time_to_teleport: float = param(300.0, "with teleport: fatal, how long a vehicle may be blocked", units="s")
    sumo_options: tuple[str, ...] = param((), "extra sumo command-line options")


_UNSUPPORTED = ("class_fractions", "onramp_positions", "offramp_positions")


class SumoSolver(AgentRoadSolver):
    """SUMO through libsumo; see the module docstring."""

    Params = SumoParams

    @classmethod
    def boundary_inputs(cls, p):
        ins = ()
        if p.road == "open" and p.inflow == "channel":
            ins += ("upstream_flow", "upstream_density")
        return ins

    @classmethod
    def check(cls, p):
        probs = []
        for name in _UNSUPPORTED:
            if getattr(p, name):
                probs.append((name, "not supported by traffic.sumo", "use traffic.idm, or leave it empty"))
        if p.outflow != "free":
            probs.append(("outflow", "traffic.sumo has a free downstream end only", "outflow: free"))
        if p.inflow == "density":
            probs.append(("inflow", "inflow: density is not supported by traffic.sumo",
                          "use inflow: flow or channel"))
        if p.road == "ring" and (p.inflow != "none" or p.handover):
            probs.append(("road", "a ring has no inflow, outflow or hand-over", "use road: open"))
        if p.teleport == "fatal" and p.time_to_teleport <= 0:
            probs.append(("time_to_teleport", "must be > 0", "time_to_teleport: 300"))
        if p.step_length <= 0:
            probs.append(("step_length", "must be > 0", "step_length: 0.1"))
        if p.net_file:
            if not Path(p.net_file).is_file():
                probs.append(("net_file", f"no such file: {p.net_file}", "give an existing SUMO .net.xml"))
            elif not p.edges:
                probs.append(("edges", "a net_file needs the road's edges", "e.g. edges: [e0, e1, e2]"))
            else:
                known = net_edge_lengths(p.net_file)
                missing = [e for e in p.edges if e not in known]
                if missing:
                    probs.append(("edges", f"edge(s) {', '.join(map(repr, missing))} not in {p.net_file}",
                                  f"use edges of the network, e.g. {sorted(known)[:4]}"))
        elif p.road_length <= 0 or p.bins < 1:
            probs.append(("road_length", "road_length must be > 0 and bins >= 1", "fix them"))
        if p.route_file and not Path(p.route_file).is_file():
            probs.append(("route_file", f"no such file: {p.route_file}", "give an existing SUMO route file"))
        if p.initial_vehicles * p.length > p.road_length and not p.net_file:
            probs.append(("initial_vehicles", "the vehicles do not fit on the road", "use fewer"))
        return probs

    # ------------------------------------------------------------------ setup
    def initialize(self, t0):
        import libsumo
        p = self.params
        raise_if_invalid(type(self), p)
        if self.comm.Get_size() != 1:
            raise ValueError("traffic.sumo runs SUMO on one rank (SUMO is serial); set ranks: 1")
        self.sumo = libsumo
        self.tmp = tempfile.TemporaryDirectory(prefix="msorch-sumo-")
        d = Path(self.tmp.name)
        ring = p.road == "ring"
        if p.net_file:
            net, self.edge_ids = p.net_file, list(p.edges)
            lengths = net_edge_lengths(p.net_file)
            widths = np.array([lengths[e] for e in self.edge_ids])
        else:
            net, self.edge_ids = write_road(d, p.bins, p.road_length / p.bins, p.v0 + 10.0, ring)
            widths = np.full(p.bins, p.road_length / p.bins)
        edges = np.concatenate([[0.0], np.cumsum(widths)])
        if p.net_file:
            self.seg = Segment(float(edges[-1]), len(widths), 0, 1, edges, 0, len(widths))
        else:
            self.seg = segment(p.road_length, p.bins, 0, 1)
        self.offset = dict(zip(self.edge_ids, self.seg.edges[:-1]))
        vtype = dict(v0=p.v0, T=p.T, s0=p.s0, a=p.a, b=p.b, delta=p.delta, length=p.length)
        routes = d / "msorch.rou.xml"
        # a ring's routes repeat their lap: enough laps for 1e5 s at v0 (SUMO expands them at start)
        write_routes(routes, vtype, self.edge_ids, ring,
                     repeat=int(np.ceil(1e5 * p.v0 / self.seg.length)) + 1)
        self.errlog = d / "sumo-errors.log"
        os.environ.setdefault("SUMO_HOME", "/usr/share/sumo")
        cmd = ["sumo", "-n", str(net), "-r", ",".join(filter(None, [str(routes), p.route_file])),
               "--step-length", repr(p.step_length), "--begin", "0", "--no-step-log", "true",
               "--time-to-teleport", "-1" if p.teleport == "never" else repr(p.time_to_teleport),
               "--collision.action", "warn", "--no-warnings", "true",
               "--duration-log.disable", "true", "--error-log", str(self.errlog),
               "--save-state.precision", "17", "--save-state.rng", "true", "--seed", str(p.seed),
               "--step-method.ballistic", "true" if p.update == "ballistic" else "false", *p.sumo_options]
        try:
            libsumo.start(cmd)
        except Exception as exc:
            raise RuntimeError(f"SUMO did not start: {self._errors() or exc}") from None
        self.setup_counts(p.handover_slots)
        self.table = idm_equilibrium_table(p.v0, p.T, p.s0, p.delta, 1000)
        self.demand = 0.0
        self.added = 0
        self.waiting: str | None = None      # added by msorch, not yet inserted by SUMO
        self.up_flow_in = float(p.inflow_flow if p.inflow == "flow" else 0.0)
        self.up_density_in = 0.0
        self.last_speeds: dict[str, float] = {}
        self.sumo_seconds = 0.0
        self._initial_vehicles()
        self._stats = None

    def _errors(self) -> str:
        try:
            lines = self.errlog.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " ".join(ln.strip() for ln in lines if ln.strip())[-2000:]

    def _initial_vehicles(self):
        """Place ``initial_vehicles`` as traffic.idm does (equal spacing, vehicle 0 moved back by
        ``initial_perturbation``), fronts shifted by one vehicle length so none hangs over an edge
        start; one SUMO step inserts them (they count as ``initial``)."""
        p, S = self.params, self.sumo
        n = p.initial_vehicles
        if n:
            L = self.seg.length
            spacing = L / n
            x = spacing * np.arange(n) + p.length
            x[0] -= p.initial_perturbation
            x = np.mod(x, L) if p.road == "ring" else np.clip(x, p.length, L)
            if p.initial_speed is None:
                s, v = self.table
                speed = float(np.interp(spacing - p.length, s, v))
            else:
                speed = p.initial_speed
            k = np.searchsorted(self.seg.edges, x, side="right") - 1
            for i in range(n):
                route = f"r{k[i]}" if p.road == "ring" else "road"
                if p.road == "open" and k[i] > 0:
                    route = f"msorch_from{k[i]}"
                    if route not in S.route.getIDList():
                        S.route.add(route, self.edge_ids[k[i]:])
                S.vehicle.add(f"init{i}", route, typeID=_VTYPE, depart="now",
                              departPos=repr(float(x[i] - self.seg.edges[k[i]])), departSpeed=repr(float(speed)),
                              departLane="0")
        S.simulationStep()
        inserted = S.vehicle.getIDCount()
        if inserted < n:
            raise RuntimeError(f"SUMO inserted {inserted} of {n} initial vehicles (spacing too small for its "
                               f"insertion check?) {self._errors()}")
        self.cum["initial"] += np.bincount(k, minlength=self.seg.n_local) if n else 0
        self.n_initial = n

    # ------------------------------------------------------------------ step
    def advance(self, t, dt):
        p, S = self.params, self.sumo
        if abs(dt - p.step_length) > 1e-9 * p.step_length:
            raise ValueError(f"traffic.sumo: dt = {dt} s but SUMO's step_length is {p.step_length} s; "
                             f"set params.step_length: {dt}")
        self.last_dt = dt
        if p.road == "open":
            self._insert(dt)
            if p.handover:
                last = self.edge_ids[-1]
                self.last_speeds = {v: S.vehicle.getSpeed(v) for v in S.edge.getLastStepVehicleIDs(last)}
        start = time.perf_counter()
        S.simulationStep()
        self.sumo_seconds += time.perf_counter() - start   # time inside SUMO's steps (benchmarks)
        if p.teleport == "fatal" and S.simulation.getStartingTeleportNumber():
            who = ", ".join(map(repr, S.simulation.getStartingTeleportIDList()))
            raise RuntimeError(f"SUMO teleported vehicle(s) {who} at t = {S.simulation.getTime():g} s: blocked "
                               f"for more than time_to_teleport = {p.time_to_teleport:g} s (teleport: fatal)")
        departed = S.simulation.getDepartedIDList()
        arrived = S.simulation.getArrivedIDList()
        self.step_in = len(departed)
        self.step_out = len(arrived)
        if self.waiting is not None:
            if self.waiting in departed:
                self.waiting = None
            elif self.waiting not in S.simulation.getPendingVehicles():
                # SUMO discards a vehicle it can never insert, with an error in its log
                raise RuntimeError(f"SUMO dropped vehicle {self.waiting!r} instead of inserting it: "
                                   f"{self._errors() or 'no message'}")
        self.cum["in"][0] += self.step_in
        self.cum["out"][-1] += self.step_out
        if p.handover:
            if arrived:
                sp = np.array([self.last_speeds.get(v, 0.0) for v in arrived])
                self.mail.post(np.zeros(len(sp)), sp, np.zeros(len(sp)))
            self.mail.flush()
        self._stats = None

    def _insert(self, dt):
        """As traffic.idm: at most one vehicle waits; it enters at x = 0 (plus a hand-over
        overshoot) at min(its speed, the rear vehicle's speed) once the gap to that vehicle
        is the IDM's desired gap s0 + v T; SUMO's own insertion check then passes."""
        p, S = self.params, self.sumo
        if p.inflow in ("flow", "channel"):
            self.demand += self.up_flow_in * dt
        if self.waiting is not None:
            return
        if p.handover and len(self.mail.inbox):
            h = self.mail.inbox[0]
            pos, v_cap = max(float(h[1]), 0.0), float(h[2])
        elif self.demand >= 1.0:
            pos, v_cap = 0.0, self._inflow_speed()
        else:
            return
        pos = min(pos, 0.5 * float(self.seg.widths[0]))
        x_rear, v_rear = self._rear_vehicle()
        v = min(v_cap, v_rear)
        if x_rear - p.length - pos < p.s0 + v * p.T:
            return
        if p.handover and len(self.mail.inbox):
            self.mail.pop()
        else:
            self.demand -= 1.0
        self._add(pos, v)

    def _rear_vehicle(self) -> tuple[float, float]:
        """(front position [m], speed) of the rearmost vehicle on the road; (inf, inf) if empty."""
        S = self.sumo
        for e in self.edge_ids:
            ids = S.edge.getLastStepVehicleIDs(e)
            if ids:
                pos = [S.vehicle.getLanePosition(i) for i in ids]
                k = int(np.argmin(pos))
                return self.offset[e] + pos[k], S.vehicle.getSpeed(ids[k])
        return np.inf, np.inf

    def _inflow_speed(self) -> float:
        p = self.params
        if p.inflow_speed is not None:
            return p.inflow_speed
        if self.up_density_in > 0:
            s, v = self.table
            return float(np.interp(1.0 / self.up_density_in - p.length, s, v))
        return p.v0

    def _add(self, pos: float, speed: float):
        vid = f"in{self.added}"
        self.added += 1
        # SUMO refuses a departure speed of exactly v0 ("slow lane ahead"): 1 um/s below it
        v = min(max(speed, 0.0), self.params.v0 - 1e-6)
        self.sumo.vehicle.add(vid, "road", typeID=_VTYPE, depart="now", departPos=repr(pos),
                              departSpeed=repr(v), departLane="0")
        self.waiting = vid

    # ------------------------------------------------------------------ fields
    def edge_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(vehicles per edge, mean speed per edge [m/s], v0 when empty) after the last step."""
        if self._stats is None:
            E = self.sumo.edge
            n = np.array([E.getLastStepVehicleNumber(e) for e in self.edge_ids], dtype=np.int64)
            v = np.array([E.getLastStepMeanSpeed(e) if k else self.params.v0
                          for e, k in zip(self.edge_ids, n)])
            self._stats = (n, v)
        return self._stats

    def get(self, name):
        if name in self.BIN_OUTPUTS:
            n, v = self.edge_stats()
            w = self.seg.widths
            return {"density": n / w, "flow": n * v / w, "speed": v}[name].astype(np.float64)
        return super().get(name)

    def mean_speed(self) -> float:
        """Mean speed [m/s] of the vehicles on the road (exact: per-edge means weighted by counts)."""
        n, v = self.edge_stats()
        return float((n * v).sum() / max(n.sum(), 1))

    def positions(self):
        S = self.sumo
        ids = S.vehicle.getIDList()
        return np.array([self.offset[S.vehicle.getRoadID(i)] + S.vehicle.getLanePosition(i) for i in ids])

    def speeds(self):
        S = self.sumo
        return np.array([S.vehicle.getSpeed(i) for i in S.vehicle.getIDList()])

    def free_speed(self):
        return float(self.params.v0)

    def results(self):
        out = {name: self.get(name) for name in self.BIN_OUTPUTS}
        for k, v in self.cum.items():
            out[f"count_{k}"] = v.copy()
        out["count_present"] = self.edge_stats()[0].copy()
        return out

    def counts(self) -> dict[str, int]:
        d = {k: int(v.sum()) for k, v in self.cum.items()}
        d["present"] = int(self.sumo.vehicle.getIDCount())
        return d

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64)
        if name == "upstream_flow":
            self.up_flow_in = float(data[0]) if len(data) else self.up_flow_in
        elif name == "upstream_density":
            self.up_density_in = float(data[0]) if len(data) else self.up_density_in
        elif name == "vehicles_in":
            self.mail.receive(data.reshape(-1, HNC))
        else:
            raise KeyError(f"traffic.sumo has no input {name!r}")

    # ------------------------------------------------------------------ state
    def state(self):
        path = Path(self.tmp.name) / "state.xml"
        self.sumo.simulation.saveState(str(path))
        blob = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
        return {"sumo": blob, "scalars": np.array([self.demand, self.added, self.up_flow_in, self.up_density_in]),
                "waiting": np.frombuffer((self.waiting or "").encode(), dtype=np.uint8).copy(),
                **self.count_state()}

    def restore(self, state):
        path = Path(self.tmp.name) / "restore.xml"
        path.write_bytes(np.asarray(state["sumo"], dtype=np.uint8).tobytes())
        self.sumo.simulation.loadState(str(path))
        self.demand, added, self.up_flow_in, self.up_density_in = map(float, state["scalars"])
        self.added = int(added)
        self.waiting = bytes(np.asarray(state["waiting"], dtype=np.uint8)).decode() or None
        self.count_restore(state)
        self._stats = None

    def finalize(self):
        self.sumo.close()
        self.tmp.cleanup()
