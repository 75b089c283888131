"""A stop request mid logging window: the resumed run logs exactly what an uninterrupted run logs."""

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_TEST
from vjepa.runfiles import read_status
from vjepa.trainer import Interrupted, Trainer, train

VOLATILE = {"wall_time_s", "samples_per_s", "tokens_per_s"}


def _log(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def test_stop_mid_window_then_resume_matches_uninterrupted(compose_cfg, tmp_path):
    args = (*TINY_TEST, "steps=8", "log_every=4", "ckpt_every=100")
    train(compose_cfg(*args, run_dir=tmp_path / "clean"))
    trainer = Trainer(compose_cfg(*args, run_dir=tmp_path / "stopped"))
    original = trainer.train_step

    def step_then_request_stop(step, batch, **kw):
        out = original(step, batch, **kw)
        if step == 2:  # inside the first logging window (steps 0-3)
            trainer.request_stop()
        return out

    trainer.train_step = step_then_request_stop
    with pytest.raises(Interrupted):
        trainer.run()
    status = read_status(tmp_path / "stopped")
    assert status["state"] == "interrupted" and status["step"] == 3
    train(compose_cfg(*args, run_dir=tmp_path / "stopped"))
    assert _log(tmp_path / "clean") == _log(tmp_path / "stopped")
