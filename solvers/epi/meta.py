"""``epi.meta``: a metapopulation SEIR model -- regions of well-mixed compartments linked by mobility.

Each region k has residents N_k in compartments S, E, I, R (persons; ``sigma:
null`` drops E: SIR).  Time is in days, rates in 1/day.  The force of infection
on a susceptible of region j is

    lambda_j(t) = beta_j(t) (I_j + V_j) / N_j,     V_j = sum_i m_ij I_i + Y_j,

where m_ij is the mobility matrix (fraction of i's residents present in j, see
:mod:`solvers.epi.mobility`), so V_j counts infectious visitors, and Y_j the
infectious visitors routed to j from agent regions (below).  With ``visitor_beta``
set, visitors transmit at that rate instead: lambda_j = (beta_j I_j + visitor_beta
V_j) / N_j (``epi.network``'s rule: a visitor's contacts are not reduced by layer
interventions).  beta_j(t) is the
region's rate (``beta``, or the region's own) times the factor of the latest
intervention in force (``interventions``: contact reductions from a day on), or
comes from the ``beta`` input (``transmission: input``), or from the HMM farm
(``transmission: hmm``, below).

Variants
--------
* ``ode``: the mean-field equations dS = -lambda S, dE = lambda S - sigma E,
  dI = sigma E - gamma I, dR = gamma I, integrated with ``substeps`` classical
  Runge-Kutta steps per solver step (visitors from agent regions held constant
  over the step).
* ``chain-binomial``: whole persons, per step of length dt (Reed-Frost /
  Greenwood type): the infectious residents of i present in each j are drawn
  multinomially (probabilities m_ij), then S->E ~ Bin(S, 1 - exp(-lambda dt)),
  E->I ~ Bin(E, 1 - exp(-sigma dt)), I->R ~ Bin(I, 1 - exp(-gamma dt)), with
  lambda from the drawn visitors.  Draws use a counter-based generator keyed by
  (seed, region index, step): results do not depend on the number of ranks and
  restart bitwise.  The infectious period is then geometric with mean
  dt / (1 - exp(-gamma dt)) days, so the final size is that of
  R0 = beta dt / (1 - exp(-gamma dt)) (-> beta/gamma as dt -> 0).

Network mixing (``mixing: network``)
------------------------------------
Instead of mass action, each region's residents are a large contact network with
the degree distribution ``degree`` (``poisson``: Erdos-Renyi, ``regular``: every
resident has ``mean`` contacts), ``beta`` is the transmission rate *per contact*,
and the ODE is the edge-based compartmental model (:mod:`solvers.epi.edge_based`,
Miller, Slim & Volz 2012): the exact large-N limit of ``epi.network`` on such a
network (its peak is lower and earlier than mass action with the same early growth,
because an infected resident's neighbours are used up).  Visitors (from mobility or
agent regions) infect by mass action on random residents: each susceptible is
infected at rate lam_ext = visitor_beta V_j / N_j with visitor_beta the rate of one
visitor (default: beta x mean degree, i.e. a visitor makes as many contacts as a
resident; ``epi.network``'s rule with visitor_beta x visitor_contacts).  Initially
infected, exposed and removed residents are random nodes.  ``variant: ode`` and
``transmission: fixed`` only; interventions multiply the per-contact rate.

Agent regions (hybrid with ``epi.network``)
-------------------------------------------
A region with ``agents: true`` is simulated by another solver; here it has no
compartments, only its row and column of the mobility matrix.  Per step:

* input ``imported`` (one point per agent region, x = its position among the agent
  regions, 0, 1, ...; persons): the infectious travellers that left it during
  the last step (``epi.network``'s ``exported``).  They are split over the
  destinations of its mobility row (multinomially for whole counts): those
  landing in a compartment region are its visitors Y_j for this step;
* output ``exported`` (same points, persons): the infectious visitors present in
  each agent region during this step -- from compartment regions (drawn, or the
  step mean of sum_i m_ik I_i for ``ode``) plus those routed from other agent
  regions.  Couple it to ``epi.network``'s ``imported``.

A job whose regions are all agent regions uses this solver as the pure mobility
exchange between the regions of an all-agent run.  Results count, per region and
cumulatively, the infectious traveller-steps that left (``travel_out``) and
arrived (``travel_in``); their totals are equal (exactly for whole counts), and an
agent region's ``travel_out`` equals the sum of what its solver exported.

HMM (``transmission: hmm``)
---------------------------
Output ``rate_query`` (one point per compartment region, components = the
layers of ``hmm_layers``): the current intervention factor of each contact
layer in that region; input ``growth_rate`` (same points, 1/day): the answered
epidemic growth rate r of that region's contact network under those factors.
The region's rate is beta = R gamma with R = (1 + r/sigma)(1 + r/gamma)
(Wallinga & Lipsitch 2007), until the first answer the ``beta`` setting.

Parallel over regions: the compartment regions are split into consecutive
blocks over the group's ranks; infectious counts (ode) or drawn visitors
(chain-binomial) of all regions are summed with ``Allreduce`` each stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver, param

from . import edge_based
from .mobility import fractions, mobility_problems, split_travellers
from .seir import philox, rate_problems, reproduction_number

__all__ = ["RegionParams", "InterventionParams", "EpiMetaParams", "EpiMetaSolver"]

COUNT = "1"          # persons; "1" as epi.network declares its counts (the handshake compares units)
COMPARTMENTS = ("S", "E", "I", "R")


@dataclass(frozen=True)
class RegionParams:
    """One region of the metapopulation."""

    name: str = param(doc="region name (unique)")
    population: float = param(doc="residents N (whole for chain-binomial)", units="persons")
    initial_infected: float = param(0.0, "infectious residents at the start", units="persons")
    initial_exposed: float = param(0.0, "exposed residents at the start (SEIR)", units="persons")
    initial_recovered: float = param(0.0, "removed (immune) residents at the start", units="persons")
    beta: Optional[float] = param(None, "this region's transmission rate (default: the solver's beta)",
                                  units="1/day")
    agents: bool = param(False, "simulated by another solver (epi.network): only its travellers pass here")


@dataclass(frozen=True)
class InterventionParams:
    """A contact reduction from a day on (the latest one in force applies)."""

    time: float = param(doc="first day it applies (steps starting at or after it)", units="day")
    factor: float = param(doc="multiplier on the transmission rate (0: no contacts, 1: none closed)")
    regions: tuple[str, ...] = param((), "names of the regions it applies to (empty: all)")
    layers: dict[str, float] = param({}, "transmission: hmm: factor per contact layer named in hmm_layers "
                                         "(layers not named keep 1)")


@dataclass(frozen=True)
class DegreeParams:
    """Degree distribution of each region's contact network (``mixing: network``)."""

    kind: Literal["poisson", "regular"] = param("poisson", "poisson: Erdos-Renyi; regular: every resident "
                                                           "has exactly mean contacts")
    mean: float = param(10.0, "mean number of contacts per resident (regular: a whole number)", units="contacts")


@dataclass(frozen=True)
class EpiMetaParams:
    regions: tuple[RegionParams, ...] = param((), "the regions, in order (x coordinate = index)")
    variant: Literal["ode", "chain-binomial"] = param("ode", "deterministic ODE, or stochastic chain-binomial")
    beta: float = param(0.3, "transmission rate (contacts x infection probability)", units="1/day")
    sigma: Optional[float] = param(0.2, "1 / mean latent period; null: SIR (no E)", units="1/day")
    gamma: float = param(0.1, "1 / mean infectious period", units="1/day")
    mobility: tuple[tuple[float, ...], ...] = param(
        (), "N x N matrix: (i, j) = residents of region i present in region j (see mobility_units); [] none")
    mobility_units: Literal["fraction", "persons"] = param(
        "fraction", "mobility entries as fractions of the origin's residents (rows <= 1) or persons "
        "(rows <= population)")
    interventions: tuple[InterventionParams, ...] = param((), "contact reductions over time")
    transmission: Literal["fixed", "input", "hmm"] = param(
        "fixed", "beta from the settings x interventions, from the beta input, or from the HMM farm's growth_rate")
    hmm_layers: tuple[str, ...] = param((), "transmission: hmm: contact layers whose factors form the query")
    visitor_beta: Optional[float] = param(
        None, "transmission rate of one infectious visitor (default: the region's beta in force); e.g. "
        "epi.network's visitor_beta x visitor_contacts, which interventions on layers do not change", units="1/day")
    substeps: int = param(8, "Runge-Kutta steps per solver step (ode)")
    mixing: Literal["mass-action", "network"] = param(
        "mass-action", "within-region contacts: well mixed, or a contact network (edge-based model; beta per "
        "contact)")
    degree: DegreeParams = param(DegreeParams(), "mixing: network: the contact network's degree distribution")
    onset: Literal["continuous", "step-end"] = param(
        "continuous", "mixing: network: infections start their latent period when they happen, or at the end "
        "of the step as in epi.network (use step-end, with epi.network's dt, to reproduce an agent region)")
    seed: int = param(0, "seed of the chain-binomial draws and of the routing of agent travellers")


def _region_index(names, name):
    try:
        return names.index(name)
    except ValueError:
        return None


class EpiMetaSolver(Solver):
    """Metapopulation SEIR (see the module docstring); regions in blocks over the group's ranks."""

    Params = EpiMetaParams
    field_info = {
        **{c: FieldInfo(COUNT, f"{c} residents (persons) of each compartment region", extensive=True)
           for c in COMPARTMENTS},
        "incidence": FieldInfo(COUNT, "new infections (S -> E, SIR: S -> I) during the last step (persons)",
                               extensive=True),
        "exported": FieldInfo(COUNT, "infectious visitors (persons) present in each agent region during the last "
                              "step", extensive=True),
        "imported": FieldInfo(COUNT, "infectious travellers (persons) that left each agent region during the "
                              "last step", extensive=True),
        "beta": FieldInfo("1/day", "transmission rate of each compartment region (transmission: input)"),
        "growth_rate": FieldInfo("1/day", "answered growth rate of each region's network (transmission: hmm)"),
    }

    @classmethod
    def field_names(cls, p):
        outs = ["S", "E", "I", "R", "incidence"]
        ins = []
        if any(r.agents for r in p.regions):
            outs.append("exported")
            ins.append("imported")
        if p.transmission == "input":
            ins.append("beta")
        if p.transmission == "hmm":
            outs.append("rate_query")
            ins.append("growth_rate")
        return tuple(outs), tuple(ins)

    @classmethod
    def check(cls, p):
        probs = []
        add = lambda key, what, fix: probs.append((key, what, fix))
        if not p.regions:
            add("regions", "no regions", "list the regions: regions: [{name: a, population: 1000, "
                "initial_infected: 1}, ...]")
            return probs
        names = [r.name for r in p.regions]
        probs += rate_problems({"beta": p.beta, "gamma": p.gamma, "sigma": p.sigma}, optional=("sigma",))
        whole = p.variant == "chain-binomial"
        for i, r in enumerate(p.regions):
            at = f"regions[{i}]"
            if names.index(r.name) != i:
                add(f"{at}.name", f"region name {r.name!r} is used twice", "give every region its own name")
            if not r.population > 0 or not np.isfinite(r.population):
                add(f"{at}.population", f"population of {r.name!r} must be > 0, got {r.population!r}",
                    "give the number of residents")
                continue
            if whole and not float(r.population).is_integer():
                add(f"{at}.population", f"chain-binomial counts whole persons, got {r.population!r}",
                    f"use {round(r.population)}")
            init = {"initial_infected": r.initial_infected, "initial_exposed": r.initial_exposed,
                    "initial_recovered": r.initial_recovered}
            for key, v in init.items():
                if v < 0 or (whole and not float(v).is_integer()):
                    add(f"{at}.{key}", f"{key} of {r.name!r} must be >= 0" + (" and whole" if whole else "")
                        + f", got {v!r}", f"use {max(0, round(v))}")
            if sum(init.values()) > r.population:
                add(f"{at}", f"initial infected + exposed + recovered of {r.name!r} exceed its population "
                    f"{r.population:g}", "lower the initial counts or raise population")
            if p.sigma is None and r.initial_exposed:
                add(f"{at}.initial_exposed", "an SIR model (sigma: null) has no exposed compartment",
                    "move them to initial_infected, or set sigma")
            if r.beta is not None:
                probs += [(f"{at}.beta", w, f) for _, w, f in rate_problems({"beta": r.beta})]
            if r.agents and (r.initial_infected or r.initial_exposed or r.initial_recovered or r.beta is not None):
                add(f"{at}", f"agent region {r.name!r} is simulated by its own solver: initial counts and "
                    "beta belong there", "remove them here (keep name, population and agents: true)")
        probs += mobility_problems(p.mobility, [r.population for r in p.regions], p.mobility_units, names)
        for k, iv in enumerate(p.interventions):
            at = f"interventions[{k}]"
            if not iv.factor >= 0 or not np.isfinite(iv.factor):
                add(f"{at}.factor", f"factor must be >= 0, got {iv.factor!r}", "use 0..1 for a reduction")
            for j, name in enumerate(iv.regions):
                if name not in names:
                    from msorch.spec import did_you_mean
                    add(f"{at}.regions[{j}]", f"no region named {name!r}", did_you_mean(name, names, "regions"))
            for layer, f in iv.layers.items():
                if layer not in p.hmm_layers:
                    add(f"{at}.layers.{layer}", f"{layer!r} is not one of hmm_layers {list(p.hmm_layers)}",
                        "name a layer listed in hmm_layers (transmission: hmm)")
                if not f >= 0:
                    add(f"{at}.layers.{layer}", f"factor must be >= 0, got {f!r}", "use 0..1")
        if p.transmission == "hmm" and not p.hmm_layers:
            add("hmm_layers", "transmission: hmm needs the contact layers its queries set",
                "e.g. hmm_layers: [community] (the micro model's query settings, in order)")
        if p.visitor_beta is not None:
            probs += rate_problems({"visitor_beta": p.visitor_beta})
        if p.substeps < 1:
            add("substeps", f"need >= 1, got {p.substeps}", "use substeps: 8")
        if p.onset != "continuous" and p.mixing != "network":
            add("onset", "onset: step-end is an option of the edge-based model", "set mixing: network, or remove onset")
        if p.mixing == "network":
            k = p.degree.mean
            if not (np.isfinite(k) and k > 0) or (p.degree.kind == "regular" and not float(k).is_integer()):
                add("degree.mean", f"need a number of contacts > 0 (whole for regular), got {k!r}",
                    "e.g. degree: {kind: poisson, mean: 20}")
            if p.variant != "ode":
                add("variant", "mixing: network is the edge-based ODE model, it has no chain-binomial variant",
                    "use variant: ode, or mixing: mass-action")
            if p.transmission != "fixed":
                add("transmission", "mixing: network takes beta per contact from the settings only",
                    "use transmission: fixed (interventions scale it), or mixing: mass-action")
            for i, r in enumerate(p.regions):
                if not r.agents and r.initial_infected + r.initial_exposed + r.initial_recovered >= r.population:
                    add(f"regions[{i}]", f"region {r.name!r} has no susceptible residents at the start",
                        "lower the initial counts")
        if all(r.agents for r in p.regions) and p.transmission != "fixed":
            add("transmission", "a pure mobility exchange (all regions agents) has no transmission rate",
                "remove transmission")
        return probs

    # ------------------------------------------------------------------ setup
    def initialize(self, t0):
        p = self.params
        probs = self.check(p)
        if probs:
            raise ValueError("epi.meta: " + "; ".join(f"{k}: {w}" for k, w, _ in probs))
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        regions = p.regions
        self.n = len(regions)
        self.names = [r.name for r in regions]
        self.pop_all = np.array([r.population for r in regions], dtype=np.float64)
        internal = np.array([i for i, r in enumerate(regions) if not r.agents], dtype=np.int64)
        self.agent_idx = np.array([i for i, r in enumerate(regions) if r.agents], dtype=np.int64)
        lo = len(internal) * self.rank // self.size
        hi = len(internal) * (self.rank + 1) // self.size
        self.own = internal[lo:hi]
        self.pop = self.pop_all[self.own]
        own_r = [regions[i] for i in self.own]
        self.y = np.array([[r.population - r.initial_infected - r.initial_exposed - r.initial_recovered,
                            r.initial_exposed, r.initial_infected, r.initial_recovered] for r in own_r],
                          dtype=np.float64).reshape(-1, 4)
        if p.mixing == "network":     # + [theta, phi_E, phi_I, Lam] of the edge-based model: (n, 8)
            self.y = edge_based.initial_state(self.pop, *self.y.T, pending=p.onset == "step-end")
        self.ncol = self.y.shape[1]
        self.beta0 = np.array([p.beta if r.beta is None else r.beta for r in own_r], dtype=np.float64)
        self.m = fractions(p.mobility, self.pop_all, p.mobility_units)
        self.leave = self.m.sum(axis=1)                # fraction of each region's residents away
        self.factors, self.layer_factors = self._intervention_tables()
        self.step = 0
        self.t_now = float(t0)
        n_loc, n_ag = len(self.own), len(self.agent_idx) if self.rank == 0 else 0
        self.incidence = np.zeros(n_loc)
        self.cum_incidence = np.zeros(n_loc)
        self.travel_out = np.zeros(n_loc)
        self.travel_in = np.zeros(n_loc)
        self.beta_in = self.beta0.copy()              # transmission: input / hmm (until answered)
        self.imported = np.zeros(n_ag)
        self.exported = np.zeros(n_ag)
        self.agent_out = np.zeros(n_ag)
        self.agent_in = np.zeros(n_ag)

    def _intervention_tables(self):
        """Per own region: sorted (start day, factor) and (start day, layer factors) lists."""
        p = self.params
        ivs = sorted(enumerate(p.interventions), key=lambda kv: (kv[1].time, kv[0]))
        factors, layers = [], []
        for g in self.own:
            name = self.names[g]
            mine = [iv for _, iv in ivs if not iv.regions or name in iv.regions]
            factors.append([(iv.time, iv.factor) for iv in mine])
            layers.append([(iv.time, np.array([iv.layers.get(l, 1.0) for l in p.hmm_layers]))
                           for iv in mine if iv.layers])
        return factors, layers

    def _factor(self, t: float) -> np.ndarray:
        """(n_local,) intervention factor in force for a step starting at day t."""
        out = np.ones(len(self.own))
        for k, table in enumerate(self.factors):
            for start, f in table:
                if t >= start - 1e-9:
                    out[k] = f
        return out

    def _layers(self, t: float) -> np.ndarray:
        """(n_local, n_layers) contact-layer factors in force at day t (transmission: hmm)."""
        out = np.ones((len(self.own), max(1, len(self.params.hmm_layers))))
        for k, table in enumerate(self.layer_factors):
            for start, f in table:
                if t >= start - 1e-9:
                    out[k] = f
        return out

    def fields(self):
        pts = self.own.astype(np.float64)[:, None]
        f = {c: FieldSpec("float64", 1, COUNT, pts, extensive=True) for c in (*COMPARTMENTS, "incidence")}
        outs, ins = self.field_names(self.params)
        agent_pts = np.arange(len(self.agent_idx) if self.rank == 0 else 0, dtype=np.float64)[:, None]
        if "exported" in outs:
            f["exported"] = FieldSpec("float64", 1, COUNT, agent_pts, extensive=True)
            f["imported"] = FieldSpec("float64", 1, COUNT, agent_pts, extensive=True)
        if "beta" in ins:
            f["beta"] = FieldSpec("float64", 1, "1/day", pts)
        if "rate_query" in outs:
            f["rate_query"] = FieldSpec("float64", max(1, len(self.params.hmm_layers)), "1", pts)
            f["growth_rate"] = FieldSpec("float64", 1, "1/day", pts)
        return f

    # ------------------------------------------------------------------ step
    def _sum_all(self, local_full: np.ndarray) -> np.ndarray:
        """Sum over ranks of an (N,) vector (each entry set by one rank: exact). Collective."""
        if self.size == 1:
            return local_full
        from mpi4py import MPI
        out = np.empty_like(local_full)
        self.comm.Allreduce(local_full, out, op=MPI.SUM)
        return out

    def _rate(self, t: float) -> np.ndarray:
        tr = self.params.transmission
        if tr == "fixed":
            return self.beta0 * self._factor(t)
        return self.beta_in

    def _routed(self) -> np.ndarray:
        """(N,) visitors from agent regions for this step, identical on every rank. Collective."""
        routed = np.zeros(self.n)
        n_ag = len(self.agent_idx)
        if n_ag == 0:
            return routed
        counts = self.imported.copy() if self.rank == 0 else np.empty(n_ag)
        if self.size > 1:
            self.comm.Bcast(counts, root=0)
        cb = self.params.variant == "chain-binomial"
        for a, g in enumerate(self.agent_idx):
            if counts[a]:
                rng = philox(self.params.seed, int(g), self.step) if cb else None
                routed += split_travellers(counts[a], self.m[g], rng)
        if self.rank == 0:
            self.agent_out += counts
        return routed

    def advance(self, t, dt):
        beta = self._rate(t)
        routed = self._routed()
        if self.params.variant == "ode":
            present = self._advance_ode(beta, routed, dt)
        else:
            present = self._advance_chain(beta, routed, dt)
        # present: (N,) visitors present during the step (compartment-origin part) on every rank
        if self.rank == 0 and len(self.agent_idx):
            self.exported = present[self.agent_idx] + routed[self.agent_idx]
            self.agent_in += self.exported
        self.travel_in += present[self.own] + routed[self.own]
        self.cum_incidence += self.incidence
        self.step += 1
        self.t_now = t + dt

    def _advance_ode(self, beta, routed, dt):
        p = self.params
        own, N, m = self.own, self.pop, self.m
        sigma, gamma = p.sigma, p.gamma
        n_all = self.n
        network = p.mixing == "network"
        # Default visitor rate: a resident's (network: per contact x contacts).
        vb = (beta * p.degree.mean if network else beta) if p.visitor_beta is None else p.visitor_beta

        def infectious_all(I):
            full = np.zeros(n_all)
            full[own] = I
            return self._sum_all(full)

        def rhs(y):
            """(dy/dt (n_local, 4), infection rate (n_local,)) with visitors of this stage."""
            S, E, I = y[:, 0], y[:, 1], y[:, 2]
            visitors = m.T @ infectious_all(I) if self.leave.any() else np.zeros(n_all)
            if network:
                lam_ext = vb * (visitors[own] + routed[own]) / N
                return edge_based.rhs(y, N, beta, sigma, gamma, lam_ext, p.degree.kind, p.degree.mean)
            inf = (beta * I + vb * (visitors[own] + routed[own])) / N * S
            d = np.empty_like(y)
            d[:, 0] = -inf
            if sigma is None:
                d[:, 1] = 0.0
                d[:, 2] = inf - gamma * I
            else:
                d[:, 1] = inf - sigma * E
                d[:, 2] = sigma * E - gamma * I
            d[:, 3] = gamma * I
            return d, inf

        h = dt / p.substeps
        y = self.y
        inc = np.zeros(len(own))
        i_int = np.zeros(len(own))           # integral of I over the step (same quadrature)
        for _ in range(p.substeps):
            y2 = y
            k1, i1 = rhs(y)
            y2 = y + 0.5 * h * k1
            k2, i2 = rhs(y2)
            y3 = y + 0.5 * h * k2
            k3, i3 = rhs(y3)
            y4 = y + h * k3
            k4, i4 = rhs(y4)
            inc += h / 6.0 * (i1 + 2 * i2 + 2 * i3 + i4)
            i_int += h / 6.0 * (y[:, 2] + 2 * y2[:, 2] + 2 * y3[:, 2] + y4[:, 2])
            y = y + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if network:
            edge_based.settle(y, sigma)      # onset: step-end (no-op otherwise)
        self.y = y
        self.incidence = inc
        i_bar = i_int / dt                   # step mean of infectious residents
        self.travel_out += self.leave[own] * i_bar
        return m.T @ infectious_all(i_bar) if self.leave.any() else np.zeros(n_all)

    def _advance_chain(self, beta, routed, dt):
        p = self.params
        own, N = self.own, self.pop
        rngs = [philox(p.seed, int(g), self.step) for g in own]
        full = np.zeros(self.n)
        out = np.zeros(len(own))
        S, E, I, R = (self.y[:, c].copy() for c in range(4))
        for k, g in enumerate(own):
            if self.leave[g] > 0 and I[k] > 0:
                probs = np.append(self.m[g], max(0.0, 1.0 - self.leave[g]))
                probs[g] = 0.0
                x = rngs[k].multinomial(int(I[k]), probs / probs.sum())[:-1].astype(np.float64)
                full += x
                out[k] = x.sum()
        present = self._sum_all(full)
        vb = beta if p.visitor_beta is None else p.visitor_beta
        lam = (beta * I + vb * (present[own] + routed[own])) / N
        p_inf = -np.expm1(-lam * dt)
        p_rec = -np.expm1(-p.gamma * dt)
        p_lat = -np.expm1(-p.sigma * dt) if p.sigma is not None else 0.0
        new_inf = np.empty(len(own))
        new_lat = np.empty(len(own))
        new_rec = np.empty(len(own))
        for k in range(len(own)):
            g = rngs[k]
            new_inf[k] = g.binomial(int(S[k]), p_inf[k])
            new_lat[k] = g.binomial(int(E[k]), p_lat) if p.sigma is not None else 0.0
            new_rec[k] = g.binomial(int(I[k]), p_rec)
        if p.sigma is None:
            S, I, R = S - new_inf, I + new_inf - new_rec, R + new_rec
        else:
            S, E, I, R = S - new_inf, E + new_inf - new_lat, I + new_lat - new_rec, R + new_rec
        self.y = np.stack([S, E, I, R], axis=1).reshape(-1, 4)
        self.incidence = new_inf
        self.travel_out += out
        return present

    # ------------------------------------------------------------------ fields
    def get(self, name):
        if name in COMPARTMENTS:
            return self.y[:, COMPARTMENTS.index(name)].copy()
        if name == "incidence":
            return self.incidence.copy()
        if name == "exported":
            return self.exported.copy()
        if name == "rate_query":
            q = self._layers(self.t_now)
            return q[:, 0].copy() if q.shape[1] == 1 else q     # FieldSpec shape: (n,) for one component
        raise KeyError(f"epi.meta has no output {name!r}")

    def put(self, name, data):
        data = np.asarray(data, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(data)):
            raise ValueError(f"epi.meta: input {name} has non-finite values {data}")
        if name == "imported":
            if np.any(data < 0):
                raise ValueError(f"epi.meta: imported travellers must be >= 0, got {data}")
            self.imported = data.copy()
        elif name == "beta":
            if np.any(data <= 0):
                raise ValueError(f"epi.meta: input beta must be > 0 (1/day), got {data}")
            self.beta_in = data.copy()
        elif name == "growth_rate":
            p = self.params
            R = reproduction_number(data, p.sigma, p.gamma)
            self.beta_in = np.maximum(R, 0.0) * p.gamma
        else:
            raise KeyError(f"epi.meta has no input {name!r}")

    # ------------------------------------------------------------------ results
    def result_points(self):
        """Own compartment regions, then (rank 0) the agent regions; x = index in ``regions``."""
        ag = self.agent_idx if self.rank == 0 else self.agent_idx[:0]
        return np.concatenate([self.own, ag]).astype(np.float64)[:, None]

    def results(self):
        """Per region (rows as :meth:`result_points`): compartments and incidence [persons] (NaN for
        agent regions), effective beta [1/day], cumulative incidence and traveller counts [persons x steps]."""
        n_ag = len(self.agent_idx) if self.rank == 0 else 0
        nan = np.full(n_ag, np.nan)
        out = {c: np.concatenate([self.y[:, k], nan]) for k, c in enumerate(COMPARTMENTS)}
        out["incidence"] = np.concatenate([self.incidence, nan])
        out["cumulative_incidence"] = np.concatenate([self.cum_incidence, nan])
        out["beta"] = np.concatenate([self._rate(self.t_now), nan])
        out["travel_out"] = np.concatenate([self.travel_out, self.agent_out])
        out["travel_in"] = np.concatenate([self.travel_in, self.agent_in])
        return out

    def totals(self) -> dict[str, float]:
        """Global sums over regions (collective): persons in compartments, cumulative incidence,
        travellers out and in (equal: every traveller lands in one destination)."""
        local = np.array([self.y[:, :4].sum(), self.cum_incidence.sum(), self.travel_out.sum() + self.agent_out.sum(),
                          self.travel_in.sum() + self.agent_in.sum()])
        tot = self._sum_all(local) if self.size > 1 else local
        return dict(zip(("persons", "cumulative_incidence", "travel_out", "travel_in"), map(float, tot)))

    # ------------------------------------------------------------------ state
    def state(self):
        return {"y": self.y.copy(), "clock": np.array([float(self.step), self.t_now]),
                "incidence": self.incidence.copy(), "cum_incidence": self.cum_incidence.copy(),
                "travel_out": self.travel_out.copy(), "travel_in": self.travel_in.copy(),
                "beta_in": self.beta_in.copy(), "imported": self.imported.copy(),
                "exported": self.exported.copy(), "agent_out": self.agent_out.copy(),
                "agent_in": self.agent_in.copy()}

    def restore(self, state):
        self.y = state["y"].copy().reshape(-1, self.ncol)
        self.step, self.t_now = int(state["clock"][0]), float(state["clock"][1])
        for key in ("incidence", "cum_incidence", "travel_out", "travel_in", "beta_in", "imported",
                    "exported", "agent_out", "agent_in"):
            setattr(self, key, state[key].copy())
