"""Evaluation-sampling errors of the probes (vjepa.probes.bootstrap), the k-NN head and refit spreads."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from tests.test_probes import TINY_MODEL, probes_cfg
from vjepa.probes import random_encoder, run_probes
from vjepa.probes.bootstrap import (
    accuracy,
    bootstrap_weights,
    box_ap_per_sample,
    miou_per_sample,
    paired_standard_error,
    standard_error,
)
from vjepa.probes.classify import classify_probe
from vjepa.probes.metrics import box_ap, confusion, iou_from_confusion


def test_bootstrap_weights_are_resamples_of_all_samples():
    w = bootstrap_weights(50, 200, seed=3)
    assert w.shape == (200, 50)
    assert torch.equal(w.sum(1), torch.full((200,), 50.0, dtype=torch.float64))
    assert torch.equal(w, bootstrap_weights(50, 200, seed=3))
    assert not torch.equal(w, bootstrap_weights(50, 200, seed=4))


@pytest.mark.parametrize("rows", [1, 7, 64, 200, 1000])
def test_bootstrap_weights_drawn_in_chunks_equal_the_whole_draw(rows):
    """The weights every recorded ``/se`` was computed from: one draw of all replicates' indices at once.
    Drawing them a chunk of replicates at a time (to bound the memory at large M) must not change a bit."""
    m, b, seed = 37, 200, 5
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(m, (b, m), generator=g)
    whole = torch.zeros(b, m, dtype=torch.float64).scatter_add_(1, idx, torch.ones(b, m, dtype=torch.float64))
    assert torch.equal(bootstrap_weights(m, b, seed=seed, rows=rows), whole)


@pytest.mark.parametrize("p,m", [(0.3, 2000), (0.9, 1000)])
def test_bootstrap_error_of_an_accuracy_is_the_binomial_one(p, m):
    g = torch.Generator().manual_seed(0)
    correct = torch.rand(m, generator=g) < p
    acc = accuracy(correct)
    binomial = math.sqrt(acc.value * (1 - acc.value) / m)
    se = standard_error(acc, bootstrap_weights(m, 4000, seed=1))
    assert se == pytest.approx(binomial, rel=0.06)


def test_paired_error_removes_what_two_encoders_share():
    g = torch.Generator().manual_seed(0)
    m = 3000
    shared = torch.rand(m, generator=g) < 0.5
    flip = torch.rand(m, generator=g) < 0.05  # the second encoder differs on 5 % of the samples
    a, b = accuracy(shared), accuracy(shared ^ flip)
    w = bootstrap_weights(m, 2000, seed=2)
    paired = paired_standard_error(a, b, w)
    unpaired = math.hypot(standard_error(a, w), standard_error(b, w))
    # the difference is -1/+1 on the flipped samples only: its error is that of a mean over them
    d = flip.double() * (shared.double() * 2 - 1)
    assert paired == pytest.approx(float(d.std() / math.sqrt(m)), rel=0.1)
    assert paired < unpaired / 2.5  # sqrt(0.05) against sqrt(2 * 0.25): a third
    assert paired_standard_error(a, a, w) == 0.0


def test_miou_per_sample_equals_the_confusion_rule_and_resamples():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (30, 8, 8), generator=g)
    pred = torch.where(
        torch.rand(30, 8, 8, generator=g) < 0.7, y, torch.randint(0, 4, (30, 8, 8), generator=g)
    )
    per_image = torch.stack([confusion(p, t, 4) for p, t in zip(pred, y, strict=True)])
    scored = miou_per_sample(per_image)
    assert scored.value == pytest.approx(iou_from_confusion(per_image.sum(0))[0], abs=1e-12)
    # a resample that draws image 0 thirty times scores image 0 alone
    w = torch.zeros(1, 30, dtype=torch.float64)
    w[0, 0] = 30
    assert float(scored.statistic(w)[0]) == pytest.approx(iou_from_confusion(per_image[0])[0], abs=1e-12)


def _boxes(g, n):
    xy = torch.rand(n, 2, generator=g) * 20
    return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 8], 1)


def test_box_ap_per_sample_equals_box_ap_and_follows_a_resample():
    """Also with crowd regions: the third box of every other image is a crowd region (not ground truth,
    the detections on it ignored), which changes the AP."""
    g = torch.Generator().manual_seed(0)
    dets, gts = [], []
    for i in range(12):
        gb = _boxes(g, 3)
        gl = torch.randint(0, 3, (3,), generator=g)
        noisy = gb + torch.randn(3, 4, generator=g) * 1.5
        extra = _boxes(g, 2)
        dets.append(
            {
                "boxes": torch.cat([noisy, extra]),
                "scores": torch.rand(5, generator=g),
                "labels": torch.cat([gl, torch.randint(0, 3, (2,), generator=g)]),
            }
        )
        gts.append({"boxes": gb, "labels": gl, "crowd": torch.tensor([False, False, i % 2 == 0])})
    scored = box_ap_per_sample(dets, gts, 3)
    ref = box_ap(dets, gts, 3)
    assert scored["ap50"].value == pytest.approx(ref["ap50"], abs=1e-12)
    assert scored["ap"].value == pytest.approx(ref["ap"], abs=1e-12)
    no_crowd = box_ap(dets, [{"boxes": t["boxes"], "labels": t["labels"]} for t in gts], 3)
    assert abs(no_crowd["ap"] - ref["ap"]) > 0.005
    # integer weights = the images repeated: the same AP as box_ap on the repeated list
    w = torch.tensor([[2, 0, 1, 3, 0, 1, 1, 0, 2, 1, 0, 1]], dtype=torch.float64)
    rep = [i for i, k in enumerate(w[0].long().tolist()) for _ in range(k)]
    ref_w = box_ap([dets[i] for i in rep], [gts[i] for i in rep], 3)
    assert float(scored["ap"].statistic(w)[0]) == pytest.approx(ref_w["ap"], abs=1e-12)
    assert float(scored["ap50"].statistic(w)[0]) == pytest.approx(ref_w["ap50"], abs=1e-12)


def test_knn_votes_by_cosine_neighbours_and_fails_on_shuffled_labels():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 3

    def split(n):
        y = torch.randint(0, 5, (n,), generator=g)
        x = centres[y][:, None, :] + torch.randn(n, 4, 16, generator=g)
        return x.half(), y

    (xt, yt), (xv, yv) = split(400), split(300)
    cfg = {"k": 10, "temperature": 0.07}
    acc = classify_probe("knn", {"train": xt, "val": xv}, yt, yv, 5, cfg, 0, "cpu").value
    shuffled = yt[torch.randperm(len(yt), generator=g)]
    chance = classify_probe("knn", {"train": xt, "val": xv}, shuffled, yv, 5, cfg, 0, "cpu").value
    assert acc > 0.95
    assert chance < 0.4


def test_run_probes_records_errors_gaps_and_refit_spreads():
    cfg = OmegaConf.to_container(probes_cfg("fast"), resolve=True)
    cfg["bootstrap"] = 200
    cfg["tasks"]["shapes_video"]["refits"] = 2  # attentive: a random fit
    cfg["tasks"]["shapes_video_linear"]["refits"] = 2  # linear: deterministic, refits do not apply
    enc = random_encoder(TINY_MODEL, 1, "cpu")
    out = run_probes(enc, cfg, TINY_MODEL, 0, None, "cpu", baseline=True)
    for key in (
        "shapes_seg/miou",
        "shapes_det/ap",
        "shapes_video/shape_top1",
        "shapes_video_linear/shape_top1",
    ):
        assert out[f"probe/{key}/se"] > 0 or out[f"probe/{key}"] == 0  # AP 0 everywhere: no spread
        assert f"probe_random/{key}/se" in out
        assert f"probe/{key}/gap_se" in out
    assert out["probe/shapes_seg/miou/se"] > 0
    assert out["probe/shapes_video/shape_top1/refit_sd"] >= 0
    assert "probe/shapes_video_linear/shape_top1/refit_sd" not in out
    # the encoder probed twice (here: pretrained = random init, same seed) -> identical scores, no gap error
    same = random_encoder(TINY_MODEL, 0, "cpu")
    out = run_probes(same, cfg, TINY_MODEL, 0, None, "cpu", baseline=True)
    assert out["probe/shapes_video_linear/shape_top1"] == out["probe_random/shapes_video_linear/shape_top1"]
    assert out["probe/shapes_video_linear/shape_top1/gap_se"] == 0.0
