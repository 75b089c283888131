"""Fixed labelled arrays from the shared data root, for probes and for the image batch sources.

``load_camvid(root)``: dict ``x_train`` uint8 [367, 96, 128, 3], ``y_train`` uint8 [367, 96, 128] (0..10
classes, 11 = void, to ignore), ``x_val``, ``y_val`` (101 images), ``classes`` (12 names, void last).
``load_cifar10(root, split, limit)``: uint8 [N, 32, 32, 3] and int64 labels 0..9 (``CIFAR10_CLASSES``), in a
fixed class-balanced order (class 0, 1, ..., 9, class 0, ...), so the first ``limit`` are balanced. The JPEG
tarball is decoded once (~7 s) into ``cache_dir()`` (``$VJEPA_CACHE``, else ``~/.cache/vjepa``); later
loads read the cached .npy files (well under a second).
``load_mnist(root)``: uint8 [5000, 28, 28] and int64 labels 0..9; ``mnist_split`` takes the first 80 % of
each digit class as ``train`` (4000 here) and the other 20 % as ``val`` (1000).
A missing root or file raises ``DataNotFoundError`` naming ``data.root``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from vjepa.data.common import DataFileError, cache_dir, require_path

CAMVID_FILE = "camvid/camvid_128x96_trainval.npz"
CIFAR10_FILE = "cifar10/cifar10_jpeg.tar.xz"
MNIST_FILE = "mnist/mnist_5k.csv.gz"
CAMVID_VOID = 11
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_TRAIN_FRACTION = 0.8
CACHE_VERSION = 1


def load_camvid(root) -> dict:
    path = require_path(root, CAMVID_FILE, "CamVid")
    try:
        with np.load(path) as d:
            out = {k: d[k] for k in ("x_train", "y_train", "x_val", "y_val")}
            out["classes"] = [str(c) for c in d["classes"]]
    except Exception as exc:
        raise DataFileError(f"cannot read CamVid file {path}: {type(exc).__name__}: {exc}") from None
    return out


def load_mnist(root) -> tuple[np.ndarray, np.ndarray]:
    path = require_path(root, MNIST_FILE, "MNIST")
    try:
        with gzip.open(path, "rb") as f:
            rows = np.loadtxt(io.BytesIO(f.read()), delimiter=",", dtype=np.int64)
    except Exception as exc:
        raise DataFileError(f"cannot read MNIST file {path}: {type(exc).__name__}: {exc}") from None
    if rows.ndim != 2 or rows.shape[1] != 785:
        raise DataFileError(f"MNIST file {path}: expected rows of 784 pixels + label, got shape {rows.shape}")
    return rows[:, :784].astype(np.uint8).reshape(-1, 28, 28), rows[:, 784]


def mnist_split(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``train``: the first 80 % of each digit class (in file order), ``val``: the rest, ``all``: all.

    The shared file is sorted by label, so a split by row ranges would hold out whole classes."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"MNIST split must be one of ('train', 'val', 'all'), got {split!r}")
    if split == "all":
        return x, y
    rank = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        rank[y == c] = np.arange((y == c).sum())
    train = rank < np.round(MNIST_TRAIN_FRACTION * np.bincount(y)[y])
    keep = train if split == "train" else ~train
    return x[keep], y[keep]


def load_cifar10(
    root, split: str = "train", limit: int | None = None, cache=None
) -> tuple[np.ndarray, np.ndarray]:
    x, y = cifar10_arrays(root, split, cache)
    n = len(y) if limit is None else min(int(limit), len(y))
    return np.array(x[:n]), np.array(y[:n])


def cifar10_arrays(root, split: str = "train", cache=None) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped cached arrays (read-only) of a split, decoding the tarball on first use."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
    folder = cifar10_cache(root, cache)
    return np.load(folder / f"{split}_x.npy", mmap_mode="r"), np.load(
        folder / f"{split}_y.npy", mmap_mode="r"
    )


def cifar10_cache(root, cache=None) -> Path:
    """The cache folder for this tarball, created if absent. Keyed by the tarball's content (an 18 MB file,
    hashed in well under a second), not its path and mtime: a copy, a clone's own data root or a re-synced
    share then reuses one 180 MB folder instead of decoding into a new one each time."""
    tar = require_path(root, CIFAR10_FILE, "CIFAR-10")
    digest = hashlib.sha1(f"{CACHE_VERSION}|".encode())
    with open(tar, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    key = digest.hexdigest()[:12]
    folder = cache_dir(cache) / f"cifar10-{key}"
    if (folder / "test_y.npy").exists():
        return folder
    arrays = _decode_cifar10(tar)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        os.rename(tmp, folder)  # atomic: readers see all four files or none
    except OSError:
        if not (folder / "test_y.npy").exists():  # not a lost race with another process: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _decode_cifar10(tar: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    blobs: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(tar, "r:xz") as tf:
            for m in tf:
                parts = m.name.removeprefix("./").split("/")
                if m.isfile() and len(parts) == 3 and parts[0] in blobs and parts[2].lower().endswith(".jpg"):
                    if parts[1] not in CIFAR10_CLASSES:
                        raise ValueError(f"unknown class folder {m.name}")
                    data = tf.extractfile(m).read()
                    blobs[parts[0]].append((CIFAR10_CLASSES.index(parts[1]), parts[2], data))
        out = {}
        for split, items in blobs.items():
            if not items:
                raise ValueError(f"no {split}/<class>/*.jpg images")
            items.sort(key=lambda t: (t[0], t[1]))
            labels = np.array([t[0] for t in items], dtype=np.int64)
            # class-balanced order: the k-th image of every class, class by class, for k = 0, 1, ...
            rank = np.concatenate([np.arange((labels == c).sum()) for c in range(len(CIFAR10_CLASSES))])
            order = np.lexsort((labels, rank))
            x = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
            for j, i in enumerate(order):
                with Image.open(io.BytesIO(items[i][2])) as img:
                    x[j] = np.asarray(img.convert("RGB"))
            out[f"{split}_x"] = x
            out[f"{split}_y"] = labels[order]
    except Exception as exc:
        raise DataFileError(f"cannot read CIFAR-10 file {tar}: {type(exc).__name__}: {exc}") from None
    return out
