"""Narrow predictor: context tokens + mask tokens at the target positions -> predicted targets.

Contract: ``forward(ctx, ctx_idx, tgt_idx, grid)`` with ctx [B, N_c, D_in] (online-encoder output at the
context positions ``ctx_idx`` [B, N_c] of a (T', H', W') grid) returns predictions [B, N_t, D_out] for the
positions ``tgt_idx`` [B, N_t]. The context is projected D_in -> D_p; every target position gets the one
shared learnable mask token plus its position; a transformer of width D_p runs over both, and the target
outputs are projected D_p -> D_out.

Options of the published V-JEPA 2.1 recipe: ``levels`` > 0 (deep self-supervision: the input is the
concatenation of ``levels`` encoder levels, fused by Linear(levels*D -> D), GELU, Linear(D -> D_p), and the
output has ``levels * D`` channels); ``context_head`` (a separate output projection that also predicts the
context positions, returned with ``return_context=True``); ``modality_embed`` (a learned vector per
modality added to every token); ``pos="rope"`` (rotary (t, h, w) positions instead of added sincos).
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa.masks import grid_coords
from vjepa.models.pos_embed import SinCosPosEmbed
from vjepa.models.rope import rope_3d
from vjepa.models.vit import gather_tokens, init_transformer_weights, make_blocks, run_block


class Predictor(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        width: int = 96,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        levels: int = 0,
        context_head: bool = False,
        modality_embed: bool = False,
        pos: str = "sincos",
    ):
        super().__init__()
        self.embed_dim, self.width, self.num_heads, self.pos = embed_dim, width, num_heads, pos
        self.out_dim = embed_dim * max(levels, 1)
        if levels:
            self.embed = nn.Sequential(
                nn.Linear(self.out_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, width)
            )
        else:
            self.embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = SinCosPosEmbed(width) if pos == "sincos" else None
        self.modality_embed = nn.Parameter(torch.zeros(2, width)) if modality_embed else None
        self.blocks = make_blocks(width, depth, num_heads, mlp_ratio, pos)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, self.out_dim)
        self.context_proj = nn.Linear(width, self.out_dim) if context_head else None
        self.grad_checkpointing = False
        init_transformer_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        if self.modality_embed is not None:
            nn.init.trunc_normal_(self.modality_embed, std=1e-4)

    def forward(
        self,
        ctx: torch.Tensor,
        ctx_idx: torch.Tensor,
        tgt_idx: torch.Tensor,
        grid: tuple[int, int, int],
        modality: int | None = None,
        return_context: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        b, n_ctx = ctx.shape[:2]
        x_ctx = self.embed(ctx).float()  # an fp32 residual stream, as the encoder's (VisionTransformer.embed)
        x_tgt = self.mask_token.to(x_ctx.dtype).expand(b, tgt_idx.shape[1], -1)
        if self.pos_embed is not None:
            pos = self.pos_embed(grid, ctx.device, x_ctx.dtype).unsqueeze(0).expand(b, -1, -1)
            x_ctx = x_ctx + gather_tokens(pos, ctx_idx)
            x_tgt = x_tgt + gather_tokens(pos, tgt_idx)
        x = torch.cat([x_ctx, x_tgt], dim=1)
        if self.modality_embed is not None and modality is not None:
            x = x + self.modality_embed[modality]
        rope = None
        if self.pos == "rope":
            coords = grid_coords(grid, ctx.device)[torch.cat([ctx_idx, tgt_idx], dim=1)]
            rope = rope_3d(coords, self.width // self.num_heads)
        for blk in self.blocks:
            x = run_block(blk, x, rope, self.grad_checkpointing)
        out_ctx, out_tgt = self.norm(x).split([n_ctx, x.shape[1] - n_ctx], dim=1)
        pred = self.proj(out_tgt)
        if not return_context:
            return pred
        if self.context_proj is None:
            raise ValueError("predictor built without context_head; cannot return context predictions")
        return pred, self.context_proj(out_ctx)
