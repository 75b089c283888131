"""Two gloo processes on CPU reproduce the one-process loss trajectory with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_TEST

ARGS = [*TINY_TEST, "steps=4", "log_every=1", "progress=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "extra",
    [[], ["mask=vjepa21", "mask.buckets=3"]],
    ids=["one-cut", "length-buckets"],  # buckets straddle the ranks' halves of the batch
)
def test_two_processes_match_one_process(tmp_path, extra):
    root = str(Path(__file__).parents[1])
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    base_env["PYTHONPATH"] = root
    one = tmp_path / "one"
    subprocess.run(
        [sys.executable, "-m", "vjepa.train", *ARGS, *extra, f"run_dir={one}"],
        check=True,
        env=base_env,
        capture_output=True,
    )
    two = tmp_path / "two"
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {
            **base_env,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "vjepa.train", *ARGS, *extra, f"run_dir={two}"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    final = json.loads((two / "metrics.json").read_text())
    assert final["world_size"] == 2
    # Same samples, same masks, gradients averaged: equal up to float reduction order.
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-4, abs=1e-6)
