"""Training data as step-indexed batches.

Contract: a *batch source* (``BatchSource``) is a map-style dataset whose item ``s`` is the whole batch for
training step ``s``, a float tensor normalised with ``normalize`` ([B, 3, H, W] images or [B, 3, T, H, W]
clips); all its randomness comes from ``step_generator(seed, s, ...)``. ``batch(s, rows)`` gives only the
rows ``rows`` (a range) of that batch, equal to slicing the whole one: each process of a distributed run
loads only its own slice. The trainer iterates a DataLoader over ``range(start_step, steps)``, so loading
runs in worker processes, and a resumed run sees exactly the batches an uninterrupted run would have seen,
with no loader state in the checkpoint.

Image and video sources are looked up by name in ``IMAGE_SOURCES`` / ``VIDEO_SOURCES``; each entry is a
factory ``(source_cfg, batch_size, seed, data_root) -> batch source``. Sources that read files may return
``{"x": batch, "skipped": files skipped for it}`` instead of the tensor (see ``JointBatches``). The keys each
factory reads are documented in its module: ``images``, ``video``, ``moving_mnist`` (file-backed sources are
imported on first use, so that ``import vjepa.data`` stays light).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vjepa import schema
from vjepa.data.synthetic import generate_moving_shapes, generate_shapes

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MIXES = schema.choices("data.mix")


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, ...] in [0, 1] -> ImageNet-normalised."""
    shape = (1, 3) + (1,) * (x.ndim - 2)
    return (x - torch.tensor(MEAN).view(shape)) / torch.tensor(STD).view(shape)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, stream).

    Its seed is linear, so stream ``s + 101`` at step ``t`` is stream ``s`` at step ``t + 1``: two streams in
    use must differ modulo 101 (the random streams of a run are listed and checked in tests/test_streams.py).
    """
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) * 101 + int(stream))


def hashed_generator(*key: int) -> torch.Generator:
    """A generator that depends only on the integers ``key``, hashed. torch's CPU generator keeps only the low
    32 bits of a seed, so the hashed seeds act as uniform 32-bit values: one meets a given ``step_generator``
    seed with probability 2**-32 (a run of 10**4 steps with a few streams: about 10**-5 per hashed seed), not
    never, although its full value lies at 2**62 and above. Kept as it is: changing it changes every run
    that draws with it."""
    digest = hashlib.blake2b(repr(tuple(int(k) for k in key)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(2**62 + int.from_bytes(digest, "little") % 2**62)


def split_batch(batch_size: int, mix: str, image_fraction: float = 0.5) -> tuple[int, int]:
    """Samples per step for (images, clips)."""
    if mix == "image":
        return batch_size, 0
    if mix == "video":
        return 0, batch_size
    if mix == "joint":
        n_img = min(max(round(image_fraction * batch_size), 1), batch_size - 1)
        return n_img, batch_size - n_img
    raise ValueError(f"data.mix must be one of {MIXES}, got {mix!r}")


class BatchSource(Dataset):
    """Base of the batch sources: item ``step`` is ``batch(step, range(batch_size))``."""

    batch_size: int

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        return self.batch(step, range(self.batch_size))

    def batch(self, step: int, rows: range):
        raise NotImplementedError


SHAPES_STREAM, MOVING_SHAPES_STREAM = 6, 7  # step_generator streams (1 and 2 are the masks' second setting)


class ShapesBatches(BatchSource):
    def __init__(
        self, size: int, batch_size: int, seed: int, max_objects: int = 4, stream: int = SHAPES_STREAM
    ):
        self.size, self.batch_size, self.seed, self.max_objects, self.stream = (
            size,
            batch_size,
            seed,
            max_objects,
            stream,
        )

    def batch(self, step: int, rows: range) -> torch.Tensor:
        # Samples are drawn in sequence from one generator: generate the whole batch, keep the rows.
        g = step_generator(self.seed, step, self.stream)
        x = generate_shapes(self.batch_size, self.size, g, self.max_objects)["image"]
        return normalize(x[rows.start : rows.stop])


class MovingShapesBatches(BatchSource):
    def __init__(
        self, size: int, frames: int, batch_size: int, seed: int, stream: int = MOVING_SHAPES_STREAM
    ):
        self.size, self.frames, self.batch_size, self.seed, self.stream = (
            size,
            frames,
            batch_size,
            seed,
            stream,
        )

    def batch(self, step: int, rows: range) -> torch.Tensor:
        g = step_generator(self.seed, step, self.stream)  # whole batch, as ShapesBatches
        x = generate_moving_shapes(self.batch_size, self.frames, self.size, g)["video"]
        return normalize(x[rows.start : rows.stop])


def _lazy(module: str, name: str) -> Callable:
    def factory(cfg, batch_size, seed, root):
        return getattr(importlib.import_module(module), name)(cfg, batch_size, seed, root)

    factory.__name__ = factory.__qualname__ = name
    return factory


IMAGE_SOURCES: dict[str, Callable] = {
    "shapes": lambda cfg, b, seed, root: ShapesBatches(
        cfg.size, b, seed, schema.leaf(cfg, "data.image.max_objects")
    ),
    "cifar10": _lazy("vjepa.data.images", "cifar10"),
    "camvid": _lazy("vjepa.data.images", "camvid"),
    "mnist": _lazy("vjepa.data.images", "mnist"),
    "image_folder": _lazy("vjepa.data.images", "image_folder"),
}
VIDEO_SOURCES: dict[str, Callable] = {
    "moving_shapes": lambda cfg, b, seed, root: MovingShapesBatches(cfg.size, cfg.frames, b, seed),
    "clips": _lazy("vjepa.data.video", "clips"),
    "video_folder": _lazy("vjepa.data.video", "video_folder"),
    "moving_mnist": _lazy("vjepa.data.moving_mnist", "moving_mnist"),
}


def resolve_root(root: str | None) -> Path | None:
    """The data root: the configured path, else ``../shared/data`` beside the repository if present."""
    if root:
        return Path(root).expanduser()
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return default if default.is_dir() else None


class JointBatches(Dataset):
    """Item s: {"image": ..., "video": ...} for the modalities this run trains on; with ``rank``/``world``,
    process ``rank``'s contiguous 1/world slice of each modality's batch (its sample count must divide).

    A source whose item is ``{"x": batch, "skipped": n}`` (file-backed sources, which may skip unreadable
    files) also adds ``"skipped_<modality>": n``, a plain int; ``split_skipped`` separates the two. With
    ``masks`` (a ``vjepa.masks.LoaderMasks``) the item also holds ``"masks_<modality>"``: the masks of these
    rows at step s, drawn here (in the loader's workers, off the training step); ``split_masks`` takes them.
    """

    def __init__(self, sources: dict[str, BatchSource], rank: int = 0, world: int = 1, masks=None):
        for name, src in sources.items():
            if src.batch_size % world:
                raise ValueError(
                    f"{src.batch_size} {name} samples per step do not split over {world} processes"
                )
        self.sources, self.rank, self.world, self.masks = sources, rank, world, masks

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor | int]:
        out = {}
        for name, src in self.sources.items():
            n = src.batch_size // self.world
            item = src.batch(step, range(self.rank * n, (self.rank + 1) * n))
            if isinstance(item, dict):
                out[name], out[f"skipped_{name}"] = item["x"], int(item["skipped"])
            else:
                out[name] = item
            if self.masks is not None:
                rows = (self.rank * n, (self.rank + 1) * n)
                out[f"masks_{name}"] = self.masks.rows(step, name, src.batch_size, out[name].shape, *rows)
        return out


def split_masks(batch: dict) -> tuple[dict, dict[str, list]]:
    """A ``JointBatches`` item -> (the item without its masks, {modality: the masks drawn with it})."""
    masks = {k[len("masks_") :]: v for k, v in batch.items() if k.startswith("masks_")}
    return {k: v for k, v in batch.items() if not k.startswith("masks_")}, masks


def split_skipped(batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """A ``JointBatches`` item -> ({modality: tensor}, {"skipped_<modality>": count})."""
    tensors = {k: v for k, v in batch.items() if not k.startswith("skipped_")}
    return tensors, {k: int(v) for k, v in batch.items() if k.startswith("skipped_")}


def build_sources(data_cfg, batch_size: int, seed: int) -> dict[str, BatchSource]:
    n_img, n_vid = split_batch(batch_size, data_cfg.mix, data_cfg.image_fraction)
    root = resolve_root(data_cfg.get("root"))
    sources = {}
    for key, n, registry in (("image", n_img, IMAGE_SOURCES), ("video", n_vid, VIDEO_SOURCES)):
        if n:
            name = data_cfg[key].name
            if name not in registry:
                raise ValueError(f"data.{key}.name={name!r} is not one of {sorted(registry)}")
            sources[key] = registry[name](data_cfg[key], n, seed, root)
    return sources


def build_train_loader(
    data_cfg,
    batch_size: int,
    seed: int,
    start_step: int,
    steps: int,
    rank: int = 0,
    world: int = 1,
    sources: dict[str, BatchSource] | None = None,
    pin_memory: bool = False,
    masks=None,
) -> DataLoader:
    """Batches for steps ``start_step .. steps - 1``, in order (process ``rank``'s slices of them), from
    ``sources`` where given (``build_sources`` of the same arguments), else from sources built here.
    ``pin_memory`` (for a CUDA run) hands them over in pinned memory, so their copy to the device does not
    wait for the work queued before it. ``masks`` (a ``vjepa.masks.LoaderMasks``): each batch also carries
    its masks, drawn in the loader's workers (``JointBatches``)."""
    workers = int(schema.leaf(data_cfg, "data.num_workers"))
    if sources is None:
        sources = build_sources(data_cfg, batch_size, seed)
    return DataLoader(
        JointBatches(sources, rank, world, masks),
        batch_size=None,
        sampler=range(start_step, steps),
        num_workers=workers,
        prefetch_factor=int(schema.leaf(data_cfg, "data.prefetch")) if workers else None,
        persistent_workers=False,
        pin_memory=pin_memory,
    )
