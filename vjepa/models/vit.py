"""ViT encoder over image patches or video tubelets, built from timm blocks.

Contract: ``forward(x, keep_idx)`` takes an image [B, C, H, W] or a clip [B, C, T, H, W] and returns
[B, N, D] tokens in raster order over the (T', H', W') grid, or, with ``keep_idx`` [B, N_keep], only those
tokens: the others are dropped *before* the first block, so the cost of the blocks follows the number of
visible tokens.

Positions: ``pos="sincos"`` adds fixed (t, h, w) sincos embeddings to the tokens; ``pos="rope"`` rotates
queries and keys by their (t, h, w) position in every block (``vjepa.models.rope.RopeBlock``).
Tokenizers: ``separate`` embeds images with a 2-D patch conv and video with a 3-D tubelet conv;
``shared3d`` uses the tubelet conv for both, repeating an image ``tubelet_size`` times (V-JEPA 2).
``modality_embed`` adds a learned per-modality vector to every token.
``levels`` > 0 (deep self-supervision) exposes that many equally spaced block outputs, each with its own
LayerNorm, through ``forward_levels``.
"""

from __future__ import annotations

import math

import torch
import torch.utils.checkpoint
from timm.models.vision_transformer import Block
from torch import nn

from vjepa import schema
from vjepa.masks import grid_coords
from vjepa.models.patch_embed import PatchEmbed2D, TubeletEmbed3D
from vjepa.models.pos_embed import SinCosPosEmbed
from vjepa.models.rope import RopeBlock, rope_3d

TOKENIZERS = schema.choices("model.tokenizer")
POSITIONS = schema.choices("model.pos")
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


def make_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, pos: str, drop_path: float = 0.0):
    dpr = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
    block = RopeBlock if pos == "rope" else Block
    return nn.ModuleList(
        block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i]) for i in range(depth)
    )


def run_block(blk: nn.Module, x: torch.Tensor, rope: tuple | None, checkpoint: bool) -> torch.Tensor:
    kwargs = {"rope": rope} if rope is not None else {}
    if checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False, **kwargs)
    return blk(x, **kwargs)


def block_ids(layers, depth: int) -> list[int]:
    """Block indices (negatives count from the end) as 0-based indices of a ``depth``-block encoder, in order."""
    layers = list(layers)
    bad = [i for i in layers if not isinstance(i, int) or isinstance(i, bool) or not -depth <= i < depth]
    if not layers or bad:
        raise ValueError(
            f"layers={layers!r}: each must be a block index in [{-depth}, {depth - 1}] (the encoder has "
            f"{depth} blocks; negatives count from the end), at least one"
        )
    return [i % depth for i in layers]


# The released code's 4 levels where they are not (k + 1) * depth // 4 - 1: ViT-G's 48 blocks read block 37,
# not 35 (vjepa21-published.md, item 2: 12 -> [2,5,8,11], 24 -> [5,11,17,23], 40 -> [9,19,29,39], 48 -> ...).
PUBLISHED_LEVELS = {48: [11, 23, 37, 47]}


def level_indices(depth: int, levels: int) -> list[int]:
    """Equally spaced block indices ending at the last block: depth 12, 4 levels -> [2, 5, 8, 11]; the
    published blocks where they differ (``PUBLISHED_LEVELS``). Distinct and non-negative only when
    ``depth >= levels``."""
    if levels == 4 and depth in PUBLISHED_LEVELS:
        return list(PUBLISHED_LEVELS[depth])
    return [(k + 1) * depth // levels - 1 for k in range(levels)]


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
        tokenizer: str = "separate",
        modality_embed: bool = False,
        pos: str = "sincos",
        levels: int = 0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        if pos not in POSITIONS:
            raise ValueError(f"pos must be one of {POSITIONS}, got {pos!r}")
        if levels > depth:
            raise ValueError(
                f"deep supervision reads {levels} levels, one block each: depth={depth} must be >= {levels}"
            )
        self.embed_dim, self.depth, self.num_heads = embed_dim, depth, num_heads
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.tokenizer, self.pos = tokenizer, pos
        self.video_embed = TubeletEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        self.image_embed = PatchEmbed2D(patch_size, in_chans, embed_dim) if tokenizer == "separate" else None
        self.modality_embed = nn.Parameter(torch.zeros(2, embed_dim)) if modality_embed else None
        self.pos_embed = SinCosPosEmbed(embed_dim) if pos == "sincos" else None
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, pos, drop_path)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.level_ids = level_indices(depth, levels) if levels else []
        self.level_norms = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-6) for _ in self.level_ids)
        self.grad_checkpointing = False  # recompute block activations in backward (paper-scale presets)
        init_transformer_weights(self, self.blocks)
        if self.modality_embed is not None:
            nn.init.trunc_normal_(self.modality_embed, std=1e-4)  # near zero, as published

    @property
    def levels(self) -> int:
        return len(self.level_ids)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') of an image or clip batch."""
        if x.ndim == 4 and self.image_embed is not None:
            return self.image_embed.grid(x.shape)
        return self.video_embed.grid(x.shape)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (plus sincos positions and modality, where enabled) for all positions: [B, N, D]."""
        if x.ndim not in (4, 5):
            raise ValueError(f"expected an image [B,C,H,W] or clip [B,C,T,H,W], got shape {tuple(x.shape)}")
        is_image = x.ndim == 4
        tok = self.image_embed(x) if (is_image and self.image_embed is not None) else self.video_embed(x)
        # An fp32 residual stream under bf16 autocast too (the blocks compute in bf16), in every configuration
        # (as timm's, and the released code's, whose fp32 position parameter promotes it): it used to be bf16
        # or fp32 depending on whether the fp32 modality embedding was added.
        tok = tok.float()
        if self.pos_embed is not None:
            tok = tok + self.pos_embed(self.grid(x), tok.device, tok.dtype)
        if self.modality_embed is not None:
            tok = tok + self.modality_embed[IMAGE if is_image else VIDEO]
        return tok

    def _blocks(self, x: torch.Tensor, keep_idx: torch.Tensor | None, wanted: set[int]):
        """Run the blocks; yield (block index, output) for the wanted indices."""
        tok = self.embed(x)
        b, n = tok.shape[:2]
        rope = None
        if self.pos == "rope":
            coords = grid_coords(self.grid(x), tok.device).expand(b, n, 3)
            if keep_idx is not None:
                coords = gather_tokens(coords, keep_idx)
            rope = rope_3d(coords, self.embed_dim // self.num_heads)
        # kept tokens come out of the gather contiguous; all tokens are made so here: the residual stream keeps
        # the layout of its first term, and the patch conv's transposed one made every LayerNorm copy it
        tok = gather_tokens(tok, keep_idx) if keep_idx is not None else tok.contiguous()
        last = max(wanted)
        for i, blk in enumerate(self.blocks[: last + 1]):  # blocks after the last wanted one are not run
            tok = run_block(blk, tok, rope, self.grad_checkpointing)
            if i in wanted:
                yield i, tok

    def forward(
        self,
        x: torch.Tensor,
        keep_idx: torch.Tensor | None = None,
        return_layers: list[int] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Final normed tokens [B, N(_keep), D]; or, with ``return_layers`` (block indices, 0-based,
        negatives count from the end), the list of those blocks' outputs in the order asked (a repeated index
        repeats its output), each passed through the final norm. An index outside the depth is a ValueError."""
        if return_layers is None:
            *_, (_, last) = self._blocks(x, keep_idx, {self.depth - 1})
            return self.norm(last)
        ids = block_ids(return_layers, self.depth)
        outs = dict(self._blocks(x, keep_idx, set(ids)))
        return [self.norm(outs[i]) for i in ids]

    def forward_levels(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Deep self-supervision: the ``levels`` block outputs, each through its own LayerNorm."""
        if not self.levels:
            raise ValueError("this encoder was built with levels=0 (deep self-supervision off)")
        outs = dict(self._blocks(x, keep_idx, set(self.level_ids)))
        return [norm(outs[i]) for i, norm in zip(self.level_ids, self.level_norms)]

    def raw_levels(self, x: torch.Tensor, level_ids: list[int]) -> list[torch.Tensor]:
        """Un-normed outputs of the given blocks over all tokens (the EMA targets of deep supervision)."""
        outs = dict(self._blocks(x, None, set(level_ids)))
        return [outs[i] for i in level_ids]
