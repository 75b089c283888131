"""Completed runs carried between machines without checkpoints (sweeps.archive)."""

import tarfile

from sweeps.archive import archived_runs, main, restore, save
from sweeps.common import run_state
from vjepa.runfiles import write_json, write_status


def _run(root, name, state):
    d = root / "loss_granularity" / "preset=tiny" / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "last.pt").write_bytes(b"weights" * 100)
    (d / "config.yaml").write_text(f"seed: 0\nrun_dir: {d}\n")
    (d / "metrics.jsonl").write_text('{"step": 10, "loss": 0.5}\n')
    (d / ".submitit").mkdir()
    (d / "loss_granularity.log").write_text("log")
    write_status(d, state, step=10, steps=10)
    if state == "completed":
        write_json(d / "metrics.json", {"probe/x/top1": 0.5})
    return d


def test_completed_runs_are_archived_once_without_weights_and_restored_where_absent(tmp_path, capsys):
    out, folder = tmp_path / "sweeps_out", tmp_path / "archive"
    done = _run(out, "loss=block,seed=0", "completed")
    _run(out, "loss=token,seed=0", "interrupted")  # only its checkpoint could resume it: not carried
    first = save(out, folder)
    with tarfile.open(first) as tar:
        names = sorted(tar.getnames())
    assert names == [
        f"loss_granularity/preset=tiny/loss=block,seed=0{f}"
        for f in ("", "/config.yaml", "/metrics.json", "/metrics.jsonl", "/status.json")
    ]
    assert save(out, folder) is None  # nothing new
    later = _run(out, "loss=block,seed=1", "completed")
    second = save(out, folder)
    assert second != first and archived_runs(folder) == {
        done.relative_to(out),
        later.relative_to(out),
    }

    fresh = tmp_path / "elsewhere"
    kept = fresh / "loss_granularity" / "preset=tiny" / "loss=block,seed=1"
    kept.mkdir(parents=True)
    (kept / "mine.txt").write_text("already here")
    assert restore(folder, fresh) == [done.relative_to(out)]  # an existing directory is left as it is
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]
    restored = fresh / done.relative_to(out)
    assert run_state(restored, ask_scheduler=False)[0] == "completed"
    assert (restored / "metrics.jsonl").read_text() == (done / "metrics.jsonl").read_text()
    assert not (restored / "checkpoints").exists()

    main(["restore", str(folder), str(tmp_path / "third")])
    assert "restored 2 run(s)" in capsys.readouterr().out
