"""`python -m sweeps.evaluate`: every completed run of a sweep probed as one local submitit job each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from omegaconf import open_dict

from tests.conftest import TINY_TEST
from tests.test_evaluate_ranks import PROBES, TASKS
from tests.test_probes_folders import write_imagefolder


def _sweep(compose_cfg, folder: Path) -> list[Path]:
    """Two completed 2-step runs and one failed run, laid out as a sweep's output folder."""
    from vjepa.runfiles import write_json
    from vjepa.trainer import train

    runs = []
    for seed in (0, 1):
        cfg = compose_cfg(*TINY_TEST, "steps=2", f"seed={seed}")
        with open_dict(cfg):
            cfg.probes = {"tasks": {}}
            cfg.run_dir = str(folder / "preset=tiny" / f"seed={seed}")  # "=" as in a sweep's run names
        train(cfg)
        runs.append(Path(cfg.run_dir))
    broken = folder / "preset=tiny" / "seed=2"
    broken.mkdir()
    write_json(broken / "status.json", {"state": "failed", "error": "boom"})
    return runs


def _evaluate_sweep(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {"PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sweeps.evaluate", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_each_completed_run_is_probed_once_by_a_local_job(compose_cfg, tmp_path):
    folder = tmp_path / "sweeps_out" / "mask_ratio"
    runs = _sweep(compose_cfg, folder)
    root = write_imagefolder(tmp_path / "data")
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({**PROBES, "workers": 0, "tasks": {"in_linear": TASKS["in_linear"]}}))
    args = [str(folder), f"probes={probes}", f"data_root={root}", "launcher=local", "threads=1", "device=cpu"]
    first = _evaluate_sweep(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "probed 2, skipped 1, failed 0" in first.stdout and "not completed (failed)" in first.stdout
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert "probe/in_linear/top1" in metrics and metrics["probe/step"] == 2
    assert list((folder / ".submitit").glob("*/*_log.err"))  # the jobs' logs, under the sweep folder
    again = _evaluate_sweep(*args)
    assert again.returncode == 0 and "probed 0, skipped 3" in again.stdout, again.stdout + again.stderr
    assert again.stdout.count("already probed") == 2


def test_force_and_another_probe_set_probe_again(compose_cfg, tmp_path):
    from sweeps.evaluate import plan, run_dirs

    folder = tmp_path / "sweep"
    runs = _sweep(compose_cfg, folder)
    for run in runs:  # as if probed with the in_linear task
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "probe/in_linear/time_s": 1.0}))
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({**PROBES, "tasks": {"in_linear": TASKS["in_linear"]}}))
    found = run_dirs(folder)
    assert found == [*runs, folder / "preset=tiny" / "seed=2"]
    todo, skipped, completed = plan(found, [f"probes={probes}"], force=False)
    assert todo == [] and len(skipped) == 3
    assert completed == runs  # probed before, still counted (the thread count is shared over them)
    assert plan(found, [f"probes={probes}"], force=True)[0] == runs
    assert plan(found, [f"probes={probes}", "encoder=online"], force=False)[0] == runs
    assert plan(found, ["probes=fast"], force=False)[0] == runs


def test_bad_keys_are_refused_before_any_job(tmp_path):
    out = _evaluate_sweep(str(tmp_path), "probes=fast", "no_such_key=1")
    assert out.returncode != 0 and "no_such_key" in out.stderr
    out = _evaluate_sweep("no-such-sweep-name")
    assert out.returncode != 0 and "no-such-sweep-name" in out.stderr


def test_probe_threads_do_not_depend_on_how_many_runs_are_left(compose_cfg, tmp_path, monkeypatch, capsys):
    """On CPU the thread count changes a probe's rounding: probing the last run of a folder must use the
    count the first ones used, not all the CPUs because it is alone."""
    import sweeps.common
    import sweeps.evaluate as ev

    monkeypatch.setattr(sweeps.common, "available_cpus", lambda: 4)
    monkeypatch.setattr(ev, "local_gpus", lambda: 0)
    folder = tmp_path / "sweep"
    runs = _sweep(compose_cfg, folder)
    local = {"parallel": None}
    # nothing probed yet: the 4 CPUs shared by both completed runs, however many are left to probe
    assert ev.job_threads("local", runs, local, []) == (2, 2)
    # one run was probed at 1 thread: the other one gets 1 thread too (the old rule gave it all 4)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    (runs[0] / "metrics.json").write_text(json.dumps({**metrics, "probe/threads": 1}))
    assert ev.job_threads("local", runs, local, []) == (4, 1)
    assert ev.job_threads("slurm", runs, {"parallel": None}, []) == (4, 1)
    # another prefix's count does not carry over; a count the user gives wins and sets the job slots
    assert ev.job_threads("local", runs, local, ["encoder=online"]) == (2, 2)
    assert ev.job_threads("local", runs, local, ["threads=4"]) == (1, None)
    # earlier probes that disagree: the most common count, with a warning
    more = [*runs, folder / "preset=tiny" / "seed=9"]
    more[2].mkdir()
    (more[2] / "metrics.json").write_text(json.dumps({"probe/threads": 2}))
    (runs[1] / "metrics.json").write_text(json.dumps({"probe/threads": 2}))
    capsys.readouterr()
    assert ev.job_threads("local", more, local, []) == (2, 2)
    assert "(1 run(s) at 1, 2 run(s) at 2); using 2" in capsys.readouterr().out
