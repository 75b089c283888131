"""Tokenizers: 2-D patches for images, 3-D tubelets for video.

Both map pixels to a [B, N, D] token sequence in raster order over the (T', H', W') grid and
report that grid, so every later stage (masks, positions, losses, probes) works on grids only.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed2D(nn.Module):
    """[B, C, H, W] image -> [B, H/p * W/p, D] tokens; grid (1, H/p, W/p)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, device=None):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, device=device)

    def grid(self, shape: torch.Size) -> tuple[int, int, int]:
        return 1, shape[-2] // self.patch_size, shape[-1] // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TubeletEmbed3D(nn.Module):
    """[B, C, T, H, W] clip -> [B, T/tp * H/p * W/p, D] tokens; grid (T/tp, H/p, W/p).

    ``repeat_images``: an image [B, C, H, W] is repeated ``tp`` times along time and embedded
    as a one-tubelet clip (the V-JEPA 2 single-tokenizer convention).
    """

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int, device=None):
        super().__init__()
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, k, stride=k, device=device)

    def grid(self, shape: torch.Size) -> tuple[int, int, int]:
        t = shape[-3] // self.tubelet_size if len(shape) == 5 else 1
        return t, shape[-2] // self.patch_size, shape[-1] // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.tubelet_size, -1, -1)
        return self.proj(x).flatten(2).transpose(1, 2)
