"""Probe metrics: segmentation IoU from a confusion matrix, COCO-style box AP, top-1 accuracy.

IoU: ``confusion(pred, target, C, ignore)`` counts pixels (rows = ground truth, columns = prediction),
skipping pixels whose target is ``ignore``. IoU_c = TP / (TP + FP + FN). A class absent from both the
prediction and the ground truth has no IoU (0 / 0): it is left out of the mean and of the per-class dict, so
mIoU averages only classes that occur in one or the other (a class predicted but absent scores 0).

AP (COCO, Lin et al. 2014; pycocotools' COCOeval at area "all", the same numbers): per class, detections of
all images sorted by score (stable); in each image a detection, in score order, matches the unmatched
ground-truth box of highest IoU if that IoU >= the threshold, else it is a false positive (so a duplicate of
an already matched box is a false positive, and a missed box lowers recall), unless it covers a crowd region
(intersection over its own area >= the threshold): then it is ignored, and crowd regions are not ground truth. Precision is made monotone (running max from the right) and read at the 101
recall points 0, 0.01, .., 1 (0 past the highest recall reached). Classes without ground truth are left out
of the mean. ``box_ap`` returns AP at IoU 0.5 and the mean over IoU 0.5, 0.55, .., 0.95.
"""

from __future__ import annotations

import math

import numpy as np
import torch

RECALL_POINTS = torch.from_numpy(
    np.linspace(0.0, 1.0, 101)
)  # numpy's, as pycocotools (torch's differs in ulps)
COCO_IOUS = tuple(np.linspace(0.5, 0.95, 10).tolist())


def confusion(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore: int | None = None
) -> torch.Tensor:
    """[C, C] int64 counts, rows = target class, columns = predicted class."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore is not None:
        keep = target != ignore
        pred, target = pred[keep], target[keep]
    if len(target) and (
        target.min() < 0 or target.max() >= num_classes or pred.min() < 0 or pred.max() >= num_classes
    ):
        raise ValueError(f"labels must lie in [0, {num_classes}) apart from ignore={ignore}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).view(
        num_classes, num_classes
    )


def iou_from_confusion(conf: torch.Tensor) -> tuple[float, dict[int, float]]:
    """(mIoU, {class: IoU}) over the classes present in the prediction or the ground truth."""
    conf = conf.double()
    tp = conf.diag()
    denom = conf.sum(0) + conf.sum(1) - tp
    per_class = {c: (tp[c] / denom[c]).item() for c in range(len(tp)) if denom[c] > 0}
    miou = sum(per_class.values()) / len(per_class) if per_class else math.nan
    return miou, per_class


def top1(logits_or_pred: torch.Tensor, target: torch.Tensor) -> float:
    pred = logits_or_pred.argmax(-1) if logits_or_pred.ndim == 2 else logits_or_pred
    return (pred == target).double().mean().item()


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)


def _intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    return (rb - lt).clamp(min=0).prod(-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, 4] x [m, 4] boxes (x0, y0, x1, y1) -> [n, m] IoU."""
    inter = _intersection(a, b)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter).clamp(min=1e-12)


def box_ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, 4] x [m, 4] boxes -> [n, m] intersection over the area of ``a``'s box (COCO's IoU with a crowd
    region: the region's own area does not count)."""
    return _intersection(a, b) / _area(a)[:, None].clamp(min=1e-12)


def _match(det_boxes, gt_boxes, thr: float, crowd=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Detections already in score order -> (true positive, ignored) bool flags [n], pycocotools' greedy
    matching: each detection takes the unmatched ground-truth box of highest IoU >= ``thr`` (the last such
    box in annotation order on a tie, as pycocotools); one that takes none but covers a crowd region
    (``crowd`` [m] bool; intersection over the detection's area >= ``thr``) is ignored, neither a true nor
    a false positive."""
    n = len(det_boxes)
    tp, ignored = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    if n == 0 or len(gt_boxes) == 0:
        return tp, ignored
    crowd = torch.zeros(len(gt_boxes), dtype=torch.bool) if crowd is None else crowd.bool()
    regular = gt_boxes[~crowd]
    if len(regular):
        iou = box_iou(det_boxes.double(), regular.double())
        taken = torch.zeros(len(regular), dtype=torch.bool)
        for i in range(n):
            cand = iou[i].masked_fill(taken, -1.0)
            j = len(cand) - 1 - int(cand.flip(0).argmax())
            if cand[j] >= thr:
                tp[i], taken[j] = True, True
    if crowd.any():
        ignored = ~tp & (box_ioa(det_boxes.double(), gt_boxes[crowd].double()) >= thr).any(1)
    return tp, ignored


def interpolated_ap(scores: torch.Tensor, tp: torch.Tensor, num_gt: int) -> float:
    """101-point interpolated AP of detections (any order) with true-positive flags, given num_gt > 0."""
    if len(scores) == 0:
        return 0.0
    order = torch.sort(scores.double(), descending=True, stable=True).indices
    tp = tp[order].double()
    ctp, cfp = tp.cumsum(0), (1 - tp).cumsum(0)
    recall = ctp / num_gt
    precision = (ctp / (ctp + cfp)).flip(0).cummax(0).values.flip(0)  # monotone envelope
    idx = torch.searchsorted(recall, RECALL_POINTS, side="left")
    q = torch.zeros(len(RECALL_POINTS), dtype=torch.float64)
    reached = idx < len(recall)
    q[reached] = precision[idx[reached]]
    return q.mean().item()


def crowd_flags(gt: dict) -> torch.Tensor:
    """The ``crowd`` flags of one image's ground truth, all False where it has none."""
    crowd = gt.get("crowd")
    return torch.zeros(len(gt["labels"]), dtype=torch.bool) if crowd is None else crowd.bool()


def image_matches(det: dict, gt: dict, c: int, thr: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One image's detections of class ``c`` in score order (stable), those ignored on crowd regions left
    out: (scores float64, true-positive flags bool, the number of its ground-truth boxes of ``c``)."""
    mine = gt["labels"] == c
    crowd = crowd_flags(gt)[mine]
    keep = det["labels"] == c
    s = det["scores"][keep].double()
    order = torch.sort(s, descending=True, stable=True).indices
    tp, ignored = _match(det["boxes"][keep][order], gt["boxes"][mine], thr, crowd)
    return s[order][~ignored], tp[~ignored], int((~crowd).sum())


def class_ap(dets: list[dict], gts: list[dict], num_classes: int, thr: float) -> dict[int, float]:
    """Per-class AP at one IoU threshold.

    ``dets[i]``: ``boxes`` [k, 4], ``scores`` [k], ``labels`` [k] of image i; ``gts[i]``: ``boxes``,
    ``labels`` and optionally ``crowd`` [k] bool (crowd regions: not counted as ground truth, detections on
    them ignored).
    """
    out = {}
    for c in range(num_classes):
        matches = [image_matches(d, g, c, thr) for d, g in zip(dets, gts, strict=True)]
        num_gt = sum(n for _, _, n in matches)
        if num_gt:
            out[c] = interpolated_ap(
                torch.cat([s for s, _, _ in matches]), torch.cat([t for _, t, _ in matches]), num_gt
            )
    return out


def box_ap(dets: list[dict], gts: list[dict], num_classes: int) -> dict:
    """{"ap50": mean AP at IoU 0.5, "ap": mean over COCO_IOUS of the mean AP, "ap50_per_class": {c: AP}}."""
    per_thr = [class_ap(dets, gts, num_classes, t) for t in COCO_IOUS]
    mean = [sum(d.values()) / len(d) if d else math.nan for d in per_thr]
    return {"ap50": mean[0], "ap": sum(mean) / len(mean), "ap50_per_class": per_thr[0]}
