"""fem.heat on 1, 2 and 3 real MPI ranks (script: tests/mpi/scripts/fem_monolithic.py)."""
from __future__ import annotations

import json

import numpy as np

SCRIPT = "tests/mpi/scripts/fem_monolithic.py"
SIZES = (1, 2, 3)
CASES = ("exact", "neumann", "dirichlet", "top")


def test_rank_counts_agree_with_each_other_and_the_analytic_solution(mpirun, tmp_path):
    """One run of the script per rank count (20x10 cells, 10 steps of dt 0.05), three cases:
    all sides exact; right side neumann fed the analytic nodal inflow with x = 0 insulated;
    right side dirichlet fed the analytic temperature.

    References and tolerances:
    - the analytic u = 1 + x² + 3y² + 1.2t (preCICE partitioned-heat tutorial), which P1 on this
      mesh reproduces exactly (see tests/unit/test_fem_heat.py): relative L2 error < 1e-10 at
      every step for every row distribution;
    - the 1-rank run: same global nodes in the same order, nodal values equal to 1e-12 relative
      to max|u| (each solve converged to rtol 1e-14; the AMG preconditioner changes with the
      partition, so bitwise equality is not expected);
    - the analytic outflow through x = 2 for the dirichlet case: −k ∂u/∂x hy = −2·2·0.1 = −0.4 W
      at the side's nodes (corners excluded: they lie on exact sides) (1e-10), gathered across ranks; through y = 1 for the top case:
      −k ∂u/∂y hx = −6·0.1 = −0.6 W.
    """
    runs = {}
    for size in SIZES:
        path = tmp_path / f"fem{size}.npz"
        proc = mpirun(size, [SCRIPT, str(path)], timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert [(line["case"], line["size"]) for line in lines] == [(c, size) for c in CASES]
        with np.load(path) as data:
            runs[size] = dict(data)

    for case in CASES:
        ref_u, ref_pts = runs[1][f"{case}_u"], runs[1][f"{case}_points"]
        assert ref_u.shape == (21 * 11,)
        for size in SIZES:
            assert float(runs[size][f"{case}_worst"]) < 1e-10, (case, size)
            np.testing.assert_array_equal(runs[size][f"{case}_points"], ref_pts)
            diff = np.abs(runs[size][f"{case}_u"] - ref_u).max() / np.abs(ref_u).max()
            assert diff < 1e-12, (case, size, diff)

    for size in SIZES:
        flux, pts = runs[size]["dirichlet_flux"], runs[size]["dirichlet_flux_points"]
        assert flux.shape == (9,) and np.all(pts[:, 0] == 2.0)
        np.testing.assert_allclose(flux, -0.4, atol=1e-10)
        np.testing.assert_allclose(flux, runs[1]["dirichlet_flux"], rtol=0, atol=1e-12)
        flux, pts = runs[size]["top_flux"], runs[size]["top_flux_points"]
        assert flux.shape == (19,) and np.all(pts[:, 1] == 1.0)
        np.testing.assert_allclose(flux, -0.6, atol=1e-10)
        np.testing.assert_allclose(flux, runs[1]["top_flux"], rtol=0, atol=1e-12)
