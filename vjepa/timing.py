"""Named wall-clock sections of a training step, for the benchmark; a no-op unless enabled.

``with timer("predictor"): ...`` adds the section's time (synchronising CUDA first when timing a GPU) to
``timer.totals``. The trainer and model always call it, so the benchmark measures the production path.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import torch


class StepTimer:
    def __init__(self, enabled: bool = False, cuda: bool = False):
        self.enabled, self.cuda = enabled, cuda
        self.totals: dict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def _section(self, name: str):
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] += time.perf_counter() - t0

    def __call__(self, name: str):
        return self._section(name) if self.enabled else nullcontext()

    def reset(self) -> None:
        self.totals.clear()


NO_TIMER = StepTimer(enabled=False)
