"""Encoder, predictor and builders from config."""

from __future__ import annotations

import torch

from vjepa.models.predictor import Predictor
from vjepa.models.vit import VisionTransformer, gather_tokens

__all__ = [
    "VisionTransformer",
    "Predictor",
    "gather_tokens",
    "build_encoder",
    "build_predictor",
    "count_params",
]


def build_encoder(model_cfg, device: torch.device | str | None = None) -> VisionTransformer:
    """Encoder from a ``model`` config group; ``device='meta'`` builds it without memory."""
    with torch.device(device or "cpu"):
        return VisionTransformer(
            embed_dim=model_cfg.embed_dim,
            depth=model_cfg.depth,
            num_heads=model_cfg.num_heads,
            patch_size=model_cfg.patch_size,
            tubelet_size=model_cfg.tubelet_size,
            in_chans=model_cfg.get("in_chans", 3),
            mlp_ratio=model_cfg.mlp_ratio,
            tokenizer=model_cfg.tokenizer,
            modality_embed=model_cfg.modality_embed,
            pos=model_cfg.get("pos", "sincos"),
            levels=4 if model_cfg.get("deep_supervision", False) else 0,
            drop_path=model_cfg.get("drop_path", 0.0),
        )


def build_predictor(
    pred_cfg,
    embed_dim: int,
    model_cfg=None,
    context_head: bool = False,
    device: torch.device | str | None = None,
) -> Predictor:
    """Predictor from a ``predictor`` group; ``model_cfg`` passes on positions, levels and modality embedding."""
    model_cfg = model_cfg or {}
    with torch.device(device or "cpu"):
        return Predictor(
            embed_dim=embed_dim,
            width=pred_cfg.width,
            depth=pred_cfg.depth,
            num_heads=pred_cfg.num_heads,
            mlp_ratio=pred_cfg.get("mlp_ratio", 4.0),
            levels=4 if model_cfg.get("deep_supervision", False) else 0,
            context_head=context_head,
            modality_embed=bool(model_cfg.get("modality_embed", False)),
            pos=model_cfg.get("pos", "sincos"),
        )


def count_params(module: torch.nn.Module, prefix: str | None = None) -> int:
    """Number of parameters (works on the meta device); only those under ``prefix`` if given."""
    return sum(p.numel() for n, p in module.named_parameters() if prefix is None or n.startswith(prefix))
