"""Video batch sources over files decoded with PyAV: the shared clips, a folder or a CSV list of videos.

Item ``step``: ``{"x": normalised float [B, 3, frames, size, size], "skipped": files skipped for it}``.
Each worker decodes a file once, to uint8 frames with the short side capped at ``decode_short_side``, keeps
it in an LRU cache of ``cache_mb``, and cuts clips from memory (per-step decoding of a 1280x720 H.264 file
is far too slow). The file for each sample follows ``EpochOrder``; temporal start, crop, flip and jitter
come from ``step_generator(seed, step, STREAM)``.

Clip sampling: ``frames`` = T frames ``s`` apart, ``s = frame_stride``, or with ``fps`` set
``s = native fps / fps``; frame k of the clip is source frame ``start + round(k * s)``, so a clip spans
``round((T - 1) * s) + 1`` source frames, and ``start`` is uniform in ``[0, n - span]``. A video shorter than
the span starts at 0 and repeats its last frame. The same crop box and flip apply to every frame.

Keys (``data.video.*``): size; frames (default 8); frame_stride (2); fps (null = use frame_stride);
crop_scale [lo, hi] ([0.3, 1.0]); crop_ratio ([3/4, 4/3]); flip (true); color_jitter (0.0);
decode_short_side (null: ``default_short_side(size)``, twice the clip size and at least 128 px; never
upscaled; 0 = native); cache_mb (2048, per worker); on_error (raise|skip); max_skips (16). ``clips``: paths
(list, relative to data.root or absolute; default the six shared clips). ``video_folder``: path (a folder
searched recursively for video files, or a .csv/.txt file with one path per line; extra comma- or
space-separated columns are ignored, paths may hold spaces (``_listed_path``), relative paths are relative
to the list).
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from functools import partial
from pathlib import Path

import numpy as np
import torch

from vjepa import schema
from vjepa.data import BatchSource, normalize, step_generator
from vjepa.data.common import (
    BadFiles,
    DataFileError,
    DataNotFoundError,
    EpochOrder,
    check_on_error,
    load_batch,
    require_path,
    user_path,
)
from vjepa.data.transforms import Augment

STREAM, PERM_STREAM = 4, 54
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".ts")
SHARED_CLIPS = (
    "videos/bigbuckbunny.mp4",
    "videos/bikes.mp4",
    "videos/carphone_pristine.mp4",
    "videos/vtest.avi",
    "videos/Megamind.avi",
    "videos/tree.avi",
)


def decode_video(path, short_side: int = 128) -> tuple[torch.Tensor, float]:
    """All frames as uint8 [N, H, W, 3], short side scaled down to ``short_side``; and the native fps (0 if
    unknown). Raises ``DataFileError`` for a file without video frames; decoder errors propagate."""
    import av
    from av.video.reformatter import VideoReformatter

    frames, size = [], None
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DataFileError(f"cannot read video file {path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0  # read now: touching the stream after close crashes PyAV
        fmt = VideoReformatter()  # one scaler context for all frames; frame.reformat builds one per frame
        for frame in container.decode(stream):
            if size is None:
                k = min(1.0, short_side / min(frame.width, frame.height)) if short_side else 1.0
                size = (max(1, round(frame.width * k)), max(1, round(frame.height * k)))
            rgb = fmt.reformat(frame, format="rgb24", width=size[0], height=size[1], interpolation="AREA")
            frames.append(rgb.to_ndarray())
    if not frames:
        raise DataFileError(f"cannot read video file {path}: no decodable frames")
    return torch.from_numpy(np.stack(frames)), fps


def clip_indices(num_frames: int, frames: int, stride: float, u: float) -> torch.Tensor:
    """Source frame indices [frames] of a clip at ``stride`` with start fraction ``u`` in [0, 1)."""
    span = math.floor((frames - 1) * stride + 0.5) + 1
    start = int(u * (max(num_frames - span, 0) + 1))
    idx = torch.tensor([start + math.floor(k * stride + 0.5) for k in range(frames)])
    return idx.clamp_(max=num_frames - 1)


class FrameCache:
    """LRU cache path -> (frames, fps), bounded in bytes (always keeps the newest entry)."""

    def __init__(self, budget_mb: float):
        self.budget, self.items, self.nbytes = budget_mb * 2**20, OrderedDict(), 0

    def get(self, path: str, decode):
        if path in self.items:
            self.items.move_to_end(path)
            return self.items[path]
        value = self.items[path] = decode()
        self.nbytes += value[0].nbytes
        while self.nbytes > self.budget and len(self.items) > 1:
            self.nbytes -= self.items.popitem(last=False)[1][0].nbytes
        return value


def default_short_side(size: int) -> int:
    """Frames are decoded with the short side at twice the clip ``size`` (at least 128 px), so a random crop
    of 30 % of the area is still downsampled to ``size``: 128 px for the tiny preset's 32 px clips, 448 for
    224 (a fixed 128 upscaled every 224 px clip of the paper presets)."""
    return max(128, 2 * size)


class VideoBatches(BatchSource):
    def __init__(self, files: list[str], cfg, batch_size: int, seed: int):
        self.files, self.batch_size, self.seed = files, batch_size, seed
        self.aug = Augment.from_cfg(cfg, color_jitter=0.0)
        self.frames = int(schema.leaf(cfg, "data.video.frames"))
        self.stride = float(cfg.get("frame_stride", 2))
        self.fps = float(cfg["fps"]) if cfg.get("fps") else None
        short = cfg.get("decode_short_side")
        self.short_side = default_short_side(int(cfg["size"])) if short is None else int(short)
        self.cache_mb = float(cfg.get("cache_mb", 2048))
        self.on_error = check_on_error(schema.leaf(cfg, "data.video.on_error"), "data.video.on_error")
        self.max_skips = int(schema.leaf(cfg, "data.video.max_skips"))
        if self.frames < 1 or self.stride <= 0 or (self.fps is not None and self.fps <= 0):
            raise ValueError(f"need data.video.frames >= 1 and frame_stride, fps > 0, got {dict(cfg)}")
        self.order = EpochOrder(len(files), seed, PERM_STREAM)
        self.cache, self.bad = FrameCache(self.cache_mb), BadFiles()

    def __getstate__(self):  # workers start with an empty cache
        return {**self.__dict__, "cache": FrameCache(self.cache_mb)}

    def decoded(self, path: str) -> tuple[torch.Tensor, float]:
        return self.cache.get(
            path, lambda: self.bad.call(path, "video", partial(decode_video, path, self.short_side))
        )

    def stride_for(self, path: str, native_fps: float) -> float:
        if self.fps is None:
            return self.stride
        if native_fps <= 0:
            raise DataFileError(
                f"video file {path} has no frame rate; set data.video.fps=null to use frame_stride"
            )
        return native_fps / self.fps

    def batch(self, step: int, rows: range) -> dict:
        g = step_generator(self.seed, step, STREAM)
        params = self.aug.rows(self.aug.draw(g, self.batch_size), rows)
        starts = torch.rand(self.batch_size, generator=g, dtype=torch.float64)[rows.start : rows.stop]

        def load(index: int, j: int) -> torch.Tensor:
            path = self.files[index]
            video, fps = self.decoded(path)
            idx = clip_indices(len(video), self.frames, self.stride_for(path, fps), float(starts[j]))
            return self.aug.crop(video, params, j, index=idx)

        pos = self.order.positions(step, self.batch_size, rows)
        xs, skipped = load_batch(self.order, pos, load, self.on_error, self.max_skips, "data.video.on_error")
        return {"x": normalize(self.aug.jitter(torch.stack(xs), params)), "skipped": skipped}


def list_videos(path: Path) -> list[str]:
    """Video files under a folder (recursive, sorted), or the paths listed in a .csv/.txt file."""
    if path.is_dir():
        found = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(VIDEO_EXTS)]
        return found
    files, lines = [], [ln.strip() for ln in path.read_text().splitlines()]
    for line in [ln for ln in lines if ln and not ln.startswith("#")]:
        p = _listed_path(line, path.parent)
        if not files and not p.exists() and not p.name.lower().endswith(VIDEO_EXTS):
            continue  # a header line such as "path,label"
        files.append(str(p))
    return files


def _listed_path(line: str, base: Path) -> Path:
    """The path a list line starts with, before its other columns: the first CSV field (quotes allowed) where
    the line has a comma, or the longest run of space-separated words that ends in a video extension (so
    "my clips/a.mp4 3" is "my clips/a.mp4") or else names a file; the first field or word where none does."""
    import csv

    def resolve(text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else base / p

    words = [line[: m.start()] for m in re.finditer(r"\s+", line)] + [line]
    candidates = ([next(csv.reader([line]))[0].strip()] if "," in line else []) + words[::-1]
    for test in (lambda c: c.lower().endswith(VIDEO_EXTS), lambda c: resolve(c).is_file()):  # no stat first
        found = next((c for c in candidates if test(c)), None)
        if found is not None:
            return resolve(found)
    return resolve(candidates[0] if "," in line else words[0])


def clips(cfg, batch_size, seed, root):
    given = cfg.get("paths")
    if given:
        files = [str(user_path(p, root, "data.video.paths")) for p in given]
    else:
        files = [str(require_path(root, p, "data.video.name=clips")) for p in SHARED_CLIPS]
    return VideoBatches(files, cfg, batch_size, seed)


def video_folder(cfg, batch_size, seed, root):
    files = list_videos(user_path(cfg.get("path"), root, "data.video.path"))
    if not files:
        raise DataNotFoundError(
            f"data.video.path={cfg.get('path')} lists no video files; set data.video.path=..."
        )
    return VideoBatches(files, cfg, batch_size, seed)
