"""Features of a folder data set (``vjepa.probes.folders``), extracted in one streamed pass per split.

``extract_folder(encoder, data, layers, storage, batch_size, workers, device)`` decodes the split's files
with ``workers`` DataLoader processes (0: in this process), runs the frozen encoder batch by batch (bf16
autocast on CUDA, fp32 on CPU: ``features.feature_arithmetic``) and keeps only what the probe heads need,
so memory is bounded by the stored features, never by the images:

    storage {"token_grid": g}            classification: tokens average-pooled to a g x g grid, float16
                                         [N, g*g, D] (g = 1: the average-pooled token the linear and k-NN
                                         heads read; g > 1: tokens for the attentive head); ``y``: [N]
    storage {"pixels_per_image": P,      dense tasks (seg, depth): per train image, the features
             "seed": s}                  bilinearly interpolated (``seg.bilinear_at``) at P labelled pixels
                                         drawn uniformly (seeded by s, in file order), float16 [N, P, D]
                                         with their labels [N, P]; per val image every token, float16
                                         [M, L, D], with its label map at the input size [M, H, W]

Returns ``{"train", "val", "y_train", "y_val", "grid", "skipped_train", "skipped_val"}``. A sample that
cannot be read raises ``DataFileError`` naming the file (nothing is returned, so nothing is cached), or
with the data spec's ``on_error: skip`` is left out and counted in ``skipped_<split>``.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from vjepa.probes.features import encoder_layers, feature_arithmetic, prepare
from vjepa.probes.seg import bilinear_at, sample_pixels, token_map


def storage(task: dict, spec: dict) -> dict:
    """What a task keeps of each sample's tokens (part of the feature cache key)."""
    if task["kind"] == "classify":
        return {"token_grid": int(task.get("token_grid", 4 if task.get("head") == "attentive" else 1))}
    return {"pixels_per_image": int(task["pixels_per_image"]), "seed": int(spec.get("seed", 0))}


def _collate(items: list[dict]) -> dict:
    good = [it for it in items if "error" not in it]
    return {
        "image": torch.stack([it["image"] for it in good]) if good else None,
        "target": torch.stack([it["target"] for it in good]) if good else None,
        "errors": [it["error"] for it in items if "error" in it],
    }


def _labelled(target: torch.Tensor) -> torch.Tensor:
    """Label maps -> IGNORE where a pixel has no label (seg: -1 already; depth: 0 = no measurement)."""
    if target.is_floating_point():
        return torch.where(target > 0, 0, -1)
    return target


@torch.no_grad()
def _split(encoder, data, split: str, layers, store: dict, batch_size: int, workers: int, device):
    loader = torch.utils.data.DataLoader(
        data.split(split),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
    )
    bf16 = feature_arithmetic(device) == "bf16"
    g = torch.Generator().manual_seed(int(store.get("seed", 0)) * 7919 + (split == "val"))
    feats, ys, skipped, grid = [], [], 0, None
    for batch in loader:
        for msg in batch["errors"]:
            print(f"[probes] skipped: {msg}", file=sys.stderr, flush=True)
        skipped += len(batch["errors"])
        if batch["image"] is None:
            continue
        x = prepare(batch["image"], data.size).to(device)
        with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
            tokens = torch.cat(encoder_layers(encoder, x, layers), dim=-1).float()
        grid = tuple(encoder.grid(x[:1]))
        y = batch["target"]
        if "token_grid" in store:
            k = store["token_grid"]
            pooled = F.adaptive_avg_pool2d(token_map(tokens, grid), k).flatten(2).transpose(1, 2)
            feats.append(pooled.to("cpu", torch.float16))
        elif split == "train":
            pix = sample_pixels(_labelled(y), store["pixels_per_image"], g)
            feats.append(
                bilinear_at(token_map(tokens, grid), pix.to(device), data.size).to("cpu", torch.float16)
            )
            y = torch.gather(y.flatten(1), 1, pix)
        else:
            feats.append(tokens.to("cpu", torch.float16))
        ys.append(y)
    if not feats:
        raise ValueError(f"probe data {data.spec['name']}: no readable sample in the {split} split")
    return torch.cat(feats), torch.cat(ys), skipped, grid


def extract_folder(encoder, data, layers, store: dict, batch_size: int, workers: int, device) -> dict:
    was_training = encoder.training
    encoder.eval()
    try:
        out = {}
        for split in ("train", "val"):
            f, y, skipped, grid = _split(encoder, data, split, layers, store, batch_size, workers, device)
            out.update({split: f, f"y_{split}": y, f"skipped_{split}": torch.tensor(skipped)})
        out["grid"] = torch.tensor(grid)
    finally:
        encoder.train(was_training)
    return out
