"""Moving MNIST: labels match content (digit identity, direction of the centroid motion), determinism."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from vjepa.data import VIDEO_SOURCES, resolve_root
from vjepa.data.labelled import load_mnist, mnist_split
from vjepa.data.moving_mnist import generate_moving_mnist, moving_mnist_dataset

ROOT = resolve_root(None)
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(ROOT is None, reason="../shared/data not present beside the repository"),
]


@pytest.fixture(scope="module")
def digits():
    return mnist_split(*load_mnist(ROOT), "val")


def test_direction_label_matches_centroid_motion(digits):
    x, y = digits
    out = generate_moving_mnist(x, y, 64, 8, 64, torch.Generator().manual_seed(0))
    video = out["video"]
    assert video.shape == (64, 3, 8, 64, 64) and video.dtype == torch.float32
    assert video.min() >= 0 and video.max() <= 1 and (video.flatten(2).amax(2) > 0.3).all()
    mass = video.sum(1)  # [n, T, S, S]
    coords = torch.arange(64, dtype=torch.float32) + 0.5
    cx = (mass.sum(2) * coords).sum(-1) / mass.sum((2, 3))
    cy = (mass.sum(3) * coords).sum(-1) / mass.sum((2, 3))
    dx, dy_up = cx[:, -1] - cx[:, 0], -(cy[:, -1] - cy[:, 0])
    assert (torch.hypot(dx, dy_up) > 0.2 * 64).all()  # travels 25-50 % of the frame
    k = torch.round(torch.atan2(dy_up, dx) / (math.pi / 4)).long() % 8
    assert torch.equal(k, out["direction"]) and len(set(out["direction"].tolist())) == 8
    assert torch.equal(out["digit"], torch.as_tensor(y)[out["index"]])


def test_digit_label_matches_pixels(digits):
    x, y = digits
    out = generate_moving_mnist(x, y, 16, 4, 28, torch.Generator().manual_seed(1), index=torch.arange(16))
    assert out["digit"].tolist() == y[:16].tolist() and out["index"].tolist() == list(range(16))
    same = generate_moving_mnist(x, y, 16, 4, 28, torch.Generator().manual_seed(1), index=torch.arange(16))
    assert torch.equal(out["video"], same["video"])
    other = generate_moving_mnist(x, y, 16, 4, 28, torch.Generator().manual_seed(2), index=torch.arange(16))
    assert not torch.equal(out["video"], other["video"])


def test_fixed_dataset_and_batch_source():
    d = moving_mnist_dataset(ROOT, "val", 300, 4, 32, seed=0)
    assert d["video"].shape == (300, 3, 4, 32, 32) and d["video"].dtype == torch.uint8
    assert d["digit"].shape == d["direction"].shape == (300,) and set(d["digit"].tolist()) == set(range(10))
    assert torch.equal(d["video"], moving_mnist_dataset(ROOT, "val", 300, 4, 32, seed=0)["video"])

    src = VIDEO_SOURCES["moving_mnist"](
        OmegaConf.create({"name": "moving_mnist", "size": 32, "frames": 4}), 8, 0, ROOT
    )
    a = src[3]
    assert a.shape == (8, 3, 4, 32, 32) and torch.equal(a, src[3]) and not torch.equal(a, src[4])
