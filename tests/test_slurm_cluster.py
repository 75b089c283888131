"""Tests against a real, private single-node SLURM cluster.

The cluster is started once per session by the ``slurm_cluster`` fixture (in
tests/conftest.py; see tests/slurm_cluster.py). Without the slurm/munge binaries the tests skip,
unless VJEPA_REQUIRE_SLURM=1 (set by CI), in which case they fail.
Install the binaries with ``.ci/install_slurm.sh`` (Debian, as root).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:  # tests/ on sys.path (pytest's default "prepend" import mode, no tests/__init__.py)
    from slurm_cluster import SHIM_DIR
except ImportError:  # tests imported as a package
    from tests.slurm_cluster import SHIM_DIR

pytestmark = pytest.mark.slurm

JOB_TIMEOUT_S = 60


def _wait_job(cluster, job_id: str, timeout: float = JOB_TIMEOUT_S) -> dict[str, str]:
    """Poll scontrol until the job reaches a final state; returns its record."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id],
            env=cluster.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ).stdout
        rec = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
        state = rec.get("JobState", "")
        if state and state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return rec
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not finished after {timeout}s: {out}")
        time.sleep(0.2)


def test_cluster_is_idle(slurm_cluster):
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P %a %T %D"],
        env=slurm_cluster.environ(),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.split()
    assert out[:2] == ["debug*", "up"], out
    assert out[2] in ("idle", "mixed", "allocated"), out


def test_sbatch_wrap(slurm_cluster, tmp_path):
    out_file = tmp_path / "job.out"
    res = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-p",
            "debug",
            "-o",
            str(out_file),
            "--wrap",
            "echo hello from $SLURM_JOB_ID",
        ],
        env=slurm_cluster.environ(),
        cwd=tmp_path,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    job_id = res.stdout.strip().split(";")[0]
    assert job_id.isdigit(), res.stdout
    rec = _wait_job(slurm_cluster, job_id)
    assert rec["JobState"] == "COMPLETED", rec
    assert rec["ExitCode"] == "0:0", rec
    assert out_file.read_text().strip() == f"hello from {job_id}"

    # the sacct shim answers exactly what submitit asks
    sacct = subprocess.run(
        ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", job_id],
        env=slurm_cluster.environ(),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.splitlines()
    assert sacct == ["JobID|State|NodeList", f"{job_id}|COMPLETED|{slurm_cluster.nodename}"]


def add_and_describe(a: int, b: int) -> tuple[int, str, str]:
    """Runs inside the SLURM job (module level so submitit can pickle it)."""
    return a + b, os.environ.get("SLURM_JOB_ID", ""), sys.executable


def _submitit_executor(folder: Path):
    import submitit  # a project dependency: fail, don't skip, if it is missing

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    # The job unpickles add_and_describe by reference, i.e. imports this module:
    # make it importable there under the same name as here.
    import_root = Path(__file__).resolve().parents[len(__name__.split(".")) - 1]
    executor.update_parameters(
        slurm_partition="debug",
        timeout_min=5,
        cpus_per_task=1,
        slurm_setup=[f'export PYTHONPATH="{import_root}${{PYTHONPATH:+:$PYTHONPATH}}"'],
    )
    return executor


def _wait_state(job, expected: str = "COMPLETED", timeout: float = JOB_TIMEOUT_S) -> None:
    """job.state only reads the watcher cache, which sacct (our shim) refreshes:
    force refreshes until slurm reports the final state (the result pickle can
    appear while the job is still RUNNING/COMPLETING)."""
    deadline = time.monotonic() + timeout
    while job.get_info(mode="force").get("State") != expected and time.monotonic() < deadline:
        time.sleep(0.5)


def test_submitit_executor(slurm_cluster, tmp_path):
    executor = _submitit_executor(tmp_path / "submitit")
    job = executor.submit(add_and_describe, 2, 3)
    assert job.job_id.isdigit()

    total, job_env_id, python = job.result()
    assert total == 5
    assert job_env_id == job.job_id
    assert python == sys.executable  # the venv python ran the job

    _wait_state(job)
    assert job.state == "COMPLETED", job.get_info(mode="cache")
    assert job.get_info(mode="cache")["NodeList"] == slurm_cluster.nodename
    assert job.done()


def test_submitit_job_array(slurm_cluster, tmp_path):
    executor = _submitit_executor(tmp_path / "submitit")
    jobs = executor.map_array(add_and_describe, [1, 2, 3], [10, 20, 30])
    assert [job.job_id.split("_")[1] for job in jobs] == ["0", "1", "2"]
    results = [job.result() for job in jobs]
    assert [r[0] for r in results] == [11, 22, 33]
    for job in jobs:
        _wait_state(job)
        assert job.state == "COMPLETED", job.get_info(mode="cache")


def test_sacct_shim_reads_jobcomp_log_for_purged_jobs(tmp_path):
    """Unit test of tests/bin/sacct (no cluster needed): a job slurmctld no
    longer knows is answered from the jobcomp/filetxt log; unknown ids are
    left out (submitit then reads UNKNOWN, like with the real sacct)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(
        "#!/bin/sh\n"
        "echo 'JobId=8 ArrayJobId=7 ArrayTaskId=1 JobName=arr JobState=RUNNING NodeList=n1 WorkDir=/a b'\n"
        "echo 'JobId=7 ArrayJobId=7 ArrayTaskId=2-4%2 JobName=arr JobState=PENDING NodeList=(null)'\n"
    )
    scontrol.chmod(0o755)
    comp = tmp_path / "jobcomp.log"
    comp.write_text(
        "JobId=3 UserId=root(0) GroupId=root(0) Name=wrap JobState=FAILED Partition=debug NodeList=n1 "
        "ExitCode=1:0\n"
        "JobId=5 UserId=root(0) GroupId=root(0) Name=wrap JobState=COMPLETED Partition=debug NodeList=n1 "
        "ExitCode=0:0\n"
    )
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"JobCompType=jobcomp/filetxt\nJobCompLoc={comp}\n")
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}", SLURM_CONF=str(conf))
    out = subprocess.run(
        [
            sys.executable,
            str(SHIM_DIR / "sacct"),
            "-o",
            "JobID,State,NodeList",
            "--parsable2",
            "-j",
            "3",
            "-j",
            "5",
            "-j",
            "7",
            "-j",
            "99",
        ],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.splitlines()
    assert out == [
        "JobID|State|NodeList",
        "3|FAILED|n1",
        "5|COMPLETED|n1",
        "7_1|RUNNING|n1",
        "7_[2-4%2]|PENDING|None assigned",
    ]
    from submitit.slurm.slurm import SlurmInfoWatcher

    info = SlurmInfoWatcher().read_info("\n".join(out))
    assert info["3"]["State"] == "FAILED"
    assert info["7_1"]["State"] == "RUNNING"
    assert info["7_3"]["State"] == "PENDING"
    assert "99" not in info


def test_sacct_shim_fails_rather_than_answer_a_requeued_job_from_its_earlier_end(tmp_path):
    """When slurmctld does not answer (scontrol fails, as under heavy load), the shim exits non-zero like the
    real sacct without its backend, so submitit keeps the state it had. It must not answer from the completion
    log: a requeued job's entry there is the end of its earlier run, and a finished state read once is cached
    by submitit's watcher for good, so the driver would give up on a job that is about to run again."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(
        "#!/bin/sh\necho 'slurm_load_jobs error: Socket timed out on send/recv' >&2\nexit 1\n"
    )
    scontrol.chmod(0o755)
    comp = tmp_path / "jobcomp.log"
    comp.write_text("JobId=4 UserId=root(0) Name=wrap JobState=CANCELLED Partition=debug NodeList=n1\n")
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"JobCompType=jobcomp/filetxt\nJobCompLoc={comp}\n")
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}", SLURM_CONF=str(conf))
    proc = subprocess.run(
        [sys.executable, str(SHIM_DIR / "sacct"), "-o", "JobID,State", "--parsable2", "-j", "4"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Socket timed out" in proc.stderr
