"""LAMMPS as an msorch solver (``md.lammps``), on the solver group's ranks and communicator.

Two ways to say what LAMMPS simulates:

* ``system: lj`` (default): the Lennard-Jones system of ``md.lj``'s settings
  (same lattice, velocities, cutoff, shift/tail, skin, walls), generated as
  LAMMPS commands, so a job switches ``kind: md.lj`` <-> ``kind: md.lammps``
  without other changes.  ``commands`` run after the generated set-up.
* ``system: script``: ``input_file`` and then ``commands`` build the system and
  its integrator (``fix nve`` or any other); they must not contain ``run``.

Stepping.  msorch calls :meth:`advance` once per step; the adapter only counts
the steps and runs them lazily as one ``run N pre no post no`` when something
needs the state: an output read (:meth:`get`, results), a checkpoint
(:meth:`state`), an input that changes, or ``batch`` steps pending.  A window
without coupled outputs is therefore one LAMMPS run (per-run cost measured in
``benchmarks/adapter_bench.py``: a ``run`` call re-evaluates thermo output, about
0.1 ms); an output coupled every step makes it one ``run 1`` per step.  After
anything that changes the system between runs (strain, restore, a new fix) the
next run is ``pre yes``.

Inputs, as ``md.lj`` (per profile bin): ``target_temperature`` and
``target_velocity`` drive a Langevin thermostat (``ensemble: langevin``) or a
per-bin velocity rescaling (``ensemble: rescale``, every ``rescale_every``
steps, between runs); ``body_force`` is added to every atom of a bin; ``strain``
deforms the box affinely (``change_box ... remap``).  The Langevin force
-(m/damping)(v - u_bin) + sqrt(2 m k_B T_bin/(damping dt)) xi is LAMMPS's own
``fix langevin`` force with a per-bin target, computed in a ``fix external``
callback with the noise xi hashed from (seed, atom id, step) (the ``md.lj``
noise generator), so it needs no random-number state.

Outputs, as ``md.lj``: whole-box scalars and the stress tensor from LAMMPS's
thermo keywords (``pe ke temp press p**``, tail corrections included), profiles
from each rank's own atoms (x, v, mass, ``compute stress/atom`` virial) binned
locally and summed with one ``Allreduce``: nothing is gathered.

Checkpoints: :meth:`state` holds each rank's atoms (ids, x, v, image flags), box,
step and inputs.  :meth:`restore` puts them back by atom id (``scatter_atoms``),
resets the step and re-runs LAMMPS's set-up.  Not bitwise: LAMMPS rebuilds its
neighbour lists and re-sorts atoms at that set-up, so forces are summed in
another order and the continuation equals an uninterrupted run to round-off
(tested: positions within 1e-9 sigma after 100 steps).  The msorch Langevin
noise is keyed by step and atom, so it continues exactly; a ``fix langevin``
of a user script restarts its own random stream (LAMMPS keeps it private).

Errors: LAMMPS's messages end the job through :mod:`.lammps_library`.

Units: ``system: lj`` uses reduced LJ units (as ``md.lj``); scripts with
``units real`` or ``metal`` get LAMMPS's units in the field declarations.
"""
from __future__ import annotations

import re
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from mpi4py import MPI
from numba import njit

from msorch.solver import FieldSpec, Solver, param

from .lj import INPUTS, MEAN_PROFILE, PROFILES, SCALARS, LJParams, LJSolver, wall_setup
from .observables import Bins, RunningProfile
from .thermostats import gaussian, group_of, rescale
from .walls import THERMAL, WALL_SEED_OFFSET, redraw_crossed, wall_layer_ou

__all__ = ["LammpsParams", "LammpsSolver"]

_UNITS = {  # energy, length, time, temperature, pressure, force
    "lj": ("epsilon", "sigma", "tau", "epsilon/k_B", None, "epsilon/sigma"),
    "real": ("kcal/mol", "Angstrom", "fs", "K", "atm", "kcal/mol/Angstrom"),
    "metal": ("eV", "Angstrom", "ps", "K", "bar", "eV/Angstrom"),
}
_THERMO = ("pe", "ke", "temp", "press", "pxx", "pyy", "pzz", "pxy", "pxz", "pyz")
_VOIGT = ((0, 3, 4), (3, 1, 5), (4, 5, 2))
_LOG_EVERY_RUNS = 2000      # LAMMPS's log (read for error messages) is restarted this often


@dataclass(frozen=True)
class LammpsParams(LJParams):
    system: Literal["lj", "script"] = param(
        "lj", "lj: the md.lj system generated as LAMMPS commands; script: input_file/commands build it")
    input_file: str = param("", "LAMMPS input script for system: script (no run commands); "
                                "absolute or relative to the working directory")
    commands: tuple[str, ...] = param((), "LAMMPS commands run at set-up, after input_file or the "
                                          "generated system (no run commands)")
    batch: int = param(1000, "most steps run lazily in one LAMMPS run before the adapter runs them")


def _script_lines(p: LammpsParams) -> list[str]:
    lines = []
    if p.input_file:
        try:
            lines += Path(p.input_file).read_text().splitlines()
        except OSError:
            pass
    return lines + list(p.commands)


_FORBIDDEN = re.compile(r"^\s*(run|minimize|rerun|clear|quit)\b")


@njit(cache=True)
def _external_forces(f, v, tags, mass, n, dim, tgroup, target_t, target_u, c_drag, c_noise,
                     bgroup, body, seed, step):
    """Per-atom Langevin + body forces into ``f`` (n, 3).

    c_drag = 1/(damping ftm2v), c_noise = sqrt(2 k_B/(damping dt mvv2e))/ftm2v (0 when off);
    tgroup/bgroup: thermostat/body-force group per atom (-1 none).
    """
    xi = np.empty(dim)
    for i in range(n):
        for d in range(3):
            f[i, d] = 0.0
        g = tgroup[i]
        if g >= 0 and c_noise > 0.0:
            gaussian(seed, tags[i], step, xi)
            s = c_noise * np.sqrt(mass[i] * target_t[g])
            for d in range(dim):
                f[i, d] = -c_drag * mass[i] * (v[i, d] - target_u[g, d]) + s * xi[d]
        b = bgroup[i]
        if b >= 0:
            for d in range(dim):
                f[i, d] += body[b, d]


class LammpsSolver(Solver):
    """LAMMPS through its library interface; see the module docstring."""

    Params = LammpsParams
    outputs = LJSolver.outputs[:LJSolver.outputs.index(MEAN_PROFILE) + 1]   # no stress_mean
    inputs = LJSolver.inputs

    @classmethod
    def check(cls, p):
        problems = []
        if p.system == "lj":
            problems += LJSolver.check(p)
            if p.shift and p.tail:
                problems.append(("tail", "LAMMPS does not combine pair_modify shift and tail",
                                 "set shift: false or tail: false"))
            if p.init_file and not Path(p.init_file).is_file():
                problems.append(("init_file", f"no such file: {p.init_file}", "give an existing HDF5 file"))
            if p.input_file:
                problems.append(("input_file", "is read with system: script only (system: lj generates "
                                               "the system)", "set system: script, or drop input_file"))
        elif not p.input_file and not p.commands:
            problems.append(("input_file", "system: script needs input_file or commands",
                             "name a LAMMPS input script, or use system: lj"))
        if p.input_file and not Path(p.input_file).is_file():
            problems.append(("input_file", f"no such file: {p.input_file} (relative paths are taken from "
                                           "the directory msorch runs in)", "give an existing LAMMPS input file"))
        for k, line in enumerate(_script_lines(p)):
            m = _FORBIDDEN.match(line.split("#")[0])
            if m:
                problems.append(("commands" if k >= len(_script_lines(p)) - len(p.commands) else "input_file",
                                 f"{m.group(1)!r} in the LAMMPS script ({line.strip()!r}): msorch runs the steps",
                                 f"remove the {m.group(1)} command"))
        if p.batch < 1:
            problems.append(("batch", "must be >= 1", "batch: 1000"))
        if p.system == "script" and ((p.wall_lo, p.wall_hi) != ("reflect", "reflect") or p.equilibrate or p.box):
            problems.append(("wall_lo", "walls, box and equilibrate describe the generated system (system: lj)",
                             "set them in the LAMMPS script, or use system: lj"))
        return problems

    # --- set-up -------------------------------------------------------------------
    def initialize(self, t0):
        from .lammps_library import Lammps
        p = self.params
        problems = self.check(p)
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m, _ in problems))
        self.rank = self.comm.Get_rank()
        self.lammps = Lammps(self.comm)
        self.pending = 0
        self.dirty = True
        self.dt = None
        self.runs = 0
        self.run_seconds = 0.0
        self.ext = False
        self._obs = None
        if p.system == "lj":
            self._build_lj()
        else:
            if p.input_file:
                self.lammps.call(lambda lmp: lmp.file(p.input_file))
        self.lammps.commands(p.commands)
        info = self.lammps.call(self._info)
        self.units, self.dim, self.consts, self.box0_lo, self.box0, self._unit_mass, self.periodic = info
        self._ones = np.ones(0)
        self._none = np.zeros(0, np.int64)
        self._has_body = False
        self._replay = None
        self.n_total = self.lammps.call(lambda lmp: int(lmp.get_natoms()))
        edges = (np.array(p.bin_edges, dtype=float) if p.bin_edges
                 else np.linspace(0.0, self.box0[p.profile_axis], p.n_bins + 1))
        self.edges0 = edges
        self.bins = Bins(p.profile_axis, edges.copy())
        groups = self.bins.n + 1
        self.target_t = np.full(groups, float(p.temperature))
        self.target_u = np.zeros((groups, 3))
        self.body_force = np.zeros((groups, 3))
        self.strain = np.zeros(self.dim)
        self.band0 = tuple(p.thermostat_band) if p.thermostat_band else (-np.inf, np.inf)
        self.band = self.band0
        self.step0 = self.lammps.call(lambda lmp: int(lmp.extract_global("ntimestep")))
        self.walls = wall_setup(p)
        self.thermal = p.system == "lj" and THERMAL in self.walls[:2]
        self.running = RunningProfile(p.average_steps, self.bins.n) if p.average_steps else None
        self._cb_step = self.step0    # the callback acts once per step: not again in a run's set-up
        self.lammps.commands([
            "compute msorch_sa all stress/atom NULL virial",
            "compute msorch_sasum all reduce sum c_msorch_sa[1]",
            "thermo_style custom step " + " ".join(_THERMO) + " c_msorch_sasum",
            "thermo_modify norm no",
            "thermo 0",
        ])
        if p.ensemble == "langevin" or self.thermal or self.running is not None:
            self._add_external()
        self._run(0)

    def _build_lj(self):
        p = self.params
        # md.lj's initial state (lattice + Maxwell-Boltzmann, or init_file) depends on the settings only
        ids, x, v, box = LJSolver._initial_state(types.SimpleNamespace(params=p), self.comm)
        periodic = tuple(bool(a) for a in p.periodic) or (True,) * p.dim
        bnd = [("p" if periodic[d] else "f") for d in range(p.dim)] + (["p"] if p.dim == 2 else [])
        hi = [f"{box[d]:.17g}" for d in range(p.dim)]
        zlo, zhi = ("0", hi[2]) if p.dim == 3 else ("-0.5", "0.5")
        lines = ["units lj", "atom_style atomic", "atom_modify map array", f"dimension {p.dim}",
                 "boundary " + " ".join(bnd),
                 f"region msorch_box block 0 {hi[0]} 0 {hi[1]} {zlo} {zhi}",
                 "create_box 1 msorch_box", "mass 1 1.0",
                 f"pair_style lj/cut {p.rc:.17g}", f"pair_coeff 1 1 1.0 1.0 {p.rc:.17g}",
                 f"pair_modify shift {'yes' if p.shift else 'no'} tail {'yes' if p.tail else 'no'}",
                 f"neighbor {p.skin:.17g} bin",
                 # md.lj's rule: rebuild as soon as some atom moved more than skin/2
                 "neigh_modify every 1 delay 0 check yes",
                 "fix msorch_nve all nve"]
        for d in range(p.dim):
            if not periodic[d]:
                a = "xyz"[d]
                lines.append(f"fix msorch_wall_{d} all wall/reflect {a}lo EDGE {a}hi EDGE")
        self.lammps.commands(lines)
        n = len(ids)
        xs = x.copy()
        if p.dim == 2:
            xs[:, 2] = 0.0
        self.lammps.call(lambda lmp: lmp.create_atoms(n, (ids + 1).tolist(), [1] * n, xs.ravel().tolist(),
                                                      v.ravel().tolist()))
        if p.dim == 2:
            self.lammps.command("fix msorch_2d all enforce2d")

    @staticmethod
    def _info(lmp):
        units = lmp.extract_global("units")
        dim = int(lmp.extract_setting("dimension"))
        consts = {k: float(lmp.extract_global(k)) for k in ("boltz", "mvv2e", "ftm2v", "nktv2p")}
        lo, hi, _, _, _, periodicity, _ = lmp.extract_box()
        ntypes = int(lmp.extract_global("ntypes"))
        unit_mass = (not lmp.extract_setting("rmass_flag")
                     and np.all(np.asarray(lmp.numpy.extract_atom("mass"))[1:ntypes + 1] == 1.0))
        return (units, dim, consts, np.array(lo), np.array(hi) - np.array(lo), bool(unit_mass),
                tuple(bool(a) for a in periodicity[:dim]))

    def _add_external(self):
        """The fix external that applies thermostat and body forces (before enforce2d)."""
        if self.ext:
            return
        twod = self.dim == 2 and self.params.system == "lj"
        cmds = (["unfix msorch_2d"] if twod else []) + ["fix msorch_ext all external pf/callback 1 1"] \
            + (["fix msorch_2d all enforce2d"] if twod else [])
        self.lammps.commands(cmds)
        self.lammps.call(lambda lmp: lmp.set_fix_external_callback("msorch_ext", self._external, None))
        self.ext = True
        self.dirty = True

    # --- the fix external callback (on the LAMMPS thread, inside a run) -------------------
    def _masses(self, lmp, n):
        """(n,) masses of the local atoms: per-atom rmass when the atom style has it, else per type."""
        if self._unit_mass:
            if len(self._ones) < n:
                self._ones = np.ones(2 * n)
            return self._ones[:n]
        if lmp.extract_setting("rmass_flag"):
            return np.array(lmp.numpy.extract_atom("rmass")[:n])
        return np.asarray(lmp.numpy.extract_atom("mass"))[lmp.numpy.extract_atom("type")[:n]]

    def _external(self, caller, step, n, tags, x, f):
        p = self.params
        lmp = self.lammps.lmp
        v = lmp.numpy.darray(lmp.extract_atom("v", 3), n, 3)   # LAMMPS_DOUBLE_2D, no type look-up
        mass = self._masses(lmp, n)
        axis = self.bins.axis
        box_len = float(self._box()[axis])
        periodic = self._periodic(axis)
        langevin = p.ensemble == "langevin" and self.dt is not None
        lo, hi = self.band
        if len(self._none) < n:
            self._none = np.full(2 * n, -1, np.int64)
        tgroup = group_of(x, n, axis, box_len, periodic, self.bins.edges, lo, hi) if langevin \
            else self._none
        bgroup = group_of(x, n, axis, box_len, periodic, self.bins.edges, -np.inf, np.inf) \
            if self._has_body else self._none
        c = self.consts
        c_drag = 1.0 / (p.damping * c["ftm2v"])
        c_noise = np.sqrt(2.0 * c["boltz"] / (p.damping * self.dt * c["mvv2e"])) / c["ftm2v"] if langevin else 0.0
        if self._replay is not None and step == self._replay[0]:
            # the set-up after a restore: the forces of the step's own post_force, by atom id
            ids, fext = self._replay[1:]
            f[:] = fext[np.searchsorted(ids, tags)]
            return
        if step > self._cb_step:      # a new step, not a run's set-up
            self._cb_step = int(step)
            self._walls_and_averages(x, v, tags, n, int(step))
        _external_forces(f, v, tags, mass, n, self.dim, tgroup, self.target_t, self.target_u,
                         c_drag, c_noise, bgroup, self.body_force, p.seed, int(step))

    def _walls_and_averages(self, x, v, tags, n, step):
        """Thermal walls (LAMMPS's wall/reflect mirrored the drift; redraw who crossed, see
        :mod:`.walls`) and one sample of the running averages (velocities at the half step)."""
        p = self.params
        axis = self.bins.axis
        if self.thermal:
            lo = float(self.box0_lo[axis])
            hi = lo + float(self._box()[axis])
            kind_lo, kind_hi, u_lo, u_hi = self.walls
            ids = np.asarray(tags, dtype=np.int64)
            redraw_crossed(x, v, ids, n, axis, lo, hi, kind_lo, kind_hi, p.temperature, u_lo, u_hi, self.dim,
                           p.seed + WALL_SEED_OFFSET, step - 1, self.dt)
            if p.wall_layer > 0:
                # md.lj applies it after the second kick; here it acts on the half-step velocity
                # (the callback runs before LAMMPS's second kick): the same friction, another splitting
                wall_layer_ou(x, v, ids - 1, n, axis, lo, hi, p.wall_layer, kind_lo, kind_hi, p.temperature,
                              u_lo, u_hi, self.dim, np.exp(-self.dt / p.wall_damping),
                              p.seed + 2 * WALL_SEED_OFFSET, step - 1)
        if self.running is not None:
            xr = np.asarray(x) - self.box0_lo      # bins count from the box's lower corner
            self.running.sample(self.comm, xr, v, n, self.bins, float(self._box()[axis]), self._periodic(axis))

    def _box(self):
        box = self.box0.copy()
        box[:self.dim] *= 1.0 + self.strain
        return box

    def _periodic(self, axis):
        return self.periodic[axis]

    # --- stepping -----------------------------------------------------------------------
    def advance(self, t, dt):
        """Count one step of ``dt``; runs happen lazily (see the module docstring)."""
        if dt != self.dt:
            self._sync()
            self.dt = dt
            self.lammps.command(f"timestep {dt!r}")
        self.pending += 1
        self._obs = None
        if self.pending >= self.params.batch:
            self._sync()

    def _sync(self):
        """Run the pending steps (collective)."""
        p = self.params
        while self.pending or self.dirty:
            k = self.pending
            if p.ensemble == "rescale" and k:
                step = self._step()
                k = min(k, p.rescale_every - step % p.rescale_every)
            self._run(k)
            self.pending -= k
            if p.ensemble == "rescale" and k and self._step() % p.rescale_every == 0:
                self.lammps.call(self._rescale)

    def _step(self) -> int:
        return self.lammps.call(lambda lmp: int(lmp.extract_global("ntimestep")))

    def _run(self, k: int):
        pre = "yes" if self.dirty else "no"
        cmds = [f"run {k} pre {pre} post no"]
        self.runs += 1
        if self.runs % _LOG_EVERY_RUNS == 0:
            # restart the log (one thermo block per run would grow it without bound);
            # the path is rank 0's, the command collective
            cmds.append(f"log {self.comm.bcast(self.lammps.log, root=0)}")
        start = time.perf_counter()
        self.lammps.commands(cmds)
        self.run_seconds += time.perf_counter() - start   # time inside LAMMPS runs (benchmarks)
        self.dirty = False
        self._obs = None

    def _rescale(self, lmp):
        n = int(lmp.extract_global("nlocal"))
        x = lmp.numpy.extract_atom("x")[:n]
        v = lmp.numpy.extract_atom("v")[:n]
        axis = self.bins.axis
        lo, hi = self.band
        groups = group_of(x, n, axis, float(self._box()[axis]), self._periodic(axis), self.bins.edges, lo, hi)
        rescale(self.comm, v, n, self.dim, groups, self.target_t, self.target_u)

    # --- observables ------------------------------------------------------------------------
    def observables(self, profiles: bool = True) -> dict[str, np.ndarray]:
        """Outputs of the current state, global values on every rank (collective): the
        whole-box scalars (LAMMPS thermo keywords, no communication), plus the profiles
        (per-atom data binned, one Allreduce) unless ``profiles`` is false."""
        self._sync()
        if self._obs is None:
            self._obs = self.lammps.call(self._scalars)
        if profiles and "density_profile" not in self._obs:
            self._obs.update(self.lammps.call(self._profiles))
        return self._obs

    def _scalars(self, lmp):
        dim = self.dim
        th = {k: float(lmp.get_thermo(k)) for k in _THERMO}
        idx = [_VOIGT[a][b] for a in range(dim) for b in range(dim)]
        p6 = np.array([th["pxx"], th["pyy"], th["pzz"], th["pxy"], th["pxz"], th["pyz"]])
        return {
            "kinetic_energy": np.array([th["ke"]]),
            "potential_energy": np.array([th["pe"]]),
            "total_energy": np.array([th["ke"] + th["pe"]]),
            "temperature": np.array([th["temp"]]),
            "pressure": np.array([th["press"]]),
            "stress": -p6[idx][None, :],
        }

    def _profiles(self, lmp):
        dim = self.dim
        lmp.get_thermo("c_msorch_sasum")       # the per-atom virial is current after every run
        n = int(lmp.extract_global("nlocal"))
        x = lmp.numpy.extract_atom("x")[:n]
        v = np.array(lmp.numpy.extract_atom("v")[:n])
        mass = self._masses(lmp, n)
        from lammps import LMP_STYLE_ATOM, LMP_TYPE_ARRAY
        sa = lmp.numpy.extract_compute("msorch_sa", LMP_STYLE_ATOM, LMP_TYPE_ARRAY)
        sa = np.zeros((n, 6)) if sa is None or n == 0 else np.asarray(sa)[:n]
        box = self._box()
        c = self.consts
        k = self.bins.index(x, box[self.bins.axis], self._periodic(self.bins.axis))
        inside = k >= 0
        mv = mass[:, None] * v
        kin6 = np.stack([mv[:, 0] * v[:, 0], mv[:, 1] * v[:, 1], mv[:, 2] * v[:, 2],
                         mv[:, 0] * v[:, 1], mv[:, 0] * v[:, 2], mv[:, 1] * v[:, 2]], axis=1)
        # columns: count, mass, momentum(3), m v v (6), -per-atom virial in pressure*volume (6)
        rows = np.hstack([np.ones((n, 1)), mass[:, None], mv, kin6, -sa])[inside]
        nb = self.bins.n
        per_bin = np.zeros((nb, 17))
        np.add.at(per_bin, k[inside], rows)
        self.comm.Allreduce(MPI.IN_PLACE, per_bin, op=MPI.SUM)
        count, msum, mom = per_bin[:, 0], per_bin[:, 1], per_bin[:, 2:5]
        u = mom / np.maximum(msum, 1e-300)[:, None]
        uu6 = np.stack([u[:, 0] ** 2, u[:, 1] ** 2, u[:, 2] ** 2, u[:, 0] * u[:, 1], u[:, 0] * u[:, 2],
                        u[:, 1] * u[:, 2]], axis=1)
        thermal6 = per_bin[:, 5:11] - msum[:, None] * uu6
        cross = np.prod([box[d] for d in range(dim) if d != self.bins.axis])
        vol_b = np.diff(self.bins.edges) * cross
        t_prof = np.where(count > 1, (thermal6[:, 0] + thermal6[:, 1] + thermal6[:, 2]) * c["mvv2e"]
                          / (dim * np.maximum(count - 1, 1) * c["boltz"]), 0.0)
        stress6 = -(thermal6 * c["mvv2e"] * c["nktv2p"] + per_bin[:, 11:17]) / vol_b[:, None]
        idx = [_VOIGT[a][b] for a in range(dim) for b in range(dim)]
        return {
            "density_profile": count / vol_b,
            "count_profile": count,
            "temperature_profile": t_prof,
            "velocity_profile": np.where(count[:, None] > 0, u, 0.0)[:, :dim].copy(),
            "stress_profile": stress6[:, idx],
        }

    # --- coupling -------------------------------------------------------------------------------
    def _root_points(self, pts):
        return pts if self.rank == 0 else pts[:0]

    def fields(self):
        dim = self.dim
        energy, length, time_, temp, press, force = _UNITS.get(self.units, _UNITS["lj"])
        vol = f"{length}^{dim}"
        press = press or f"epsilon/{vol}"
        box = self._box()
        center = self._root_points(0.5 * box[None, :dim])
        bins = self._root_points(self.bins.centers(box, dim))
        return {
            "kinetic_energy": FieldSpec("float64", 1, energy, center),
            "potential_energy": FieldSpec("float64", 1, energy, center),
            "total_energy": FieldSpec("float64", 1, energy, center),
            "temperature": FieldSpec("float64", 1, temp, center),
            "pressure": FieldSpec("float64", 1, press, center),
            "stress": FieldSpec("float64", dim * dim, press, center),
            "density_profile": FieldSpec("float64", 1, f"1/{vol}", bins),
            "temperature_profile": FieldSpec("float64", 1, temp, bins),
            "velocity_profile": FieldSpec("float64", dim, f"{length}/{time_}", bins),
            MEAN_PROFILE: FieldSpec("float64", dim, f"{length}/{time_}", bins),
            "stress_profile": FieldSpec("float64", dim * dim, press, bins),
            "target_temperature": FieldSpec("float64", 1, temp, bins),
            "target_velocity": FieldSpec("float64", dim, f"{length}/{time_}", bins),
            "body_force": FieldSpec("float64", dim, force, bins),
            "strain": FieldSpec("float64", dim, "1", center),
        }

    def get(self, name):
        """This rank's values of output ``name`` (collective)."""
        if name == MEAN_PROFILE:
            return self._root_points(self._mean_profile()).copy()
        value = self.observables(profiles=name not in SCALARS and name != "stress")[name]
        if name in SCALARS:
            value = value.reshape(1)
        elif name == "stress":
            value = value.reshape(1, self.dim * self.dim)
        return self._root_points(value).copy()

    def _mean_profile(self):
        """(n_bins, dim) bin velocities averaged over the last average_steps steps, or the
        current velocity_profile when average_steps is 0 (collective)."""
        self._sync()
        if self.running is None:
            return self.observables()["velocity_profile"]
        return self.running.mean(self.dim)

    def put(self, name, data):
        """Set input ``name`` (collective: broadcast from the group's rank 0).  Steps already
        counted run first with the old value when the value changes."""
        if name not in INPUTS:
            raise KeyError(f"md.lammps has no input {name!r}; inputs: {', '.join(INPUTS)}")
        dim, nb = self.dim, self.bins.n
        width = 1 if name == "target_temperature" else dim
        rows = 1 if name == "strain" else nb
        buf = np.empty((rows, width))
        if self.rank == 0:
            buf[...] = np.asarray(data, dtype=float).reshape(rows, width)
        self.comm.Bcast(buf, root=0)
        current = {"target_temperature": lambda: self.target_t[:nb, None],
                   "target_velocity": lambda: self.target_u[:nb, :dim],
                   "body_force": lambda: self.body_force[:nb, :dim],
                   "strain": lambda: self.strain[None, :]}[name]()
        if np.array_equal(buf, current):
            return
        self._sync()
        if name == "target_temperature":
            self.target_t[:nb] = buf[:, 0]
        elif name == "target_velocity":
            self.target_u[:nb, :dim] = buf
        elif name == "body_force":
            self.body_force[:nb, :dim] = buf
            self._has_body = bool(np.any(self.body_force))
            if np.any(buf):
                self._add_external()
        else:
            self._set_strain(buf[0])

    def _set_strain(self, strain):
        box = self.box0.copy()
        box[:self.dim] *= 1.0 + strain
        lo = self.box0_lo
        spec = " ".join(f"{'xyz'[d]} final {lo[d]:.17g} {lo[d] + box[d]:.17g}" for d in range(self.dim))
        self.lammps.command(f"change_box all {spec} remap units box")
        stretch = 1.0 + strain[self.bins.axis]
        self.bins = Bins(self.bins.axis, self.edges0 * stretch)
        self.band = tuple(b * stretch for b in self.band0)
        self.strain = np.array(strain, dtype=float)
        self.dirty = True
        self._obs = None

    # --- checkpoints -------------------------------------------------------------------------
    def state(self):
        """This rank's atoms (ids, x, v, image flags), step, box strain and inputs (collective)."""
        self._sync()

        def grab(lmp):
            n = int(lmp.extract_global("nlocal"))
            return (np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64),
                    np.array(lmp.numpy.extract_atom("x")[:n]), np.array(lmp.numpy.extract_atom("v")[:n]),
                    np.array(lmp.numpy.extract_atom("image")[:n], dtype=np.int64),
                    int(lmp.extract_global("ntimestep")),
                    np.array(lmp.numpy.fix_external_get_force("msorch_ext")[:n]) if self.ext else np.zeros((n, 3)))
        ids, x, v, image, step, fext = self.lammps.call(grab)
        return {"ids": ids, "x": x, "v": v, "image": image, "step": np.array([step], dtype=np.int64),
                "fext": fext,
                "strain": self.strain.copy(), "target_t": self.target_t.copy(),
                "target_u": self.target_u.copy(), "body_force": self.body_force.copy(),
                "dt": np.array([self.dt if self.dt is not None else np.nan]),
                **({"running": self.running.ring.copy(), "running_taken": np.array([self.running.taken])}
                   if self.running is not None else {})}

    def restore(self, state):
        """Return to ``state`` (collective; any layout with the same atoms, see module docstring)."""
        self.restore_all(self.comm.allgather(state))

    def restore_all(self, states):
        """Put the atoms of every old rank back by id, then re-run LAMMPS's set-up (collective)."""
        self.pending = 0
        st = states[0]
        self.target_t = np.array(st["target_t"], dtype=float)
        self.target_u = np.array(st["target_u"], dtype=float)
        self.body_force = np.array(st["body_force"], dtype=float)
        self._has_body = bool(np.any(self.body_force))
        if self._has_body:
            self._add_external()
        strain = np.array(st["strain"], dtype=float)
        if not np.array_equal(strain, self.strain):
            self._set_strain(strain)
        ids = np.concatenate([s["ids"] for s in states])
        order = np.argsort(ids)
        if len(ids) != self.n_total or np.any(ids[order] != np.arange(1, self.n_total + 1)):
            raise ValueError("md.lammps: the checkpoint does not hold atoms 1..N of this system")
        x = np.concatenate([s["x"] for s in states])[order]
        v = np.concatenate([s["v"] for s in states])[order]
        image = np.concatenate([s["image"] for s in states])[order]
        fext = np.concatenate([s["fext"] for s in states])[order]
        step = int(st["step"][0])
        dt = float(st["dt"][0])
        if self.running is not None:
            self.running.ring[...] = st["running"]
            self.running.taken = int(st["running_taken"][0])
        self._cb_step = step

        def put(lmp):
            from ctypes import c_double, c_int
            n = self.n_total
            lmp.scatter_atoms("x", 1, 3, (3 * n * c_double)(*x.ravel()))
            lmp.scatter_atoms("v", 1, 3, (3 * n * c_double)(*v.ravel()))
            lmp.scatter_atoms("image", 0, 1, (n * c_int)(*image.astype(np.int32)))
            lmp.command(f"reset_timestep {step}")
        self.lammps.call(put)
        if np.isfinite(dt) and dt != self.dt:
            self.dt = dt
            self.lammps.command(f"timestep {dt!r}")
        self.dirty = True
        # the set-up's post_force re-applies the saved external forces, not new ones from
        # the full-step velocities: the first half kick then equals the uninterrupted run's
        self._replay = (step, ids[order], fext)
        self._run(0)
        self._replay = None

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
        out.update({f"box/{name}": self.get(name) for name in SCALARS + ("stress",)})
        return out

    def finalize(self):
        self._sync()
        self.lammps.close()
