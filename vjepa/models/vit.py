"""ViT encoder over image patches or video tubelets, built from timm blocks.

Contract: ``forward(x, keep_idx)`` takes an image [B, C, H, W] or a clip [B, C, T, H, W] and returns
[B, N, D] tokens in raster order over the (T', H', W') grid, or, with ``keep_idx`` [B, N_keep],
only those tokens: the others are dropped *before* the first block, so the cost of the blocks follows
the number of visible tokens. Positions are fixed (t, h, w) sincos embeddings added to every token.

Tokenizers: ``separate`` embeds images with a 2-D patch conv and video with a 3-D tubelet conv;
``shared3d`` uses the tubelet conv for both, repeating an image ``tubelet_size`` times (V-JEPA 2).
``modality_embed`` adds a learned per-modality vector to every token.
"""

from __future__ import annotations

import math

import torch
from timm.models.vision_transformer import Block
from torch import nn

from vjepa.models.patch_embed import PatchEmbed2D, TubeletEmbed3D
from vjepa.models.pos_embed import SinCosPosEmbed

TOKENIZERS = ("separate", "shared3d")
IMAGE, VIDEO = 0, 1


def init_transformer_weights(module: nn.Module, blocks: nn.ModuleList, std: float = 0.02) -> None:
    """Truncated-normal linear/conv weights, zero biases; residual output projections of block i
    scaled by 1/sqrt(2 (i + 1)) so the residual stream's variance does not grow with depth (I-JEPA)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for i, blk in enumerate(blocks):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * (i + 1)))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * (i + 1)))


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], idx [B, M] -> [B, M, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VisionTransformer(nn.Module):
    def __init__(
        self,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        tokenizer: str = "separate",
        modality_embed: bool = False,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        self.embed_dim, self.depth, self.num_heads = embed_dim, depth, num_heads
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.tokenizer = tokenizer
        self.video_embed = TubeletEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        self.image_embed = PatchEmbed2D(patch_size, in_chans, embed_dim) if tokenizer == "separate" else None
        self.modality_embed = nn.Parameter(torch.zeros(2, embed_dim)) if modality_embed else None
        self.pos_embed = SinCosPosEmbed(embed_dim)
        dpr = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        init_transformer_weights(self, self.blocks)
        if self.modality_embed is not None:
            nn.init.trunc_normal_(self.modality_embed, std=1e-4)  # near zero, as published

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') of an image or clip batch."""
        if x.ndim == 4 and self.image_embed is not None:
            return self.image_embed.grid(x.shape)
        return self.video_embed.grid(x.shape)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens plus positions (and modality) for all positions: [B, N, D]."""
        if x.ndim not in (4, 5):
            raise ValueError(f"expected an image [B,C,H,W] or clip [B,C,T,H,W], got shape {tuple(x.shape)}")
        is_image = x.ndim == 4
        tok = self.image_embed(x) if (is_image and self.image_embed is not None) else self.video_embed(x)
        tok = tok + self.pos_embed(self.grid(x), tok.device, tok.dtype)
        if self.modality_embed is not None:
            tok = tok + self.modality_embed[IMAGE if is_image else VIDEO]
        return tok

    def forward(
        self,
        x: torch.Tensor,
        keep_idx: torch.Tensor | None = None,
        return_layers: list[int] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Final normed tokens [B, N(_keep), D]; or, with ``return_layers`` (block indices, 0-based,
        negatives count from the end), the list of those blocks' outputs, each passed through the final norm."""
        tok = self.embed(x)
        if keep_idx is not None:
            tok = gather_tokens(tok, keep_idx)
        wanted = None if return_layers is None else {i % self.depth for i in return_layers}
        outs = []
        for i, blk in enumerate(self.blocks):
            tok = blk(tok)
            if wanted is not None and i in wanted:
                outs.append(self.norm(tok))
        return outs if wanted is not None else self.norm(tok)
