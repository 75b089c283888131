"""File-backed sources without the shared data: image folders, epoch order, crops, error messages."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vjepa.data import (
    IMAGE_SOURCES,
    MEAN,
    STD,
    VIDEO_SOURCES,
    JointBatches,
    build_sources,
    build_train_loader,
    split_skipped,
)
from vjepa.data.common import DataFileError, DataNotFoundError, EpochOrder
from vjepa.data.images import list_images
from vjepa.data.labelled import load_camvid, load_cifar10, load_mnist
from vjepa.data.transforms import Augment


def write_images(folder, n, fmt="png"):
    """Image i is a flat grey image of intensity 20 * i + 10, of varied size."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((20 + i, 30, 3), 20 * i + 10, np.uint8)).save(folder / f"img{i:02d}.{fmt}")


def image_ids(batch):
    x = batch * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    return ((x.mean(dim=(1, 2, 3)) * 255 - 10) / 20).round().long().tolist()


def folder_cfg(path, **kw):
    return OmegaConf.create({"name": "image_folder", "path": str(path), "size": 8, "color_jitter": 0.0, **kw})


def test_epoch_order_is_a_permutation_per_epoch():
    order = EpochOrder(10, seed=4, stream=53)
    epochs = [[order.index(p) for p in range(e * 10, e * 10 + 10)] for e in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    assert [EpochOrder(10, 4, 53).index(p) for p in range(25, 5, -1)] == [
        order.index(p) for p in range(25, 5, -1)
    ]


def test_image_folder_sees_every_image_once_per_epoch(tmp_path):
    write_images(tmp_path, 10)
    src = IMAGE_SOURCES["image_folder"](folder_cfg(tmp_path), 4, seed=0, root=None)
    seen = sum((image_ids(src[s]["x"]) for s in range(5)), [])  # 20 samples = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]


def test_image_folder_classes_and_relative_path(tmp_path):
    write_images(tmp_path / "data" / "cats", 2)
    write_images(tmp_path / "data" / "dogs" / "inner", 3, fmt="jpg")
    files, labels, classes = list_images(tmp_path / "data")
    assert classes == ["cats", "dogs"] and labels == [0, 0, 1, 1, 1] and len(files) == 5
    src = IMAGE_SOURCES["image_folder"](folder_cfg("data"), 3, seed=0, root=tmp_path)
    assert src[0]["x"].shape == (3, 3, 8, 8)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_images_are_scaled_to_eight_bits_not_clipped(tmp_path, ext):
    """A 16-bit greyscale gradient reads as the same image in 8 bits (PIL's convert("RGB") clips it at 255:
    nearly white); 32-bit integer and float images are refused, naming the file."""
    from vjepa.data.images import read_image

    grad = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(grad).save(tmp_path / f"g16.{ext}")
    img = read_image(str(tmp_path / f"g16.{ext}"))
    assert img.shape == (48, 64, 3) and img.dtype == torch.uint8
    want = torch.from_numpy(np.round(grad / 257.0).astype(np.uint8))
    assert (img[..., 0].int() - want.int()).abs().max() <= 1 and torch.equal(img[..., 0], img[..., 2])
    assert abs(img.float().mean().item() - 127.5) < 1.0
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp_path / "i32.tif")
    with pytest.raises(ValueError, match=r"i32.tif: a 32-bit integer image"):
        read_image(str(tmp_path / "i32.tif"))
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f.tif: a floating-point image"):
        read_image(str(tmp_path / "f.tif"))


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG stored 40 wide x 20 high with EXIF orientation 6 (rotate 90 clockwise) reads 20 wide x 40 high,
    its left half (dark) on top."""
    from vjepa.data.images import read_image

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 20:] = 250
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "side.jpg", exif=exif, quality=95)
    img = read_image(str(tmp_path / "side.jpg"))
    assert img.shape == (40, 20, 3)
    assert img[:15].float().mean() < 30 and img[25:].float().mean() > 220


def test_corrupt_image_raises_naming_the_file(tmp_path):
    write_images(tmp_path, 3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    src = IMAGE_SOURCES["image_folder"](folder_cfg(tmp_path), 4, seed=0, root=None)
    with pytest.raises(DataFileError, match="broken.png"):
        src[0]
    cfg = folder_cfg(tmp_path, name="image_folder")
    loader = build_train_loader(
        OmegaConf.create({"mix": "image", "image_fraction": 1.0, "num_workers": 1, "image": cfg}), 4, 0, 0, 1
    )
    with pytest.raises(DataFileError, match="broken.png"):  # from a worker process too
        next(iter(loader))


def test_truncated_jpeg_skipped_and_counted(tmp_path):
    write_images(tmp_path, 5, fmt="jpg")
    data = (tmp_path / "img02.jpg").read_bytes()
    (tmp_path / "img02.jpg").write_bytes(data[: len(data) // 2])
    src = IMAGE_SOURCES["image_folder"](folder_cfg(tmp_path, on_error="skip"), 5, seed=1, root=None)
    item = JointBatches({"image": src})[0]
    expected, skipped = [], 0  # a bad sample is replaced by the sample at the next position of the order
    for pos in range(5):
        while src.order.index(pos) == 2:
            pos, skipped = pos + 1, skipped + 1
        expected.append(src.order.index(pos))
    assert image_ids(item["image"]) == expected and 2 not in expected
    assert item["skipped_image"] == skipped >= 1
    tensors, counts = split_skipped(item)
    assert tensors.keys() == {"image"} and counts == {"skipped_image": skipped}
    assert torch.equal(item["image"], src[0]["x"])


def test_skip_gives_up_after_max_skips(tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    src = IMAGE_SOURCES["image_folder"](folder_cfg(tmp_path, on_error="skip", max_skips=5), 2, 0, None)
    with pytest.raises(DataFileError, match="gave up after 6 unreadable samples") as err:
        src[0]
    assert all(f"bad{i}.jpg" in str(err.value) for i in range(3))


def test_augment_box_stays_inside_and_respects_scale_and_ratio():
    aug = Augment(size=8, crop_scale=(0.2, 0.5), crop_ratio=(0.5, 2.0))
    params = aug.draw(torch.Generator().manual_seed(0), 500)
    for u in params["crop"]:
        top, left, h, w = aug.box(u, 300, 400)
        assert 0 <= top <= 300 - h and 0 <= left <= 400 - w
        assert 0.19 <= h * w / 120000 <= 0.51 and 0.49 <= w / h <= 2.05
    hw = [aug.box(u, 300, 400)[2:] for u in params["crop"]]
    assert max(a * b for a, b in hw) / 120000 > 0.45 and min(a * b for a, b in hw) / 120000 < 0.25
    with pytest.raises(ValueError, match="crop_scale"):
        Augment.from_cfg({"size": 8, "crop_scale": [0.5, 1.5]})


def test_color_jitter_changes_colours_within_range():
    aug = Augment(size=8, color_jitter=0.4)
    x = torch.rand(16, 3, 8, 8)
    params = aug.draw(torch.Generator().manual_seed(0), 16)
    y = aug.jitter(x.clone(), params)
    assert y.min() >= 0 and y.max() <= 1 and (y - x).abs().mean() > 0.02
    assert torch.equal(Augment(size=8).jitter(x.clone(), params), x)


@pytest.mark.parametrize(
    "registry,name",
    [
        (IMAGE_SOURCES, "cifar10"),
        (IMAGE_SOURCES, "camvid"),
        (IMAGE_SOURCES, "mnist"),
        (VIDEO_SOURCES, "clips"),
        (VIDEO_SOURCES, "moving_mnist"),
    ],
)
def test_missing_root_names_the_setting(registry, name, tmp_path):
    cfg = OmegaConf.create({"name": name, "size": 8, "frames": 2})
    for root in (None, tmp_path / "nowhere"):
        with pytest.raises(DataNotFoundError, match="data.root=") as err:
            registry[name](cfg, 2, 0, root)
        assert "\n" not in str(err.value)


def test_missing_files_in_loaders_and_build_sources(tmp_path):
    for load in (load_camvid, load_mnist, lambda r: load_cifar10(r, "train")):
        with pytest.raises(DataNotFoundError, match="data.root="):
            load(tmp_path)
    data = OmegaConf.create(
        {
            "root": str(tmp_path / "x"),
            "mix": "joint",
            "image_fraction": 0.5,
            "image": {"name": "camvid", "size": 8},
            "video": {"name": "moving_shapes", "size": 8, "frames": 2},
        }
    )
    with pytest.raises(DataNotFoundError, match=f"set data.root=.*now data.root={tmp_path / 'x'}"):
        build_sources(data, 4, 0)
    data.image = {"name": "image_folder", "size": 8, "path": "missing"}
    with pytest.raises(DataNotFoundError, match="data.image.path"):
        build_sources(data, 4, 0)
    data.image = {"name": "shapes", "size": 8}
    data.video = {"name": "video_folder", "size": 8, "frames": 2, "path": str(tmp_path)}
    with pytest.raises(DataNotFoundError, match="data.video.path"):
        build_sources(data, 4, 0)
    data.video = {"name": "nope"}
    with pytest.raises(ValueError, match="data.video.name='nope' is not one of"):
        build_sources(data, 4, 0)
    write_images(tmp_path / "imgs", 2)
    data.image = {"name": "image_folder", "size": 8, "path": str(tmp_path / "imgs"), "on_error": "ignore"}
    with pytest.raises(ValueError, match="data.image.on_error must be one of"):
        build_sources(data, 4, 0)


def _cifar_tarball(root: Path, shade: int) -> Path:
    """A CIFAR-10 tarball of the shared layout (split/class/name.jpg), one 32 px image per class and split."""
    import io
    import tarfile

    from vjepa.data.labelled import CIFAR10_CLASSES, CIFAR10_FILE

    path = root / CIFAR10_FILE
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:xz") as tf:
        for split in ("train", "test"):
            for c, name in enumerate(CIFAR10_CLASSES):
                buf = io.BytesIO()
                Image.fromarray(np.full((32, 32, 3), shade + 10 * c, np.uint8)).save(buf, format="JPEG")
                info = tarfile.TarInfo(f"{split}/{name}/0.jpg")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def test_cifar10_cache_is_keyed_by_the_tarballs_content(tmp_path):
    """Two copies of a tarball at other paths and times share one decoded folder; other content gets its own."""
    import os
    import shutil

    from vjepa.data.labelled import cifar10_cache

    first = _cifar_tarball(tmp_path / "a", 20)
    copy = tmp_path / "b" / first.relative_to(tmp_path / "a")
    copy.parent.mkdir(parents=True)
    shutil.copyfile(first, copy)
    os.utime(copy, (1e9, 1e9))
    cache = tmp_path / "cache"
    folder = cifar10_cache(tmp_path / "a", cache)
    assert cifar10_cache(tmp_path / "b", cache) == folder and len(list(cache.iterdir())) == 1
    x, y = load_cifar10(tmp_path / "b", "test", cache=cache)
    assert list(y) == list(range(10)) and abs(int(x[3].mean()) - 50) <= 2
    other = cifar10_cache(_cifar_tarball(tmp_path / "c", 40).parents[1], cache)
    assert other != folder and len(list(cache.iterdir())) == 2
