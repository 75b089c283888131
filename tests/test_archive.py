"""Completed runs carried between machines without checkpoints (sweeps.archive)."""

import json
import tarfile

import pytest

from sweeps.archive import archived, main, restore, save
from sweeps.common import run_state
from vjepa.runfiles import write_json, write_status


def _run(root, name, state, platform=None):
    d = root / "loss_granularity" / "preset=tiny" / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "last.pt").write_bytes(b"weights" * 100)
    (d / "config.yaml").write_text(f"seed: 0\nrun_dir: {d}\n")
    (d / "metrics.jsonl").write_text('{"step": 10, "loss": 0.5}\n')
    (d / ".submitit").mkdir()
    (d / "loss_granularity.log").write_text("log")
    write_status(d, state, step=10, steps=10)
    if state == "completed":
        write_json(d / "metrics.json", {"probe/x/top1": 0.5, **({"platform": platform} if platform else {})})
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
    assert second != first and archived(folder) == {
        (done.relative_to(out), None),
        (later.relative_to(out), None),
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


def test_a_point_trained_again_on_another_platform_is_archived_and_restored_by_platform(tmp_path, capsys):
    """A table moved to another platform trains its points again in the same directories: each is a new run
    to save, and a restore must say which platform's runs it wants."""
    out, folder = tmp_path / "sweeps_out", tmp_path / "archive"
    run = _run(out, "loss=block,seed=0", "completed", platform="cpu AVX2")
    _run(out, "loss=token,seed=0", "completed", platform="cpu AVX2")
    save(out, folder)
    moved = tmp_path / "twins"  # the AVX2 run moved out, the point trained again on AVX512
    run.rename(moved)
    _run(out, "loss=block,seed=0", "completed", platform="cpu AVX512")
    assert save(out, folder) is not None and save(out, folder) is None
    rel = run.relative_to(out)
    assert {(r, p) for r, p in archived(folder) if r == rel} == {(rel, "cpu AVX2"), (rel, "cpu AVX512")}

    fresh = tmp_path / "fresh"
    with pytest.raises(ValueError, match=r"1 run directories are archived from two platforms .*--platform"):
        restore(folder, fresh)
    assert not fresh.exists()  # refused before writing anything
    with pytest.raises(
        ValueError, match=r"no archived run was trained on 'cpu AVX1'; the archives hold 2 run"
    ):
        restore(folder, fresh, "cpu AVX1")
    assert restore(folder, fresh, "cpu AVX512") == [rel]
    assert json.loads((fresh / rel / "metrics.json").read_text())["platform"] == "cpu AVX512"
    twins = tmp_path / "avx2"
    assert sorted(restore(folder, twins, "cpu AVX2")) == sorted([rel, rel.with_name("loss=token,seed=0")])
    assert json.loads((twins / rel / "metrics.json").read_text())["platform"] == "cpu AVX2"

    main(["list", str(folder)])
    assert capsys.readouterr().out.strip() == "2 run(s) from cpu AVX2; 1 run(s) from cpu AVX512"
    with pytest.raises(SystemExit, match="restore: 1 run directories are archived from two platforms"):
        main(["restore", str(folder), str(tmp_path / "cli")])
