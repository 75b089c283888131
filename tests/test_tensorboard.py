"""Optional TensorBoard scalars from metrics records (vjepa.tensorboard)."""

import builtins
import sys
import types

import pytest

from vjepa.tensorboard import ScalarWriter


class FakeSummaryWriter:
    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, key, value, step):
        self.scalars.append((key, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_off_by_default_writes_nothing(tmp_path):
    w = ScalarWriter.open(tmp_path)
    assert not w.enabled and w.write({"step": 1, "loss": 0.5}) == 0
    w.close()
    assert not (tmp_path / "tensorboard").exists()


def test_records_become_scalars_at_their_step(tmp_path, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeSummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    w = ScalarWriter.open(tmp_path, enabled=True)
    record = {"step": 7, "loss": 0.25, "lr": 1e-4, "probe/x/top1": 1, "note": "a", "nan": float("nan"),
              "flag": True, "list": [1, 2]}  # fmt: skip
    assert w.write(record) == 3
    writer = w.writer
    assert writer.log_dir == str(tmp_path / "tensorboard")
    assert writer.scalars == [("loss", 0.25, 7), ("lr", 1e-4, 7), ("probe/x/top1", 1.0, 7)]
    assert w.write({"loss": 1.0}) == 0  # no step: nothing
    w.close()
    assert writer.closed and not w.enabled


def test_missing_tensorboard_is_a_message_not_a_crash(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    messages = []
    w = ScalarWriter.open(tmp_path, enabled=True, log=messages.append)
    assert not w.enabled and w.write({"step": 1, "loss": 0.5}) == 0
    assert len(messages) == 1 and "pip install tensorboard" in messages[0]
    assert "No module named 'tensorboard'" in messages[0]


def test_a_run_with_tensorboard_true_writes_its_log_lines_and_probe_scores(compose_cfg):
    """tensorboard=true: every metrics.jsonl line and the final metrics (the probe scores at the last step)
    as scalars; the key names no run (it is free: the run directory and run hash are those without it)."""
    import json
    from pathlib import Path

    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import TINY_TEST
    from vjepa.run_identity import run_hash
    from vjepa.trainer import train

    probe = ["probes=fast", *(f"~probes.tasks.{t}" for t in ("shapes_det", "shapes_video", "shapes_seg"))]
    cfg = compose_cfg(*TINY_TEST, "steps=4", "log_every=2", "device=cpu", "tensorboard=true", *probe)
    final = train(cfg)
    run_dir = Path(cfg.run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [r["step"] for r in lines] == [2, 4]  # each log line
    assert [e.value for e in loss] == [pytest.approx(r["loss"]) for r in lines]
    assert events.Scalars("loss_final")[-1].step == 4  # the final metrics, at the last step
    probe_keys = [k for k in final if k.startswith("probe/shapes_video_linear/") and k.endswith("top1")]
    assert probe_keys and all(events.Scalars(k)[-1].step == 4 for k in probe_keys)
    plain = compose_cfg(*TINY_TEST, "steps=4", "log_every=2", "device=cpu", *probe)
    assert run_hash(OmegaConf.to_container(cfg, resolve=True)) == run_hash(
        OmegaConf.to_container(plain, resolve=True)
    )
