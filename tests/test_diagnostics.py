import math

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import PROBE_MODEL
from vjepa.diagnostics import held_batch, held_batch_diagnostics, mean_pairwise_cosine, rankme
from vjepa.probes import random_encoder

D = PROBE_MODEL.embed_dim


def test_rankme_counts_equal_singular_values():
    q, _ = torch.linalg.qr(torch.randn(50, 50, dtype=torch.float64))
    z = q[:, :8] * 3.0 @ torch.eye(8, 16, dtype=torch.float64)  # 8 equal singular values, rank 8 in 16 dims
    assert rankme(z) == pytest.approx(8.0, rel=1e-4)
    assert rankme(torch.ones(20, 16)) == pytest.approx(1.0, rel=1e-4)
    s = torch.tensor([3.0, 1.0])  # two unequal singular values: exp(entropy of (0.75, 0.25))
    assert rankme(torch.diag(s)) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-5
    )


def test_mean_pairwise_cosine_matches_brute_force():
    z = torch.randn(30, 8)
    u = torch.nn.functional.normalize(z, dim=1)
    cos = u @ u.T
    brute = (cos.sum() - cos.diag().sum()) / (30 * 29)
    assert mean_pairwise_cosine(z) == pytest.approx(brute.item(), abs=1e-6)


def test_held_batch_diagnostics_per_modality_and_mode_restored():
    enc = random_encoder(PROBE_MODEL, 0, "cpu").train()
    batch = {"image": torch.randn(4, 3, 32, 32), "video": torch.randn(2, 3, 4, 32, 32)}
    d = held_batch_diagnostics(enc, batch)
    assert enc.training
    assert set(d) == {
        f"{k}_{m}" for k in ("rankme", "feat_std", "feat_std_min", "token_cos") for m in ("image", "video")
    }
    assert 1.0 < d["rankme_image"] <= D and 0 < d["feat_std_min_image"] <= d["feat_std_image"]
    assert d == held_batch_diagnostics(enc, batch)
    assert set(held_batch_diagnostics(enc, batch["video"])) == {k for k in d if k.endswith("_video")}


def test_collapsed_encoder_is_flagged():
    enc = random_encoder(PROBE_MODEL, 0, "cpu")
    with torch.no_grad():  # final norm with zero gain: every token equals the bias
        enc.norm.weight.zero_()
        enc.norm.bias.copy_(torch.linspace(-1, 1, D))
    d = held_batch_diagnostics(enc, torch.randn(4, 3, 32, 32))
    assert d["rankme_image"] == pytest.approx(1.0, abs=1e-3)
    assert d["token_cos_image"] == pytest.approx(1.0, abs=1e-6)
    assert d["feat_std_image"] < 1e-6


def test_held_batch_is_fixed_and_not_a_training_batch(compose_cfg):
    from vjepa.data import build_sources

    cfg = compose_cfg("data.image.size=32", "data.video.size=32", "data.video.frames=4", "data.mix=joint")
    a, b = held_batch(cfg.data, 4, 0), held_batch(cfg.data, 4, 0)
    assert set(a) == {"image", "video"} and all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (4, 3, 32, 32) and a["video"].shape == (4, 3, 4, 32, 32)
    first = {k: src[0] for k, src in build_sources(cfg.data, 8, 0).items()}  # step 0, 4 + 4 of a joint batch
    assert not torch.equal(a["image"], first["image"])
    only_video = held_batch(OmegaConf.merge(cfg.data, {"mix": "video"}), 4, 0)
    assert set(only_video) == {"video"} and torch.equal(only_video["video"], a["video"])
