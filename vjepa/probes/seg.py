"""Linear segmentation probe: a per-token linear classifier whose logits are upsampled (bilinear) to the
label map, trained with pixel-level cross-entropy and scored by mIoU at the label map's resolution.

Logits are linear in the features and bilinear upsampling is linear with weights summing to one, so the
upsampled logits at a pixel equal the classifier applied to the upsampled features there. Training
therefore fits logistic regression (full-batch L-BFGS) on the features bilinearly interpolated at
``pixels_per_image`` labelled pixels drawn per training image (fixed by the seed): the exact pixel loss
on upsampled logits, subsampled (``pixels: balanced`` draws pixels inversely to their class's frequency,
a class-balanced loss; ``uniform``, the default, draws them uniformly). Evaluation upsamples the logits of every val image to full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa.probes.bootstrap import miou_per_sample
from vjepa.probes.datasets import IGNORE
from vjepa.probes.features import Standardizer
from vjepa.probes.heads import fit_logistic
from vjepa.probes.metrics import confusion, iou_from_confusion

CHUNK = 64


def token_map(tokens: torch.Tensor, grid) -> torch.Tensor:
    """[B, L, D] tokens of images -> [B, D, H', W']."""
    t, h, w = grid
    if t != 1:
        raise ValueError(f"segmentation probes take images (one token frame), got grid {grid}")
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)


def sample_pixels(y: torch.Tensor, k: int, g: torch.Generator, balanced: bool = False) -> torch.Tensor:
    """[N, H, W] labels -> [N, k] flat indices of labelled pixels, distinct where possible: uniformly, or
    (``balanced``) with probability inversely proportional to the frequency of the pixel's class over all
    of ``y``, so that small classes are not drowned by the background in the fitted loss."""
    flat = y.flatten(1)
    out = torch.empty(len(y), k, dtype=torch.long)
    labelled = flat[flat != IGNORE]
    freq = torch.bincount(labelled, minlength=int(labelled.max()) + 1 if len(labelled) else 1).double()
    inverse = torch.where(freq > 0, 1.0 / freq.clamp(min=1), 0.0)
    for i, row in enumerate(flat):
        ok = (row != IGNORE).nonzero().squeeze(1)
        if len(ok) == 0:
            ok = torch.arange(len(row))  # all void: these pixels are skipped by the loss
        if balanced and (row != IGNORE).any():
            p = inverse[row[ok]]
            pick = torch.multinomial(p, k, replacement=len(ok) < k, generator=g)
        elif len(ok) >= k:
            pick = torch.randperm(len(ok), generator=g)[:k]
        else:
            pick = torch.randint(len(ok), (k,), generator=g)
        out[i] = ok[pick]
    return out


def _axis_weights(out: int, inp: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and weight of i1 of 1-D linear resizing inp -> out, align_corners=False
    (PyTorch's rule: src = max((dst + 0.5) * inp / out - 0.5, 0))."""
    src = ((torch.arange(out, dtype=torch.float64) + 0.5) * (inp / out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=inp - 1)
    return i0, (i0 + 1).clamp(max=inp - 1), (src - i0).float()


def bilinear_at(fmap: torch.Tensor, pix: torch.Tensor, out_hw) -> torch.Tensor:
    """``F.interpolate(fmap, out_hw, mode="bilinear", align_corners=False)`` read only at flat pixel
    indices ``pix`` [B, K]: fmap [B, D, h, w] -> [B, K, D]."""
    h, w = fmap.shape[-2:]
    r0, r1, wr = (t[pix // out_hw[1]] for t in _axis_weights(out_hw[0], h))
    c0, c1, wc = (t[pix % out_hw[1]] for t in _axis_weights(out_hw[1], w))
    flat = fmap.flatten(2).transpose(1, 2)  # [B, h*w, D]

    def at(r, c):
        return torch.gather(flat, 1, (r * w + c)[..., None].expand(-1, -1, flat.shape[-1]))

    wr, wc = wr[..., None], wc[..., None]
    return (1 - wr) * ((1 - wc) * at(r0, c0) + wc * at(r0, c1)) + wr * (
        (1 - wc) * at(r1, c0) + wc * at(r1, c1)
    )


def seg_probe(
    feats: dict, grid, y_train, y_val, num_classes: int, cfg: dict, seed: int, device
) -> tuple[float, dict]:
    """``feats``: {"train": [N, L, D], "val": [M, L, D]}; labels [N, H, W] with IGNORE for void.
    Returns (mIoU, {class index: IoU}, the mIoU recomputable per val image: ``vjepa.probes.bootstrap``)."""
    std = Standardizer(feats["train"].flatten(0, 1))
    size = tuple(y_train.shape[-2:])
    g = torch.Generator().manual_seed(seed)
    idx = sample_pixels(y_train, int(cfg["pixels_per_image"]), g, cfg.get("pixels", "uniform") == "balanced")
    xs = []
    for i in range(0, len(y_train), CHUNK):
        fmap = token_map(std(feats["train"][i : i + CHUNK]), grid)
        xs.append(bilinear_at(fmap, idx[i : i + CHUNK], size).flatten(0, 1))
    x = torch.cat(xs).to(device)
    y = torch.gather(y_train.flatten(1), 1, idx).flatten().to(device)
    lin = fit_logistic(x, y, num_classes, float(cfg["wd"]), int(cfg["iters"]))
    return seg_scores(lin, std, feats["val"], grid, y_val, num_classes, device)


def seg_scores(lin, std, val: torch.Tensor, grid, y_val, num_classes: int, device) -> tuple[float, dict]:
    """Score a fitted per-token head on val tokens [M, L, D] against label maps [M, H, W]: logits
    upsampled (bilinear) to the label map. Returns (mIoU, {class: IoU}, the per-image ``Scored``)."""
    per_image = []
    size = tuple(y_val.shape[-2:])
    for i in range(0, len(y_val), CHUNK):
        logits = lin(std(val[i : i + CHUNK].to(device)))  # [b, L, C]
        logits = F.interpolate(token_map(logits, grid), size=size, mode="bilinear", align_corners=False)
        pred = logits.argmax(1).cpu()
        per_image += [
            confusion(p, t, num_classes, ignore=IGNORE)
            for p, t in zip(pred, y_val[i : i + CHUNK], strict=True)
        ]
    per_image = torch.stack(per_image)
    miou, per_class = iou_from_confusion(per_image.sum(0))
    return miou, per_class, miou_per_sample(per_image)
