"""The JEPA training model: online encoder, EMA target encoder and predictor, and one modality's loss.

Contract: ``JEPA.loss(x, masks)`` runs the target encoder on all tokens (no gradient, outputs layer-normed
without affine), the online encoder on the context tokens only, the predictor at the target positions, and
returns the prediction loss plus detached diagnostics. ``JEPA.update_target(tau)`` moves the target towards
the online encoder with fused multi-tensor ops: xi <- tau * xi + (1 - tau) * theta.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vjepa.losses import prediction_loss
from vjepa.masks import Masks
from vjepa.models import build_encoder, build_predictor, gather_tokens


def feature_std(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the std across all tokens of the batch: 0 means collapse to one vector."""
    return x.detach().float().flatten(0, -2).std(0).mean()


class JEPA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = build_encoder(cfg.model)
        self.predictor = build_predictor(cfg.predictor, self.encoder.embed_dim)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)
        self.granularity = cfg.loss.granularity
        self.distance = cfg.loss.distance
        self.beta = float(cfg.loss.get("beta", 2.0))

    def online_parameters(self):
        return list(self.encoder.parameters()) + list(self.predictor.parameters())

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        h = self.target_encoder(x)
        return F.layer_norm(h, h.shape[-1:])

    def loss(self, x: torch.Tensor, masks: Masks) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = gather_tokens(self.targets(x), masks.tgt_idx)
        ctx = self.encoder(x, keep_idx=masks.ctx_idx)
        pred = self.predictor(ctx, masks.ctx_idx, masks.tgt_idx, masks.grid)
        loss = prediction_loss(pred.float(), target.float(), masks.blocks, self.granularity, self.distance, self.beta)
        stats = {"context_std": feature_std(ctx), "pred_std": feature_std(pred), "target_std": feature_std(target)}
        return loss, stats

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        online = list(self.encoder.parameters())
        target = list(self.target_encoder.parameters())
        torch._foreach_lerp_(target, online, 1.0 - tau)
