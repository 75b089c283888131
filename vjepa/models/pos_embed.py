"""Fixed sine-cosine positional embeddings factored over the (t, h, w) token grid.

The channel dimension is split into three even chunks, one per axis; each chunk holds
the 1-D sincos embedding of that axis' coordinate. Images use t = 0 for every token, so an
image token and the first-frame token of a video at the same (h, w) share an embedding.
"""

from __future__ import annotations

import torch


def axis_dims(dim: int) -> tuple[int, int, int]:
    """Channels given to the (t, h, w) axes; each even, summing to ``dim``."""
    if dim % 2 or dim < 6:
        raise ValueError(f"sincos positional embedding needs an even dim >= 6, got {dim}")
    d_hw = 2 * (dim // 6)
    return dim - 2 * d_hw, d_hw, d_hw


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[len(pos), dim] embedding: half sin, half cos, frequencies 1/10000^(2i/dim)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1).float()


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """[T*H*W, dim] embedding for a (T, H, W) grid, tokens in raster order (t slowest)."""
    t, h, w = grid
    d_t, d_h, d_w = axis_dims(dim)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat(
        [sincos_1d(d_t, tt.flatten()), sincos_1d(d_h, hh.flatten()), sincos_1d(d_w, ww.flatten())], dim=1
    )


class SinCosPosEmbed(torch.nn.Module):
    """Returns the [N, dim] embedding of a grid, cached per grid shape and device."""

    def __init__(self, dim: int):
        super().__init__()
        axis_dims(dim)  # validate early
        self.dim = dim
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, grid: tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (tuple(grid), str(device), dtype)
        if key not in self._cache:
            self._cache[key] = sincos_3d(self.dim, grid).to(device=device, dtype=dtype)
        return self._cache[key]
