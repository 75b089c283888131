"""The JEPA training model: online encoder, EMA target encoder and predictor, and one modality's loss.

Contract: ``JEPA.loss(x, masks, context_weight)`` runs the target encoder once on all tokens (no gradient;
outputs layer-normed without affine, per level with deep self-supervision), then for each mask setting the
online encoder on that setting's context tokens and the predictor at its target positions, and returns
L = mean over settings of (L_predict + context_weight * L_ctx) plus detached diagnostics (losses: mean over
settings; feature stds: over the tokens of every setting). A setting given
as length buckets (a list of ``Masks`` with ``index``, vjepa/masks.py) runs one pass per bucket on its
samples; its loss is the buckets' losses weighted by their share of the batch, so every sample weighs the
same.
``JEPA.update_target(tau)`` moves the target towards the online encoder with fused multi-tensor ops:
xi <- tau * xi + (1 - tau) * theta.
The target encoder stays in eval mode whatever ``train()`` sets: its targets are deterministic (no
stochastic depth), while the online encoder and predictor follow the model's mode.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vjepa import schema
from vjepa.losses import context_distance_weights, context_loss, context_weights, prediction_loss
from vjepa.masks import Masks
from vjepa.models import build_encoder, build_predictor, gather_tokens
from vjepa.models.vit import IMAGE, VIDEO
from vjepa.timing import NO_TIMER


def feature_std(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the std across all tokens of the batch: 0 means collapse to one vector."""
    return x.detach().float().flatten(0, -2).std(0, correction=0).mean()


class JEPA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.use_context_loss = max(context_weights(cfg.loss).values()) > 0
        self.distance_weighting = bool(schema.value(cfg, "loss.context.distance_weighting"))
        self.encoder = build_encoder(cfg.model)
        self.predictor = build_predictor(
            cfg.predictor, self.encoder.embed_dim, cfg.model, context_head=self.use_context_loss
        )
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)
        self.target_encoder.eval()
        self.granularity = cfg.loss.granularity
        self.distance = cfg.loss.distance
        self.beta = float(schema.value(cfg, "loss.beta"))
        self.target_norm = schema.value(cfg, "loss.target_norm")
        self.timer = NO_TIMER

    def train(self, mode: bool = True) -> JEPA:
        """Set the mode of the online encoder and predictor; the target encoder stays in eval mode."""
        super().train(mode)
        self.target_encoder.eval()
        return self

    def online_parameters(self):
        return list(self.encoder.parameters()) + list(self.predictor.parameters())

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        """A target: layer-normed over channels (``loss.target_norm=layer``) or as the encoder gives it."""
        return F.layer_norm(h, h.shape[-1:]) if self.target_norm == "layer" else h

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, levels * D] (or [B, N, D]) target features of all tokens (``loss.target_norm``)."""
        enc = self.target_encoder
        if enc.levels:
            return torch.cat([self._norm(h) for h in enc.raw_levels(x, enc.level_ids)], dim=-1)
        return self._norm(enc(x))

    def encode_context(self, x: torch.Tensor, ctx_idx: torch.Tensor) -> torch.Tensor:
        if self.encoder.levels:
            return torch.cat(self.encoder.forward_levels(x, keep_idx=ctx_idx), dim=-1)
        return self.encoder(x, keep_idx=ctx_idx)

    def loss(
        self, x: torch.Tensor, masks: Masks | list[Masks | list[Masks]], context_weight: float = 0.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        settings = masks if isinstance(masks, list) else [masks]
        settings = [s if isinstance(s, list) else [s] for s in settings]
        modality = IMAGE if x.ndim == 4 else VIDEO
        timer = self.timer
        with timer("target_encoder"):
            targets = self.targets(x)
        total = 0.0
        l_pred, l_ctx = [], []
        seen = []  # (context, prediction, target) of every setting's buckets, for the diagnostics
        for buckets in settings:
            lp = lc = 0.0
            for m in buckets:
                share = m.size / x.shape[0]
                xb, tb = (x, targets) if m.index is None else (x[m.index], targets[m.index])
                pred, pred_ctx, target, ctx = self._predict(xb, tb, m, modality)
                with timer("loss"):
                    loss = prediction_loss(
                        pred.float(), target.float(), m.blocks, self.granularity, self.distance, self.beta
                    )
                    lp = lp + share * loss.detach()
                    if pred_ctx is not None:
                        with timer("distance_weights"):
                            weights = (
                                context_distance_weights(m.ctx_idx, m.tgt_idx, m.grid)
                                if self.distance_weighting
                                else None
                            )
                        target_ctx = gather_tokens(tb, m.ctx_idx)
                        c = context_loss(
                            pred_ctx.float(), target_ctx.float(), weights, self.distance, self.beta
                        )
                        lc = lc + share * c.detach()
                        loss = loss + context_weight * c
                total = total + share * loss / len(settings)
                seen.append((ctx, pred, target))
            l_pred.append(lp)
            if self.use_context_loss:
                l_ctx.append(lc)
        stats = {"loss_pred": torch.stack(l_pred).mean()}
        if l_ctx:
            stats["loss_ctx"] = torch.stack(l_ctx).mean()
        d = self.encoder.embed_dim
        ctx, pred, target = (torch.cat([t[..., -d:].detach().flatten(0, -2) for t in z]) for z in zip(*seen))
        stats.update(context_std=feature_std(ctx), pred_std=feature_std(pred), target_std=feature_std(target))
        return total, stats

    def _predict(self, x, targets, m: Masks, modality):
        """(predictions at the targets, predictions at the context or None, targets, context features)."""
        with self.timer("online_encoder"):
            ctx = self.encode_context(x, m.ctx_idx)
        with self.timer("predictor"):
            out = self.predictor(
                ctx, m.ctx_idx, m.tgt_idx, m.grid, modality, return_context=self.use_context_loss
            )
        pred, pred_ctx = out if self.use_context_loss else (out, None)
        return pred, pred_ctx, gather_tokens(targets, m.tgt_idx), ctx

    def compile_blocks(self, mode: str = "default") -> None:
        """torch.compile every transformer block in place (dynamic token counts) in torch.compile's ``mode``
        ("default", "reduce-overhead", ...), so parameter names and checkpoints stay the same."""
        for module in (self.encoder, self.target_encoder, self.predictor):
            for blk in module.blocks:
                blk.compile(dynamic=True, mode=None if mode == "default" else mode)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        online = list(self.encoder.parameters())
        target = list(self.target_encoder.parameters())
        torch._foreach_lerp_(target, online, 1.0 - tau)
