"""Spec validation of the implicit-coupling options (scheme.acceleration, convergence ``over``).

Every broken setting must be reported before launch with its YAML path, what
was expected and a fix (msorch/spec.py's contract); valid settings must
reach the accelerator as constructor keywords, restricted to the method's
``SETTINGS``.  The base spec is ``jobs/partitioned_heat.yaml``.
"""
from __future__ import annotations

import pytest
import yaml
from mpi4py import MPI

from conftest import ROOT
from couplings.acceleration import IQNILS, IQNIMVJ, Aitken, ConstantRelaxation
from msorch.spec import SpecError, parse_spec

BASE = yaml.safe_load((ROOT / "jobs" / "partitioned_heat.yaml").read_text())


def spec_with(acceleration: dict | None = None, over: str | None = None) -> str:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    if acceleration is not None:
        data["scheme"]["acceleration"] = {"fields": ["left.temperature"], **acceleration}
    if over is not None:
        data["scheme"]["convergence"][0]["over"] = over
    return yaml.safe_dump(data, sort_keys=False)


def problems(text: str):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return info.value.problems


BAD = [
    ({"kind": "aitken", "filter": "qr2"}, None, "scheme.acceleration.filter",
     "not used by kind 'aitken'", "remove it"),
    ({"kind": "iqn-ils", "restart": "ls"}, None, "scheme.acceleration.restart",
     "not used by kind 'iqn-ils'", "iqn-ils uses:"),
    ({"kind": "iqn-ils", "filter": "qr3"}, None, "scheme.acceleration.filter", "qr1", "qr2"),
    ({"kind": "iqn-ils", "filter_limit": 0.0}, None, "scheme.acceleration.filter_limit", "> 0", ""),
    ({"kind": "iqn-ils", "update_at_convergence": "yes please"}, None,
     "scheme.acceleration.update_at_convergence", "true or false", ""),
    ({"kind": "iqn-ils", "max_used_iterations": 0}, None,
     "scheme.acceleration.max_used_iterations", ">= 1", ""),
    ({"kind": "aitken", "start": "last"}, None, "scheme.acceleration.start", "previous", ""),
    ({"kind": "iqn-imvj", "chunk_size": 4}, None, "scheme.acceleration.chunk_size",
     "only used with restart: zero or ls or svd", "set restart: svd"),
    ({"kind": "iqn-imvj", "restart": "zero", "restart_reuse": 2}, None,
     "scheme.acceleration.restart_reuse", "only used with restart: ls", ""),
    ({"kind": "iqn-imvj", "restart": "rs-svd"}, None, "scheme.acceleration.restart", "zero", ""),
    ({"kind": "iqn-imvj", "restart": "ls", "truncation": 1e-3}, None,
     "scheme.acceleration.truncation", "only used with restart: svd", ""),
    ({"kind": "iqn-imvj", "reuse": -1}, None, "scheme.acceleration.reuse", ">= 0", ""),
    (None, "middle", "scheme.convergence[0].over", "window", "end"),
]


@pytest.mark.parametrize("acc, over, path, what, fix", BAD, ids=[b[2].split(".")[-1] + str(i)
                                                                  for i, b in enumerate(BAD)])
def test_bad_settings_name_path_and_fix(acc, over, path, what, fix):
    found = problems(spec_with(acc, over))
    at = [p for p in found if p.path == path]
    assert at, found
    assert any(what in p.message + p.fix and fix in p.message + p.fix for p in at), at
    assert len(found) == 1, found


def test_valid_settings_reach_the_accelerator_restricted_to_its_settings():
    """Each method gets its own settings (defaults filled in), and nothing else."""
    job = parse_spec(spec_with({"kind": "iqn-imvj", "restart": "ls", "chunk_size": 4,
                                "restart_reuse": 3, "filter_limit": 1e-3}, over="end"))
    assert job.scheme.convergence[0].over == "end" and job.scheme.convergence[1].over == "window"
    acc = job.scheme.acceleration
    options = acc.options(IQNIMVJ.SETTINGS)
    assert options == {"initial_relaxation": 0.5, "restart": "ls", "chunk_size": 4,
                       "restart_reuse": 3, "filter_limit": 1e-3}
    made = IQNIMVJ(MPI.COMM_SELF, blocks=[90], samples=[10], **options)
    assert (made.restart, made.chunk_size, made.restart_reuse, made.filter_limit) == ("ls", 4, 3, 1e-3)
    for kind, cls in (("constant", ConstantRelaxation), ("aitken", Aitken), ("iqn-ils", IQNILS)):
        acc = parse_spec(spec_with({"kind": kind})).scheme.acceleration
        cls(MPI.COMM_SELF, blocks=[90], samples=[10], **acc.options(cls.SETTINGS))
    acc = parse_spec(spec_with({"kind": "iqn-ils"})).scheme.acceleration
    assert acc.options(IQNILS.SETTINGS) == {"initial_relaxation": 0.5, "reuse": 8}


def test_validate_command_reports_a_misplaced_setting(msorch, tmp_path):
    """Through the CLI, from outside the repository: exit code 2 and the YAML path."""
    path = tmp_path / "bad.yaml"
    path.write_text(spec_with({"kind": "constant", "restart": "ls"}))
    r = msorch("validate", str(path.resolve()), cwd=tmp_path)
    assert r.returncode != 0
    assert "scheme.acceleration.restart" in r.stderr + r.stdout
