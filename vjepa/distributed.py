"""torch.distributed set-up from torchrun or SLURM/submitit environments, and the few collectives we use.

One process per device. Ranks split every global batch (and its masks) into equal contiguous slices, and
each loads only its own slice (``vjepa.data.JointBatches``), so a run on W processes sees exactly the
samples of the same run on one process with the same global batch; gradients are averaged over ranks after
backward. Backend: NCCL with CUDA, gloo on CPU. NCCL reduces CUDA tensors only, so the small tensors of the
per-step collectives (logged values, the stop flag) live on ``DistInfo.device``, the rank's GPU under NCCL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where the process group's backend reduces tensors (cuda:<local_rank> for NCCL)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_OWN_GROUP = False  # whether init_distributed started the process group (shutdown_distributed ends only that)


def init_distributed(device_type: str) -> DistInfo:
    """Initialise the process group when launched with several processes; a no-op for one."""
    global _OWN_GROUP
    if dist.is_available() and dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local_rank}" if dist.get_backend() == "nccl" else "cpu"
        if device != "cpu":  # NCCL's object collectives and the timers use the current device
            torch.cuda.set_device(local_rank)
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        # Under SLURM (sbatch / submitit) derive MASTER_ADDR, RANK, WORLD_SIZE, LOCAL_RANK from SLURM_*.
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    _OWN_GROUP = True
    return DistInfo(rank, world, local_rank, f"cuda:{local_rank}" if backend == "nccl" else "cpu")


def shutdown_distributed() -> None:
    """Destroy the process group ``init_distributed`` started (one started by the caller is left alone), so
    its threads are joined before the interpreter exits: left to exit-time destructors, a gloo rank whose
    peer had already gone aborted ("terminate called without an active exception", exit -6) now and then."""
    global _OWN_GROUP
    if _OWN_GROUP and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _OWN_GROUP = False


def average_gradients(params, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    if info.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_across_ranks(values: dict[str, float], info: DistInfo, counts=()) -> dict[str, float]:
    """``values`` averaged over ranks in one all-reduce; the keys in ``counts`` (integer counts) summed."""
    if info.world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return {k: round(v) if k in counts else v / info.world for k, v in zip(keys, t.tolist())}


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    if info.world == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def any_across_ranks(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any (so all ranks stop at the same step)."""
    if info.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def errors_across_ranks(error: str | None, info: DistInfo) -> list[tuple[int, str]]:
    """(rank, error) of every rank whose ``error`` is not None, the same list on every rank."""
    if info.world == 1:
        return [] if error is None else [(0, error)]
    errors: list[str | None] = [None] * info.world
    dist.all_gather_object(errors, error)
    return [(rank, e) for rank, e in enumerate(errors) if e is not None]
