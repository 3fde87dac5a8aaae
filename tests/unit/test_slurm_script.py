"""``msorch.slurm.batch_script``: the sbatch script text, checked by reading it back.

The directives are parsed the way sbatch reads them (``#SBATCH`` lines before the
first command) and the body is run by a real ``bash`` with a stand-in ``msorch``
that prints its arguments, so quoting and the restart branch are tested by
execution rather than by string comparison.  ``job`` is a duck-typed stand-in
with the fields of ``msorch.spec.JobSpec`` that the module reads.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field

import pytest

from msorch import slurm


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    tasks: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()
    signal_before: int = 60
    launcher: str = "mpirun"


@dataclass(frozen=True)
class Job:
    name: str = "heat"
    total_ranks: int = 3
    resources: Resources = field(default_factory=Resources)


def directives(text: str) -> dict[str, str]:
    """``{option: value}`` of the ``#SBATCH`` lines, values unquoted like sbatch does."""
    out = {}
    for line in text.splitlines()[1:]:
        if not line.startswith("#SBATCH "):
            break
        (word,) = shlex.split(line[len("#SBATCH "):])
        key, _, value = word.partition("=")
        out[key] = value
    return out


def run_body(text: str, tmp_path, restart_count: str | None) -> list[str]:
    """Run the script with bash; a fake ``msorch`` prints its argv one per line."""
    fake = tmp_path / "fake-msorch"
    fake.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if restart_count is not None:
        env["SLURM_RESTART_COUNT"] = restart_count
    res = subprocess.run(["bash", "-c", text, "batch"], capture_output=True, text=True, env=env, timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_default_resources_ask_total_ranks_and_warn_before_walltime(tmp_path):
    """Defaults: one node, ``total_ranks`` tasks, USR1 60 s before the limit, requeue, append."""
    text = slurm.batch_script(Job(resources=Resources(time="00:10:00")), tmp_path / "j.yaml", tmp_path / "out")
    d = directives(text)
    assert text.startswith("#!/bin/bash\n")
    assert d == {"--job-name": "heat", "--nodes": "1", "--ntasks": "3", "--time": "00:10:00",
                 "--output": str(tmp_path / "out" / "slurm-%j.out"), "--signal": "B:USR1@60",
                 "--requeue": "", "--open-mode": "append"}


def test_all_resource_fields_and_extra_lines_verbatim(tmp_path):
    res = Resources(nodes=2, tasks=5, time="1-00:00", partition="big", account="proj 42",
                    extra=("--mem=4G", "--constraint=avx2"), signal_before=300)
    text = slurm.batch_script(Job(name="md.run", resources=res), "j.yaml", tmp_path)
    d = directives(text)
    assert (d["--nodes"], d["--ntasks"], d["--time"], d["--partition"], d["--account"]) == \
        ("2", "5", "1-00:00", "big", "proj 42")
    assert d["--signal"] == "B:USR1@300"
    assert "#SBATCH --mem=4G\n#SBATCH --constraint=avx2\n" in text
    assert "#SBATCH --account='proj 42'" in text  # quoted for sbatch's own tokenizer


def test_first_run_plain_requeued_run_restarts_when_possible(tmp_path):
    """SLURM_RESTART_COUNT unset or 0 -> plain run; > 0 -> ``--restart auto`` (latest checkpoint, else from the start)."""
    spec, out = tmp_path / "my job.yaml", tmp_path / "out dir"
    text = slurm.batch_script(Job(), spec, out, msorch_cmd=[str(tmp_path / "fake-msorch")])
    plain = ["run", str(spec), "-o", str(out), "--launcher", "mpirun"]
    assert run_body(text, tmp_path, None) == plain
    assert run_body(text, tmp_path, "0") == plain
    assert run_body(text, tmp_path, "2") == plain + ["--restart", "auto"]


def test_explicit_restart_used_on_first_run_only(tmp_path):
    text = slurm.batch_script(Job(), "j.yaml", tmp_path, restart="ckpt/window-7.h5",
                              msorch_cmd=str(tmp_path / "fake-msorch"))
    assert run_body(text, tmp_path, None)[-2:] == ["--restart", "ckpt/window-7.h5"]
    assert run_body(text, tmp_path, "1")[-2:] == ["--restart", "auto"]


def test_srun_launcher_is_passed_on(tmp_path):
    job = Job(resources=Resources(launcher="srun"))
    text = slurm.batch_script(job, "j.yaml", tmp_path, msorch_cmd=str(tmp_path / "fake-msorch"))
    assert run_body(text, tmp_path, None)[-2:] == ["--launcher", "srun"]


def test_hostile_values_stay_single_arguments(tmp_path):
    """Shell metacharacters in paths reach msorch as one argument each and run nothing."""
    evil = tmp_path / "x; touch pwned $(touch pwned2) `touch pwned3`'\"" / "spec.yaml"
    text = slurm.batch_script(Job(), evil, tmp_path, restart="a b'c",
                              msorch_cmd=[str(tmp_path / "fake-msorch")])
    argv = run_body(text, tmp_path, None)
    assert argv == ["run", str(evil), "-o", str(tmp_path), "--launcher", "mpirun", "--restart", "a b'c"]
    assert not any(p.name.startswith("pwned") for p in tmp_path.iterdir())


@pytest.mark.parametrize("res, message", [
    (Resources(extra=("mem=4G",)), "starting with '--'"),
    (Resources(extra=("--mem=4G\n#SBATCH --uid=0",)), "single line"),
    (Resources(partition="a\nb"), "single line"),
    (Resources(time="ten minutes"), "not a SLURM time"),
    (Resources(time="00:01:00", signal_before=60), "not shorter than the time limit"),
    (Resources(nodes=0), "must be >= 1"),
])
def test_invalid_resources_rejected(tmp_path, res, message):
    with pytest.raises(ValueError, match=message):
        slurm.batch_script(Job(resources=res), "j.yaml", tmp_path)


@pytest.mark.parametrize("text, seconds", [
    ("90", 5400), ("10:30", 630), ("01:02:03", 3723), ("2-3", 183600),
    ("1-00:30", 88200), ("1-01:02:03", 90123)])
def test_walltime_seconds_reads_every_sbatch_format(text, seconds):
    """Formats and meanings from the sbatch man page (--time)."""
    assert slurm.walltime_seconds(text) == seconds


def test_submit_without_sbatch_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(slurm.SlurmError, match="sbatch not found.*slurm-wlm"):
        slurm.submit("#!/bin/bash\ntrue\n", tmp_path / "out")
    assert (tmp_path / "out" / slurm.SCRIPT_NAME).read_text() == "#!/bin/bash\ntrue\n"


def test_job_id_validated():
    with pytest.raises(ValueError, match="not a SLURM job id"):
        slurm.job_state("12; rm -rf /")
