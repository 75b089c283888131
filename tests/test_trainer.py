import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_TEST
from vjepa.config_check import ConfigError
from vjepa.jepa import JEPA
from vjepa.run_identity import without_keys
from vjepa.runfiles import code_version, load_checkpoint, read_status
from vjepa.trainer import Trainer, train

VOLATILE = {"wall_time_s", "samples_per_s", "tokens_per_s"}


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def _metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_run_directory(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY_TEST, "steps=6", "log_every=2", "ckpt_every=3")
    final = train(cfg)
    run = Path(cfg.run_dir)
    assert read_status(run)["state"] == "completed"
    assert {"config.yaml", "metrics.jsonl", "metrics.json", "status.json"} <= {p.name for p in run.iterdir()}
    log = _metrics(run)
    assert [r["step"] for r in log] == [2, 4, 6]
    for key in (
        "loss",
        "loss_image",
        "loss_video",
        "lr",
        "momentum",
        "mask_ratio_image",
        "samples_per_s",
        "context_std_image",
        "target_std_video",
        "pred_std_image",
        "online_rankme_image",
        "target_rankme_video",
        "online_token_cos_image",
    ):
        assert key in log[0]
    assert abs(log[0]["mask_ratio_image"] - cfg.mask.ratio) <= 0.5 / 16  # 16 tokens: within half a token
    assert 1.0 <= log[0]["online_rankme_image"] <= 192
    assert final["steps"] == 6 and final["loss_final"] > 0
    state = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True
    assert state["step"] == 6


def test_restart_resumes_bit_identical(compose_cfg, tmp_path):
    overrides = (*TINY_TEST, "steps=8", "log_every=2", "ckpt_every=2", "model.drop_path=0.1")
    full = compose_cfg(*overrides, run_dir=tmp_path / "full")
    train(full)
    part = compose_cfg(*overrides, run_dir=tmp_path / "part")
    assert train(part, stop_after=4) is None
    status = read_status(part.run_dir)
    assert status["state"] == "running" and status["step"] == 4
    assert status["code_version"] == code_version()  # every status write names the code (analysis reads it)
    train(part)  # a new process would do the same: everything comes from the run directory
    assert _stable(_metrics(full.run_dir)) == _stable(_metrics(part.run_dir))
    a = load_checkpoint(Path(full.run_dir) / "checkpoints" / "last.pt")
    b = load_checkpoint(Path(part.run_dir) / "checkpoints" / "last.pt")
    for key in ("encoder", "target_encoder", "predictor"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"


def test_killed_process_resumes_to_same_result(tmp_path):
    """SIGKILL a real training process after its first checkpoint, restart it, compare with a clean run."""
    args = [
        sys.executable,
        "-m",
        "vjepa.train",
        *TINY_TEST,
        "steps=12",
        "log_every=2",
        "ckpt_every=2",
        "progress=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run([*args, f"run_dir={tmp_path / 'clean'}"], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [*args, f"run_dir={tmp_path / 'killed'}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_status(tmp_path / "killed")["state"] == "running"
    step_at_kill = load_checkpoint(ckpt)["step"]
    subprocess.run([*args, f"run_dir={tmp_path / 'killed'}"], check=True, env=env, capture_output=True)
    assert step_at_kill < 12
    assert _stable(_metrics(tmp_path / "clean")) == _stable(_metrics(tmp_path / "killed"))
    clean = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    killed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert {k: v for k, v in clean.items() if k not in VOLATILE} == {
        k: v for k, v in killed.items() if k not in VOLATILE
    }


def test_completed_run_is_not_trained_again(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1")
    first = train(cfg)
    mtime = (Path(cfg.run_dir) / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert train(cfg) == first
    assert (Path(cfg.run_dir) / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime


def _no_data(monkeypatch) -> None:
    """Training data that must not be touched: a refusal comes before it is built."""
    import vjepa.trainer

    def build_sources(*args, **kwargs):
        raise AssertionError("the training data was built for a refused run")

    monkeypatch.setattr(vjepa.trainer, "build_sources", build_sources)


def test_different_config_in_same_run_dir_is_refused_and_nothing_is_touched(compose_cfg, monkeypatch):
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1")
    train(cfg)
    before = {p.name: p.read_bytes() for p in Path(cfg.run_dir).iterdir() if p.is_file()}
    (Path(cfg.run_dir) / "status.json").write_text('{"state": "interrupted", "step": 1}')  # not completed
    before["status.json"] = (Path(cfg.run_dir) / "status.json").read_bytes()
    other = compose_cfg(*TINY_TEST, "steps=2", "log_every=1", "loss=block")
    _no_data(monkeypatch)
    with pytest.raises(ConfigError, match=r"loss.granularity: 'token' \(on disk\) vs 'block'"):
        train(other)
    after = {p.name: p.read_bytes() for p in Path(cfg.run_dir).iterdir() if p.is_file()}
    assert before == after


def test_without_keys_drops_dotted_paths_at_any_depth_and_ignores_missing_ones():
    c = {"run_dir": "r", "data": {"root": "x", "size": 32, "video": {"frames": 8, "fps": 4}}, "seed": 0}
    out = without_keys(c, ["run_dir", "data.root", "data.video.fps", "data.absent", "absent.key", "seed.x"])
    assert out is c
    assert c == {"data": {"size": 32, "video": {"frames": 8}}, "seed": 0}


def test_collected_config_hash_ignores_exactly_the_keys_resume_ignores():
    from analysis.collect import config_hashes

    base = {"run_dir": "a", "threads": 1, "data": {"root": "x", "size": 32}, "seed": 0, "loss": {"w": 1}}
    moved = {"run_dir": "b", "threads": 2, "data": {"root": "y", "size": 32}, "seed": 0, "loss": {"w": 1}}
    reseeded = {**base, "seed": 1}
    changed = {**base, "loss": {"w": 2}}
    assert config_hashes(base) == config_hashes(moved)
    assert config_hashes(base)[0] != config_hashes(reseeded)[0]
    assert config_hashes(base)[1] == config_hashes(reseeded)[1]
    assert config_hashes(base)[1] != config_hashes(changed)[1]
    assert base["run_dir"] == "a" and base["data"]["root"] == "x"  # the caller's dict is left alone


def test_resuming_in_another_precision_is_refused_and_nothing_is_touched(compose_cfg, monkeypatch):
    """precision=auto is fp32 on CPU and bf16 on CUDA: a run moved between devices must not silently switch."""
    cfg = compose_cfg(*TINY_TEST, "steps=4", "log_every=1", "ckpt_every=1")
    assert train(cfg, stop_after=2) is None
    run_dir = Path(cfg.run_dir)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["precision"] == "fp32"
    # as if the first two steps had run on a GPU with precision=auto
    (run_dir / "status.json").write_text(json.dumps({**status, "precision": "bf16"}))
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with monkeypatch.context() as patched:
        _no_data(patched)
        with pytest.raises(
            ConfigError, match=r"trained in bf16 until step 2; .* continue it in fp32 .*device=cuda"
        ):
            train(cfg)
    assert {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    (run_dir / "status.json").write_text(json.dumps(status))  # back on its own arithmetic: it resumes
    assert train(cfg)["precision"] == "fp32"


def test_failure_writes_traceback_to_status(compose_cfg, monkeypatch):
    cfg = compose_cfg(*TINY_TEST, "steps=3", "log_every=1")
    trainer = Trainer(cfg)

    def boom(step, batch, **kw):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(trainer, "train_step", boom)
    with pytest.raises(RuntimeError):
        trainer.run()
    status = read_status(cfg.run_dir)
    assert status["state"] == "failed" and "injected failure" in status["traceback"]


def test_target_encoder_gets_no_gradient_and_follows_ema(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "steps=1")
    model = JEPA(cfg)
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target_encoder.parameters()]
    model.update_target(0.75)
    for b, t, o in zip(before, model.target_encoder.parameters(), model.encoder.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * o)


def test_weight_decay_skips_biases_and_norms(compose_cfg):
    cfg = compose_cfg(*TINY_TEST, "steps=1")
    trainer = Trainer(cfg)
    trainer.build()
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert trainer.optimizer.defaults["betas"] == (0.9, 0.95)
    assert trainer.peak_lr == pytest.approx(cfg.optim.base_lr * 8 / 256)


def test_a_torn_metrics_line_does_not_stop_the_run_from_resuming(compose_cfg, tmp_path):
    """A kill while a log line is appended cuts it short: the resumed run drops it and writes it again."""
    overrides = (*TINY_TEST, "steps=8", "log_every=2", "ckpt_every=4")
    full = compose_cfg(*overrides, run_dir=tmp_path / "full")
    train(full)
    part = compose_cfg(*overrides, run_dir=tmp_path / "part")
    assert train(part, stop_after=6) is None  # logged steps 2, 4, 6; the last checkpoint is at step 4
    log = Path(part.run_dir) / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + lines[-1][:40])  # step 6's line torn by the kill
    train(part)
    assert _stable(_metrics(full.run_dir)) == _stable(_metrics(part.run_dir))
    assert [r["step"] for r in _metrics(part.run_dir)] == [2, 4, 6, 8]


class _Clock:
    """A stand-in for time.perf_counter that advances only while a training step runs."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _timed_steps(trainer, clock: _Clock, seconds: float) -> None:
    step = trainer.train_step

    def train_step(s, batch, **kw):
        clock.now += seconds
        return step(s, batch, **kw)

    trainer.train_step = train_step


def test_throughput_counts_the_samples_of_the_timed_interval_across_checkpoints_and_resume(
    compose_cfg, monkeypatch
):
    """Every step takes 1 s (stubbed clock) and trains 8 samples: each logged window runs at 8 samples/s,
    whether a checkpoint falls inside it (step 2) or the run resumed inside it (from step 2)."""
    clock = _Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    cfg = compose_cfg(*TINY_TEST, "steps=8", "log_every=4", "ckpt_every=2", "diagnostics.batch_size=0")
    trainer = Trainer(cfg)
    _timed_steps(trainer, clock, 1.0)
    assert trainer.run(stop_after=3) is None  # logged nothing yet; resumes from the checkpoint at step 2
    trainer = Trainer(cfg)
    _timed_steps(trainer, clock, 1.0)
    trainer.run()
    log = _metrics(cfg.run_dir)
    assert [r["step"] for r in log] == [4, 8]
    for r in log:
        tokens_per_step = sum(v for k, v in r.items() if k in ("tokens_image", "tokens_video"))
        assert r["samples_per_s"] == pytest.approx(8.0)
        assert r["tokens_per_s"] == pytest.approx(tokens_per_step)


def test_a_refused_run_leaves_its_overrides_untouched(compose_cfg, tmp_path):
    """overrides.yaml (the labels analysis reads) is written only once the run directory accepts a run to
    train: a refused run and a completed run rerun with equivalent overrides leave it as it was."""
    from omegaconf import OmegaConf

    from vjepa.runfiles import write_json, write_status

    run_dir = tmp_path / "run"
    on_disk = compose_cfg(*TINY_TEST, "steps=2", run_dir=run_dir)
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(on_disk, resolve=True))
    (run_dir / "overrides.yaml").write_text("- steps=2\n")
    write_json(run_dir / "metrics.json", {"loss_first": 1.0, "loss_final": 0.5})
    write_status(run_dir, "completed", step=2, steps=2)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "vjepa.train", *TINY_TEST, f"run_dir={run_dir}", "progress=false"]

    refused = subprocess.run([*base, "steps=3"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "already holds a run with a different configuration" in refused.stderr
    assert (run_dir / "overrides.yaml").read_text() == "- steps=2\n"

    again = subprocess.run([*base, "steps=2", "seed=0"], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "already completed" in again.stderr, again.stderr
    assert (run_dir / "overrides.yaml").read_text() == "- steps=2\n"

    fresh = tmp_path / "fresh"
    new_run = [sys.executable, "-m", "vjepa.train", *TINY_TEST, f"run_dir={fresh}", "progress=false"]
    trained = subprocess.run([*new_run, "steps=2", "seed=0"], env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert "- seed=0" in (fresh / "overrides.yaml").read_text()


def test_bad_training_data_fails_before_the_run_directory_is_written(compose_cfg, tmp_path):
    """A data setting only the loader can check (a missing folder, a bad on_error) is a ConfigError raised
    before config.yaml exists, so the same run directory then takes the mended configuration."""
    run_dir, videos = tmp_path / "run", tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(b"")  # listed, never decoded: the settings fail first
    folder = ("data.mix=video", "data.video.name=video_folder")
    bad = [
        (*folder, f"+data.video.path={tmp_path / 'nowhere'}"),
        (*folder, f"+data.video.path={videos}", "+data.video.fps=-4"),
        (*folder, f"+data.video.path={videos}", "+data.video.on_error=ignore"),
    ]
    for overrides in bad:
        # a bad on_error is a schema value, named by check_config; the others only the loader can check
        with pytest.raises(ConfigError, match="training data: .*(nowhere|fps)|data.video.on_error='ignore'"):
            Trainer(compose_cfg(*TINY_TEST, *overrides, run_dir=run_dir)).run()
        assert not (run_dir / "config.yaml").exists() and not (run_dir / "status.json").exists()
    assert Trainer(compose_cfg(*TINY_TEST, "steps=1", "probes=none", run_dir=run_dir)).run()["steps"] == 1


def test_a_completed_run_that_lost_its_metrics_writes_them_again_without_training(compose_cfg):
    """status.json says completed but metrics.json is gone (the sweeps call it ``no_metrics`` and launch it):
    the rerun resumes at the final checkpoint and writes the same final metrics, training no step."""
    cfg = compose_cfg(*TINY_TEST, "steps=2", "log_every=1")
    first = train(cfg)
    (Path(cfg.run_dir) / "metrics.json").unlink()
    trainer = Trainer(cfg)

    def train_step(step, batch, **kw):
        raise AssertionError(f"step {step} trained again")

    trainer.train_step = train_step
    again = trainer.run()
    volatile = {"wall_time_s", "samples_per_s", "tokens_per_s", "resumed_from", "code_version"}
    assert {k: v for k, v in again.items() if k not in volatile} == {
        k: v for k, v in first.items() if k not in volatile
    }
    assert json.loads((Path(cfg.run_dir) / "metrics.json").read_text()) == again


def test_diagnostics_switched_on_at_resume_do_not_fail_the_final_metrics(compose_cfg, tmp_path):
    """diagnostics may change on resume: lines logged before it lack the diagnostic keys, and the final
    metrics average each key over the last tenth of the log lines that have it."""
    args = (*TINY_TEST, "steps=20", "log_every=1", "ckpt_every=1", "probes=none")
    run_dir = tmp_path / "run"
    assert train(compose_cfg(*args, "diagnostics.batch_size=0", run_dir=run_dir), stop_after=19) is None
    final = train(compose_cfg(*args, "diagnostics.batch_size=4", run_dir=run_dir))  # the last step diagnosed
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    diagnosed = [k for k in log[-1] if k.startswith("online_")]
    assert diagnosed and not any(k in log[-2] for k in diagnosed)
    assert read_status(run_dir)["state"] == "completed"
    assert all(final[k] == log[-1][k] for k in diagnosed)  # the tail (steps 18, 19): only step 19 has them
    assert final["loss_final"] == (log[-1]["loss"] + log[-2]["loss"]) / 2


def test_a_keyboard_interrupt_mid_window_records_the_step_a_rerun_resumes_from(compose_cfg):
    """Ctrl-C after step 5 with checkpoints every 2 steps: status.json says interrupted at step 4, the
    checkpoint's, which is where the rerun resumes (sweeps time what is left by it)."""
    cfg = compose_cfg(*TINY_TEST, "steps=8", "log_every=1", "ckpt_every=2")
    trainer = Trainer(cfg)
    original = trainer.train_step

    def train_step(step, batch, **kw):
        if step == 5:
            raise KeyboardInterrupt
        return original(step, batch, **kw)

    trainer.train_step = train_step
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    status = read_status(cfg.run_dir)
    assert status["state"] == "interrupted" and status["step"] == 4
    assert load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.pt")["step"] == 4


def test_each_checkpoint_reaches_the_disk_after_the_log_lines_before_it(compose_cfg, monkeypatch):
    """A resumed run never writes again the lines before its checkpoint, so those lines must be on disk
    (fsync) before the checkpoint is: after a power loss a surviving checkpoint then has its whole log."""
    import os as _os

    synced = []
    real_fsync = _os.fsync

    def fsync(fd):
        synced.append(Path(_os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", fsync)
    cfg = compose_cfg(*TINY_TEST, "steps=4", "log_every=1", "ckpt_every=2", "probes=none")
    train(cfg)
    checkpoints = [i for i, name in enumerate(synced) if name.startswith(".last.pt.")]
    assert len(checkpoints) == 2  # steps 2 and 4
    for previous, i in zip([-1, *checkpoints], checkpoints):
        assert "metrics.jsonl" in synced[previous + 1 : i], synced  # the log since the last checkpoint first


def test_each_steps_numbers_are_read_back_after_the_next_step_is_queued(compose_cfg):
    """Reading a number back from a GPU waits for the step to finish, so the loop reads step s's record
    only after queuing step s + 1 (the device never idles between steps), except where a log line, a
    checkpoint or the end needs step s's numbers at once. A loss that is not finite still names its step."""
    cfg = compose_cfg(*TINY_TEST, "steps=6", "log_every=3", "ckpt_every=100")
    trainer = Trainer(cfg)
    events, launch, read = [], trainer.train_step, trainer.read_back_step

    def train_step(step, batch, **kw):
        events.append(f"step {step}")
        return launch(step, batch, **kw)

    def read_back_step(launched):
        record = read(launched)
        events.append("read")
        return record

    trainer.train_step, trainer.read_back_step = train_step, read_back_step
    trainer.run()
    assert events == [
        *("step 0", "step 1", "read", "step 2", "read", "read"),  # the log after step 2 reads it at once
        *("step 3", "step 4", "read", "step 5", "read", "read"),
    ]

    cfg = compose_cfg(*TINY_TEST, "steps=6", "log_every=100", "ckpt_every=100", run_dir=cfg.run_dir + "-nan")
    trainer = Trainer(cfg)
    launch = trainer.train_step

    def nan_at_step_1(step, batch, **kw):
        record, skipped, n = launch(step, batch, **kw)
        if step == 1:
            record["loss"] = torch.tensor(float("nan"))
        return record, skipped, n

    trainer.train_step = nan_at_step_1
    with pytest.raises(FloatingPointError, match="loss became nan at step 1;"):
        trainer.run()
