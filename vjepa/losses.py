"""Prediction losses: the loss-granularity axis.

``token`` (dense, V-JEPA 2.1 as in the design document): one distance per masked token, averaged over the
union of the target blocks (each masked token counts once), then over the batch. Since every sample of a
batch has the same number of masked tokens, this equals the per-sample mean followed by the batch mean.

``block`` (the V-JEPA 2 style the design document contrasts): for each target block, the mean prediction and
the mean target over the block's tokens, then the same distance between the two means; blocks are averaged
weighted by their size, then over the batch. Every token of a block therefore receives the same gradient.

Distances (per element, then averaged over channels): ``smooth_l1`` (Huber with threshold ``beta``),
``l2`` (squared error), ``l1`` (absolute error).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRANULARITIES = ("token", "block")
DISTANCES = ("smooth_l1", "l2", "l1")


def distance(pred: torch.Tensor, target: torch.Tensor, kind: str = "smooth_l1", beta: float = 2.0) -> torch.Tensor:
    """Per-vector distance averaged over the last (channel) dim: [..., D] -> [...]."""
    if kind == "smooth_l1":
        d = F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    elif kind == "l2":
        d = (pred - target).square()
    elif kind == "l1":
        d = (pred - target).abs()
    else:
        raise ValueError(f"loss.distance must be one of {DISTANCES}, got {kind!r}")
    return d.mean(-1)


def token_loss(pred, target, kind="smooth_l1", beta=2.0) -> torch.Tensor:
    """pred, target [B, N_t, D] -> scalar."""
    return distance(pred, target, kind, beta).mean()


def block_loss(pred, target, blocks: torch.Tensor, kind="smooth_l1", beta=2.0) -> torch.Tensor:
    """pred, target [B, N_t, D]; blocks [B, K, N_t] bool membership -> scalar."""
    m = blocks.to(pred.dtype)
    size = m.sum(-1)  # [B, K]
    denom = size.clamp(min=1).unsqueeze(-1)
    pred_mean = torch.bmm(m, pred) / denom
    target_mean = torch.bmm(m, target) / denom
    per_block = distance(pred_mean, target_mean, kind, beta)  # [B, K]
    per_sample = (per_block * size).sum(1) / size.sum(1).clamp(min=1)
    return per_sample.mean()


def prediction_loss(pred, target, blocks, granularity="token", kind="smooth_l1", beta=2.0) -> torch.Tensor:
    if granularity == "token":
        return token_loss(pred, target, kind, beta)
    if granularity == "block":
        return block_loss(pred, target, blocks, kind, beta)
    raise ValueError(f"loss.granularity must be one of {GRANULARITIES}, got {granularity!r}")
