"""msorch.analysis on signals whose decomposition is known exactly."""
import h5py
import numpy as np
import pytest

from msorch.analysis import AnalysisError, Options, analyze, bopdmd, dmd, mrdmd, pod
from msorch.analysis.methods import check_rank


def by_imag(z):
    return np.asarray(z)[np.argsort(np.imag(z))]


def two_mode_signal():
    """PyDMD's standard test (Demo 1 of its tutorials; Kutz et al., *Dynamic Mode Decomposition*, SIAM 2016,
    ch. 1): two spatial modes with continuous-time eigenvalues 2.3i and 2.8i, x in [-5, 5] at 65
    points, t in [0, 4 pi] at 129 points."""
    x = np.linspace(-5, 5, 65)
    t = np.linspace(0, 4 * np.pi, 129)
    xg, tg = np.meshgrid(x, t, indexing="ij")
    X = 1 / np.cosh(xg + 3) * np.exp(2.3j * tg) + 2 / np.cosh(xg) * np.tanh(xg) * np.exp(2.8j * tg)
    return x, t, X


def test_dmd_two_mode_eigenvalues_to_1e_8():
    """Reference: the exact eigenvalues 2.3i and 2.8i of the constructed signal; exact DMD on noise-free
    data of rank 2 recovers them to round-off (1e-8 asked)."""
    x, t, X = two_mode_signal()
    r = dmd(X, t[1] - t[0], rank=2)
    lam = by_imag(r.lam)
    assert np.max(np.abs(lam - np.array([2.3j, 2.8j]))) < 1e-8
    assert np.allclose(np.abs(r.mu), 1.0, atol=1e-12)        # neutral modes: |mu| = 1, lambda = ln(mu)/dt
    assert np.allclose(np.sort(r.frequency), [2.3 / (2 * np.pi), 2.8 / (2 * np.pi)], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bopdmd_two_mode_with_noise_to_1e_2(seed):
    """Reference: same eigenvalues 2.3i, 2.8i; with Gaussian noise sigma = 0.1 added to the snapshots,
    optimized DMD (BOP-DMD without bagging; Askham & Kutz 2018, Sashidhar & Kutz 2022) recovers them
    to 1e-2 as the issue asks, where exact DMD is biased (its growth rates go negative)."""
    x, t, X = two_mode_signal()
    Xn = X + 0.1 * np.random.default_rng(seed).standard_normal(X.shape)
    lam = by_imag(bopdmd(Xn, t, rank=2).lam)
    assert np.max(np.abs(lam - np.array([2.3j, 2.8j]))) < 1e-2


def test_bopdmd_bagging_reports_a_spread():
    """BOP-DMD with bags: eigenvalues still within 1e-2, and a finite spread per eigenvalue."""
    x, t, X = two_mode_signal()
    Xn = X + 0.1 * np.random.default_rng(3).standard_normal(X.shape)
    np.random.seed(3)                       # PyDMD draws its bags from numpy's global generator
    r = bopdmd(Xn, t, rank=2, trials=10)
    assert np.max(np.abs(by_imag(r.lam) - np.array([2.3j, 2.8j]))) < 1e-2
    assert np.all(np.isfinite(r.std)) and np.all(np.abs(r.std) < 0.05)


def slow_fast_step():
    """A slow wave (period 50, wavenumber 1), a fast wave (period 2, wavenumber 4) and a step in x,
    on a periodic x in [0, 2 pi) at 128 points, t in [0, 200] every 0.1."""
    x = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    t = np.arange(2001) * 0.1
    xg, tg = np.meshgrid(x, t, indexing="ij")
    slow = np.sin(xg - 2 * np.pi / 50 * tg)
    fast = 0.5 * np.sin(4 * xg - 2 * np.pi / 2 * tg)
    step = (xg > np.pi).astype(float)
    return x, t, slow, fast, step


def test_mrdmd_separates_slow_and_fast_waves():
    """Reference: the constructed components. Multiresolution DMD (Kutz, Fu & Brunton 2016) finds two
    oscillatory scales with periods 50 and 2 (+-2 %), and each scale's field matches its wave to 5 %
    relative (L2) error; the step is the background."""
    x, t, slow, fast, step = slow_fast_step()
    m = mrdmd(slow + fast + step, t[1] - t[0])
    assert len(m.scales) == 2
    assert abs(m.scales[0].period / 50 - 1) < 0.02
    assert abs(m.scales[1].period / 2 - 1) < 0.02

    def rel(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel(m.fields[0].T, slow) < 0.05
    assert rel(m.fields[1].T, fast) < 0.05
    assert rel(m.background.T, step) < 0.05
    # the travelling waves' phase speeds (omega/k) from plain DMD of the same data: 2pi/50 and pi/4
    r = dmd(slow + fast + step, 0.1, rank=5, x=x)
    osc = r.frequency > 0
    assert np.allclose(np.sort(r.phase_speed[osc]), [2 * np.pi / 50, np.pi / 4], rtol=1e-6)


def test_pod_energy_of_a_rank_one_field():
    """A separable field u(x) a(t) is one POD mode holding all the energy."""
    x = np.linspace(0, 1, 40)
    t = np.linspace(0, 1, 30)
    p = pod(np.outer(np.sin(np.pi * x), np.exp(-t)))
    assert p.energy[0] > 1 - 1e-12
    assert abs(p.energy.sum() - 1) < 1e-12


def test_too_few_snapshots_for_the_rank():
    with pytest.raises(AnalysisError, match="rank 10 needs at least 11 snapshots"):
        check_rank(10, 50, 6, "ring.speed")
    with pytest.raises(AnalysisError, match="at least 3"):
        dmd(np.ones((5, 2)), 1.0, rank=1)


def write_results(outdir, fields, time):
    """A minimal results layout as msorch.output writes it (one solver 'a', linked file)."""
    outdir.mkdir(exist_ok=True)
    with h5py.File(outdir / "a.h5", "w") as f:
        f["time"] = time
        first = next(iter(fields.values()))
        f["points"] = np.linspace(0, 1, first.shape[1])[:, None]
        for name, v in fields.items():
            f[name] = v
    with h5py.File(outdir / "results.h5", "w") as f:
        f["a"] = h5py.ExternalLink("a.h5", "/")
        f.create_group("coupling")


def test_analyze_writes_file_and_refuses_bad_input(tmp_path):
    """End to end on a hand-made results file: analysis.h5 holds the DMD eigenvalue of a decaying
    wave (exact: -0.5 +- 2i); a missing field, a too-large rank and a missing results file are
    errors that leave no analysis.h5 (nor a temporary file) behind."""
    t = np.arange(60) * 0.05
    x = np.linspace(0, 1, 20)
    u = np.real(np.outer(np.sin(np.pi * x) + 1j * np.sin(2 * np.pi * x), np.exp((-0.5 + 2j) * t))).T
    write_results(tmp_path / "run", {"u": u}, t)
    lines = []
    analyze(tmp_path / "run", Options(methods=("pod", "dmd"), rank=2, plots=False), echo=lines.append)
    with h5py.File(tmp_path / "run" / "analysis.h5") as f:
        lam = f["a/u/dmd/lambda"][:]
        assert np.allclose(by_imag(lam), [-0.5 - 2j, -0.5 + 2j], atol=1e-8)
        assert "ln(mu)/dt" in f.attrs["conventions"]
    assert any("oscillation" in line for line in lines)
    (tmp_path / "run" / "analysis.h5").unlink()
    with pytest.raises(AnalysisError, match="no field 'v'.*use one of u"):
        analyze(tmp_path / "run", Options(fields=("v",), plots=False), echo=lines.append)
    with pytest.raises(AnalysisError, match="rank 70 needs"):
        analyze(tmp_path / "run", Options(fields=("u",), methods=("dmd",), rank=70, plots=False), echo=lines.append)
    lines.clear()      # unasked-for fields that cannot be analysed are skipped, with the reason
    analyze(tmp_path / "run", Options(methods=("dmd",), rank=2, delays=1, plots=False), echo=lines.append)
    assert not any("skipped" in line for line in lines)
    with pytest.raises(AnalysisError, match="no field of .* could be analysed"):
        analyze(tmp_path / "run", Options(methods=("dmd",), rank=70, plots=False), echo=lines.append)
    assert any("u: skipped: a.u: rank 70 needs" in line for line in lines)
    (tmp_path / "run" / "analysis.h5").unlink()
    with pytest.raises(AnalysisError, match="no results.h5"):
        analyze(tmp_path, Options(plots=False), echo=lines.append)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["a.h5", "results.h5"]
