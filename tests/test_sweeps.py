"""Sweeps without a scheduler: launcher choice, grids, run-directory names, dry run, summary, console, stop.

The SLURM runs of sweeps are in test_sweeps_slurm.py; preemption in test_preemption.py.
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

from sweeps.common import (
    ROOT,
    available_cpus,
    default_launcher,
    engine_config,
    foreign_checkout,
    local_slots,
    relay_gpus_to_local_jobs,
    restore_local_gpus,
    run_state,
    started_threads,
    sweep_argv,
)
from sweeps.sweeper import AblationSweeper, Point
from vjepa.config_check import check_config
from vjepa.runfiles import write_json, write_status

SWEEPS = ("loss_granularity", "predictor_width", "mask_ratio", "data_mix")
PRESETS = ("tiny", "small", "vitl16", "vith16", "vitg14")


def test_launcher_is_slurm_exactly_where_a_cluster_answers(tmp_path, monkeypatch):
    """sbatch plus a controller that answers -> SLURM; a client without a cluster, or none -> local."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "sinfo"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert default_launcher() == "submitit_slurm"
    (bin_dir / "sinfo").write_text(
        "#!/bin/sh\necho 'sinfo: error: Unable to contact slurm controller' >&2\nexit 1\n"
    )
    assert default_launcher() == "submitit_local"
    monkeypatch.setenv("PATH", str(tmp_path))
    assert default_launcher() == "submitit_local"


def test_argv_is_a_multirun_with_the_launcher_unless_given():
    assert sweep_argv(["preset=tiny", "seed=0"], "submitit_local") == [
        "--multirun",
        "hydra/launcher=submitit_local",
        "preset=tiny",
        "seed=0",
    ]
    given = ["preset=tiny", "hydra/launcher=submitit_slurm"]
    assert sweep_argv(given, "submitit_local") == ["--multirun", *given]
    # options after the overrides stay apart from them, and another mode is not turned into a multirun
    assert sweep_argv(["preset=tiny", "--cfg", "job"], "x") == [
        "hydra/launcher=x",
        "preset=tiny",
        "--cfg",
        "job",
    ]


def test_local_slots_share_the_cpus(monkeypatch):
    monkeypatch.setattr("sweeps.common.available_cpus", lambda: 8)
    assert local_slots("auto", 12) == (8, 1)
    assert local_slots("auto", 2) == (2, 4)  # few runs: more threads each
    assert local_slots(4, 12) == (2, 4)
    assert local_slots("auto", 12, max_parallel=3) == (3, 2)
    assert local_slots("auto", 12, gpus=1) == (1, 8)  # local jobs would share the GPU


def _compose_point(name: str, overrides: list[str]):
    """The configuration a sweep job trains with, composed as the sweep composes it."""
    with initialize_config_dir(str(ROOT / "sweeps" / "conf"), version_base=None):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = "/tmp/unused"
    HydraConfig.instance().set_config(cfg)
    return cfg, engine_config(cfg)


def _grid(cfg, preset):
    for key, values in cfg.hydra.sweeper.grid.items():
        yield key, list(values[preset] if OmegaConf.is_dict(values) else values)


@pytest.mark.parametrize(
    "name",
    [s for s in SWEEPS if s != "predictor_width"]
    + ["context_loss", "recipe", "deep_supervision", "mask_cut", "mask_trim", "target_norm"],
)  # predictor_width: next test
def test_every_grid_point_is_a_valid_run_without_the_sweep_keys(name):
    for preset in ("tiny",):  # these grids do not depend on the preset
        cfg, _ = _compose_point(name, [f"preset={preset}"])
        assert list(cfg.hydra.sweeper.seeds) == [0, 1, 2]
        for key, values in _grid(cfg, preset):
            assert len(values) >= 2
            for value in values:
                point, train = _compose_point(name, [f"preset={preset}", f"{key}={value}"])
                check_config(train)
                chosen = point.hydra.runtime.choices.get(key) or OmegaConf.select(train, key)  # group|value
                assert chosen == value
                assert not {"cluster", "sweep", "dry_run", "hydra"} & set(train)


@pytest.mark.parametrize(
    "name, table",
    [
        ("context_loss", "published_table2"),
        ("recipe", "published_table1"),
        ("deep_supervision", "published_table12"),
    ],
)
def test_published_sweep_variants_map_one_to_one_onto_the_papers_rows_in_order(name, table):
    """Each grid point's trained config, read as analysis reads a run, is its own row of the paper's table,
    in the table's order, so every ingredient (direction) of the table has its pair of variants."""
    from analysis.ablations import ABLATIONS
    from analysis.collect import flatten
    from analysis.paper import TABLES

    cfg, _ = _compose_point(name, ["preset=tiny"])
    ((key, values),) = _grid(cfg, "tiny")
    rows = []
    for value in values:
        _, train = _compose_point(name, ["preset=tiny", f"{key}={value}"])
        run = {
            f"config/{k}": v for k, v in flatten(OmegaConf.to_container(train, resolve=True), sep=".").items()
        }
        rows.append(ABLATIONS[name].paper_row(run))
    paper_rows = [label for label, _ in TABLES[table].rows]
    assert (
        rows == paper_rows[: len(values)]
    )  # Table 1: its first 5 steps (ViT-G and cool-down do not run here)
    assert tuple(rows) == ABLATIONS[name].grid_rows  # what the report reads as "not run yet"
    assert tuple(str(v) for v in values) == ABLATIONS[name].order  # grid_variants pairs them in this order


def test_predictor_widths_per_preset_are_valid_at_the_presets_head_dimension_up_to_the_encoder_width():
    for preset in PRESETS:
        cfg, _ = _compose_point("predictor_width", [f"preset={preset}"])
        widths = dict(_grid(cfg, preset))["predictor.width"]
        head_dims = set()
        for width in widths:
            _, train = _compose_point("predictor_width", [f"preset={preset}", f"predictor.width={width}"])
            check_config(train)
            assert train.predictor.width == width
            assert not {"cluster", "sweep", "dry_run", "hydra"} & set(train)
            head_dims.add(width // train.predictor.num_heads)
            assert train.predictor.num_heads * (width // train.predictor.num_heads) == width
        assert len(head_dims) == 1 and widths[-1] == train.model.embed_dim
        if preset.startswith("vit"):
            assert widths[:3] == [192, 384, 768]


@pytest.mark.skipif(available_cpus() < 2, reason="one CPU: every count of points gives one thread a run")
def test_the_last_point_of_a_resumed_sweep_keeps_the_thread_count_of_its_first_launch(tmp_path):
    """On CPU the thread count changes a run's float rounding, so local runs get their threads from the
    sweep's number of points, not the points left: 3 of mask_ratio's 4 points at seed 0 are done, the last
    one still trains at CPUs // 4 threads (it used to get all the CPUs); a run that was started and stopped
    resumes at the count its config.yaml records."""
    for ratio in (0.75, 0.8, 0.9):
        overrides = ["preset=tiny", f"mask.ratio={ratio}", "seed=0", "probes=fast"]
        _, trained = _compose_point("mask_ratio", overrides)
        done = tmp_path / "mask_ratio" / "preset=tiny" / f"mask.ratio={ratio},seed=0"
        done.mkdir(parents=True)
        (done / "config.yaml").write_text(OmegaConf.to_yaml(trained))
        write_status(done, "completed", step=2000)
        write_json(done / "metrics.json", {"loss_final": 0.1})
    args = ("preset=tiny", "seed=0", "probes=fast", "hydra/launcher=submitit_local", "dry_run=true")
    res = _run_sweep("mask_ratio", *args, "hydra.sweeper.reuse=false", out=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "4 runs, 1 to launch, 3 completed" in res.stdout
    threads = max(1, available_cpus() // 4)
    assert f"at a time x {threads} thread(s)" in res.stdout

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    assert started_threads(stopped) is None  # not started
    (stopped / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"threads": "auto"})))
    assert started_threads(stopped) is None  # no count recorded: the sweep's own
    (stopped / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"threads": 3})))
    assert started_threads(stopped) == 3


def _tiny_width_sweep(out, *args):
    """predictor_width at seed 0 on the test-sized tiny model, local jobs of 1 thread, no probes."""
    from tests.conftest import TINY_TEST

    small = [o for o in TINY_TEST if not o.startswith("predictor.width")]
    common = ["seed=0", "probes=none", "threads=1", "hydra/launcher=submitit_local"]
    return _run_sweep("predictor_width", "preset=tiny", *small, *args, *common, out=out)


def _run_sweep(name, *args, out, env=None):
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(out), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / f"{name}.py"), *args],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dry_run_lists_named_runs_skips_completed_and_costs_them(tmp_path):
    done = tmp_path / "predictor_width" / "preset=tiny" / "predictor.width=32,seed=1"
    # the point's configuration, as its run wrote it (a completed run is skipped only if it is the point's)
    _, trained = _compose_point(
        "predictor_width", ["preset=tiny", "predictor.width=32", "seed=1", "probes=fast"]
    )
    done.mkdir(parents=True)
    (done / "config.yaml").write_text(OmegaConf.to_yaml(trained))
    write_status(done, "completed", step=300)
    # trained here in 6 minutes at the sweep's 2 threads: it times the 11 launches
    write_json(
        done / "metrics.json", {"loss_final": 0.1, "wall_time_s": 360.0, "threads": 2, "device": "cpu"}
    )
    res = _run_sweep(
        "predictor_width",
        "preset=tiny",
        "dry_run=true",
        "hydra/launcher=submitit_local",
        "cluster=local",
        "cluster.time_min=600",  # a sub-key of a sweep option (README's SLURM example) names no run either
        "probes=fast",
        "threads=2",
        out=tmp_path,
    )  # none of these in the names
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith(("  launch", "  skip"))]
    names = [Path(r[6]).name for r in rows]
    assert names == [f"predictor.width={w},seed={s}" for w in (16, 32, 64, 128) for s in (0, 1, 2)]
    assert {Path(r[6]).parent.name for r in rows} == {"preset=tiny"}
    assert [r[0] for r in rows].count("skip") == 1
    assert rows[names.index("predictor.width=32,seed=1")][0] == "skip"
    # tokens/step (32 images x 64 tokens + 32 clips x 256 tokens at 32 px, 4 px patches), steps
    assert all(r[1] == "10,240" and r[3] == "2000" for r in rows)
    assert "12 runs, 11 to launch, 1 completed" in res.stdout
    assert re.search(r"to launch: [\d.]+[TP] FLOP = [\d.e-]+ GPU-hours at 396 TFLOP/s", res.stdout)
    # the wall time: each launch's FLOPs at the completed run's rate (its FLOPs / 360 s), `slots` at a time
    from sweeps.common import pool_wall_time

    def flops(text):
        return float(text[:-1]) * {"T": 1e12, "P": 1e15}[text[-1]]

    rate = flops(rows[names.index("predictor.width=32,seed=1")][4]) / 360
    order = sorted((r for r in rows if r[0] == "launch"), key=lambda r: r[6].rsplit("seed=")[1])  # by seed
    slots, _ = local_slots(2, 11)
    expected = pool_wall_time([flops(r[4]) / rate for r in order], slots) / 3600
    hours = float(re.search(rf"estimated wall time here: ([\d.]+) h, {slots} at a time", res.stdout)[1])
    assert hours == pytest.approx(expected, rel=0.01)
    assert "the median of 1 completed run(s) of this sweep here at 2 thread(s) on cpu" in res.stdout
    # nothing was launched: the only run directory is the one made above
    assert [p for p in tmp_path.rglob("*") if p.is_dir()] == [done.parents[1], done.parent, done]


def test_a_point_another_sweep_already_trained_is_adopted_not_retrained(tmp_path):
    """mask_ratio's 0.6 point is loss_granularity's loss=token run (the preset's own values): it is adopted
    (files copied, checkpoint hard-linked, its own overrides, ``reused_from``) and only 0.75 trains."""
    from tests.conftest import TINY_TEST

    small = [o for o in TINY_TEST if not o.startswith("predictor.width")]
    common = ["preset=tiny", *small, "steps=4", "ckpt_every=2", "seed=0", "hydra/launcher=basic"]
    res = _run_sweep("loss_granularity", *common, "loss=token", out=tmp_path)
    assert res.returncode == 0, res.stderr
    (donor,) = (tmp_path / "loss_granularity" / "preset=tiny").glob("*loss=token*")
    dry = _run_sweep("mask_ratio", *common, "mask.ratio=0.6,0.75", "dry_run=true", out=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"^  adopt .*mask.ratio=0.6,.* \(reuse: same config as .*loss=token", dry.stdout, re.M)
    assert re.search(r"^  launch .*mask.ratio=0.75,", dry.stdout, re.M)
    assert not (tmp_path / "mask_ratio").exists()  # a dry run writes nothing

    res = _run_sweep("mask_ratio", *common, "mask.ratio=0.6,0.75", out=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "1 completed, 0 skipped, 1 adopted, 0 failed" in res.stdout
    (adopted,) = (tmp_path / "mask_ratio" / "preset=tiny").glob("*mask.ratio=0.6,*")
    status = json.loads((adopted / "status.json").read_text())
    assert status["state"] == "completed" and (adopted.parent / status["reused_from"]).resolve() == donor
    assert (adopted / "metrics.json").read_text() == (donor / "metrics.json").read_text()
    assert "mask.ratio=0.6" in (adopted / "overrides.yaml").read_text()
    assert OmegaConf.load(adopted / "config.yaml").run_dir == str(adopted)
    ckpt = next((donor / "checkpoints").iterdir())
    assert (adopted / "checkpoints" / ckpt.name).stat().st_ino == ckpt.stat().st_ino
    assert not list(adopted.parent.glob(".*adopting"))
    # run again: everything is complete; the adopted run is not adopted twice, nor offered as a donor
    again = _run_sweep("mask_ratio", *common, "mask.ratio=0.6,0.75", out=tmp_path)
    assert "0 completed, 2 skipped, 0 adopted" in again.stdout
    # reuse can be switched off
    off = _run_sweep(
        "data_mix", *common, "data.mix=joint", "hydra.sweeper.reuse=false", "dry_run=true", out=tmp_path
    )
    assert re.search(r"^  launch ", off.stdout, re.M) and "adopt " not in off.stdout


def _sweeper(tmp_path):
    sweeper = AblationSweeper()
    sweeper.config = OmegaConf.create({"hydra": {"job": {"config_name": "demo"}}})
    return sweeper


def test_summary_counts_runs_and_fails_unless_all_completed(tmp_path, capsys):
    def point(name, state, plan_state="new"):
        run = tmp_path / name
        if state:
            write_status(run, state, error="RuntimeError: boom" if state == "failed" else None)
        if state == "completed":
            write_json(run / "metrics.json", {})
        return Point([], run, plan_state)

    ok = [point("a", "completed"), point("b", "completed", plan_state="completed")]
    assert _sweeper(tmp_path)._summarise(ok, {}) == 0
    assert "1 completed, 1 skipped, 0 adopted, 0 failed" in capsys.readouterr().out
    bad = [*ok, point("c", "failed"), point("d", None)]
    assert _sweeper(tmp_path)._summarise(bad, {tmp_path / "d": "UncompletedJobError: killed"}) == 1
    out = capsys.readouterr()
    assert "1 completed, 1 skipped, 0 adopted, 2 failed" in out.out
    assert re.search(r"failed +\S+/c: RuntimeError: boom", out.out)
    assert re.search(r"failed +\S+/d: UncompletedJobError: killed", out.out)
    assert "2 of 4 runs not completed" in out.err


def test_run_state_reports_runs_whose_scheduler_job_still_lives_as_active(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write_status(run, "running", step=3)
    assert run_state(run) == ("running", "stopped at step 3 without a final status (killed?)")
    (tmp_path / "bin").mkdir()
    squeue = tmp_path / "bin" / "squeue"  # `squeue -h -j <id> -o %T` of a cluster where job 7_1 is queued
    squeue.write_text('#!/bin/sh\n[ "$3" = "7_1" ] && echo PENDING && exit 0\nexit 1\n')
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_json(run / "job.json", {"scheduler": "slurm", "job_id": "7_1", "host": "elsewhere", "pid": 1})
    assert run_state(run) == ("active", "job 7_1")
    assert run_state(run, ask_scheduler=False)[0] == "running"
    write_json(run / "job.json", {"scheduler": "slurm", "job_id": "8", "host": "elsewhere", "pid": 1})
    assert run_state(run)[0] == "running"
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit"])
    try:
        write_json(
            run / "job.json",
            {"scheduler": "local", "job_id": "1", "host": socket.gethostname(), "pid": job.pid},
        )
        assert run_state(run)[0] == "active"
    finally:
        job.kill()
        job.wait()
    assert run_state(run)[0] == "running"
    write_status(run, "completed", step=3)
    assert run_state(run)[0] == "no_metrics"  # not done: collect leaves it out, a launch finishes it
    assert Point([], run, run_state(run)[0]).launch
    write_json(run / "metrics.json", {})
    assert run_state(run) == ("completed", "")


def test_a_job_given_a_run_dir_another_live_job_trains_refuses_it_and_writes_nothing(tmp_path, monkeypatch):
    """A point submitted twice (a sweep rerun while its jobs were queued): the second job to start finds the
    first one's job.json, whose job still lives, and refuses before touching the directory. The same job
    (a requeue) and a job whose predecessor has ended take the directory."""
    from sweeps.common import RunDirTaken, record_job

    run = tmp_path / "run"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "0")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "2")
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit"])
    try:
        host = socket.gethostname()
        write_json(run / "job.json", {"scheduler": "local", "job_id": "1", "host": host, "pid": first.pid})
        before = (run / "job.json").read_bytes()
        with pytest.raises(RunDirTaken, match=r"trained by local job 1, which still lives .* this job \(2\)"):
            record_job(run)
        assert (run / "job.json").read_bytes() == before and [p.name for p in run.iterdir()] == ["job.json"]
        monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "1")  # job 1 itself, requeued: its own directory
        record_job(run)
        assert json.loads((run / "job.json").read_text())["pid"] == os.getpid()
    finally:
        first.kill()
        first.wait()
    write_json(run / "job.json", {"scheduler": "local", "job_id": "1", "host": host, "pid": first.pid})
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "2")
    record_job(run)  # job 1 has ended: job 2 takes over
    assert json.loads((run / "job.json").read_text())["job_id"] == "2"


def test_queued_slurm_jobs_are_found_from_submitits_job_folders_and_named_in_job_json(tmp_path):
    """submitit makes a folder per job (``%j``) right after sbatch answers: an array's tasks <id>_<i> run the
    submissions in order. Each point's job.json then names its queued job (replacing an ended job's, not
    the one the job has written itself)."""
    from sweeps.common import record_queued_job, submitted_job_ids
    from vjepa.runfiles import read_json

    folder = tmp_path / ".submitit"
    assert submitted_job_ids(folder, set(), 2) is None  # nothing submitted yet
    for name in ("40_0", "40_1", "41"):  # an earlier launch's jobs
        (folder / name).mkdir(parents=True)
    before = {p.name for p in folder.iterdir()}
    (folder / "57_1").mkdir()
    assert submitted_job_ids(folder, before, 3) is None  # the array's folders are still being made
    (folder / "57_0").mkdir()
    (folder / "57_2").mkdir()
    assert submitted_job_ids(folder, before, 3) == ["57_0", "57_1", "57_2"]
    (folder / "58").mkdir()
    assert submitted_job_ids(folder, before | {"57_0", "57_1", "57_2"}, 1) == ["58"]

    run = tmp_path / "run"
    record_queued_job(run, "57_0")
    assert read_json(run / "job.json") == {"scheduler": "slurm", "job_id": "57_0", "queued": True}
    write_json(run / "job.json", {"scheduler": "slurm", "job_id": "57_0", "host": "node1", "pid": 7})
    record_queued_job(run, "57_0")  # the job has started and written its own: left alone
    assert read_json(run / "job.json")["host"] == "node1"
    record_queued_job(run, "60_0")  # launched again after that job ended
    assert read_json(run / "job.json")["job_id"] == "60_0"


def test_sacct_shim_reports_flag_states_as_accounting_does():
    """scontrol shows a requeued job being started again as CONFIGURING; accounting (sacct) says RUNNING.
    submitit reads every state it does not know as finished, so the shim must not pass CONFIGURING on."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("sacct_shim", str(ROOT / "tests" / "bin" / "sacct"))
    shim = importlib.util.module_from_spec(importlib.util.spec_from_loader("sacct_shim", loader))
    loader.exec_module(shim)
    assert shim.field_value({"JobState": "CONFIGURING"}, "State") == "RUNNING"
    assert shim.field_value({"JobState": "REQUEUE_HOLD"}, "State") == "PENDING"
    assert shim.field_value({"JobState": "COMPLETED"}, "State") == "COMPLETED"
    assert shim.field_value({"JobState": "COMPLETING"}, "State") == "COMPLETING"  # submitit waits on it


def test_reproduction_scripts_add_random_init_probes_once_per_matching_run(tmp_path):
    """sweeps/reproduce_common.sh: `evaluate baseline=only` on each completed run matching the pattern whose
    metrics.json lacks probe_random/..., nothing else (a fake interpreter records the calls)."""
    runs = tmp_path / "out" / "context_loss" / "preset=tiny"
    for name, metrics in [
        ("context_variant=lambda0,data=real,seed=0", {"loss_final": 0.3}),
        ("context_variant=lambda0,data=real,seed=1", {"probe_random/cifar10_linear/top1": 0.3}),  # has them
        ("context_variant=lambda0,data=real,seed=2", None),  # not completed: no metrics.json
        ("context_variant=l1_const,data=real,seed=0", {"loss_final": 0.3}),  # another variant
    ]:
        (runs / name).mkdir(parents=True)
        if metrics:
            write_json(runs / name / "metrics.json", metrics)
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    script = f"source {ROOT / 'sweeps' / 'reproduce_common.sh'}; status=0; random_init context_loss 'context_variant=lambda0,*'; echo $status"
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path / "out"), "PY": str(fake)}
    res = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "0", res.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        f"-m vjepa.evaluate run_dir={runs / 'context_variant=lambda0,data=real,seed=0'} baseline=only threads=1"
    ]
    for script_name in ("reproduce_tiny.sh", "reproduce_published_tiny.sh"):
        assert "source sweeps/reproduce_common.sh" in (ROOT / "sweeps" / script_name).read_text()


def test_the_reproduction_trains_every_run_at_one_thread(tmp_path):
    """The reproduction scripts give every sweep threads=1 (the golden run's setting), so a table's runs share
    numerics whatever the machine and however many points were left when a session resumed it."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path / "out"), "PYTHON": str(fake)}
    for script_name in ("reproduce_tiny.sh", "reproduce_published_tiny.sh"):
        res = subprocess.run(
            ["bash", str(ROOT / "sweeps" / script_name)], env=env, capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0, res.stderr
    calls = [c.split() for c in (tmp_path / "calls").read_text().splitlines()]
    sweeps = [c for c in calls if c[0].startswith("sweeps/")]
    assert len(sweeps) == 8 and {Path(c[0]).stem for c in sweeps} >= {
        "loss_granularity",
        "data_mix",
        "recipe",
    }
    assert all(c.count("threads=1") == 1 and "preset=tiny" in c for c in sweeps), sweeps


def test_a_sweep_script_of_another_checkout_is_refused_before_any_run(tmp_path):
    """A worktree's sweep script run with a Python whose editable install maps the toolkit to this checkout
    would train this checkout's code under the worktree's name: refused, naming both, before anything is
    written; the reproduction scripts put their own checkout first on the path."""
    other = tmp_path / "worktree"
    (other / "sweeps").mkdir(parents=True)
    (other / "vjepa").mkdir()
    (other / "vjepa" / "__init__.py").write_text("")
    shutil.copy(ROOT / "sweeps" / "loss_granularity.py", other / "sweeps")
    script = other / "sweeps" / "loss_granularity.py"
    assert foreign_checkout(script) == other
    assert foreign_checkout(ROOT / "sweeps" / "loss_granularity.py") is None
    assert foreign_checkout(tmp_path / "train.py") is None

    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'sweeps' / 'plugins'}"}
    env["VJEPA_SWEEPS_OUT"] = str(tmp_path / "out")
    res = subprocess.run(
        [sys.executable, str(script), "preset=tiny", "dry_run=true"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0
    assert f"belongs to the checkout {other}" in res.stderr and f"PYTHONPATH={other}:" in res.stderr
    assert not (tmp_path / "out").exists()

    res = subprocess.run(
        ["bash", "-c", f"source {ROOT / 'sweeps' / 'reproduce_common.sh'}; echo $PYTHONPATH"],
        cwd=other,
        env={**os.environ, "PYTHONPATH": "/elsewhere"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.strip() == f"{other}:{other}/sweeps/plugins:/elsewhere"


class _TimedLauncher:
    """A launcher whose jobs sleep for their point's duration; records when each ran."""

    def __init__(self, seconds: dict[str, float], fail: str = "", crash: str = ""):
        import threading

        self.seconds, self.fail, self.crash = seconds, fail, crash
        self.spans, self.lock = {}, threading.Lock()

    def launch(self, job_overrides, initial_job_idx):
        import time

        from hydra.core.utils import JobReturn, JobStatus

        results = []
        for overrides in job_overrides:
            name = overrides[0]
            start = time.monotonic()
            time.sleep(self.seconds[name])
            with self.lock:
                self.spans[name] = (start, time.monotonic())
            if name == self.crash:
                raise RuntimeError(f"job {name} killed")
            ret = JobReturn()
            ret.status, ret._return_value = JobStatus.COMPLETED, None
            if name == self.fail:
                ret.status, ret._return_value = JobStatus.FAILED, ValueError("boom")
            results.append(ret)
        return results


def test_local_jobs_get_the_gpu_visibility_of_the_process_that_launched_them(tmp_path, monkeypatch):
    """submitit's local executor sets each job's CUDA_VISIBLE_DEVICES, to "" unless given GPUs (and then only
    its first ones): a local sweep on an H200 trained all its runs on the CPU. The launching process relays its
    own visibility, unset included; only a local job restores it."""
    for visible in (None, "", "3", "1,0", "GPU-6b20ea96-c588,MIG-1/2"):
        parent = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
        relay_gpus_to_local_jobs(parent)
        job = {**parent, "SUBMITIT_EXECUTOR": "local", "CUDA_VISIBLE_DEVICES": ""}  # as submitit starts it
        restore_local_gpus(job)
        assert job.get("CUDA_VISIBLE_DEVICES") == visible
        slurm = {**parent, "SUBMITIT_EXECUTOR": "slurm", "CUDA_VISIBLE_DEVICES": "5"}
        restore_local_gpus(slurm)
        assert slurm["CUDA_VISIBLE_DEVICES"] == "5"  # the scheduler's choice stands
    # a real local sweep: its job records the visibility it trained with

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-6b20ea96-c588,MIG-1/2")
    res = _tiny_width_sweep(tmp_path, "steps=1", "predictor.width=16")
    assert res.returncode == 0, res.stderr[-3000:]
    (job,) = (tmp_path / "predictor_width" / "preset=tiny").glob("*/job.json")
    assert json.loads(job.read_text())["cuda_visible_devices"] == "GPU-6b20ea96-c588,MIG-1/2"


def test_local_launches_keep_every_slot_busy_seed_by_seed_and_fail_only_their_own_point(tmp_path):
    """Two slots, runs of unequal cost: the next run starts when the first slot frees, not when the pair ends,
    and seed 0's runs all start before seed 1's (the grid's product lists seeds innermost)."""
    seconds = {"a0": 0.6, "a1": 0.2, "b0": 0.2, "b1": 0.2}
    points = [Point([name, f"seed={name[1]}"], tmp_path / name, "new") for name in ("a0", "a1", "b0", "b1")]
    sweeper = _sweeper(tmp_path)
    sweeper.launcher = _TimedLauncher(seconds, fail="b1", crash="a1")
    errors = sweeper._launch(points, slots=2)
    spans = sweeper.launcher.spans
    assert sorted(spans, key=lambda n: spans[n][0]) == ["a0", "b0", "a1", "b1"]
    assert spans["a1"][0] < spans["a0"][1] and spans["b1"][0] < spans["a0"][1]  # b0's slot ran a1 then b1
    in_flight = max(sum(s <= t < e for s, e in spans.values()) for t, _ in spans.values())
    assert in_flight == 2
    assert errors == {tmp_path / "a1": "RuntimeError: job a1 killed", tmp_path / "b1": "ValueError: boom"}
    # as many slots as runs (SLURM: the scheduler queues): one launch of all, in seed order
    sweeper.launcher = _TimedLauncher(dict.fromkeys(seconds, 0.0))
    assert sweeper._launch(points, slots=4) == {}
    spans = sweeper.launcher.spans
    assert sorted(spans, key=lambda n: spans[n][0]) == ["a0", "b0", "a1", "b1"]


def test_local_sweep_with_fewer_slots_than_runs_completes_every_run(tmp_path):
    """The real submitit local launcher, called from the slot threads, trains all three runs once each."""
    res = _tiny_width_sweep(
        tmp_path, "steps=2", "ckpt_every=2", "predictor.width=16,32,64", "hydra.sweeper.max_parallel=2"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "launcher submitit_local: 2 at a time x 1 thread(s)" in res.stdout
    assert "3 completed, 0 skipped, 0 adopted, 0 failed" in res.stdout
    runs = [r.parent for r in (tmp_path / "predictor_width" / "preset=tiny").glob("*/status.json")]
    assert sorted(int(re.search(r"predictor.width=(\d+),seed=0", r.name)[1]) for r in runs) == [16, 32, 64]
    assert all(json.loads((r / "status.json").read_text())["state"] == "completed" for r in runs)


def test_runs_of_the_sweep_beside_the_points_of_a_call_time_its_launches(tmp_path, compose_cfg):
    """A call that names one point (recipe_step=context seed=1) still times its launch by the sweep's runs that
    earlier calls completed in the same folder, costed from their config.yaml, beside its own completed points;
    runs not completed and configs this code cannot cost are left out."""
    from sweeps.common import completed_in_folders
    from vjepa.flops import step_cost

    sweep = tmp_path / "recipe" / "preset=tiny"
    cfg = compose_cfg("steps=7")

    def run(name, state="completed", config=cfg):
        d = sweep / name
        d.mkdir(parents=True)
        OmegaConf.save(config, d / "config.yaml")
        write_status(d, state)
        write_json(d / "metrics.json", {"wall_time_s": 10.0, "threads": 1, "device": "cpu"})
        return d

    image_cfg = compose_cfg("steps=7", "data.mix=image")
    done, other = run("a"), run("b", config=image_cfg)
    run("c", state="running")
    run("d", config=OmegaConf.create({"steps": 7}))  # no model: cannot be costed
    point = run("e")
    (sweep / "f").mkdir()  # a job that wrote nothing yet
    got = completed_in_folders([point])
    assert [d for d, _ in got] == [done, other, point]
    assert got[0][1] == step_cost(cfg).flops * 7
    assert got[1][1] == step_cost(image_cfg).flops * 7 != got[0][1]
    assert completed_in_folders([tmp_path / "nowhere" / "x"]) == []


def test_wall_time_estimate_times_the_pool_by_runs_completed_here_alike(tmp_path):
    """measured_rate: FLOPs / training wall time of this host's completed runs at the same threads and device
    (median); pool_wall_time: each run starts on the first free slot."""
    from sweeps.common import measured_rate, pool_wall_time

    def run(name, wall, threads=1, device="cpu", host=None, **status):
        d = tmp_path / name
        write_status(d, "completed", **status)
        if host:  # trained on another machine
            write_json(d / "status.json", {**json.loads((d / "status.json").read_text()), "host": host})
        write_json(d / "metrics.json", {"wall_time_s": wall, "threads": threads, "device": device})
        return d

    runs = [
        (run("a", 100.0), 1e12),  # 10 GFLOP/s
        (run("b", 50.0), 1e12),  # 20
        (run("c", 25.0), 1e12),  # 40
        (run("d", 1.0, threads=2), 1e12),  # other thread count
        (run("e", 1.0, device="cuda:0"), 1e12),  # other device
        (run("f", 1.0, host="elsewhere"), 1e12),  # other host
        (run("g", 1.0, reused_from="../x"), 1e12),  # adopted: trained elsewhere
        (tmp_path / "never", 1e12),  # no files
    ]
    assert measured_rate(runs, 1, "cpu") == (2e10, 3)
    assert measured_rate(runs[:2], 1, "cpu") == (1.5e10, 2)
    assert measured_rate(runs, 1, "cuda") == (1e12, 1)
    assert measured_rate(runs, 4, "cpu") is None
    assert pool_wall_time([3, 1, 1, 1], 2) == 3  # the short slot runs the three short ones
    assert pool_wall_time([1, 1, 3], 2) == 4
    assert pool_wall_time([2, 2], 1) == 4 and pool_wall_time([], 2) == 0


def _recorded_spread_table(path, b_minus_a=(0.01, 0.03, 0.02)):
    """A results table of two variants of another sweep over seeds 0-2 whose same-seed differences of
    probe/shapes_det/ap are ``b_minus_a`` (sd 0.01 by default), the seeds sharing offsets."""
    import pandas as pd

    rows = []
    for s, (base, d) in enumerate(zip((0.10, 0.20, 0.15), b_minus_a)):
        for variant, value in (("0.6", base), ("0.75", base + d)):
            rows.append(
                {
                    "run_id": f"mask_ratio/preset=tiny/mask.ratio={variant},seed={s}",
                    "sweep": "mask_ratio",
                    "preset": "tiny",
                    "variant": variant,
                    "seed": s,
                    "status": "completed",
                    "config_hash": f"h{variant}{s}",
                    "probe/shapes_det/ap": value,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)


def test_dry_run_prints_the_smallest_effect_the_seeds_detect_and_the_seeds_an_effect_needs(tmp_path):
    """loss_granularity's headline metrics with a recorded spread: probe/shapes_det/ap (coco_apbox's stand-in)
    alone; its line is vjepa.power's MDE at the plan's 3 seeds for the table's paired sd, and with
    power.effect the seeds needed, their runs and FLOPs; the key names no run."""
    from vjepa.power import minimum_detectable_effect, seeds_needed

    table = tmp_path / "results.csv"
    _recorded_spread_table(table)
    args = ["preset=tiny", "hydra/launcher=basic", "dry_run=true", f"hydra.sweeper.recorded={table}"]
    res = _run_sweep("loss_granularity", *args, "power.effect=0.01", out=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "power of 3 seed(s) per variant" in res.stdout and str(table) in res.stdout
    (line,) = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("  probe/")]
    metric, sd, mde, seeds, runs, flop = line[:6]
    assert metric == "probe/shapes_det/ap"
    assert sd == "0.01" and mde == f"{minimum_detectable_effect(0.01, 3):.3g}"  # printed to 3 digits
    k = seeds_needed(0.01, 0.01)
    assert int(seeds) == k and int(runs) == 2 * k
    assert "paired: 3 same-seed differences of 1 variant pair(s) in 1 sweep(s), 6 runs" in " ".join(line)
    plan = [
        ln.split() for ln in res.stdout.splitlines() if ln.startswith("  skip") or ln.startswith("  launch")
    ]
    per_run = {r[4] for r in plan}
    assert len(plan) == 6 and len(per_run) == 1 and flop == human_flops(k * 2, per_run.pop())
    assert "CPU-h: core-hours of training unknown" in res.stdout  # no run of the sweep was timed
    # the sweep key names no run and is not in the configuration a run trains with
    assert all("power" not in r[6] for r in plan)
    _, train = _compose_point("loss_granularity", ["preset=tiny", "power.effect=0.01"])
    assert "power" not in train and not {"cluster", "sweep", "dry_run", "hydra"} & set(train)

    # without power.effect: the detectable effect only; a bad effect is refused
    res = _run_sweep("loss_granularity", *args, out=tmp_path)
    (line,) = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("  probe/")]
    assert line[2] == f"{minimum_detectable_effect(0.01, 3):.3g}"
    assert "seeds for" not in res.stdout
    bad = _run_sweep("loss_granularity", *args, "power.effect=big", out=tmp_path)
    assert bad.returncode != 0 and "power.effect=big: not a number" in bad.stderr


def human_flops(runs: int, per_run: str) -> str:
    from sweeps.common import human

    return human(runs * float(per_run[:-1]) * {"T": 1e12, "P": 1e15, "G": 1e9}[per_run[-1]])


def test_dry_run_power_without_a_recorded_spread_says_so_and_reads_own_runs(tmp_path, monkeypatch):
    """No results table: the completed runs under the sweeps' output folder give the spread (their
    metrics.json), and timed on CPU here they give the CPU-hours; with none, the line says no spread is
    known and prints no number."""
    import sweeps.power_plan as power_plan
    from vjepa.power import minimum_detectable_effect, seeds_needed

    monkeypatch.setattr(power_plan, "REPO_RESULTS", tmp_path / "absent.csv")
    out = tmp_path / "sweeps_out"
    point_dir = out / "loss_granularity" / "preset=tiny"
    points = [
        Point([f"loss={v}", f"seed={s}"], point_dir / f"loss={v},seed={s}", "new", steps=1000, step_flops=1e9)
        for v in ("block", "token")
        for s in (0, 1, 2)
    ]
    for p in points:
        p.probe_tasks = ("shapes_det", "shapes_seg")
    kw = {"sweeps_root": out, "peak_tflops": 989.0, "mfu": 0.4}
    lines = power_plan.power_lines("loss_granularity", "tiny", points, effect=0.01, **kw)
    assert len(lines) == 1 and "no seed spread known for preset=tiny" in lines[0]
    assert not re.search(r"\d\.\d", lines[0])

    # own completed runs: two variants of another sweep, seeds 0 and 1, differences 0.01 and 0.03
    for variant, values in (("0.6", (0.10, 0.20)), ("0.75", (0.11, 0.23))):
        for seed, value in enumerate(values):
            _, trained = _compose_point(
                "mask_ratio", ["preset=tiny", f"mask.ratio={variant}", f"seed={seed}"]
            )
            run = out / "mask_ratio" / "preset=tiny" / f"mask.ratio={variant},seed={seed}"
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(OmegaConf.to_yaml(trained))
            write_status(run, "completed", step=1000)
            write_json(run / "metrics.json", {"probe": {"shapes_det": {"ap": value}}, "device": "cpu"})
    # a completed run of this sweep, timed here on CPU: 2 threads x 1000 s for its FLOPs
    _, trained = _compose_point("loss_granularity", ["preset=tiny", "loss=block", "seed=0"])
    done = points[0].run_dir
    done.mkdir(parents=True)
    (done / "config.yaml").write_text(OmegaConf.to_yaml(trained))
    write_status(done, "completed", step=trained.steps, host=socket.gethostname())
    write_json(done / "metrics.json", {"wall_time_s": 1000.0, "threads": 2, "device": "cpu"})
    from vjepa.flops import step_cost

    rate = step_cost(trained).flops * trained.steps / 2000.0  # FLOPs per core-second

    lines = power_plan.power_lines("loss_granularity", "tiny", points, effect=0.01, **kw)
    assert "completed run(s) under" in lines[0]
    (line,) = [ln.split() for ln in lines if ln.startswith("  probe/")]
    sd = math.sqrt(((0.01 - 0.03) ** 2) / 2)
    assert line[1:3] == [f"{sd:.3g}", f"{minimum_detectable_effect(sd, 3):.3g}"]
    k = seeds_needed(0.01, sd)
    assert int(line[3]) == k
    assert float(line[7]) == pytest.approx(k * 2 * 1e12 / rate / 3600, rel=1e-2)  # CPU-h
    assert "median of 1 run(s) of this sweep completed here on CPU" in lines[-1]


# ---- the console of a local sweep, and its stop ----------------------------------------------------------
def _alive(pid) -> bool:
    """Whether process ``pid`` runs (a zombie, already dead, does not)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line names ``text`` (a sweep's job folder is in its jobs' command lines)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if text.encode() in (proc / "cmdline").read_bytes() and _alive(proc.name):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _tiny_width_command(*args):
    """predictor_width's two points 16 and 32 at seed 0 on the test-sized tiny model, local jobs of 1 thread."""
    from tests.conftest import TINY_TEST

    small = [o for o in TINY_TEST if not o.startswith("predictor.width")]
    common = ["seed=0", "probes=none", "threads=1", "hydra/launcher=submitit_local", "predictor.width=16,32"]
    return [
        sys.executable,
        str(ROOT / "sweeps" / "predictor_width.py"),
        "preset=tiny",
        *small,
        *common,
        *args,
    ]


def _signal_sweep(cmd, env, runs: Path, log: Path, sig, ready) -> str:
    """Start the sweep ``cmd``, send it ``sig`` once ``ready(steps)`` holds for the steps its runs'
    status.json files show, check that it exits 75 (stopped or drained) and return its console."""
    with log.open("w") as out:
        driver = subprocess.Popen(cmd, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not ready([json.loads(p.read_text()).get("step", 0) for p in runs.glob("*/status.json")]):
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        driver.send_signal(sig)
        assert driver.wait(timeout=240) == 75, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    return log.read_text()


def test_sigterm_to_a_local_sweep_checkpoints_every_run_leaves_no_process_and_the_same_command_resumes(
    tmp_path,
):
    """SIGTERM to the sweep's process once both runs have logged a step, mid-training: every run writes a
    checkpoint and exits as interrupted, the sweep exits 75 once they have, and no process of the sweep is
    left (its jobs' controllers and trainers, by the pids job.json and status.json record, and any process
    naming its job folder). The same command resumes both from their checkpoints to completed, its console
    showing each run's progress (step and loss)."""
    from sweeps.common import job_logs

    cmd = _tiny_width_command("steps=200", "log_every=5", "ckpt_every=5")
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path), "VJEPA_SWEEP_PROGRESS_S": "0"}
    runs = tmp_path / "predictor_width" / "preset=tiny"
    both_stepped = lambda steps: len(steps) == 2 and min(steps) > 0  # noqa: E731
    first = _signal_sweep(cmd, env, runs, tmp_path / "first.log", signal.SIGTERM, both_stepped)
    assert "SIGTERM: stopping" in first and "2 interrupted" in first, first[-3000:]
    dirs = sorted(r.parent for r in runs.glob("*/status.json"))
    assert len(dirs) == 2
    stopped_at = {}
    for run in dirs:
        status = json.loads((run / "status.json").read_text())
        job = json.loads((run / "job.json").read_text())
        assert status["state"] == "interrupted", status
        assert 0 < status["step"] < 200 and status["checkpoint_step"] == status["step"]
        assert _checkpoint_step(run) == status["step"]  # the checkpoint of the step it stopped at
        # the training process (status.json, job.json) and its job's controller (the local job id)
        for pid in (status["pid"], job["pid"], job["job_id"]):
            assert not _alive(pid), f"{run.name}: process {pid} survived the stop"
        stopped_at[run] = status["step"]
    assert _processes_naming(str(runs / ".submitit")) == []

    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "2 completed, 0 skipped, 0 adopted, 0 failed" in again.stdout
    for run, step in stopped_at.items():
        assert json.loads((run / "status.json").read_text())["state"] == "completed"
        err, _ = job_logs(run, runs / ".submitit" / "%j")  # the log of the job that resumed it
        assert f"resuming {run} from step {step}" in err.read_text()
        assert f"{run.name}: {err.relative_to(tmp_path)}" in again.stdout  # the summary names it
    # the console: per-run progress lines with step and loss, while they trained
    progress = re.findall(
        r"^\[sweep\] #(\d) \S+: step (\d+)/200 \(\d+%\), loss (\d\.\d{4})", again.stdout, re.M
    )
    assert {idx for idx, _, _ in progress} == {"0", "1"}, again.stdout[-3000:]
    assert any(0 < int(step) < 200 for _, step, _ in progress)


def test_sigusr1_drains_a_local_sweep_the_running_run_finishes_the_next_does_not_start(tmp_path):
    """SIGUSR1 to a sweep of two points run one at a time, while the first trains: it finishes to completed,
    the second never starts (no run directory files), the sweep exits 75 saying so, and the same command then
    skips the completed run and trains the other."""
    cmd = _tiny_width_command("steps=40", "log_every=5", "ckpt_every=20", "hydra.sweeper.max_parallel=1")
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path), "VJEPA_SWEEP_PROGRESS_S": "0"}
    runs = tmp_path / "predictor_width" / "preset=tiny"
    first = _signal_sweep(
        cmd, env, runs, tmp_path / "first.log", signal.SIGUSR1, lambda steps: max(steps, default=0) > 0
    )
    assert "SIGUSR1: draining" in first, first[-3000:]
    assert "1 completed" in first and "1 not started" in first and "(the sweep was drained)" in first, first[
        -3000:
    ]
    (done,) = [json.loads(p.read_text()) for p in runs.glob("*/status.json")]
    assert done["state"] == "completed" and done["step"] == 40
    assert _processes_naming(str(runs / ".submitit")) == []

    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 completed, 1 skipped" in again.stdout, again.stdout[-3000:]
    states = [json.loads(p.read_text())["state"] for p in runs.glob("*/status.json")]
    assert states == ["completed", "completed"]


def test_a_sweep_drained_during_its_last_runs_still_exits_75(tmp_path):
    """SIGUSR1 while the sweep's last runs train: they complete, and the sweep exits 75 all the same, so a
    reproduction script that runs sweeps in turn starts no further one (it used to exit 0 and the script went
    on to its next sweep)."""
    cmd = _tiny_width_command("steps=30", "log_every=5", "ckpt_every=10", "hydra.sweeper.max_parallel=2")
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path), "VJEPA_SWEEP_PROGRESS_S": "0"}
    runs = tmp_path / "predictor_width" / "preset=tiny"
    both_stepped = lambda steps: len(steps) == 2 and min(steps) > 0  # noqa: E731
    console = _signal_sweep(cmd, env, runs, tmp_path / "drained.log", signal.SIGUSR1, both_stepped)
    assert "every point completed; exit 75" in console, console[-3000:]
    states = [json.loads(p.read_text())["state"] for p in runs.glob("*/status.json")]
    assert states == ["completed", "completed"]


def _checkpoint_step(run_dir) -> int:
    from vjepa.runfiles import load_checkpoint

    return int(load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["step"])


def test_status_json_carries_the_last_logged_step_and_the_checkpoint_a_rerun_resumes_from(compose_cfg):
    """status.json follows metrics.jsonl at every log step, not only at checkpoints (the console and collect
    read it), and names the checkpoint a rerun resumes from."""
    from tests.conftest import TINY_TEST
    from vjepa.runfiles import MetricsLog, read_status
    from vjepa.trainer import Trainer

    cfg = compose_cfg(*TINY_TEST, "steps=9", "log_every=2", "ckpt_every=4")
    trainer = Trainer(cfg)
    seen = []
    original = trainer.train_step

    def train_step(step, batch, **kw):  # before each step: what a reader of the run directory sees now
        status = read_status(cfg.run_dir)
        logged = [r["step"] for r in MetricsLog(Path(cfg.run_dir) / "metrics.jsonl").read()]
        seen.append((step, status["step"], status["checkpoint_step"], logged[-1] if logged else 0))
        return original(step, batch, **kw)

    trainer.train_step = train_step
    trainer.run()
    # (step about to run, status step, status checkpoint_step, last logged step)
    assert seen == [
        (0, 0, 0, 0),
        (1, 0, 0, 0),
        (2, 2, 0, 2),
        (3, 2, 0, 2),
        (4, 4, 4, 4),
        (5, 4, 4, 4),
        (6, 6, 4, 6),
        (7, 6, 4, 6),
        (8, 8, 8, 8),
    ]
    status = read_status(cfg.run_dir)
    assert status["state"] == "completed" and status["step"] == status["checkpoint_step"] == 9


def test_sigterm_checkpoints_and_stops_a_run_without_handing_over_to_the_previous_handler(compose_cfg):
    """Under submitit SIGTERM was "bypassed" (logged, ignored): a stopped local sweep left its trainers
    running. Now SIGTERM stops a run as the preemption signal does (checkpoint at the step boundary,
    status interrupted) but is not handed over (submitit's preemption handler would requeue the job); the
    previous handlers are back afterwards, and the run resumes from that checkpoint."""
    import signal as sig

    from tests.conftest import TINY_TEST
    from vjepa.preemption import stop_on_signal
    from vjepa.runfiles import read_status
    from vjepa.trainer import Interrupted, Trainer, train

    cfg = compose_cfg(*TINY_TEST, "steps=6", "log_every=1", "ckpt_every=100")
    calls = []
    handlers = {s: (lambda signum, frame, s=s: calls.append(s)) for s in (sig.SIGTERM, sig.SIGUSR2)}
    old = {s: sig.signal(s, h) for s, h in handlers.items()}  # stand in for submitit's bypass and requeue
    try:
        trainer = Trainer(cfg)
        original = trainer.train_step

        def train_step(step, batch, **kw):
            if step == 1:
                os.kill(os.getpid(), sig.SIGTERM)
            return original(step, batch, **kw)

        trainer.train_step = train_step
        with pytest.raises(Interrupted), stop_on_signal(trainer.request_stop):
            trainer.run()
        assert calls == []  # neither bypassed nor handed over to a requeue
        assert {s: sig.getsignal(s) for s in handlers} == handlers
        status = read_status(cfg.run_dir)
        assert status["state"] == "interrupted" and status["step"] == status["checkpoint_step"] == 2
        assert _checkpoint_step(cfg.run_dir) == 2
    finally:
        for s, h in old.items():
            sig.signal(s, h)
    assert train(cfg)["steps"] == 6  # resumes from that checkpoint


def test_dry_run_without_a_completed_run_times_a_few_steps_for_its_estimate(tmp_path):
    """No run of the sweep completed here: the dry run trains the first launch for a few steps in a
    temporary directory, says so and how long it took, and estimates the wall time from them; it writes
    nothing in the sweep's folder."""
    cmd = _tiny_width_command("steps=50", "dry_run=true")
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path)}
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(
        r"estimated wall time here: ([\d.e-]+) h, 2 at a time .* (\S+)FLOP/s per run: timed from 3 step\(s\), after "
        r"1 warm-up, of (\S+) in this process at 1 thread\(s\) on (cpu|cuda), alone: the timing took ([\d.]+) s",
        res.stdout,
    )
    assert m, res.stdout[-3000:]
    assert "predictor.width=16," in m[3] and float(m[5]) < 60
    # both runs at the timed rate, side by side: the longer one's FLOPs over that rate
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("  launch")]
    scale = {"G": 1e9, "T": 1e12, "M": 1e6, "P": 1e15}

    def number(text):
        return float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)

    longest = max(number(r[4]) for r in rows)
    assert float(m[1]) * 3600 == pytest.approx(longest / number(m[2]), rel=0.02)
    assert list(tmp_path.rglob("*")) == []  # nothing written in the sweep's output folder


def test_a_run_records_the_probes_it_skipped_and_the_sweep_summary_names_them(
    compose_cfg, monkeypatch, capsys
):
    """A probe task without data is skipped (probes.missing_data=skip), which only a job's log said: the run
    records it in metrics.json (probe/skipped) and the sweep's summary names the task and the runs."""
    import vjepa.probes
    from tests.conftest import TINY_TEST
    from vjepa.runfiles import read_json
    from vjepa.trainer import train

    def run_probes(encoder, probes_cfg, *args, **kwargs):  # shapes_det's data missing: nothing for it
        tasks = [t for t in probes_cfg.tasks if t != "shapes_det"]
        return {f"probe/{t}/{k}": 0.5 for t in tasks for k in ("top1", "time_s")}

    monkeypatch.setattr(vjepa.probes, "run_probes", run_probes)
    cfg = compose_cfg(*[o for o in TINY_TEST if o != "probes=none"], "steps=1", "probes=fast")
    final = train(cfg)
    assert final["probe/skipped"] == ["shapes_det"]
    assert read_json(Path(cfg.run_dir) / "metrics.json")["probe/skipped"] == ["shapes_det"]

    done = Point([], Path(cfg.run_dir), "completed")
    clean = Point([], Path(cfg.run_dir).parent / "clean", "new")
    write_status(clean.run_dir, "completed")
    write_json(clean.run_dir / "metrics.json", {"probe/shapes_seg/miou": 0.5})
    assert _sweeper(Path(cfg.run_dir).parent)._summarise([done, clean], {}) == 0
    out = capsys.readouterr().out
    assert "probes skipped for want of data" in out and "shapes_det, in 1 run(s):" in out
    assert f"\n  {cfg.run_dir}\n" in out and str(clean.run_dir) not in out


def test_progress_lines_follow_each_runs_log_throttled_off_a_terminal_and_live_on_one(tmp_path):
    """The monitor's view of two runs from their run directories: off a terminal a line per run when its
    logged step has changed (and ``every_s`` has passed), with step, loss, samples/s and ETA, and one when it
    ends; on a terminal one live line per run, redrawn in place."""
    import io

    from sweeps.sweeper import LocalMonitor
    from vjepa.runfiles import MetricsLog

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    runs = [Point([], tmp_path / name, "new") for name in ("a", "b")]
    for run in runs:
        write_status(run.run_dir, "running", step=0, steps=100, checkpoint_step=0)

    def log(run, step, loss, state="running"):
        MetricsLog(run.run_dir / "metrics.jsonl").append(
            {"step": step, "loss": loss, "samples_per_s": 80.0, "wall_time_s": step * 0.5}
        )
        write_status(run.run_dir, state, step=step, steps=100, checkpoint_step=0)

    plain = io.StringIO()
    monitor = LocalMonitor(every_s=0, stream=plain)
    for i, run in enumerate(runs):
        monitor.started(i, run)
    monitor.refresh()
    assert plain.getvalue() == ""  # nothing logged yet
    log(runs[0], 10, 0.5)
    log(runs[0], 20, 0.4)
    monitor.refresh()
    monitor.refresh()  # unchanged: no second line
    assert plain.getvalue().splitlines() == [
        "[sweep] #0 a: step 20/100 (20%), loss 0.4000, 80 samples/s, ETA 40s"
    ]
    log(runs[1], 100, 0.3, state="completed")
    monitor.refresh()
    assert (
        plain.getvalue().splitlines()[-1]
        == "[sweep] #1 b: completed, step 100/100 (100%), loss 0.3000, 80 samples/s"
    )
    assert list(monitor.runs) == [runs[0].run_dir]  # an ended run leaves the display

    slow = LocalMonitor(every_s=3600, stream=io.StringIO())
    slow.started(0, runs[0])
    slow.refresh()
    log(runs[0], 30, 0.35)
    slow.refresh()
    assert len(slow.stream.getvalue().splitlines()) == 1  # throttled: at most a line per run per hour

    terminal = Terminal()
    live = LocalMonitor(stream=terminal)
    assert live.tty
    live.started(0, runs[0])
    live.refresh()
    log(runs[0], 40, 0.3)
    live.refresh()
    text = terminal.getvalue()
    assert text.count("\x1b[1F\x1b[J") == 1  # the second drawing replaced the first
    assert text.endswith("[sweep] #0 step 40/100 (40%), loss 0.3000, 80 samples/s, ETA 30s  a\n")


def test_python_m_sweeps_runs_a_sweep_declared_by_its_yaml_alone(tmp_path):
    """`python -m sweeps` lists the sweeps (status 2); `python -m sweeps <name>` plans one that has no script."""
    from sweeps.__main__ import sweep_names

    names = sweep_names()
    scripts = {p.stem for p in (ROOT / "sweeps").glob("*.py")}
    assert {"loss_granularity", "mask_ratio", "target_norm"} <= set(names) and "base" not in names
    assert "target_norm" not in scripts  # declared by sweeps/conf/target_norm.yaml alone
    env = {**os.environ, "VJEPA_SWEEPS_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    bad = subprocess.run([sys.executable, "-m", "sweeps", "nope"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown sweep 'nope'" in bad.stderr and "target_norm" in bad.stderr
    plan = subprocess.run(
        [sys.executable, "-m", "sweeps", "target_norm", "preset=tiny", "seed=0", "dry_run=true"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert plan.returncode == 0, plan.stderr[-2000:]
    out = plan.stdout + plan.stderr
    assert "loss.target_norm=layer" in out and "loss.target_norm=none" in out
    assert not any(tmp_path.glob("target_norm/*/*/config.yaml"))  # a dry run trains nothing


def test_a_reproduction_step_runs_only_on_the_platform_its_table_was_trained_on(
    tmp_path, monkeypatch, capsys
):
    """sweeps/pin_platform.py, the reproduction scripts' Python: a sweep whose completed runs were trained on
    another platform is skipped (exit 0, said), one with none or with runs of this platform runs, and a
    random-init probe runs only where its run was trained; other commands run unchanged."""
    import sweeps.pin_platform as pin
    from vjepa.golden import platform

    here, avx2 = platform("cpu"), "cpu x86_64 AVX2-or-other, torch 0"
    out = tmp_path / "sweeps_out"
    monkeypatch.setenv("VJEPA_SWEEPS_OUT", str(out))
    donors = {}  # sweep name: the other sweeps' runs its dry run would adopt
    monkeypatch.setattr(pin, "planned_donors", lambda argv: donors.get(Path(argv[0]).stem, []))

    def run(sweep, name, where, state="completed"):
        d = out / sweep / "preset=tiny" / name
        write_status(d, state)
        write_json(d / "metrics.json", {"platform": where})
        return d

    elsewhere = run("loss_granularity", "loss=block,seed=0", avx2)
    run("loss_granularity", "loss=token,seed=0", avx2)
    run("predictor_width", "predictor.width=16,seed=0", here)
    run("predictor_width", "predictor.width=32,seed=0", avx2, state="failed")  # not completed: no pin
    args = ["preset=tiny", "threads=1", "device=cpu"]
    why = pin.reason_to_skip(["sweeps/loss_granularity.py", *args])
    assert (
        why
        == f"sweep loss_granularity: its completed or checkpointed runs were trained elsewhere (2 on {avx2}); "
        f"this machine is {here}"
    )
    assert pin.reason_to_skip(["sweeps/predictor_width.py", *args]) is None
    assert pin.reason_to_skip(["sweeps/data_mix.py", *args]) is None  # nothing done yet: starts here
    # a run stopped with a checkpoint elsewhere pins its sweep too (resuming it here would mix platforms)
    stopped = out / "data_mix" / "preset=tiny" / "data.mix=video,seed=0"
    write_status(stopped, "interrupted", platform=avx2)
    assert pin.reason_to_skip(["sweeps/data_mix.py", *args]) is None  # no checkpoint yet: it restarts here
    (stopped / "checkpoints").mkdir()
    (stopped / "checkpoints" / "last.pt").write_bytes(b"")
    assert f"(1 on {avx2})" in pin.reason_to_skip(["sweeps/data_mix.py", *args])
    # a sweep with no run of its own that would adopt another sweep's run is pinned to that run's platform
    assert pin.reason_to_skip(["sweeps/recipe.py", *args]) is None
    donors["recipe"] = [elsewhere]
    assert f"(1 on {avx2})" in pin.reason_to_skip(["sweeps/recipe.py", *args])
    plan = (
        "  launch        4,096     17G     2000      34T 2.39e-05  sweeps_out/x/preset=tiny/a=1,seed=0\n"
        "  adopt         4,096     17G     2000      34T 2.39e-05  sweeps_out/x/preset=tiny/a=2,seed=0 "
        "(reuse: same config as sweeps_out/y/preset=tiny/b=2,seed=0)\n"
    )
    assert [m.group("donor") for m in pin.ADOPTED.finditer(plan)] == ["sweeps_out/y/preset=tiny/b=2,seed=0"]
    run("mask_ratio", "mask.ratio=0.6,seed=0", here)
    run("mask_ratio", "mask.ratio=0.9,seed=0", avx2)
    assert "1 on" in pin.reason_to_skip(["sweeps/mask_ratio.py", *args])  # mixed: never added to
    probe = ["-m", "vjepa.evaluate", f"run_dir={elsewhere}", "baseline=only", "threads=1"]
    assert pin.reason_to_skip(probe) == (
        f"random-init probe of {elsewhere}: trained on {avx2}, this machine is {here}"
    )
    local = out / "predictor_width" / "preset=tiny" / "predictor.width=16,seed=0"
    assert pin.reason_to_skip(["-m", "vjepa.evaluate", f"run_dir={local}", "baseline=only"]) is None
    assert pin.main(["sweeps/loss_granularity.py", *args]) == 0
    assert "[pin] skipped sweep loss_granularity" in capsys.readouterr().out

    script = ROOT / "sweeps" / "pin_platform.py"
    ran = subprocess.run(
        [sys.executable, str(script), "-c", "import sys; print('ran', sys.argv[1:])", "a=1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout.strip() == "ran ['a=1']", ran.stderr
