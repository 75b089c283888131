"""`python -m vjepa.evaluate` on two gloo processes (CPU) reproduces the one-process features and metrics."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_distributed import _base_env, _free_port
from tests.test_probes_folders import TASKS as FOLDER_TASKS
from tests.test_probes_folders import tiny_run, write_ade20k, write_imagefolder  # noqa: F401
from vjepa.probes.shard import Shards

# the folder probes' own test tasks, cheaper (the check is that ranks agree, not what they score); the
# segmentation task's train pixels come from one generator (rank 0 alone), its val set is shared by the ranks
TASKS = {
    "in_linear": FOLDER_TASKS["in_linear"],
    "in_attentive": {**FOLDER_TASKS["in_attentive"], "epochs": 3},
    "ade_linear": {**FOLDER_TASKS["ade_linear"], "pixels_per_image": 16, "iters": 20},
}
PROBES = {
    "image_size": 32,
    "video_size": 32,
    "frames": 4,
    "extract_batch": 4,  # 21 train images: 6 batches, 3 per rank; 15 val: 4 batches, 2 per rank
    "workers": 1,
    "missing_data": "raise",
    "bootstrap": 10,
    "baseline": False,
    "tasks": TASKS,
}


def test_part_deals_whole_batches_in_contiguous_blocks():
    parts = [Shards(r, 3).part(21, 4) for r in range(3)]
    assert [list(p) for p in parts] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 21))]
    assert [len(Shards(r, 4).part(3, 4)) for r in range(4)] == [0, 0, 0, 3]  # more ranks than batches


def _evaluate_ranks(world: int, run_dir: Path, args: list[str], ok: bool = True) -> list[str]:
    """``python -m vjepa.evaluate`` as ``world`` ranks (as torchrun starts them); their outputs. ``ok``: every
    rank must exit 0, else every rank must fail."""
    env, port = {**_base_env(), "OMP_NUM_THREADS": "1"}, _free_port()
    procs = []
    for rank in range(world):
        extra = {"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank)} if world > 1 else {}
        extra |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = [sys.executable, "-m", "vjepa.evaluate", f"run_dir={run_dir}", *args]
        procs.append(
            subprocess.Popen(
                cmd, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all((p.returncode == 0) == ok for p in procs), outs
    return outs


def test_two_processes_extract_and_score_as_one(tiny_run, tmp_path):  # noqa: F811
    root = write_ade20k(write_imagefolder(tmp_path / "data", n=(7, 5)), n=(10, 7))
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump(PROBES))
    args = [f"probes={probes}", f"data_root={root}", "cache=true", "threads=1", "device=cpu"]
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(tiny_run, one)
    shutil.copytree(tiny_run, two)
    _evaluate_ranks(1, one, args)
    outs = _evaluate_ranks(2, two, args)
    assert "merged" in outs[0] and "merged" not in outs[1]  # rank 0 alone writes and prints

    caches = sorted(p.name for p in (one / "probe_cache").iterdir())
    assert caches == sorted(p.name for p in (two / "probe_cache").iterdir()) and len(caches) == 3
    for name in caches:
        a, b = torch.load(one / "probe_cache" / name), torch.load(two / "probe_cache" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)  # bit-identical: the same batches per sample

    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m1.keys() == m2.keys()
    timing = ("time_s",)
    same = {k: v for k, v in m1.items() if not k.endswith(timing)}
    assert same == {k: m2[k] for k in same}
    assert m1["probe/in_linear/top1"] >= 0 and "probe/ade_linear/miou" in m1


@pytest.mark.parametrize("bad_rank", [0, 1])
def test_a_bad_file_on_one_rank_stops_both(tiny_run, tmp_path, bad_rank):  # noqa: F811
    """A val image of rank ``bad_rank``'s part cannot be read: both ranks exit with an error naming it
    and nothing is written."""
    root = write_imagefolder(tmp_path / "data", n=(7, 5))
    val = sorted((root / "imagenet" / "val").rglob("*.JPEG"))
    bad = val[0] if bad_rank == 0 else val[-1]
    bad.write_bytes(b"not an image")
    probes = tmp_path / "probes.yaml"
    probes.write_text(yaml.safe_dump({**PROBES, "tasks": {"in_linear": TASKS["in_linear"]}}))
    before = (tiny_run / "metrics.json").read_text()
    args = [f"probes={probes}", f"data_root={root}", "threads=1", "device=cpu"]
    outs = _evaluate_ranks(2, tiny_run, args, ok=False)
    assert all(bad.name in out for out in outs), outs
    assert (tiny_run / "metrics.json").read_text() == before
