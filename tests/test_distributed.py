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


def _launch_ranks(rank_args: list[list[str]], base_env: dict) -> list[subprocess.Popen]:
    """One ``python -m vjepa.train`` process per rank (its overrides ``rank_args[rank]``), as torchrun would."""
    port = _free_port()
    procs = []
    for rank, args in enumerate(rank_args):
        env = {
            **base_env,
            "WORLD_SIZE": str(len(rank_args)),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "vjepa.train", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def _base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    return env


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "extra",
    [[], ["mask=vjepa21", "mask.buckets=3"]],
    ids=["one-cut", "length-buckets"],  # buckets straddle the ranks' halves of the batch
)
def test_two_processes_match_one_process(tmp_path, extra):
    base_env = _base_env()
    one = tmp_path / "one"
    subprocess.run(
        [sys.executable, "-m", "vjepa.train", *ARGS, *extra, f"run_dir={one}"],
        check=True,
        env=base_env,
        capture_output=True,
    )
    two = tmp_path / "two"
    procs = _launch_ranks([[*ARGS, *extra, f"run_dir={two}"]] * 2, base_env)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    final = json.loads((two / "metrics.json").read_text())
    assert final["world_size"] == 2
    # Same samples, same masks, gradients averaged: equal up to float reduction order.
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-4, abs=1e-6)


def test_a_refusal_on_one_rank_stops_every_rank_at_once(tmp_path):
    """Rank 1 cannot find its data (a mount missing on its node, here a data root that does not exist); rank 0
    can. Both refuse with rank 1's error (exit 2) and the run directory gets no run files (only Hydra's log).
    Before, rank 0 went on to the run directory's barrier: with gloo it then failed on the lost connection
    (exit 1) without the reason; a backend that does not notice the peer's exit waits out its timeout."""
    run_dir = tmp_path / "run"
    ok = [*ARGS, f"run_dir={run_dir}"]
    missing = [*ok, "data=real", f"data.root={tmp_path / 'no-such-mount'}"]
    procs = _launch_ranks([ok, missing], _base_env())
    try:
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [2, 2], outs
    for out in outs:
        assert "refused on rank(s) 1 of 2" in out and "no-such-mount" in out and "does not exist" in out, out
    assert not any((run_dir / name).exists() for name in ("config.yaml", "status.json", "checkpoints"))


def test_per_step_collectives_reduce_on_the_device_the_backend_serves(monkeypatch):
    """NCCL reduces CUDA tensors only (a CPU tensor raises 'No backend type associated with device type
    cpu'): under it the logged values and the stop flag must be reduced on the rank's GPU. No GPU here, so
    the reduction is stood in for, recording the device of what it is given ("meta" stands for the GPU)."""
    import torch

    import vjepa.distributed as d

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(d.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(d.dist, "init_process_group", lambda **kwargs: None)
    current = []
    monkeypatch.setattr(d.torch.cuda, "set_device", current.append)
    assert d.init_distributed("cuda") == d.DistInfo(rank=1, world=2, local_rank=1, device="cuda:1")
    assert d.init_distributed("cpu").device == "cpu"
    # a process group started before the trainer (by the caller): the same device, made current
    monkeypatch.setattr(d.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(d.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(d.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(d.dist, "get_world_size", lambda: 2)
    assert d.init_distributed("cuda") == d.DistInfo(rank=1, world=2, local_rank=1, device="cuda:1")
    assert current == [1, 1]  # NCCL's object collectives (start-up refusals) use the current device
    monkeypatch.setattr(d.dist, "is_initialized", lambda: False)

    class Reduced(Exception):
        pass

    seen = []

    def all_reduce(tensor, op=None):
        seen.append(tensor.device)
        raise Reduced

    monkeypatch.setattr(d.dist, "all_reduce", all_reduce)
    info = d.DistInfo(rank=0, world=2, device="meta")
    with pytest.raises(Reduced):
        d.mean_across_ranks({"loss": 1.0, "skipped": 0}, info, counts=("skipped",))
    with pytest.raises(Reduced):
        d.any_across_ranks(True, info)
    assert seen == [torch.device("meta")] * 2


def test_run_leaves_the_process_group_it_started_and_no_other(tmp_path, monkeypatch):
    """vjepa.train.run destroys the group init_distributed started, on a refusal too (left to exit-time
    destructors, a gloo rank whose peer had gone aborted now and then: exit -6 in CI); a group the caller
    started stays. One process, WORLD_SIZE=1 group through a file store."""
    import torch.distributed as dist

    from vjepa import distributed
    from vjepa.config_check import ConfigError
    from vjepa.train import run

    def start(*_, **__):
        dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
        distributed._OWN_GROUP = True  # as init_distributed sets it when it starts the group

    class Refusing:
        def __init__(self, cfg):
            start()
            raise ConfigError("refused")

    monkeypatch.setattr("vjepa.trainer.Trainer", Refusing)
    with pytest.raises(ConfigError):
        run({"run_dir": str(tmp_path / "run")})
    assert not dist.is_initialized()
    monkeypatch.setattr("vjepa.trainer.Trainer", lambda cfg: (_ for _ in ()).throw(ConfigError("no")))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store2", rank=0, world_size=1)
    try:
        with pytest.raises(ConfigError):
            run({"run_dir": str(tmp_path / "run")})
        assert dist.is_initialized()  # the caller's group
    finally:
        dist.destroy_process_group()
