"""Detection probes on data in the COCO layout (instances JSON + image folders), streamed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from tests.test_probes_folders import COLOURS, CONF, TINY_MODEL
from vjepa.data.common import DataFileError
from vjepa.probes import run_probes

CATEGORY_IDS = (1, 3, 7)  # not contiguous, as COCO's 80 of ids 1..90


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder(probe_encoder):
    return probe_encoder


def _image(rng, boxes, w, h) -> Image.Image:
    rgb = np.full((h, w, 3), 128.0) + rng.normal(0, 8, (h, w, 3))
    for x, y, bw, bh, c in boxes:
        rgb[y : y + bh, x : x + bw] = COLOURS[c]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def write_coco(root: Path, shuffled=False, n=(24, 10), seed=0) -> Path:
    """``<root>/coco``: images with one or two coloured boxes, the box's colour its class; with ``shuffled``
    the annotations' categories are permuted. Each file also holds a crowd box: flagged, no training target."""
    rng = np.random.default_rng(seed)
    (root / "coco" / "annotations").mkdir(parents=True)
    for split, k in zip(("train2017", "val2017"), n, strict=True):
        (root / "coco" / split).mkdir()
        images, anns = [], []
        for i in range(k):
            w, h = (64, 48) if i % 2 else (56, 64)
            boxes = []
            for j in range(1 + i % 2):
                bw, bh = rng.integers(16, 24, 2)
                x0 = int(rng.integers(0, w // 2 - bw)) if j == 0 else int(rng.integers(w // 2, w - bw))
                boxes.append((x0, int(rng.integers(0, h - bh)), int(bw), int(bh), int(rng.integers(3))))
            name = f"{i:012d}.jpg"
            _image(rng, boxes, w, h).save(root / "coco" / split / name, quality=95)
            images.append({"id": 100 + i, "file_name": name, "width": w, "height": h})
            for x, y, bw, bh, c in boxes:
                anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": CATEGORY_IDS[c],
                             "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})  # fmt: skip
        if shuffled:
            cats = rng.permutation([a["category_id"] for a in anns])
            for a, c in zip(anns, cats, strict=True):
                a["category_id"] = int(c)
        anns.append({"id": 999, "image_id": 100, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1})
        categories = [{"id": c, "name": name} for c, name in zip(CATEGORY_IDS, ("red", "green", "blue"))]
        data = {"images": images, "annotations": anns, "categories": categories}
        (root / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


TASK = {
    "kind": "det",
    "data": {"name": "coco", "size": None},
    "layers": [-1],
    "width": 32,
    "epochs": 60,
    "batch_size": 8,
    "lr": 5e-3,
    "wd": 1e-4,
    "max_det": 10,
}


def cfg(workers=0, **data):
    return {
        "image_size": 48,
        "video_size": 32,
        "frames": 4,
        "extract_batch": 8,
        "workers": workers,
        "missing_data": "skip",
        "bootstrap": 20,
        "tasks": {"coco_det": {**TASK, "data": {**TASK["data"], **data}}},
    }


def test_coco_detection_beats_shuffled_categories(tmp_path, encoder):
    real = run_probes(encoder, cfg(), TINY_MODEL, 0, write_coco(tmp_path / "a"), "cpu")
    shuf = run_probes(encoder, cfg(), TINY_MODEL, 0, write_coco(tmp_path / "b", True), "cpu")
    assert real["probe/coco_det/ap50"] > 0.5, real
    assert real["probe/coco_det/ap50"] > shuf["probe/coco_det/ap50"] + 0.2, (real, shuf)
    assert real["probe/coco_det/ap"] <= real["probe/coco_det/ap50"]
    assert {f"probe/coco_det/ap50/{c}" for c in ("red", "green", "blue")} <= set(real)
    assert real["probe/coco_det/skipped"] == 0 and real["probe/coco_det/frames"] == 0
    assert real["probe/coco_det/ap50/se"] >= 0


def test_boxes_are_scaled_with_the_image_and_crowds_flagged(tmp_path):
    from vjepa.probes import folders

    root = write_coco(tmp_path)
    data = folders.index({"name": "coco", "size": [32, 32], "n_val": 3}, root)
    assert data.classes["instance_classes"] == ("red", "green", "blue")
    assert len(data.samples["train"]) == 24 and len(data.samples["val"]) == 3
    ann = json.loads((root / "coco" / "annotations" / "instances_train2017.json").read_text())
    first = next(a for a in ann["annotations"] if a["image_id"] == 100 and not a["iscrowd"])
    item = data.split("train")[0]  # image 100: 56 x 64, one box and the crowd box
    x, y, w, h = first["bbox"]
    expect = torch.tensor(
        [[x * 32 / 56, y * 32 / 64, (x + w) * 32 / 56, (y + h) * 32 / 64], [0, 0, 5 * 32 / 56, 5 * 32 / 64]]
    )
    assert torch.allclose(item["target"]["boxes"], expect)
    assert item["target"]["labels"].tolist() == [
        CATEGORY_IDS.index(first["category_id"]),
        CATEGORY_IDS.index(3),
    ]
    assert item["target"]["crowd"].tolist() == [False, True]
    assert item["image"].shape == (3, 32, 32)


def test_paper_config_has_a_skipped_coco_task(tmp_path, encoder):
    conf = OmegaConf.merge(
        {"data": {"image": {"size": 48}, "video": {"size": 32, "frames": 4}}},
        {"probes": OmegaConf.load(CONF / "paper.yaml")},
        OmegaConf.from_dotlist(["probes.workers=0", "probes.bootstrap=0", "probes.tasks.coco_det.epochs=1"]),
    ).probes
    conf.tasks = {"coco_det": conf.tasks.coco_det}
    r = run_probes(encoder, conf, TINY_MODEL, 0, write_coco(tmp_path), "cpu")
    assert "probe/coco_det/ap50" in r
    r = run_probes(encoder, conf, TINY_MODEL, 0, tmp_path / "elsewhere", "cpu")
    assert not any(k.startswith("probe/coco") for k in r)  # absent folder: skipped


# ---- bad input -----------------------------------------------------------------------------------------
def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _break(kind: str, root: Path) -> str:
    ann = root / "coco" / "annotations"
    if kind == "box_outside_image":
        _edit(ann / "instances_val2017.json", lambda d: d["annotations"][2].update(bbox=[50, 10, 30, 20]))
        return f"{ann / 'instances_val2017.json'}: annotation 3 box"
    if kind == "unknown_category":
        _edit(ann / "instances_train2017.json", lambda d: d["annotations"][4].update(category_id=42))
        return (
            f"{ann / 'instances_train2017.json'}: annotation 5 of image 000000000003.jpg has category id 42"
        )
    if kind == "missing_image":
        p = root / "coco" / "train2017" / "000000000005.jpg"
        p.unlink()
        return str(p)
    if kind == "unreadable_image":
        p = root / "coco" / "val2017" / "000000000004.jpg"
        p.write_bytes(b"not an image at all")
        return str(p)
    if kind == "missing_json":
        p = ann / "instances_val2017.json"
        p.unlink()
        return str(p)
    raise ValueError(kind)


BAD = ["box_outside_image", "unknown_category", "missing_image", "unreadable_image", "missing_json"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_names_the_file(tmp_path, encoder, kind):
    root = write_coco(tmp_path, n=(6, 6))
    path = _break(kind, root)
    with pytest.raises(DataFileError, match=path.replace(".", r"\.")):
        run_probes(encoder, cfg(), TINY_MODEL, 0, root, "cpu")


@pytest.mark.parametrize("kind", ["missing_image", "unreadable_image"])
def test_on_error_skip_counts_and_skips(tmp_path, encoder, kind):
    root = write_coco(tmp_path, n=(6, 6))
    _break(kind, root)
    c = cfg(on_error="skip")
    c["tasks"]["coco_det"]["epochs"] = 1
    r = run_probes(encoder, c, TINY_MODEL, 0, root, "cpu")
    assert r["probe/coco_det/skipped"] == 1


def _random_case(rng, images=12, classes=3):
    """Boxes on a coarse integer grid (IoU ties between boxes and exact threshold hits happen), scores on a
    coarse grid (ties between detections), some crowd regions, images and classes without ground truth."""
    dets, gts = [], []
    for _ in range(images):
        k = int(rng.integers(0, 6))
        xy = rng.integers(0, 12, (k, 2)) * 2.0
        gb = np.concatenate([xy, xy + rng.integers(2, 8, (k, 2)) * 2.0], 1)
        gl = rng.integers(0, classes - 1, k)  # the last class never has ground truth
        crowd = rng.random(k) < 0.2
        m = int(rng.integers(0, 10))
        src = rng.integers(0, max(k, 1), m)
        near = (rng.random(m) < 0.7) & (k > 0)
        rxy = rng.integers(0, 12, (m, 2)) * 2.0
        db = np.concatenate([rxy, rxy + rng.integers(2, 8, (m, 2)) * 2.0], 1)
        if k:
            db[near] = gb[src[near]] + rng.integers(-2, 3, (int(near.sum()), 4))
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dl = np.where(near, gl[src % max(k, 1)] if k else 0, rng.integers(0, classes, m))
        dets.append(
            {
                "boxes": torch.tensor(db),
                "labels": torch.tensor(dl),
                "scores": torch.tensor(rng.integers(1, 6, m) / 5),
            }
        )
        gts.append({"boxes": torch.tensor(gb), "labels": torch.tensor(gl), "crowd": torch.tensor(crowd)})
    return dets, gts


def _pycocotools_ap(dets, gts, classes) -> tuple[float, float]:
    """(AP50, AP) of pycocotools' COCOeval, area "all", up to 100 detections an image."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images, anns, results = [], [], []
    for i, (d, g) in enumerate(zip(dets, gts, strict=True)):
        images.append({"id": i + 1, "width": 64, "height": 64})
        for b, c, crowd in zip(g["boxes"].tolist(), g["labels"].tolist(), g["crowd"].tolist(), strict=True):
            box = xywh(b)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": int(crowd)})  # fmt: skip
        for b, c, score in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": c + 1, "bbox": xywh(b), "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c + 1} for c in range(classes)],
        }
        truth.createIndex()
        run = COCOeval(truth, truth.loadRes(results), "bbox")
        run.evaluate()
        run.accumulate()
    precision = run.eval["precision"][:, :, :, 0, -1]  # [IoU threshold, recall point, class], area all, 100
    per_threshold = [
        np.mean([p[:, k].mean() for k in range(classes) if (p[:, k] > -1).all()]) for p in precision
    ]
    return float(per_threshold[0]), float(np.mean(per_threshold))


def test_box_ap_is_pycocotools_ap():
    """``box_ap`` gives pycocotools' COCOeval numbers (area "all") on cases with crowd regions, ties of IoU
    and of score, exact threshold hits, images without boxes and a class without ground truth; leaving the
    crowd regions out as ground truth instead (counting detections on them as false positives) does not."""
    from vjepa.probes.det import regular_boxes
    from vjepa.probes.metrics import box_ap

    rng = np.random.default_rng(0)
    differs = 0
    for _ in range(40):
        dets, gts = _random_case(rng)
        ours = box_ap(dets, gts, 3)
        ap50, ap = _pycocotools_ap(dets, gts, 3)
        assert ours["ap50"] == pytest.approx(ap50, abs=1e-12) and ours["ap"] == pytest.approx(ap, abs=1e-12)
        assert set(ours["ap50_per_class"]) <= {0, 1}
        crowdless = box_ap(dets, [regular_boxes(g) for g in gts], 3)
        differs += abs(crowdless["ap"] - ap) > 1e-9
    assert differs >= 10


def test_a_detection_equally_near_two_boxes_takes_the_later_one_as_pycocotools():
    """d1 overlaps boxes A and B equally (IoU 0.818); pycocotools gives it B, the later, so d2 (IoU 0.9 with
    A, 0.583 with B) still matches A at the high thresholds: AP 0.750, not the 0.503 of taking A first."""
    from vjepa.probes.metrics import box_ap

    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10]]), "labels": torch.tensor([0, 0])}]
    gts[0]["crowd"] = torch.tensor([False, False])
    dets = [{"boxes": torch.tensor([[1.0, 0, 11, 10], [0, 0, 9, 10]]), "labels": torch.tensor([0, 0])}]
    dets[0]["scores"] = torch.tensor([0.9, 0.8])
    ap50, ap = _pycocotools_ap(dets, gts, 1)
    assert (ap50, round(ap, 4)) == (1.0, 0.7505)
    assert box_ap(dets, gts, 1)["ap"] == pytest.approx(ap, abs=1e-12)
