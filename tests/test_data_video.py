"""Video decoding and clip sampling: real clips, and generated files whose frame index is the intensity."""

import av
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vjepa.data import MEAN, STD, VIDEO_SOURCES, JointBatches, resolve_root
from vjepa.data.common import DataFileError
from vjepa.data.video import clip_indices, decode_video, list_videos

ROOT = resolve_root(None)
shared = [
    pytest.mark.shared_data,
    pytest.mark.skipif(ROOT is None, reason="../shared/data not present beside the repository"),
]
LEVEL = 6  # frame i is a flat grey image of intensity LEVEL * i


def write_video(path, n, fps, w=64, h=48):
    codec = "libx264" if "libx264" in av.codecs_available else "ffv1"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "0"} if codec == "libx264" else {}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), LEVEL * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def source_frames(clips):
    """Source frame index of every frame of normalised clips [B, 3, T, S, S]."""
    x = clips * torch.tensor(STD).view(1, 3, 1, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1, 1)
    return (x.mean(dim=(1, 3, 4)) * 255 / LEVEL).round().long()


@pytest.mark.parametrize("frames,stride,n", [(8, 4, 100), (16, 2, 31), (1, 3, 5), (4, 1, 4)])
def test_clip_indices_span_and_start_range(frames, stride, n):
    span = (frames - 1) * stride + 1
    for u in np.linspace(0, 1, 50, endpoint=False).tolist() + [1 - 1e-12]:
        idx = clip_indices(n, frames, stride, u)
        assert len(idx) == frames and idx[-1] - idx[0] == span - 1
        assert (idx.diff() == stride).all() and 0 <= idx[0] <= n - span and idx[-1] <= n - 1
    assert clip_indices(n, frames, stride, 0.0)[0] == 0
    assert clip_indices(n, frames, stride, 1 - 1e-12)[-1] == n - 1  # every start is reachable


def test_clip_indices_short_video_repeats_last_frame():
    assert clip_indices(5, 4, 2, 0.7).tolist() == [0, 2, 4, 4]


def test_sampled_source_frames_match_stride(tmp_path):
    write_video(tmp_path / "a.mp4", 40, fps=30)
    cfg = OmegaConf.create(
        {"name": "video_folder", "path": str(tmp_path), "size": 16, "frames": 4, "frame_stride": 3}
    )
    src = VIDEO_SOURCES["video_folder"](cfg, 8, seed=0, root=None)
    starts = []
    for step in range(3):
        item = src[step]
        assert item["skipped"] == 0 and item["x"].shape == (8, 3, 4, 16, 16)
        idx = source_frames(item["x"])
        assert (idx.diff(dim=1) == 3).all()  # span (4 - 1) * 3 + 1 = 10 source frames
        assert idx[:, 0].min() >= 0 and idx[:, -1].max() <= 39
        starts += idx[:, 0].tolist()
    assert len(set(starts)) > 5  # random temporal start


def test_frames_are_decoded_at_twice_the_clip_size_never_upscaled(tmp_path):
    """By default the short side is decoded at 2 x size, at least 128 (it was 128 for every size, so 224 px
    clips were upscaled crops of 128 px frames); an explicit value, 0 (native) included, is kept."""
    write_video(tmp_path / "a.mp4", 4, fps=30, w=640, h=480)
    for size, short, want in ((64, None, 128), (224, None, 448), (224, 0, 480), (32, 96, 96)):
        cfg = {"name": "video_folder", "path": str(tmp_path), "size": size, "frames": 2, "frame_stride": 1}
        src = VIDEO_SOURCES["video_folder"](OmegaConf.create({**cfg, "decode_short_side": short}), 1, 0, None)
        assert src[0]["x"].shape == (1, 3, 2, size, size)
        (frames, _), *_ = src.cache.items.values()
        assert min(frames.shape[1:3]) == want, (size, short)


def test_target_fps_sets_stride(tmp_path):
    write_video(tmp_path / "a.mp4", 40, fps=25)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.mp4,0\n")
    cfg = OmegaConf.create({"name": "video_folder", "path": str(listing), "size": 16, "frames": 4, "fps": 10})
    idx = source_frames(VIDEO_SOURCES["video_folder"](cfg, 6, seed=0, root=None)[0]["x"])
    assert (idx.diff(dim=1) == torch.tensor([3, 2, 3])).all()  # 25 / 10 = 2.5 frames apart, rounded


def test_video_list_csv_and_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("sub/b.avi", "a.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.split("/")[-1] for p in list_videos(tmp_path)] == ["a.mp4", "b.avi"]
    listing = tmp_path / "clips.csv"
    listing.write_text(f"# comment\n{tmp_path}/a.mp4 3\nsub/b.avi 1\n")
    assert list_videos(listing) == [f"{tmp_path}/a.mp4", f"{tmp_path}/sub/b.avi"]
    # paths with spaces or commas: the first line is not taken for a header, nor cut at the first space
    (tmp_path / "my clips").mkdir()
    (tmp_path / "my clips" / "c d").write_bytes(b"x")  # no extension: found on disk
    listing.write_text('my clips/a b.mp4 3\nmy clips/c d  7\n"x,y.mp4",2\nsub/b.avi,1\n')
    want = ["my clips/a b.mp4", "my clips/c d", "x,y.mp4", "sub/b.avi"]
    assert list_videos(listing) == [f"{tmp_path}/{w}" for w in want]


def test_corrupt_video_raise_and_skip(tmp_path):
    write_video(tmp_path / "good.mp4", 12, fps=30)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    cfg = {"name": "video_folder", "path": str(tmp_path), "size": 16, "frames": 2}
    src = VIDEO_SOURCES["video_folder"](OmegaConf.create(cfg), 2, seed=0, root=None)
    with pytest.raises(DataFileError, match="broken.mp4"):
        src[0]  # the batch holds both files

    src = VIDEO_SOURCES["video_folder"](OmegaConf.create({**cfg, "on_error": "skip"}), 2, seed=0, root=None)
    item = JointBatches({"video": src})[0]
    broken = [f.endswith("broken.mp4") for f in src.files]
    expected = 0  # each position tries the next positions of the epoch order until a good file
    for pos in src.order.positions(0, 2):
        while broken[src.order.index(pos)]:
            expected, pos = expected + 1, pos + 1
    assert expected >= 1 and item["skipped_video"] == expected and item["video"].shape == (2, 3, 2, 16, 16)
    assert (source_frames(item["video"]).diff(dim=1) == 2).all()  # real clips of good.mp4, not zeros
    assert torch.equal(item["video"], src[0]["x"])

    (tmp_path / "good.mp4").unlink()
    src = VIDEO_SOURCES["video_folder"](
        OmegaConf.create({**cfg, "on_error": "skip", "max_skips": 3}), 2, 0, None
    )
    with pytest.raises(DataFileError, match="gave up after 4 unreadable samples(.|\\n)*broken.mp4"):
        src[0]


@pytest.mark.shared_data
@pytest.mark.skipif(ROOT is None, reason="../shared/data not present beside the repository")
def test_decode_real_clip():
    video, fps = decode_video(ROOT / "videos/bikes.mp4")
    assert video.dtype == torch.uint8 and video.shape == (250, 128, 301, 3) and fps == 25
    assert video.float().std() > 20 and not torch.equal(video[0], video[100])
    full, _ = decode_video(ROOT / "videos/carphone_pristine.mp4", short_side=0)
    assert full.shape == (120, 144, 176, 3)


@pytest.mark.shared_data
@pytest.mark.skipif(ROOT is None, reason="../shared/data not present beside the repository")
def test_shared_clips_source():
    cfg = OmegaConf.create({"name": "clips", "size": 32, "frames": 8, "frame_stride": 2})
    src = VIDEO_SOURCES["clips"](cfg, 6, seed=0, root=ROOT)
    assert len(src.files) == 6
    item = src[0]  # one epoch of the six clips
    assert item["skipped"] == 0 and item["x"].shape == (6, 3, 8, 32, 32) and torch.isfinite(item["x"]).all()
    assert (item["x"][:, :, 0] != item["x"][:, :, -1]).flatten(1).any(1).all()  # frames move
    assert torch.equal(item["x"], src[0]["x"])
