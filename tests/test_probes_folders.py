"""Probes on data read from folders in the standard layouts (ImageFolder, ADE20K, NYU depth), streamed."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from tests.conftest import PROBE_MODEL as TINY_MODEL
from tests.conftest import TINY_TEST
from vjepa.data.common import DataFileError
from vjepa.probes import run_probes

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 220], [230, 220, 40]], dtype=np.float64)
CONF = Path(__file__).resolve().parents[1] / "vjepa" / "conf" / "probes"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder(probe_encoder):
    return probe_encoder


def _noisy(rgb: np.ndarray, rng) -> Image.Image:
    return Image.fromarray(np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8))


def _two_regions(rng, h=36, w=44):
    """Class map of two colour regions split at a random column, its image, and the two classes."""
    a, b = rng.choice(4, 2, replace=False)
    cut = rng.integers(8, w - 8)
    cls = np.where(np.arange(w)[None, :] < cut, a, b).repeat(h, 0)
    return cls, _noisy(COLOURS[cls], rng)


def write_imagefolder(root: Path, shuffled=False, n=(6, 3), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, k in zip(("train", "val"), n, strict=True):
        labels = np.repeat(np.arange(3), k)
        folders = rng.permutation(labels) if shuffled else labels
        for i, (c, f) in enumerate(zip(labels, folders, strict=True)):
            d = root / "imagenet" / split / f"n0{f}"
            d.mkdir(parents=True, exist_ok=True)
            _noisy(np.broadcast_to(COLOURS[c], (40, 48, 3)), rng).save(d / f"img{i}.JPEG", quality=95)
    return root


def write_ade20k(root: Path, shuffled=False, n=(12, 6), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, k in zip(("training", "validation"), n, strict=True):
        (root / "ade" / "images" / split).mkdir(parents=True)
        (root / "ade" / "annotations" / split).mkdir(parents=True)
        made = [_two_regions(rng) for _ in range(k)]
        masks = [made[j][0] for j in (rng.permutation(k) if shuffled else range(k))]
        for i, ((_, img), cls) in enumerate(zip(made, masks, strict=True)):
            ann = (cls + 1).astype(np.uint8)
            ann[:2] = 0  # an ignored border
            img.save(root / "ade" / "images" / split / f"ADE_{i:04d}.jpg", quality=95)
            Image.fromarray(ann).save(root / "ade" / "annotations" / split / f"ADE_{i:04d}.png")
    return root


def write_nyu(root: Path, shuffled=False, n=(12, 6), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, k in zip(("sync", "official_splits/test"), n, strict=True):
        d = root / "nyu" / split / "scene_0001"
        d.mkdir(parents=True)
        made = [_two_regions(rng) for _ in range(k)]
        maps = [made[j][0] for j in (rng.permutation(k) if shuffled else range(k))]
        for i, ((_, img), cls) in enumerate(zip(made, maps, strict=True)):
            mm = ((cls + 1) * 1500).astype(np.uint16)  # class c at (c + 1) * 1.5 m
            mm[-2:] = 0  # no measurement
            img.save(d / f"rgb_{i:05d}.jpg", quality=95)
            Image.fromarray(mm).save(d / f"sync_depth_{i:05d}.png")
    return root


TASKS = {
    "in_linear": {
        "kind": "classify",
        "head": "linear",
        "labels": ["label"],
        "data": {"name": "imagefolder", "size": None},
        "layers": [-1],
        "iters": 30,
        "wd": 1e-3,
    },
    "in_attentive": {
        "kind": "classify",
        "head": "attentive",
        "labels": ["label"],
        "data": {"name": "imagefolder", "size": None},
        "layers": [-1],
        "token_grid": 2,
        "heads": 2,
        "epochs": 30,
        "batch_size": 8,
        "lr": 1e-2,
        "wd": 0.0,
    },
    "ade_linear": {
        "kind": "seg",
        "data": {"name": "ade20k", "folder": "ade", "num_classes": 4, "size": None},
        "layers": [-1],
        "pixels_per_image": 32,
        "iters": 40,
        "wd": 1e-4,
    },
    "nyu_linear": {
        "kind": "depth",
        "data": {"name": "nyu_depth", "folder": "nyu", "size": None},
        "layers": [-1],
        "pixels_per_image": 32,
        "wd": 1e-3,
    },
}


def cfg(*names, workers=0, **data):
    tasks = {}
    for n in names:
        t = {**TASKS[n]}
        t["data"] = {**t["data"], **data}
        tasks[n] = t
    return {
        "image_size": 32,
        "video_size": 32,
        "frames": 4,
        "extract_batch": 4,
        "workers": workers,
        "missing_data": "skip",
        "bootstrap": 20,
        "tasks": tasks,
    }


# ---- end to end: real labels beat shuffled labels ------------------------------------------------------
def test_imagefolder_linear_and_attentive_beat_shuffled_labels(tmp_path, encoder):
    real = run_probes(
        encoder, cfg("in_linear", "in_attentive"), TINY_MODEL, 0, write_imagefolder(tmp_path / "a"), "cpu"
    )
    shuf = run_probes(
        encoder,
        cfg("in_linear", "in_attentive"),
        TINY_MODEL,
        0,
        write_imagefolder(tmp_path / "b", True),
        "cpu",
    )
    for task in ("in_linear", "in_attentive"):
        assert real[f"probe/{task}/top1"] >= 0.85, real
        assert real[f"probe/{task}/top1"] > shuf[f"probe/{task}/top1"] + 0.3, (real, shuf)
        assert real[f"probe/{task}/skipped"] == 0 and real[f"probe/{task}/frames"] == 0
        assert real[f"probe/{task}/top1/se"] >= 0


def test_ade20k_segmentation_beats_shuffled_masks(tmp_path, encoder):
    real = run_probes(encoder, cfg("ade_linear"), TINY_MODEL, 0, write_ade20k(tmp_path / "a"), "cpu")
    shuf = run_probes(encoder, cfg("ade_linear"), TINY_MODEL, 0, write_ade20k(tmp_path / "b", True), "cpu")
    assert real["probe/ade_linear/miou"] > 0.5, real
    assert real["probe/ade_linear/miou"] > shuf["probe/ade_linear/miou"] + 0.2, (real, shuf)
    assert {f"probe/ade_linear/iou/class{c}" for c in range(4)} <= set(real)


def test_nyu_depth_beats_shuffled_depth(tmp_path, encoder):
    real = run_probes(encoder, cfg("nyu_linear", workers=1), TINY_MODEL, 0, write_nyu(tmp_path / "a"), "cpu")
    shuf = run_probes(encoder, cfg("nyu_linear"), TINY_MODEL, 0, write_nyu(tmp_path / "b", True), "cpu")
    # depths are 1.5 .. 6 m: predicting the mean gives about 1.7 m
    assert real["probe/nyu_linear/rmse"] < 0.8 * shuf["probe/nyu_linear/rmse"], (real, shuf)
    assert real["probe/nyu_linear/rmse/se"] > 0


def test_the_dense_folder_probes_read_the_4_levels_as_the_paper_levels_config_runs_them(tmp_path):
    """probes=paper_levels's ADE20K and NYU twins (layers=levels) end to end on a 4-block encoder: real
    targets beat shuffled ones, as the last layer's do; NYU's twin is its paper.yaml task but for the layers."""
    from vjepa.probes import random_encoder

    model = OmegaConf.merge(TINY_MODEL, {"depth": 4})
    deep = random_encoder(model, 0, "cpu")
    twins = OmegaConf.load(CONF / "paper_levels.yaml").tasks
    nyu = OmegaConf.to_container(twins.nyu_linear_levels)
    assert nyu.pop("layers") == "levels"
    paper_nyu = OmegaConf.to_container(OmegaConf.load(CONF / "paper.yaml").tasks.nyu_linear)
    assert paper_nyu.pop("layers") == [-1] and nyu == paper_nyu

    def levels(name):
        c = cfg(name)
        c["tasks"] = {f"{name}_levels": {**c["tasks"][name], "layers": "levels"}}
        return c

    real = run_probes(deep, levels("ade_linear"), model, 0, write_ade20k(tmp_path / "a"), "cpu")
    shuf = run_probes(deep, levels("ade_linear"), model, 0, write_ade20k(tmp_path / "b", True), "cpu")
    assert real["probe/ade_linear_levels/miou"] > shuf["probe/ade_linear_levels/miou"] + 0.2, (real, shuf)
    real = run_probes(deep, levels("nyu_linear"), model, 0, write_nyu(tmp_path / "c"), "cpu")
    shuf = run_probes(deep, levels("nyu_linear"), model, 0, write_nyu(tmp_path / "d", True), "cpu")
    assert real["probe/nyu_linear_levels/rmse"] < 0.8 * shuf["probe/nyu_linear_levels/rmse"], (real, shuf)


def test_paper_config_reads_the_layouts(tmp_path, encoder):
    root = write_imagefolder(tmp_path)
    conf = OmegaConf.merge(
        {"data": {"image": {"size": 32}, "video": {"size": 32, "frames": 4}}},
        {"probes": OmegaConf.load(CONF / "paper.yaml")},
        OmegaConf.from_dotlist(
            ["probes.workers=0", "probes.bootstrap=0", "probes.tasks.imagenet_attentive.epochs=2"]
        ),
    ).probes
    r = run_probes(encoder, conf, TINY_MODEL, 0, root, "cpu")
    assert {"probe/imagenet_linear/top1", "probe/imagenet_attentive/top1"} <= set(r)
    assert not any(k.startswith(("probe/ade20k", "probe/nyu")) for k in r)  # absent folders: skipped


def test_the_bf16_extraction_runs_under_autocast_is_cached_apart_and_still_probes(
    tmp_path, encoder, monkeypatch
):
    """CUDA's extraction arithmetic (bf16 autocast, ``feature_arithmetic``) run on CPU, which autocasts to
    bf16 as well: every encoder forward runs under it, its features are cached under a key of their own
    beside the fp32 ones, differ from them by bf16 rounding only, and the probe scores as in fp32."""
    import vjepa.probes.features as features
    import vjepa.probes.stream as stream

    root, cache = write_imagefolder(tmp_path / "d"), tmp_path / "cache"
    fp32 = run_probes(encoder, cfg("in_linear"), TINY_MODEL, 0, root, "cpu", cache_dir=cache, cache_tag="t")
    (fp32_file,) = cache.glob("t-*.pt")
    autocast = []

    def spy(enc, x, layers):
        autocast.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return features.encoder_layers(enc, x, layers)

    for module in (features, stream):
        monkeypatch.setattr(module, "feature_arithmetic", lambda device: "bf16")
    monkeypatch.setattr(stream, "encoder_layers", spy)
    bf16 = run_probes(encoder, cfg("in_linear"), TINY_MODEL, 0, root, "cpu", cache_dir=cache, cache_tag="t")
    assert autocast and set(autocast) == {(True, torch.bfloat16)}
    (bf16_file,) = set(cache.glob("t-*.pt")) - {fp32_file}
    a, b = (torch.load(f, weights_only=False) for f in (fp32_file, bf16_file))
    fa, fb = (torch.cat([x["train"].float().flatten(), x["val"].float().flatten()]) for x in (a, b))
    assert not torch.equal(fa, fb) and torch.nn.functional.cosine_similarity(fa, fb, dim=0) > 0.999
    assert bf16["probe/in_linear/top1"] >= 0.85 and fp32["probe/in_linear/top1"] >= 0.85, (fp32, bf16)


# ---- feature cache -------------------------------------------------------------------------------------
def test_second_probe_reads_cached_features(tmp_path, encoder, monkeypatch):
    import vjepa.probes.runner as runner

    root = write_ade20k(tmp_path / "d")
    c = cfg("ade_linear")
    a = run_probes(
        encoder, c, TINY_MODEL, 0, root, "cpu", cache_dir=tmp_path / "cache", cache_tag="probe-step1"
    )
    assert len(list((tmp_path / "cache").glob("probe-step1-*.pt"))) == 1

    def no_extraction(*args, **kwargs):
        raise AssertionError("features extracted again")

    monkeypatch.setattr(runner, "extract_folder", no_extraction)
    c["tasks"]["ade_linear"]["iters"] = 20  # another head on the same features
    b = run_probes(
        encoder, c, TINY_MODEL, 0, root, "cpu", cache_dir=tmp_path / "cache", cache_tag="probe-step1"
    )
    assert "probe/ade_linear/miou" in b and b["probe/ade_linear/miou"] > 0.3
    c["tasks"]["ade_linear"]["iters"] = 40
    again = run_probes(
        encoder, c, TINY_MODEL, 0, root, "cpu", cache_dir=tmp_path / "cache", cache_tag="probe-step1"
    )
    assert again["probe/ade_linear/miou"] == a["probe/ade_linear/miou"]
    # a file added to the data set is a new key: extracted again
    img = root / "ade" / "images" / "validation"
    (img / "ADE_0000.jpg").rename(img / "ADE_9999.jpg")
    ann = root / "ade" / "annotations" / "validation"
    (ann / "ADE_0000.png").rename(ann / "ADE_9999.png")
    with pytest.raises(AssertionError, match="extracted again"):
        run_probes(
            encoder, c, TINY_MODEL, 0, root, "cpu", cache_dir=tmp_path / "cache", cache_tag="probe-step1"
        )


# ---- bad input -----------------------------------------------------------------------------------------
def _garble(path: Path) -> Path:
    path.write_bytes(b"not an image at all")
    return path


def _break(kind: str, root: Path) -> tuple[str, str]:
    """Damage a written data set; return (the task to run, the path the error must name)."""
    if kind == "missing_split":
        val = root / "imagenet" / "val"
        for p in sorted(val.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        val.rmdir()
        return "in_linear", str(val)
    if kind == "unreadable_image":
        return "in_linear", str(_garble(root / "imagenet" / "train" / "n01" / "img7.JPEG"))
    if kind == "class_not_in_train":
        extra = root / "imagenet" / "val" / "n09"
        extra.mkdir()
        return "in_linear", str(extra)
    if kind == "label_outside_classes":
        p = root / "ade" / "annotations" / "training" / "ADE_0003.png"
        a = np.asarray(Image.open(p)).copy()
        a[5, 5] = 9  # num_classes 4: values 0..4
        Image.fromarray(a).save(p)
        return "ade_linear", str(p)
    if kind == "mask_size":
        p = root / "ade" / "annotations" / "validation" / "ADE_0002.png"
        Image.open(p).resize((20, 20)).save(p)
        return "ade_linear", str(p)
    if kind == "depth_size":
        p = root / "nyu" / "sync" / "scene_0001" / "sync_depth_00004.png"
        Image.open(p).resize((20, 20)).save(p)
        return "nyu_linear", str(p)
    if kind == "missing_mask":
        p = root / "ade" / "annotations" / "training" / "ADE_0001.png"
        p.unlink()
        return "ade_linear", str(p)
    raise ValueError(kind)


BAD = [
    "missing_split",
    "unreadable_image",
    "class_not_in_train",
    "label_outside_classes",
    "mask_size",
    "depth_size",
    "missing_mask",
]


def _all_formats(root: Path) -> Path:
    write_imagefolder(root)
    write_ade20k(root)
    write_nyu(root)
    return root


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_names_the_file(tmp_path, encoder, kind):
    root = _all_formats(tmp_path / "d")
    task, path = _break(kind, root)
    with pytest.raises(DataFileError, match=path.replace("\\", "\\\\").replace(".", r"\.")):
        run_probes(encoder, cfg(task), TINY_MODEL, 0, root, "cpu")


@pytest.mark.parametrize("kind", ["unreadable_image", "label_outside_classes", "mask_size", "depth_size"])
def test_on_error_skip_counts_and_skips(tmp_path, encoder, kind):
    root = _all_formats(tmp_path / "d")
    task, _ = _break(kind, root)
    r = run_probes(encoder, cfg(task, on_error="skip"), TINY_MODEL, 0, root, "cpu")
    assert r[f"probe/{task}/skipped"] == 1


def test_an_error_keeps_what_was_written(tmp_path, encoder):
    """A bad file in a later task raises without touching the cached features of the tasks before it."""
    root = _all_formats(tmp_path / "d")
    _, path = _break("mask_size", root)
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="ADE_0002"):
        run_probes(encoder, cfg("nyu_linear", "ade_linear"), TINY_MODEL, 0, root, "cpu", cache_dir=cache)
    assert len(list(cache.glob("*.pt"))) == 1  # nyu's features, and nothing half-written for ade20k


def test_workers_report_the_bad_file(tmp_path, encoder):
    root = write_imagefolder(tmp_path / "d")
    _, path = _break("unreadable_image", root)
    with pytest.raises(Exception, match="img7.JPEG"):
        run_probes(encoder, cfg("in_linear", workers=1), TINY_MODEL, 0, root, "cpu")


def test_config_check_reads_the_paper_config(compose_cfg):
    from vjepa.config_check import ConfigError, check_config

    check_config(compose_cfg("probes=paper"))
    with pytest.raises(
        ConfigError, match=r"probes.tasks.ade20k_linear.kind='det': ade20k data is probed by kind seg"
    ):
        check_config(compose_cfg("probes=paper", "probes.tasks.ade20k_linear.kind=det"))
    with pytest.raises(ConfigError, match=r"probes.tasks.nyu_linear.data.on_error"):
        check_config(compose_cfg("probes=paper", "probes.tasks.nyu_linear.data.on_error=ignore"))


@pytest.fixture
def tiny_run(compose_cfg, tmp_path):
    """A finished 2-step run without end-of-run probes (as tests/test_probes.py's)."""
    from omegaconf import open_dict

    from vjepa.trainer import train

    cfg = compose_cfg(*TINY_TEST, "steps=2", run_dir=tmp_path / "run")
    with open_dict(cfg):
        cfg.probes = {"tasks": {}}
    train(cfg)
    return Path(cfg.run_dir)


def test_evaluate_probes_a_saved_run_on_folder_data(tiny_run, tmp_path):
    import json

    from vjepa.evaluate import evaluate

    root = write_imagefolder(tmp_path / "data")
    opts = ["probes.workers=0", "probes.bootstrap=0", "probes.tasks.imagenet_attentive.epochs=2"]
    r = evaluate(tiny_run, probes="paper", data_root=root, cache=True, threads=1, overrides=opts)
    merged = json.loads((tiny_run / "metrics.json").read_text())
    assert merged["probe/imagenet_linear/top1"] == r["probe/imagenet_linear/top1"]
    assert len(list((tiny_run / "probe_cache").glob("probe-step2-*.pt"))) == 2  # token_grid 1 and 4


# ---- bounded memory: one batch of decoded images at a time --------------------------------------------
def test_extraction_holds_one_batch_of_images_and_keeps_pooled_float16(tmp_path, encoder):
    import weakref

    from vjepa.probes import folders
    from vjepa.probes.stream import extract_folder

    data = folders.index({"name": "imagefolder", "size": [32, 32]}, write_imagefolder(tmp_path, n=(10, 4)))
    alive, most = set(), [0]

    class Counting(folders.FolderSplit):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            key = object()
            alive.add(key)
            weakref.finalize(item["image"], alive.discard, key)
            most[0] = max(most[0], len(alive))
            return item

    data.split = lambda name: Counting(data.spec, data.samples[name], data.size, name)
    f = extract_folder(encoder, data, [-1], {"token_grid": 2}, 4, 0, "cpu")
    assert most[0] <= 4  # never more decoded images than one batch
    d = TINY_MODEL.embed_dim
    assert f["train"].shape == (30, 4, d) and f["val"].shape == (12, 4, d)
    assert f["train"].dtype == f["val"].dtype == torch.float16


def test_the_linear_heads_pooled_token_is_kept_in_float32_and_freed_memory_is_handed_back(
    tmp_path, encoder, monkeypatch
):
    """The linear and k-NN heads' pooled token: the float32 mean of the float16 tokens (as those heads pool
    the in-memory sets'), one per image; freed heap memory is handed back every TRIM_EVERY batches."""
    from vjepa.probes import folders, stream

    trims = []
    monkeypatch.setattr(stream, "TRIM_EVERY", 2)
    monkeypatch.setattr(stream, "release_freed_memory", lambda: trims.append(1))
    data = folders.index({"name": "imagefolder", "size": [32, 32]}, write_imagefolder(tmp_path, n=(10, 4)))
    linear = stream.storage({"kind": "classify", "head": "linear"}, {"name": "imagefolder"})
    f = stream.extract_folder(encoder, data, [-1], linear, 4, 0, "cpu")
    d = TINY_MODEL.embed_dim
    assert f["train"].shape == (30, 1, d) and f["train"].dtype == f["val"].dtype == torch.float32
    assert len(trims) == 8 // 2 + 3 // 2  # 30 train images in 8 batches of 4, 12 val in 3


def test_release_freed_memory_runs_where_glibc_is_and_is_a_no_op_elsewhere(monkeypatch):
    from vjepa.probes import stream

    stream.release_freed_memory()  # glibc here: malloc_trim(0); must not raise
    monkeypatch.setattr(stream, "_LIBC", False)  # no glibc (macOS, musl): nothing to call
    stream.release_freed_memory()
    assert stream.bound_the_heap() is False


HEAP_PROBE = """
import ctypes, sys
from vjepa.probes import stream

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(8 << 20))  # a mapped block freed: glibc's dynamic threshold rises to 8 MiB
if sys.argv[1] == "bound":
    assert stream.bound_the_heap()
before = libc.mallinfo2().hblks
block = libc.malloc(5 << 20)  # a batch-sized block: mapped on its own, or carved from the heap
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_streamed_pass_keeps_batch_sized_blocks_off_the_heap():
    """After a large block is freed, glibc serves blocks up to its size from the heap, whose fragments
    ``malloc_trim`` cannot return (the peak then grows with the folder); ``bound_the_heap`` (called by every
    streamed pass) keeps blocks of ``MMAP_THRESHOLD`` and more mapped on their own, returned when freed."""
    import subprocess

    from vjepa.probes import stream

    if not stream._libc() or not hasattr(stream._LIBC, "mallinfo2"):
        pytest.skip("not glibc >= 2.33")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    mapped = {
        how: subprocess.run(
            [sys.executable, "-c", HEAP_PROBE, how], capture_output=True, text=True, check=True, env=env
        ).stdout.split()[-1]
        for how in ("default", "bound")
    }
    assert mapped == {"default": "0", "bound": "1"}
