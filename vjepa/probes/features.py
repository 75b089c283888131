"""Frozen-encoder features for probes: extracted once (eval mode, no gradients, batched), then cached.

``extract(encoder, x, layers, size, batch_size, device)``: ``x`` uint8 [N, 3, H, W] images or
[N, 3, T, H, W] clips (0..255) -> float16 tokens [N, L, D * len(layers)] on the CPU (the listed blocks'
normed outputs, concatenated along channels; ``layers="levels"``: see ``encoder_layers``) and the token grid (T', H', W'). Frames are resized to
``size`` = (H, W) (bilinear, antialiased) and normalised exactly as in pretraining. Tokens are stored in
float16 to halve memory; heads compute in float32.

``FeatureCache``: features by a hash of their spec (data, input size, layers), kept in memory for one probe
run and, with a folder, saved as ``<folder>/<tag>-<hash>.pt``; the tag (e.g. ``probe-step300``) must name
the encoder weights, since the hash does not cover them.

``Standardizer``: per-channel mean and std of the training features, applied to both splits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from vjepa.data import normalize
from vjepa.models.vit import block_ids, level_indices
from vjepa.runfiles import load_checkpoint, save_checkpoint

FEATURE_VERSION = 1


def prepare(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [B, 3, (T,) H, W] -> normalised float at spatial ``size``."""
    x = x.float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        if x.ndim == 5:
            b, c, t = x.shape[:3]
            x = x.transpose(1, 2).reshape(b * t, c, *x.shape[-2:])
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
            x = x.view(b, t, c, *size).transpose(1, 2)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp_(0, 1)
    return normalize(x)


LEVELS = 4  # "levels" reads the 4 levels of deep self-supervision, or 4 equally spaced blocks


def layer_problem(layers, depth: int) -> str | None:
    """Why a probe's ``layers`` cannot be read from a ``depth``-block encoder, or None: ``"levels"`` needs
    at least 4 blocks; a list needs block indices within the depth (negatives count from the end)."""
    if layers == "levels":
        if depth < LEVELS:
            return f"layers=levels reads {LEVELS} equally spaced blocks: the encoder has only {depth}"
        return None
    if isinstance(layers, str) or not hasattr(layers, "__iter__"):
        return f"layers={layers!r} must be 'levels' or a list of block indices"
    try:
        block_ids(layers, depth)
    except ValueError as exc:
        return str(exc)
    return None


def encoder_layers(encoder, x: torch.Tensor, layers) -> list[torch.Tensor]:
    """Block outputs to concatenate, in the order given: a list of block indices, or ``"levels"``: the 4
    levels of deep self-supervision (each with its own norm) where the encoder has them, else the same 4
    equally spaced blocks through the final norm, so encoders with and without deep supervision are read
    alike. Layers the encoder does not have (``layer_problem``) are a ValueError."""
    problem = layer_problem(layers, encoder.depth)
    if problem:
        raise ValueError(problem)
    if layers == "levels":
        if encoder.levels:
            return encoder.forward_levels(x)
        return encoder(x, return_layers=level_indices(encoder.depth, LEVELS))
    return encoder(x, return_layers=list(layers))


def feature_arithmetic(device) -> str:
    """The arithmetic features are extracted in: bf16 autocast on CUDA (as in pretraining), fp32 on CPU."""
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def feature_spec(data_spec: dict, layers, device) -> dict:
    """What a cached feature set depends on besides the weights (``FeatureCache``'s key): the data, the
    layers and, where it is not fp32, the arithmetic, so features a GPU extracted in bf16 are never read back
    for a CPU run (fp32 keys are those of caches written before the arithmetic was part of the key)."""
    spec = {"data": data_spec, "layers": layers}
    arithmetic = feature_arithmetic(device)
    return spec if arithmetic == "fp32" else {**spec, "arithmetic": arithmetic}


@torch.no_grad()
def extract(encoder, x: torch.Tensor, layers, size, batch_size: int, device) -> tuple[torch.Tensor, tuple]:
    was_training = encoder.training
    encoder.eval()
    try:
        out = []
        bf16 = feature_arithmetic(device) == "bf16"
        for i in range(0, len(x), batch_size):
            xb = prepare(x[i : i + batch_size], size).to(device)
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
                feats = encoder_layers(encoder, xb, layers)
            out.append(torch.cat(feats, dim=-1).to("cpu", torch.float16))
        grid = tuple(encoder.grid(prepare(x[:1], size)))
    finally:
        encoder.train(was_training)
    return torch.cat(out), grid


def spec_hash(spec: dict) -> str:
    blob = json.dumps({"version": FEATURE_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class FeatureCache:
    def __init__(self, folder: str | Path | None = None, tag: str = "features"):
        self.folder, self.tag = (Path(folder) if folder else None), tag
        self.memory: dict[str, dict] = {}

    def has(self, spec: dict) -> bool:
        """Whether ``get`` would read ``spec``'s features (from memory or the cache folder) without computing."""
        key = spec_hash(spec)
        return key in self.memory or (
            self.folder is not None and (self.folder / f"{self.tag}-{key}.pt").exists()
        )

    def get(self, spec: dict, compute: Callable[[], dict]) -> dict:
        key = spec_hash(spec)
        if key not in self.memory:
            path = self.folder / f"{self.tag}-{key}.pt" if self.folder else None
            if path is not None and path.exists():
                self.memory[key] = load_checkpoint(path)
            else:
                self.memory[key] = compute()
                if path is not None:
                    save_checkpoint(path, self.memory[key])
        return self.memory[key]


class Standardizer:
    """(x - mean) / std per channel, statistics of ``x`` [M, D] (float64 sums, in chunks)."""

    def __init__(self, x: torch.Tensor, chunk: int = 65536, eps: float = 1e-6):
        s = torch.zeros(x.shape[-1], dtype=torch.float64)
        s2 = torch.zeros_like(s)
        for i in range(0, len(x), chunk):
            xc = x[i : i + chunk].double()
            s += xc.sum(0)
            s2 += xc.square().sum(0)
        mean = s / len(x)
        var = (s2 / len(x) - mean.square()).clamp(min=0)
        self.mean, self.std = mean.float(), var.sqrt().float().clamp(min=eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean.to(x.device)) / self.std.to(x.device)
