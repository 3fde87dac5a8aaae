"""jobs/epi_network.yaml through ``msorch run`` on 2 ranks, continued from a checkpoint on 1 rank."""
import h5py
import numpy as np
import yaml

from conftest import ROOT

FIELDS = ("S", "E", "I", "R", "incidence", "exported", "growth_rate", "attack_rate")


def test_epi_network_job_runs_and_restarts_on_one_rank(msorch, tmp_path):
    """jobs/epi_network.yaml (2 ranks) with a checkpoint every 20 windows, then continued from
    its first checkpoint (day 20) on 1 rank (restore_all re-slices the agents).  References:
    conservation (S+E+I+R = 10,000 per region at every output), exported integer-valued, region
    south (no contacts with north, no visitors) untouched; and the uninterrupted 2-rank run,
    which the 1-rank continuation must reproduce bitwise (counter-based random numbers)."""
    spec = yaml.safe_load((ROOT / "jobs" / "epi_network.yaml").read_text())
    spec["checkpoint"] = {"every_windows": 20, "keep": 3}
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    r = msorch("run", two, "-o", out)
    assert r.returncode == 0, r.stderr
    with h5py.File(out / "town.h5") as f:
        ref = {k: f[k][:] for k in FIELDS}
    total = ref["S"] + ref["E"] + ref["I"] + ref["R"]
    assert np.all(total == 10000)
    assert ref["R"][-1, 0] > 2000 and np.all(ref["R"][:, 1] == 0)
    assert np.array_equal(ref["exported"], np.round(ref["exported"])) and ref["exported"].sum() > 0
    # results are written every window (4 steps): the drop of S bounds the last step's incidence
    assert np.all(ref["incidence"][1:] <= -np.diff(ref["S"], axis=0))
    first = sorted((out / "checkpoints").glob("checkpoint_*.h5"))[0]
    assert int(first.stem.split("_")[1]) == 20          # windows completed at the checkpoint
    spec["solvers"]["town"]["ranks"] = 1
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = msorch("run", one, "-o", out, "--restart", first)
    assert r.returncode == 0, r.stderr
    with h5py.File(out / "town.h5") as f:
        for k in FIELDS:
            assert np.array_equal(f[k][:], ref[k]), k
