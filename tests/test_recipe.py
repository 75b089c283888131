"""The published V-JEPA 2.1 ingredients: context loss, deep self-supervision, multi-modal tokenizer,
multi-mask steps, RoPE, and robustness where the released code fails."""

import json
import math

import pytest
import torch

from tests.conftest import TINY_TEST
from vjepa.jepa import JEPA
from vjepa.losses import context_distance_weights
from vjepa.masks import Masks, MaskSpec, sample_masks
from vjepa.models import build_encoder, build_predictor
from vjepa.models.vit import IMAGE
from vjepa.trainer import Trainer, train

SMALL = [*TINY_TEST, "model.depth=4"]


def test_distance_weights_match_brute_force():
    g = torch.Generator().manual_seed(0)
    for grid in [(1, 6, 7), (3, 4, 5)]:
        m = sample_masks(MaskSpec(ratio=0.6), 5, grid, g)
        w = context_distance_weights(m.ctx_idx, m.tgt_idx, grid, chunk=64)  # force chunking
        t, h, width = grid
        for b in range(5):
            for j, c in enumerate(m.ctx_idx[b].tolist()):
                pc = (c // (h * width), (c // width) % h, c % width)
                d = min(
                    math.dist(pc, (q // (h * width), (q // width) % h, q % width))
                    for q in m.tgt_idx[b].tolist()
                )
                assert w[b, j].item() == pytest.approx(1 / math.sqrt(d), rel=1e-6)


def test_context_weight_warmup_schedule(compose_cfg):
    frac = Trainer(
        compose_cfg(*SMALL, "steps=100", "loss.context.weight=0.5", "loss.context.warmup=[0.2,0.4]")
    )
    assert [frac.context_weight(s) for s in (0, 19, 20, 30, 40, 99)] == pytest.approx(
        [0, 0, 0, 0.25, 0.5, 0.5]
    )
    steps = Trainer(
        compose_cfg(
            *SMALL,
            "steps=100",
            "loss.context.weight=0.5",
            "loss.context.warmup=[10,30]",
            "loss.context.warmup_unit=steps",
        )
    )
    assert [steps.context_weight(s) for s in (5, 10, 20, 30, 80)] == pytest.approx([0, 0, 0.25, 0.5, 0.5])
    const = Trainer(compose_cfg(*SMALL, "loss.context.weight=0.2"))
    assert const.context_weight(0) == pytest.approx(0.2)
    off = Trainer(compose_cfg(*SMALL))
    assert off.context_weight(50) == 0.0


def test_images_can_have_their_own_context_weight(compose_cfg, tmp_path):
    """The paper's lambda 0.7 for images, 0.5 for clips: the same warm-up, each modality its own peak; unset,
    images take the clips' weight (the released configs)."""
    args = (*SMALL, "steps=100", "loss.context.weight=0.5", "loss.context.warmup=[0.2,0.4]")
    own = Trainer(compose_cfg(*args, "loss.context.image_weight=0.7"))
    assert [own.context_weight(s, "image") for s in (10, 30, 40, 99)] == pytest.approx([0, 0.35, 0.7, 0.7])
    assert [own.context_weight(s, "video") for s in (10, 30, 40, 99)] == pytest.approx([0, 0.25, 0.5, 0.5])
    same = Trainer(compose_cfg(*args))
    assert same.context_weight(30, "image") == same.context_weight(30, "video") == pytest.approx(0.25)
    only_images = JEPA(compose_cfg(*SMALL, "loss.context.image_weight=0.7"))  # weight 0: head for images
    assert only_images.predictor.context_proj is not None
    # both weights reach the loss of their modality and the log
    run = compose_cfg(
        *TINY_TEST,
        "data.mix=joint",
        "steps=2",
        "log_every=1",
        "loss.context.weight=0.5",
        "loss.context.image_weight=0.7",
        f"run_dir={tmp_path}",
    )
    train(run)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["context_weight_image"], r["context_weight_video"]) for r in logged] == [(0.7, 0.5)] * 2
    assert not any("context_weight" in r for r in logged)  # no one weight applied to this batch
    # an image-only run logs the images' weight as its one weight (it logged the clips' 0.5)
    run.data.mix, run.run_dir = "image", str(tmp_path / "image_only")
    train(run)
    logged = [
        json.loads(line) for line in (tmp_path / "image_only" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["context_weight"], r["context_weight_image"]) for r in logged] == [(0.7, 0.7)] * 2
    assert not any("context_weight_video" in r for r in logged)


def _masks(b, grid, ratio=0.6, seed=0):
    return sample_masks(MaskSpec(ratio=ratio), b, grid, torch.Generator().manual_seed(seed))


def test_gradient_reaches_context_predictions_only_when_lambda_positive(compose_cfg):
    torch.manual_seed(0)
    model = JEPA(compose_cfg(*SMALL, "loss.context.weight=0.5"))
    x = torch.randn(2, 3, 32, 32)
    m = _masks(2, (1, 4, 4))
    for lam, expect in ((0.0, False), (0.5, True)):
        model.zero_grad(set_to_none=True)
        loss, stats = model.loss(x, m, context_weight=lam)
        loss.backward()
        grad = model.predictor.context_proj.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == expect
        assert "loss_ctx" in stats
    off = JEPA(compose_cfg(*SMALL))
    assert off.predictor.context_proj is None


def _keys(module):
    return set(module.state_dict())


def test_switches_change_exactly_what_they_name(compose_cfg):
    base = JEPA(compose_cfg(*SMALL))
    enc, pred = _keys(base.encoder), _keys(base.predictor)

    ctx = JEPA(compose_cfg(*SMALL, "loss.context.weight=0.5"))
    assert _keys(ctx.encoder) == enc and _keys(ctx.predictor) - pred == {
        "context_proj.weight",
        "context_proj.bias",
    }

    mm = JEPA(compose_cfg(*SMALL, "model.modality_embed=true"))
    assert _keys(mm.encoder) - enc == {"modality_embed"} and _keys(mm.predictor) - pred == {"modality_embed"}

    shared = JEPA(compose_cfg(*SMALL, "model.tokenizer=shared3d"))
    assert enc - _keys(shared.encoder) == {"image_embed.proj.weight", "image_embed.proj.bias"}
    assert _keys(shared.predictor) == pred

    deep = JEPA(compose_cfg(*SMALL, "model.deep_supervision=true"))
    assert deep.encoder.level_ids == [0, 1, 2, 3]
    assert {k.split(".")[0] for k in _keys(deep.encoder) - enc} == {"level_norms"}
    assert deep.predictor.proj.out_features == 4 * 192 and deep.predictor.embed[0].in_features == 4 * 192
    x = torch.randn(2, 3, 32, 32)
    assert deep.targets(x).shape == (2, 16, 4 * 192)
    # each target level is layer-normed on its own
    levels = deep.targets(x).view(2, 16, 4, 192)
    assert torch.allclose(levels.mean(-1), torch.zeros(2, 16, 4), atol=1e-5)

    rope = JEPA(compose_cfg(*SMALL, "model.pos=rope"))
    assert rope.encoder.pos_embed is None and type(rope.encoder.blocks[0]).__name__ == "RopeBlock"


def test_level_indices_for_paper_depths():
    from vjepa.models.vit import level_indices

    assert level_indices(12, 4) == [2, 5, 8, 11]
    assert level_indices(24, 4) == [5, 11, 17, 23]
    assert level_indices(40, 4) == [9, 19, 29, 39]
    assert level_indices(48, 4) == [
        11,
        23,
        37,
        47,
    ]  # the released code's, not 35 (vjepa21-published.md, item 2)
    assert level_indices(48, 3) == [15, 31, 47] and level_indices(6, 4) == [0, 2, 3, 5]


def test_multi_mask_step_averages_one_pass_per_setting(compose_cfg):
    torch.manual_seed(0)
    model = JEPA(compose_cfg(*SMALL))
    x = torch.randn(2, 3, 32, 32)
    a, b = _masks(2, (1, 4, 4), 0.5, 1), _masks(2, (1, 4, 4), 0.75, 2)
    la, _ = model.loss(x, a)
    lb, _ = model.loss(x, b)
    both, stats = model.loss(x, [a, b])
    assert both.item() == pytest.approx((la.item() + lb.item()) / 2, rel=1e-6)
    # the feature-std diagnostics pool the tokens of both settings (they read the last setting's alone)
    d = model.encoder.embed_dim
    with torch.no_grad():
        parts = [model._predict(x, model.targets(x), m, IMAGE) for m in (a, b)]
    for name, i in (("pred_std", 0), ("target_std", 2), ("context_std", 3)):
        pooled = torch.cat([p[i][..., -d:].flatten(0, -2) for p in parts])
        assert stats[name].item() == pytest.approx(pooled.std(0, correction=0).mean().item(), rel=1e-5)


def test_multi_mask_config_trains(compose_cfg):
    final = train(compose_cfg(*SMALL, "mask=vjepa21", "steps=2", "log_every=1", "data.mix=video"))
    assert "mask_ratio_video_1" in final or final["mask_ratio_video"] > 0


def test_rope_positions_travel_with_tokens():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    cfg.pos, cfg.depth = "rope", 2
    enc = build_encoder(cfg).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    keep = torch.tensor([[0, 5, 17, 30]])
    out = enc(x, keep_idx=keep)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(enc(x, keep_idx=keep[:, perm]), out[:, perm], atol=1e-5)
    full = enc(x)
    assert not torch.allclose(full[:, 0], full[:, 1])
    pred = build_predictor(OmegaConf.create(dict(width=48, depth=1, num_heads=2)), 192, cfg)
    assert pred(out, keep, torch.tensor([[1, 2]]), (2, 4, 4)).shape == (1, 2, 192)


# ---- robustness where the released code fails --------------------------------------------------------


def test_batch_size_one_with_distance_weighting(compose_cfg):
    final = train(
        compose_cfg(
            *SMALL,
            "batch_size=1",
            "data.mix=image",
            "steps=2",
            "log_every=1",
            "loss.context.weight=0.5",
            "mask=vjepa21",
        )
    )
    assert math.isfinite(final["loss_final"])


def test_single_context_token(compose_cfg):
    model = JEPA(compose_cfg(*SMALL, "loss.context.weight=0.5", "model.pos=rope"))
    x = torch.randn(1, 3, 16, 16)  # 2 x 2 grid
    m = Masks(
        torch.tensor([[2]]), torch.tensor([[0, 1, 3]]), torch.ones(1, 1, 3, dtype=torch.bool), (1, 2, 2)
    )
    loss, stats = model.loss(x, m, context_weight=0.5)
    loss.backward()
    assert math.isfinite(loss.item()) and stats["loss_ctx"] > 0
    w = context_distance_weights(m.ctx_idx, m.tgt_idx, m.grid)
    assert w.item() == pytest.approx(1.0)


def test_one_token_image_is_a_config_error(compose_cfg):
    from vjepa.config_check import ConfigError, check_config

    with pytest.raises(ConfigError, match="data.image.size=8 with model.patch_size=8 gives one token"):
        check_config(compose_cfg(*SMALL, "data.image.size=8"))


@pytest.mark.parametrize("size", [16, 24])
def test_tiny_grids_and_small_crops(compose_cfg, size):
    final = train(
        compose_cfg(
            *SMALL,
            f"data.image.size={size}",
            f"data.video.size={size}",
            "steps=1",
            "loss.context.weight=0.5",
            "model.deep_supervision=true",
            "model.modality_embed=true",
            "mask.ratio=0.9",
        )
    )
    assert math.isfinite(final["loss_final"])


@pytest.mark.parametrize("granularity", ["token", "block"])
def test_bucketed_setting_weights_each_bucket_by_its_share_of_the_batch(compose_cfg, granularity):
    """A setting given as length buckets: one pass per bucket on its own samples, the losses (prediction and
    context) weighted by the buckets' share of the batch, i.e. every sample weighs the same."""
    from vjepa.masks import sample_mask_buckets

    torch.manual_seed(0)
    model = JEPA(compose_cfg(*SMALL, "loss.context.weight=0.5", f"loss.granularity={granularity}"))
    x = torch.randn(7, 3, 32, 32)
    spec = MaskSpec(ratio=None, num_blocks=4, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0))
    buckets = sample_mask_buckets(spec, 7, (1, 4, 4), torch.Generator().manual_seed(3), 3)
    assert len({m.ctx_idx.shape[1] for m in buckets} | {m.tgt_idx.shape[1] for m in buckets}) > 1
    whole, stats = model.loss(x, [buckets], context_weight=0.5)
    parts = [model.loss(x[m.index], Masks(m.ctx_idx, m.tgt_idx, m.blocks, m.grid), 0.5) for m in buckets]
    assert whole.item() == pytest.approx(
        sum(m.size / 7 * p[0].item() for m, p in zip(buckets, parts)), rel=1e-5
    )
    assert stats["loss_ctx"].item() == pytest.approx(
        sum(m.size / 7 * p[1]["loss_ctx"].item() for m, p in zip(buckets, parts)), rel=1e-5
    )
    whole.backward()
    assert all(p.grad is not None for p in model.predictor.parameters() if p.requires_grad)


def test_bucketed_masks_train_and_mask_less_than_one_cut(compose_cfg, tmp_path):
    """mask.buckets reaches the trainer: at batch 16 the logged mask ratio drops below one cut's (the tiny
    preset sets mask.ratio=0.6, so the V-JEPA 2 masks need mask.ratio=null here)."""
    ratios = {}
    for k in (1, 4):
        overrides = ("mask=vjepa2", "mask.ratio=null", f"mask.buckets={k}", "batch_size=16", "steps=2")
        final = train(compose_cfg(*SMALL, *overrides, run_dir=tmp_path / str(k)))
        ratios[k] = final["mask_ratio_image"]
    assert ratios[4] < ratios[1] - 0.02


def test_images_get_their_own_mask_settings_in_the_published_recipe(compose_cfg, tmp_path):
    """V-JEPA 2.1 masks images with one setting of 10 blocks and clips with the short- and long-range pair;
    V-JEPA 2 masks both alike. The trainer draws each modality's own settings."""
    from vjepa.masks import mask_settings

    v21 = compose_cfg(*SMALL, "recipe=vjepa21")
    assert [s["num_blocks"] for s in mask_settings(v21.mask, "video")] == [8, 2]
    assert [(s["num_blocks"], s["ratio"]) for s in mask_settings(v21.mask, "image")] == [(10, None)]
    v2 = compose_cfg(*SMALL, "recipe=vjepa2")
    assert mask_settings(v2.mask, "image") == mask_settings(v2.mask, "video")
    final = train(compose_cfg(*SMALL, "recipe=vjepa21", "steps=2", "data.mix=joint", run_dir=tmp_path / "r"))
    assert "mask_ratio_video_1" in final and "mask_ratio_image_1" not in final
