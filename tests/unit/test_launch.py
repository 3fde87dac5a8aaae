"""Launch details that need no MPI job: the children's environment and mpirun's failure reports."""
from __future__ import annotations

from msorch.environ import child_env, is_job_variable
from msorch.launch import explain_failure, launch_command
from msorch.layout import Layout

LAYOUT = Layout({"left": (1,), "right": (2, 3)})


def test_child_env_drops_the_variables_of_an_mpi_singleton(monkeypatch):
    """What Open MPI puts in a singleton's environment must not reach sbatch or mpirun."""
    for name in ("OMPI_MCA_ess", "PMIX_RANK", "PMIX_NAMESPACE", "PMIX_SERVER_URI41", "OMPI_COMM_WORLD_SIZE",
                 "OMPI_MCA_orte_launch", "PMIX_SERVER_TMPDIR"):
        monkeypatch.setenv(name, "x")
        assert is_job_variable(name)
    for name in ("OMPI_MCA_btl", "OMPI_ALLOW_RUN_AS_ROOT", "SLURM_JOB_ID", "PATH"):
        monkeypatch.setenv(name, "kept")
        assert not is_job_variable(name)
    env = child_env({"EXTRA": "1"})
    assert not [k for k in env if k.startswith(("PMIX_", "OMPI_MCA_ess", "OMPI_COMM_WORLD"))]
    assert env["OMPI_MCA_btl"] == env["SLURM_JOB_ID"] == "kept" and env["EXTRA"] == "1"


def test_ranks_start_with_python_dash_P():
    """-P keeps the working directory off the ranks' sys.path (a folder named msorch there)."""
    cmd = launch_command(4, "job.yaml", "out", python="/venv/bin/python")
    assert cmd[cmd.index("/venv/bin/python") + 1:][:3] == ["-P", "-m", "msorch.runtime"]


def test_explain_failure_quotes_the_traceback_and_names_the_rank():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
            "ModuleNotFoundError: No module named 'mysolver'\n"
            "--------------------------------------------------------------------------\n"
            "Primary job  terminated normally, but 1 process returned\n"
            "a non-zero exit code. Per user-direction, the job has been aborted.\n"
            "--------------------------------------------------------------------------\n"
            "--------------------------------------------------------------------------\n"
            "mpirun detected that one or more processes exited with non-zero status, thus causing\n"
            "the job to be terminated. The first process to do so was:\n\n"
            "  Process name: [[4242,1],2]\n  Exit code:    1\n"
            "--------------------------------------------------------------------------\n")
    assert explain_failure(text, LAYOUT) == ("solver 'right' rank 0 (world rank 2) exited with status 1: "
                                             "ModuleNotFoundError: No module named 'mysolver'")


def test_explain_failure_quotes_mpiruns_own_message():
    text = ("--------------------------------------------------------------------------\n"
            "There are not enough slots available in the system to satisfy the 4\n"
            "slots that were requested by the application:\n\n  python\n\n"
            "--------------------------------------------------------------------------\n")
    reason = explain_failure(text, LAYOUT)
    assert reason.startswith("mpirun said: There are not enough slots available"), reason


def test_explain_failure_names_a_killed_rank():
    text = "mpirun noticed that process rank 3 with PID 77 on node n1 exited on signal 9 (Killed).\n"
    assert explain_failure(text, LAYOUT) == "solver 'right' rank 1 (world rank 3) was killed by signal 9 (Killed)"
