import math

import pytest
import torch

from vjepa.probes.metrics import box_ap, confusion, iou_from_confusion, top1

IGN = -1


def _det(boxes, scores, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    labels = torch.zeros(len(boxes), dtype=torch.long) if labels is None else torch.tensor(labels)
    return {"boxes": boxes, "scores": torch.tensor(scores, dtype=torch.float32), "labels": labels}


def _gt(boxes, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    return {
        "boxes": boxes,
        "labels": torch.zeros(len(boxes), dtype=torch.long) if labels is None else torch.tensor(labels),
    }


def test_miou_ignores_void_and_skips_classes_absent_from_both():
    target = torch.tensor([0, 0, 1, 1, 2, IGN, IGN])
    pred = torch.tensor([0, 1, 1, 1, 0, 3, 2])  # class 3 is predicted only on a void pixel
    conf = confusion(pred, target, 4, ignore=IGN)
    assert conf.sum() == 5
    miou, per_class = iou_from_confusion(conf)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: missed -> 0; class 3: absent
    assert per_class == pytest.approx({0: 1 / 3, 1: 2 / 3, 2: 0.0})
    assert miou == pytest.approx(1 / 3)


def test_miou_counts_a_class_predicted_but_absent_from_ground_truth_as_zero():
    target = torch.tensor([[0, 0], [1, 1]])
    pred = torch.tensor([[0, 2], [1, 1]])
    miou, per_class = iou_from_confusion(confusion(pred, target, 3))
    assert per_class == pytest.approx({0: 0.5, 1: 1.0, 2: 0.0})
    assert miou == pytest.approx(0.5)


def test_confusion_rejects_labels_out_of_range():
    with pytest.raises(ValueError):
        confusion(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)


def test_top1():
    assert top1(torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 1, 1])) == pytest.approx(
        2 / 3
    )


def test_ap_perfect_detections():
    gts = [_gt([[0, 0, 10, 10], [20, 20, 30, 40]]), _gt([[5, 5, 15, 15]])]
    dets = [_det([[0, 0, 10, 10], [20, 20, 30, 40]], [0.9, 0.3]), _det([[5, 5, 15, 15]], [0.5])]
    r = box_ap(dets, gts, 1)
    assert r["ap50"] == pytest.approx(1.0) and r["ap"] == pytest.approx(1.0)


def test_ap_duplicate_is_false_positive_and_missed_box_lowers_recall():
    # 2 ground-truth boxes; the top detection hits box A, a duplicate of A comes second, B is missed.
    gts = [_gt([[0, 0, 10, 10], [20, 20, 30, 30]])]
    dets = [_det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8])]
    # recall 0.5 at precision 1 (then 0.5): the 101-point curve is 1 at recall 0..0.50 (51 points), then 0
    assert box_ap(dets, gts, 1)["ap50"] == pytest.approx(51 / 101)


def test_ap_false_positive_between_true_positives_across_images():
    gts = [_gt([[0, 0, 10, 10]]), _gt([[0, 0, 10, 10]])]
    dets = [_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8]), _det([[0, 0, 10, 10]], [0.7])]
    # sorted: TP, FP, TP -> recall (.5, .5, 1), precision (1, .5, 2/3) -> envelope (1, 2/3, 2/3)
    assert box_ap(dets, gts, 1)["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_ap_over_iou_thresholds():
    gts = [_gt([[0, 0, 10, 10]])]
    dets = [_det([[0, 0, 10, 6.2]], [0.9])]  # IoU 0.62: a hit at 0.5, 0.55, 0.6 only
    r = box_ap(dets, gts, 1)
    assert r["ap50"] == pytest.approx(1.0)
    assert r["ap"] == pytest.approx(0.3)


def test_ap_matches_each_detection_to_the_best_unmatched_box():
    gts = [_gt([[0, 0, 10, 10], [4, 0, 14, 10]])]
    # first detection overlaps box 2 best (IoU 0.82 vs 0.54): it must take box 2, leaving box 1 for the second
    dets = [_det([[3, 0, 13, 10], [0, 0, 10, 10]], [0.9, 0.8])]
    assert box_ap(dets, gts, 1)["ap50"] == pytest.approx(1.0)


def test_ap_means_over_classes_with_ground_truth_only():
    gts = [_gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 2])]
    dets = [_det([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.8, 0.7], [0, 1, 1])]
    r = box_ap(dets, gts, 3)
    assert r["ap50_per_class"] == pytest.approx({0: 1.0, 2: 0.0})  # class 1 has no ground truth: left out
    assert r["ap50"] == pytest.approx(0.5)


def test_ap_without_any_ground_truth_is_nan():
    r = box_ap([_det([[0, 0, 1, 1]], [0.5])], [_gt([])], 1)
    assert math.isnan(r["ap50"]) and r["ap50_per_class"] == {}
