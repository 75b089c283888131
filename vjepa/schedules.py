"""Step-indexed schedules. Pure functions of the step, so a resumed run needs no schedule state."""

from __future__ import annotations

import math


def warmup_cosine(
    step: int, total: int, peak: float, warmup: int, start: float = 0.0, final: float = 0.0
) -> float:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup`` steps, then cosine decay to ``final`` at ``total``."""
    if step < warmup:
        return start + (peak - start) * step / max(warmup, 1)
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_momentum(step: int, total: int, start: float = 0.996, end: float = 1.0) -> float:
    """Cosine schedule tau_t = end - (end - start) (cos(pi t / T) + 1) / 2 from the design document."""
    progress = min(step / max(total, 1), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def linear_warmup(step: int, value: float, start: int, end: int) -> float:
    """0 before ``start``, linear ramp to ``value`` at ``end``, then constant (context-loss lambda)."""
    if step < start:
        return 0.0
    if step >= end:
        return value
    return value * (step - start) / max(end - start, 1)
