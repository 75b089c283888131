import subprocess
import sys
from pathlib import Path

import pytest

from vjepa.config_check import ConfigError, check_config


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.granularity=pixel", "loss.granularity='pixel' is not one of: token, block"),
        ("loss.distance=cosine", "loss.distance='cosine' is not one of: smooth_l1, l2, l1"),
        ("mask.ratio=1.2", "mask.ratio=1.2 must be a number in (0, 1)"),
        ("mask.ratio=0", "mask.ratio=0 must be a number in (0, 1)"),
        ("predictor.width=90", "predictor.width=90 must be a positive multiple of predictor.num_heads=4"),
        ("predictor.width=-8", "predictor.width=-8 must be a positive multiple"),
        (
            "data.video.frames=1",
            "data.video.frames=1 is shorter than the temporal patch model.tubelet_size=2",
        ),
        ("data.mix=audio", "data.mix='audio' is not one of: image, video, joint"),
        (
            "data.mix=video data.video.size=8 data.video.frames=2",
            "data.video.size=8, data.video.frames=2 with model.patch_size=8, model.tubelet_size=2 give one token",
        ),
        (
            "model.pos=rope predictor.width=16",
            "predictor head dim 16/4 = 4 must be even and >= 6 for model.pos=rope",
        ),
        ("model.pos=rope model.num_heads=64", "model head dim 192/64 = 3 must be even and >= 6"),
        ("data.image.size=70", "data.image.size=70 must be a multiple of model.patch_size=8"),
        ("model.num_heads=5", "model.embed_dim=192 must be a positive multiple of model.num_heads=5"),
        ("model.tokenizer=2d", "model.tokenizer='2d' is not one of: separate, shared3d"),
        ("mask.spatial_scale=[0.8,0.2]", "mask.spatial_scale=[0.8, 0.2] must be a pair low <= high"),
        ("data.image.name=imagenet", "data.image.name='imagenet' is not one of"),
        ("optim.ema=[0.99,1.1]", "optim.ema=[0.99, 1.1] must be a pair"),
        ("device=tpu", "device='tpu' is not one of: auto, cpu, cuda"),
        ("compile=yes", "compile='yes' is not one of: False, True, reduce-overhead, max-autotune"),
        ("mask.cut=first", "mask.cut='first' is not one of: random, raster"),
        ("mask.cut=raster", "mask.cut='raster' (Meta's cut of ratio-free settings to the batch minimum) needs"),
        ("mask.trim=last", "mask.trim='last' is not one of: raster, random_edge"),
        (
            "mask.trim=random_edge mask.cut=raster mask.ratio=null",
            "mask.trim='random_edge' chooses what a block trimmed in part keeps; mask.cut='raster' keeps",
        ),
        ("optim.final_lr_frac=-0.5", "optim.final_lr_frac=-0.5 must be a number in [0, 1]"),
        ("optim.warmup=1.9", "optim.warmup=1.9 must be a whole number of steps when >= 1"),
        ("optim.warmup=5000", "optim.warmup=5000 is 5000 warm-up steps, not fewer than steps=2000"),
        ("optim.warmup=-0.1", "optim.warmup=-0.1 must be >= 0"),
        ("diagnostics.batch_size=-3", "diagnostics.batch_size=-3 must be an integer >= 0"),
        ("data.prefetch=0", "data.prefetch=0 must be an integer >= 1"),
        ("data.num_workers=-1", "data.num_workers=-1 must be an integer >= 0"),
        ("diagnostics.batch_size=2.5", "diagnostics.batch_size=2.5 must be an integer >= 0"),
        (
            "probes.tasks.shapes_seg.kind=segg",
            "probes.tasks.shapes_seg.kind='segg' is not one of: seg, det, classify",
        ),
        (
            "probes.tasks.mnist_video.head=attn",
            "probes.tasks.mnist_video.head='attn' is not one of: linear, attentive, knn",
        ),
        ("probes.bootstrap=-1", "probes.bootstrap=-1 must be an integer >= 0"),
        (
            "probes.tasks.shapes_det.bootstrap=2.5",
            "probes.tasks.shapes_det.bootstrap=2.5 must be an integer >= 0",
        ),
        ("probes.tasks.mnist_video.refits=0", "probes.tasks.mnist_video.refits=0 must be an integer >= 1"),
        ("probes.tasks.cifar10_knn.k=0", "probes.tasks.cifar10_knn.k=0 must be an integer >= 1"),
        (
            "probes.tasks.cifar10_knn.temperature=0",
            "probes.tasks.cifar10_knn.temperature=0 must be a number > 0",
        ),
        (
            "probes.tasks.shapes_seg.pixels=even",
            "probes.tasks.shapes_seg.pixels='even' is not one of: uniform, balanced",
        ),
    ],
)
def test_invalid_values_are_named(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("model=tiny", "predictor.num_heads=4", *override.split()))
    assert message in str(err.value)


def test_warmup_is_a_fraction_below_one_and_a_step_count_from_one_on(compose_cfg):
    from vjepa.config_check import warmup_steps

    for warmup in ("0.1", "0.9", "10", "10.0", "999"):
        check_config(compose_cfg("steps=1000", f"optim.warmup={warmup}"))
    assert [warmup_steps(w, 1000) for w in (0.0, 0.1, 0.9, 10, 10.0, 999)] == [0, 100, 900, 10, 10, 999]
    with pytest.raises(
        ConfigError, match=r"optim.warmup=1000 is 1000 warm-up steps, not fewer than steps=1000"
    ):
        check_config(compose_cfg("steps=1000", "optim.warmup=1000"))
    with pytest.raises(ConfigError, match=r"optim.warmup=0.95 is 10 warm-up steps, not fewer than steps=10"):
        check_config(compose_cfg("steps=10", "optim.warmup=0.95"))


def test_every_probes_config_validates_and_its_kinds_are_those_the_runner_dispatches(compose_cfg):
    from vjepa.probes.classify import HEADS
    from vjepa.probes.runner import KINDS

    kinds, heads = set(), set()
    for probes in ("default", "fast", "levels", "synthetic", "none", "paper"):
        cfg = compose_cfg(f"probes={probes}")
        check_config(cfg)
        tasks = cfg.probes.tasks.values()
        kinds |= {t.kind for t in tasks}
        heads |= {t.head for t in tasks if t.kind == "classify"}
    assert kinds == set(KINDS) and heads == set(HEADS)


def test_probe_problems_are_reported_before_any_compute(compose_cfg, monkeypatch):
    """An unknown probe kind fails when the Trainer is built, not after pretraining."""
    from vjepa.trainer import Trainer

    with pytest.raises(ConfigError, match=r"probes.tasks.shapes_det.kind='detection' is not one of"):
        Trainer(compose_cfg("probes=fast", "probes.tasks.shapes_det.kind=detection"))


def test_decoding_video_below_the_clip_size_is_refused(compose_cfg):
    check_config(compose_cfg("data.video.size=64", "+data.video.decode_short_side=64"))
    check_config(compose_cfg("+data.video.decode_short_side=0"))
    with pytest.raises(ConfigError, match=r"decode_short_side=48 is below data.video.size=64: every clip"):
        check_config(compose_cfg("data.video.size=64", "+data.video.decode_short_side=48"))
    with pytest.raises(ConfigError, match=r"decode_short_side=-1 must be an integer >= 0"):
        check_config(compose_cfg("+data.video.decode_short_side=-1"))


def test_deep_supervision_needs_a_block_per_level(compose_cfg):
    check_config(compose_cfg("model.depth=4", "model.deep_supervision=true"))
    with pytest.raises(ConfigError, match=r"model.depth=3 must be >= 4 with model.deep_supervision=true"):
        check_config(compose_cfg("model.depth=3", "model.deep_supervision=true"))


def test_all_problems_reported_together(compose_cfg):
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("loss.granularity=x", "mask.ratio=2"))
    assert "loss.granularity" in str(err.value) and "mask.ratio" in str(err.value)


def test_default_and_paper_presets_validate(compose_cfg):
    for preset in ("tiny", "small", "vitl16", "vith16", "vitg14"):
        check_config(compose_cfg(f"preset={preset}"))


def test_cli_reports_error_before_compute(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vjepa.train", "loss.granularity=pixel", f"run_dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "loss.granularity='pixel' is not one of: token, block" in out.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_mask_buckets_are_checked_against_the_batch(compose_cfg):
    with pytest.raises(ConfigError, match=r"mask.buckets=0 must be an integer >= 1"):
        check_config(compose_cfg("mask=vjepa21", "mask.buckets=0"))
    with pytest.raises(ConfigError, match=r"mask.buckets=6 exceeds the 4 clips per step"):
        check_config(compose_cfg("mask=vjepa21", "mask.buckets=6", "batch_size=8", "data.mix=joint"))
    check_config(compose_cfg("mask=multiblock", "mask.buckets=64", "batch_size=8"))  # ratio set: no effect
    with pytest.raises(ConfigError, match=r"mask.bucket_by='sorted' is not one of: order, size"):
        check_config(compose_cfg("mask=vjepa21", "mask.bucket_by=sorted"))


def test_run_made_before_mask_buckets_existed_resumes_with_the_default(compose_cfg, tmp_path):
    """A config.yaml written before the mask keys added since is the same experiment as their defaults
    (buckets=1, bucket_by=order, image_settings=null, cut=random), and only that."""
    from omegaconf import OmegaConf

    from vjepa.trainer import Trainer

    cfg = compose_cfg("mask=vjepa2", f"run_dir={tmp_path}")
    old = OmegaConf.to_container(cfg, resolve=True)
    for key in ("buckets", "bucket_by", "image_settings", "cut", "trim"):  # keys added after the first runs
        del old["mask"][key]
    del old["loss"]["context"]["image_weight"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(old)))
    Trainer(cfg)._check_run_dir()
    with pytest.raises(ConfigError, match=r"mask.buckets: 1 \(on disk\) vs 8 \(now\)"):
        Trainer(compose_cfg("mask=vjepa2", "mask.buckets=8", f"run_dir={tmp_path}"))._check_run_dir()
    with pytest.raises(ConfigError, match=r"mask.trim: 'raster' \(on disk\) vs 'random_edge' \(now\)"):
        Trainer(compose_cfg("mask=vjepa2", "mask.trim=random_edge", f"run_dir={tmp_path}"))._check_run_dir()
    with pytest.raises(ConfigError, match=r"mask.cut: 'random' \(on disk\) vs 'raster' \(now\)"):
        Trainer(
            compose_cfg("mask=vjepa2", "mask.ratio=null", "mask.cut=raster", f"run_dir={tmp_path}")
        )._check_run_dir()
    with pytest.raises(ConfigError, match=r"loss.context.image_weight: None \(on disk\) vs 0.7 \(now\)"):
        Trainer(
            compose_cfg("mask=vjepa2", "loss.context.image_weight=0.7", f"run_dir={tmp_path}")
        )._check_run_dir()


def test_context_image_weight_is_checked(compose_cfg):
    with pytest.raises(ConfigError, match=r"loss.context.image_weight=-0.1 must be a number >= 0, or null"):
        check_config(compose_cfg("loss.context.image_weight=-0.1"))


def test_image_mask_settings_are_checked(compose_cfg):
    with pytest.raises(ConfigError, match=r"mask.image_settings=\[\] must be null or a non-empty list"):
        check_config(compose_cfg("mask.image_settings=[]"))
    with pytest.raises(ConfigError, match=r"mask.image_settings\[0\].num_blocks=0 must be an integer >= 1"):
        check_config(compose_cfg("mask=vjepa21", "mask.image_settings=[{num_blocks: 0}]"))


@pytest.mark.parametrize(
    "overrides, noted",
    [
        (["mask=vjepa2"], True),  # preset=tiny's ratio 0.6 silently trims the V-JEPA 2 blocks
        (["mask=vjepa2", "mask.ratio=0.6"], False),  # asked for
        (["mask=vjepa2", "mask.ratio=null"], False),
        (["mask=multiblock"], False),  # the design document's masks take a ratio
        (["recipe=vjepa2"], False),  # its settings name their own ratio
    ],
)
def test_a_ratio_the_vjepa2_masks_did_not_ask_for_is_noted(overrides, noted):
    from hydra import compose, initialize_config_module

    from vjepa.train import mask_ratio_note

    with initialize_config_module("vjepa.conf", version_base=None):
        cfg = compose("train", overrides=["preset=tiny", *overrides], return_hydra_config=True)
    note = mask_ratio_note(cfg, dict(cfg.hydra.runtime.choices), list(cfg.hydra.overrides.task))
    assert (note is not None) == noted
    if noted:
        assert "mask.ratio=0.6, set by preset=tiny" in note and "mask.ratio=null" in note


def test_the_default_run_dir_is_named_without_the_keys_a_resumed_run_may_change(tmp_path):
    """Rerunning a command with compile, diagnostics.*, threads or probes.* changed finds the same directory
    (the run resumes) instead of starting the experiment again elsewhere: the keys left out of names are
    exactly RESUME_FREE_KEYS, sub-keys included."""
    from omegaconf import OmegaConf

    from vjepa.run_identity import RESUME_FREE_KEYS

    train_yaml = OmegaConf.load(Path(__file__).parents[1] / "vjepa" / "conf" / "train.yaml")
    assert set(train_yaml.hydra.job.config.override_dirname.exclude_keys) == set(RESUME_FREE_KEYS)

    def run_dir(*overrides):
        out = subprocess.run(
            [sys.executable, "-m", "vjepa.train", *overrides, "--cfg", "job", "--resolve"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return next(line for line in out.stdout.splitlines() if line.startswith("run_dir:")).split()[1]

    plain = run_dir("loss=block", "seed=3")
    assert plain == "runs/loss=block,seed=3"
    changed = (
        "compile=true",
        "diagnostics.batch_size=0",
        "threads=1",
        "probes.baseline=true",
        "progress=false",
    )
    assert run_dir("seed=3", *changed, "loss=block") == plain
