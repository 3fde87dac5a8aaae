"""md.lammps thermodynamics against the NIST SRSW Lennard-Jones reference data
(the same state points, run lengths and statistics as tests/unit/test_md_nist.py
for md.lj; verify stage: ~0.5-1 min each on a quiet machine).

Reference (shared/references.md): NIST Standard Reference Simulation Website,
LJ_PURE/mc.htm: MC NVT, N = 500, rc = 3 sigma, tail corrections in U and p.
T* = 0.85: rho* = 0.776 -> U/N = -5.5121 +- 4.55e-4, p = 6.7714e-3;
           rho* = 0.86  -> U/N = -6.0305 +- 2.38e-3, p = 1.2660 +- 1.36e-2.
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from test_lammps_adapter import pytestmark as needs_lammps  # noqa: F401  (skips without LAMMPS)
from test_md_nist import NIST, N, block_mean

pytestmark = [needs_lammps, pytest.mark.verify]


@pytest.mark.parametrize("density", [0.776, 0.86])
def test_nvt_energy_and_pressure_match_nist(density):
    """LAMMPS (pair lj/cut 3.0, pair_modify tail yes, fix nve) with msorch's Langevin
    force (damping 1 tau, dt 0.005) at T* = 0.85, N = 500: 5 tau at T = 2 then 10 tau
    at 0.85 (through the target_temperature input), then 100 tau sampled every 0.05
    tau; 10 block averages of 10 tau.  |mean - NIST| < 3 sqrt(SE^2 + SE_NIST^2) for
    U/N and p."""
    from solvers.md.lammps import LammpsParams, LammpsSolver
    solver = LammpsSolver(MPI.COMM_SELF, LammpsParams(
        cells=(5, 5, 5), density=density, temperature=0.85, rc=3.0, tail=True, ensemble="langevin",
        damping=1.0, n_bins=1, seed=99))
    solver.initialize(0.0)
    try:
        solver.put("target_temperature", np.array([2.0]))
        for _ in range(1000):
            solver.advance(0.0, 0.005)
        solver.put("target_temperature", np.array([0.85]))
        for _ in range(2000):
            solver.advance(0.0, 0.005)
        u, p = [], []
        for k in range(20000):
            solver.advance(0.0, 0.005)
            if k % 10 == 9:
                obs = solver.observables()
                u.append(obs["potential_energy"][0] / N)
                p.append(obs["pressure"][0])
    finally:
        solver.finalize()
    u_ref, u_err, p_ref, p_err = NIST[density]
    u_mean, u_se = block_mean(np.array(u))
    p_mean, p_se = block_mean(np.array(p))
    print(f"rho={density}: U/N = {u_mean:.5f} +- {u_se:.5f} (NIST {u_ref}), p = {p_mean:.4f} +- {p_se:.4f} "
          f"(NIST {p_ref})")
    assert abs(u_mean - u_ref) < 3 * np.hypot(u_se, u_err)
    assert abs(p_mean - p_ref) < 3 * np.hypot(p_se, p_err)
