"""Each process of a distributed run loads only its rows of the global batch, and they are exactly those rows."""

import pytest
import torch
from omegaconf import OmegaConf

from tests.test_data_files import folder_cfg, write_images
from tests.test_data_video import write_video
from vjepa.data import IMAGE_SOURCES, VIDEO_SOURCES, JointBatches, build_train_loader, resolve_root

ROOT = resolve_root(None)
BATCH = 8


def _folder_with_a_bad_jpeg(tmp_path):
    write_images(tmp_path / "img", 6, fmt="jpg")
    data = (tmp_path / "img" / "img03.jpg").read_bytes()
    (tmp_path / "img" / "img03.jpg").write_bytes(data[: len(data) // 2])
    return IMAGE_SOURCES["image_folder"](folder_cfg(tmp_path / "img", on_error="skip"), BATCH, 3, None)


def _video_folder(tmp_path):
    (tmp_path / "vid").mkdir()
    for k, n in enumerate((20, 12, 30)):
        write_video(tmp_path / "vid" / f"v{k}.mp4", n, fps=10)
    (tmp_path / "vid" / "broken.mp4").write_bytes(b"not a video")
    cfg = {"name": "video_folder", "path": str(tmp_path / "vid"), "size": 8, "frames": 4, "on_error": "skip"}
    return VIDEO_SOURCES["video_folder"](OmegaConf.create(cfg), BATCH, 3, None)


def _shared(registry, name, **cfg):
    def build(tmp_path):
        if ROOT is None:
            pytest.skip("../shared/data not present beside the repository")
        return registry[name](OmegaConf.create({"name": name, "size": 8, **cfg}), BATCH, 3, ROOT)

    return build


SOURCES = {
    "shapes": lambda tmp_path: IMAGE_SOURCES["shapes"](OmegaConf.create({"size": 16}), BATCH, 3, None),
    "moving_shapes": lambda tmp_path: VIDEO_SOURCES["moving_shapes"](
        OmegaConf.create({"size": 16, "frames": 4}), BATCH, 3, None
    ),
    "image_folder_with_skip": _folder_with_a_bad_jpeg,
    "video_folder_with_skip": _video_folder,
    "cifar10": _shared(IMAGE_SOURCES, "cifar10"),
    "mnist": _shared(IMAGE_SOURCES, "mnist"),
    "moving_mnist": _shared(VIDEO_SOURCES, "moving_mnist", frames=4),
    "clips": _shared(VIDEO_SOURCES, "clips", frames=4),
}


SHARED = ("cifar10", "mnist", "moving_mnist", "clips")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.shared_data) if n in SHARED else n for n in SOURCES]
)
@pytest.mark.parametrize("world", [2, 4])
def test_ranks_load_exactly_their_rows_of_the_global_batch(tmp_path, name, world):
    src = SOURCES[name](tmp_path)
    modality = (
        "video" if name in ("moving_shapes", "video_folder_with_skip", "moving_mnist", "clips") else "image"
    )
    for step in (0, 5):
        whole = JointBatches({modality: src})[step]
        parts = [JointBatches({modality: src}, rank, world)[step] for rank in range(world)]
        assert all(p[modality].shape[0] == BATCH // world for p in parts)
        assert torch.equal(torch.cat([p[modality] for p in parts]), whole[modality])
        if "skipped_" + modality in whole:  # each skip is counted by the rank whose row it replaced
            assert sum(p["skipped_" + modality] for p in parts) == whole["skipped_" + modality]
    if name.endswith("_with_skip"):
        assert sum(JointBatches({modality: src})[s]["skipped_" + modality] for s in range(4)) > 0


def test_distributed_loader_gives_each_modality_its_slice():
    cfg = OmegaConf.create(
        {
            "mix": "joint",
            "image_fraction": 0.5,
            "image": {"name": "shapes", "size": 16},
            "video": {"name": "moving_shapes", "size": 16, "frames": 4},
        }
    )
    whole = list(build_train_loader(cfg, 8, 1, 2, 4))
    halves = [list(build_train_loader(cfg, 8, 1, 2, 4, rank, 2)) for rank in range(2)]
    assert len(whole) == len(halves[0]) == 2
    for k, batch in enumerate(whole):
        for modality in ("image", "video"):
            assert batch[modality].shape[0] == 4
            assert torch.equal(torch.cat([h[k][modality] for h in halves]), batch[modality])


def test_a_batch_that_does_not_split_over_the_processes_is_named():
    src = IMAGE_SOURCES["shapes"](OmegaConf.create({"size": 16}), 6, 0, None)
    with pytest.raises(ValueError, match="6 image samples per step do not split over 4 processes"):
        JointBatches({"image": src}, 1, 4)
