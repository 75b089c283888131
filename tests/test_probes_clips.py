"""Video classification probes on clip lists (``<video path> <label>`` per line), streamed."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.test_probes_folders import COLOURS, CONF, TINY_MODEL
from vjepa.data.common import DataFileError
from vjepa.probes import folders, run_probes
from vjepa.probes.clips import load

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder(probe_encoder):
    return probe_encoder


def write_video(path: Path, colour, rng, n=10, w=48, h=40) -> Path:
    """A clip of a flat colour with noise and a bright bar moving across it."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            rgb = np.broadcast_to(colour, (h, w, 3)) + rng.normal(0, 10, (h, w, 3))
            rgb[:, (4 * i) % w : (4 * i) % w + 4] = 255
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def write_clips(root: Path, shuffled=False, n=(4, 2), seed=0, folder="ssv2") -> Path:
    """``<root>/<folder>/{train,val}.csv`` listing videos of 3 classes told apart by colour; with
    ``shuffled`` the labels are permuted across the videos."""
    rng = np.random.default_rng(seed)
    base = root / folder
    (base / "videos").mkdir(parents=True)
    for split, k in zip(("train", "val"), n, strict=True):
        labels = np.repeat(np.arange(3), k)
        listed = rng.permutation(labels) if shuffled else labels
        lines = []
        for i, (c, shown) in enumerate(zip(labels, listed, strict=True)):
            name = f"videos/{split} {i}.mp4"  # a space in the path, as some copies have
            write_video(base / name, COLOURS[c], rng)
            lines.append(f"{name} {shown}")
        (base / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


TASKS = {
    "ssv2_linear": {
        "kind": "classify",
        "head": "linear",
        "labels": ["label"],
        "data": {"name": "video_list", "folder": "ssv2", "size": None, "test_clips": 2, "test_views": 3},
        "layers": [-1],
        "iters": 30,
        "wd": 1e-3,
    },
    "ssv2_attentive": {
        "kind": "classify",
        "head": "attentive",
        "labels": ["label"],
        "data": {"name": "video_list", "folder": "ssv2", "size": None, "test_clips": 2, "test_views": 3},
        "layers": [-1],
        "token_grid": 2,
        "time_grid": 2,
        "heads": 2,
        "epochs": 30,
        "batch_size": 4,
        "lr": 1e-2,
        "wd": 0.0,
    },
}


def cfg(*names, workers=0, **data):
    tasks = {n: {**TASKS[n], "data": {**TASKS[n]["data"], **data}} for n in names}
    return {
        "image_size": 32,
        "video_size": 32,
        "frames": 4,
        "extract_batch": 6,
        "workers": workers,
        "missing_data": "skip",
        "bootstrap": 20,
        "tasks": tasks,
    }


def test_clips_and_views_of_a_test_video(tmp_path):
    path = write_video(tmp_path / "a.mp4", COLOURS[0], np.random.default_rng(0), w=64, h=40)
    spec = {"frames": 4, "frame_stride": 2, "test_clips": 2, "test_views": 3}
    val = load(spec, str(path), 1, (32, 32), "val")
    assert val["image"].shape == (6, 3, 4, 32, 32) and val["image"].dtype == torch.uint8
    assert int(val["target"]) == 1
    # views spread along the longer side: the left and right crops differ, clip 1 is later in time
    assert not torch.equal(val["image"][0], val["image"][2])
    assert not torch.equal(val["image"][0], val["image"][3])
    train = load(spec, str(path), 1, (32, 32), "train")
    assert train["image"].shape == (1, 3, 4, 32, 32)
    # the one train clip is the temporal centre's centre crop: a 1 x 1 test reading
    centre = load({**spec, "test_clips": 1, "test_views": 1}, str(path), 1, (32, 32), "val")["image"][0]
    assert torch.equal(train["image"][0], centre)


def test_train_clips_are_random_clips_drawn_the_same_every_time(tmp_path):
    """train_clips=4: four clips of the train video at random starts and crop places, the same on every read
    and for every copy of the spec (the generator is seeded by the spec's seed and the video's path), others
    with another seed."""
    rng = np.random.default_rng(0)
    path = write_video(tmp_path / "a.mp4", COLOURS[0], rng, n=24, w=64, h=40)
    spec = {"frames": 4, "frame_stride": 2, "train_clips": 4, "seed": 0}
    first = load(spec, str(path), 2, (32, 32), "train")
    assert first["image"].shape == (4, 3, 4, 32, 32) and int(first["target"]) == 2
    assert torch.equal(first["image"], load(dict(spec), str(path), 2, (32, 32), "train")["image"])
    distinct = {first["image"][k].numpy().tobytes() for k in range(4)}
    assert len(distinct) == 4
    other = load({**spec, "seed": 1}, str(path), 2, (32, 32), "train")["image"]
    assert not torch.equal(first["image"], other)


def test_train_clips_multiply_the_train_rows_and_repeat_their_labels(tmp_path, encoder):
    from vjepa.probes.datasets import resolve_spec
    from vjepa.probes.stream import extract_folder, storage

    root = write_clips(tmp_path)
    task = TASKS["ssv2_attentive"]
    data_spec = {**task["data"], "train_clips": 3}
    spec = resolve_spec(data_spec, {"image_size": 32, "video_size": 32, "frames": 4, "patch_size": 8})
    data = folders.index(spec, root)
    feats = extract_folder(encoder, data, [-1], storage(task, spec), 6, 0, "cpu")
    assert feats["train"].shape == (12 * 3, 8, 64) and int(feats["views"]) == 6
    labels = torch.tensor([label for _, label in data.samples["train"]])
    assert torch.equal(feats["y_train"], labels.repeat_interleave(3))
    assert feats["val"].shape == (6 * 6, 8, 64) and feats["y_val"].shape == (6,)
    one = extract_folder(
        encoder, folders.index({**spec, "train_clips": 1}, root), [-1], storage(task, spec), 6, 0, "cpu"
    )
    assert torch.equal(one["val"], feats["val"])  # the val reading does not change


def test_video_linear_and_attentive_beat_shuffled_labels(tmp_path, encoder):
    tasks = ("ssv2_linear", "ssv2_attentive")
    real = run_probes(encoder, cfg(*tasks), TINY_MODEL, 0, write_clips(tmp_path / "a"), "cpu")
    shuf = run_probes(encoder, cfg(*tasks), TINY_MODEL, 0, write_clips(tmp_path / "b", True), "cpu")
    for task in tasks:
        assert real[f"probe/{task}/top1"] >= 0.8, real
        assert real[f"probe/{task}/top1"] > shuf[f"probe/{task}/top1"] + 0.3, (real, shuf)
        assert real[f"probe/{task}/frames"] == 4 and real[f"probe/{task}/skipped"] == 0
        assert real[f"probe/{task}/top1/se"] >= 0


def test_val_features_hold_every_clip_and_view(tmp_path, encoder):
    from vjepa.probes.datasets import resolve_spec
    from vjepa.probes.stream import extract_folder, storage

    root = write_clips(tmp_path)
    task = TASKS["ssv2_attentive"]
    spec = resolve_spec(task["data"], {"image_size": 32, "video_size": 32, "frames": 4, "patch_size": 8})
    data = folders.index(spec, root)
    feats = extract_folder(encoder, data, [-1], storage(task, spec), 6, 0, "cpu")
    assert int(feats["views"]) == 6
    assert feats["train"].shape == (12, 2 * 2 * 2, 64)  # time_grid x token_grid^2 tokens per clip
    assert feats["val"].shape == (6 * 6, 8, 64) and feats["y_val"].shape == (6,)


def test_paper_config_has_skipped_video_tasks(tmp_path, encoder):
    conf = OmegaConf.merge(
        {"data": {"image": {"size": 32}, "video": {"size": 32, "frames": 4}}},
        {"probes": OmegaConf.load(CONF / "paper.yaml")},
        OmegaConf.from_dotlist(["probes.workers=0", "probes.bootstrap=0"]),
    ).probes
    assert {"ssv2_attentive", "k400_attentive", "diving48_attentive"} <= set(conf.tasks)
    conf.tasks = {k: conf.tasks[k] for k in ("ssv2_attentive", "k400_attentive")}
    conf.tasks.ssv2_attentive.epochs = 2
    r = run_probes(encoder, conf, TINY_MODEL, 0, write_clips(tmp_path, folder="ssv2"), "cpu")
    assert "probe/ssv2_attentive/top1" in r and not any(k.startswith("probe/k400") for k in r)


# ---- bad input -----------------------------------------------------------------------------------------
def _break(kind: str, root: Path) -> str:
    base = root / "ssv2"
    if kind == "unreadable_video":
        p = base / "videos" / "train 5.mp4"
        p.write_bytes(b"not a video at all")
        return str(p)
    if kind == "missing_video":
        p = base / "videos" / "val 1.mp4"
        p.unlink()
        return str(p)
    if kind == "label_outside_classes":
        p = base / "val.csv"
        p.write_text(p.read_text().replace("val 3.mp4 1", "val 3.mp4 7"))
        return f"{p} line 4: label 7 of {base / 'videos' / 'val 3.mp4'}"
    if kind == "no_label":
        p = base / "train.csv"
        p.write_text(p.read_text().replace("train 2.mp4 0", "train 2.mp4"))
        return f"{p} line 3"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["unreadable_video", "missing_video", "label_outside_classes", "no_label"])
def test_bad_input_names_the_file(tmp_path, encoder, kind):
    root = write_clips(tmp_path)
    path = _break(kind, root)
    with pytest.raises(DataFileError, match=path.replace(".", r"\.")):
        run_probes(encoder, cfg("ssv2_linear", num_classes=3), TINY_MODEL, 0, root, "cpu")


@pytest.mark.parametrize("kind", ["unreadable_video", "missing_video"])
def test_on_error_skip_counts_and_skips(tmp_path, encoder, kind):
    root = write_clips(tmp_path)
    _break(kind, root)
    r = run_probes(encoder, cfg("ssv2_linear", on_error="skip"), TINY_MODEL, 0, root, "cpu")
    assert r["probe/ssv2_linear/skipped"] == 1


def test_workers_report_the_bad_video(tmp_path, encoder):
    root = write_clips(tmp_path)
    path = _break("unreadable_video", root)
    with pytest.raises(Exception, match="train 5.mp4"):
        run_probes(encoder, cfg("ssv2_linear", workers=1), TINY_MODEL, 0, root, "cpu")
    assert path


def test_config_check_reads_the_video_tasks(compose_cfg):
    from vjepa.config_check import ConfigError, check_config

    check_config(compose_cfg("probes=paper"))
    with pytest.raises(
        ConfigError, match=r"probes.tasks.ssv2_attentive.data.test_views=0 must be an integer"
    ):
        check_config(compose_cfg("probes=paper", "probes.tasks.ssv2_attentive.data.test_views=0"))
    with pytest.raises(
        ConfigError, match=r"k400_attentive.kind='seg': video_list data is probed by kind classify"
    ):
        check_config(compose_cfg("probes=paper", "probes.tasks.k400_attentive.kind=seg"))
    with pytest.raises(ConfigError, match=r"coco_det.kind='classify': coco data is probed by kind det"):
        check_config(
            compose_cfg(
                "probes=paper", "probes.tasks.coco_det.kind=classify", "+probes.tasks.coco_det.head=linear"
            )
        )
