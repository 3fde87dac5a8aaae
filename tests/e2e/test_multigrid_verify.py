"""Issue 13, Must show 2 (verify stage): V(1,1) across four fem.heat groups (4 -> 2 -> 1 -> 1 ranks)
on the steady Poisson problem of benchmarks/multigrid_bench.py at 256^2, 512^2 and 1024^2 cells
(1,050,625 unknowns on the finest level), the pattern's defaults (red-black Gauss-Seidel, bilinear
transfer); the same at 256^2 on one rank per level; V(2,2) and W(1,1) at 512^2; the 1024^2 solution
against a monolithic PETSc solve (one fem.heat group, CG + hypre to 1e-14)."""
import importlib.util

import h5py
import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.verify

_spec = importlib.util.spec_from_file_location("multigrid_bench", ROOT / "benchmarks" / "multigrid_bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def mean_factor(table) -> float:
    n = int(table["cycle"][-1])
    return float((table["residual"][-1] / table["residual"][0]) ** (1.0 / n))


def test_v_cycle_factor_is_independent_of_h_and_matches_the_monolithic_solve(msorch, tmp_path):
    """References: (1) the textbook factor of V(1,1) with red-black Gauss-Seidel, full weighting and bilinear
    interpolation on the 5-point Poisson operator, ~0.1 per cycle (Trottenberg, Oosterlee & Schueller,
    Multigrid, 2001, sect. 2.5; a serial scipy prototype of this very cycle gives 0.107-0.110 asymptotically
    at 128^2-512^2): the issue's bound is 0.15 for *every* cycle (factor r_k / r_(k-1)), asserted at each size;
    (2) h-independence, the defining property of multigrid (Hackbusch 1985, Thm. 10.6.25): the mean factor
    (r_n / r_0)^(1/n) and the worst cycle may differ by at most 0.02 between the three sizes; (3) the
    red-black sweep is the same arithmetic on any rank split: the 256^2 factors on 1 -> 1 -> 1 -> 1 ranks
    equal those on 4 -> 2 -> 1 -> 1 to 1e-6 (rounding in the matrix-vector products' summation order);
    (4) a monolithic PETSc solve of the same discrete problem (fem.heat on one group of 4 ranks, CG + hypre,
    rtol 1e-14): the 1024^2 solution (multigrid to 1e-12 relative residual) within 1e-10 relative max norm."""
    figures, tables = {}, {}
    for n in (256, 512, 1024):
        t = bench.run_msorch(bench.job_spec(n, 1e-12 if n == 1024 else 1e-10), tmp_path / f"v{n}")
        tables[n] = t
        figures[n] = (mean_factor(t), float(np.nanmax(t["factor"])), int(t["cycle"][-1]),
                      float(t["seconds"][1:].mean()))
        print(f"V(1,1) n = {n}: {figures[n][2]} cycles, mean factor {figures[n][0]:.4f}, worst cycle "
              f"{figures[n][1]:.4f}, {figures[n][3] * 1e3:.1f} ms per cycle; factors "
              + " ".join(f"{f:.3f}" for f in t["factor"][1:]))
        if n == 1024:
            u_mg = t["u"]
    serial = bench.run_msorch(bench.job_spec(256, 1e-10, ranks=(1, 1, 1, 1)), tmp_path / "serial")
    rank_diff = float(np.abs(serial["factor"][1:] - tables[256]["factor"][1:]).max())
    print(f"V(1,1) n = 256 on 1 -> 1 -> 1 -> 1 ranks: {int(serial['cycle'][-1])} cycles, worst cycle "
          f"{np.nanmax(serial['factor']):.4f}; largest factor difference to 4 -> 2 -> 1 -> 1 ranks {rank_diff:.1e}")
    for cycle, nu in (("V", 2), ("W", 1)):
        t = bench.run_msorch(bench.job_spec(512, 1e-10, cycle=cycle, nu=nu), tmp_path / f"{cycle}{nu}")
        print(f"{cycle}({nu},{nu}) n = 512: {int(t['cycle'][-1])} cycles, mean factor {mean_factor(t):.4f}, worst "
              f"cycle {np.nanmax(t['factor']):.4f}, {t['seconds'][1:].mean() * 1e3:.1f} ms per cycle")
        assert mean_factor(t) < figures[512][0]
    mono = bench.job_spec(1024, 1e-12, ranks=(4,))
    mono["patterns"] = []
    mono["solvers"]["level0"]["params"]["petsc_options"] = {}
    t = tmp_path / "mono"
    t.mkdir()
    import yaml
    (t / "spec.yaml").write_text(yaml.safe_dump(mono))
    r = msorch("run", t / "spec.yaml", "-o", t / "out", timeout=3000)
    assert r.returncode == 0, r.stderr
    with h5py.File(t / "out" / "level0.h5") as f:
        u_mono = f["temperature"][-1]
    diff = float(np.abs(u_mg - u_mono).max() / np.abs(u_mono).max())
    print(f"1024^2: multigrid vs monolithic PETSc solve: {diff:.2e} relative max norm")
    means, worst = [figures[n][0] for n in figures], [figures[n][1] for n in figures]
    assert max(worst) <= 0.15, figures
    assert max(means) - min(means) <= 0.02 and max(worst) - min(worst) <= 0.02, figures
    assert len(serial["factor"]) == len(tables[256]["factor"]) and rank_diff <= 1e-6
    assert diff <= 1e-10


def test_asymptotic_v_cycle_factor_from_a_random_error():
    """The run above starts from zero with a smooth right-hand side, so its late cycles approach but need not
    reach the cycle's asymptotic factor (its spectral radius). Here the same V(1,1) cycle (red-black
    Gauss-Seidel, couplings.grid_transfer's bilinear P and R = P^T, the operators assembled by
    solvers.fem.grid on each level, exact solve on the 4th level) is written out serially with scipy and run
    as a power iteration from a random error with b = 0: after 25 cycles the factor per cycle is the
    spectral radius to ~3 digits. Reference: the textbook ~0.1 (Trottenberg et al. 2001, sect. 2.5) and the
    issue's bound 0.15, at 128^2 and 512^2 (h-independent within 0.01)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from couplings.grid_transfer import Box, GridTransfer
    from solvers.fem.grid import Rectangle, local_rows

    def level(n):
        g = Rectangle(0.0, 1.0, 0.0, 1.0, n, n)
        r = local_rows(g, 0, g.n_nodes)
        A = sp.csr_matrix((r.stiffness, r.indices, r.indptr), shape=(g.n_nodes, g.n_nodes))
        i, j = np.arange(g.n_nodes) % (n + 1), np.arange(g.n_nodes) // (n + 1)
        inner = np.flatnonzero((i > 0) & (i < n) & (j > 0) & (j < n))
        return A[inner][:, inner].tocsr(), inner, ((i + j) % 2)[inner]

    def factor(n, cycles=25):
        levels = [level(n >> k) for k in range(4)]
        P = []
        for k in range(3):
            fine, coarse = Box(0.0, 1.0, 0.0, 1.0, n >> k, n >> k), Box(0.0, 1.0, 0.0, 1.0, n >> k + 1, n >> k + 1)
            t = GridTransfer(fine, coarse, 0, fine.n_nodes)
            full = sp.csr_matrix((np.full(4 * fine.n_nodes, 0.25), (np.tile(np.arange(fine.n_nodes), 4),
                                  np.concatenate(t.cols))), shape=(fine.n_nodes, coarse.n_nodes))
            P.append(full[levels[k][1]][:, levels[k + 1][1]].tocsr())
        lu = spla.splu(levels[3][0].tocsc())

        def smooth(A, colour, x, b):
            d = A.diagonal()
            for c in (0, 1):
                rows = colour == c
                x[rows] += (b - A @ x)[rows] / d[rows]

        def cycle(k, x, b):
            A, _, colour = levels[k]
            if k == 3:
                x[:] = lu.solve(b)
                return
            smooth(A, colour, x, b)
            e = np.zeros(P[k].shape[1])
            cycle(k + 1, e, P[k].T @ (b - A @ x))
            x += P[k] @ e
            smooth(A, colour, x, b)

        x = np.random.default_rng(13).standard_normal(levels[0][0].shape[0])
        b = np.zeros_like(x)
        res = [np.linalg.norm(levels[0][0] @ x)]
        for _ in range(cycles):
            cycle(0, x, b)
            res.append(np.linalg.norm(levels[0][0] @ x))
        return res[-1] / res[-2]

    rho = {n: factor(n) for n in (128, 512)}
    print("asymptotic V(1,1) factor (serial scipy model of the cycle, random start): "
          + ", ".join(f"{n}^2: {f:.4f}" for n, f in rho.items()))
    assert max(rho.values()) <= 0.15 and abs(rho[128] - rho[512]) <= 0.01, rho
