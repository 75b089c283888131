"""A sweep on the private SLURM cluster: every point is a SLURM job; a failed point is reported (exit status
1), and running the same command again resumes it without touching the completed one."""

import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.common import ROOT
from tests.conftest import TINY_TEST
from vjepa.runfiles import read_json, read_status

pytestmark = pytest.mark.slurm


def sweep(cluster, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**cluster.environ(), "VJEPA_SWEEPS_OUT": str(out)}
    tiny = [o for o in TINY_TEST if not o.startswith("probes=")]
    cmd = [sys.executable, str(ROOT / "sweeps" / "predictor_width.py"), "preset=tiny", *tiny, *args]
    return subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True, timeout=240)


def slurm_jobs(cluster) -> set[str]:
    """Ids (array_task form) of the jobs slurmctld knows (it keeps finished ones for an hour)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"], env=cluster.environ(), capture_output=True, text=True, check=True
    ).stdout
    jobs = set()
    for line in out.splitlines():
        rec = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if rec.get("ArrayTaskId", "N/A") != "N/A":
            jobs.add(f"{rec['ArrayJobId']}_{rec['ArrayTaskId']}")
        elif "JobId" in rec:
            jobs.add(rec["JobId"])
    return jobs


def test_sweep_runs_points_as_slurm_jobs_and_a_rerun_resumes_only_the_failed_one(slurm_cluster, tmp_path):
    args = ["steps=2", "seed=0", "predictor.width=16,32", "cluster=local", "probes=fast"]
    runs = tmp_path / "predictor_width" / "preset=tiny"
    name = (
        "batch_size=8,data.image.size=32,data.video.frames=4,data.video.size=32,loss.context.weight=0,"
        "model.depth=2,model=tiny,predictor.depth=1,predictor.num_heads=2,predictor.width={},seed=0,steps=2"
    )
    ok, bad = runs / name.format(16), runs / name.format(32)
    # The second point trains to its last checkpoint, then cannot write metrics.json (a directory there).
    (bad / "metrics.json").mkdir(parents=True)
    jobs_before = slurm_jobs(slurm_cluster)

    first = sweep(slurm_cluster, tmp_path, *args)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "1 completed, 0 skipped, 0 adopted, 1 failed" in first.stdout
    assert f"{bad}: IsADirectoryError" in first.stdout
    assert read_status(ok)["state"] == "completed"
    status = read_status(bad)
    assert status["state"] == "failed" and "metrics.json" in status["traceback"]
    new_jobs = slurm_jobs(slurm_cluster) - jobs_before
    assert {read_json(run / "job.json")["job_id"] for run in (ok, bad)} == new_jobs and len(new_jobs) == 2
    metrics = read_json(ok / "metrics.json")
    assert metrics["steps"] == 2 and "- predictor.width=16" in (ok / "overrides.yaml").read_text()
    assert "probe/shapes_seg/miou" in metrics

    (bad / "metrics.json").rmdir()
    mtimes = {p: p.stat().st_mtime_ns for p in ok.rglob("*") if p.is_file()}
    second = sweep(slurm_cluster, tmp_path, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 completed, 1 skipped, 0 adopted, 0 failed" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in ok.rglob("*") if p.is_file()} == mtimes
    resubmitted = slurm_jobs(slurm_cluster) - jobs_before - new_jobs
    assert resubmitted == {read_json(bad / "job.json")["job_id"]}  # only the failed point was submitted again
    assert read_status(bad)["state"] == "completed" and read_json(bad / "metrics.json")["steps"] == 2
    logs = "".join(p.read_text() for p in (runs / ".submitit").rglob("*_log.err"))
    assert f"resuming {bad} from step 2" in logs
    config = (bad / "config.yaml").read_text()
    assert "cluster" not in config and "dry_run" not in config and f"run_dir: {bad}" in config


def test_a_rerun_while_the_sweeps_jobs_wait_in_the_queue_sees_them_as_active(slurm_cluster, tmp_path):
    """The sweep's process dies while its jobs are still queued (held here, so they never start and write
    anything): its points' job.json already names their queued jobs, so the same command run again leaves
    them to those jobs instead of submitting them a second time."""
    import signal
    import time

    args = ["steps=2", "seed=0", "predictor.width=16,32", "cluster=local", "probes=fast"]
    held = "+hydra.launcher.additional_parameters={hold: true}"
    runs = tmp_path / "predictor_width" / "preset=tiny"
    jobs_before = slurm_jobs(slurm_cluster)
    env = {**slurm_cluster.environ(), "VJEPA_SWEEPS_OUT": str(tmp_path)}
    tiny = [o for o in TINY_TEST if not o.startswith("probes=")]
    cmd = [sys.executable, str(ROOT / "sweeps" / "predictor_width.py"), "preset=tiny", *tiny, *args, held]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    queued = []
    try:
        deadline = time.monotonic() + 120
        while len(queued) < 2 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
            queued = [read_json(p) for p in sorted(runs.glob("*/job.json"))]
    finally:
        first.send_signal(signal.SIGKILL)  # the sweep's process dies; its jobs stay in the queue
        first.wait()
    new_jobs = slurm_jobs(slurm_cluster) - jobs_before  # a pending array is one record: <id>_0-1%2
    arrays = {job.split("_")[0] for job in new_jobs}
    try:
        assert len(queued) == 2, (tmp_path / "first.log").read_text()
        assert len(arrays) == 1 and all(q["queued"] for q in queued)
        assert sorted(q["job_id"] for q in queued) == [f"{min(arrays)}_0", f"{min(arrays)}_1"]
        again = sweep(slurm_cluster, tmp_path, *args, held, "dry_run=true")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 runs, 0 to launch" in again.stdout and "2 in live jobs (skipped)" in again.stdout
        for q in queued:
            assert f"(active: job {q['job_id']})" in again.stdout
        assert slurm_jobs(slurm_cluster) - jobs_before == new_jobs  # nothing submitted again
    finally:
        if arrays:
            subprocess.run(["scancel", *sorted(arrays)], env=slurm_cluster.environ(), check=False)


def test_sweeps_evaluate_probes_each_run_as_one_slurm_job_whose_two_tasks_share_the_extraction(
    slurm_cluster, compose_cfg, tmp_path
):
    """``python -m sweeps.evaluate`` on the cluster: one SLURM job per completed run (the failed run is
    skipped), each of two tasks (``cluster.tasks_per_node=2``) that extract the features together over
    gloo; the scores and cached features are those of one local process probing a copy of the run."""
    import json
    import shutil

    import torch
    import yaml

    from tests.test_evaluate_ranks import PROBES, TASKS
    from tests.test_probes_folders import write_imagefolder
    from tests.test_sweep_evaluate import _sweep

    folder = tmp_path / "sweeps_out" / "mask_ratio"
    runs = _sweep(compose_cfg, folder)
    alone = tmp_path / "alone"
    shutil.copytree(runs[0], alone)
    root = write_imagefolder(tmp_path / "data", n=(7, 5))
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({**PROBES, "workers": 0, "tasks": {"in_linear": TASKS["in_linear"]}}))
    common = [f"probes={probes}", f"data_root={root}", "cache=true", "threads=1", "device=cpu"]
    jobs_before = slurm_jobs(slurm_cluster)
    env = {**slurm_cluster.environ(), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sweeps.evaluate", str(folder), *common, "launcher=slurm", "cluster=local"]
    res = subprocess.run(
        [*cmd, "cluster.tasks_per_node=2"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 run(s) to probe on slurm" in res.stdout and "probed 2, skipped 1, failed 0" in res.stdout
    assert len(slurm_jobs(slurm_cluster) - jobs_before) == 2
    logs = "".join(p.read_text() for p in (folder / ".submitit").rglob("*_log.out"))
    assert logs.count("merged") == 2  # rank 0 of each job writes, once

    local = subprocess.run(
        [sys.executable, "-m", "vjepa.evaluate", f"run_dir={alone}", *common],
        env={k: v for k, v in env.items() if not k.startswith("SLURM_")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stdout + local.stderr
    on_slurm, by_one = (json.loads((d / "metrics.json").read_text()) for d in (runs[0], alone))
    scores = {
        k: v for k, v in by_one.items() if k.startswith("probe/in_linear/") and not k.endswith("time_s")
    }
    assert scores and scores == {k: on_slurm[k] for k in scores}
    caches = sorted(p.name for p in (alone / "probe_cache").iterdir())
    assert caches == sorted(p.name for p in (runs[0] / "probe_cache").iterdir())
    for name in caches:
        a, b = torch.load(alone / "probe_cache" / name), torch.load(runs[0] / "probe_cache" / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
