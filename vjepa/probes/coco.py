"""Detection data in the COCO layout (``coco``): ``<folder>/annotations/instances_<split>.json`` with the
images in ``<folder>/<split>/<file_name>`` (``train`` / ``val``: train2017 / val2017).

``read_annotations(base, spec)`` reads both JSON files and checks every annotation before any image is
decoded: an annotation whose ``category_id`` is not a category of the train file, whose ``image_id`` is not
an image of its file, or whose box ``[x, y, w, h]`` is empty or outside its image (by more than
``BOX_SLACK`` px, COCO's rounding; boxes within it are clipped) raises ``DataFileError`` naming the JSON file,
the annotation and the image, whatever ``on_error``. Categories are mapped to contiguous classes in the
order of their ids (COCO's 80 of ids 1..90 -> 0..79); crowd annotations (``iscrowd: 1``) are kept, flagged,
as pycocotools keeps them: left out of the training targets, and in the scored ground truth a detection
that covers one is ignored (``vjepa.probes.metrics``). Every image of the file is a sample, with or without
boxes.

``load(path, (width, height, boxes), size)`` decodes one image, resized to the size (H, W) without
keeping its aspect ratio, and its boxes scaled with it: ``{"image", "target": {"boxes": float [k, 4]
(x0, y0, x1, y1) px, "labels": long [k], "crowd": bool [k]}}`` (IoU does not change when x and y are
scaled apart, so AP at the input size is AP on the original images); an image missing, unreadable or of another size than its
JSON entry says raises ``DataFileError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vjepa.data.common import DataFileError

BOX_SLACK = 1.0


def _json(path: Path) -> dict:
    if not path.is_file():
        raise DataFileError(f"coco: annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
        data["images"], data["annotations"], data["categories"]  # noqa: B018 (the keys must be there)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFileError(
            f"coco: cannot read annotation file {path}: {type(exc).__name__}: {exc}"
        ) from None
    return data


def _box(ann: dict, image: dict, path: Path) -> list[float]:
    x, y, w, h = (float(v) for v in ann["bbox"])
    width, height = float(image["width"]), float(image["height"])
    if (
        w <= 0
        or h <= 0
        or x < -BOX_SLACK
        or y < -BOX_SLACK
        or x + w > width + BOX_SLACK
        or y + h > height + BOX_SLACK
    ):
        raise DataFileError(
            f"coco: {path}: annotation {ann.get('id')} box [x, y, w, h] = {ann['bbox']} is empty or outside "
            f"its image {image['file_name']} ({image['width']}x{image['height']})"
        )
    return [max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)]


def _split(base: Path, folder: str, path: Path, lookup: dict, categories: Path) -> list:
    data = _json(path)
    images = {im["id"]: im for im in data["images"]}
    boxes = {i: [] for i in images}
    for ann in data["annotations"]:
        image = images.get(ann["image_id"])
        if image is None:
            raise DataFileError(
                f"coco: {path}: annotation {ann.get('id')} refers to image id {ann['image_id']}, not in the file"
            )
        if ann["category_id"] not in lookup:
            raise DataFileError(
                f"coco: {path}: annotation {ann.get('id')} of image {image['file_name']} has category id "
                f"{ann['category_id']}, not a category of {categories} (ids {sorted(lookup)})"
            )
        crowd = bool(ann.get("iscrowd", 0))
        boxes[image["id"]].append((*_box(ann, image, path), lookup[ann["category_id"]], crowd))
    ordered = sorted(images.values(), key=lambda im: im["file_name"])
    return [
        (str(base / folder / im["file_name"]), (int(im["width"]), int(im["height"]), tuple(boxes[im["id"]])))
        for im in ordered
    ]


def read_annotations(base: Path, spec: dict) -> tuple[dict, tuple[str, ...]]:
    files = {split: base / spec["annotations"].format(split=spec[split]) for split in ("train", "val")}
    cats = sorted(_json(files["train"])["categories"], key=lambda c: c["id"])
    lookup = {c["id"]: i for i, c in enumerate(cats)}
    samples = {s: _split(base, spec[s], files[s], lookup, files["train"]) for s in ("train", "val")}
    return samples, tuple(str(c.get("name", c["id"])) for c in cats)


def load(path: str, label: tuple, size: tuple[int, int]) -> dict:
    from PIL import Image

    from vjepa.probes.folders import _chw, _open

    width, height, boxes = label
    img = _open(path)
    if img.size != (width, height):
        raise DataFileError(
            f"coco: image {path} is {img.width}x{img.height} but its annotation file says {width}x{height}"
        )
    h, w = size
    b = torch.tensor([box[:4] for box in boxes], dtype=torch.float32).view(-1, 4)
    b *= torch.tensor([w / width, h / height, w / width, h / height])
    labels = torch.tensor([box[4] for box in boxes], dtype=torch.long)
    crowd = torch.tensor([box[5] for box in boxes], dtype=torch.bool)
    target = {"boxes": b, "labels": labels, "crowd": crowd}
    return {"image": _chw(img.resize((w, h), Image.BILINEAR)), "target": target}
