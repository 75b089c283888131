"""Labelled train / val sets for probes, built from a data spec (the ``data`` node of a probe's config).

``resolve_spec(cfg, defaults)`` fills the spec's defaults into a plain dict (used as the cache key);
``build(spec, root)`` returns a ``LabelledSet``: inputs as uint8 [N, 3, H, W] or [N, 3, T, H, W], labels
as long tensors, ``size`` = the (H, W) the encoder sees. Sources (``name``):

    camvid         CamVid train (367) / val (101), label ``seg`` [N, 96, 128]: 11 classes, void -> -1
    shapes         generated multi-object images (``vjepa.data.synthetic``): ``seg`` (0 background,
                   1..5 shapes) and ``instances`` / ``instance_classes`` (boxes follow from these)
    cifar10        CIFAR-10 train (first n_train, class-balanced) / test (first n_val), ``label``
    moving_mnist   moving MNIST clips (train digits / val digits): ``digit``, ``direction``
    moving_shapes  generated moving-shape clips: ``shape``, ``direction``

Generated sets depend only on the spec's ``seed`` (not on the pretraining seed), drawn from
``step_generator`` streams that no pretraining source uses, so every run is scored on the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vjepa.data import step_generator
from vjepa.data.synthetic import NUM_DIRECTIONS, SHAPES, generate_moving_shapes, generate_shapes
from vjepa.probes.modality import VIDEO_DATA

CHUNK = 256
TRAIN_STREAM, VAL_STREAM = 71, 72
IGNORE = -1
DIRECTIONS = tuple(f"{45 * k}deg" for k in range(NUM_DIRECTIONS))
DIGITS = tuple(str(d) for d in range(10))


@dataclass
class LabelledSet:
    x_train: torch.Tensor
    x_val: torch.Tensor
    y_train: dict[str, torch.Tensor]
    y_val: dict[str, torch.Tensor]
    classes: dict[str, tuple[str, ...]]  # label name -> class names
    size: tuple[int, int]


def _round_to(v: float, m: int) -> int:
    return max(m, int(round(v / m)) * m)


def resolve_spec(cfg: dict, defaults: dict) -> dict:
    """Plain dict with every field set; ``size: null`` -> the run's size (CamVid: H = the run's size and
    W = 4/3 H rounded to the patch)."""
    spec = dict(cfg)
    name = spec["name"]
    video = name in VIDEO_DATA
    side = int(defaults["video_size"] if video else defaults["image_size"])
    size = spec.get("size")
    if size is None:
        size = [side, _round_to(side * 4 / 3, defaults["patch_size"])] if name == "camvid" else [side, side]
    elif isinstance(size, int):
        size = [size, size]
    spec["size"] = [int(s) for s in size]
    if video and spec.get("frames") is None:
        spec["frames"] = int(defaults["frames"])
    if name in ("shapes", "moving_shapes", "moving_mnist"):
        spec.setdefault("seed", 0)
    return spec


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round_().to(torch.uint8)


def _generate(fn, n: int, g: torch.Generator, keys) -> dict:
    parts = [fn(min(CHUNK, n - i), g) for i in range(0, n, CHUNK)]
    return {k: torch.cat([p[k] for p in parts]) for k in keys}


def _shapes(spec: dict) -> LabelledSet:
    h, w = spec["size"]
    if h != w:
        raise ValueError(f"shapes probe data are square: got size={spec['size']}")
    m = int(spec.get("max_objects", 4))

    def split(n, stream):
        g = step_generator(spec["seed"], 0, stream)
        d = _generate(
            lambda k, g: generate_shapes(k, h, g, m), n, g, ("image", "seg", "instances", "classes")
        )
        return _uint8(d["image"]), {
            "seg": d["seg"],
            "instances": d["instances"],
            "instance_classes": d["classes"],
        }

    (xt, yt), (xv, yv) = split(spec["n_train"], TRAIN_STREAM), split(spec["n_val"], VAL_STREAM)
    classes = {"seg": ("background",) + SHAPES, "instance_classes": SHAPES}
    return LabelledSet(xt, xv, yt, yv, classes, (h, w))


def _moving_shapes(spec: dict) -> LabelledSet:
    h, w = spec["size"]

    def split(n, stream):
        g = step_generator(spec["seed"], 0, stream)
        d = _generate(
            lambda k, g: generate_moving_shapes(k, spec["frames"], h, g),
            n,
            g,
            ("video", "shape", "direction"),
        )
        return _uint8(d["video"]), {"shape": d["shape"], "direction": d["direction"]}

    (xt, yt), (xv, yv) = split(spec["n_train"], TRAIN_STREAM), split(spec["n_val"], VAL_STREAM)
    return LabelledSet(xt, xv, yt, yv, {"shape": SHAPES, "direction": DIRECTIONS}, (h, w))


def _moving_mnist(spec: dict, root) -> LabelledSet:
    from vjepa.data.moving_mnist import moving_mnist_dataset

    h, w = spec["size"]
    args = (spec["frames"], h)
    tr = moving_mnist_dataset(root, "train", spec["n_train"], *args, seed=spec["seed"])
    va = moving_mnist_dataset(root, "val", spec["n_val"], *args, seed=spec["seed"] + 1)
    labels = ("digit", "direction")
    return LabelledSet(
        tr["video"],
        va["video"],
        {k: tr[k] for k in labels},
        {k: va[k] for k in labels},
        {"digit": DIGITS, "direction": DIRECTIONS},
        (h, w),
    )


def _camvid(spec: dict, root) -> LabelledSet:
    from vjepa.data.labelled import CAMVID_VOID, load_camvid

    d = load_camvid(root)

    def y(a):
        t = torch.from_numpy(np.asarray(a)).long()
        return t.masked_fill(t == CAMVID_VOID, IGNORE)

    def x(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()

    classes = tuple(d["classes"][:CAMVID_VOID])
    return LabelledSet(
        x(d["x_train"]),
        x(d["x_val"]),
        {"seg": y(d["y_train"])},
        {"seg": y(d["y_val"])},
        {"seg": classes},
        tuple(spec["size"]),
    )


def _cifar10(spec: dict, root) -> LabelledSet:
    from vjepa.data.labelled import CIFAR10_CLASSES, load_cifar10

    def split(name, n):
        x, y = load_cifar10(root, name, n)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), {"label": torch.from_numpy(y).long()}

    (xt, yt), (xv, yv) = split("train", spec["n_train"]), split("test", spec["n_val"])
    return LabelledSet(xt, xv, yt, yv, {"label": tuple(CIFAR10_CLASSES)}, tuple(spec["size"]))


def build(spec: dict, root) -> LabelledSet:
    name = spec["name"]
    if name == "shapes":
        return _shapes(spec)
    if name == "moving_shapes":
        return _moving_shapes(spec)
    if name == "moving_mnist":
        return _moving_mnist(spec, root)
    if name == "camvid":
        return _camvid(spec, root)
    if name == "cifar10":
        return _cifar10(spec, root)
    raise ValueError(
        f"unknown probe data {name!r}: one of shapes, moving_shapes, moving_mnist, camvid, cifar10"
    )
