"""A real single-node SLURM for the tests in this directory.

The session fixture :func:`local_slurm` reuses a cluster that is already up
(``make test`` starts one with ``scripts/local_slurm.py start``) or starts one
and stops it at the end of the session.  Either way it exports ``SLURM_CONF``
so that ``sbatch``/``squeue``/``scontrol`` in the tests, and in the jobs they
submit, talk to that private cluster and never to a site-wide one.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_local_slurm():
    spec = importlib.util.spec_from_file_location("local_slurm", ROOT / "scripts" / "local_slurm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


local_slurm_tool = _load_local_slurm()


@pytest.fixture(scope="session")
def local_slurm():
    """The running local cluster's :class:`Layout` (``.conf``, ``.log_file(daemon)``)."""
    tool = local_slurm_tool
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch")
               if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    reason = (f"SLURM/munge not installed ({', '.join(missing)}): run scripts/bootstrap.sh" if missing
              else "the local SLURM runs slurmd as root" if os.geteuid() != 0 else None)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI bootstraps everything: a skip there would hide a broken setup
        pytest.skip(reason)
    lay = tool.Layout(tool.DEFAULT_DIR.resolve())
    started_here = not tool.is_up(lay)
    if started_here:
        tool.start(lay.root)
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
