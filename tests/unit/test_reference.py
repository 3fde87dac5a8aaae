"""The settings reference (``msorch solvers``, docs/spec-reference.md) is generated from the code."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msorch import reference, registry
from msorch.solver import FieldInfo, FieldSpec, Solver, field_info_mismatches, param

ROOT = Path(__file__).resolve().parents[2]
MSORCH = [sys.executable, "-m", "msorch"]


def test_committed_reference_is_current():
    """docs/spec-reference.md equals what the code generates now (spec sections + every registered solver)."""
    committed = (ROOT / "docs" / "spec-reference.md").read_text()
    assert committed == reference.markdown(), (
        "docs/spec-reference.md is out of date (a spec section or a solver's settings/fields changed). "
        "Regenerate it from the repository root with:\n"
        f"    .venv/bin/{reference.REGENERATE}\n"
        "(run scripts/bootstrap.sh first if you added a solver entry point in setup.cfg)")


def test_reference_covers_every_solver_and_section():
    text = reference.markdown()
    for kind in registry.names("solver"):
        assert f"### `{kind}`" in text
        cls = registry.load("solver", kind)
        for f in dataclasses.fields(cls.Params):
            assert f"| `{f.metadata.get('key', f.name)}` |" in text, (kind, f.name)
    for section in ("time", "solvers.<name>", "solvers.<name>.output", "couplings[]", "scheme",
                    "scheme.convergence[]", "scheme.acceleration", "checkpoint", "resources"):
        assert f"### `{section}`" in text


def test_cli_lists_kinds_and_prints_one(tmp_path):
    """`msorch solvers` lists kinds; `msorch solvers KIND` prints settings with units and allowed values."""
    out = subprocess.run([*MSORCH, "solvers"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    for kind in registry.names("solver"):
        assert kind in out
    out = subprocess.run([*MSORCH, "solvers", "fem.heat"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "conductivity: float = 1.0  [W/(m K)]" in out
    assert "allowed: exact, dirichlet, neumann, insulated" in out
    out = subprocess.run([*MSORCH, "solvers", "test.null"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "out (output): [1], 1 component(s), intensive" in out
    bad = subprocess.run([*MSORCH, "solvers", "fem.haet"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "no solver named 'fem.haet'" in bad.stderr


def test_users_own_class(tmp_path):
    """A user's ``package.module:Class`` next to where they work is described the same way."""
    (tmp_path / "mysolver.py").write_text('''
from dataclasses import dataclass
from msorch.solver import FieldInfo, Solver, param

@dataclass(frozen=True)
class P:
    gain: float = param(2.0, "amplification", units="1/s")

class Amp(Solver):
    """Amplifies its input."""
    Params = P
    outputs = ("y",)
    inputs = ("x",)
    field_info = {"y": FieldInfo("W", "amplified", extensive=True)}
''')
    out = subprocess.run([*MSORCH, "solvers", "mysolver:Amp"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "gain: float = 2.0  [1/s]" in out
    assert "y (output): [W], 1 component(s), extensive — amplified" in out
    assert "x (input): units at the handshake" in out


@dataclasses.dataclass(frozen=True)
class _DimParams:
    dim: int = param(2, "dimension")


class _Declared(Solver):
    Params = _DimParams
    outputs = ("v",)
    field_info = {"v": FieldInfo("m/s^{dim}", components="{dim}*{dim}")}

    def __init__(self, units, components, extensive):
        super().__init__(None, _DimParams())
        self._spec = FieldSpec("float64", components, units, np.zeros((0, 2)), extensive)

    def fields(self):
        return {"v": self._spec}


def test_declared_field_info_is_checked_against_fields():
    """Placeholders are filled from the settings; a declaration that drifts from fields() is named."""
    assert _Declared.describe_fields(_DimParams(3))["v"] == FieldInfo("m/s^3", components=9)
    ok = _Declared("m/s^2", 4, False)
    assert field_info_mismatches(ok, ok.fields()) == []
    bad = _Declared("m/s", 4, True)
    problems = field_info_mismatches(bad, bad.fields())
    assert len(problems) == 2 and "declares units 'm/s^2' but fields() gives 'm/s'" in problems[0]
