"""Encoder, predictor and builders from config."""

from __future__ import annotations

import torch

from vjepa import schema
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


def levels(model_cfg) -> int:
    """Feature levels of a ``model`` config: 4 with ``model.deep_supervision``, else 0 (the last block only)."""
    return 4 if schema.leaf(model_cfg, "model.deep_supervision") else 0


def build_encoder(model_cfg, device: torch.device | str | None = None) -> VisionTransformer:
    """Encoder from a ``model`` config group; ``device='meta'`` builds it without memory."""
    with torch.device(device or "cpu"):
        return VisionTransformer(
            embed_dim=model_cfg.embed_dim,
            depth=model_cfg.depth,
            num_heads=model_cfg.num_heads,
            patch_size=model_cfg.patch_size,
            tubelet_size=model_cfg.tubelet_size,
            in_chans=schema.leaf(model_cfg, "model.in_chans"),
            mlp_ratio=model_cfg.mlp_ratio,
            tokenizer=model_cfg.tokenizer,
            modality_embed=model_cfg.modality_embed,
            pos=schema.leaf(model_cfg, "model.pos"),
            levels=levels(model_cfg),
            drop_path=schema.leaf(model_cfg, "model.drop_path"),
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
            mlp_ratio=schema.leaf(pred_cfg, "predictor.mlp_ratio"),
            levels=levels(model_cfg),
            context_head=context_head,
            modality_embed=bool(schema.leaf(model_cfg, "model.modality_embed")),
            pos=schema.leaf(model_cfg, "model.pos"),
        )


def count_params(module: torch.nn.Module, prefix: str | None = None) -> int:
    """Number of parameters (works on the meta device); only those under ``prefix`` if given."""
    return sum(p.numel() for n, p in module.named_parameters() if prefix is None or n.startswith(prefix))
