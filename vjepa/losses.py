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

from vjepa import schema
from vjepa.masks import grid_coords

GRANULARITIES = schema.choices("loss.granularity")
DISTANCES = schema.choices("loss.distance")


def context_weights(loss_cfg) -> dict[str, float]:
    """Peak context-loss weight (lambda after the warm-up) per modality: ``loss.context.weight``, for images
    ``loss.context.image_weight`` where set (the published paper: 0.5 video, 0.7 images; the released
    configs: one weight). The context head exists, and its loss is computed, where either is above 0."""
    c = loss_cfg.get("context")
    weight = float(schema.leaf(c, "loss.context.weight"))
    image = schema.leaf(c, "loss.context.image_weight")
    return {"image": weight if image is None else float(image), "video": weight}


def distance(
    pred: torch.Tensor, target: torch.Tensor, kind: str = "smooth_l1", beta: float = 2.0
) -> torch.Tensor:
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
    """pred, target [B, N_t, D]; blocks [B, K, N_t] bool membership -> scalar, in fp32 whatever the autocast
    around it (bmm would otherwise round the block means to bf16, and their difference to noise)."""
    with torch.autocast(pred.device.type, enabled=False):
        pred, target = pred.float(), target.float()
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


def context_distance_weights(
    ctx_idx: torch.Tensor, tgt_idx: torch.Tensor, grid, chunk: int = 2**24
) -> torch.Tensor:
    """1 / sqrt(d_min) per context token, d_min = Euclidean distance on the (t, h, w) grid to the nearest
    masked token of the same sample (>= 1 for a context token). [B, N_c]; vectorised, chunked over the batch
    so the [b, N_c, N_t] distance block stays below ``chunk`` elements."""
    coords = grid_coords(grid, ctx_idx.device).float()
    b, n_c, n_t = ctx_idx.shape[0], ctx_idx.shape[1], tgt_idx.shape[1]
    step = max(1, chunk // max(n_c * n_t, 1))
    out = []
    for s in range(0, b, step):
        d = torch.cdist(coords[ctx_idx[s : s + step]], coords[tgt_idx[s : s + step]])
        out.append(d.min(dim=-1).values)
    return torch.cat(out).clamp(min=1.0).rsqrt()


def context_loss(pred_ctx, target_ctx, weights=None, kind="smooth_l1", beta=2.0) -> torch.Tensor:
    """Mean over context tokens of weight * distance (a plain mean, not normalised by the weights' sum)."""
    d = distance(pred_ctx, target_ctx, kind, beta)
    return (d * weights).mean() if weights is not None else d.mean()
