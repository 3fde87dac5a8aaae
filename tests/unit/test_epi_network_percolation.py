"""Verification (``@pytest.mark.verify``): epi.network final sizes against bond percolation.

Reference (shared/references.md, Newman 2002; Kenah & Robins 2007): SIR with per-contact
rate beta and recovery rate gamma on a configuration-model network has transmissibility
T = beta/(beta + gamma) (exponential infectious period; 1 - exp(-beta/gamma) for a fixed
one), and a major outbreak infects 1 - G0(1 - T + T u) with u = G1(1 - T + T u).  For a
k-regular graph: attack = 1 - v^k, v = 1 - T + T v^(k-1).  Erdős–Rényi: z = 1 - exp(-T<k> z)
(mean field with R0 = T<k>).  epi.network samples each agent's infectious period once and
each contact per step with probability 1 - exp(-beta L), so T holds exactly for any dt
(module docstring of solvers/epi/network.py); the checks use dt = 0.5 and dt = 1 day.

Each case runs independent seeds (new graph and epidemic) at N = 100,000; major outbreaks
are runs with attack > 0.05 (the two modes are far apart for R0 >= 1.8); the mean attack
rate over the major ones must lie within 3 standard errors of the reference (finite-size
bias O(1/N) ~ 1e-5 is far below the standard error ~ 5e-4).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

from solvers.epi.contacts import NetworkParams
from solvers.epi.network import EpiNetworkParams, EpiNetworkSolver

pytestmark = pytest.mark.verify

N = 100_000


def regular_attack(k: int, T: float) -> float:
    f = lambda v: 1 - T + T * v ** (k - 1) - v      # noqa: E731
    return 1 - brentq(f, 0.0, 1 - 1e-12) ** k if T * (k - 1) > 1 else 0.0


def mean_field_attack(r0: float) -> float:
    return brentq(lambda z: 1 - math.exp(-r0 * z) - z, 1e-9, 1.0) if r0 > 1 else 0.0


def final_attack(net, beta, gamma, seed, dt=0.5, period="exponential", sigma=None, infected=5):
    p = EpiNetworkParams(n_agents=N, network=net, beta=beta, gamma=gamma, sigma=sigma, seed=seed,
                         initial_infected=infected, infectious_period=period)
    s = EpiNetworkSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    t = 0.0
    while s.n_active:
        s.advance(t, dt)
        t += dt
    return float(s.get("attack_rate")[0])


def check_major(name, runs, reference):
    major = np.array([a for a in runs if a > 0.05])
    assert len(major) >= 5, (name, runs)
    mean, se = major.mean(), major.std(ddof=1) / math.sqrt(len(major))
    print(f"\n{name}: {len(major)}/{len(runs)} major, mean attack {mean:.5f} +- {se:.5f} (SE), "
          f"reference {reference:.5f}, |diff|/SE = {abs(mean - reference) / se:.2f}")
    assert abs(mean - reference) < 3 * se, (name, mean, se, reference)


@pytest.mark.parametrize("k, beta, dt, period, sigma", [
    (10, 0.25, 0.5, "exponential", None),    # T = 0.2, R0 = 1.8, attack 0.8187
    (10, 0.25, 1.0, "exponential", None),    # the same with daily steps
    (5, 1.0, 0.5, "exponential", None),      # T = 0.5, R0 = 2, attack 0.9525
    (5, 1.0, 0.5, "exponential", 0.5),       # SEIR: a latent period does not change the final size
    (5, 0.5, 0.5, "fixed", None),            # fixed period 1 day: T = 1 - exp(-0.5) = 0.3935
])
def test_regular_graph_final_size(k, beta, dt, period, sigma):
    t0 = time.perf_counter()
    T = beta / (beta + 1.0) if period == "exponential" else 1 - math.exp(-beta)
    net = NetworkParams(kind="k-regular", degree=k)
    runs = [final_attack(net, beta, 1.0, seed, dt, period, sigma) for seed in range(8)]
    check_major(f"{k}-regular beta={beta} dt={dt} {period} sigma={sigma} (T={T:.4f}, R0={T * (k - 1):.3f})",
                runs, regular_attack(k, T))
    print(f"  {time.perf_counter() - t0:.1f} s")


def test_erdos_renyi_matches_mean_field():
    """<k> = 10, T = 0.2: R0 = T<k> = 2, z = 0.7968 (shared/references.md table)."""
    net = NetworkParams(kind="erdos-renyi", mean_degree=10.0)
    runs = [final_attack(net, 0.25, 1.0, seed) for seed in range(8)]
    check_major("Erdos-Renyi <k>=10 T=0.2 (R0=2)", runs, mean_field_attack(2.0))


def test_four_regular_critical():
    """4-regular, beta = 0.5, gamma = 1: T = 1/3, R0 = T(k-1) = 1, the percolation threshold:
    the reference attack rate of a major outbreak is 0 (N -> inf).  At finite N critical
    outbreaks reach O(N^(2/3)) agents, i.e. attack rates of order N^(-1/3) = 0.022: every one
    of 30 single-seed runs must stay below 3 N^(-1/3), and the mean over them below N^(-1/3)
    (for contrast: beta = 0.6, R0 = 1.125, has major outbreaks of 0.26)."""
    net = NetworkParams(kind="k-regular", degree=4)
    runs = np.array([final_attack(net, 0.5, 1.0, seed, infected=1) for seed in range(30)])
    scale = N ** (-1 / 3)
    print(f"\n4-regular critical: mean attack {runs.mean():.5f}, max {runs.max():.5f}, N^(-1/3) = {scale:.4f}")
    assert runs.max() < 3 * scale and runs.mean() < scale
    above = [final_attack(net, 0.6, 1.0, seed, infected=5) for seed in range(3)]
    ref = regular_attack(4, 0.6 / 1.6)
    print(f"4-regular beta=0.6: attacks {np.round(above, 4)}, reference {ref:.4f}")
    assert max(above) > 0.1 and abs(max(above) - ref) < 0.05
