"""resources.placement: validation, the rank-to-node plan, the hostfile and the launch lines.

Reference: the packing rule of :mod:`msorch.placement` worked by hand for each
case (coordinator on node 0; room per node = ceil(world ranks / nodes); each
group on the first node with room for all of it, else straddling in order).
"""
from __future__ import annotations

import json

import pytest

from msorch import placement
from msorch.launch import launch_command
from msorch.layout import Layout
from msorch.spec import SpecError, parse_spec

SPEC = """time: {start: 0, end: 1, window: 0.5}
solvers:
  left: {kind: test.null, ranks: 2}
  right: {kind: test.null}
couplings:
  - {from: left.out, to: right.in}
  - {from: right.out, to: left.in}
"""


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    return {p.path: f"{p.message} | {p.fix}" for p in err.value.problems}


def test_placement_is_read_and_defaults_to_packing():
    job = parse_spec(SPEC + "resources: {nodes: 2, placement: {left: 1, right: 0}}\n")
    assert job.resources.placement == {"left": 1, "right": 0}
    assert parse_spec(SPEC).resources.placement is None


@pytest.mark.parametrize("placement, path, words", [
    ("{left: 1, rigth: 0}", "resources.placement.rigth", ["not a solver", "did you mean 'right'"]),
    ("{left: 2, right: 0}", "resources.placement.left", ["node index 0..1", "got 2", "raise resources.nodes to 3"]),
    ("{left: 1}", "resources.placement", ["no node for 'right'", "right: 0"]),
    ("{left: one, right: 0}", "resources.placement.left", ["integer"]),
    ("[0, 1]", "resources.placement", ["mapping"]),
])
def test_bad_placement_names_the_path_and_a_fix(placement, path, words):
    problems = _problems(SPEC + f"resources: {{nodes: 2, placement: {placement}}}\n")
    assert path in problems, problems
    for word in words:
        assert word in problems[path], problems[path]


def _layout(*sizes: int) -> Layout:
    groups, first = {}, 1
    for i, n in enumerate(sizes):
        groups[f"g{i}"] = tuple(range(first, first + n))
        first += n
    return Layout(groups)


@pytest.mark.parametrize("sizes, nodes, expected", [
    ((1, 1), 2, [0, 0, 1]),                 # 3 ranks, room 2: coordinator + g0 | g1
    ((2, 1), 2, [0, 1, 1, 0]),              # g0 does not fit beside the coordinator: n1; g1 back to n0
    ((2, 2, 2), 2, [0, 0, 0, 1, 1, 1, 1]),  # room 4: g0 beside the coordinator, g1 and g2 on n1
    ((5,), 2, [0, 0, 0, 1, 1, 1]),          # larger than any node's room (3): straddles, n0 filled first
    ((1, 1), 1, [0, 0, 0]),
])
def test_packing(sizes, nodes, expected):
    assert placement.plan(_layout(*sizes), nodes) == expected


def test_explicit_placement_and_hostfile(tmp_path):
    lay = _layout(2, 1)
    node_of = placement.plan(lay, 2, {"g0": 1, "g1": 0})
    assert node_of == [0, 1, 1, 0]
    hf = placement.write_hostfile(tmp_path / "hosts", node_of, ["n1", "n2"])
    assert hf.read_text() == "n1\nn2\nn2\nn1\n"
    with pytest.raises(ValueError, match="raise resources.nodes"):
        placement.write_hostfile(tmp_path / "h", [0, 2], ["n1", "n2"])


def test_describe_and_record_from_the_reported_nodes():
    lay = _layout(2, 1)
    nodes = ["n1", "n2", "n1", "n1"]   # g0 straddles: group rank 0 on n2, 1 on n1
    assert placement.describe(lay, nodes) == "node n1: coordinator, g0[1], g1; node n2: g0[0]"
    rec = json.loads(placement.record(lay, ["n1", "n2", "n2", "n1"]))
    assert rec == {"nodes": {"n1": ["coordinator", "g1"], "n2": ["g0"]}, "ranks": ["n1", "n2", "n2", "n1"]}


def test_launch_lines_follow_the_hostfile():
    srun = launch_command(4, "/s.yaml", "/out", launcher="srun", hostfile="/out/msorch-hosts")
    assert srun[:3] == ["srun", "--mpi=pmix", "--ntasks"]
    assert "--distribution=arbitrary" in srun and "--nodelist=/out/msorch-hosts" in srun
    assert "--overcommit" in srun
    mpirun = launch_command(4, "/s.yaml", "/out", launcher="mpirun", hostfile="/out/msorch-hosts")
    i = mpirun.index("--mca")
    assert mpirun[i:i + 5] == ["--mca", "rmaps", "seq", "--hostfile", "/out/msorch-hosts"]
    assert "--oversubscribe" in mpirun
    # Without a hostfile (one node, or outside SLURM) the lines are as before.
    assert "--distribution=arbitrary" not in launch_command(4, "/s.yaml", "/out", launcher="srun")
    assert "--hostfile" not in launch_command(4, "/s.yaml", "/out")


def test_no_hostfile_outside_a_multinode_allocation(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    monkeypatch.delenv("SLURM_NODELIST", raising=False)
    job = parse_spec(SPEC)
    assert placement.hostfile_for_allocation(job, Layout.from_job(job), tmp_path) is None
    assert not (tmp_path / placement.HOSTFILE).exists()


def test_validate_shows_the_plan(tmp_path):
    """``msorch validate`` prints which node each group gets (node indices; names come from the allocation)."""
    import subprocess
    import sys
    spec = tmp_path / "two.yaml"
    spec.write_text(SPEC + "resources: {nodes: 2}\n")
    r = subprocess.run([sys.executable, "-m", "msorch", "validate", str(spec)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "placement on 2 nodes: node 0: coordinator, right; node 1: left" in r.stdout, r.stdout
