"""jobs/lj_fluid.yaml end to end: msorch run on 1 coordinator + 2 md.lj ranks."""
from __future__ import annotations

import h5py
import numpy as np


def test_lj_fluid_job_writes_equilibrated_observables(msorch, tmp_path):
    """The example job equilibrates 500 LJ particles at the NIST SRSW state point
    T* = 0.85, rho* = 0.776 (rc = 3, tail corrections) for 10 tau and writes its
    observables every tau.  Asserted: every output field is in the results file
    with the documented shape (4 bins; stress 9 components); particle number is
    conserved by the density profile at every output; and the mean of the last 5
    outputs (5 tau) of U/N and T are within 0.05 of NIST's U/N = -5.5121 and of
    the target 0.85 x 500/499 (single samples of N = 500 fluctuate by ~0.03 in
    both, so a 5-sample mean is within ~0.015 at 1 sigma; 0.05 is > 3 sigma and
    still catches an unmelted lattice, U/N ~ -6.5, or a wrong thermostat)."""
    out = tmp_path / "out"
    proc = msorch("run", "jobs/lj_fluid.yaml", "-o", out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    with h5py.File(out / "results.h5") as f:
        g = f["fluid"]
        assert np.allclose(g["time"][:], np.arange(11.0))  # every 2 windows of 0.5 tau
        assert g["points"].shape == (4, 3)
        # format 2: whole-box values once per output in the point set box/, profiles per bin
        assert g.file.attrs["format_version"] == 2
        assert g["box/points"].shape == (1, 3) and np.allclose(g["box/points"][0], g["points"][:, :].mean(axis=0))
        assert g["box/time"].shape == g["time"].shape
        assert g["box/stress"].shape == (11, 1, 9) and g["stress_profile"].shape == (11, 4, 9)
        assert "temperature" not in g
        assert g["velocity_profile"].shape == (11, 4, 3)
        box = 2 * g["points"][0, 0]
        vol_bin = box ** 3 / 4
        assert np.allclose(g["density_profile"][:].sum(axis=1) * vol_bin, 500, rtol=1e-12)
        u = g["box/potential_energy"][-5:, 0] / 500
        t = g["box/temperature"][-5:, 0]
    assert abs(u.mean() + 5.5121) < 0.05
    assert abs(t.mean() - 0.85 * 500 / 499) < 0.05
    # ParaView: the box/ point set is a temporal collection of its own in the sidecar
    xml = (out / "fluid.xmf").read_text()
    assert 'Name="fluid"' in xml and 'Name="fluid.box"' in xml and "fluid.h5:/box/temperature" in xml
