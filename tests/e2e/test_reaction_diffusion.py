"""MUSCLE3's reaction–diffusion example run through ``msorch run``."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "reaction_diffusion.yaml"

# The settings of jobs/reaction_diffusion.yaml (MUSCLE3's yMMSL settings, 100 cells).
X_MAX, DX, D, MACRO_DT, MACRO_T_MAX = 1.0, 0.01, 0.0405, 2.469136e-6, 1.234568e-4
K, MICRO_DT, MICRO_T_MAX = -40500.0, 2.469136e-8, 2.469136e-6


def reference() -> tuple[np.ndarray, np.ndarray, int]:
    """The coupled model as one sequential numpy program, written as MUSCLE3's example runs it.

    Macro loop ``while t + dt <= t_max`` (t summed step by step); each step
    sends U to the micro model, which runs ``while t + dt < t_start + t_max``
    from the macro time it received, and diffuses what comes back.
    Returns (initial U, final U, number of macro steps).
    """
    U = np.zeros(int(round(X_MAX / DX))) + 1e-20
    U[[25, 50, 75]] = 2.0
    U0 = U.copy()
    t, steps = 0.0, 0
    while t + MACRO_DT <= MACRO_T_MAX:
        U = react(U, t)
        lap = (U[:-2] + U[2:] - 2.0 * U[1:-1]) / DX ** 2
        dU = np.zeros_like(U)
        dU[1:-1] = D * lap * MACRO_DT
        dU[0], dU[-1] = dU[1], dU[-2]
        U = U + dU
        t += MACRO_DT
        steps += 1
    return U0, U, steps


def react(U: np.ndarray, t_start: float) -> np.ndarray:
    U = U.copy()
    t = t_start
    while t + MICRO_DT < t_start + MICRO_T_MAX:
        U += K * U * MICRO_DT
        t += MICRO_DT
    return U


def test_final_state_matches_sequential_reference(msorch, tmp_path):
    """msorch's coupled run equals the sequential program to 1e-12 relative.

    Reference: :func:`reference`, the same model in one plain numpy loop with
    MUSCLE3's loop conditions. Both do the same floating-point operations in the
    same order, so they agree to rounding; 1e-12 relative leaves room only for
    rounding (the final values span 1e-2 .. 1e-22 and every cell is compared relatively).
    The micro run takes 99 or 100 steps depending on its start time; one step
    more or less in any window scales U by 1 + k*dt = 0.999 (1e-3 relative),
    and a one-window lag of the reaction's data (parallel staggering, or no
    initial exchange) changes U by O(1), so such mistakes fail the test.
    """
    result = msorch("run", JOB, "-o", tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    U0, U_ref, steps = reference()
    assert steps == 49
    with h5py.File(tmp_path / "results.h5") as f:
        assert f["timing/diffusion"].shape == (steps,)
        time = f["diffusion/time"][:]
        U = f["diffusion/state_out"][:]
    np.testing.assert_allclose(time, [0.0, steps * MACRO_DT], rtol=1e-12)
    np.testing.assert_array_equal(U[0], U0)
    np.testing.assert_allclose(U[-1], U_ref, rtol=1e-12, atol=0)


def test_settings_are_checked_before_launch(msorch, tmp_path):
    """A peak outside the grid and a micro step longer than the micro run are
    reported by ``msorch validate`` with their YAML paths, before any rank starts."""
    bad = JOB.read_text().replace("peaks: [25, 50, 75]", "peaks: [25, 50, 100]").replace(
        "dt: 2.469136e-8", "dt: 1.0e-5")
    spec = tmp_path / "bad.yaml"
    spec.write_text(bad)
    result = msorch("validate", spec, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "solvers.diffusion.params.peaks" in result.stderr and "[100]" in result.stderr
    assert "solvers.reaction.params.dt" in result.stderr
