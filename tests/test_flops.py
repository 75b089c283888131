import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import TINY_TEST
from vjepa.data import build_train_loader
from vjepa.flops import gpu_hours, step_cost
from vjepa.jepa import JEPA
from vjepa.masks import MaskSpec, mask_settings, sample_masks


def _counted_step_flops(cfg) -> int:
    """FLOPs torch counts in one real training step (all modalities and mask settings, forward + backward)."""
    model = JEPA(cfg)
    for m in model.modules():
        if hasattr(m, "fused_attn"):  # FlopCounterMode does not count the CPU fused attention kernel
            m.fused_attn = False
    batch = next(iter(build_train_loader(cfg.data, cfg.batch_size, 0, 0, 1)))
    g = torch.Generator().manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        total = 0.0
        for modality, x in batch.items():
            specs = [MaskSpec.from_cfg(OmegaConf.create(s)) for s in mask_settings(cfg.mask, modality)]
            masks = [sample_masks(spec, x.shape[0], model.encoder.grid(x), g) for spec in specs]
            loss, _ = model.loss(x, masks if len(masks) > 1 else masks[0], 0.5)
            total = total + loss
        total.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "extra",
    [
        ["model.tokenizer=shared3d", "mask.settings=[{ratio: 0.75},{ratio: 0.9,num_blocks: 2}]"],
        ["data.mix=video", "model.depth=4", "model.deep_supervision=true", "loss.context.weight=0.5"],
        ["mask.settings=[{ratio: 0.75},{ratio: 0.9,num_blocks: 2}]", "mask.image_settings=[{ratio: 0.6}]"],
    ],
)
def test_estimate_equals_the_flops_of_a_real_step(compose_cfg, extra):
    cfg = compose_cfg(*TINY_TEST, *extra)
    assert step_cost(cfg).flops == _counted_step_flops(cfg)


def test_tokens_and_scaling(compose_cfg):
    cfg = compose_cfg(*TINY_TEST)  # 4 images of 4x4 patches + 4 clips of 2x4x4 tubelets
    cost = step_cost(cfg)
    assert cost.tokens == 4 * 16 + 4 * 32
    double = step_cost(compose_cfg(*TINY_TEST, "batch_size=16"))
    assert double.flops == pytest.approx(2 * cost.flops) and double.tokens == 2 * cost.tokens
    fewer_ctx = step_cost(compose_cfg(*TINY_TEST, "mask.ratio=0.9"))
    assert fewer_ctx.online_flops < cost.online_flops and fewer_ctx.target_flops == cost.target_flops


def test_paper_scale_estimate_is_plausible(compose_cfg):
    """ViT-L/16, 256 samples (128 images of 196 patches, 128 clips of 1568 tubelets) per step."""
    cost = step_cost(compose_cfg("preset=vitl16"))
    assert cost.tokens == 128 * 196 + 128 * 1568
    # ~300M encoder parameters: a forward is about 2 x params FLOPs per token (+ attention)
    assert 2 * 3.0e8 * cost.tokens < cost.target_flops < 2 * 3.0e8 * cost.tokens * 1.6
    assert gpu_hours(3600e12, 1.0) == pytest.approx(1.0)


def _mask_counts(setting: dict, grid, batch: int, buckets: int = 1, by: str = "order") -> tuple[float, float]:
    """(context, target) tokens per sample of one mask setting, averaged over the buckets flops prices."""
    from vjepa.flops import _mask_buckets

    parts = _mask_buckets(setting, grid, batch, buckets, by)
    return sum(w * c for w, c, _ in parts), sum(w * t for w, _, t in parts)


def test_length_buckets_count_the_larger_context_they_keep():
    """Ratio-free settings are priced from drawn masks; with length buckets every sample keeps more of its
    own context and targets (tiny preset grid, batch 128)."""
    short = {"ratio": None, "num_blocks": 8, "spatial_scale": [0.15, 0.15], "aspect_ratio": [0.75, 1.5]}
    short["temporal_scale"] = [1.0, 1.0]
    ctx1, tgt1 = _mask_counts(short, (1, 8, 8), 128, 1)
    ctx8, tgt8 = _mask_counts(short, (1, 8, 8), 128, 8, "size")
    assert ctx8 > 1.5 * ctx1 and tgt8 > 1.2 * tgt1
    assert 0.6 < 1 - ctx8 / 64 < 0.72  # about 67 % masked, as the masks themselves (tests/test_masks.py)


def test_bucketed_ratio_free_masks_are_priced_per_pass(compose_cfg):
    """Length buckets run one pass per bucket, each with its own context and target counts: the estimate
    equals torch's count of real steps over the same draws (pricing the attention at the mean count, as
    before, fell short of it)."""
    from vjepa.masks import mask_bucketing, sample_mask_buckets

    setting = "{ratio: null, num_blocks: 2, spatial_scale: [0.1, 0.6], aspect_ratio: [0.75, 1.5]}"
    cfg = compose_cfg(
        *TINY_TEST, "data.mix=image", "data.image.size=64", f"mask.settings=[{setting}]", "mask.buckets=4",
        "mask.bucket_by=size", "batch_size=8",
    )  # fmt: skip
    model = JEPA(cfg)
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    x = next(iter(build_train_loader(cfg.data, cfg.batch_size, 0, 0, 1)))["image"]
    grid = model.encoder.grid(x)
    spec = MaskSpec.from_cfg(OmegaConf.create(mask_settings(cfg.mask, "image")[0]))
    g, counted = torch.Generator().manual_seed(0), []
    for _ in range(8):  # the draws vjepa.flops prices
        buckets = sample_mask_buckets(spec, x.shape[0], grid, g, *mask_bucketing(cfg.mask))
        with FlopCounterMode(display=False) as counter:
            loss, _ = model.loss(x, [buckets], 0.5)
            loss.backward()
        counted.append(counter.get_total_flops())
    assert step_cost(cfg).flops == pytest.approx(sum(counted) / 8, rel=1e-9)


def test_pricing_at_the_mean_counts_falls_short(compose_cfg, monkeypatch):
    """Attention grows with the square of a pass's tokens: one pass at the mean counts costs less than the
    buckets it stands for."""
    import vjepa.flops as flops

    setting = "{ratio: null, num_blocks: 2, spatial_scale: [0.1, 0.6], aspect_ratio: [0.75, 1.5]}"
    cfg = compose_cfg(
        *TINY_TEST, "data.mix=image", "data.image.size=64", f"mask.settings=[{setting}]", "mask.buckets=4",
        "mask.bucket_by=size", "batch_size=8",
    )  # fmt: skip
    per_pass = step_cost(cfg)
    ctx, tgt = _mask_counts(mask_settings(cfg.mask, "image")[0], (1, 8, 8), 8, 4, "size")
    monkeypatch.setattr(flops, "_mask_buckets", lambda *a: [(1.0, ctx, tgt)])
    at_mean = step_cost(cfg)
    assert at_mean.target_flops == per_pass.target_flops
    assert at_mean.online_flops < per_pass.online_flops and at_mean.predictor_flops < per_pass.predictor_flops
