"""In-process replica of msorch's serial-implicit partitioned heat job, for counting iterations.

Two :class:`solvers.fem.heat.HeatSolver` instances on ``MPI.COMM_SELF`` run
``jobs/partitioned_heat.yaml``'s algorithm exactly as :class:`msorch.worker.Worker`
does for it (serial staggering ``left`` then ``right``; 10 sub-steps on both
sides, so every sub-step reads a waveform sample exactly; matching interface
points, so both mappings are permutations; convergence sums over the window's
samples or only its last one; the accelerator gets the whole window's
samples of ``left.temperature`` as one block).  A run takes ~0.1 s instead of
~3 s for ``msorch run``; ``tests/e2e/test_implicit_precice.py`` checks that
``msorch run`` gives the same iteration counts on the same settings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from solvers.fem.heat import HeatParams, HeatSolver

SUBSTEPS, WINDOW, N_WINDOWS = 10, 0.1, 10


def exact(points: np.ndarray, t: float) -> np.ndarray:
    """The manufactured u = 1 + x² + 3 y² + 1.2 t (alpha = 3, beta = 1.2)."""
    return 1 + points[:, 0] ** 2 + 3 * points[:, 1] ** 2 + 1.2 * t


@dataclass
class Result:
    iterations: list[int]
    converged: list[bool]
    error: float            # max over both subdomains of the relative L2 error at t_end


def _permutation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """idx with src[idx] == dst (matching interface points in any order)."""
    idx = np.array([int(np.argmin(np.linalg.norm(src - p, axis=1))) for p in dst])
    assert np.allclose(src[idx], dst, atol=1e-12)
    return idx


def run(accelerator, *, interface: float = 1.0, right_end: float = 2.0, left_start: float = 0.0,
        n_cells: int = 10, max_iterations: int = 50, tolerance: float = 1e-10,
        over: str = "window", ny: int = 10, windows: int = N_WINDOWS) -> Result:
    """Run 10 windows of the Dirichlet (left) -- Neumann (right) heat coupling.

    ``accelerator``: an :class:`couplings.acceleration.Acceleration` on
    ``COMM_SELF`` (made with ``blocks=None`` or one block), or None (plain
    iteration).  ``over``: ``"window"`` sums the convergence residuals over
    the 10 samples, ``"end"`` uses the last sample only (preCICE).
    """
    common = dict(y0=0.0, y1=1.0, ny=ny, alpha=3.0, beta=1.2)
    left = HeatSolver(MPI.COMM_SELF, HeatParams(x0=left_start, x1=interface, nx=n_cells,
                                                right="dirichlet", **common))
    right = HeatSolver(MPI.COMM_SELF, HeatParams(x0=interface, x1=right_end, nx=n_cells,
                                                 left="neumann", **common))
    try:
        return _run(left, right, accelerator, max_iterations, tolerance, over, windows)
    finally:
        left.finalize()
        right.finalize()


def _run(left, right, acc, max_iterations, tolerance, over, windows):
    left.initialize(0.0)
    right.initialize(0.0)
    lf, rf = left.fields(), right.fields()
    t_perm = _permutation(rf["temperature"].points, lf["temperature"].points)
    q_perm = _permutation(lf["heat_flux"].points, rf["heat_flux"].points)
    n = len(t_perm)
    dt = WINDOW / SUBSTEPS
    # Waveforms: sample 0 = window start, samples 1..10 = sub-step ends.
    T_used = np.repeat(right.get("temperature")[t_perm][None], SUBSTEPS + 1, axis=0)
    q_used = np.repeat(left.get("heat_flux")[q_perm][None], SUBSTEPS + 1, axis=0)
    sl = slice(1, None) if over == "window" else slice(SUBSTEPS, None)
    iterations, converged = [], []
    for w in range(windows):
        t_w = w * WINDOW
        snap = [left.state(), right.state()]
        snap = [{k: np.array(v, copy=True) for k, v in s.items()} for s in snap]
        if acc is not None:
            acc.new_window()
        for k in range(max_iterations):
            q_new = np.empty((SUBSTEPS, n))
            for s in range(SUBSTEPS):
                left.put("temperature", T_used[s + 1])
                left.advance(t_w + s * dt, dt)
                q_new[s] = left.get("heat_flux")[q_perm]
            sums = np.zeros((2, 2))
            r = q_new[sl.start - 1:] - q_used[sl]
            sums[1] = r.ravel() @ r.ravel(), q_new[sl.start - 1:].ravel() @ q_new[sl.start - 1:].ravel()
            q_used[1:] = q_new
            T_new = np.empty((SUBSTEPS, n))
            for s in range(SUBSTEPS):
                right.put("heat_flux", q_used[s + 1])
                right.advance(t_w + s * dt, dt)
                T_new[s] = right.get("temperature")[t_perm]
            r = T_new[sl.start - 1:] - T_used[sl]
            sums[0] = r.ravel() @ r.ravel(), T_new[sl.start - 1:].ravel() @ T_new[sl.start - 1:].ravel()
            ok = all(np.sqrt(r2) <= tolerance * np.sqrt(x2) for r2, x2 in sums)
            x, xt = T_used[1:].ravel().copy(), T_new.ravel()
            if ok or k == max_iterations - 1:
                if acc is not None:
                    acc.converged(x, xt)
                break
            T_used[1:] = (acc.update(x, xt) if acc is not None else xt).reshape(SUBSTEPS, n)
            left.restore(snap[0])
            right.restore(snap[1])
        iterations.append(k + 1)
        converged.append(bool(ok))
        q_used[0] = q_used[-1]
        T_used[:] = T_new[-1]
    err = 0.0
    for solver in (left, right):
        u = solver.results()["temperature"]
        ex = exact(solver.result_points(), windows * WINDOW)
        err = max(err, float(np.linalg.norm(u - ex) / np.linalg.norm(ex)))
    return Result(iterations, converged, err)
