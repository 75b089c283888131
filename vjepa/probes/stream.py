"""Features of a folder data set (``vjepa.probes.folders``), extracted in one streamed pass per split.

``extract_folder(encoder, data, layers, storage, batch_size, workers, device)`` decodes the split's files
with ``workers`` DataLoader processes (0: in this process), runs the frozen encoder batch by batch (bf16
autocast on CUDA, fp32 on CPU: ``features.feature_arithmetic``) and keeps only what the probe heads need,
so memory is bounded by the stored features, never by the images:

    storage {"token_grid": g}            classification: tokens average-pooled to a g x g grid, float16
                                         [N, g*g, D] (g > 1: tokens for the attentive head); g = 1: the
                                         average-pooled token the linear and k-NN heads read, float32
                                         [N, 1, D], the float32 mean of the float16 tokens, as those heads
                                         pool the in-memory sets' tokens (so the same images score the
                                         same); ``y``: [N]
    storage {"token_grid": g,            video classification (clips): tokens average-pooled to t x g x g
             "time_grid": t}             (t capped at the clips' token frames), float16 [N, t*g*g, D];
                                         train videos give train_clips rows each (labels repeated),
                                         val videos clips * views rows each, in order
    storage {"tokens": "all"}            detection: every token of each image, float16 [N, L, D], both
                                         splits; ``y``: a list of {"boxes", "labels"} per image
    storage {"pixels_per_image": P,      dense tasks (seg, depth): per train image, the features
             "seed": s}                  bilinearly interpolated (``seg.bilinear_at``) at P labelled pixels
                                         drawn uniformly (seeded by s, in file order), float16 [N, P, D]
                                         with their labels [N, P]; per val image every token, float16
                                         [M, L, D], with its label map at the input size [M, H, W]

Returns ``{"train", "val", "y_train", "y_val", "grid", "views", "skipped_train", "skipped_val"}`` (``views``:
feature rows per val sample, clips x views for video lists, else 1; ``batch_size`` counts clips then). A sample that
cannot be read raises ``DataFileError`` naming the file (nothing is returned, so nothing is cached), or
with the data spec's ``on_error: skip`` is left out and counted in ``skipped_<split>``.
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch
import torch.nn.functional as F

from vjepa.probes.features import encoder_layers, feature_arithmetic, prepare
from vjepa.probes.seg import bilinear_at, sample_pixels, token_map
from vjepa.probes.shard import ONE


def storage(task: dict, spec: dict) -> dict:
    """What a task keeps of each sample's tokens (part of the feature cache key)."""
    if task["kind"] == "det":
        return {"tokens": "all"}
    if task["kind"] == "classify":
        attentive = task.get("head") == "attentive"
        store = {"token_grid": int(task.get("token_grid", 4 if attentive else 1))}
        if spec["name"] == "video_list":
            store["time_grid"] = int(task.get("time_grid", 2 if attentive else 1))
        elif store["token_grid"] == 1:
            store["pooled"] = "float32 mean of float16 tokens"  # the cache key names the arithmetic
        return store
    return {"pixels_per_image": int(task["pixels_per_image"]), "seed": int(spec.get("seed", 0))}


def _collate(items: list[dict]) -> dict:
    good = [it for it in items if "error" not in it]
    targets = [it["target"] for it in good]
    return {
        "image": torch.stack([it["image"] for it in good]) if good else None,
        "target": torch.stack(targets) if good and torch.is_tensor(targets[0]) else targets,
        "errors": [it["error"] for it in items if "error" in it],
    }


def _pooled(tokens: torch.Tensor, grid, store: dict) -> torch.Tensor:
    """Tokens [B, L, D] on ``grid`` -> average-pooled to (time_grid,) token_grid x token_grid: [B, K, D]."""
    k = store["token_grid"]
    if "time_grid" not in store:
        return F.adaptive_avg_pool2d(token_map(tokens, grid), k).flatten(2).transpose(1, 2)
    x = tokens.transpose(1, 2).unflatten(2, tuple(grid))  # [B, D, T', H', W']
    return F.adaptive_avg_pool3d(x, (min(store["time_grid"], grid[0]), k, k)).flatten(2).transpose(1, 2)


def _kept(tokens, grid, y, store: dict, split: str, size, g: torch.Generator):
    """What the task keeps of a batch's tokens (float16, CPU), and the labels that go with it."""
    if "token_grid" in store:
        if "pooled" in store:  # as classify._pooled pools the in-memory sets' stored tokens
            return tokens.to("cpu", torch.float16).float().mean(1, keepdim=True), y
        return _pooled(tokens, grid, store).to("cpu", torch.float16), y
    if split == "train" and "pixels_per_image" in store:
        pix = sample_pixels(_labelled(y), store["pixels_per_image"], g)
        feats = bilinear_at(token_map(tokens, grid), pix.to(tokens.device), size)
        return feats.to("cpu", torch.float16), torch.gather(y.flatten(1), 1, pix)
    return tokens.to("cpu", torch.float16), y


TRIM_EVERY = 16  # batches between returns of freed heap memory to the system
MMAP_THRESHOLD = 4 << 20  # bytes: blocks this large or larger are mapped on their own and unmapped when freed
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim, _LIBC.mallopt  # noqa: B018  (glibc has both; musl has neither)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


_LIBC = None


def release_freed_memory() -> None:
    """Hand the heap memory freed so far back to the system (glibc's ``malloc_trim``; elsewhere nothing).
    Decoded images are freed batch by batch, but glibc keeps small freed blocks in the process (below its
    mmap threshold), so without this the process's peak memory grows with the number of images read."""
    if _libc():
        _LIBC.malloc_trim(0)


def bound_the_heap() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` for the rest of the process, unless the environment
    sets one (``MALLOC_MMAP_THRESHOLD_``). By default glibc raises the
    threshold to the size of each mapped block freed, up to 32 MiB, after which the per-batch images and
    activations of that size come from the heap, whose fragments the trim cannot return: the peak then grows
    with the folder (measured in ``reports/benchmarks/README.md``, with and without the threshold fixed). True
    where it was set here."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not _libc():
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _labelled(target: torch.Tensor) -> torch.Tensor:
    """Label maps -> IGNORE where a pixel has no label (seg: -1 already; depth: 0 = no measurement)."""
    if target.is_floating_point():
        return torch.where(target > 0, 0, -1)
    return target


@torch.no_grad()
def _pass(encoder, dataset, data, split: str, layers, store: dict, batch_size: int, workers: int, device):
    """One streamed pass over ``dataset`` (a split or a rank's part of it): (features, labels, skipped,
    grid, views), features and labels as lists of per-batch pieces; grid None where no batch was read."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate, persistent_workers=False
    )
    bf16 = feature_arithmetic(device) == "bf16"
    bound_the_heap()
    g = torch.Generator().manual_seed(int(store.get("seed", 0)) * 7919 + (split == "val"))
    feats, ys, skipped, grid, views = [], [], 0, None, 1
    for i, batch in enumerate(loader):
        if i % TRIM_EVERY == TRIM_EVERY - 1:
            release_freed_memory()
        for msg in batch["errors"]:
            print(f"[probes] skipped: {msg}", file=sys.stderr, flush=True)
        skipped += len(batch["errors"])
        if batch["image"] is None:
            continue
        x, target = batch["image"], batch["target"]
        if x.ndim == 6:  # clips: [B, clips * views, 3, T, H, W]
            if split == "val":
                views = x.shape[1]
            else:  # train clips: each a sample of its video's label
                target = target.repeat_interleave(x.shape[1])
            x = x.flatten(0, 1)
        x = prepare(x, data.size).to(device)
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
            tokens = torch.cat(encoder_layers(encoder, x, layers), dim=-1).float()
        grid = tuple(encoder.grid(x[:1]))
        f, y = _kept(tokens, grid, target, store, split, data.size, g)
        feats.append(f)
        if torch.is_tensor(y):
            ys.append(y)
        else:  # boxes: one dict per image
            ys.extend(y)
    return feats, ys, skipped, grid, views


def _split(encoder, data, split: str, layers, store: dict, batch_size: int, workers: int, device, shards):
    """A split's features on rank 0 (None on the other ranks). With several ranks each extracts its part
    (``Shards.part``) and rank 0 joins the parts in sample order; a dense train split, whose pixel draws
    follow one generator through the whole split, is extracted by rank 0 alone."""
    per = 1
    if split == "val" and "test_clips" in data.spec:
        per = int(data.spec["test_clips"]) * int(data.spec["test_views"])
    elif "train_clips" in data.spec:
        per = int(data.spec["train_clips"])
    bs = max(1, batch_size // per)  # clips: ``batch_size`` clips per encoder forward
    dataset = data.split(split)
    sequential = split == "train" and "pixels_per_image" in store
    if shards.world > 1 and not sequential:
        dataset = torch.utils.data.Subset(dataset, shards.part(len(dataset), bs))
    piece, error = None, None
    if shards.is_main or not sequential:
        try:
            piece = _pass(encoder, dataset, data, split, layers, store, bs, workers, device)
        except Exception as exc:  # noqa: BLE001 - raised on every rank by ``check``
            error = exc
    shards.check(error)
    pieces = [piece] if sequential else shards.gather(piece)
    if not shards.is_main:
        return None
    feats = [f for p in pieces for f in p[0]]
    ys = [y for p in pieces for y in p[1]]
    grid = next((p[3] for p in pieces if p[3] is not None), None)
    views = next((p[4] for p in pieces if p[3] is not None), 1)
    if not feats:
        raise ValueError(f"probe data {data.spec['name']}: no readable sample in the {split} split")
    skipped = sum(p[2] for p in pieces)
    return torch.cat(feats), torch.cat(ys) if torch.is_tensor(ys[0]) else ys, skipped, grid, views


def extract_folder(
    encoder, data, layers, store: dict, batch_size: int, workers: int, device, shards=ONE
) -> dict | None:
    """Both splits' features (module docstring); with several ranks (``shards``) on rank 0, None elsewhere."""
    was_training = encoder.training
    encoder.eval()
    try:
        out = {}
        for split in ("train", "val"):
            got = _split(encoder, data, split, layers, store, batch_size, workers, device, shards)
            if got is None:
                continue
            f, y, skipped, grid, views = got
            out.update({split: f, f"y_{split}": y, f"skipped_{split}": torch.tensor(skipped)})
        if not shards.is_main:
            return None
        out["views"] = torch.tensor(views)  # val clips x views per video, their predictions averaged
        out["grid"] = torch.tensor(grid)
    finally:
        encoder.train(was_training)
    return out
