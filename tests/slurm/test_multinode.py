"""Jobs whose solver groups span the nodes of a two-node local SLURM.

``scripts/local_slurm.py --nodes 2`` runs two ``slurmd`` on this host as nodes
n1 and n2 (a cluster of its own: directory ``/tmp/msorch-slurm-2n``, ports
16837-16839, so the single-node cluster of the other SLURM tests is untouched).
The job is ``jobs/multinode/partitioned_heat_two_nodes.yaml``, or
``jobs/partitioned_heat.yaml`` plus another ``resources`` block; it is
submitted with ``msorch submit`` and must finish COMPLETED with the node of
every rank as asked (each rank reports the ``SLURMD_NODENAME`` it runs under).
Reference: the same spec run with ``msorch run`` on one machine; the
temperatures must be bitwise equal (the same arithmetic; only the transport
between the nodes, TCP instead of shared memory, differs).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, run_msorch
from msorch import slurm

from .conftest import local_slurm_tool

pytestmark = pytest.mark.slurm

CLUSTER_DIR = os.environ.get("MSORCH_SLURM_2N_DIR", "/tmp/msorch-slurm-2n")
CLUSTER_PORT = 16837


@pytest.fixture(scope="module")
def two_nodes(local_slurm):
    """A running two-node local cluster (n1, n2); SLURM_CONF points at it for this module.

    ``local_slurm`` (the single-node session cluster) only lends its skip/fail
    checks for missing tools and non-root runs; its SLURM_CONF is restored after.
    """
    tool = local_slurm_tool
    lay = tool.Layout(Path(CLUSTER_DIR).resolve(), 2, CLUSTER_PORT)
    started_here = not tool.is_up(lay)
    if started_here:
        tool.start(lay.root, nodes=2, port=CLUSTER_PORT)
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(lay.conf)
    try:
        yield lay
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        if started_here:
            tool.stop(lay.root)


def _heat_spec(tmp_path, name: str, resources: str, left_ranks: int = 1):
    text = (ROOT / "jobs" / "partitioned_heat.yaml").read_text()
    assert "resources:" not in text
    if left_ranks != 1:
        head, sep, rest = text.partition("  left:")
        text = head + sep + rest.replace("ranks: 1", f"ranks: {left_ranks}", 1)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text + resources)
    return path


def _submit_and_compare(tmp_path, spec) -> tuple[dict, str]:
    """Submit ``spec``, require COMPLETED and results equal to ``msorch run``; return (placement, log)."""
    out = tmp_path / "slurm"
    r = run_msorch("submit", spec, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split()[-1]
    state = slurm.wait(job_id, timeout=300)
    log = "".join(p.read_text() for p in out.glob("slurm-*.out"))
    assert state == "COMPLETED", log
    ref = run_msorch("run", spec, "-o", tmp_path / "ref", cwd=tmp_path)   # outside any allocation
    assert ref.returncode == 0, ref.stderr
    for solver in ("left", "right"):
        with h5py.File(out / f"{solver}.h5", "r", swmr=True) as fa, \
                h5py.File(tmp_path / "ref" / f"{solver}.h5", "r", swmr=True) as fb:
            assert fa["temperature"].shape == fb["temperature"].shape == (11, fb["temperature"].shape[1])
            assert np.array_equal(fa["temperature"][:], fb["temperature"][:])
    with h5py.File(out / "results.h5") as f:
        assert f.attrs["finished"] == 1
        placement = json.loads(f.attrs["placement"])
    return placement, log


def test_two_slurmd_are_two_nodes(two_nodes):
    """sinfo lists n1 and n2 idle, and a two-task step runs one task under each slurmd."""
    states = local_slurm_tool.node_states(two_nodes)
    assert {n: s.rstrip("*~#") for n, s in states.items()} == {"n1": "idle", "n2": "idle"}
    r = subprocess.run(["srun", "-N2", "-n2", "printenv", "SLURMD_NODENAME"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["n1", "n2"]


def test_placement_by_spec_with_mpirun(two_nodes, tmp_path):
    """jobs/multinode/partitioned_heat_two_nodes.yaml, resources.placement {left: 1, right: 0}:
    the coordinator and right on n1, left on n2 (mpirun's seq mapper)."""
    spec = ROOT / "jobs" / "multinode" / "partitioned_heat_two_nodes.yaml"
    placement, log = _submit_and_compare(tmp_path, spec)
    assert placement == {"nodes": {"n1": ["coordinator", "right"], "n2": ["left"]},
                         "ranks": ["n1", "n2", "n1"]}
    assert "[msorch] placement: node n1: coordinator, right; node n2: left" in log, log
    assert (tmp_path / "slurm" / "msorch-hosts").read_text().split() == ["n1", "n2", "n1"]


def test_packed_groups_with_srun(two_nodes, tmp_path):
    """No placement, 4 ranks on 2 nodes (room 2 each): left's 2 ranks stay together on n2, right joins the coordinator."""
    spec = _heat_spec(tmp_path, "packed", "resources:\n  nodes: 2\n  time: \"5\"\n  launcher: srun\n",
                      left_ranks=2)
    placement, log = _submit_and_compare(tmp_path, spec)
    assert placement == {"nodes": {"n1": ["coordinator", "right"], "n2": ["left"]},
                         "ranks": ["n1", "n2", "n2", "n1"]}
    assert (tmp_path / "slurm" / "msorch-hosts").read_text().split() == ["n1", "n2", "n2", "n1"]
    assert "[msorch] placement: node n1: coordinator, right; node n2: left" in log, log


def test_three_nodes_start_and_stop_every_daemon(two_nodes):
    """start --nodes 3 brings n1..n3 up idle; stop ends all five daemons it started."""
    tool = local_slurm_tool
    root = Path(CLUSTER_DIR + "-3n")   # short: munge and slurmd put unix sockets under it
    lay = tool.start(root, nodes=3, port=CLUSTER_PORT + 20)
    try:
        assert lay.node_names == ["n1", "n2", "n3"]
        pids = [tool._read_pid(lay, d) for d in lay.daemon_keys]
        assert len(pids) == 5 and all(pids), pids
        assert all(s.rstrip("*~#") == "idle" for s in tool.node_states(lay).values())
        assert len(tool.node_states(lay)) == 3
    finally:
        tool.stop(root)
    assert not any(tool._alive(p) for p in pids)
