"""The epidemic demo (issue 14) at full size: jobs/epi_demo.yaml with every population x 20 --
12 regions, 10^6 agents in the two agent metros (epi.network on 2 ranks), 10 chain-binomial regions.

References: exact conservation of infectious travellers between the two models (whole persons,
compared with ==); the final-size bound z(R0) of the chain-binomial regions' R0 (2.25 -> 0.853,
shared/references.md) that the attack rates, lowered by the day-40 interventions, must stay under.
"""
from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from solvers.epi.seir import final_size
from test_epi_hybrid import scaled


@pytest.mark.verify
def test_demo_with_a_million_agents(msorch, tmp_path):
    spec = scaled("epi_demo", 20, tmp_path)
    t0 = time.perf_counter()
    r = msorch("run", spec, "-o", tmp_path / "out", timeout=1500)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        agents = f["metros/S"][0] + f["metros/I"][0]
        exported = f["metros/exported"][:]                     # every step, per metro
        out = f["regions/travel_out"][-1]
        points = f["regions/points"][:, 0]
        attack_agents = f["metros/R"][-1] / agents
        attack_meta = f["regions/cumulative_incidence"][-1][points >= 2] / f["regions/S"][0][points >= 2]
    print(f"epi_demo x20: {agents.sum():.0f} agents, wall {wall:.1f} s; attack rates metros "
          f"{np.round(attack_agents, 3)}, regions {np.round(attack_meta, 3)}")
    assert agents.sum() >= 1_000_000
    for k in (0, 1):          # serial staggering: each step's export reaches epi.meta within its window
        assert out[int(np.flatnonzero(points == k)[0])] == exported[:, k].sum() > 0
    assert np.all(attack_meta > 0.05) and np.all(attack_meta < final_size(2.25))
    assert np.all(attack_agents > 0.05)
