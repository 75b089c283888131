"""Training-step benchmark: `python -m vjepa.bench [options] [overrides ...]`.

For each configuration it times full training steps on synthetic batches (the production ``train_step``,
instrumented by ``vjepa.timing``) and prints one JSON line: median step time, the time of each part (mask
sampling, target encoder, online encoder, predictor, loss, distance weights, backward, optimizer, EMA), each
part's share, samples/s, tokens/s and peak memory (``peak_memory_scope``: this configuration on CUDA, the
process's peak so far on CPU). ``--compare A B`` runs two override sets interleaved in one process, on the
base of one ``--setting`` if given, and prints their ratios (robust to a noisy machine).
``--encoder-scaling`` measures the online encoder's forward + backward at a mask ratio against the same
encoder on all tokens (``--steps`` timed passes after ``--warmup``).

Named settings (``--setting``): ``anchor_s1`` / ``anchor_s2`` are the settings of Meta's released V-JEPA 2.1
step measured in ``shared/paper/anchor-timing.md``; ``tiny_image`` / ``tiny_video`` / ``tiny_joint`` and
``small_image`` / ``small_video`` / ``small_joint`` are the presets per modality.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import statistics
import sys
import tempfile
import time

import torch

ANCHOR_MODEL = [
    "model.embed_dim=192",
    "model.depth=12",
    "model.num_heads=3",
    "model.patch_size=8",
    "predictor.depth=4",
    "predictor.width=96",
    "predictor.num_heads=4",
    "loss.distance=l1",
    "loss.context.weight=0.5",
    "loss.context.distance_weighting=true",
    "model.deep_supervision=true",
    "model.pos=rope",
]
SETTINGS = {
    "anchor_s1": [
        *ANCHOR_MODEL,
        "mask=vjepa21",
        "data.mix=video",
        "data.video.frames=16",
        "data.video.size=64",
        "batch_size=8",
    ],
    "anchor_s2": [
        *ANCHOR_MODEL,
        "mask=vjepa2",
        "mask.ratio=null",
        "mask.num_blocks=10",
        "data.mix=image",
        "data.image.size=64",
        "batch_size=32",
    ],
}
for preset in ("tiny", "small"):
    for mix in ("image", "video", "joint"):
        SETTINGS[f"{preset}_{mix}"] = [f"preset={preset}", f"data.mix={mix}"]

PARTS = (
    "masks",
    "target_encoder",
    "online_encoder",
    "predictor",
    "loss",
    "distance_weights",
    "backward",
    "optimizer",
    "ema",
    "to_device",
)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)

    with initialize_config_module("vjepa.conf", version_base=None):
        return hydra_compose(
            "train",
            overrides=[
                f"run_dir={tempfile.mkdtemp(prefix='vjepa-bench-')}",
                "progress=false",
                "probes=none",
                *overrides,
            ],
        )


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """(MiB, what it covers): on CUDA the peak allocated since this configuration was built; on CPU the
    process's peak RSS so far, which no call can reset (run one setting per process to read it alone)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "configuration"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process so far"  # KiB on Linux


class Bench:
    """One configuration ready to time: model, optimizer and a fixed synthetic batch.

    Masks are drawn as the training loop gets them: with ``data.num_workers`` > 0 the loader's workers draw
    them with the batch, outside the step (``vjepa.masks.LoaderMasks``), so they are drawn here before the
    timer starts; with 0 workers the loader draws them in the training process, between steps, so the
    timed step includes them (part ``masks``). ``time_parts`` times each part of the step as well. On CUDA that synchronises the device around every part,
    which stops the host from queueing work ahead and so slows the step itself: time a GPU's step (MFU) with
    ``time_parts=False`` and its breakdown in a separate run."""

    def __init__(self, overrides: list[str], time_parts: bool = True):
        from vjepa.data import JointBatches, build_sources, split_skipped
        from vjepa.masks import LoaderMasks
        from vjepa.timing import StepTimer
        from vjepa.trainer import Trainer

        if torch.cuda.is_available():  # an earlier configuration's memory, then its peak, are not this one's
            gc.collect()
            torch.cuda.empty_cache()
        self.cfg = compose(overrides)
        self.trainer = Trainer(self.cfg)
        self.trainer.build()
        dev = self.trainer.device
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        self.time_parts = time_parts
        if time_parts:
            self.trainer.model.timer = StepTimer(enabled=True, cuda=dev.type == "cuda")
        self.batch, _ = split_skipped(
            JointBatches(build_sources(self.cfg.data, self.cfg.batch_size, self.cfg.seed))[0]
        )
        if dev.type == "cuda":  # as the training loader hands batches over
            self.batch = {k: v.pin_memory() for k, v in self.batch.items()}
        self.samples = sum(x.shape[0] for x in self.batch.values())
        self.tokens = sum(
            x.shape[0] * _grid_tokens(self.trainer.model.encoder.grid(x)) for x in self.batch.values()
        )
        self.times: list[float] = []
        self.parts: list[dict] = []
        self.step = 0
        self.masks_ahead = int(self.cfg.data.get("num_workers") or 0) > 0
        self.loader_masks = LoaderMasks(
            self.trainer.masks, self.cfg.model.patch_size, self.cfg.model.tubelet_size
        )

    def batch_at(self, step: int) -> dict:
        """The batch of ``step``, with its masks where the loader's workers would have drawn them ahead."""
        if not self.masks_ahead:
            return self.batch
        masks = {
            f"masks_{m}": self.loader_masks.rows(step, m, x.shape[0], x.shape, 0, x.shape[0])
            for m, x in self.batch.items()
        }
        return {**self.batch, **masks}

    def run_step(self, record: bool = True) -> None:
        timer = self.trainer.model.timer
        timer.reset()
        batch = self.batch_at(self.step)
        if self.trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        self.trainer.train_step(self.step, batch)
        if self.trainer.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        self.step += 1
        if record:
            self.times.append(dt)
            self.parts.append(dict(timer.totals))

    def time_back_to_back(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps run as the training loop runs them: each step's numbers read
        back once the next step is queued, the device synchronised only at the end. On a GPU the host then
        queues ahead while the device works, which ``run_step``'s synchronised steps do not allow."""
        sync = torch.cuda.synchronize if self.trainer.device.type == "cuda" else (lambda: None)
        batches = [self.batch_at(self.step + i) for i in range(steps)]
        sync()
        t0 = time.perf_counter()
        pending = None
        for batch in batches:
            launched = self.trainer.train_step(self.step, batch, read_back=False)
            if pending is not None:
                self.trainer.read_back_step(pending)
            pending, self.step = launched, self.step + 1
        self.trainer.read_back_step(pending)
        sync()
        return (time.perf_counter() - t0) / steps

    def summary(self, name: str) -> dict:
        """Median step time and throughput; the parts (None unless timed) are medians over the timed steps."""
        step = statistics.median(self.times)
        memory, scope = peak_memory_mib(self.trainer.device)
        out = {
            "setting": name,
            "device": str(self.trainer.device),
            "threads": torch.get_num_threads(),
            "step_ms": 1e3 * step,
            "step_ms_min": 1e3 * min(self.times),
            "samples_per_s": self.samples / step,
            "tokens_per_s": self.tokens / step,
            "peak_memory_mib": memory,
            "peak_memory_scope": scope,
            "steps_timed": len(self.times),
            "parts_timed": self.time_parts,
            "parts_ms": None,
            "parts_share": None,
            "share_masks_distance_loss": None,
            "share_ema": None,
        }
        if self.time_parts:
            # loss time includes the distance weights; report both, shares of the step
            parts = {p: statistics.median(d.get(p, 0.0) for d in self.parts) for p in PARTS}
            out["parts_ms"] = {p: 1e3 * t for p, t in parts.items()}
            out["parts_share"] = {p: t / step for p, t in parts.items()}
            out["share_masks_distance_loss"] = (parts["masks"] + parts["loss"]) / step
            out["share_ema"] = parts["ema"] / step
        return out


def _grid_tokens(grid) -> int:
    return grid[0] * grid[1] * grid[2]


def encoder_scaling(overrides: list[str], ratio: float = 0.8, repeats: int = 5, warmup: int = 1) -> dict:
    """Online encoder forward + backward on the context tokens at ``ratio`` masking vs on all tokens, in the
    arithmetic the configuration trains in (bf16 autocast where it does): the median of ``repeats`` timed
    passes after ``warmup`` untimed ones."""
    from vjepa.masks import MaskSpec, sample_masks

    b = Bench(overrides)
    enc = b.trainer.model.encoder
    x = next(iter(b.batch.values())).to(b.trainer.device)
    grid = enc.grid(x)
    masks = sample_masks(MaskSpec(ratio=ratio), x.shape[0], grid, torch.Generator().manual_seed(0))
    keep = masks.ctx_idx.to(b.trainer.device)

    dtype = b.trainer.autocast_dtype

    def timed(keep_idx):
        ts = []
        for _ in range(warmup + repeats):
            t0 = time.perf_counter()
            with torch.autocast(x.device.type, dtype) if dtype else contextlib.nullcontext():
                out = enc(x, keep_idx=keep_idx)
            out.float().square().mean().backward()
            if x.is_cuda:
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts[warmup:])

    full, masked = timed(None), timed(keep)
    return {
        "setting": "encoder_scaling",
        "mask_ratio": masks.ratio,
        "full_ms": 1e3 * full,
        "masked_ms": 1e3 * masked,
        "masked_over_full": masked / full,
        "visible_fraction": keep.shape[1] / _grid_tokens(grid),
    }


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", nargs="+", action="extend", help=f"named setting(s): {', '.join(SETTINGS)}")
    ap.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="two quoted override lists, timed interleaved"
    )
    ap.add_argument(
        "--encoder-scaling", action="store_true", help="online encoder cost at 80%% vs 0%% masking"
    )
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--no-parts",
        action="store_true",
        help="time the whole step only (on CUDA the per-part synchronisation slows the step)",
    )
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every configuration")
    return ap


def _compare(args, common: list[str], emit) -> None:
    """``--compare A B``: the two override lists on one base, their steps interleaved, then B/A ratios."""
    base = SETTINGS[args.setting[0]] if args.setting else []
    benches = [Bench([*base, *common, *spec.split()], time_parts=not args.no_parts) for spec in args.compare]
    for _ in range(args.warmup):
        for bench in benches:
            bench.run_step(record=False)
    for _ in range(args.steps):  # interleaved, so load changes hit both alike
        for bench in benches:
            bench.run_step()
    a, b = (bench.summary(label) for bench, label in zip(benches, ("A", "B")))
    if benches[0].trainer.device.type == "cuda":  # both were alive throughout: one peak for the two
        a["peak_memory_scope"] = b["peak_memory_scope"] = "both configurations"
    emit(a)
    emit(b)
    parts = None
    if not args.no_parts:
        parts = {p: (b["parts_ms"][p] / a["parts_ms"][p] if a["parts_ms"][p] else None) for p in PARTS}
    emit({"setting": "ratio B/A", "step_time": b["step_ms"] / a["step_ms"], "parts": parts})


def _settings(args, common: list[str], emit) -> None:
    """Each named setting (default: the tiny preset per modality) timed on its own, one after the other."""
    for name in args.setting or ["tiny_image", "tiny_video", "tiny_joint"]:
        bench = Bench([*SETTINGS[name], *common], time_parts=not args.no_parts)
        for _ in range(args.warmup):
            bench.run_step(record=False)
        for _ in range(args.steps):
            bench.run_step()
        emit(bench.summary(name))
        del bench  # freed before the next is built, so its CUDA peak is its own


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    # --setting takes several names, so overrides written after it land there: give them back
    given = args.setting or []
    args.setting = [s for s in given if "=" not in s] or None
    args.overrides = [s for s in given if "=" in s] + list(args.overrides)
    unknown = [name for name in args.setting or [] if name not in SETTINGS]
    if unknown:
        sys.exit(f"unknown --setting {', '.join(map(repr, unknown))}; choose from {', '.join(SETTINGS)}")
    if args.compare and len(args.setting or []) > 1:
        sys.exit("--compare times two override lists on one base: give at most one --setting")
    common = list(args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
        common.append(f"threads={args.threads}")
    results = []

    def emit(res):
        results.append(res)
        print(json.dumps(res, sort_keys=True), flush=True)

    if args.compare:
        _compare(args, common, emit)
    elif args.encoder_scaling:
        for name in args.setting or ["tiny_image"]:
            res = encoder_scaling([*SETTINGS[name], *common], repeats=args.steps, warmup=args.warmup)
            emit({**res, "base_setting": name})
    else:
        _settings(args, common, emit)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
