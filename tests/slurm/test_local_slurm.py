"""The local SLURM really schedules, signals and requeues jobs, driven through ``msorch.slurm``.

These are the mechanisms ``msorch submit`` relies on: sbatch/squeue round trips,
the walltime warning ``--signal=B:USR1@N`` reaching the batch shell, and a job
that requeues itself coming back with ``SLURM_RESTART_COUNT=1``.  Everything runs
on the real daemons started by ``tests/slurm/conftest.py`` (no stand-in sbatch).

Timing facts behind the test design (slurmctld 22.05 source, ``job_mgr.c``):
the warning signal is sent by a periodic check (every 30 s) as soon as
``now + warn_time + 30 s >= end_time``, so with ``--time=1`` and a lead of 45 s it
comes at the first check, 0-30 s after the start, always before the limit.  A
requeued job becomes eligible ``cred_expire + 1`` s later, which the local
cluster sets to 10 s (default 120 s).
"""
from __future__ import annotations

import time

import pytest

from msorch import slurm

pytestmark = pytest.mark.slurm

JOB_TIMEOUT = 120.0  # seconds; generous for a loaded 2-core machine


def script(*lines: str) -> str:
    return "\n".join(["#!/bin/bash", *lines, ""])


def test_batch_job_runs_tasks_and_reports_states(local_slurm, tmp_path):
    """A 3-task job goes through RUNNING to COMPLETED; its ``srun`` starts 3 tasks."""
    out = tmp_path / "result.txt"
    job_id = slurm.submit(script(
        f"#SBATCH --ntasks=3 --output={tmp_path}/slurm-%j.out",
        f'echo "$SLURM_JOB_ID $SLURM_NTASKS" > {out}',
        f"srun hostname >> {out}",
        "sleep 2"), tmp_path)
    seen = set()
    deadline = time.monotonic() + JOB_TIMEOUT
    while (state := slurm.job_state(job_id)) not in slurm.TERMINAL_STATES:
        seen.add(state)
        assert time.monotonic() < deadline, f"job {job_id} stuck in {state}"
        time.sleep(0.3)
    assert state == "COMPLETED", (tmp_path / f"slurm-{job_id}.out").read_text()
    assert "RUNNING" in seen
    first, *hosts = out.read_text().splitlines()
    assert first == f"{job_id} 3"
    assert len(hosts) == 3
    assert (tmp_path / slurm.SCRIPT_NAME).exists()


def test_sbatch_rejection_reports_its_stderr(local_slurm, tmp_path):
    with pytest.raises(slurm.SlurmError, match=r"sbatch .* failed \(exit 1\).*invalid partition"):
        slurm.submit(script("#SBATCH --partition=no-such-partition", "true"), tmp_path)


def test_unknown_job_is_an_error(local_slurm):
    with pytest.raises(slurm.SlurmError, match="unknown to SLURM"):
        slurm.job_state("987654")


def test_generated_batch_script_is_accepted_and_resumes_after_requeue(local_slurm, tmp_path):
    """``batch_script`` output through the real sbatch: every directive is accepted, the
    job gets ``total_ranks`` tasks, and after a requeue the command gains ``--restart latest``.

    ``msorch_cmd`` is a recorder that requeues its own job on the first run, as the
    runner does after checkpointing on the walltime warning.
    """
    from msorch.spec import parse_spec

    job = parse_spec("time: {start: 0, end: 1, window: 0.5}\n"
                     "solvers: {a: {kind: test.null, ranks: 2}}\n"
                     "resources: {time: '00:05:00', signal_before: 30, extra: ['--mem=100M']}\n",
                     path=str(tmp_path / "job.yaml"))
    log = tmp_path / "argv.log"
    recorder = tmp_path / "recorder"
    recorder.write_text("\n".join([
        "#!/bin/bash",
        f'echo "ntasks=$SLURM_NTASKS restart=${{SLURM_RESTART_COUNT:-0}} argv=$*" >> {log}',
        'if [ "${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then scontrol requeue "$SLURM_JOB_ID"; sleep 60; fi',
        ""]))
    recorder.chmod(0o755)
    outdir = tmp_path / "out dir"
    text = slurm.batch_script(job, tmp_path / "job.yaml", outdir, msorch_cmd=[str(recorder)])
    job_id = slurm.submit(text, outdir)
    state = slurm.wait(job_id, timeout=JOB_TIMEOUT, poll=0.5)
    assert state == "COMPLETED", (outdir / f"slurm-{job_id}.out").read_text()
    args = f"run {tmp_path / 'job.yaml'} -o {outdir} --launcher mpirun"
    assert log.read_text().splitlines() == [f"ntasks=3 restart=0 argv={args}",
                                            f"ntasks=3 restart=1 argv={args} --restart auto"]



def test_msorch_run_inside_allocation_writes_results(local_slurm, tmp_path):
    """The real runtime under the generated script: ``msorch run`` of a 3-rank job
    (coordinator + two ``test.null`` solvers) inside the allocation finishes all
    10 windows and writes a readable ``results.h5``."""
    h5py = pytest.importorskip("h5py")
    from msorch.spec import load_spec

    spec = tmp_path / "null.yaml"
    spec.write_text("name: null-in-slurm\n"
                    "time: {start: 0.0, end: 1.0, window: 0.1}\n"
                    "solvers:\n  a: {kind: test.null, ranks: 1}\n  b: {kind: test.null, ranks: 1}\n"
                    "couplings:\n  - {from: a.out, to: b.in}\n  - {from: b.out, to: a.in}\n"
                    "resources: {time: '00:05:00', signal_before: 30}\n")
    outdir = tmp_path / "out"
    job_id = slurm.submit(slurm.batch_script(load_spec(spec), spec, outdir), outdir)
    state = slurm.wait(job_id, timeout=JOB_TIMEOUT, poll=0.5)
    log = (outdir / f"slurm-{job_id}.out").read_text()
    assert state == "COMPLETED", log
    assert "window 10/10" in log
    with h5py.File(outdir / "results.h5", "r") as results:
        assert len(results.keys()) > 0

@pytest.fixture(scope="module", autouse=True)
def signalled_jobs(local_slurm, tmp_path_factory):
    """Submit both walltime-warning jobs first thing: they share slurmctld's 30 s
    signal check, and the other tests run while it comes round."""
    jobs = {}
    d = tmp_path_factory.mktemp("usr1")
    marker = d / "usr1.marker"
    jobs["signal"] = d, marker, slurm.submit(script(
        f"#SBATCH --time=1 --signal=B:USR1@45 --output={d}/slurm-%j.out",
        "start=$SECONDS",
        f'trap \'echo "USR1 after $((SECONDS - start)) s" > {marker}; kill $child; exit 0\' USR1',
        # wait (not a foreground sleep) lets bash run the trap as soon as USR1 arrives
        "sleep 120 & child=$!",
        "wait $child"), d)
    d = tmp_path_factory.mktemp("requeue")
    log = d / "runs.log"
    jobs["requeue"] = d, log, slurm.submit(script(
        f"#SBATCH --time=1 --signal=B:USR1@45 --requeue --open-mode=append --output={d}/slurm-%j.out",
        "n=${SLURM_RESTART_COUNT:-0}",
        f'echo "start $n" >> {log}',
        'echo "stdout of run $n"',
        'if [ "$n" -gt 0 ]; then',
        f'    echo "done $n" >> {log}; exit 0',
        "fi",
        f'trap \'echo "USR1 $n" >> {log}; scontrol requeue "$SLURM_JOB_ID"; exit 0\' USR1',
        "sleep 120 & wait $!"), d)
    return jobs


def test_walltime_warning_signal_reaches_batch_shell(signalled_jobs):
    """``--signal=B:USR1@45`` with a 1-minute limit: the trap runs before the limit.

    The job ends itself from the trap with exit 0, so COMPLETED (not TIMEOUT)
    proves the signal came early enough to act on.
    """
    d, marker, job_id = signalled_jobs["signal"]
    state = slurm.wait(job_id, timeout=JOB_TIMEOUT, poll=0.5)
    assert state == "COMPLETED", (d / f"slurm-{job_id}.out").read_text()
    words = marker.read_text().split()
    assert words[0] == "USR1" and int(words[2]) < 60


def test_warning_then_self_requeue_resumes_with_restart_count(signalled_jobs):
    """The checkpoint/requeue pattern: run 0 gets USR1, requeues itself; run 1 sees
    ``SLURM_RESTART_COUNT=1`` and finishes.  ``--open-mode=append`` keeps both runs' output."""
    d, log, job_id = signalled_jobs["requeue"]
    state = slurm.wait(job_id, timeout=JOB_TIMEOUT, poll=0.5)
    output = (d / f"slurm-{job_id}.out").read_text()
    assert state == "COMPLETED", output
    assert log.read_text().splitlines() == ["start 0", "USR1 0", "start 1", "done 1"]
    assert "stdout of run 0" in output and "stdout of run 1" in output

