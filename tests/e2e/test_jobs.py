"""Every example job in jobs/ that no other test runs, through ``msorch run``.

(partitioned_heat, monolithic_heat: test_partitioned_heat.py; decay_pair:
test_user_solver.py; reaction_diffusion: test_reaction_diffusion.py;
lj_fluid: tests/mpi/test_md_job.py.)
"""
import h5py
import numpy as np
from scipy.optimize import brentq

from conftest import ROOT


def test_idm_ring_settles_at_the_equilibrium_speed(msorch, tmp_path):
    """Reference: IDM equilibrium (Treiber et al. 2000), s_e(v) = (s0 + vT)/sqrt(1 - (v/v0)^4),
    at gap 25 m - 5 m = 20 m; 0.1 % as in the traffic issue."""
    r = msorch("run", ROOT / "jobs" / "idm_ring.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    v_e = brentq(lambda v: (2 + 1.5 * v) / np.sqrt(1 - (v / 30) ** 4) - 20.0, 0, 29.999)
    with h5py.File(tmp_path / "results.h5") as f:
        speed, density = f["ring/speed"][-1], f["ring/density"][-1]
    assert abs(speed.mean() / v_e - 1) < 1e-3
    assert np.isclose(density.mean(), 200 / 5000)


def test_lwr_traffic_light_discharges_at_capacity(msorch, tmp_path):
    """Reference: Greenshields Riemann problem rho_L = rho_j, rho_R = 0: the flow at the
    light is the capacity v_f rho_j / 4 = 1.5 veh/s for all t > 0 (cells next to the
    light average the fan, hence 0.2 %)."""
    r = msorch("run", ROOT / "jobs" / "lwr_traffic_light.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "results.h5") as f:
        flow, points = f["light/flow"][-1], f["light/points"][:, 0]
    near = np.abs(points - 500.0) < 5.0
    assert np.all(np.abs(flow[near] / 1.5 - 1) < 2e-3)
    assert flow.max() <= 1.5 + 1e-12


def test_traffic_micro_macro_hands_vehicles_over(msorch, tmp_path):
    """jobs/traffic_micro_macro.yaml: LWR (continuous vehicles) -> IDM (whole vehicles).

    References: vehicle balance (in = out + present) on each road, exact for the
    agents and to rounding for LWR; across the interface the vehicles that left the
    macro road and entered the micro road differ by less than two at every output
    (IDM inserts a whole vehicle once a gap and a full vehicle of demand are there);
    after the first ~70 s of filling, both flows equal the 0.4 veh/s demand.
    """
    r = msorch("run", ROOT / "jobs" / "traffic_micro_macro.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "results.h5") as f:
        macro = {k: f["macro"][k][:].sum(axis=1) for k in ("count_in", "count_out", "count_present")}
        micro = {k: f["micro"][k][:].sum(axis=1) for k in ("count_in", "count_out", "count_present")}
        t = f["micro/time"][:]
    np.testing.assert_allclose(macro["count_in"], macro["count_out"] + macro["count_present"], atol=1e-9)
    np.testing.assert_array_equal(micro["count_in"], micro["count_out"] + micro["count_present"])
    assert np.abs(macro["count_out"] - micro["count_in"]).max() < 2
    late = t >= 200
    for counts in (macro["count_out"], micro["count_in"]):
        rate = (counts[late][-1] - counts[late][0]) / (t[late][-1] - t[late][0])
        assert abs(rate - 0.4) < 0.011
