"""The loaders on the real shared data (../shared/data): labelled arrays, image sources, determinism."""

import os
import pickle
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vjepa.data import IMAGE_SOURCES, MEAN, STD, VIDEO_SOURCES, build_train_loader, resolve_root
from vjepa.data.labelled import CIFAR10_CLASSES, load_camvid, load_cifar10, load_mnist, mnist_split

ROOT = resolve_root(None)
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(ROOT is None, reason="../shared/data not present beside the repository"),
]


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One CIFAR-10 decode per session: $VJEPA_CACHE if set, else a folder in pytest's session temp dir."""
    return os.environ.get("VJEPA_CACHE") or str(tmp_path_factory.getbasetemp() / "vjepa-cache")


def unnormalize(x):
    shape = (1, 3) + (1,) * (x.ndim - 2)
    return x * torch.tensor(STD).view(shape) + torch.tensor(MEAN).view(shape)


def test_camvid_arrays():
    d = load_camvid(ROOT)
    assert d["x_train"].shape == (367, 96, 128, 3) and d["x_train"].dtype == np.uint8
    assert d["y_train"].shape == (367, 96, 128) and d["y_train"].dtype == np.uint8
    assert d["x_val"].shape == (101, 96, 128, 3) and d["y_val"].shape == (101, 96, 128)
    assert len(d["classes"]) == 12 and d["classes"][11] == "Unlabelled"
    for y in (d["y_train"], d["y_val"]):
        values = set(np.unique(y).tolist())
        assert values <= set(range(12)) and 11 in values and len(values) >= 10


def test_cifar10_arrays_counts_order_and_cache(cache):
    x, y = load_cifar10(ROOT, "train", cache=cache)
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [5000] * 10
    assert x[:100].std() > 20  # real images, not blank
    xt, yt = load_cifar10(ROOT, "test", cache=cache)
    assert xt.shape == (10000, 32, 32, 3) and np.bincount(yt, minlength=10).tolist() == [1000] * 10
    assert len(CIFAR10_CLASSES) == 10

    t = time.perf_counter()
    xs, ys = load_cifar10(ROOT, "test", limit=30, cache=cache)
    assert time.perf_counter() - t < 1.0  # served from the cache
    assert np.bincount(ys, minlength=10).tolist() == [3] * 10 and ys[:10].tolist() == list(range(10))
    assert np.array_equal(xs, xt[:30]) and np.array_equal(ys, yt[:30])


def test_mnist_arrays():
    x, y = load_mnist(ROOT)
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert y.min() == 0 and y.max() == 9 and len(np.unique(y)) == 10
    (xtr, ytr), (xv, yv) = mnist_split(x, y, "train"), mnist_split(x, y, "val")
    assert len(xtr) == 4000 and len(xv) == 1000
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yv).tolist() == [100] * 10
    assert sorted(r.tobytes() for r in np.concatenate([xtr, xv])) == sorted(
        r.tobytes() for r in x
    )  # a partition


@pytest.mark.parametrize("name", ["cifar10", "camvid", "mnist"])
def test_array_image_sources(name, cache):
    cfg = OmegaConf.create({"name": name, "size": 48, "cache_dir": cache})
    src = IMAGE_SOURCES[name](cfg, 6, seed=3, root=ROOT)
    a, b, c = src[5], src[5], src[6]
    assert a.shape == (6, 3, 48, 48) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    x = unnormalize(a)
    assert x.min() > -1e-5 and x.max() < 1 + 1e-5 and x.flatten(1).std(1).min() > 0.02
    if name == "mnist":  # grey digits repeated over 3 channels
        assert torch.allclose(x[:, 0], x[:, 1], atol=1e-5) and torch.allclose(x[:, 0], x[:, 2], atol=1e-5)


def test_joint_loader_deterministic_across_workers_and_resume(cache):
    cfg = OmegaConf.create(
        {
            "mix": "joint",
            "image_fraction": 0.5,
            "image": {"name": "cifar10", "size": 32, "cache_dir": cache},
            "video": {"name": "clips", "size": 32, "frames": 4},
        }
    )
    batches = {}
    for workers in (0, 2):
        cfg.num_workers = workers
        batches[workers] = list(build_train_loader(cfg, 8, seed=1, start_step=0, steps=4))
    resumed = next(iter(build_train_loader(cfg, 8, seed=1, start_step=2, steps=4)))
    for b0, b2 in zip(batches[0], batches[2], strict=True):
        assert b0.keys() == {"image", "video", "skipped_video"} and b0["skipped_video"] == 0
        assert b0["image"].shape == (4, 3, 32, 32) and b0["video"].shape == (4, 3, 4, 32, 32)
        assert torch.equal(b0["image"], b2["image"]) and torch.equal(b0["video"], b2["video"])
    assert torch.equal(resumed["video"], batches[0][2]["video"]) and torch.equal(
        resumed["image"], batches[0][2]["image"]
    )
    assert not torch.equal(batches[0][0]["video"], batches[0][1]["video"])


def test_sources_pickle_light_for_spawned_workers(cache):
    """Spawned workers receive a pickled source: it must reload its data, not carry the arrays."""
    image = IMAGE_SOURCES["cifar10"](OmegaConf.create({"size": 16, "cache_dir": cache}), 4, 0, ROOT)
    video = VIDEO_SOURCES["clips"](OmegaConf.create({"size": 16, "frames": 2}), 2, 0, ROOT)
    video[0]  # fills this process's frame cache
    for src in (image, video):
        blob = pickle.dumps(src)
        assert len(blob) < 100_000
        a, b = src[1], pickle.loads(blob)[1]
        assert torch.equal(a["x"], b["x"]) if isinstance(a, dict) else torch.equal(a, b)
