import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict

from tests.conftest import PROBE_MODEL as TINY_MODEL
from tests.conftest import TINY_TEST
from vjepa.data import resolve_root
from vjepa.data.common import DataNotFoundError
from vjepa.probes import random_encoder, run_probes
from vjepa.probes.classify import classify_probe
from vjepa.probes.det import centernet_targets, decode, instance_boxes
from vjepa.probes.features import extract
from vjepa.probes.heads import fit_logistic
from vjepa.probes.metrics import box_ap
from vjepa.probes.seg import bilinear_at, seg_probe

CONF = Path(__file__).resolve().parents[1] / "vjepa" / "conf" / "probes"
SIZES = {"data": {"image": {"size": 32}, "video": {"size": 32, "frames": 4}}}


pytestmark = pytest.mark.usefixtures("one_thread")


def probes_cfg(name="fast"):
    root = OmegaConf.merge(SIZES, {"probes": OmegaConf.load(CONF / f"{name}.yaml")})
    return root.probes


def _values(r):
    return {k: v for k, v in r.items() if not k.endswith("time_s")}


# ---- pieces ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grid,out", [((8, 11), (96, 128)), ((4, 4), (32, 32)), ((3, 5), (7, 13)), ((8, 8), (8, 8))]
)
def test_bilinear_at_equals_interpolate(grid, out):
    f = torch.randn(2, 6, *grid)
    up = F.interpolate(f, size=out, mode="bilinear", align_corners=False).flatten(2)
    pix = torch.randint(0, out[0] * out[1], (2, 40))
    ref = torch.gather(up, 2, pix[:, None].expand(-1, 6, -1)).transpose(1, 2)
    torch.testing.assert_close(bilinear_at(f, pix, out), ref)


def test_instance_boxes_are_tight_boxes_of_visible_pixels():
    inst = torch.zeros(1, 10, 12, dtype=torch.long)
    inst[0, 2:5, 3:9] = 1
    inst[0, 6:10, 0:2] = 2
    boxes = instance_boxes(inst, torch.tensor([[4, 1, -1]]))[0]
    assert boxes["boxes"].tolist() == [[3, 2, 9, 5], [0, 6, 2, 10]]
    assert boxes["labels"].tolist() == [4, 1]


def test_centernet_targets_decode_back_to_the_boxes():
    gts = [
        {
            "boxes": torch.tensor([[2.0, 3.0, 20.0, 15.0], [30.0, 28.0, 62.0, 60.0]]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.tensor([[10.0, 40.0, 25.0, 63.0]]), "labels": torch.tensor([1])},
    ]
    t = centernet_targets(gts, 3, (16, 16), stride=4.0)
    heat_logits = torch.logit(t["heat"].clamp(1e-4, 1 - 1e-4))
    dets = decode(heat_logits, torch.cat([t["size"], t["offset"]], 1), 4.0, max_det=10, image_hw=(64, 64))
    r = box_ap(dets, gts, 3)
    assert r["ap50"] == pytest.approx(1.0) and r["ap"] == pytest.approx(1.0)


def test_logistic_fits_separable_data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 5, generator=g) * 0.3 + F.one_hot(y, 5).float() * 3
    lin = fit_logistic(x, y, 3, wd=1e-4, iters=50)
    assert (lin(x).argmax(1) == y).float().mean() == 1.0


def test_attentive_probe_finds_the_one_informative_token():
    # class c <=> one token (at a random position) carries a bump in channel c; the rest is noise, so
    # average pooling dilutes the signal 16x but attention can pick the token out. Chance: 0.25.
    g = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.randint(0, 4, (n,), generator=g)
        x = torch.randn(n, 16, 32, generator=g)
        pos = torch.randint(0, 16, (n,), generator=g)
        x[torch.arange(n), pos, 8] += 6.0  # marks the informative token
        x[torch.arange(n), pos, y] += 4.0
        return x.half(), y

    (xt, yt), (xv, yv) = split(512), split(256)
    cfg = {"heads": 2, "epochs": 20, "batch_size": 64, "lr": 1e-2, "wd": 0.0}
    acc = classify_probe("attentive", {"train": xt, "val": xv}, yt, yv, 4, cfg, 0, "cpu").value
    assert acc > 0.8


def _colour_images(n, g, split_classes):
    """Images whose pixel classes are given by colour: class c has colour COLOURS[c] (+ noise). With
    ``split_classes``, the left part (up to a random patch boundary) is one class, the rest another."""
    colours = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0], [1.0, 1.0, 0.1]])
    a = torch.randint(0, 4, (n,), generator=g)
    b = (a + torch.randint(1, 4, (n,), generator=g)) % 4 if split_classes else a
    cut = torch.randint(1, 4, (n,), generator=g) * 8
    seg = torch.where(
        torch.arange(32).view(1, 1, 32) < cut.view(n, 1, 1), a.view(n, 1, 1), b.view(n, 1, 1)
    ).expand(n, 32, 32)
    img = colours[seg].permute(0, 3, 1, 2) * 0.8 + 0.1 * torch.rand(n, 3, 32, 32, generator=g)
    return (img * 255).round().to(torch.uint8), seg, a


def test_probes_beat_chance_on_a_trivially_separable_case():
    enc = random_encoder(TINY_MODEL, 0, "cpu")
    g = torch.Generator().manual_seed(1)
    (xt, st, _), (xv, sv, _) = _colour_images(64, g, True), _colour_images(32, g, True)
    ft, grid = extract(enc, xt, [-1], (32, 32), 32, "cpu")
    fv, _ = extract(enc, xv, [-1], (32, 32), 32, "cpu")
    miou, _, _ = seg_probe(
        {"train": ft, "val": fv}, grid, st, sv, 4, {"pixels_per_image": 64, "iters": 50, "wd": 1e-4}, 0, "cpu"
    )
    assert miou > 0.6  # chance (uniform guess) is about 0.15

    (xt, _, yt), (xv, _, yv) = _colour_images(64, g, False), _colour_images(32, g, False)
    feats = {
        "train": extract(enc, xt, [-1], (32, 32), 32, "cpu")[0],
        "val": extract(enc, xv, [-1], (32, 32), 32, "cpu")[0],
    }
    assert (
        classify_probe("linear", feats, yt, yv, 4, {"iters": 50, "wd": 1e-4}, 0, "cpu").value > 0.9
    )  # chance 0.25


# ---- run_probes ----------------------------------------------------------------------------------------
def test_run_probes_is_deterministic_and_leaves_the_encoder_and_rng_alone():
    enc = random_encoder(TINY_MODEL, 0, "cpu").train()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    rng = torch.get_rng_state()
    a = run_probes(enc, probes_cfg(), TINY_MODEL, 0, None, "cpu", baseline=True)
    b = run_probes(enc, probes_cfg(), TINY_MODEL, 0, None, "cpu", baseline=True)
    assert _values(a) == _values(b)
    assert torch.equal(rng, torch.get_rng_state())
    assert enc.training and all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    for key in (
        "probe/shapes_seg/miou",
        "probe/shapes_det/ap50",
        "probe/shapes_det/ap",
        "probe/shapes_video/shape_top1",
        "probe/shapes_video/direction_top1",
        "probe/shapes_video_linear/direction_top1",
        "probe_random/shapes_seg/miou",
        "probe/time_s",
    ):
        assert key in a
    assert all(0.0 <= v <= 1.0 for k, v in _values(a).items() if not k.endswith("/frames"))
    assert "probe/shapes_seg/iou/background" in a
    # each task records its inputs' frames (0: images), which is how analysis tells its modality
    assert a["probe/shapes_seg/frames"] == a["probe/shapes_det/frames"] == 0.0
    assert a["probe/shapes_video/frames"] == a["probe_random/shapes_video_linear/frames"] == 4.0


def test_run_probes_disk_cache_gives_the_same_numbers(tmp_path):
    enc = random_encoder(TINY_MODEL, 0, "cpu")
    cfg = probes_cfg()
    a = run_probes(enc, cfg, TINY_MODEL, 0, None, "cpu", cache_dir=tmp_path, cache_tag="probe-step2")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and all(
        f.startswith("probe-step2-") for f in files
    )  # shapes 32px, clips, clips x2 layers
    torch.nn.init.zeros_(enc.blocks[0].mlp.fc2.weight)  # the cache, not the encoder, must now supply features
    assert _values(
        run_probes(enc, cfg, TINY_MODEL, 0, None, "cpu", cache_dir=tmp_path, cache_tag="probe-step2")
    ) == _values(a)


def test_features_of_another_arithmetic_are_never_read_back(tmp_path):
    """The cache key names bf16 (CUDA's extraction) but leaves fp32 keys as they were, so a CPU run never
    reads features a GPU extracted, and caches written on CPU before stay valid."""
    from vjepa.probes.features import FeatureCache, feature_spec, spec_hash

    data = {"name": "shapes", "n_train": 8}
    cpu, gpu = feature_spec(data, [-1], "cpu"), feature_spec(data, [-1], "cuda")
    assert cpu == {"data": data, "layers": [-1]} and gpu == {**cpu, "arithmetic": "bf16"}
    assert spec_hash(cpu) != spec_hash(gpu)
    FeatureCache(tmp_path, "probe-step2").get(gpu, lambda: {"train": torch.ones(1)})
    got = FeatureCache(tmp_path, "probe-step2").get(cpu, lambda: {"train": torch.zeros(1)})
    assert torch.equal(got["train"], torch.zeros(1))


def test_in_memory_extraction_in_bf16_runs_under_autocast(monkeypatch):
    """The built-in sets' extraction (``features.extract``) in CUDA's arithmetic, run on CPU: every forward
    under bf16 autocast, the features its rounding away from fp32's (the streamed path: test_probes_folders)."""
    import vjepa.probes.features as features

    enc = random_encoder(TINY_MODEL, 0, "cpu")
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    fp32, grid = extract(enc, x, [-1], (32, 32), 4, "cpu")
    seen, original = [], features.encoder_layers

    def spy(e, xb, layers):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(e, xb, layers)

    monkeypatch.setattr(features, "feature_arithmetic", lambda device: "bf16")
    monkeypatch.setattr(features, "encoder_layers", spy)
    bf16, grid_bf16 = extract(enc, x, [-1], (32, 32), 4, "cpu")
    assert seen and set(seen) == {(True, torch.bfloat16)} and grid_bf16 == grid
    assert fp32.shape == bf16.shape and not torch.equal(fp32, bf16)
    assert F.cosine_similarity(fp32.float().flatten(), bf16.float().flatten(), dim=0) > 0.999


def test_missing_data_is_skipped_or_raised(tmp_path):
    cfg = OmegaConf.merge(SIZES, {"probes": OmegaConf.load(CONF / "default.yaml")}).probes
    with open_dict(cfg):
        cfg.tasks = {"camvid_linear": cfg.tasks.camvid_linear}
    enc = random_encoder(TINY_MODEL, 0, "cpu")
    assert set(run_probes(enc, cfg, TINY_MODEL, 0, tmp_path, "cpu")) == {"probe/time_s"}
    cfg.missing_data = "raise"
    with pytest.raises(DataNotFoundError):
        run_probes(enc, cfg, TINY_MODEL, 0, tmp_path, "cpu")


def test_none_config_runs_nothing():
    assert set(
        run_probes(random_encoder(TINY_MODEL, 0, "cpu"), probes_cfg("none"), TINY_MODEL, 0, None, "cpu")
    ) == {"probe/time_s"}


@pytest.mark.shared_data
def test_shared_data_probes_on_small_subsets():
    root = resolve_root(None)
    if root is None or not (root / "camvid").exists():
        pytest.skip("needs ../shared/data")
    cfg = OmegaConf.merge(SIZES, {"probes": OmegaConf.load(CONF / "default.yaml")}).probes
    t = cfg.tasks
    t.camvid_linear.update(pixels_per_image=16, iters=10, layers=[-2, -1])
    t.cifar10_linear.data.update(n_train=40, n_val=20)
    t.cifar10_knn.data.update(n_train=40, n_val=20)
    t.cifar10_attentive.data.update(n_train=40, n_val=20)
    t.cifar10_attentive.epochs = 1
    for name in ("mnist_video", "mnist_video_linear"):
        t[name].data.update(n_train=16, n_val=8)
    t.mnist_video.epochs = 1
    with open_dict(cfg):
        del t["shapes_seg"], t["shapes_det"]
    r = run_probes(random_encoder(TINY_MODEL, 0, "cpu"), cfg, TINY_MODEL, 0, root, "cpu")
    assert len([k for k in r if k.startswith("probe/camvid_linear/iou/")]) == 11
    for key in (
        "camvid_linear/miou",
        "cifar10_linear/top1",
        "cifar10_knn/top1",
        "cifar10_attentive/top1",
        "mnist_video/digit_top1",
        "mnist_video/direction_top1",
        "mnist_video_linear/digit_top1",
    ):
        assert 0.0 <= r[f"probe/{key}"] <= 1.0


# ---- python -m vjepa.evaluate ---------------------------------------------------------------------------
@pytest.fixture
def tiny_run(compose_cfg, tmp_path):
    """A finished 2-step run as `python -m vjepa.train model.depth=2 ... steps=2` makes it, without end-of-run
    probes (set in-process so this works whether or not train.yaml has a probes group)."""
    from vjepa.trainer import train

    cfg = compose_cfg(*TINY_TEST, "steps=2", run_dir=tmp_path / "run")
    with open_dict(cfg):
        cfg.probes = {"tasks": {}}
    train(cfg)
    return Path(cfg.run_dir)


def _evaluate(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "vjepa.evaluate", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_evaluate_cli_merges_into_metrics_json(tiny_run):
    pretrain = json.loads((tiny_run / "metrics.json").read_text())
    _evaluate(
        f"run_dir={tiny_run}", "probes=fast", "threads=1", "baseline=true", "probes.tasks.shapes_det.epochs=1"
    )
    merged = json.loads((tiny_run / "metrics.json").read_text())
    assert {k: merged[k] for k in pretrain} == pretrain  # pretraining keys kept as they were
    assert merged["probe/step"] == 2
    for key in ("probe/shapes_seg/miou", "probe/shapes_det/ap50", "probe_random/shapes_video/direction_top1"):
        assert key in merged

    from vjepa.evaluate import evaluate

    online = evaluate(tiny_run, probes="fast", encoder="online", threads=1)
    merged2 = json.loads((tiny_run / "metrics.json").read_text())
    assert (
        "probe_online/shapes_seg/miou" in online
        and merged2["probe/shapes_seg/miou"] == merged["probe/shapes_seg/miou"]
    )


def test_evaluate_baseline_only_adds_the_random_init_numbers_of_a_full_baseline(tiny_run):
    """baseline=only probes the encoder pretraining started from, alone: the same probe_random/... numbers as
    a full evaluation with baseline=true, merged without touching the run's own probe numbers."""
    from vjepa.evaluate import evaluate

    fast = ["tasks.shapes_det.epochs=1"]
    full = evaluate(
        tiny_run, probes="fast", baseline=True, threads=1, overrides=[f"probes.{o}" for o in fast]
    )
    before = json.loads((tiny_run / "metrics.json").read_text())
    trained = {k: v for k, v in before.items() if k.startswith("probe/")}
    for k in [k for k in before if k.startswith("probe_random/")]:
        del before[k]
    (tiny_run / "metrics.json").write_text(json.dumps(before))
    only = evaluate(
        tiny_run, probes="fast", baseline="only", threads=1, overrides=[f"probes.{o}" for o in fast]
    )
    random_keys = sorted(k for k in full if k.startswith("probe_random/") and not k.endswith("time_s"))
    assert random_keys and sorted(k for k in only if not k.endswith("time_s")) == random_keys
    assert {k: only[k] for k in random_keys} == {k: full[k] for k in random_keys}
    merged = json.loads((tiny_run / "metrics.json").read_text())
    assert {k: v for k, v in merged.items() if k.startswith("probe/")} == trained  # untouched
    with pytest.raises(ValueError, match="baseline must be true, false or only, got 'yes'"):
        evaluate(tiny_run, baseline="yes")


def test_evaluate_follows_the_probe_configs_baseline_unless_told(tiny_run, tmp_path):
    """Without baseline=..., evaluate does what the probe config says, as training does: probes.baseline=true
    adds the random-init numbers (it was ignored); baseline=false overrides it."""
    from vjepa.evaluate import evaluate

    fast = OmegaConf.load(CONF / "fast.yaml")
    fast.tasks = {"shapes_video_linear": fast.tasks.shapes_video_linear}  # one quick task
    OmegaConf.save(fast, tmp_path / "one.yaml")
    one = str(tmp_path / "one.yaml")
    plain = evaluate(tiny_run, probes=one, threads=1)  # baseline: false
    assert "probe/shapes_video_linear/frames" in plain and not any(
        k.startswith("probe_random/") for k in plain
    )
    said = evaluate(tiny_run, probes=one, threads=1, overrides=["probes.baseline=true"])
    assert any(k.startswith("probe_random/shapes_video_linear/") for k in said)
    told = evaluate(tiny_run, probes=one, threads=1, baseline=False, overrides=["probes.baseline=true"])
    assert not any(k.startswith("probe_random/") for k in told)


def test_evaluate_cli_rejects_unknown_keys(tiny_run):
    proc = subprocess.run(
        [sys.executable, "-m", "vjepa.evaluate", f"run_dir={tiny_run}", "encodr=online"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown key 'encodr'" in proc.stderr


def test_probes_group_composes_with_the_training_config(compose_cfg):
    from hydra.errors import ConfigCompositionException

    try:
        cfg = compose_cfg("probes=fast", "data.image.size=48")
    except ConfigCompositionException:  # train.yaml does not list the probes group (yet)
        cfg = compose_cfg("+probes=fast", "data.image.size=48")
    p = OmegaConf.to_container(cfg.probes, resolve=True)
    assert p["image_size"] == 48 and p["frames"] == cfg.data.video.frames
    assert set(p["tasks"]) == {"shapes_seg", "shapes_det", "shapes_video", "shapes_video_linear"}


def test_levels_probe_reads_the_four_levels(tmp_path):
    """`layers: levels` reads deep supervision's own level norms, or the same 4 blocks without it."""
    import torch
    from omegaconf import OmegaConf

    from vjepa.models import build_encoder
    from vjepa.models.vit import level_indices
    from vjepa.probes.features import encoder_layers

    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    x = torch.randn(2, 3, 32, 32)
    plain = build_encoder(cfg).eval()
    expect = plain(x, return_layers=level_indices(plain.depth, 4))
    assert all(torch.equal(a, b) for a, b in zip(encoder_layers(plain, x, "levels"), expect))
    cfg.deep_supervision = True
    deep = build_encoder(cfg).eval()
    with torch.no_grad():
        deep.level_norms[0].bias.fill_(3.0)  # the level's own norm is used, not the final one
    assert torch.allclose(encoder_layers(deep, x, "levels")[0].mean(-1), torch.full((2, 16), 3.0), atol=1e-5)


def test_levels_need_four_blocks_and_layers_are_checked_before_any_data(tmp_path):
    """An encoder too shallow for `levels`, or a block index it does not have, is refused by run_probes
    before a data set is built (the data root here does not exist), and by the config check."""
    import torch
    from omegaconf import OmegaConf

    from vjepa.models import build_encoder
    from vjepa.probes.features import encoder_layers

    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    cfg.depth = 3
    shallow = build_encoder(cfg).eval()
    with pytest.raises(
        ValueError, match=r"layers=levels reads 4 equally spaced blocks: the encoder has only 3"
    ):
        encoder_layers(shallow, torch.randn(1, 3, 32, 32), "levels")
    probes = {
        "tasks": {
            "a": {"kind": "seg", "data": {"name": "camvid"}, "layers": "levels"},
            "b": {"kind": "seg", "data": {"name": "camvid"}, "layers": [0, 3]},
            "c": {"kind": "seg", "data": {"name": "camvid"}, "layers": [-3, 2]},
        }
    }
    with pytest.raises(ValueError) as err:
        run_probes(shallow, probes, cfg, 0, tmp_path / "absent", "cpu")
    msg = str(err.value)
    assert "probes.tasks.a.layers=levels" in msg and "probes.tasks.b.layers=[0, 3]" in msg
    assert "tasks.c" not in msg


def test_config_check_names_probe_layers_beyond_the_depth(compose_cfg):
    from vjepa.config_check import ConfigError, check_config

    check_config(compose_cfg("probes=levels"))  # tiny: depth 6
    with pytest.raises(
        ConfigError, match=r"probes.tasks.camvid_linear_levels.layers=levels reads 4 .* only 3"
    ):
        check_config(compose_cfg("probes=levels", "model.depth=3"))
    with pytest.raises(
        ConfigError, match=r"probes.tasks.shapes_seg.layers=\[7\]: each must be a block index"
    ):
        check_config(compose_cfg("probes=fast", "probes.tasks.shapes_seg.layers=[7]"))
