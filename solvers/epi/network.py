"""``epi.network``: agent-based SEIR/SIR on a contact network, distributed over ranks.

Time unit: the day.  Agents ``0 .. n_agents-1`` live in regions (consecutive id
blocks, ``regions``) and are split over the group's ranks in contiguous id blocks.
The contact graph is built by :mod:`solvers.epi.contacts` (generated per region, so
regions share no contacts; or read from an edge-list file).

**The scheme** (exact in final size for any step ``dt``).  An agent infected during
step [t, t+dt) becomes latent or infectious at the *end* of the step, t + dt (so a
chain of infections advances at most one link per step; the generation interval is
later by up to dt, the final size is unchanged).  It then draws, once and keyed on
its id, a latent period Exp(``sigma``) (none when ``sigma`` is null: SIR) and an
infectious period D ~ Exp(``gamma``) or D = 1/``gamma`` (``infectious_period:
fixed``).  During each step, an infectious agent i whose infectious interval overlaps
the step by L days transmits along each contact (i, j) of layer l with probability
``1 - exp(-beta * weight_l * factor_l(t) * L)``, one independent draw per
(step, i, j, l).  Over its whole period contact (i, j) is thus used with probability
``1 - E[exp(-beta D)]`` = beta/(beta + gamma) (exponential D) or 1 - exp(-beta/gamma)
(fixed D), exactly the transmissibility T of bond percolation, whatever dt is — the
final size of a major outbreak is the percolation result (Newman 2002; Kenah & Robins
2007: each agent's incoming contacts are independent).

**Randomness** is counter-based (:func:`solvers.epi.epi_kernels.uniform`, a hash of
(seed, purpose, step, agent ids)), never a per-rank stream: results are identical on
1, 2 and 4 ranks.  Infections of agents held by other ranks are sent to their owner
with ``Alltoallv`` of int64 ids each step.

**Interventions**: ``interventions`` set ``factor_l`` of a layer (or ``all``) from a
time on (factors replace earlier ones, relative to the baseline).  ``testing``:
infectious agents are detected at rate ``rate`` from ``start`` on (detection time
drawn once per agent: max(t_inf, start) + Exp(rate)); after detection their contacts
outside ``households`` layers are multiplied by ``isolation_factor``.

**Coupling fields** (one point per region, x = region index, all on the group's
first rank; other ranks hold none).  Outputs: ``S``, ``E``, ``I``, ``R`` (counts at
the end of the step), ``incidence`` (new infections during the last step),
``exported`` (integer count of infectious travellers leaving the region during the
last step: each infectious agent travels with probability ``travel_fraction * L``,
L its infectious time within the step in days, counter-based draw; travellers keep
their home contacts, they are a count for the macro side), ``growth_rate`` (1/day:
least-squares slope of ln(incidence/dt) against time over all steps since the start
with incidence > 0; 0 before two such steps), ``attack_rate`` (R/N).
Inputs: ``imported`` (infectious visitors present in the region during the next step,
a real count) and ``contact_factor`` (multiplies every ``random``-kind layer — the
community, and every contact of a single-generator or file network — of the region's
infectious agents, and the visitors' contacts; default 1).

**The visitor rule**: each visitor makes ``visitor_contacts`` contacts per day
(default: the region's mean degree) with agents of the region drawn uniformly, each
transmitting at rate ``visitor_beta`` (default ``beta``) times ``contact_factor``.
So every susceptible agent of region r is infected during the step with probability
``1 - exp(-visitor_beta * contact_factor_r * visitor_contacts * imported_r / N_r * dt)``
(counter-based draw per agent and step).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param

from . import epi_kernels as K
from .contacts import LayerParams, NetworkParams, build_graph, layer_names, network_problems

__all__ = ["EpiNetworkParams", "EpiNetworkSolver", "RegionParams", "InterventionParams", "TestingParams",
           "LayerParams", "NetworkParams"]


@dataclass(frozen=True)
class RegionParams:
    """One region: the next ``agents`` consecutive agent ids."""

    name: str = param(doc="region name")
    agents: int = param(doc="number of agents in the region", units="agents")


@dataclass(frozen=True)
class InterventionParams:
    """From ``time`` on, contacts of ``layer`` (or ``all``) carry ``factor`` times their baseline rate."""

    time: float = param(doc="when it starts", units="day")
    layer: str = param("all", "layer name, or all")
    factor: float = param(0.0, "multiplier on the layer's baseline transmission rate (0: closed)")


@dataclass(frozen=True)
class TestingParams:
    """Testing and isolation of infectious agents."""

    start: float = param(0.0, "when testing starts", units="day")
    rate: float = param(0.0, "detection rate of an infectious agent (0: no testing)", units="1/day")
    isolation_factor: float = param(0.0, "multiplier on a detected agent's contacts outside households layers")


@dataclass(frozen=True)
class EpiNetworkParams:
    n_agents: int = param(10000, "number of agents", units="agents")
    network: NetworkParams = param(NetworkParams(), "contact network generator")
    beta: float = param(0.25, "transmission rate per contact", units="1/day")
    sigma: float | None = param(None, "1/latent period (null: SIR, no latent state)", units="1/day")
    gamma: float = param(1.0, "1/infectious period", units="1/day")
    infectious_period: Literal["exponential", "fixed"] = param(
        "exponential", "infectious period distribution: Exp(gamma), or exactly 1/gamma")
    seed: int = param(0, "seed of every random draw (network, seeding, transmission)")
    network_seed: int | None = param(None, "seed of the network alone (default: seed)")
    initial_infected: int = param(10, "agents infected at the start (drawn uniformly)", units="agents")
    initial_state: Literal["I", "E"] = param("I", "state of the initially infected agents")
    initial_region: str | None = param(None, "draw the initially infected from this region only")
    interventions: tuple[InterventionParams, ...] = param((), "layer factors from given times on")
    testing: TestingParams = param(TestingParams(), "testing and isolation")
    regions: tuple[RegionParams, ...] = param((), "regions as consecutive agent blocks (default: one region)")
    travel_fraction: float = param(0.0, "fraction of a region's infectious agents travelling out per day "
                                        "(the exported output)", units="1/day")
    visitor_contacts: float | None = param(None, "contacts per day of one visitor (default: the region's mean "
                                                 "degree)", units="contacts/day")
    visitor_beta: float | None = param(None, "transmission rate per visitor contact (default: beta)",
                                       units="1/day")


_COUNT_DOC = {"S": "susceptible agents", "E": "latent agents", "I": "infectious agents", "R": "recovered agents"}


class EpiNetworkSolver(Solver):
    """Agents on a contact network (see the module docstring for the scheme and fields)."""

    Params = EpiNetworkParams
    outputs = ("S", "E", "I", "R", "incidence", "exported", "growth_rate", "attack_rate")
    inputs = ("imported", "contact_factor")
    field_info = {
        **{k: FieldInfo("1", f"{v} per region at the end of the step", extensive=True) for k, v in _COUNT_DOC.items()},
        "incidence": FieldInfo("1", "new infections per region during the last step", extensive=True),
        "exported": FieldInfo("1", "infectious travellers leaving each region during the last step (integer)",
                              extensive=True),
        "growth_rate": FieldInfo("1/day", "slope of ln(incidence/dt) over time since the start"),
        "attack_rate": FieldInfo("1", "R / N per region"),
        "imported": FieldInfo("1", "infectious visitors in each region during the next step", extensive=True),
        "contact_factor": FieldInfo("1", "multiplier on each region's community contacts (default 1)"),
    }

    # ------------------------------------------------------------------ checks
    @classmethod
    def check(cls, p):
        probs = []
        if p.n_agents < 1:
            probs.append(("n_agents", f"must be >= 1, got {p.n_agents}", "e.g. n_agents: 10000"))
        for key in ("seed", "network_seed"):
            if (getattr(p, key) or 0) < 0:
                probs.append((key, f"must be >= 0, got {getattr(p, key)}", "use a non-negative integer"))
        for key in ("beta", "gamma"):
            if not getattr(p, key) > 0:
                probs.append((key, f"a rate must be > 0, got {getattr(p, key)}", f"give {key} in 1/day, e.g. 1.0"))
        if p.sigma is not None and not p.sigma > 0:
            probs.append(("sigma", f"a rate must be > 0, got {p.sigma}", "give 1/latent period in 1/day, "
                                                                          "or null for SIR"))
        if p.visitor_beta is not None and not p.visitor_beta > 0:
            probs.append(("visitor_beta", f"a rate must be > 0, got {p.visitor_beta}", "or null for beta"))
        if p.visitor_contacts is not None and not p.visitor_contacts >= 0:
            probs.append(("visitor_contacts", "must be >= 0", "or null for the region's mean degree"))
        if not 0 <= p.travel_fraction <= 1:
            probs.append(("travel_fraction", f"must lie in [0, 1], got {p.travel_fraction}", "fix it"))
        sizes = [r.agents for r in p.regions]
        names = [r.name for r in p.regions]
        if p.regions and sum(sizes) != p.n_agents:
            probs.append(("regions", f"region agents sum to {sum(sizes)}, n_agents is {p.n_agents}",
                          "make the sum equal n_agents"))
        for i, r in enumerate(p.regions):
            if r.agents < 1:
                probs.append((f"regions[{i}].agents", f"must be >= 1, got {r.agents}", "fix it"))
            if names.count(r.name) > 1:
                probs.append((f"regions[{i}].name", f"region name {r.name!r} is used twice", "rename one"))
        if p.initial_region is not None and p.initial_region not in (names or []):
            probs.append(("initial_region", f"no region named {p.initial_region!r} (regions: "
                          f"{', '.join(names) or 'none declared'})", "name a declared region or use null"))
        pool = p.n_agents
        if p.initial_region in names:
            pool = sizes[names.index(p.initial_region)]
        if not 0 <= p.initial_infected <= pool:
            probs.append(("initial_infected", f"must lie in [0, {pool}], got {p.initial_infected}", "fix it"))
        probs += network_problems(p.network, p.n_agents)
        if p.network.kind == "k-regular" and p.network.degree >= 1:
            k = p.network.degree
            for name, n in zip(names or ["all agents"], sizes or [p.n_agents]):
                if n * k % 2 or k >= n:
                    probs.append(("network.degree", f"no {k}-regular graph on the {n} agents of region {name} "
                                  "(needs degree < agents and agents * degree even)",
                                  "change the degree or the region's agents"))
        layers = layer_names(p.network)
        for i, iv in enumerate(p.interventions):
            if iv.layer != "all" and iv.layer not in layers:
                probs.append((f"interventions[{i}].layer", f"no layer named {iv.layer!r} (layers: "
                              f"{', '.join(layers)})", "name a layer, or all"))
            if not iv.factor >= 0 or not math.isfinite(iv.factor):
                probs.append((f"interventions[{i}].factor", f"must be >= 0, got {iv.factor}", "fix it"))
        if not p.testing.rate >= 0:
            probs.append(("testing.rate", f"must be >= 0, got {p.testing.rate}", "fix it"))
        if not 0 <= p.testing.isolation_factor <= 1:
            probs.append(("testing.isolation_factor", "must lie in [0, 1]", "fix it"))
        return probs

    # -------------------------------------------------------------- set-up
    def initialize(self, t0):
        p = self.params
        probs = self.check(p)
        if probs:
            raise ValueError("epi.network settings: " + "; ".join(f"{k}: {m} ({f})" for k, m, f in probs))
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        n = p.n_agents
        self.region_sizes = np.array([r.agents for r in p.regions] or [n], dtype=np.int64)
        self.region_names = [r.name for r in p.regions] or ["all"]
        self.bounds = np.array([(n * k) // self.size for k in range(self.size + 1)], dtype=np.int64)
        self.lo, self.hi = int(self.bounds[self.rank]), int(self.bounds[self.rank + 1])
        net_seed = p.seed if p.network_seed is None else p.network_seed
        key = (n, p.network, p.regions, net_seed, self.size)
        if getattr(self, "_graph_key", None) != key:     # a reset (HMM query) with the same network keeps it
            self._build_graph(net_seed)
            self._graph_key = key
        self._start(t0)

    def _build_graph(self, net_seed: int) -> None:
        """This rank's rows of the contact graph, the agents' regions, the regions' mean degrees."""
        p, n = self.params, self.params.n_agents
        nreg = len(self.region_sizes)
        graph = build_graph(p.network, list(self.region_sizes), net_seed)
        self.layer_names, self.layer_kinds = graph.layer_names, graph.layer_kinds
        starts = np.concatenate([[0], np.cumsum(self.region_sizes)])
        deg_sum = np.add.reduceat(graph.degree, starts[:-1]) if n else np.zeros(nreg)
        self.mean_degree = deg_sum / self.region_sizes
        a, b = graph.indptr[self.lo], graph.indptr[self.hi]
        self.indptr = graph.indptr[self.lo:self.hi + 1] - a
        self.indices = graph.indices[a:b].copy()
        self.elayer = graph.layer[a:b].copy()
        del graph
        self.region = (np.searchsorted(starts, np.arange(self.lo, self.hi), side="right") - 1).astype(np.int32)
        n_cross = int(np.count_nonzero((self.indices < self.lo) | (self.indices >= self.hi)))
        self.remote = np.empty(max(n_cross, 1), dtype=np.int64)

    def _start(self, t0: float) -> None:
        """Every agent susceptible, then the initial infections at ``t0``."""
        p = self.params
        nreg = len(self.region_sizes)
        n_loc = self.hi - self.lo
        self.status = np.zeros(n_loc, dtype=np.int8)
        self.t_inf = np.full(n_loc, np.inf)
        self.t_rec = np.full(n_loc, np.inf)
        self.t_det = np.full(n_loc, np.inf)
        self.active = np.empty(n_loc, dtype=np.int64)
        self.new_local = np.empty(n_loc, dtype=np.int64)
        self.n_active = 0
        self.counts = np.zeros((nreg, 4), dtype=np.int64)
        self.counts[:, 0] = np.bincount(self.region, minlength=nreg)
        self.incidence = np.zeros(nreg, dtype=np.int64)
        self.exported = np.zeros(nreg, dtype=np.int64)
        self.imported = np.zeros(nreg)
        self.contact_factor = np.ones(nreg)
        self._inputs_put = False
        self.step_index = 0
        #: wall seconds of this rank in advance(): [compute, collectives (exchange + reduce)]; not state
        self.seconds = np.zeros(2)
        #: CPU seconds of this thread in advance()'s compute parts (the numba kernels run in it); unlike
        #: the wall seconds not inflated while the rank is descheduled on a loaded machine; not state
        self.compute_cpu_seconds = 0.0
        self.fit = np.zeros((nreg, 5))        # per region: n, sum t, sum t^2, sum y, sum t*y
        self.t0 = float(t0)
        self.iso = np.array([1.0 if kind == "households" else p.testing.isolation_factor
                             for kind in self.layer_kinds])
        self.community = np.array([kind == "random" for kind in self.layer_kinds])
        self.weights = np.array([layer.weight for layer in p.network.layers] if p.network.kind == "layers"
                                else [1.0] * len(self.layer_names))
        self._seed_infections(t0)
        self.incidence[:] = 0                  # seeding is not incidence of a step
        self._reduce()

    def _seed_infections(self, t0):
        p = self.params
        if p.initial_infected == 0:
            return
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([p.seed, K.PURPOSE["seed"]])))
        first, pool = 0, p.n_agents
        if p.initial_region is not None:
            k = self.region_names.index(p.initial_region)
            first, pool = int(self.region_sizes[:k].sum()), int(self.region_sizes[k])
        ids = first + np.sort(rng.choice(pool, size=p.initial_infected, replace=False))
        mine = ids[(ids >= self.lo) & (ids < self.hi)] - self.lo
        sigma = (p.sigma or 0.0) if p.initial_state == "E" else 0.0
        self.status[mine] = K.NEW
        self.n_active = K.infect(mine.astype(np.int64), float(t0), p.seed, self.lo, sigma, p.gamma,
                                 p.infectious_period == "fixed", p.testing.start, p.testing.rate,
                                 self.status, self.t_inf, self.t_rec, self.t_det, self.region, self.counts,
                                 self.incidence, self.active, self.n_active)

    # ------------------------------------------------------------------ step
    def _layer_factors(self, t: float) -> np.ndarray:
        f = np.ones(len(self.layer_names))
        for iv in sorted(self.params.interventions, key=lambda iv: iv.time):
            if iv.time <= t + 1e-9:
                if iv.layer == "all":
                    f[:] = iv.factor
                else:
                    f[self.layer_names.index(iv.layer)] = iv.factor
        return f

    def _sync_inputs(self):
        """The inputs live on the first rank (its field points): give every rank their values.

        Only after a ``put`` (the framework calls ``put`` on every rank of the group for each
        coupled input, so all ranks agree on whether to broadcast)."""
        if self.size > 1 and self._inputs_put:
            buf = np.concatenate([self.imported, self.contact_factor])
            self.comm.Bcast(buf, root=0)
            nreg = len(self.region_sizes)
            self.imported, self.contact_factor = buf[:nreg].copy(), buf[nreg:].copy()
        self._inputs_put = False

    def advance(self, t, dt):
        p = self.params
        if not dt > 0:
            raise ValueError(f"epi.network: the step must be > 0 days, got dt = {dt}")
        self._sync_inputs()
        c0, u0 = time.perf_counter(), time.thread_time()
        t1 = t + dt
        base = p.beta * self.weights * self._layer_factors(t)
        cf = np.maximum(self.contact_factor, 0.0)
        rate = np.where(self.community[None, :], cf[:, None], 1.0) * base[None, :]
        self.incidence[:] = 0
        self.exported[:] = 0
        n_new = 0
        if np.any(self.imported > 0):
            contacts = self.mean_degree if p.visitor_contacts is None else np.full(len(cf), p.visitor_contacts)
            vb = p.beta if p.visitor_beta is None else p.visitor_beta
            hazard = vb * cf * contacts * np.maximum(self.imported, 0.0) / self.region_sizes
            n_new = K.visitor_step(dt, self.step_index, p.seed, self.status, self.region, self.lo, hazard,
                                   self.new_local, n_new)
        n_new, n_remote = K.transmit_step(
            float(t), float(dt), self.step_index, p.seed, self.active, self.n_active, self.status, self.t_inf,
            self.t_rec, self.t_det, self.region, self.indptr, self.indices, self.elayer, rate, self.iso,
            self.lo, self.hi, p.travel_fraction, self.new_local, n_new, self.remote, self.exported)
        c1, u1 = time.perf_counter(), time.thread_time()
        if self.size > 1:
            n_new = self._exchange(n_remote, n_new)
        c2, u2 = time.perf_counter(), time.thread_time()
        self.n_active = K.settle_step(float(t1), self.active, self.n_active, self.status, self.t_inf,
                                      self.t_rec, self.region, self.counts)
        self.n_active = K.infect(self.new_local[:n_new], float(t1), p.seed, self.lo, p.sigma or 0.0, p.gamma,
                                 p.infectious_period == "fixed", p.testing.start, p.testing.rate,
                                 self.status, self.t_inf, self.t_rec, self.t_det, self.region, self.counts,
                                 self.incidence, self.active, self.n_active)
        self.step_index += 1
        c3 = time.perf_counter()
        self.compute_cpu_seconds += (u1 - u0) + (time.thread_time() - u2)
        self._reduce()
        self._fit_growth(t + 0.5 * dt, dt)
        self.seconds[0] += (c1 - c0) + (c3 - c2)
        self.seconds[1] += (time.perf_counter() - c3) + (c2 - c1)

    def _exchange(self, n_remote: int, n_new: int) -> int:
        """Send infected remote agents to their owners (Alltoallv of int64 ids); mark the received."""
        from mpi4py import MPI
        out = np.unique(self.remote[:n_remote])              # sorted: grouped by owner
        send_counts = np.diff(np.searchsorted(out, self.bounds)).astype(np.int64)
        recv_counts = np.empty(self.size, dtype=np.int64)
        self.comm.Alltoall(send_counts, recv_counts)
        sdispl = np.concatenate([[0], np.cumsum(send_counts)[:-1]])
        rdispl = np.concatenate([[0], np.cumsum(recv_counts)[:-1]])
        got = np.empty(int(recv_counts.sum()), dtype=np.int64)
        self.comm.Alltoallv([out, (send_counts, sdispl), MPI.INT64_T], [got, (recv_counts, rdispl), MPI.INT64_T])
        a = np.unique(got - self.lo)
        a = a[self.status[a] == K.S]
        self.status[a] = K.NEW
        self.new_local[n_new:n_new + len(a)] = a
        return n_new + len(a)

    def _reduce(self):
        """Group-wide counts, incidence and exported per region (one Allreduce of int64)."""
        nreg = len(self.region_sizes)
        local = np.concatenate([self.counts.ravel(), self.incidence, self.exported])
        if self.size > 1:
            total = np.empty_like(local)
            self.comm.Allreduce(local, total)
        else:
            total = local
        self.g_counts = total[:4 * nreg].reshape(nreg, 4).astype(np.float64)
        self.g_incidence = total[4 * nreg:5 * nreg].astype(np.float64)
        self.g_exported = total[5 * nreg:].astype(np.float64)

    def _fit_growth(self, t_mid: float, dt: float):
        pos = self.g_incidence > 0
        if not np.any(pos):
            return
        x = t_mid - self.t0
        y = np.log(self.g_incidence[pos] / dt)
        f = self.fit[pos]
        f += np.column_stack([np.ones_like(y), np.full_like(y, x), np.full_like(y, x * x), y, x * y])
        self.fit[pos] = f

    def growth_rate(self) -> np.ndarray:
        """Least-squares slope of ln(incidence/dt) over time per region (1/day); 0 with < 2 points."""
        n, st, stt, sy, sty = self.fit.T
        den = n * stt - st * st
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (n * sty - st * sy) / den
        return np.where((n >= 2) & (den > 0), slope, 0.0)

    # -------------------------------------------------------------- fields
    def _points(self) -> np.ndarray:
        nreg = len(self.region_sizes)
        return np.arange(nreg, dtype=np.float64)[:, None] if self.rank == 0 else np.zeros((0, 1))

    def fields(self):
        pts = self._points()
        out = {}
        for name, info in self.field_info.items():
            out[name] = FieldSpec("float64", 1, info.units, pts, extensive=info.extensive)
        return out

    def get(self, name):
        if self.rank != 0:
            return np.zeros(0)
        c = self.g_counts
        if name in ("S", "E", "I", "R"):
            return c[:, "SEIR".index(name)].copy()
        if name == "incidence":
            return self.g_incidence.copy()
        if name == "exported":
            return self.g_exported.copy()
        if name == "growth_rate":
            return self.growth_rate()
        if name == "attack_rate":
            return c[:, 3] / self.region_sizes
        raise KeyError(f"epi.network has no output {name!r}")

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64)
        if name not in ("imported", "contact_factor"):
            raise KeyError(f"epi.network has no input {name!r}")
        if self.rank == 0:
            getattr(self, name)[:] = data.reshape(-1)
        self._inputs_put = True

    # -------------------------------------------------------------- state
    def state(self):
        return {"lo_hi": np.array([self.lo, self.hi], dtype=np.int64), "status": self.status.copy(),
                "t_inf": self.t_inf.copy(), "t_rec": self.t_rec.copy(), "t_det": self.t_det.copy(),
                "active": self.active[:self.n_active].copy(), "counts": self.counts.copy(),
                "incidence": self.incidence.copy(), "exported": self.exported.copy(),
                "inputs": np.concatenate([self.imported, self.contact_factor]),
                "step": np.array([self.step_index], dtype=np.int64), "fit": self.fit.copy()}

    def restore(self, state):
        self.status[:] = state["status"]
        self.t_inf[:], self.t_rec[:], self.t_det[:] = state["t_inf"], state["t_rec"], state["t_det"]
        self.n_active = len(state["active"])
        self.active[:self.n_active] = state["active"]
        self.counts[:] = state["counts"]
        self.incidence[:], self.exported[:] = state["incidence"], state["exported"]
        nreg = len(self.region_sizes)
        self.imported[:], self.contact_factor[:] = state["inputs"][:nreg], state["inputs"][nreg:]
        self.step_index = int(state["step"][0])
        self.fit[:] = state["fit"]
        self._inputs_put = True                 # broadcast the first rank's restored inputs
        self._reduce()

    def restore_all(self, states):
        """Re-slice the agents of a checkpoint written on another number of ranks."""
        states = sorted(states, key=lambda s: int(s["lo_hi"][0]))
        cat = {k: np.concatenate([s[k] for s in states]) for k in ("status", "t_inf", "t_rec", "t_det")}
        sl = slice(self.lo, self.hi)
        self.status[:] = cat["status"][sl]
        self.t_inf[:], self.t_rec[:], self.t_det[:] = cat["t_inf"][sl], cat["t_rec"][sl], cat["t_det"][sl]
        act = np.flatnonzero((self.status == K.E) | (self.status == K.I))
        self.n_active = len(act)
        self.active[:self.n_active] = act
        nreg = len(self.region_sizes)
        self.counts[:] = 0
        for s in range(4):
            self.counts[:, s] = np.bincount(self.region[self.status == s], minlength=nreg)
        # per-step incidence/exported were group sums: keep them on the first rank only
        first = self.rank == 0
        self.incidence[:] = sum(s["incidence"] for s in states) if first else 0
        self.exported[:] = sum(s["exported"] for s in states) if first else 0
        s0 = states[0]
        self.imported[:], self.contact_factor[:] = s0["inputs"][:nreg], s0["inputs"][nreg:]
        self.step_index = int(s0["step"][0])
        self.fit[:] = s0["fit"]
        self._inputs_put = True
        self._reduce()
