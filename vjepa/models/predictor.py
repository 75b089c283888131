"""Narrow predictor: context tokens + mask tokens at the target positions -> predicted targets.

Contract: ``forward(ctx, ctx_idx, tgt_idx, grid)`` with ctx [B, N_c, D] (online-encoder output at the
context positions ``ctx_idx`` [B, N_c] of a (T', H', W') grid) returns predictions [B, N_t, D] for the
positions ``tgt_idx`` [B, N_t]. The context is projected D -> D_p; every target position gets the one
shared learnable mask token plus its sincos position; a transformer of width D_p runs over both, and
the target outputs are projected D_p -> D.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from vjepa.models.pos_embed import SinCosPosEmbed
from vjepa.models.vit import gather_tokens, init_transformer_weights


class Predictor(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        width: int = 96,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
    ):
        super().__init__()
        self.embed_dim, self.width = embed_dim, width
        self.embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = SinCosPosEmbed(width)
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_ratio, qkv_bias=qkv_bias) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, embed_dim)
        init_transformer_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(
        self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        b = ctx.shape[0]
        pos = self.pos_embed(grid, ctx.device, ctx.dtype).unsqueeze(0).expand(b, -1, -1)
        x_ctx = self.embed(ctx) + gather_tokens(pos, ctx_idx)
        x_tgt = self.mask_token.to(ctx.dtype) + gather_tokens(pos, tgt_idx)
        x = torch.cat([x_ctx, x_tgt], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.proj(self.norm(x[:, ctx.shape[1] :]))
