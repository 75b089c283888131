import json
import re

import pytest

import vjepa.runfiles
from vjepa.runfiles import MetricsLog


def _log_with(tmp_path, *lines: str) -> MetricsLog:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(lines))
    return MetricsLog(path)


def _line(step: int) -> str:
    return json.dumps({"loss": 1.0 / step, "step": step}, sort_keys=True) + "\n"


def test_a_torn_final_line_is_dropped(tmp_path):
    log = _log_with(tmp_path, _line(1), _line(2), _line(3)[:9])  # killed while appending step 3
    assert [r["step"] for r in log.read()] == [1, 2]
    log.truncate_after(2)
    assert log.path.read_text() == _line(1) + _line(2)
    log.append({"loss": 1 / 3, "step": 3})  # the resumed run writes it again
    assert [r["step"] for r in log.read()] == [1, 2, 3]


def test_a_torn_final_line_of_binary_garbage_is_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(_line(1).encode() + b"\x00\x00\xff\xfe")  # a node failure can leave any bytes
    assert MetricsLog(path).read() == [json.loads(_line(1))]


def test_a_corrupt_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    log = _log_with(tmp_path, _line(1), '{"loss": 0.5, "st\n', _line(3))
    with pytest.raises(ValueError, match=rf"{re.escape(str(log.path))}:2: unreadable metrics line"):
        log.read()
    with pytest.raises(ValueError, match=rf"{re.escape(str(log.path))}:2: unreadable metrics line"):
        log.truncate_after(1)
    complete_but_bad = _log_with(tmp_path, _line(1), '{"loss": 0.5, "st\n')  # ends in a newline: not torn
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: unreadable metrics line"):
        complete_but_bad.read()


def test_truncate_after_replaces_the_file_atomically(tmp_path, monkeypatch):
    """A failure while rewriting (here: the rename) leaves every line already written, and no temp file."""
    log = _log_with(tmp_path, _line(1), _line(2), _line(3))
    before = log.path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(vjepa.runfiles.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        log.truncate_after(1)
    assert log.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


@pytest.mark.parametrize(
    "status, metrics, state",
    [
        (None, False, "new"),
        ("running", False, "running"),
        ("interrupted", False, "interrupted"),
        ("failed", False, "failed"),
        ("completed", True, "completed"),
        ("completed", False, "no_metrics"),
    ],
)
def test_recorded_state_is_the_one_rule_sweeps_and_analysis_read(tmp_path, status, metrics, state):
    from analysis.collect import read_run
    from sweeps.common import run_state

    run_dir = tmp_path / "sweep" / "run"
    run_dir.mkdir(parents=True)
    if status:
        vjepa.runfiles.write_status(run_dir, status, step=3, error="boom" if status == "failed" else "")
    if metrics:
        vjepa.runfiles.write_json(run_dir / "metrics.json", {"loss_final": 0.5})
    got, recorded = vjepa.runfiles.recorded_state(run_dir)
    assert got == state and recorded == (vjepa.runfiles.read_status(run_dir) or {})
    assert run_state(run_dir, ask_scheduler=False)[0] == state  # no job.json: never "active"
    row = read_run(run_dir)
    assert row["status"] == state
    assert (row.get("loss_final") == 0.5) == (state == "completed")  # only completed rows carry metrics
