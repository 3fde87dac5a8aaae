"""The Solver API contract of traffic.idm / traffic.nasch / traffic.lwr on 1 and 3 ranks
(tests/mpi/scripts/traffic_contract.py): declared field shapes, inputs, bitwise restore."""
import pytest


@pytest.mark.parametrize("n", [1, 3])
def test_traffic_solver_contract(mpirun, n):
    res = mpirun(n, ["tests/mpi/scripts/traffic_contract.py"], timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "contract ok" in res.stdout
