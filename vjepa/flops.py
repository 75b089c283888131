"""Analytic training cost of one pretraining step, from the config alone (no model is built).

Contract: ``step_cost(cfg)`` returns the tokens and FLOPs of one optimizer step over the global batch,
counting 2 FLOPs per multiply-add of every matmul and convolution:

* target encoder (EMA, forward only) on all N tokens of each sample,
* online encoder on the N_c context tokens, predictor on all N tokens (N_c context + N_t mask tokens),
  both trained: backward = 2 x forward, except the patch embedding, which embeds all N positions before
  the context is selected and needs no input gradient (pixels): its backward = 1 x forward.

Per transformer block of width d, MLP ratio r over n tokens: (8 + 4 r) n d^2 for the qkv, output and MLP
projections plus 4 n^2 d for the attention scores and the weighted sum. Layer norms, softmax, GELU, the loss,
the EMA update and the optimizer step are left out (each O(n d)). These are model FLOPs, as in MFU: the
recomputation of activation checkpointing is not counted. tests/test_flops.py checks the count against
torch's FLOP counter on real steps. ``gpu_hours(flops, sustained_tflops)`` converts at a per-GPU throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

from vjepa import schema
from vjepa.data import split_batch
from vjepa.losses import context_weights
from vjepa.masks import mask_bucketing, mask_settings, masked_count
from vjepa.models import levels as feature_levels


def block_flops(n: int, d: int, mlp_ratio: float) -> float:
    """Forward FLOPs of one transformer block over n tokens of width d."""
    return (8 + 4 * mlp_ratio) * n * d * d + 4 * n * n * d


def encoder_flops(n_embed: int, n_blocks: int, model, patch_volume: int) -> float:
    """Forward FLOPs of the encoder: patch embedding of n_embed tokens, blocks on the n_blocks kept ones."""
    embed = 2 * n_embed * patch_volume * model.embed_dim
    return embed + model.depth * block_flops(n_blocks, model.embed_dim, model.mlp_ratio)


def predictor_flops(n_ctx: int, n_tgt: int, embed_dim: int, pred, levels: int, context_head: bool) -> float:
    """Forward FLOPs of the predictor: input projection of the context, blocks on all tokens, output
    projection of the targets (and of the context with the context-loss head). With deep supervision the
    input is levels x D channels fused by levels*D -> D -> width, and the output has levels x D channels."""
    width, out_dim = pred.width, embed_dim * max(levels, 1)
    embed = 2 * n_ctx * (levels * embed_dim * embed_dim + embed_dim * width if levels else embed_dim * width)
    proj = 2 * (n_tgt + (n_ctx if context_head else 0)) * width * out_dim
    return (
        embed
        + proj
        + pred.depth * block_flops(n_ctx + n_tgt, width, schema.leaf(pred, "predictor.mlp_ratio"))
    )


@dataclass(frozen=True)
class StepCost:
    tokens: int  # tokens of the global batch (all positions of every sample)
    target_flops: float  # EMA target encoder, forward
    online_flops: float  # online encoder on context tokens, forward + backward
    predictor_flops: float  # forward + backward

    @property
    def flops(self) -> float:
        return self.target_flops + self.online_flops + self.predictor_flops


def _mask_buckets(
    setting: dict, grid: tuple[int, int, int], batch: int, buckets: int = 1, by: str = "order"
) -> list[tuple[float, int, int]]:
    """(share of the samples, context tokens, target tokens) of each pass one mask setting makes: one with a
    ratio; without one, the buckets of a few fixed draws (each cuts both sets to its smallest sample), so the
    attention, quadratic in the tokens of a pass, is priced per bucket rather than at the mean count."""
    n = grid[0] * grid[1] * grid[2]
    if setting["ratio"] is not None:
        n_tgt = masked_count(float(setting["ratio"]), n)
        return [(1.0, n - n_tgt, n_tgt)]
    import torch
    from omegaconf import OmegaConf

    from vjepa.masks import MaskSpec, sample_mask_buckets

    g, spec, draws = torch.Generator().manual_seed(0), MaskSpec.from_cfg(OmegaConf.create(setting)), 8
    return [
        (m.size / (draws * batch), m.ctx_idx.shape[1], m.tgt_idx.shape[1])
        for _ in range(draws)
        for m in sample_mask_buckets(spec, batch, grid, g, min(buckets, batch), by)
    ]


def step_cost(cfg) -> StepCost:
    """Cost of one step of the run configured by ``cfg`` (a composed training config).

    Each mask setting (``mask.settings``) runs its own online-encoder and predictor pass; the target
    encoder runs once per sample."""
    m, data = cfg.model, cfg.data
    levels = feature_levels(m)
    ctx_head = max(context_weights(cfg.loss).values()) > 0  # context-loss head
    n_img, n_vid = split_batch(cfg.batch_size, data.mix, data.image_fraction)
    p, tp, chans = m.patch_size, m.tubelet_size, schema.leaf(m, "model.in_chans")
    shared = m.tokenizer == "shared3d"  # images go through the tubelet conv, repeated tp times
    batches = []
    if n_img:
        s = data.image.size
        batches.append(("image", n_img, (1, s // p, s // p), chans * p * p * (tp if shared else 1)))
    if n_vid:
        s = data.video.size
        batches.append(("video", n_vid, (data.video.frames // tp, s // p, s // p), chans * p * p * tp))
    tokens = target = online = pred = 0.0
    for modality, count, grid, patch_volume in batches:
        n = grid[0] * grid[1] * grid[2]
        tokens += count * n
        target += count * encoder_flops(n, n, m, patch_volume)
        embed = encoder_flops(n, 0, m, patch_volume)
        for setting in mask_settings(cfg.mask, modality):
            for share, n_ctx, n_tgt in _mask_buckets(setting, grid, count, *mask_bucketing(cfg.mask)):
                samples = share * count
                online += samples * (3 * encoder_flops(n, n_ctx, m, patch_volume) - embed)
                pred += (
                    samples * 3 * predictor_flops(n_ctx, n_tgt, m.embed_dim, cfg.predictor, levels, ctx_head)
                )
    return StepCost(int(tokens), target, online, pred)


def gpu_hours(flops: float, sustained_tflops: float) -> float:
    """GPU-hours to execute ``flops`` at ``sustained_tflops`` TFLOP/s per GPU."""
    return flops / (sustained_tflops * 1e12) / 3600.0
