"""Image batch sources: CIFAR-10, CamVid and MNIST (in-memory arrays) and a folder of image files.

Item ``step`` is the batch for that step: normalised float [B, 3, size, size] (``image_folder``: a dict
``{"x": batch, "skipped": files skipped for it}``). Samples follow ``EpochOrder``; crops, flips and
jitter come from ``step_generator(seed, step, STREAM)``.

Keys (``data.image.*``), read by every factory here:
    size          output side in px
    crop_scale    [lo, hi] area fraction of the random resized crop (default [0.3, 1.0]; mnist [0.6, 1.0])
    crop_ratio    [lo, hi] aspect ratio of the crop (default [3/4, 4/3])
    flip          random horizontal flip (default true; mnist false)
    color_jitter  j: brightness, contrast, saturation factors in [1 - j, 1 + j] (default 0.2)
Per source: ``cifar10`` split (train|test), cache_dir; ``camvid`` split (train|val); ``mnist`` split
(train = first 80 % of each digit | val = the rest | all), digits as 3 equal channels; ``image_folder``
path (class sub-folders, searched recursively, or a flat folder), on_error (raise|skip), max_skips (16).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from vjepa import schema
from vjepa.data import BatchSource, normalize, step_generator
from vjepa.data.common import BadFiles, DataNotFoundError, EpochOrder, check_on_error, load_batch, user_path
from vjepa.data.labelled import cifar10_arrays, load_camvid, load_mnist, mnist_split
from vjepa.data.transforms import Augment

STREAM, PERM_STREAM = 3, 53  # step_generator streams: distinct from the other sources' and below 101
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _hwc(img) -> torch.Tensor:
    """uint8 [H, W] or [H, W, 3] array -> uint8 tensor [H, W, 3]."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8))
    return t[..., None].expand(-1, -1, 3).contiguous() if t.ndim == 2 else t


class ArrayImageBatches(BatchSource):
    """Batches from a uint8 array [N, H, W(, 3)] returned by the picklable ``load()``."""

    def __init__(self, load, aug: Augment, batch_size: int, seed: int):
        self.load, self.aug, self.batch_size, self.seed = load, aug, batch_size, seed
        self._x = load()
        self.order = EpochOrder(len(self._x), seed, PERM_STREAM)

    def __getstate__(self):  # spawned workers reload rather than receive a pickled copy
        return {**self.__dict__, "_x": None}

    def batch(self, step: int, rows: range) -> torch.Tensor:
        if self._x is None:
            self._x = self.load()
        params = self.aug.rows(self.aug.draw(step_generator(self.seed, step, STREAM), self.batch_size), rows)
        pos = self.order.positions(step, self.batch_size, rows)
        x = torch.stack(
            [self.aug.crop(_hwc(self._x[self.order.index(p)]), params, j) for j, p in enumerate(pos)]
        )
        return normalize(self.aug.jitter(x, params))


def list_images(path: Path) -> tuple[list[str], list[int], list[str]]:
    """(files, labels, classes): class sub-folders (searched recursively) if any hold images, else the
    images directly in ``path`` with label -1 and no classes. Sorted, so the order is reproducible."""

    def images_under(folder: Path) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTS)]
        return found

    classes, files, labels = [], [], []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        found = images_under(sub)
        if found:
            labels += [len(classes)] * len(found)
            classes.append(sub.name)
            files += found
    if not files:
        files = [
            str(p) for p in sorted(path.iterdir()) if p.is_file() and p.name.lower().endswith(IMAGE_EXTS)
        ]
        labels = [-1] * len(files)
    return files, labels, classes


def read_image(path: str) -> torch.Tensor:
    """uint8 [H, W, 3]; any decoding failure propagates (``BadFiles`` turns it into ``DataFileError``).
    EXIF orientation is applied (upright as viewers show it: a phone's portrait photo is stored sideways).
    16-bit greyscale (PNG, TIFF, PGM) is scaled to 8 bits (PIL's own conversion clips it at 255, a nearly
    white image); 32-bit integer and float images, whose range a file does not state, are a ValueError."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I;16") or img.mode == "I":
            grey = np.asarray(img, dtype=np.int64)
            if grey.size and (grey.min() < 0 or grey.max() > 65535):
                raise ValueError(
                    f"{path}: a 32-bit integer image (mode {img.mode}); convert it to 8 or 16 bits"
                )
            grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)  # 65535 -> 255, rounded
            return _hwc(grey)
        if img.mode == "F":
            raise ValueError(f"{path}: a floating-point image (mode F); convert it to 8 or 16 bits")
        return _hwc(np.asarray(img.convert("RGB")))


class ImageFolderBatches(BatchSource):
    def __init__(
        self, files: list[str], aug: Augment, batch_size: int, seed: int, on_error: str, max_skips: int
    ):
        self.files, self.aug, self.batch_size, self.seed = files, aug, batch_size, seed
        self.on_error, self.max_skips = on_error, max_skips
        self.order = EpochOrder(len(files), seed, PERM_STREAM)
        self.bad = BadFiles()

    def batch(self, step: int, rows: range) -> dict:
        params = self.aug.rows(self.aug.draw(step_generator(self.seed, step, STREAM), self.batch_size), rows)

        def load(index: int, j: int) -> torch.Tensor:
            path = self.files[index]
            return self.aug.crop(self.bad.call(path, "image", partial(read_image, path)), params, j)

        pos = self.order.positions(step, self.batch_size, rows)
        xs, skipped = load_batch(self.order, pos, load, self.on_error, self.max_skips, "data.image.on_error")
        return {"x": normalize(self.aug.jitter(torch.stack(xs), params)), "skipped": skipped}


def _cifar10(root, split, cache):
    return cifar10_arrays(root, split, cache)[0]


def _camvid(root, split):
    if split not in ("train", "val"):
        raise ValueError(f"data.image.split for camvid must be 'train' or 'val', got {split!r}")
    return load_camvid(root)[f"x_{split}"]


def _mnist(root, split):
    return mnist_split(*load_mnist(root), split)[0]


def cifar10(cfg, batch_size, seed, root):
    load = partial(_cifar10, root, schema.leaf(cfg, "data.image.split"), cfg.get("cache_dir"))
    return ArrayImageBatches(load, Augment.from_cfg(cfg, color_jitter=0.2), batch_size, seed)


def camvid(cfg, batch_size, seed, root):
    load = partial(_camvid, root, schema.leaf(cfg, "data.image.split"))
    return ArrayImageBatches(load, Augment.from_cfg(cfg, color_jitter=0.2), batch_size, seed)


def mnist(cfg, batch_size, seed, root):
    load = partial(_mnist, root, schema.leaf(cfg, "data.image.split"))
    aug = Augment.from_cfg(cfg, crop_scale=(0.6, 1.0), flip=False, color_jitter=0.2)
    return ArrayImageBatches(load, aug, batch_size, seed)


def image_folder(cfg, batch_size, seed, root):
    path = user_path(cfg.get("path"), root, "data.image.path")
    files = list_images(path)[0] if path.is_dir() else []
    if not files:
        exts = ", ".join(IMAGE_EXTS)
        raise DataNotFoundError(f"data.image.path={path} holds no images ({exts}); set data.image.path=...")
    on_error = check_on_error(schema.leaf(cfg, "data.image.on_error"), "data.image.on_error")
    aug = Augment.from_cfg(cfg, color_jitter=0.2)
    return ImageFolderBatches(
        files, aug, batch_size, seed, on_error, int(schema.leaf(cfg, "data.image.max_skips"))
    )
