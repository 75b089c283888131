"""Sweeps meeting runs already on disk: leftover job folders, runs whose name hides a changed configuration,
runs trained in another arithmetic (sweeps/existing_runs.py: adopt_run, stored_run_differences,
trained_precision, identical_run; sweeps/common.py: run_entries, launch_device_type; the sweeper's plan)."""

import json
import re
import socket

import pytest
from omegaconf import OmegaConf

from sweeps import common
from sweeps.common import launch_device_type, run_entries
from sweeps.existing_runs import adopt_run, identical_run, stored_run_differences, trained_precision
from tests.conftest import TINY_TEST
from tests.test_sweeps import _compose_point, _run_sweep
from vjepa.config_check import resolved_precision
from vjepa.runfiles import write_json, write_status

SMALL = [o for o in TINY_TEST if not o.startswith("predictor.width")]
MASK_POINT = ["preset=tiny", *SMALL, "steps=4", "ckpt_every=2"]  # + seed=, mask.ratio=: a mask_ratio point
WIDTH_POINT = ["preset=tiny", "predictor.width=64", "seed=0"]  # predictor_width: 4 heads at head_dim 16
DEAD_PID = 2**22 + 1  # above Linux's largest pid: no process


def _finished_run(run_dir, train_cfg, precision="fp32", device="cpu"):
    """A completed run directory as the trainer leaves it: ``train_cfg`` in config.yaml naming ``run_dir``, a
    checkpoint, and status.json / metrics.json recording the arithmetic and device it trained in."""
    cfg = OmegaConf.create(OmegaConf.to_container(train_cfg, resolve=True))
    cfg.run_dir = str(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    write_json(run_dir / "metrics.json", {"loss_final": 0.25, "device": device, "precision": precision})
    write_status(run_dir, "completed", step=4, steps=4, precision=precision)
    return run_dir


def _job_residue(run_dir):
    """What a job leaves when it fails its config check (or dies) before the trainer writes a file."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run_dir / "mask_ratio.log").write_text("error: the job died here\n")
    job = {"scheduler": "local", "job_id": "1", "host": socket.gethostname(), "pid": DEAD_PID}
    write_json(run_dir / "job.json", job)
    (run_dir / "overrides.yaml").write_text("- mask.ratio=0.6\n")
    return run_dir


def _mask_point(out, seed):
    """(run directory, training config) of mask_ratio's 0.6 point at ``seed``, under ``out``."""
    cfg, train = _compose_point("mask_ratio", [*MASK_POINT, f"seed={seed}", "mask.ratio=0.6"])
    return out / "mask_ratio" / "preset=tiny" / str(cfg.hydra.sweep.subdir), train


def _files(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


# ---- 1. a leftover job folder -----------------------------------------------------------------------------
def test_a_folder_left_by_a_job_that_died_before_training_adopts_the_identical_run_and_keeps_its_files(
    tmp_path,
):
    run_dir, train = _mask_point(tmp_path, seed=0)
    donor = _finished_run(tmp_path / "loss_granularity" / "preset=tiny" / "loss=token,seed=0", train)
    _job_residue(run_dir)

    res = _run_sweep(
        "mask_ratio", *MASK_POINT, "seed=0", "mask.ratio=0.6", "hydra/launcher=basic", out=tmp_path
    )

    assert res.returncode == 0, res.stderr
    assert "0 completed, 0 skipped, 1 adopted, 0 failed" in res.stdout
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and (run_dir.parent / status["reused_from"]).resolve() == donor
    assert (run_dir / "metrics.json").read_text() == (donor / "metrics.json").read_text()
    assert OmegaConf.load(run_dir / "config.yaml").run_dir == str(run_dir)
    # the job's own files stay; overrides.yaml is the point's
    assert (run_dir / "mask_ratio.log").read_text() == "error: the job died here\n"
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "seed: 0\n"
    assert "mask.ratio=0.6" in (run_dir / "overrides.yaml").read_text()
    assert not [p.name for p in run_dir.parent.iterdir() if p.name.endswith((".adopting", ".replaced"))]


def test_a_folder_holding_run_files_is_never_overwritten_by_an_adoption(tmp_path):
    """Adoption into a directory with a run file (here config.yaml: a run killed before its first status)
    is refused and changes nothing; the plan launches such a point (its trainer resumes it) instead."""
    donors = tmp_path / "loss_granularity" / "preset=tiny"
    started, train = _mask_point(tmp_path, seed=1)
    _finished_run(donors / "loss=token,seed=1", train)
    _job_residue(started)
    (started / "config.yaml").write_text(OmegaConf.to_yaml(train))
    before = _files(started)

    with pytest.raises(FileExistsError, match="holds config.yaml"):
        adopt_run(donors / "loss=token,seed=1", started, train, ["mask.ratio=0.6", "seed=1"])
    assert _files(started) == before and run_entries(started) == ["config.yaml"]
    assert run_entries(tmp_path / "nowhere") == [] and run_entries(_job_residue(tmp_path / "left")) == []

    leftover, train0 = _mask_point(tmp_path, seed=0)
    _finished_run(donors / "loss=token,seed=0", train0)
    _job_residue(leftover)
    dry = _run_sweep(
        "mask_ratio", *MASK_POINT, "seed=0,1", "mask.ratio=0.6", "device=cpu", "dry_run=true", out=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    rows = [line.split() for line in dry.stdout.splitlines() if line.startswith(("  adopt", "  launch"))]
    action = {row[6]: row[0] for row in rows}
    assert action == {str(leftover): "adopt", str(started): "launch"}, dry.stdout
    assert _files(started) == before


# ---- 2. a run whose name hides a changed configuration -----------------------------------------------------
def test_stored_run_differences_name_each_changed_key_but_not_the_reuse_free_ones(tmp_path):
    _, train = _compose_point("predictor_width", WIDTH_POINT)
    run = _finished_run(tmp_path / "run", train)
    elsewhere = OmegaConf.merge(train, {"threads": 3, "device": "cpu", "data": {"num_workers": 0}})
    assert stored_run_differences(run, elsewhere, "fp32") == []

    _, heads = _compose_point("predictor_width", [*WIDTH_POINT, "sweep.head_dim.tiny=32"])
    assert stored_run_differences(run, heads, "fp32") == [("predictor.num_heads", 4, 2)]
    _, logged = _compose_point("predictor_width", [*WIDTH_POINT, "log_every=5"])
    assert stored_run_differences(run, logged, "fp32") == [("log_every", 10, 5)]
    _, probed = _compose_point("predictor_width", [*WIDTH_POINT, "probes=fast"])
    keys = [key for key, _, _ in stored_run_differences(run, probed, "fp32")]
    assert keys and all(key.startswith("probes.") for key in keys)

    assert stored_run_differences(_job_residue(tmp_path / "left"), train, "fp32") == []  # no run there
    write_status(tmp_path / "no_config", "completed", step=4)
    assert [k for k, _, _ in stored_run_differences(tmp_path / "no_config", train, "fp32")] == ["config.yaml"]


def test_a_sweep_whose_points_differ_from_the_runs_of_their_names_is_refused_before_any_compute(tmp_path):
    """sweep.head_dim changes the heads but not the run names: the whole sweep is refused at plan time,
    naming the run, the key and both values, and nothing is launched, adopted or written. A probes change
    points at vjepa.evaluate. The same configuration on other threads is skipped as completed."""
    runs = tmp_path / "predictor_width" / "preset=tiny"
    cfg, train = _compose_point("predictor_width", WIDTH_POINT)
    run = _finished_run(runs / str(cfg.hydra.sweep.subdir), train)
    before = _files(tmp_path)

    local = "hydra/launcher=submitit_local"  # not SLURM (GPUs by default), where a test cluster answers
    same = _run_sweep("predictor_width", *WIDTH_POINT, "threads=2", "dry_run=true", local, out=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "1 runs, 0 to launch, 1 completed (skipped)" in same.stdout

    heads = _run_sweep(
        "predictor_width",
        *[o for o in WIDTH_POINT if not o.startswith("seed")],
        "seed=0,1",
        "sweep.head_dim.tiny=32",
        "hydra/launcher=basic",
        out=tmp_path,
    )
    assert heads.returncode == 1
    assert re.search(rf"^  refuse .* {re.escape(str(run))} \(conflict: ", heads.stdout, re.M)
    assert "refused: the run directories of 1 point(s) already hold a run (or the results" in heads.stderr
    assert f"{run}: the completed run on disk differs in predictor.num_heads" in heads.stderr
    assert "predictor.num_heads: 4 on disk, 2 in this sweep" in heads.stderr
    assert "VJEPA_SWEEPS_OUT=<dir>" in heads.stderr and "vjepa.evaluate" not in heads.stderr
    assert [r.name for r in runs.iterdir()] == [run.name]  # seed 1 was not launched
    assert _files(tmp_path) == before

    probes = _run_sweep("predictor_width", *WIDTH_POINT, "probes=fast", "dry_run=true", local, out=tmp_path)
    assert probes.returncode == 1
    assert "probes.tasks" in probes.stderr
    assert "python -m vjepa.evaluate run_dir=<run dir> probes=<name>" in probes.stderr
    assert _files(tmp_path) == before


# ---- 3. a run trained in another arithmetic ----------------------------------------------------------------
def test_trained_precision_is_read_from_what_the_run_recorded(tmp_path):
    _, train = _compose_point("predictor_width", WIDTH_POINT)
    gpu = _finished_run(tmp_path / "gpu", train, precision="bf16", device="cuda:0")
    assert trained_precision(gpu) == "bf16"
    write_status(gpu, "completed", step=4)  # status without it: metrics.json's
    assert trained_precision(gpu) == "bf16"
    write_json(gpu / "metrics.json", {"device": "cuda:0"})  # a run from before either recorded it
    assert trained_precision(gpu) == "bf16"  # precision=auto on CUDA
    write_json(gpu / "metrics.json", {"device": "cpu"})
    assert trained_precision(gpu) == "fp32"
    write_json(gpu / "metrics.json", {})
    assert trained_precision(gpu) is None
    assert trained_precision(tmp_path / "nowhere") is None


def test_the_launch_precision_resolves_auto_where_the_launcher_runs_the_job(monkeypatch):
    monkeypatch.setattr(common, "local_gpus", lambda: 0)
    assert launch_device_type("auto", "local") == "cpu" and launch_device_type("auto", "other") == "cpu"
    assert launch_device_type("auto", "slurm", gpus_per_node=8) == "cuda"
    assert launch_device_type("auto", "slurm", gpus_per_node=None) == "cpu"
    assert launch_device_type("cuda:1", "local") == "cuda"
    monkeypatch.setattr(common, "local_gpus", lambda: 1)
    assert launch_device_type("auto", "local") == "cuda" and launch_device_type("cpu", "local") == "cpu"
    assert [resolved_precision(p, "cuda") for p in ("auto", "bf16", "fp32")] == ["bf16", "bf16", "fp32"]
    assert [resolved_precision(p, "cpu") for p in ("auto", "bf16", "fp32")] == ["fp32", "bf16", "fp32"]


def test_a_run_is_adopted_or_skipped_only_in_the_arithmetic_this_sweep_would_train_in(tmp_path):
    point, train = _mask_point(tmp_path, seed=0)
    donors = tmp_path / "loss_granularity" / "preset=tiny"
    gpu = _finished_run(donors / "loss=token,gpu", train, precision="bf16", device="cuda:0")
    assert identical_run(train, tmp_path, "tiny", point, precision="fp32") is None
    assert identical_run(train, tmp_path, "tiny", point, precision="bf16") == gpu
    cpu = _finished_run(donors / "loss=token,seed=0", train)
    assert identical_run(train, tmp_path, "tiny", point, precision="fp32") == cpu

    # the point's own run: a completed bf16 run differs from an fp32 launch; so does a checkpoint to resume
    own = _finished_run(point, train, precision="bf16", device="cuda:0")
    assert stored_run_differences(own, train, "fp32") == [("precision (trained in)", "bf16", "fp32")]
    assert stored_run_differences(own, train, "bf16") == []
    write_status(own, "failed", step=2, precision="bf16")
    assert stored_run_differences(own, train, "fp32") == [("precision (trained in)", "bf16", "fp32")]
    (own / "checkpoints" / "last.pt").unlink()  # nothing trained that a launch would keep
    assert stored_run_differences(own, train, "fp32") == []


def test_a_cpu_sweep_trains_a_point_a_gpu_sweep_trained_in_bf16_instead_of_adopting_it(tmp_path):
    point, train = _mask_point(tmp_path, seed=0)
    _finished_run(
        tmp_path / "loss_granularity" / "preset=tiny" / "gpu", train, precision="bf16", device="cuda:0"
    )
    dry = _run_sweep(
        "mask_ratio", *MASK_POINT, "seed=0", "mask.ratio=0.6", "device=cpu", "dry_run=true", out=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    (row,) = [line.split() for line in dry.stdout.splitlines() if line.startswith(("  adopt", "  launch"))]
    assert row[0] == "launch" and row[6] == str(point)


# ---- 4. runs a results table records (trained on another machine) -------------------------------------------
def test_a_point_a_results_table_records_as_completed_is_skipped_and_one_that_differs_refused(tmp_path):
    """A reproduction continued on a machine without the run directories: with hydra.sweeper.recorded, a
    point the results table records as completed (same name, configuration, arithmetic, probe tasks) is
    skipped; a recorded run of its name that differs in any of them refuses the sweep; a table that is not
    one is an error before any compute."""
    import csv
    import shutil

    from analysis.collect import collect, write_csv

    out = tmp_path / "out"
    out.mkdir()
    width = ["preset=tiny", *SMALL, "steps=1", "predictor.width=16", "seed=0", "probes=none"]
    point = ["predictor_width", *width, "hydra/launcher=submitit_local"]
    trained = _run_sweep(*point, out=out)  # a real run: the config.yaml its trainer writes is what counts
    assert trained.returncode == 0, trained.stderr[-3000:]
    table = tmp_path / "results.csv"
    write_csv(collect([out]), table)
    shutil.rmtree(out)  # the machine it trained on is gone
    out.mkdir()
    recorded = f"hydra.sweeper.recorded={table}"

    again = _run_sweep(*point, "dry_run=true", out=out)
    assert "1 runs, 1 to launch, 0 completed (skipped), 0 in live jobs" in again.stdout
    skipped = _run_sweep(*point, recorded, out=out)  # not a dry run: nothing to launch
    assert skipped.returncode == 0, skipped.stderr
    assert (
        f"1 runs, 0 to launch, 0 completed (skipped), 1 completed elsewhere (skipped: recorded in {table})"
        in (skipped.stdout)
    )
    assert "summary: 0 completed, 1 skipped, 0 adopted, 0 failed" in skipped.stdout
    assert list(out.rglob("*")) == []

    # what a run measures and logs counts, as for a run on disk (config_hash leaves it out: run_hash does not)
    for other in ("probes=fast", "log_every=7"):
        res = _run_sweep(*point[:-1], other, point[-1], recorded, "dry_run=true", out=out)
        assert res.returncode == 1
        assert f"recorded as completed in {table}, differing in run_hash" in res.stderr
        assert "leave hydra.sweeper.recorded out" in res.stderr and "recorded, '" in res.stderr

    def edited(name, change, drop=()):
        rows = list(csv.DictReader(table.open()))
        path = tmp_path / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c not in drop])
            writer.writeheader()
            writer.writerows([{k: v for k, v in {**rows[0], **change}.items() if k not in drop}])
        return f"hydra.sweeper.recorded={path}", path

    for name, change, drop, key in (
        ("bf16", {"precision": "bf16"}, (), "precision (trained in)"),
        ("hash", {"run_hash": "0" * 16}, (), "run_hash"),
        ("unknown", {}, ("precision", "device"), "precision (trained in)"),  # says not: differs
    ):
        arg, path = edited(name, change, drop)
        res = _run_sweep(*point, arg, "dry_run=true", out=out)
        assert res.returncode == 1
        assert f"recorded as completed in {path}, differing in {key}" in res.stderr
    # a table collected before run_hash: config_hash and the probe tasks with numbers, said in the plan
    arg, path = edited("legacy", {}, ("run_hash",))
    res = _run_sweep(*point, arg, "dry_run=true", out=out)
    assert res.returncode == 0 and "1 completed elsewhere" in res.stdout
    assert "1 recorded run(s) collected before run_hash existed" in res.stdout
    res = _run_sweep(*point[:-1], "probes=fast", point[-1], arg, "dry_run=true", out=out)
    assert f"recorded as completed in {path}, differing in probes" in res.stderr
    arg, path = edited("legacy_hash", {"config_hash": "0" * 16}, ("run_hash",))
    res = _run_sweep(*point, arg, "dry_run=true", out=out)
    assert f"recorded as completed in {path}, differing in config_hash" in res.stderr
    assert list(out.rglob("*")) == []

    for bad, why in (
        (tmp_path / "none.csv", "no such results table"),
        (tmp_path / "out", "no such results table"),
    ):
        res = _run_sweep(*point, f"hydra.sweeper.recorded={bad}", "dry_run=true", out=out)
        assert res.returncode == 1 and why in res.stderr, res.stderr[-2000:]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    res = _run_sweep(*point, f"hydra.sweeper.recorded={tmp_path / 'other.csv'}", "dry_run=true", out=out)
    assert (
        res.returncode == 1
        and "not a results table of analysis.collect (no column run_id, status" in res.stderr
    )


def test_the_sweepers_run_id_is_the_one_collect_writes(tmp_path):
    """hydra.sweeper.recorded finds a run by the run_id analysis.collect wrote for it: the two rules are
    written apart (sweeps do not import analysis) and must name every sweeper run alike."""
    from analysis.collect import locate
    from sweeps.existing_runs import RecordedRuns

    for name in ("seed=0", "loss=block,seed=1", "data=real,mask.bucket_by=size,recipe_step=deep,seed=2"):
        for sweep in ("recipe", "context_loss"):
            run_dir = tmp_path / "sweeps_out" / sweep / "preset=tiny" / name
            assert RecordedRuns.run_id(run_dir) == locate(run_dir)[2] == f"{sweep}/preset=tiny/{name}"
