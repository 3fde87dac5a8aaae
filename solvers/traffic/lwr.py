"""``traffic.lwr``: the LWR model on a road of cells, Godunov / cell-transmission fluxes.

d(rho)/dt + d q(rho)/dx = sources, discretised with the Godunov flux, which for
traffic is Daganzo's (1994) cell-transmission rule F_{i+1/2} = min(D(rho_i),
S(rho_{i+1})) with demand D and supply S of the fundamental diagram
(:mod:`solvers.traffic.fundamental`): Greenshields, triangular, the IDM
equilibrium diagram, the IDM free branch with a congested branch of wide moving
jams (``idm_wide_jam``, for a string-unstable IDM), or a table (fixed, or arriving through the
``fundamental_flow`` input).  Explicit Euler in time; stable for
max|q'| dt <= dx (checked by :meth:`LWRSolver.check` when ``dt`` is given and
at every new dt or diagram).

``order: 2``: MUSCL-Hancock -- a limited linear density in each cell (``limiter``
minmod or MC), its edge values advanced half a step by the cell's own flux
difference, then the same demand/supply flux from the upstream cell's right edge
and the downstream cell's left edge.  Still one flux per interface and step, so
the scheme stays exactly conservative (vehicle counts, boundary and ramp fluxes as
in order 1); a contact (the linear congested branch of ``idm_wide_jam``) stays a
few cells wide instead of spreading like sqrt(t).  Cells next to a road end
keep a flat profile.

``discharge`` > 0: capacity drop (:class:`~solvers.traffic.fundamental.CapacityDrop`):
a cell whose average density is above critical sends at most the queue discharge
flow.  Limit: on a diagram whose congested branch carries more than the
discharge just above critical (``idm_wide_jam``), a discharging jam leaves that
congested state behind it, not the free state a real jam discharges into -- one
diagram cannot carry both fronts of a wide jam (``phases: wide_jam`` below can).

``phases: wide_jam`` (order 1, with ``discharge`` and ``jam_density``): that second
phase, as a cell-transmission rule with a phase flag per cell (hysteresis).  For a
string-unstable vehicle model a queue is wide jams (``jam_density``, standing) and
free traffic; a cell holding a jam front is a mixture, and what it can receive
depends on which end the jam is at.  FREE cells (also a cell filling behind a jam
downstream: its upstream part is free) receive up to the capacity, capped by the
room left (jam_density - rho) dx / dt, and send Q(rho) below critical, the discharge
above; JAM cells (full, or draining at a jam's downstream front: their upstream part
still stands) receive nothing and send the discharge.  FREE -> JAM when a cell is full
(rho >= jam_density, to rounding); JAM -> FREE when it has drained to rho_out, the
free state carrying the discharge (the state a wide jam discharges into).  So a jam's
upstream front advances one cell per (jam_density - rho_in) dx / q_in and its
downstream front one per (jam_density - rho_out) dx / discharge -- both jump
conditions of a wide jam -- with the free discharge state behind it.  The flux is
still min(D_i, S_{i+1}): exactly conservative.  The flags are state (checkpoints)
and cross rank borders with the densities.

Boundaries: the upstream end takes a fixed ghost density, a fixed demand (with
a point queue for unserved vehicles), or either from an input; the downstream
end is free (supply = capacity), a fixed ghost density or supply, or either
from an input.  On-ramps add min(demand + queue/dt, supply left after the
mainline) to their cell; off-ramps divert a fraction beta of what leaves their
cell: out = min(D_i, S_{i+1}/(1-beta)), of which (1-beta) goes on.

Cells are split over the group's ranks; each step exchanges the boundary
densities with ``Sendrecv`` so both ranks compute the same interface flux,
which keeps the scheme conservative to rounding.

``diagram: hmm`` -- no fundamental diagram of its own (heterogeneous multiscale
method, ``patterns: [{kind: hmm, macro: <this solver>}]``): once per window the
road asks a micro model (e.g. ``traffic.idm`` rings) for the equilibrium flow
at K density nodes (``hmm_nodes`` equal steps up to ``hmm_density_max``, or
``table_density`` without its leading 0) and uses the answers as a tabulated
diagram, refreshed whenever answers arrive; with ``hmm_rounds`` R > 1 the nodes
of successive windows interleave so the table is refined to K R nodes over the
first R windows (:mod:`solvers.traffic.answered_diagram`).

* output ``flux_query`` [veh/m], K points (on the group's first rank): the densities asked;
* input ``flux_answer`` [veh/s], the same points: the answered flows Q(rho_k).

The table is Q(0) = 0 and the answered nodes, piecewise linear; demand and
supply are its running maxima from the left and from the right, so the
critical density is the node of largest answered flow and the
min(demand, supply) flux is the exact Godunov flux of the piecewise-linear
diagram even where the answers are not concave (Lebacque 1996).

Why a table on nodes and not one query per cell and step: the Godunov flux of
a cell needs the cell's demand and supply, i.e. Q on the whole interval between
its density and the critical density -- one answer Q(rho_i) per cell does not
give them.  Nodes also make the query set independent of the solution: with
the farm's exact cache a stateless micro model is run once per node for the
whole run, and a surrogate can fill fine tables from few micro runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param

from .answered_diagram import AnsweredDiagram, round_nodes
from .fundamental import CapacityDrop, Greenshields, Tabulated, Triangular, idm_diagram, idm_wide_jam_diagram
from .road import segment
from .settings import CorridorParams, RampParams, corridor_problems, demand_at, raise_if_invalid, ramp_problems

__all__ = ["LWRParams", "LWRSolver"]

UNITS = {"density": "veh/m", "flow": "veh/s", "speed": "m/s", "supply": "veh/s", "demand": "veh/s",
         "vehicles": "veh"}


@dataclass(frozen=True)
class LWRParams(RampParams, CorridorParams):
    road_length: float = param(1000.0, "road length", units="m")
    cells: int = param(100, "number of cells (>= ranks)")
    diagram: Literal["greenshields", "triangular", "idm", "idm_wide_jam", "tabulated", "hmm"] = param(
        "greenshields", "fundamental diagram (idm_wide_jam: IDM free branch, congested branch of wide "
        "moving jams; hmm: answered by a micro model at density nodes)")
    v_free: float = param(30.0, "free speed (greenshields, triangular)", units="m/s")
    rho_jam: float = param(0.2, "jam density (greenshields, triangular)", units="veh/m")
    rho_crit: float = param(0.04, "critical density (triangular)", units="veh/m")
    idm_v0: float = param(30.0, "IDM desired speed (idm diagram)", units="m/s")
    idm_T: float = param(1.5, "IDM time headway (idm diagram)", units="s")
    idm_s0: float = param(2.0, "IDM minimum gap (idm diagram)", units="m")
    idm_delta: float = param(4.0, "IDM exponent (idm diagram)")
    idm_length: float = param(5.0, "vehicle length (idm diagram)", units="m")
    jam_inflow: float = param(0.5, "idm_wide_jam: flow of the free traffic feeding the jams (its "
                              "state and (jam_density, 0) span the congested branch)", units="veh/s")
    jam_density: float = param(0.125, "idm_wide_jam: density inside a wide moving jam of the IDM "
                               "(measured, e.g. ~1/(s0 + l))", units="veh/m")
    discharge: float = param(0.0, "capacity drop: a congested cell (density above critical) sends this queue "
                             "discharge flow instead of the capacity (measure it on the vehicles, e.g. a wide "
                             "jam's outflow); 0: off", units="veh/s")
    order: int = param(1, "1: first-order Godunov; 2: MUSCL-Hancock (limited linear density in each cell, "
                       "half-step predictor, the same Godunov demand/supply flux), sharper fronts")
    phases: Literal["none", "wide_jam"] = param(
        "none", "wide_jam: two-phase cell rule with a FREE/JAM flag per cell (order 1; needs discharge and "
        "jam_density): jam fronts move at both wide-jam jump speeds, free discharge state behind a jam")
    limiter: Literal["minmod", "mc"] = param("mc", "slope limiter of order 2 (minmod: most diffusive; mc: "
                                             "monotonized central)")
    table_density: tuple[float, ...] = param((), "densities of the tabulated diagram, from 0", units="veh/m")
    table_flow: tuple[float, ...] = param((), "flows of the tabulated diagram (empty: from the input)",
                                          units="veh/s")
    hmm_nodes: int = param(40, "density nodes of the hmm diagram, in equal steps up to hmm_density_max "
                           "(when table_density is not given)")
    hmm_density_max: float = param(0.0, "largest density node of the hmm diagram (the micro model's jam "
                                   "density, or below)", units="veh/m")
    hmm_rounds: int = param(1, "windows over which the hmm table is refined: each asks hmm_nodes new "
                            "nodes between the earlier ones (1: the same nodes every window)")
    initial_density: float = param(0.0, "initial density (left of riemann_position if a right value is given)",
                                   units="veh/m")
    initial_density_right: Optional[float] = param(None, "initial density of cells whose centre is right of "
                                                   "riemann_position (None: initial_density)", units="veh/m")
    riemann_position: float = param(0.0, "position of the initial density step", units="m")
    inflow: Literal["none", "density", "flow", "channel_density", "channel_flow"] = param(
        "density", "upstream boundary: ghost density, demand, or either from the upstream_* input")
    inflow_density: float = param(0.0, "upstream ghost density (inflow: density)", units="veh/m")
    inflow_flow: float = param(0.0, "upstream demand (inflow: flow)", units="veh/s")
    outflow: Literal["free", "closed", "density", "supply", "channel_density", "channel_supply"] = param(
        "free", "downstream boundary: free (supply = capacity), closed, ghost density, supply, or an input")
    outflow_density: float = param(0.0, "downstream ghost density (outflow: density)", units="veh/m")
    outflow_supply: float = param(0.0, "downstream supply (outflow: supply)", units="veh/s")
    dt: Optional[float] = param(None, "solver step, for the CFL check before launch", units="s")


def answered_diagram(p: LWRParams) -> AnsweredDiagram:
    """The (empty) table of an hmm diagram with these settings."""
    if p.table_density:
        return AnsweredDiagram([np.array(p.table_density[1:], dtype=np.float64)])
    return AnsweredDiagram(round_nodes(p.hmm_density_max, p.hmm_nodes, p.hmm_rounds))


def with_discharge(p: LWRParams, fd):
    """``fd`` with the capacity drop of ``p.discharge`` (unchanged when it is 0)."""
    return CapacityDrop(fd, p.discharge) if p.discharge > 0 else fd


def make_diagram(p: LWRParams, table_flow=None):
    """The fundamental diagram object of these settings (``table_flow`` overrides p.table_flow;
    not for ``hmm``, whose diagram is :meth:`AnsweredDiagram.tabulated`), with the capacity drop."""
    return with_discharge(p, _base_diagram(p, table_flow))


def _base_diagram(p: LWRParams, table_flow=None):
    if p.diagram == "greenshields":
        return Greenshields(p.v_free, p.rho_jam)
    if p.diagram == "triangular":
        return Triangular(p.v_free, p.rho_crit, p.rho_jam)
    if p.diagram == "idm":
        return idm_diagram(p.idm_v0, p.idm_T, p.idm_s0, p.idm_delta, p.idm_length)
    if p.diagram == "idm_wide_jam":
        return idm_wide_jam_diagram(p.idm_v0, p.idm_T, p.idm_s0, p.idm_delta, p.idm_length,
                                    p.jam_inflow, p.jam_density)
    return Tabulated(p.table_density, p.table_flow if table_flow is None else table_flow)


class LWRSolver(Solver):
    """Macroscopic LWR traffic on cells (see the module docstring).

    Outputs per cell (points at cell centres): ``density`` [veh/m], ``flow``
    [veh/s] (q(rho)), ``speed`` [m/s] (q/rho, the free speed q'(0) on an empty
    cell).  At the ends: ``upstream_density``, ``upstream_flow`` (the boundary
    flux of the last step), ``upstream_speed``, ``upstream_supply``
    S(rho_0), ``downstream_density``, ``downstream_flow``, ``downstream_speed``,
    ``downstream_demand`` D(rho_last), and ``downstream_vehicles`` [veh] (left
    in the last step; extensive).  Inputs by settings: ``upstream_density`` /
    ``upstream_flow`` (``inflow: channel_*``), ``downstream_density`` /
    ``downstream_supply`` (``outflow: channel_*``), ``fundamental_flow``
    (tabulated diagram without ``table_flow``: flows at ``table_density``,
    points = those densities, on the group's first rank).
    """

    Params = LWRParams
    field_info = {
        "density": FieldInfo("veh/m", "cell density"),
        "flow": FieldInfo("veh/s", "q(rho) of the cell"),
        "speed": FieldInfo("m/s", "q/rho (the free speed on an empty cell)"),
        "flux_query": FieldInfo("veh/m", "diagram: hmm -- densities whose equilibrium flow is asked"),
        "flux_answer": FieldInfo("veh/s", "diagram: hmm -- the answered flows at flux_query"),
    }
    CELL_OUTPUTS = ("density", "flow", "speed")
    END_OUTPUTS = ("upstream_density", "upstream_flow", "upstream_speed", "upstream_supply",
                   "downstream_density", "downstream_flow", "downstream_speed", "downstream_demand",
                   "downstream_vehicles")

    @classmethod
    def field_names(cls, p):
        ins = ()
        if p.inflow.startswith("channel_"):
            ins += ("upstream_" + p.inflow[len("channel_"):],)
        if p.outflow.startswith("channel_"):
            ins += ("downstream_" + p.outflow[len("channel_"):],)
        if p.diagram == "tabulated" and not p.table_flow:
            ins += ("fundamental_flow",)
        if p.diagram == "hmm":
            return cls.CELL_OUTPUTS + cls.END_OUTPUTS + ("flux_query",), ins + ("flux_answer",)
        return cls.CELL_OUTPUTS + cls.END_OUTPUTS, ins

    @classmethod
    def check(cls, p):
        probs = []
        if p.road_length <= 0 or p.cells < 1:
            probs.append(("cells", "need road_length > 0 and cells >= 1", "fix them"))
            return probs
        probs += ramp_problems(p, p.road_length, max_fraction=0.999)   # beta = 1 would block the road
        probs += corridor_problems(p)
        if p.order not in (1, 2):
            probs.append(("order", f"must be 1 or 2, got {p.order!r}", "use order: 1 (Godunov) or 2 (MUSCL-Hancock)"))
        if p.phases == "wide_jam":
            if p.order != 1:
                probs.append(("phases", "wide_jam needs order: 1", "set order: 1 or phases: none"))
            if not p.discharge > 0:
                probs.append(("discharge", "phases: wide_jam needs the measured jam discharge flow (> 0)",
                              "set discharge [veh/s], e.g. a wide jam's outflow"))
            if p.diagram == "hmm" or (p.diagram == "tabulated" and not p.table_flow):
                probs.append(("phases", "wide_jam needs a fixed diagram (not hmm / a table from an input)",
                              "give table_flow or a parametric diagram"))
        if p.discharge < 0:
            probs.append(("discharge", "must be >= 0 (0: no capacity drop)", "fix it"))
        if p.diagram == "triangular" and not 0 < p.rho_crit < p.rho_jam:
            probs.append(("rho_crit", "need 0 < rho_crit < rho_jam", "fix it"))
        if p.diagram == "hmm":
            if p.table_flow:
                probs.append(("table_flow", "an hmm diagram takes its flows from the flux_answer input",
                              "remove table_flow, or use diagram: tabulated"))
            if not p.table_density and (p.hmm_nodes < 2 or not p.hmm_density_max > 0):
                probs.append(("hmm_density_max", "the hmm diagram needs hmm_density_max > 0 and hmm_nodes >= 2 "
                              "(or table_density)", "set hmm_density_max to the micro model's jam density"))
            if p.hmm_rounds < 1 or (p.table_density and p.hmm_rounds != 1):
                probs.append(("hmm_rounds", "must be >= 1, and 1 with explicit table_density nodes",
                              "fix it, or give hmm_nodes and hmm_density_max instead of table_density"))
            if p.table_density and (len(p.table_density) < 3 or p.table_density[0] != 0
                                    or np.any(np.diff(p.table_density) <= 0)):
                probs.append(("table_density", "needs 0 and at least 2 increasing density nodes", "fix the nodes"))
            return probs
        if p.diagram == "tabulated":
            if len(p.table_density) < 2 or (p.table_flow and len(p.table_flow) != len(p.table_density)):
                probs.append(("table_flow", "need >= 2 table_density values and as many table_flow values "
                              "(or none, to take them from the fundamental_flow input)", "fix the table"))
                return probs
        try:
            fd = _base_diagram(p, None if p.table_flow or p.diagram != "tabulated" else np.zeros(len(p.table_density)))
        except ValueError as exc:
            return probs + [("diagram", str(exc), "fix the diagram settings")]
        if p.discharge > fd.capacity and (p.diagram != "tabulated" or p.table_flow):
            probs.append(("discharge", f"{p.discharge:g} veh/s exceeds the diagram's capacity {fd.capacity:.6g} veh/s",
                          "use the measured queue discharge flow, below the capacity (0: no capacity drop)"))
        if p.phases == "wide_jam" and not p.jam_density > fd.rho_crit:
            probs.append(("jam_density", f"must exceed the critical density {fd.rho_crit:.6g} veh/m",
                          "use the measured density inside a wide jam"))
        if p.dt is not None:
            dx = p.road_length / p.cells
            if fd.max_wave_speed * p.dt > dx * (1 + 1e-12):
                probs.append(("dt", f"CFL violated: max wave speed {fd.max_wave_speed:.4g} m/s x dt {p.dt} s "
                              f"> dx {dx:.4g} m", f"use dt <= {dx / fd.max_wave_speed:.4g} s or fewer cells"))
        return probs

    # ------------------------------------------------------------------ setup
    def initialize(self, t0):
        p = self.params
        raise_if_invalid(type(self), p)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.seg = segment(p.road_length, p.cells, self.rank, self.size)
        self.dx = p.road_length / p.cells
        if (p.order == 2 or p.phases == "wide_jam") and self.size > 1 and self.seg.n_local < 2:
            raise ValueError(f"traffic.lwr: order 2 / phases need >= 2 cells per rank, got {self.seg.n_local}; "
                             "use more cells or fewer ranks")
        self.new_table = None
        if p.diagram == "hmm":
            self.answered = answered_diagram(p)
            self.table = self.answered.table
            self.fd = with_discharge(p, self.answered.tabulated())
        else:
            self.table = (np.array(p.table_flow, dtype=np.float64) if p.table_flow
                          else np.zeros(len(p.table_density)))
            self.fd = make_diagram(p, self.table if p.diagram == "tabulated" else None)
        self.checked_dt = None
        x = self.seg.centers[:, 0]
        right = p.initial_density if p.initial_density_right is None else p.initial_density_right
        self.rho = np.where(x < p.riemann_position, p.initial_density, right).astype(np.float64)
        g = self.seg.bin_lo
        # per-cell ramp data for the cells this rank sees: its own plus one ghost each side
        idx = np.arange(g - 1, self.seg.bin_hi + 1)
        self.beta = np.zeros(len(idx))            # off-ramp fraction of each (ghost-extended) cell
        for xr, b in zip(p.offramp_positions, p.offramp_fractions):
            self.beta[idx == int(xr // self.dx)] = b
        self.ramp_cell = np.array([int(xr // self.dx) - g for xr in p.onramp_positions], dtype=np.int64)
        self.ramp_q = np.array(p.onramp_flows, dtype=np.float64)
        self.ramp_queue = np.zeros(len(self.ramp_q))
        self.up_queue = 0.0
        self.inputs = {"upstream_density": p.inflow_density, "upstream_flow": p.inflow_flow,
                       "downstream_density": p.outflow_density, "downstream_supply": p.outflow_supply}
        n = self.seg.n_local
        self.cum = {k: np.zeros(n) for k in ("in", "created", "removed", "out")}
        self.cum["initial"] = self.rho * self.dx
        self.flux = np.zeros(n + 1)
        self.last_dt = 1.0
        # phases: wide_jam -- 1.0 for a JAM cell, 0.0 for FREE (float: crosses ranks with the densities)
        self.jam = (self.rho >= p.jam_density * (1 - 1e-9)).astype(np.float64)
        self.rho_out = None

    def fields(self):
        seg, x0 = self.seg, self.params.road_start      # points are corridor positions
        up = np.full((1 if seg.first else 0, 1), x0)
        down = np.full((1 if seg.last else 0, 1), x0 + seg.length)
        f = {q: FieldSpec("float64", 1, UNITS[q], seg.centers + x0) for q in self.CELL_OUTPUTS}
        outs, ins = self.field_names(self.params)
        for name in outs[len(self.CELL_OUTPUTS):] + ins:
            end, _, q = name.partition("_")
            if name == "fundamental_flow":
                pts = np.array(self.params.table_density)[:, None] if self.rank == 0 else np.zeros((0, 1))
                f[name] = FieldSpec("float64", 1, "veh/s", pts)
            elif name in ("flux_query", "flux_answer"):
                pts = self.answered.points if self.rank == 0 else np.zeros((0, 1))
                f[name] = FieldSpec("float64", 1, "veh/m" if name == "flux_query" else "veh/s", pts)
            else:
                f[name] = FieldSpec("float64", 1, UNITS[q], up if end == "upstream" else down,
                                    extensive=q == "vehicles")
        return f

    # ------------------------------------------------------------------ step
    def _halo(self, width: int = 1, values: np.ndarray | None = None,
              fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
        """``values`` (default the densities) of the ``width`` cells just outside this segment,
        shape (width,) each (``fill`` beyond the road ends). Collective."""
        values = self.rho if values is None else values
        left, right = np.full(width, fill), np.full(width, fill)
        if self.size == 1:
            return left, right
        from mpi4py import MPI
        nxt = self.rank + 1 if self.rank + 1 < self.size else MPI.PROC_NULL
        prv = self.rank - 1 if self.rank > 0 else MPI.PROC_NULL
        self.comm.Sendrecv(values[-width:].copy(), dest=nxt, sendtag=31, recvbuf=left, source=prv, recvtag=31)
        self.comm.Sendrecv(values[:width].copy(), dest=prv, sendtag=32, recvbuf=right, source=nxt, recvtag=32)
        return left, right

    def _phase_fluxes(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Two-phase demand and supply [veh/s] of the ghost-extended cells, shape (n_local + 2,) each.

        A JAM cell whose drain would take it below rho_out this step (it turns FREE) receives
        the rest of what it sends from upstream, so it ends the step at rho_out and the jam behind it starts draining within the
        same step: the jam keeps sending exactly the discharge and its downstream front moves at
        the jump speed without a per-cell overshoot delay."""
        left, right = self._halo(2)
        rho = np.concatenate([left, self.rho, right])            # (n + 4,)
        jl, jr = self._halo(2, self.jam, 0.0)                     # phase flags, FREE beyond the ends
        jam = np.concatenate([jl, self.jam, jr])
        D, S = self._phase_demand_supply(rho, jam, dt)
        if self.seg.last:
            S[-2] = self._down_supply()                          # the downstream boundary's supply
        send = np.minimum(D[1:-1], S[2:])                        # what cells -1..n send on, (n + 2,)
        with np.errstate(invalid="ignore"):
            rest = np.maximum(send - (rho[1:-1] - self.rho_out) * self.dx / dt, 0.0)
        S = np.where((jam[1:-1] > 0) & ~np.isnan(rest), rest, S[1:-1])
        return D[1:-1], S

    def _discharge_state(self) -> float:
        """rho_out [veh/m]: the free-branch density carrying the discharge flow."""
        base = self.fd.fd if isinstance(self.fd, CapacityDrop) else self.fd
        r = np.linspace(0.0, base.rho_crit, 20001)
        q = np.maximum.accumulate(base.flow(r))
        return float(np.interp(self.fd.discharge, q, r))

    def _phase_demand_supply(self, rho, jam, dt):
        """Two-phase demand and supply [veh/s] of cells with densities ``rho`` and flags ``jam``
        (same shapes): JAM sends the discharge and receives nothing; FREE sends the (capacity-drop)
        demand and receives the capacity, capped by the room left up to the jam density."""
        fd, p = self.fd, self.params
        with np.errstate(invalid="ignore"):
            D = np.where(jam > 0, fd.discharge, fd.demand(rho))
            S = np.where(jam > 0, 0.0, np.minimum(fd.capacity, np.maximum(p.jam_density - rho, 0.0) * self.dx / dt))
        return D, S

    def _interface_states(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Densities each side of the interfaces, shape (n_local + 2,) each for the ghost-extended
        cells: order 1 the cell averages (NaN beyond the road ends); order 2 (MUSCL-Hancock) the
        limited linear profile's right (``hi``) and left (``lo``) edge values, advanced half a step
        by the cell's own flux difference.  The cells next to a road end keep a flat profile, so
        the boundary demand/supply are those of the cell average."""
        if self.params.order == 1:
            left, right = self._halo(1)
            rho = np.concatenate([left, self.rho, right])
            self._ext = rho
            return rho, rho
        left, right = self._halo(2)
        ext = np.concatenate([left, self.rho, right])            # (n + 4,)
        a, b = np.diff(ext)[:-1], np.diff(ext)[1:]               # backward / forward differences, (n + 2,)
        with np.errstate(invalid="ignore"):
            if self.params.limiter == "minmod":
                slope = np.where(a * b > 0, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
            else:
                slope = np.where(a * b > 0, np.sign(a) * np.minimum(np.minimum(2 * np.abs(a), 2 * np.abs(b)),
                                                                    0.5 * np.abs(a + b)), 0.0)
        slope = np.nan_to_num(slope, nan=0.0)                    # NaN neighbour (road end): flat
        rho = self._ext = ext[1:-1]
        lo, hi = rho - 0.5 * slope, rho + 0.5 * slope
        q = self.fd.flow
        with np.errstate(invalid="ignore"):
            half = 0.5 * dt / self.dx * (q(hi) - q(lo))
        half = np.where(slope != 0.0, half, 0.0)
        return np.maximum(lo - half, 0.0), np.maximum(hi - half, 0.0)

    def _sync_table(self):
        """Share a table received on rank 0 with the group (collective Bcast of one flag + array)."""
        flag = np.array([0 if self.new_table is None else 1], dtype=np.int64)
        if self.size > 1:
            self.comm.Bcast(flag, root=0)
        if flag[0]:
            hmm = self.params.diagram == "hmm"
            n = len(self.answered.rounds[0]) if hmm else len(self.table)
            table = self.new_table if self.rank == 0 else np.empty(n)
            if self.size > 1:
                self.comm.Bcast(table, root=0)
            self.new_table = None
            if hmm:
                self.answered.store(table)
                self.table, self.fd = self.answered.table, with_discharge(self.params, self.answered.tabulated())
            else:
                self.table = table.copy()
                self.fd = make_diagram(self.params, self.table)
            self.checked_dt = None

    def _check_cfl(self, dt):
        if dt != self.checked_dt:
            c = self.fd.max_wave_speed
            if c * dt > self.dx * (1 + 1e-12):
                raise ValueError(f"traffic.lwr: CFL violated, max wave speed {c:.4g} m/s x dt {dt} s > "
                                 f"dx {self.dx:.4g} m; use dt <= {self.dx / c:.4g} s or fewer cells")
            self.checked_dt = dt

    def advance(self, t, dt):
        p, seg = self.params, self.seg
        if p.diagram == "hmm" or (p.diagram == "tabulated" and not p.table_flow):
            self._sync_table()
        fd = self.fd
        self._check_cfl(dt)
        self.last_dt = dt
        if p.phases == "wide_jam":
            if self.rho_out is None or self._rho_out_fd is not fd:
                self.rho_out, self._rho_out_fd = self._discharge_state(), fd
            D, S = self._phase_fluxes(dt)
        else:
            lo, hi = self._interface_states(dt)      # ghost-extended, NaN at road ends
            D = fd.demand(hi)                         # what each cell can send through its right edge
            if isinstance(fd, CapacityDrop) and self.params.order == 2:
                # a queue is a congested cell AVERAGE: an edge value reconstructed below the critical
                # density must not let a jam's edge cell send the capacity (no drop)
                D = np.where(self._ext > fd.rho_crit, fd.discharge, D)
            S = fd.supply(lo)                         # what it can receive through its left edge
        # interior interfaces j = 0..n between extended cells j and j+1
        out = np.minimum(D[:-1], S[1:] / (1.0 - self.beta[:-1]))      # what leaves cell j
        F = out * (1.0 - self.beta[:-1])                               # what enters cell j+1
        if seg.first:
            out[0] = F[0] = self._inflow(S[1], t, dt)
        if seg.last:
            out[-1] = F[-1] = self._outflow(D[-2])
        removed = out - F                                              # off-ramp exits at each interface
        src = np.zeros(seg.n_local)
        for k, c in enumerate(self.ramp_cell):
            if 0 <= c < seg.n_local:
                want = self.ramp_q[k] + self.ramp_queue[k] / dt
                got = min(want, max(S[c + 1] - F[c], 0.0))
                self.ramp_queue[k] += (self.ramp_q[k] - got) * dt
                src[c] += got
        self.rho = self.rho + dt / self.dx * (F[:-1] - out[1:] + src)
        self.flux = F
        if p.phases == "wide_jam":
            # hysteresis: a full cell becomes JAM; a JAM cell becomes FREE once drained to rho_out
            full = self.rho >= p.jam_density * (1 - 1e-9)
            drained = self.rho <= self.rho_out + 1e-9 * p.jam_density
            self.jam = np.where(self.jam > 0, ~drained, full).astype(np.float64)
        # bookkeeping [veh]: the off-ramp flow of interface j is charged to the cell it leaves (j - 1)
        self.cum["created"] += src * dt
        self.cum["removed"] += removed[1:] * dt
        if seg.first:
            self.cum["in"][0] += F[0] * dt
        if seg.last:
            self.cum["out"][-1] += F[-1] * dt

    def _inflow(self, supply0: float, t: float, dt: float) -> float:
        p, fd = self.params, self.fd
        mode = p.inflow
        if mode == "none":
            return 0.0
        if mode in ("density", "channel_density"):
            return float(min(fd.demand(self.inputs["upstream_density"]), supply0))
        q = demand_at(p, t, dt) if mode == "flow" else self.inputs["upstream_flow"]
        want = q + self.up_queue / dt    # unserved vehicles wait in a point queue
        got = float(min(want, supply0))
        self.up_queue += (q - got) * dt
        return got

    def _outflow(self, demand_last: float) -> float:
        return float(min(demand_last, self._down_supply()))

    def _down_supply(self) -> float:
        """Supply [veh/s] of the downstream boundary."""
        p, fd = self.params, self.fd
        mode = p.outflow
        if mode == "closed":
            return 0.0
        if mode == "free":
            supply = fd.capacity
        elif mode in ("density", "channel_density"):
            supply = fd.supply(self.inputs["downstream_density"])
        else:
            supply = self.inputs["downstream_supply"]
        return float(supply)

    # ------------------------------------------------------------------ fields
    def interface_flux(self) -> np.ndarray:
        """(n_local + 1,) flows [veh/s] through this rank's cell interfaces in the last step."""
        return self.flux.copy()

    def get(self, name):
        fd, seg = self.fd, self.seg
        if name == "density":
            return self.rho.copy()
        if name == "flow":
            return fd.flow(self.rho)
        if name == "speed":
            base = fd.fd if isinstance(fd, CapacityDrop) else fd
            v0 = base.q[1] / base.rho[1] if isinstance(base, Tabulated) else base.v_free      # q'(0)
            q = fd.flow(self.rho)
            return np.where(self.rho > 0, q / np.maximum(self.rho, 1e-300), v0)
        if name == "flux_query" and self.params.diagram == "hmm":
            return self.answered.query() if self.rank == 0 else np.zeros(0)
        if name not in self.END_OUTPUTS:
            raise KeyError(f"traffic.lwr has no output {name!r}")
        end, _, q = name.partition("_")
        if not (seg.first if end == "upstream" else seg.last):
            return np.zeros(0)
        i = 0 if end == "upstream" else -1
        if q == "flow":
            return self.flux[i:][:1].copy()
        if q == "vehicles":
            return self.flux[-1:] * self.last_dt
        if q in ("supply", "demand") and self.params.phases == "wide_jam":
            D, S = self._phase_demand_supply(self.rho[i:][:1], self.jam[i:][:1], self.last_dt)
            return (S if q == "supply" else D).astype(np.float64)
        if q == "supply":
            return np.array([fd.supply(self.rho[0])], dtype=np.float64)
        if q == "demand":
            return np.array([fd.demand(self.rho[-1])], dtype=np.float64)
        return self.get(q)[i:][:1]

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64)
        if name == "fundamental_flow":
            if len(data):
                self.new_table = data.reshape(-1).copy()
        elif name == "flux_answer" and self.params.diagram == "hmm":
            if len(data):
                q = data.reshape(-1)
                if not np.all(np.isfinite(q)) or np.any(q < 0):
                    raise ValueError(f"traffic.lwr: answered flows must be finite and >= 0, got {q}")
                self.new_table = q.copy()
        elif name in self.inputs:
            if len(data):
                self.inputs[name] = float(data.reshape(-1)[0])
        else:
            raise KeyError(f"traffic.lwr has no input {name!r}")

    # ------------------------------------------------------------------ counts
    def results(self):
        """Per-cell fields and cumulative vehicle counts per cell [veh], shape (n_local,); ``count_queued``
        holds the vehicles waiting in the upstream and on-ramp point queues (in their cells)."""
        out = {q: self.get(q) for q in self.CELL_OUTPUTS}
        out.update({f"count_{k}": v.copy() for k, v in self.cum.items()})
        out["count_present"] = self.rho * self.dx
        # vehicles waiting to enter: the upstream point queue and the on-ramps' queues, in their cells
        queued = np.zeros(self.seg.n_local)
        if self.seg.first:
            queued[0] += self.up_queue
        for k, c in enumerate(self.ramp_cell):
            if 0 <= c < self.seg.n_local:
                queued[c] += self.ramp_queue[k]
        out["count_queued"] = queued
        return out

    def result_points(self):
        return self.seg.centers + self.params.road_start

    def counts(self) -> dict[str, float]:
        """Global cumulative vehicle counts [veh] (collective); initial + in + created = out + removed
        + present up to rounding."""
        keys = ("initial", "in", "created", "removed", "out")
        local = np.array([self.cum[k].sum() for k in keys] + [self.rho.sum() * self.dx])
        tot = local.copy()
        if self.size > 1:
            from mpi4py import MPI
            self.comm.Allreduce(local, tot, op=MPI.SUM)
        return dict(zip(keys + ("present",), map(float, tot)))

    # ------------------------------------------------------------------ state
    def state(self):
        s = {"rho": self.rho.copy(), "flux": self.flux.copy(), "table": self.table.copy(),
             "queues": np.concatenate([[self.up_queue, self.last_dt], self.ramp_queue]),
             "inputs": np.array([self.inputs[k] for k in sorted(self.inputs)])}
        s.update({f"cum_{k}": v.copy() for k, v in self.cum.items()})
        if self.params.diagram == "hmm":
            s.update(self.answered.state())
        if self.params.phases == "wide_jam":
            s["phase"] = self.jam.copy()
        return s

    def restore(self, state):
        self.rho, self.flux = state["rho"].copy(), state["flux"].copy()
        if self.params.diagram == "hmm":
            self.answered.restore(state)
            self.table, self.fd = self.answered.table, with_discharge(self.params, self.answered.tabulated())
            self.checked_dt = None
        elif not np.array_equal(state["table"], self.table):
            self.table = state["table"].copy()
            self.fd = make_diagram(self.params, self.table if self.params.diagram == "tabulated" else None)
            self.checked_dt = None
        self.new_table = None
        q = state["queues"]
        self.up_queue, self.last_dt, self.ramp_queue = float(q[0]), float(q[1]), q[2:].copy()
        for k, v in zip(sorted(self.inputs), state["inputs"]):
            self.inputs[k] = float(v)
        for k in self.cum:
            self.cum[k] = state[f"cum_{k}"].copy()
        if self.params.phases == "wide_jam":
            self.jam = state["phase"].copy()
