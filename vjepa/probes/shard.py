"""Streamed feature extraction split over the processes of a multi-process ``python -m vjepa.evaluate``.

``Shards`` is this process's place among them: ``ONE`` (rank 0 of 1) does everything alone. With W > 1
each split of a folder data set is cut into the extraction batches one process would make (``part``),
whole batches dealt to the ranks in contiguous blocks, so every sample goes through the encoder in the
same batch as in a one-process run; ``gather`` brings the ranks' pieces to rank 0 in rank order, i.e. in
the original sample order. Only rank 0 gets features back, fits the heads and writes files. The
collectives run in a gloo group of their own (CPU tensors, also under NCCL), with a long timeout: the other
ranks wait in them while rank 0 fits a task's heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch.distributed as dist

WAIT = timedelta(hours=24)  # how long a rank waits in a collective (rank 0 fitting heads meanwhile)


@dataclass(frozen=True)
class Shards:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: object = None  # the gloo process group of the collectives (None for one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def over(cls, info) -> Shards:
        """The shards of the process group ``vjepa.distributed.init_distributed`` set up (``info``)."""
        if info.world == 1:
            return ONE
        return cls(info.rank, info.world, info.local_rank, dist.new_group(backend="gloo", timeout=WAIT))

    def part(self, n: int, batch_size: int) -> range:
        """This rank's samples of ``n`` read in batches of ``batch_size``: a contiguous block of whole batches."""
        batches = -(-n // batch_size)
        first, last = self.rank * batches // self.world, (self.rank + 1) * batches // self.world
        return range(min(first * batch_size, n), min(last * batch_size, n))

    def agree(self, value):
        """Rank 0's ``value``, on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def same(self, value, what: str) -> None:
        """Raise on every rank unless every rank has the same ``value`` (e.g. whether a data set is there)."""
        if self.world == 1:
            return
        values = [None] * self.world
        dist.all_gather_object(values, value, group=self.group)
        if any(v != values[0] for v in values):
            raise RuntimeError(f"{what} differs between ranks: {values} (rank -> value)")

    def check(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed: ``error`` itself where it is this rank's, else naming the
        ranks that failed and their errors (so no rank waits for a peer that will not come)."""
        if self.world > 1:
            errors = [None] * self.world
            dist.all_gather_object(
                errors, None if error is None else f"{type(error).__name__}: {error}", group=self.group
            )
            failed = [(r, e) for r, e in enumerate(errors) if e is not None]
            if failed and error is None:
                raise RuntimeError(
                    "feature extraction failed on rank(s) " + "; ".join(f"{r}: {e}" for r, e in failed)
                )
        if error is not None:
            raise error

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the others."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.group)
        return out


ONE = Shards()
