"""md.lj single-configuration energies, virials and forces against LAMMPS, and the
tail corrections against the analytic formulas and the NIST SRSW table.

Peer program: LAMMPS (Debian package ``lammps``, binary ``lmp``) with
``pair_style lj/cut``, ``pair_modify shift/tail``, ``read_data`` of the same
configuration, ``run 0``.  Both codes evaluate the same closed-form pair sum in
double precision, so the only differences are summation order: ~1e-15 relative
per sum, far below the asserted 1e-10.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI
from scipy.integrate import quad

from solvers.md.lattice import lattice
from solvers.md.lj import LJParams, LJSolver
from solvers.md.observables import tail_energy_per_particle, tail_pressure

LMP = shutil.which("lmp")
needs_lmp = pytest.mark.skipif(LMP is None, reason="LAMMPS binary 'lmp' not found (apt-get install lammps)")
RTOL = 1e-10


def random_config(n: int, box, dim: int, rmin: float, seed: int) -> np.ndarray:
    """Random sequential addition with minimum image separation >= rmin, (n, 3)."""
    rng = np.random.default_rng(seed)
    box = np.asarray(box, dtype=float)
    x = np.zeros((n, 3))
    k = 0
    while k < n:
        trial = np.zeros(3)
        trial[:dim] = rng.random(dim) * box[:dim]
        d = x[:k, :dim] - trial[:dim]
        d -= box[:dim] * np.round(d / box[:dim])
        if k == 0 or np.min(np.sum(d * d, axis=1)) >= rmin * rmin:
            x[k] = trial
            k += 1
    return x


def perturbed_lattice(kind, cells, density, amplitude, seed):
    x, box = lattice(kind, cells, density)
    dim = len(cells)
    x[:, :dim] += amplitude * np.random.default_rng(seed).uniform(-1, 1, (len(x), dim))
    x[:, :dim] %= box[:dim]
    return x, box


def run_lammps(workdir: Path, x, v, box, dim, periodic, rc, shift, tail):
    """LAMMPS ``run 0`` on the configuration; returns (pe, press, virial 6, forces (n, 3))."""
    n = len(x)
    zlo, zhi = (0.0, box[2]) if dim == 3 else (-0.5, 0.5)
    lines = ["LAMMPS data file written by test_md_lammps", "", f"{n} atoms", "1 atom types", "",
             f"0 {box[0]:.17g} xlo xhi", f"0 {box[1]:.17g} ylo yhi", f"{zlo:.17g} {zhi:.17g} zlo zhi", "",
             "Masses", "", "1 1.0", "", "Atoms # atomic", ""]
    lines += [f"{i + 1} 1 {a:.17g} {b:.17g} {c:.17g}" for i, (a, b, c) in enumerate(x)]
    lines += ["", "Velocities", ""]
    lines += [f"{i + 1} {a:.17g} {b:.17g} {c:.17g}" for i, (a, b, c) in enumerate(v)]
    (workdir / "data.lj").write_text("\n".join(lines) + "\n")
    bnd = " ".join("p" if p else "f" for p in periodic) + (" p" if dim == 2 else "")
    comps = " ".join(f"$(c_pv[{k}]:%.17g)" for k in range(1, 7))
    script = f"""
units lj
atom_style atomic
dimension {dim}
boundary {bnd}
read_data data.lj
mass 1 1.0
pair_style lj/cut {rc:.17g}
pair_coeff 1 1 1.0 1.0 {rc:.17g}
pair_modify shift {'yes' if shift else 'no'} tail {'yes' if tail else 'no'}
neighbor 0.3 bin
compute pv all pressure NULL virial
thermo_style custom step pe press c_pv c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify norm no
run 0
print "RESULT $(pe:%.17g) $(press:%.17g) {comps}" file result.txt
write_dump all custom forces.dump id fx fy fz modify format float %.17g
"""
    (workdir / "in.lj").write_text(script)
    proc = subprocess.run([LMP, "-in", "in.lj", "-log", "none", "-screen", "none"], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:  # rerun with screen output to show LAMMPS's error message
        again = subprocess.run([LMP, "-in", "in.lj", "-log", "none"], cwd=workdir, capture_output=True,
                               text=True, timeout=120)
        pytest.fail(f"lmp failed:\n{again.stdout[-2000:]}{again.stderr[-2000:]}")
    vals = np.array((workdir / "result.txt").read_text().split()[1:], dtype=float)
    dump = np.loadtxt(workdir / "forces.dump", skiprows=9)
    forces = np.zeros((n, 3))
    forces[dump[:, 0].astype(int) - 1] = dump[:, 1:4]
    return vals[0], vals[1], vals[2:8], forces


def run_msorch(workdir: Path, x, v, box, dim, periodic, rc, shift, tail):
    """md.lj on the same configuration, read from an HDF5 file; (observables, forces by id)."""
    path = workdir / "init.h5"
    with h5py.File(path, "w") as h5:
        h5["positions"] = x[:, :dim]
        h5["velocities"] = v[:, :dim]
        h5["box"] = np.asarray(box)[:dim]
    params = LJParams(dim=dim, lattice="fcc" if dim == 3 else "hex", init_file=str(path), rc=rc, shift=shift,
                      tail=tail, periodic=tuple(periodic), n_bins=1)
    solver = LJSolver(MPI.COMM_SELF, params)
    solver.initialize(0.0)
    obs = solver.observables()
    forces = np.zeros((len(x), 3))
    forces[solver.ids] = solver.f[:solver.nlocal]
    solver.finalize()
    return obs, forces


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


CASES = {
    # name: (positions, box) factory, dim, periodic, rc, shift, tail
    "random-N30-L8-rc3": (lambda: (random_config(30, [8, 8, 8], 3, 0.9, 1), np.full(3, 8.0)),
                          3, (True, True, True), 3.0, False, False),
    "random-N200-L8-rc3-shift": (lambda: (random_config(200, [8, 8, 8], 3, 0.85, 2), np.full(3, 8.0)),
                                 3, (True, True, True), 3.0, True, False),
    "random-N800-L10-rc3-tail": (lambda: (random_config(800, [10, 10, 10], 3, 0.85, 3), np.full(3, 10.0)),
                                 3, (True, True, True), 3.0, False, True),
    # LAMMPS refuses shift and tail together
    "fcc-N4000-rc2.5-tail": (lambda: perturbed_lattice("fcc", (10, 10, 10), 0.8442, 0.08, 4),
                             3, (True, True, True), 2.5, False, True),
    "fcc-N864-rc2.5-shift": (lambda: perturbed_lattice("fcc", (6, 6, 6), 0.8442, 0.1, 8),
                             3, (True, True, True), 2.5, True, False),
    "sc-N512-wall-z-rc2.5": (lambda: perturbed_lattice("sc", (8, 8, 8), 0.7, 0.05, 5),
                             3, (True, True, False), 2.5, False, False),
    "hex2d-N1200-rc2.5-shift": (lambda: perturbed_lattice("hex", (30, 20), 0.8, 0.05, 6),
                                2, (True, True), 2.5, True, False),
}


@needs_lmp
@pytest.mark.parametrize("case", sorted(CASES))
def test_single_configuration_matches_lammps(case, tmp_path):
    """Potential energy, pressure, pair virial tensor and every per-particle force equal
    LAMMPS's ``run 0`` values to 1e-10 relative (forces: max deviation over the
    largest force).  Covers random (minimum separation 0.85-0.9 sigma) and perturbed
    lattice configurations, N = 30..4000, truncated and shifted potentials, tail
    corrections (LAMMPS ``pair_modify tail yes``), a walled (non-periodic) axis and 2D."""
    make, dim, periodic, rc, shift, tail = CASES[case]
    x, box = make()
    v = np.zeros_like(x)
    v[:, :dim] = np.random.default_rng(7).normal(size=(len(x), dim))
    if not all(periodic):
        walled = [d for d in range(dim) if not periodic[d]]
        for d in walled:  # keep particles strictly inside the walls, as LAMMPS 'f' requires
            x[:, d] = np.clip(x[:, d], 1e-3, box[d] - 1e-3)
    pe, press, pv6, f_ref = run_lammps(tmp_path, x, v, box, dim, periodic, rc, shift, tail)
    obs, f = run_msorch(tmp_path, x, v, box, dim, periodic, rc, shift, tail)

    assert abs(obs["potential_energy"][0] - pe) <= RTOL * abs(pe)
    assert abs(obs["pressure"][0] - press) <= RTOL * max(abs(press), abs(pv6[:dim]).max())
    volume = np.prod(box[:dim])
    w = obs["virial"].reshape(dim, dim) / volume  # pair virial pressure tensor
    voigt = {(0, 0): 0, (1, 1): 1, (2, 2): 2, (0, 1): 3, (0, 2): 4, (1, 2): 5}
    ref = np.array([[pv6[voigt[min(a, b), max(a, b)]] for b in range(dim)] for a in range(dim)])
    if tail:  # LAMMPS's virial pressure includes p_LRC on the diagonal; W does not
        ref -= tail_pressure(len(x) / volume, rc, dim) * np.eye(dim)
    assert rel(w, ref) <= RTOL
    assert rel(f, f_ref) <= RTOL


@pytest.mark.parametrize("rc", [2.5, 3.0, 4.0])
def test_tail_corrections_equal_quadrature(rc):
    """U_LRC/N = (rho/2) int_rc^inf u(r) 4 pi r^2 dr and
    p_LRC = -(rho^2/6) int_rc^inf r u'(r) 4 pi r^2 dr (Allen & Tildesley sec. 2.8),
    evaluated by adaptive quadrature (independent of the closed forms; quad error
    ~1e-12), and the 2D analogues with 2 pi r dr and 1/4."""
    rho = 0.8

    def u(r):
        return 4 * (r ** -12 - r ** -6)

    def du(r):
        return -48 * r ** -13 + 24 * r ** -7

    e3 = 0.5 * rho * quad(lambda r: u(r) * 4 * np.pi * r * r, rc, np.inf, epsabs=0, epsrel=1e-13)[0]
    p3 = -rho ** 2 / 6 * quad(lambda r: r * du(r) * 4 * np.pi * r * r, rc, np.inf, epsabs=0, epsrel=1e-13)[0]
    e2 = 0.5 * rho * quad(lambda r: u(r) * 2 * np.pi * r, rc, np.inf, epsabs=0, epsrel=1e-13)[0]
    p2 = -rho ** 2 / 4 * quad(lambda r: r * du(r) * 2 * np.pi * r, rc, np.inf, epsabs=0, epsrel=1e-13)[0]
    assert tail_energy_per_particle(rho, rc, 3) == pytest.approx(e3, rel=1e-10)
    assert tail_pressure(rho, rc, 3) == pytest.approx(p3, rel=1e-10)
    assert tail_energy_per_particle(rho, rc, 2) == pytest.approx(e2, rel=1e-10)
    assert tail_pressure(rho, rc, 2) == pytest.approx(p2, rel=1e-10)


@pytest.mark.parametrize("n, length, u_lrc", [(800, 10.0, -1.9849e2), (200, 8.0, -2.4230e1),
                                              (30, 8.0, -5.4517e-1)])
def test_tail_energy_matches_nist_table(n, length, u_lrc):
    """NIST SRSW "Lennard-Jones fluid reference calculations", rc = 3 sigma: U_LRC of
    configurations 1, 2 and 4 (table in shared/references.md), printed to 5 digits,
    hence rel 1e-4."""
    assert n * tail_energy_per_particle(n / length ** 3, 3.0, 3) == pytest.approx(u_lrc, rel=1e-4)
