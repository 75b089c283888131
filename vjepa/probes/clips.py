"""Video classification data from clip lists (``video_list``), the convention of Meta's Kinetics,
Something-Something v2 and Diving-48 evaluations: a text file per split with one ``<video path> <label>``
per line (space- or comma-separated; the path may hold spaces, the label is the last field, an integer
class index; lines starting with ``#`` are comments). Paths are relative to the list's folder or absolute.

``read_lists(base, spec)`` reads both lists (``<folder>/<train>``, ``<folder>/<val>``) and checks each line:
a line without an integer label, or a label outside ``0..num_classes - 1`` (``num_classes`` null: the
largest train label + 1) raises ``DataFileError`` naming the list, the line and the video, whatever
``on_error``. ``load(spec, path, label, size, split)`` decodes one video (PyAV, ``vjepa.data.video``) and
cuts its clips: ``frames`` frames ``frame_stride`` apart, the frames resized so the shorter side covers the
size. The train split gives ``train_clips`` clips a video, each a training sample of the video's label:
with 1 (the default) the temporal centre and the centre crop; with more, each clip's start and its crop's
place along the longer side drawn at random, from a generator seeded by the data spec's ``seed`` and the
video's path (every rank, worker and rerun reads the same clips): the frozen-feature stand-in for the
random clips and crops Meta's attentive probe draws anew each epoch. The val split gives ``test_clips``
clips with evenly spaced starts times ``test_views`` spatial crops spread along the longer side, as
V-JEPA's attentive evaluation reads a test video; the probe averages the predicted probabilities of a
video's clips and views (``vjepa.probes.classify``). Returns ``{"image": uint8 [clips * views, 3, frames,
H, W], "target": label}``.
A missing or unreadable video raises ``DataFileError`` naming the file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from vjepa.data.common import DataFileError

LINE = re.compile(r"^(?P<path>.*?\S)[\s,]+(?P<label>[+-]?\d+)$")


def read_list(path: Path) -> list[tuple[str, int, int]]:
    """(video path, label, line number) of every entry of a clip list."""
    if not path.is_file():
        raise DataFileError(
            f"video_list: clip list {path} does not exist (one '<video path> <label>' a line)"
        )
    items = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if m is None:
            raise DataFileError(
                f"video_list: {path} line {n}: expected '<video path> <integer label>', got {line!r}"
            )
        video = Path(m["path"].strip().strip('"')).expanduser()
        items.append((str(video if video.is_absolute() else path.parent / video), int(m["label"]), n))
    return items


def read_lists(base: Path, spec: dict) -> tuple[dict, tuple[str, ...]]:
    lists = {split: base / spec[split] for split in ("train", "val")}
    read = {split: read_list(path) for split, path in lists.items()}
    n = spec.get("num_classes")
    n = int(n) if n is not None else 1 + max((lab for _, lab, _ in read["train"]), default=-1)
    for split, items in read.items():
        for video, label, line in items:
            if not 0 <= label < n:
                raise DataFileError(
                    f"video_list: {lists[split]} line {line}: label {label} of {video} is outside the "
                    f"classes 0..{n - 1}"
                    + (
                        ""
                        if spec.get("num_classes") is not None
                        else " (num_classes: null, so the classes are 0 .. the largest train label)"
                    )
                )
    samples = {split: [(video, label) for video, label, _ in items] for split, items in read.items()}
    return samples, tuple(str(c) for c in range(n))


def _decoded(path: str, short_side: int) -> torch.Tensor:
    from vjepa.data.video import decode_video

    if not Path(path).is_file():
        raise DataFileError(f"video file {path} does not exist")
    try:
        video, _ = decode_video(path, short_side)
    except DataFileError:
        raise
    except Exception as exc:  # PyAV raises many types; the user needs the file name
        raise DataFileError(f"cannot read video file {path}: {type(exc).__name__}: {exc}") from None
    return video  # uint8 [N, h, w, 3]


def _covering(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [n, h, w, 3] -> uint8 [n, 3, H', W'] scaled (bilinear) so that it covers ``size``."""
    x = video.permute(0, 3, 1, 2)
    h, w = size
    scale = max(h / x.shape[-2], w / x.shape[-1])
    out = (max(h, round(x.shape[-2] * scale)), max(w, round(x.shape[-1] * scale)))
    if out == tuple(x.shape[-2:]):
        return x
    x = F.interpolate(x.float(), size=out, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _offsets(slack: int, views: int) -> list[int]:
    """Where ``views`` crops start along a side ``slack`` pixels longer than the crop: centred, or spread."""
    if views == 1:
        return [slack // 2]
    return [round(j * slack / (views - 1)) for j in range(views)]


def _video_generator(seed: int, path: str) -> torch.Generator:
    digest = hashlib.sha256(f"{int(seed)}/{path}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def load(spec: dict, path: str, label: int, size: tuple[int, int], split: str) -> dict:
    from vjepa.data.video import clip_indices

    h, w = size
    video = _decoded(path, min(size))
    frames, stride = int(spec["frames"]), float(spec["frame_stride"])
    if split == "val":
        n_clips, n_views = int(spec["test_clips"]), int(spec["test_views"])
        starts = [(k + 0.5) / n_clips for k in range(n_clips)]
    else:
        n_clips, n_views = int(spec.get("train_clips", 1)), 1
        g = _video_generator(spec.get("seed", 0), path) if n_clips > 1 else None
        starts = torch.rand(n_clips, generator=g).tolist() if g is not None else [0.5]
    idx = torch.cat([clip_indices(len(video), frames, stride, u) for u in starts])
    x = _covering(video[idx], size)  # [clips * frames, 3, H', W']
    tall = x.shape[-2] - h > x.shape[-1] - w  # views spread along the longer side
    slack = x.shape[-2] - h if tall else x.shape[-1] - w
    if split != "val" and n_clips > 1:  # one crop a clip, at a random place
        places = torch.randint(slack + 1, (n_clips,), generator=g).tolist()
        x = x.unflatten(0, (n_clips, frames))
        crops = [_crop(x[k], places[k], tall, size) for k in range(n_clips)]
        clips = torch.stack(crops)[:, :, None]  # [clips, frames, 1, 3, h, w]
    else:
        crops = [_crop(x, o, tall, size) for o in _offsets(slack, n_views)]
        clips = torch.stack(crops, 1).unflatten(0, (n_clips, frames))  # [clips, frames, views, 3, h, w]
    clips = clips.permute(0, 2, 3, 1, 4, 5).flatten(0, 1)  # [clips * views, 3, frames, h, w]
    return {"image": clips.contiguous(), "target": torch.tensor(int(label))}


def _crop(x: torch.Tensor, place: int, tall: bool, size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` crop of frames ``x`` [..., H', W'] at ``place`` along the longer side, centred across."""
    h, w = size
    top, left = (place, (x.shape[-1] - w) // 2) if tall else ((x.shape[-2] - h) // 2, place)
    return x[..., top : top + h, left : left + w]
