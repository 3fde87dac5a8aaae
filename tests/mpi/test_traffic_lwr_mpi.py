"""``traffic.lwr`` split over 3 ranks (tests/mpi/scripts/traffic_lwr_decomp.py)."""
import numpy as np
import pytest

SCRIPT = "tests/mpi/scripts/traffic_lwr_decomp.py"


@pytest.mark.parametrize("scheme", [("1",), ("2", "1.3", "0.15"), ("1", "1.3", "0.19", "wide_jam")],
                         ids=["godunov", "muscl-capacity-drop", "two-phase"])
def test_lwr_one_vs_three_ranks(mpirun, tmp_path, scheme):
    """Reference: the 1-rank run.  Both sides of a rank border compute the same
    Godunov/CTM interface flux from exchanged densities (order 2: the same
    limited slopes from two exchanged cells; two-phase: also the FREE/JAM flags of
    two cells) and the update is elementwise, so
    densities agree bitwise; the ramps sit in different ranks'
    cells, the table is broadcast from rank 0, and the vehicle balance
    initial + in + created = out + removed + present holds to 1e-12 (asserted
    in the script on every rank)."""
    got = {}
    for n in (1, 3):
        out = tmp_path / f"lwr{n}.npz"
        res = mpirun(n, [SCRIPT, str(out), *scheme], timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        got[n] = np.load(out)
    assert np.array_equal(got[1]["rho"], got[3]["rho"])
    assert np.allclose(got[1]["counts"], got[3]["counts"], rtol=1e-12)
    assert got[3]["rho"].max() > 0.05           # the ramp really congested the road
    if len(scheme) == 3:                        # a queue above critical discharged across rank borders
        assert (got[3]["rho"] > 0.1).sum() >= 10
    if len(scheme) == 4:                        # a road starting as one jam drained across rank borders
        assert np.array_equal(got[1]["jam"], got[3]["jam"])
        assert got[1]["jam_steps"][0] == got[3]["jam_steps"][0] > 10_000
