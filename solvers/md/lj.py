"""Lennard-Jones molecular dynamics on a spatially decomposed box (``md.lj``).

Units: reduced Lennard-Jones units throughout, sigma = epsilon = m = k_B = 1.
Lengths in sigma, energies in epsilon, time in tau = sigma sqrt(m/epsilon)
(so the msorch times ``dt``, ``window`` of an ``md.lj`` solver are in tau),
temperature in epsilon/k_B, pressure and stress in epsilon/sigma^dim, forces in
epsilon/sigma.  For argon (sigma = 3.405 A, epsilon/k_B = 119.8 K) tau = 2.16 ps.

Physics: N particles in a 2D or 3D box, each axis periodic or closed by
specularly reflecting walls at 0 and L; pair potential
u(r) = 4 (r^-12 - r^-6) [- u(rc) when shifted] for r < rc, optional analytic
tail corrections; velocity Verlet (NVE), BAOAB Langevin (NVT) or velocity
rescaling, the thermostats acting on the whole box or a band along the profile
axis.  Neighbours come from a half Verlet list of radius rc + skin built on cell
lists and rebuilt when some particle has moved more than skin/2 (an exact
criterion: no pair inside rc is ever missed).

Parallelism: spatial domain decomposition over the solver's communicator
(:mod:`solvers.md.domain`); the trajectory does not depend on the number of
ranks except through floating-point summation order.

Coupling hooks (inputs, on profile bins): ``target_temperature`` and
``target_velocity`` (what the thermostat drives each bin to), ``body_force``
(added to every particle of a bin) and ``strain`` (affine diagonal box strain
relative to the initial box).  Outputs: global scalars and the stress tensor on
one point (the box centre), and profiles on the bin centres; all global and
profile fields live on the group's rank 0 (other ranks hold 0 points).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from mpi4py import MPI

from msorch.solver import FieldInfo, FieldSpec, Solver, param

from . import kernels as K
from .domain import Domain
from .lattice import BASES, lattice, maxwell_boltzmann
from .observables import Bins, RunningProfile, measure, tail_energy_per_particle, tail_pressure
from .thermostats import group_of, langevin_o, rescale
from .walls import WALL_KINDS, WALL_SEED_OFFSET, wall_collisions, wall_layer_ou

__all__ = ["LJParams", "LJSolver"]

SCALARS = ("kinetic_energy", "potential_energy", "total_energy", "temperature", "pressure")
PROFILES = ("density_profile", "temperature_profile", "velocity_profile", "stress_profile")
MEAN_PROFILE = "velocity_profile_mean"
MEAN_STRESS = "stress_mean"
INPUTS = ("target_temperature", "target_velocity", "body_force", "strain")


@dataclass(frozen=True)
class LJParams:
    dim: int = param(3, "space dimension, 2 or 3")
    lattice: Literal["fcc", "sc", "square", "hex"] = param(
        "fcc", "initial lattice: fcc or sc in 3D, square or hex in 2D")
    cells: tuple[int, ...] = param((5, 5, 5), "lattice unit cells per axis (dim entries)")
    density: float = param(0.8442, "number density of the initial lattice", units="sigma^-dim")
    init_file: str = param("", "HDF5 file with datasets positions (N,dim), velocities (N,dim), box (dim,) "
                               "and optionally ids (N,); replaces the lattice when set")
    temperature: float = param(1.0, "initial temperature and default thermostat target", units="epsilon/k_B")
    seed: int = param(12345, "seed of the initial velocities and of the Langevin noise")
    rc: float = param(2.5, "cutoff radius of the pair potential", units="sigma")
    shift: bool = param(False, "shift the potential so that u(rc) = 0")
    tail: bool = param(False, "add analytic long-range corrections to energy and pressure")
    skin: float = param(0.3, "Verlet list skin", units="sigma")
    periodic: tuple[bool, ...] = param((), "per axis: periodic (true) or reflecting walls at 0 and L "
                                           "(false); empty = periodic everywhere")
    ensemble: Literal["nve", "langevin", "rescale"] = param(
        "nve", "nve (velocity Verlet), langevin (BAOAB) or rescale (velocity rescaling)")
    damping: float = param(1.0, "Langevin damping time 1/gamma", units="tau")
    rescale_every: int = param(1, "steps between two velocity rescalings")
    thermostat_band: tuple[float, ...] = param(
        (), "[lo, hi) along profile_axis where the thermostat acts (unstrained box; stretches with "
            "an imposed strain); empty = whole box", units="sigma")
    profile_axis: int = param(0, "axis of the profile bins (0 = x)")
    n_bins: int = param(10, "number of equal profile bins spanning the box along profile_axis")
    bin_edges: tuple[float, ...] = param((), "explicit increasing bin edges in the unstrained box (they stretch "
                                             "with an imposed strain); replace n_bins", units="sigma")
    box: tuple[float, ...] = param((), "box lengths (dim entries); when set, round(density * volume) particles "
                                       "start on a simple-cubic grid filling the box (surplus sites dropped at "
                                       "random, seeded) instead of whole lattice cells", units="sigma")
    equilibrate: float = param(0.0, "time the initial state is equilibrated before the run (Langevin at "
                                    "temperature, damping 1 tau, dt 0.005 tau, walls at rest; on the group's "
                                    "rank 0, then broadcast)", units="tau")
    wall_lo: Literal["reflect", "thermal"] = param(
        "reflect", "wall at 0 of profile_axis (when not periodic): reflect (specular) or thermal (diffuse: "
                   "re-emits hitting particles from a Maxwellian at temperature moving at wall_velocity_lo)")
    wall_hi: Literal["reflect", "thermal"] = param("reflect", "wall at L of profile_axis, as wall_lo")
    wall_velocity_lo: tuple[float, ...] = param((), "velocity of the thermal wall at 0 from the first step "
                                                    "(dim entries, normal one 0); empty = at rest",
                                                units="sigma/tau")
    wall_velocity_hi: tuple[float, ...] = param((), "velocity of the thermal wall at L, as wall_velocity_lo",
                                                units="sigma/tau")
    wall_layer: float = param(0.0, "width of the friction layer of each thermal wall: particles closer than "
                                   "this get a Langevin update towards the wall's velocity and temperature "
                                   "every step (reduces slip); 0 = none", units="sigma")
    wall_damping: float = param(0.2, "damping time of the wall friction layer", units="tau")
    average_steps: int = param(0, "steps over which velocity_profile_mean averages the bin velocities "
                                  "(mass-weighted, one sample per step); 0 = the current velocity_profile")


class LJSolver(Solver):
    """Lennard-Jones MD; see the module docstring for units, physics and fields."""

    Params = LJParams
    outputs = SCALARS + ("stress",) + PROFILES + (MEAN_PROFILE, MEAN_STRESS)
    inputs = INPUTS
    _E, _P, _T = "epsilon", "epsilon/sigma^{dim}", "epsilon/k_B"
    field_info = {   # known before launch (msorch solvers md.lj); checked against fields() at setup
        "kinetic_energy": FieldInfo(_E, "total kinetic energy (box centre)"),
        "potential_energy": FieldInfo(_E, "total potential energy, with tail correction if on (box centre)"),
        "total_energy": FieldInfo(_E, "kinetic + potential (box centre)"),
        "temperature": FieldInfo(_T, "kinetic temperature of the box (box centre)"),
        "pressure": FieldInfo(_P, "virial pressure, with tail correction if on (box centre)"),
        "stress": FieldInfo(_P, "virial stress tensor, row-major (box centre)", "{dim}*{dim}"),
        "density_profile": FieldInfo("1/sigma^{dim}", "number density per bin"),
        "temperature_profile": FieldInfo(_T, "kinetic temperature per bin"),
        "velocity_profile": FieldInfo("sigma/tau", "mean velocity per bin", "{dim}"),
        "stress_profile": FieldInfo(_P, "virial stress per bin, row-major", "{dim}*{dim}"),
        MEAN_PROFILE: FieldInfo("sigma/tau", "mean velocity per bin averaged over the last average_steps "
                                             "steps", "{dim}"),
        MEAN_STRESS: FieldInfo(_P, "virial stress tensor of the box averaged over the last average_steps "
                                   "steps (box centre; needs average_steps > 0)", "{dim}*{dim}"),
        "target_temperature": FieldInfo(_T, "temperature the thermostat drives each bin to"),
        "target_velocity": FieldInfo("sigma/tau", "velocity the thermostat drives each bin to", "{dim}"),
        "body_force": FieldInfo("epsilon/sigma", "force added to every particle of a bin", "{dim}"),
        "strain": FieldInfo("1", "affine diagonal strain of the box relative to the initial box", "{dim}"),
    }

    @classmethod
    def check(cls, p):
        problems = []
        if p.dim not in (2, 3):
            problems.append(("dim", f"must be 2 or 3, got {p.dim}", "set dim: 3 or dim: 2"))
            return problems
        if not p.init_file and BASES[p.lattice][2] != p.dim:
            problems.append(("lattice", f"{p.lattice!r} is not a {p.dim}D lattice",
                             "use fcc/sc in 3D, square/hex in 2D"))
        if not p.init_file and (len(p.cells) != p.dim or min(p.cells) < 1):
            problems.append(("cells", f"need {p.dim} positive counts, got {list(p.cells)}",
                             f"e.g. cells: {[5] * p.dim}"))
        if p.periodic and len(p.periodic) != p.dim:
            problems.append(("periodic", f"need {p.dim} entries, got {len(p.periodic)}",
                             f"e.g. periodic: {[True] * p.dim}"))
        for name in ("rc", "skin", "density", "damping"):
            if getattr(p, name) <= 0:
                problems.append((name, "must be > 0", f"give a positive {name}"))
        if p.temperature < 0:
            problems.append(("temperature", "must be >= 0", "give a non-negative temperature"))
        if not 0 <= p.profile_axis < p.dim:
            problems.append(("profile_axis", f"must be in 0..{p.dim - 1}", "pick an existing axis"))
        if p.n_bins < 1:
            problems.append(("n_bins", "must be >= 1", "use n_bins: 1 for a single bin"))
        if p.bin_edges and (len(p.bin_edges) < 2 or np.any(np.diff(p.bin_edges) <= 0)):
            problems.append(("bin_edges", "need at least two strictly increasing values",
                             "e.g. bin_edges: [0.0, 2.0, 4.0]"))
        if p.thermostat_band and (len(p.thermostat_band) != 2 or p.thermostat_band[1] <= p.thermostat_band[0]):
            problems.append(("thermostat_band", "need [lo, hi] with lo < hi", "e.g. thermostat_band: [0.0, 3.0]"))
        if p.rescale_every < 1:
            problems.append(("rescale_every", "must be >= 1", "rescale every step: 1"))
        if p.tail and not all(p.periodic):  # all(()) is True: periodic by default
            problems.append(("tail", "tail corrections assume a homogeneous periodic fluid",
                             "set tail: false with walls"))
        problems += cls._check_walls(p)
        return problems

    @staticmethod
    def _check_walls(p):
        problems = []
        if p.box and (len(p.box) != p.dim or min(p.box) <= 0):
            problems.append(("box", f"need {p.dim} positive lengths, got {list(p.box)}",
                             f"e.g. box: {[10.0] * p.dim}"))
        if p.equilibrate < 0:
            problems.append(("equilibrate", "must be >= 0", "equilibrate: 0 (none) or a time in tau"))
        if p.wall_layer < 0 or p.wall_damping <= 0:
            problems.append(("wall_layer", "wall_layer must be >= 0 and wall_damping > 0",
                             "e.g. wall_layer: 1.0, wall_damping: 0.2"))
        if p.average_steps < 0:
            problems.append(("average_steps", "must be >= 0", "e.g. average_steps: 100 (the steps of a window)"))
        walled = (p.wall_lo, p.wall_hi, p.wall_velocity_lo, p.wall_velocity_hi) != ("reflect", "reflect", (), ())
        axis_ok = 0 <= p.profile_axis < p.dim
        periodic = (tuple(p.periodic) or (True,) * p.dim)
        if walled and axis_ok and len(periodic) == p.dim and periodic[p.profile_axis]:
            problems.append(("wall_lo", f"walls act on profile_axis {p.profile_axis}, which is periodic",
                             f"set periodic[{p.profile_axis}]: false"))
        for side in ("lo", "hi"):
            u = getattr(p, f"wall_velocity_{side}")
            if not u:
                continue
            if len(u) != p.dim:
                problems.append((f"wall_velocity_{side}", f"need {p.dim} entries, got {len(u)}",
                                 f"e.g. wall_velocity_{side}: {[0.5] + [0.0] * (p.dim - 1)}"))
            elif axis_ok and u[p.profile_axis] != 0.0:
                problems.append((f"wall_velocity_{side}", "a wall cannot move along its normal (profile_axis)",
                                 f"set entry {p.profile_axis} to 0"))
            if getattr(p, f"wall_{side}") != "thermal" and any(u):
                problems.append((f"wall_velocity_{side}", "only a thermal wall drags the fluid along",
                                 f"set wall_{side}: thermal"))
        return problems

    # --- set-up ---------------------------------------------------------------
    def initialize(self, t0):
        p = self.params
        problems = self.check(p)
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m, _ in problems))
        self.dim = p.dim
        self.periodic = tuple(bool(a) for a in p.periodic) or (True,) * p.dim
        ids, x, v, box = self._initial_state(self.comm)
        self.n_total = len(ids)
        self.box0 = box.copy()
        self.rc2 = p.rc * p.rc
        self.eshift = 4.0 * (p.rc ** -12 - p.rc ** -6) if p.shift else 0.0
        self.rg = p.rc + p.skin
        self.domain = Domain(self.comm, box, self.periodic, p.dim, self.rg)
        self.domain.wrap(x)
        mine = self.domain.owns(x)
        self.ids, self.v = ids[mine], v[mine]
        self.nlocal = len(self.ids)
        self.x = x[mine]
        edges = (np.array(p.bin_edges, dtype=float) if p.bin_edges
                 else np.linspace(0.0, box[p.profile_axis], p.n_bins + 1))
        self.edges0 = edges
        self.bins = Bins(p.profile_axis, edges.copy())
        groups = self.bins.n + 1  # the last group: in the band but in no bin
        self.target_t = np.full(groups, float(p.temperature))
        self.target_u = np.zeros((groups, 3))
        self.body_force = np.zeros((groups, 3))
        self.strain = np.zeros(p.dim)
        self.band0 = tuple(p.thermostat_band) if p.thermostat_band else (-np.inf, np.inf)
        self.band = self.band0
        self.walls = wall_setup(p)
        self.running = RunningProfile(p.average_steps, self.bins.n) if p.average_steps else None
        self.step = 0
        self.n_builds = 0
        self._pending: dict[str, np.ndarray] = {}
        self._grid_cache = None
        self._obs = None
        self._w6 = np.zeros(6)
        self._rebuild()
        self._forces()

    def _initial_state(self, comm=None):
        """Global initial (ids, x, v, box), identical on every rank of ``comm`` (collective
        when ``equilibrate`` is set: rank 0 equilibrates and broadcasts)."""
        p = self.params
        if p.equilibrate > 0:
            return equilibrated(p, comm)
        if p.init_file:
            import h5py
            with h5py.File(p.init_file, "r") as h5:
                pos = np.asarray(h5["positions"], dtype=float)
                vel = np.asarray(h5["velocities"], dtype=float)
                box_d = np.asarray(h5["box"], dtype=float)
                ids = (np.asarray(h5["ids"], dtype=np.int64) if "ids" in h5
                       else np.arange(len(pos), dtype=np.int64))
            x = np.zeros((len(pos), 3))
            v = np.zeros((len(pos), 3))
            x[:, :p.dim] = pos[:, :p.dim]
            v[:, :p.dim] = vel[:, :p.dim]
            box = np.ones(3)
            box[:p.dim] = box_d[:p.dim]
            return ids, x, v, box
        if p.box:
            x, box = filled_box(p.box, p.density, p.dim, p.seed)
        else:
            x, box = lattice(p.lattice, p.cells, p.density)
        v = maxwell_boltzmann(len(x), p.dim, p.temperature, p.seed)
        return np.arange(len(x), dtype=np.int64), x, v, box

    # --- neighbour lists --------------------------------------------------------
    def _grid(self):
        """(lo, inv_len, ncell, stencil) of the cells covering sub-domain + halo."""
        key = tuple(self.domain.box)
        if self._grid_cache is None or self._grid_cache[0] != key:
            lo = np.full(3, -0.5)
            ncell = np.ones(3, dtype=np.int64)
            cell_len = np.ones(3)
            for d in range(self.dim):
                # cells of at least rg/2 (a 5^3 stencil scans ~60% of the volume of
                # 3^3 cells of rg), plus a margin of two empty cells so no stencil
                # run leaves the grid
                span = self.domain.hi[d] - self.domain.lo[d] + 2 * self.rg
                core = max(1, int(span / (0.5 * self.rg)))
                cell_len[d] = span / core
                ncell[d] = core + 4
                lo[d] = self.domain.lo[d] - self.rg - 2 * cell_len[d]
            self._grid_cache = (key, lo, 1.0 / cell_len, ncell, K.stencil(cell_len, self.rg, self.dim))
        return self._grid_cache[1:]

    def _rebuild(self):
        """Migrate, sort by cell, exchange halos and build the list (collective)."""
        n = self.nlocal
        x = self.x[:n].copy()
        self.domain.wrap(x)
        ids, x, v = self.domain.migrate(self.ids[:n], x, self.v[:n])
        lo, inv, ncell, _ = self._grid()
        order = np.argsort(K.cell_sort_keys(x, len(x), lo, inv, ncell), kind="stable")
        self.ids = ids[order]
        self.v = np.ascontiguousarray(v[order])
        self.nlocal = len(order)
        self._build_from(np.ascontiguousarray(x[order]))

    def _build_from(self, x_build):
        """Halo exchange and list build from local positions ``x_build`` (collective)."""
        self.x_build = x_build.copy()
        self.x = self.domain.borders(x_build)
        self.f = np.zeros_like(self.x)  # ghost rows are kernel scratch
        lo, inv, ncell, offsets = self._grid()
        self.start, self.nbr = K.build_neighbor_list(self.x, self.nlocal, len(self.x), lo, inv, ncell,
                                                     offsets, self.rg * self.rg)
        self.n_builds += 1

    def _update_neighbors(self, force=False):
        """Rebuild if any particle moved more than skin/2 since the last build, else
        refresh the ghosts (collective)."""
        buf = np.array([K.max_displacement2(self.x, self.x_build, self.nlocal)])
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)
        if force or buf[0] > (0.5 * self.params.skin) ** 2:
            self._rebuild()
        else:
            self.domain.forward(self.x)

    # --- dynamics -----------------------------------------------------------------
    def _groups(self, band=True):
        """Thermostat/bin group of each local particle (see :mod:`.thermostats`)."""
        a = self.bins.axis
        lo, hi = self.band if band else (-np.inf, np.inf)
        return group_of(self.x, self.nlocal, a, self.domain.box[a], self.periodic[a],
                        self.bins.edges, lo, hi)

    def _forces(self):
        n = self.nlocal
        # the pair virial rides along (a few flops per pair) when the running averages need it
        K.lj_forces(self.x, n, self.start, self.nbr, self.rc2, self.eshift, self.f, self.running is not None,
                    self._w6)
        if np.any(self.body_force):
            self.f[:n] += self.body_force[self._groups(band=False)]

    def advance(self, t, dt):
        """One step of length ``dt`` [tau] (collective)."""
        p = self.params
        force_rebuild = self._apply_inputs()
        n = self.nlocal
        K.axpy(self.v, 0.5 * dt, self.f, n)
        if p.ensemble == "langevin":
            # BAOAB: kick, half drift, exact Ornstein-Uhlenbeck, half drift, force, kick
            K.axpy(self.x, 0.5 * dt, self.v, n)
            langevin_o(self.v, self.ids, n, self.dim, self._groups(), self.target_t, self.target_u,
                       np.exp(-dt / p.damping), p.seed, self.step)
            K.axpy(self.x, 0.5 * dt, self.v, n)
        else:
            K.axpy(self.x, dt, self.v, n)
        for d in range(self.dim):
            if not self.periodic[d]:
                if d == p.profile_axis:
                    kind_lo, kind_hi, u_lo, u_hi = self.walls
                    wall_collisions(self.x, self.v, self.ids, n, d, 0.0, self.domain.box[d], kind_lo, kind_hi,
                                    p.temperature, u_lo, u_hi, self.dim, p.seed + WALL_SEED_OFFSET, self.step)
                else:
                    K.reflect(self.x, self.v, n, d, 0.0, self.domain.box[d])
        self._update_neighbors(force_rebuild)
        self._forces()
        K.axpy(self.v, 0.5 * dt, self.f, self.nlocal)
        if p.wall_layer > 0 and not self.periodic[p.profile_axis]:
            kind_lo, kind_hi, u_lo, u_hi = self.walls
            a = p.profile_axis
            wall_layer_ou(self.x, self.v, self.ids, self.nlocal, a, 0.0, self.domain.box[a], p.wall_layer, kind_lo,
                          kind_hi, p.temperature, u_lo, u_hi, self.dim, np.exp(-dt / p.wall_damping),
                          p.seed + 2 * WALL_SEED_OFFSET, self.step)
        self.step += 1
        if self.running is not None:
            a = self.bins.axis
            self.running.sample(self.comm, self.x, self.v, self.nlocal, self.bins, self.domain.box[a],
                                self.periodic[a], self._w6)
        if p.ensemble == "rescale" and self.step % p.rescale_every == 0:
            rescale(self.comm, self.v, self.nlocal, self.dim, self._groups(), self.target_t, self.target_u)
        self._obs = None

    # --- coupling ---------------------------------------------------------------------
    def _root_points(self, pts):
        return pts if self.comm.Get_rank() == 0 else pts[:0]

    def fields(self):
        dim = self.dim
        center = self._root_points(0.5 * self.domain.box[None, :dim])
        bins = self._root_points(self.bins.centers(self.domain.box, dim))
        vol = f"sigma^{dim}"
        spec = {
            "kinetic_energy": FieldSpec("float64", 1, "epsilon", center),
            "potential_energy": FieldSpec("float64", 1, "epsilon", center),
            "total_energy": FieldSpec("float64", 1, "epsilon", center),
            "temperature": FieldSpec("float64", 1, "epsilon/k_B", center),
            "pressure": FieldSpec("float64", 1, f"epsilon/{vol}", center),
            "stress": FieldSpec("float64", dim * dim, f"epsilon/{vol}", center),
            "density_profile": FieldSpec("float64", 1, f"1/{vol}", bins),
            "temperature_profile": FieldSpec("float64", 1, "epsilon/k_B", bins),
            "velocity_profile": FieldSpec("float64", dim, "sigma/tau", bins),
            "stress_profile": FieldSpec("float64", dim * dim, f"epsilon/{vol}", bins),
            MEAN_PROFILE: FieldSpec("float64", dim, "sigma/tau", bins),
            MEAN_STRESS: FieldSpec("float64", dim * dim, f"epsilon/{vol}", center),
            "target_temperature": FieldSpec("float64", 1, "epsilon/k_B", bins),
            "target_velocity": FieldSpec("float64", dim, "sigma/tau", bins),
            "body_force": FieldSpec("float64", dim, "epsilon/sigma", bins),
            "strain": FieldSpec("float64", dim, "1", center),
        }
        return spec

    def observables(self) -> dict[str, np.ndarray]:
        """All observables of the current state, global values on every rank (collective)."""
        if self._obs is None:
            p = self.params
            volume = float(np.prod(self.domain.box[:self.dim]))
            rho = self.n_total / volume
            tail = ((tail_energy_per_particle(rho, p.rc, self.dim), tail_pressure(rho, p.rc, self.dim))
                    if p.tail else (0.0, 0.0))
            self._obs = measure(self.comm, self.x, self.v, self.nlocal, self.start, self.nbr, self.rc2,
                                self.eshift, box=self.domain.box, dim=self.dim, n_total=self.n_total,
                                bins=self.bins, periodic_axis=self.periodic[self.bins.axis], tail=tail)
        return self._obs

    def get(self, name):
        """This rank's values of output ``name`` (collective: all ranks call it together)."""
        if name == MEAN_PROFILE:
            return self._root_points(self._mean_profile())
        if name == MEAN_STRESS:
            value = (self.running.mean_stress(float(np.prod(self.domain.box[:self.dim])), self.dim)
                     if self.running is not None else np.zeros(self.dim * self.dim))
            return self._root_points(value[None, :]).copy()
        value = self.observables()[name]
        if name in SCALARS:
            value = value.reshape(1)
        elif name == "stress":
            value = value.reshape(1, self.dim * self.dim)
        return self._root_points(value).copy()

    def _mean_profile(self):
        """(n_bins, dim) bin velocities averaged over the last average_steps steps, or the
        current ones (one binning, no force evaluation) when average_steps is 0 (collective)."""
        if self.running is not None:
            return self.running.mean(self.dim)
        a = self.bins.axis
        now = RunningProfile(1, self.bins.n)
        now.sample(self.comm, self.x, self.v, self.nlocal, self.bins, self.domain.box[a], self.periodic[a])
        return now.mean(self.dim)

    def put(self, name, data):
        """Stage input ``name``; applied (broadcast from the group's rank 0) at the next
        :meth:`advance`.  Must be called on every rank of the group, as the worker does."""
        if name not in INPUTS:
            raise KeyError(f"md.lj has no input {name!r}; inputs: {', '.join(INPUTS)}")
        self._pending[name] = np.array(data, dtype=float, copy=True)

    def _apply_inputs(self) -> bool:
        """Broadcast staged inputs from rank 0 and apply them; True if the box changed."""
        changed = False
        dim, nb = self.dim, self.bins.n
        for name in sorted(self._pending):
            width = 1 if name == "target_temperature" else dim
            rows = 1 if name == "strain" else nb
            buf = np.empty((rows, width))
            if self.comm.Get_rank() == 0:
                buf[...] = self._pending[name].reshape(rows, width)
            self.comm.Bcast(buf, root=0)
            if name == "target_temperature":
                self.target_t[:nb] = buf[:, 0]
            elif name == "target_velocity":
                self.target_u[:nb, :dim] = buf
            elif name == "body_force":
                self.body_force[:nb, :dim] = buf
            elif not np.array_equal(buf[0], self.strain):
                self._set_strain(buf[0])
                changed = True
        self._pending.clear()
        return changed

    def _set_strain(self, strain):
        """Affine diagonal deformation to box0 * (1 + strain); positions follow."""
        box = self.box0.copy()
        box[:self.dim] *= 1.0 + strain
        scale = box / self.domain.box
        self.x[:self.nlocal] *= scale
        stretch = 1.0 + strain[self.bins.axis]
        self.bins = Bins(self.bins.axis, self.edges0 * stretch)
        self.band = tuple(b * stretch for b in self.band0)  # bins and band move with the material
        self.domain.set_box(box)
        self.strain = np.array(strain, dtype=float)
        self._obs = None

    # --- checkpoints ------------------------------------------------------------------
    def state(self):
        """Everything to continue bitwise: particles in their current order, the
        positions at the last list build (the list and halos are rebuilt from them
        exactly), the step counter (the Langevin noise is keyed by it), box and inputs."""
        n = self.nlocal
        return {"ids": self.ids[:n].copy(), "x": self.x[:n].copy(), "v": self.v[:n].copy(),
                "f": self.f[:n].copy(), "x_build": self.x_build.copy(),
                "step": np.array([self.step, self.n_builds], dtype=np.int64),
                "box": self.domain.box.copy(), "strain": self.strain.copy(),
                "target_t": self.target_t.copy(), "target_u": self.target_u.copy(),
                "body_force": self.body_force.copy(), "edges": self.bins.edges.copy(),
                **({"running": self.running.ring.copy(), "running6": self.running.ring6.copy(),
                    "running_taken": np.array([self.running.taken])}
                   if self.running is not None else {})}

    def restore(self, state):
        """Return to ``state`` (from :meth:`state` on the same layout; collective)."""
        self.ids = np.array(state["ids"], dtype=np.int64)
        self.v = np.array(state["v"], dtype=float)
        self.nlocal = len(self.ids)
        self.step, n_builds = (int(s) for s in state["step"])
        self.strain = np.array(state["strain"], dtype=float)
        self.target_t = np.array(state["target_t"], dtype=float)
        self.target_u = np.array(state["target_u"], dtype=float)
        self.body_force = np.array(state["body_force"], dtype=float)
        self.bins = Bins(self.bins.axis, np.array(state["edges"], dtype=float))
        stretch = 1.0 + self.strain[self.bins.axis]
        self.band = tuple(b * stretch for b in self.band0)
        self.domain.set_box(state["box"])
        if self.running is not None:
            self.running.ring[...] = state["running"]
            self.running.ring6[...] = state["running6"]
            self.running.taken = int(state["running_taken"][0])
        self._pending.clear()
        self._build_from(np.array(state["x_build"], dtype=float))
        self.n_builds = n_builds
        self.x[:self.nlocal] = state["x"]
        self.f[:self.nlocal] = state["f"]
        self.domain.forward(self.x)
        self._obs = None

    def restore_all(self, states):
        """Another layout: every rank takes the particles its new sub-domain owned at
        the last neighbour-list build (ownership is decided at builds), then restores."""
        self.domain.set_box(states[0]["box"])
        per_particle = ("ids", "x", "v", "f", "x_build")
        every = {k: np.concatenate([s[k] for s in states]) for k in per_particle}
        mine = self.domain.owns(every["x_build"])
        # The list build expects local particles sorted by cell, as _rebuild leaves them.
        lo, inv, ncell, _ = self._grid()
        xb = np.ascontiguousarray(every["x_build"][mine])
        order = np.argsort(K.cell_sort_keys(xb, len(xb), lo, inv, ncell), kind="stable")
        self.restore(dict(states[0], **{k: v[mine][order] for k, v in every.items()}))

    def result_points(self):
        return self.fields()["density_profile"].points

    def result_sets(self):
        """``box``: the box centre (one point, on the group's rank 0), where the whole-box
        scalars and the stress tensor are written (once per output, not on every bin)."""
        return {"box": self.fields()["temperature"].points}

    def results(self):
        """Profiles per bin (``result_points``); whole-box scalars and the stress tensor in
        the point set ``box``."""
        out = {name: self.get(name) for name in PROFILES + (MEAN_PROFILE,)}
        out.update({f"box/{name}": self.get(name) for name in SCALARS + ("stress", MEAN_STRESS)})
        return out

    def finalize(self):
        self.domain.free()


def wall_setup(p) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(kind_lo, kind_hi, u_lo (3,), u_hi (3,)) of the profile axis' walls [sigma/tau]."""
    u = []
    for vel in (p.wall_velocity_lo, p.wall_velocity_hi):
        w = np.zeros(3)
        w[:len(vel)] = vel
        u.append(w)
    return WALL_KINDS[p.wall_lo], WALL_KINDS[p.wall_hi], u[0], u[1]


def filled_box(box, density: float, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """round(density * volume) positions on a simple-cubic grid filling ``box`` (dim,)
    [sigma]: sites at the centres of m_d equal cells per axis, m_d the smallest counts
    with at least that many sites at the grid spacing (volume/N)^(1/dim); surplus sites
    are dropped at random (seeded).  Returns ((N, 3) positions, (3,) box), the
    positions sorted by site (this order defines the ids)."""
    lengths = np.ones(3)
    lengths[:dim] = box[:dim]
    volume = float(np.prod(lengths[:dim]))
    n = int(round(density * volume))
    spacing = (volume / n) ** (1.0 / dim)
    m = [max(1, int(np.ceil(lengths[d] / spacing - 1e-9))) if d < dim else 1 for d in range(3)]
    while np.prod(m) < n:   # rounding left too few sites: refine the coarsest axis
        d = int(np.argmax([lengths[k] / m[k] if k < dim else 0.0 for k in range(3)]))
        m[d] += 1
    grid = np.stack(np.meshgrid(*[np.arange(k) for k in m], indexing="ij"), axis=-1).reshape(-1, 3)
    keep = np.sort(np.random.default_rng(seed).choice(len(grid), size=n, replace=False))
    positions = (grid[keep] + 0.5) * (lengths / np.array(m))
    positions[:, dim:] = 0.0
    return positions, lengths


EQUILIBRATION_DT = 0.005    # tau


def equilibrated(p, comm=None):
    """The initial state of settings ``p`` after ``p.equilibrate`` tau of Langevin dynamics
    (damping 1 tau, at p.temperature, walls at rest), as (ids, x, v, box), identical on
    every rank of ``comm`` (rank 0 computes on COMM_SELF, then broadcasts; collective)."""
    import dataclasses
    rank = comm.Get_rank() if comm is not None else 0
    n_dim = np.zeros(4)
    if rank == 0:
        q = dataclasses.replace(p, equilibrate=0.0, ensemble="langevin", damping=1.0, thermostat_band=(),
                                wall_velocity_lo=(), wall_velocity_hi=(), average_steps=0)
        pre = LJSolver(MPI.COMM_SELF, q)
        pre.initialize(0.0)
        for k in range(int(round(p.equilibrate / EQUILIBRATION_DT))):
            pre.advance(k * EQUILIBRATION_DT, EQUILIBRATION_DT)
        order = np.argsort(pre.ids[:pre.nlocal])
        ids = pre.ids[order].astype(np.int64)
        x, v = pre.x[:pre.nlocal][order].copy(), pre.v[:pre.nlocal][order].copy()
        box = pre.domain.box.copy()
        pre.finalize()
        n_dim[0] = len(ids)
        n_dim[1:] = box
    if comm is not None and comm.Get_size() > 1:
        comm.Bcast(n_dim, root=0)
        n = int(n_dim[0])
        if rank != 0:
            ids, x, v, box = np.empty(n, np.int64), np.empty((n, 3)), np.empty((n, 3)), n_dim[1:].copy()
        comm.Bcast(ids, root=0)
        comm.Bcast(x, root=0)
        comm.Bcast(v, root=0)
    return ids, x, v, box
