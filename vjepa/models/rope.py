"""Rotary position embeddings over the (t, h, w) token grid, and the ViT block that applies them.

The head dimension is rotated in pairs (i, i + head_dim / 2) ("rotate half", as timm's EVA blocks with
``rotate_half=True``); the head_dim / 2 rotation angles are split into three chunks driven by the t, h and w
coordinates. Positions are per sample, so a sequence of kept (or predicted) tokens carries its true grid
positions.

Speed: ``rope_3d`` returns ``(cos, signed_sin)`` once per forward, shared by every block; ``RopeBlock`` rotates
queries and keys together with one flip and one fused multiply-add,
``x * cos + swap_halves(x) * [-sin, sin]`` (= ``x * cos + rotate_half(x) * sin``), where timm's EVA block
concatenates, negates and copies q and k separately in every block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block


def rope_angles_dims(head_dim: int) -> tuple[int, int, int]:
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"RoPE needs an even head dim >= 6, got {head_dim}")
    half = head_dim // 2
    d_hw = half // 3
    return half - 2 * d_hw, d_hw, d_hw


def rope_3d(coords: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """coords [B, N, 3] (t, h, w) -> (cos, signed_sin), each [B, 1, N, head_dim]: the rotation angles are
    repeated over both halves; signed_sin is -sin on the first half and +sin on the second."""
    angles = []
    for axis, d in enumerate(rope_angles_dims(head_dim)):
        freqs = 1.0 / theta ** (torch.arange(d, dtype=torch.float32, device=coords.device) / max(d, 1))
        angles.append(coords[..., axis : axis + 1].float() * freqs)
    ang = torch.cat(angles, dim=-1).unsqueeze(1)  # [B, 1, N, head_dim / 2]
    sin = ang.sin()
    return torch.cat([ang.cos(), ang.cos()], dim=-1), torch.cat([-sin, sin], dim=-1)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate x [..., N, head_dim] (any leading dims broadcasting against rope's [B, 1, N, head_dim]);
    the rotation is computed in the precision of the rope tensors and cast back to x's dtype."""
    cos, signed_sin = rope
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)  # [x2, x1]
    return torch.addcmul(x * cos, swapped, signed_sin).to(x.dtype)


def _bias_apart(x: torch.Tensor) -> bool:
    """Whether linear layers should add their bias as a separate element-wise op: only compiled for CPU in
    fp32. There inductor keeps ``addmm``, which first copies the bias into its output and then reads it back
    in the product, while a separate add fuses into the next element-wise kernel (GELU, RoPE, the residual).
    Inductor does this itself on GPU; under autocast a separate fp32 bias would promote the product to fp32."""
    return (
        torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and not torch.is_autocast_enabled(x.device.type)
    )


def _linear(layer: torch.nn.Linear, x: torch.Tensor, bias_apart: bool) -> torch.Tensor:
    if bias_apart and layer.bias is not None:
        return F.linear(x, layer.weight) + layer.bias
    return layer(x)


class RopeBlock(Block):
    """timm's pre-norm ViT block (same parameters and names: ``attn.qkv``, ``attn.proj``, ``mlp``, norms)
    whose attention rotates queries and keys by ``rope`` before scaled-dot-product attention. Eager, it
    computes exactly as timm's layers do; compiled for CPU, its linear layers add their bias apart
    (``_bias_apart``), so compiled runs round differently, as compiled runs do anyway."""

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        apart = _bias_apart(x)
        x = x + self.drop_path1(self.ls1(self._attention(self.norm1(x), rope, apart)))
        return x + self.drop_path2(self.ls2(self._mlp(self.norm2(x), apart)))

    def _mlp(self, x: torch.Tensor, apart: bool) -> torch.Tensor:
        if not apart:
            return self.mlp(x)
        mlp = self.mlp  # timm's Mlp, layer by layer
        return mlp.drop2(_linear(mlp.fc2, mlp.norm(mlp.drop1(mlp.act(_linear(mlp.fc1, x, True)))), True))

    def _attention(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], apart: bool
    ) -> torch.Tensor:
        attn = self.attn
        b, n, _ = x.shape
        qkv = _linear(attn.qkv, x, apart).reshape(b, n, 3, attn.num_heads, attn.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        qk, v = qkv.split([2, 1])  # split, not indexing: its backward is one cat, not zero-filled copies
        q, k = apply_rope(qk, rope).unbind(0)  # q and k rotated in one pass
        v = v.squeeze(0)
        if torch.compiler.is_compiling():
            # Under torch.compile (dynamic shapes) the CPU flash-attention backward asserts on the strides
            # of a strided v once the token count changes (torch 2.14); contiguous inputs avoid it. Eager
            # attention reads the strides directly and skips the copy.
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.attn_drop.p if self.training else 0.0)
        return attn.proj_drop(_linear(attn.proj, attn.norm(out.transpose(1, 2).reshape(b, n, -1)), apart))
