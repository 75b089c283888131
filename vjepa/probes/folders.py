"""Probe data read from the user's own dataset folders, in their standard on-disk layouts, one file at a time.

``index(spec, root) -> FolderSet`` lists the files of both splits (nothing is decoded) and checks what
can be checked without decoding: the data set folder exists (else ``DataNotFoundError``, which
``missing_data: skip`` skips), each split folder exists and holds samples, each val class is a train class,
each image has its label file (else ``DataFileError`` naming the folder or file, whatever ``on_error``).
``FolderSet.split(name)`` is a ``torch.utils.data.Dataset`` whose items decode one sample, resized to the
spec's ``size``: ``{"index", "image": uint8 [3, H, W], "target": ...}``; a sample that cannot be read (an
unreadable image, a label outside the classes, a mask or depth map whose size differs from its image's)
raises ``DataFileError`` naming the file, or with ``on_error: skip`` comes back as ``{"index", "error"}``
for the caller to count and leave out. Formats (``name``; ``folder`` under the data root, ``train`` /
``val`` the split folders under it):

    imagefolder   ImageNet-1k layout: ``<folder>/<split>/<class>/*.{JPEG,jpg,png,...}``; classes are the
                  train split's sub-folders, sorted; target: the class index. Images are resized (shorter
                  side to the size) and centre-cropped. Defaults: folder imagenet, train train, val val
    ade20k        ``<folder>/images/<split>/*.jpg`` with ``<folder>/annotations/<split>/<stem>.png``; PNG
                  value 0 = ignore, value c = class c - 1 of ``num_classes`` (150); target: long [H, W]
                  (-1 ignore), image and mask resized to the size (bilinear / nearest), not cropped.
                  Defaults: folder ADEChallengeData2016, train training, val validation
    nyu_depth     NYU Depth v2 as the BTS split holds it: ``<folder>/<split>/**/rgb_<id>.jpg`` with
                  ``sync_depth_<id>.png`` beside it (16-bit, millimetres; 0 = no measurement); target: float
                  [H, W] depth in metres (0 = invalid), resized nearest. Defaults: folder nyu_depth_v2, train
                  sync, val official_splits/test
    video_list    clip lists, ``<folder>/<split>`` a text file of ``<video path> <label>`` lines
                  (``vjepa.probes.clips``): target: the class index; image: uint8 [clips * views, 3, T, H, W].
                  Defaults: folder kinetics400, train train.csv, val val.csv, frame_stride 2, train_clips 1,
                  test_clips 1, test_views 1, num_classes null (the largest train label + 1); frames: the run's
    coco          COCO detection (``vjepa.probes.coco``): ``<folder>/annotations/instances_<split>.json`` and
                  ``<folder>/<split>/<file_name>``; target: {"boxes" [k, 4] px, "labels" [k], "crowd" [k]}. Defaults:
                  folder coco, train train2017, val val2017

A file a clip list or COCO JSON names but that does not exist is an error while indexing with ``on_error:
raise``, and a skipped sample with ``on_error: skip``.

``n_train`` / ``n_val`` (null = all) keep a seeded random subset (``seed``) of a split, in file order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa.data.common import DataFileError, check_on_error, require_path

FORMATS = ("imagefolder", "ade20k", "nyu_depth", "video_list", "coco")
KIND = {
    "imagefolder": "classify",
    "ade20k": "seg",
    "nyu_depth": "depth",
    "video_list": "classify",
    "coco": "det",
}
LABEL = {
    "imagefolder": "label",
    "ade20k": "seg",
    "nyu_depth": "depth",
    "video_list": "label",
    "coco": "instance_classes",
}
IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm")
IGNORE = -1
DEFAULTS = {
    "imagefolder": {"folder": "imagenet", "train": "train", "val": "val"},
    "ade20k": {
        "folder": "ADEChallengeData2016",
        "train": "training",
        "val": "validation",
        "num_classes": 150,
    },
    "nyu_depth": {
        "folder": "nyu_depth_v2",
        "train": "sync",
        "val": "official_splits/test",
        "max_depth": 10.0,
    },
    "video_list": {
        "folder": "kinetics400",
        "train": "train.csv",
        "val": "val.csv",
        "num_classes": None,
        "frame_stride": 2,
        "train_clips": 1,
        "test_clips": 1,
        "test_views": 1,
    },
    "coco": {
        "folder": "coco",
        "train": "train2017",
        "val": "val2017",
        "annotations": "annotations/instances_{split}.json",
    },
}


def with_defaults(spec: dict) -> dict:
    """The spec with the format's defaults filled in (and ``n_train``/``n_val``/``seed``/``on_error``)."""
    out = {**DEFAULTS[spec["name"]], "n_train": None, "n_val": None, "seed": 0, "on_error": "raise"}
    out.update({k: v for k, v in spec.items() if v is not None or k not in out})
    check_on_error(out["on_error"], "probes data.on_error")
    return out


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _split_dir(base: Path, rel: str, what: str) -> Path:
    path = base / rel
    if not path.is_dir():
        raise DataFileError(f"{what}: split folder {path} does not exist (the data set is at {base})")
    return path


def _imagefolder(base: Path, spec: dict) -> tuple[dict, tuple[str, ...]]:
    train = _split_dir(base, spec["train"], "imagefolder")
    classes = tuple(sorted(p.name for p in train.iterdir() if p.is_dir()))
    if not classes:
        raise DataFileError(f"imagefolder: {train} holds no class folders (<split>/<class>/<image>)")
    lookup = {c: i for i, c in enumerate(classes)}
    samples = {}
    for split in ("train", "val"):
        folder = _split_dir(base, spec[split], "imagefolder")
        items = []
        for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
            if cls.name not in lookup:
                raise DataFileError(
                    f"imagefolder: class folder {cls} is not a class of the train split {train} "
                    f"({len(classes)} classes)"
                )
            items += [(str(p), lookup[cls.name]) for p in _images(cls)]
        samples[split] = items
    return samples, classes


def _ade20k(base: Path, spec: dict) -> tuple[dict, tuple[str, ...]]:
    samples = {}
    for split in ("train", "val"):
        images = _split_dir(base, f"images/{spec[split]}", "ade20k")
        masks = _split_dir(base, f"annotations/{spec[split]}", "ade20k")
        items = []
        for p in _images(images):
            mask = masks / f"{p.stem}.png"
            if not mask.is_file():
                raise DataFileError(f"ade20k: image {p} has no annotation {mask}")
            items.append((str(p), str(mask)))
        samples[split] = items
    return samples, tuple(f"class{c}" for c in range(int(spec["num_classes"])))


def _nyu_depth(base: Path, spec: dict) -> tuple[dict, tuple[str, ...]]:
    samples = {}
    for split in ("train", "val"):
        folder = _split_dir(base, spec[split], "nyu_depth")
        items = []
        for p in sorted(folder.rglob("rgb_*")):
            if p.suffix.lower() not in IMAGE_EXTS:
                continue
            depth = p.with_name("sync_depth_" + p.stem[len("rgb_") :] + ".png")
            if not depth.is_file():
                raise DataFileError(f"nyu_depth: image {p} has no depth map {depth}")
            items.append((str(p), str(depth)))
        samples[split] = items
    return samples, ("depth",)


def _subset(items: list, n, seed: int, stream: int) -> list:
    if n is None or int(n) >= len(items):
        return items
    g = torch.Generator().manual_seed(int(seed) * 1000 + stream)
    keep = torch.randperm(len(items), generator=g)[: int(n)].sort().values
    return [items[i] for i in keep.tolist()]


@dataclass
class FolderSet:
    """Both splits of a folder data set: file lists, class names and the size the encoder sees."""

    spec: dict
    samples: dict[str, list]  # split -> [(image path, class index | label file path)]
    classes: dict[str, tuple[str, ...]]  # label name -> class names (as LabelledSet)
    size: tuple[int, int]

    def fingerprint(self) -> str:
        """A hash of both splits' file lists: part of the feature cache key, so added files are extracted."""
        blob = repr([(s, [str(i) for i in self.samples[s]]) for s in ("train", "val")])
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def split(self, name: str) -> FolderSplit:
        return FolderSplit(self.spec, self.samples[name], self.size, name)


def _reader(name: str):
    if name == "video_list":
        from vjepa.probes.clips import read_lists

        return read_lists
    if name == "coco":
        from vjepa.probes.coco import read_annotations

        return read_annotations
    return {"imagefolder": _imagefolder, "ade20k": _ade20k, "nyu_depth": _nyu_depth}[name]


def index(spec: dict, root) -> FolderSet:
    spec = with_defaults(spec)
    name = spec["name"]
    base = require_path(root, spec["folder"], f"probe data {name}")
    samples, classes = _reader(name)(base, spec)
    for split, stream in (("train", 1), ("val", 2)):
        if not samples[split]:
            raise DataFileError(f"{name}: split {base / spec[split]} holds no samples")
        samples[split] = _subset(samples[split], spec[f"n_{split}"], spec["seed"], stream)
        if name in ("video_list", "coco") and spec["on_error"] == "raise":  # listed files: find them now
            missing = next((p for p, _ in samples[split] if not Path(p).is_file()), None)
            if missing is not None:
                raise DataFileError(f"{name}: {missing}, listed in the {split} split, does not exist")
    return FolderSet(spec, samples, {LABEL[name]: classes}, tuple(int(s) for s in spec["size"]))


def _open(path: str):
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # PIL raises many types; the user needs the file name
        raise DataFileError(f"cannot read image file {path}: {type(exc).__name__}: {exc}") from None
    return img


def _resize_crop(img, size: tuple[int, int]):
    """Shorter side scaled to cover ``size`` (H, W), then the centre cropped to it."""
    from PIL import Image

    h, w = size
    scale = max(h / img.height, w / img.width)
    nw, nh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return img.crop((left, top, left + w, top + h))


def _chw(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


class FolderSplit(torch.utils.data.Dataset):
    """One split, decoded one sample per item (picklable: DataLoader workers decode in parallel)."""

    def __init__(self, spec: dict, items: list, size: tuple[int, int], split: str = "train"):
        self.spec, self.items, self.size, self.name = spec, items, tuple(size), split

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        try:
            return {"index": i, **self.load(*self.items[i])}
        except DataFileError as exc:
            if self.spec["on_error"] == "skip":
                return {"index": i, "error": str(exc)}
            raise

    def load(self, path: str, label) -> dict:
        from PIL import Image

        name, (h, w) = self.spec["name"], self.size
        if name == "video_list":
            from vjepa.probes.clips import load

            return load(self.spec, path, label, self.size, self.name)
        if name == "coco":
            from vjepa.probes.coco import load

            return load(path, label, self.size)
        img = _open(path)
        if name == "imagefolder":
            return {"image": _chw(_resize_crop(img, self.size)), "target": torch.tensor(int(label))}
        ann = _open(label)
        if ann.size != img.size:
            raise DataFileError(
                f"{name}: {label} is {ann.width}x{ann.height} but its image {path} is {img.width}x{img.height}"
            )
        if ann.mode not in ("L", "P", "I", "I;16"):
            raise DataFileError(f"{name}: {label} is a {ann.mode} image; expected a single-channel PNG")
        if name == "ade20k" and (top := int(np.asarray(ann).max())) > int(self.spec["num_classes"]):
            raise DataFileError(
                f"ade20k: {label} holds value {top}, outside 0..{self.spec['num_classes']} (0 = ignore)"
            )
        image = _chw(img.resize((w, h), Image.BILINEAR))
        a = np.asarray(ann.resize((w, h), Image.NEAREST))
        if name == "ade20k":
            return {"image": image, "target": torch.from_numpy(a.astype(np.int64)) - 1}
        depth = torch.from_numpy(a.astype(np.float32)) / 1000.0  # millimetres -> metres
        return {"image": image, "target": depth.masked_fill(depth > float(self.spec["max_depth"]), 0.0)}
