"""The README's user-defined solver (solvers/examples/decay.py) in jobs/decay_pair.yaml.

Reference: implicit Euler on the monolithic system d/dt [u, v] = -K [u, v] with
K = [[2, -1], [-1, 3]], dt = 0.01.  Converged implicit coupling with both
solvers stepping at the same times reads exact samples of the other's
waveform, so it must reproduce that recursion to the coupling tolerance
(1e-12 relative per window; 1e-10 allows for accumulation over 100 steps).
"""
import h5py
import numpy as np

from conftest import ROOT


def test_decay_pair_matches_monolithic_implicit_euler(msorch, tmp_path):
    r = msorch("run", ROOT / "jobs" / "decay_pair.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    K = np.array([[2.0, -1.0], [-1.0, 3.0]])
    step = np.linalg.inv(np.eye(2) + 0.01 * K)
    x = [np.array([1.0, 0.0])]
    for _ in range(100):
        x.append(step @ x[-1])
    expected = np.array(x[::10])
    with h5py.File(tmp_path / "results.h5") as f:
        got = np.column_stack([f["a/u"][:, 0], f["b/u"][:, 0]])
        assert f["coupling/converged"][:].all()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_mapping_must_suit_the_quantity(msorch, tmp_path):
    spec = (ROOT / "jobs" / "decay_pair.yaml").read_text().replace("{from: a.u, to: b.g}",
                                                                  "{from: a.u, to: b.g, mapping: linear}")
    (tmp_path / "s.yaml").write_text(spec)
    r = msorch("run", tmp_path / "s.yaml", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr   # linear is fine for an intensive scalar
    spec = spec.replace("{from: a.u, to: b.g, mapping: linear}", "{from: a.u, to: b.g, mapping: conservative}")
    (tmp_path / "s.yaml").write_text(spec)
    r = msorch("run", tmp_path / "s.yaml", "-o", tmp_path / "out2")
    assert r.returncode == 1
    assert "coupling a.u -> b.g" in r.stderr and "intensive" in r.stderr


def test_unit_mismatch_is_caught_at_the_handshake(msorch, tmp_path):
    spec = """name: units
time: {start: 0.0, end: 0.2, window: 0.1}
solvers:
  a: {kind: test.null}
  b: {kind: "faulty:Celsius", ranks: 2}
couplings:
  - {from: a.out, to: b.in}
"""
    (tmp_path / "s.yaml").write_text(spec)
    r = msorch("run", tmp_path / "s.yaml", "-o", tmp_path / "out")
    assert r.returncode == 1
    assert "coupling a.out -> b.in: units mismatch: a.out has '1', b.in has 'degC'" in r.stderr, r.stderr
