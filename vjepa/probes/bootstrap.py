"""Evaluation-sampling error of probe metrics: the bootstrap over the evaluation samples.

A probe's score is computed from a finite evaluation set; another draw of that set would give another score.
``Scored`` keeps, per evaluation sample, what the metric is computed from (a correct flag, an image's
confusion counts, an image's detections) together with a function that recomputes the metric under sample
weights. A bootstrap replicate is a multinomial resample of the M samples, i.e. integer weights summing to M,
so ``statistic(weights [B, M]) -> [B]`` gives B replicates at once.

``bootstrap_weights(m, b, seed)``: the replicates' weights, seeded (the same weights for two encoders probed
on the same samples make a *paired* bootstrap). ``standard_error(scored, w)``: the replicates' standard
deviation. ``paired_standard_error(a, b, w)``: that of the difference a - b under the same resamples, the
error of a comparison of two encoders on one evaluation set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

REPLICATES = 1000


@dataclass
class Scored:
    """A metric's value and how to recompute it under per-sample weights [B, M] (float64) -> [B]."""

    value: float
    statistic: Callable[[torch.Tensor], torch.Tensor]
    samples: int


def bootstrap_weights(m: int, b: int = REPLICATES, seed: int = 0, rows: int = 64) -> torch.Tensor:
    """[b, m] float64 multinomial counts (each row sums to m) of b bootstrap resamples of m samples.

    Drawn ``rows`` replicates at a time, so that beside the result only a chunk's draws are held (at
    ImageNet's 50,000 validation images the whole draw would add 800 MB to the result's 400 MB); the
    generator draws serially, so the weights do not depend on ``rows``."""
    g = torch.Generator().manual_seed(int(seed))
    out = torch.zeros(b, m, dtype=torch.float64)
    ones = torch.ones(min(rows, b), m, dtype=torch.float64)
    for start in range(0, b, rows):
        chunk = out[start : start + rows]
        chunk.scatter_add_(1, torch.randint(m, chunk.shape, generator=g), ones[: len(chunk)])
    return out


def standard_error(scored: Scored, weights: torch.Tensor) -> float:
    return float(scored.statistic(weights).std(unbiased=True))


def paired_standard_error(a: Scored, b: Scored, weights: torch.Tensor) -> float:
    if a.samples != b.samples:
        raise ValueError(f"a paired bootstrap needs the same samples: {a.samples} vs {b.samples}")
    return float((a.statistic(weights) - b.statistic(weights)).std(unbiased=True))


def accuracy(correct: torch.Tensor) -> Scored:
    """Top-1 accuracy from per-sample correct flags [M]."""
    c = correct.double().reshape(-1)
    return Scored(float(c.mean()), lambda w: (w @ c) / w.sum(1), len(c))


def miou_per_sample(conf: torch.Tensor) -> Scored:
    """Mean IoU from per-image confusion counts [M, C, C] (``vjepa.probes.metrics.iou_from_confusion``'s rule:
    classes absent from both prediction and ground truth are left out of the mean)."""
    m, c = conf.shape[0], conf.shape[-1]
    flat = conf.reshape(m, c * c).double()

    def stat(w: torch.Tensor) -> torch.Tensor:
        tot = (w @ flat).view(-1, c, c)
        tp = tot.diagonal(dim1=1, dim2=2)
        denom = tot.sum(1) + tot.sum(2) - tp
        present = denom > 0
        iou = torch.where(present, tp / denom.clamp(min=1e-12), torch.zeros_like(tp))
        return iou.sum(1) / present.sum(1).clamp(min=1)

    value = float(stat(torch.ones(1, m, dtype=torch.float64))[0])
    return Scored(value, stat, m)


def _weighted_ap(w: torch.Tensor, img: torch.Tensor, tp: torch.Tensor, ngt: torch.Tensor):
    """101-point AP of one class at one IoU threshold per row of weights [B, M] (``metrics.interpolated_ap``
    with each detection and ground-truth box counted as often as its image is drawn); detections in score
    order. Returns (AP [B], whether the class has ground truth in the replicate [B])."""
    from vjepa.probes.metrics import RECALL_POINTS

    total = w @ ngt
    if len(img) == 0:
        return torch.zeros(len(w), dtype=torch.float64), total > 0
    wd = w[:, img]
    ctp, cfp = (wd * tp).cumsum(1), (wd * (1 - tp)).cumsum(1)
    recall = ctp / total.clamp(min=1e-12)[:, None]
    precision = torch.nan_to_num(ctp / (ctp + cfp), nan=0.0)  # 0/0: a detection not drawn
    envelope = precision.flip(1).cummax(1).values.flip(1)
    points = RECALL_POINTS.expand(len(w), -1).contiguous()
    idx = torch.searchsorted(recall.contiguous(), points, side="left")
    reached = idx < recall.shape[1]
    q = torch.where(reached, envelope.gather(1, idx.clamp(max=recall.shape[1] - 1)), 0.0)
    return q.mean(1), total > 0


def box_ap_per_sample(dets: list[dict], gts: list[dict], num_classes: int) -> dict[str, Scored]:
    """``{"ap50", "ap"}`` as ``vjepa.probes.metrics.box_ap`` computes them, recomputable under per-image
    weights (COCO matching is within an image, so a detection's true-positive flag does not change when
    images are resampled)."""
    from vjepa.probes.metrics import COCO_IOUS, image_matches

    m = len(dets)
    curves = []  # per threshold: per class (image index, tp, ground-truth count per image)
    for thr in COCO_IOUS:
        per_class = []
        for c in range(num_classes):
            scores, flags, imgs, ngt = [], [], [], torch.zeros(m, dtype=torch.float64)
            for i, (d, g) in enumerate(zip(dets, gts, strict=True)):
                s, tp, ngt[i] = image_matches(d, g, c, thr)
                scores.append(s)
                flags.append(tp.double())
                imgs.append(torch.full((len(s),), i, dtype=torch.long))
            s, f, im = torch.cat(scores), torch.cat(flags), torch.cat(imgs)
            order = torch.sort(s, descending=True, stable=True).indices
            per_class.append((im[order], f[order], ngt))
        curves.append(per_class)

    def at(w: torch.Tensor, t: int) -> torch.Tensor:
        aps, has = zip(*(_weighted_ap(w, *curve) for curve in curves[t]), strict=True)
        aps, has = torch.stack(aps, 1), torch.stack(has, 1)
        return torch.where(has, aps, 0.0).sum(1) / has.sum(1)  # NaN where no class has ground truth

    def ap50(w):
        return at(w, 0)

    def ap(w):
        return torch.stack([at(w, t) for t in range(len(curves))], 1).mean(1)

    ones = torch.ones(1, m, dtype=torch.float64)
    return {"ap50": Scored(float(ap50(ones)[0]), ap50, m), "ap": Scored(float(ap(ones)[0]), ap, m)}
