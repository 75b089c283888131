"""Batch augmentation with all randomness drawn up front from one generator.

``Augment.draw(g, n)`` draws a fixed number of uniforms per sample whatever the image sizes, so the
parameters of sample ``i`` depend only on the generator, and a skipped file's replacement gets the same
crop fractions. Pipeline per sample: random resized crop (area fraction ``crop_scale``, aspect ratio
``crop_ratio``, the same box on every frame of a clip) to ``size`` x ``size``, horizontal flip, then for
the whole batch a light colour jitter (brightness, contrast, saturation factors in [1 - j, 1 + j]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Augment:
    size: int
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_jitter: float = 0.0

    @classmethod
    def from_cfg(cls, cfg, **defaults) -> Augment:
        """Reads ``size`` (required), ``crop_scale``, ``crop_ratio``, ``flip``, ``color_jitter``; a key
        missing from ``cfg`` takes its value from ``defaults``, else the class default."""
        if cfg.get("size") is None:
            raise ValueError(f"the data source config needs 'size' (output side in px), got {dict(cfg)}")

        def get(key):
            return cfg.get(key, defaults.get(key, getattr(cls, key)))

        aug = cls(
            size=int(cfg.get("size")),
            crop_scale=tuple(float(v) for v in get("crop_scale")),
            crop_ratio=tuple(float(v) for v in get("crop_ratio")),
            flip=bool(get("flip")),
            color_jitter=float(get("color_jitter")),
        )
        lo, hi = aug.crop_scale
        if not 0 < lo <= hi <= 1 or not 0 < aug.crop_ratio[0] <= aug.crop_ratio[1] or aug.size < 1:
            raise ValueError(f"bad augmentation settings {aug}: need 0 < crop_scale lo <= hi <= 1, size >= 1")
        return aug

    def draw(self, g: torch.Generator, n: int) -> dict[str, torch.Tensor]:
        return {
            "crop": torch.rand(n, 4, generator=g, dtype=torch.float64),
            "flip": torch.rand(n, generator=g) < 0.5,
            "jitter": 1 + self.color_jitter * (2 * torch.rand(n, 3, generator=g) - 1),
        }

    @staticmethod
    def rows(params: dict[str, torch.Tensor], rows: range) -> dict[str, torch.Tensor]:
        """The parameters of the samples ``rows`` of a batch, for ``crop`` (index from 0) and ``jitter``."""
        return {k: v[rows.start : rows.stop] for k, v in params.items()}

    def box(self, u: torch.Tensor, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the crop for uniforms ``u`` [4] in an h x w image."""
        u0, u1, u2, u3 = (float(v) for v in u)
        lo, hi = self.crop_scale
        area = h * w * (lo + (hi - lo) * u0)
        log_lo, log_hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = math.exp(log_lo + (log_hi - log_lo) * u1)
        cw = min(max(round(math.sqrt(area * ratio)), 1), w)  # clamped rather than redrawn: no retry loop
        ch = min(max(round(math.sqrt(area / ratio)), 1), h)
        return int(u2 * (h - ch + 1)), int(u3 * (w - cw + 1)), ch, cw

    def crop(self, frames: torch.Tensor, params: dict[str, torch.Tensor], i: int, index=None) -> torch.Tensor:
        """uint8 image [H, W, 3] -> float [3, S, S]; uint8 video [N, H, W, 3] and frame ``index`` [T] (all
        frames if None) -> float clip [3, T, S, S]; values in [0, 1]. Copies only the crop of those frames."""
        video = frames.ndim == 4
        clip = frames if video else frames[None]
        top, left, ch, cw = self.box(params["crop"][i], clip.shape[1], clip.shape[2])
        rows, cols = slice(top, top + ch), slice(left, left + cw)
        x = clip[:, rows, cols] if index is None else clip[index, rows, cols]
        x = x.permute(0, 3, 1, 2)  # channels-last uint8: the antialiased resize is ~5x faster than float
        x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        x = x.float().div_(255)
        if self.flip and params["flip"][i]:
            x = x.flip(-1)
        x = x.transpose(0, 1)  # [3, T, S, S]
        return x if video else x[:, 0]

    def jitter(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Colour jitter of a batch [B, 3, ...] in [0, 1]; the same factors on every frame of a clip."""
        if self.color_jitter == 0:
            return x.clamp_(0, 1)
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        b, c, s = (params["jitter"][:, k].view(shape) for k in range(3))
        w = torch.tensor(GRAY).view((1, 3) + (1,) * (x.ndim - 2))
        x = (x * b).clamp_(0, 1)
        mean = (x * w).sum(1, keepdim=True).double().flatten(1).mean(1).float().view(shape)
        x = ((x - mean) * c + mean).clamp_(0, 1)
        gray = (x * w).sum(1, keepdim=True)
        return ((x - gray) * s + gray).clamp_(0, 1)
