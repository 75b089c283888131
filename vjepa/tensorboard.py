"""Optional live curves: a run's metrics records as TensorBoard scalars beside ``metrics.jsonl``.

``ScalarWriter.open(run_dir, enabled)`` returns a writer whose ``write(record)`` takes the same dict a line
of ``metrics.jsonl`` holds (``{"step": s, "loss": ..., "probe/cifar10_knn/top1": ..., ...}``) and adds each
finite number under its key at the record's ``step``; other values (strings, lists, None, NaN) are left
out. Event files go to ``<run_dir>/tensorboard/``. Off by default (``enabled`` False: ``write`` and
``close`` do nothing). TensorBoard is an optional dependency (``pip install tensorboard``): where
``torch.utils.tensorboard`` cannot be imported, ``open`` logs one message saying so and returns the
no-op writer, so a run never fails for the lack of it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

MISSING = (
    "[tensorboard] live curves are off: torch.utils.tensorboard cannot be imported ({error}); "
    "install it with `pip install tensorboard` (metrics.jsonl is written as always)"
)


class ScalarWriter:
    def __init__(self, writer=None):
        self.writer = writer

    @classmethod
    def open(cls, run_dir, enabled: bool = False, log=None) -> ScalarWriter:
        if not enabled:
            return cls()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # ImportError, or a broken install raising something else
            (log or _stderr)(MISSING.format(error=f"{type(exc).__name__}: {exc}"))
            return cls()
        return cls(SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard")))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def write(self, record: dict) -> int:
        """Add the record's finite numbers at its ``step``; returns how many were added."""
        if self.writer is None or "step" not in record:
            return 0
        step, n = int(record["step"]), 0
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, float(value), step)
                n += 1
        return n

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
