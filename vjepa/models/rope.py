"""Rotary position embeddings over the (t, h, w) token grid, in timm's concatenated sin/cos layout.

The head dimension is rotated in pairs (i, i + head_dim / 2) ("rotate half"); the head_dim / 2 rotation
angles are split into three chunks driven by the t, h and w coordinates. Positions are per sample, so a
sequence of kept (or predicted) tokens carries its true grid positions.
"""

from __future__ import annotations

import torch


def rope_angles_dims(head_dim: int) -> tuple[int, int, int]:
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"RoPE needs an even head dim >= 6, got {head_dim}")
    half = head_dim // 2
    d_hw = half // 3
    return half - 2 * d_hw, d_hw, d_hw


def rope_3d(coords: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """coords [B, N, 3] (t, h, w) -> [B, 1, N, 2 * head_dim] (sin, cos) for timm's ``apply_rot_embed_cat``."""
    angles = []
    for axis, d in enumerate(rope_angles_dims(head_dim)):
        freqs = 1.0 / theta ** (torch.arange(d, dtype=torch.float32, device=coords.device) / max(d, 1))
        angles.append(coords[..., axis : axis + 1].float() * freqs)
    ang = torch.cat(angles, dim=-1)  # [B, N, head_dim / 2]
    ang = torch.cat([ang, ang], dim=-1)
    return torch.cat([ang.sin(), ang.cos()], dim=-1).unsqueeze(1)
