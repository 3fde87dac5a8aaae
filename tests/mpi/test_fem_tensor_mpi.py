"""fem.heat's per-triangle conductivity and fem.cell on 1 and 3 real MPI ranks
(script: tests/mpi/scripts/fem_tensor.py).

One and three ranks: three splits 16x10 cells unevenly, so triangles a rank's rows need lie on
both neighbours (the halo exchange is exercised in both directions)."""
from __future__ import annotations

import numpy as np

SCRIPT = "tests/mpi/scripts/fem_tensor.py"


def test_tensor_conductivity_and_cell_problem_agree_across_rank_counts(mpirun, tmp_path):
    """Reference: the 1-rank run (itself checked against analytic results in
    tests/unit/test_fem_conductivity.py and test_fem_cell.py).  Same global nodes and centroids
    in the same order; temperatures equal to 1e-11 relative (each solve converged to rtol 1e-14,
    the AMG preconditioner differs with the partition); A* of the cell problem equal to 1e-10
    (LU on one rank, CG + AMG on more)."""
    runs = {}
    for size in (1, 3):
        path = tmp_path / f"tensor{size}.npz"
        proc = mpirun(size, [SCRIPT, str(path)], timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with np.load(path) as data:
            runs[size] = dict(data)
    ref = runs[1]
    assert ref["field_u"].shape == (17 * 11,) and ref["field_centroids"].shape == (320, 2)
    assert ref["fine_u"].shape == (33 * 33,)
    for size in (3,):
        run = runs[size]
        np.testing.assert_array_equal(run["field_centroids"], ref["field_centroids"])
        for key in ("field_u", "fine_u"):
            diff = np.abs(run[key] - ref[key]).max() / np.abs(ref[key]).max()
            assert diff < 1e-11, (size, key, diff)
        np.testing.assert_allclose(run["cell"], ref["cell"], rtol=0, atol=1e-10)
