"""Loader throughput for the joint CIFAR-10 + shared clips configuration at the tiny preset's shapes.

Runs ``build_train_loader`` exactly as the trainer does (batch 64 split half/half: 32 CIFAR-10 images at
64 px, 32 clips of 8 frames at 64 px) and reports the time to the first batch (worker start, per-worker
video decoding, CIFAR cache) separately from steady-state samples/s and ms per batch. The last line of
output is a JSON record.

    python benchmarks/bench_loader.py [--workers 2] [--steps 60] [--root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from omegaconf import OmegaConf

from vjepa.data import build_train_loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60, help="batches to time after the first")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--root", default=None, help="data.root (default: ../shared/data beside the repository)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = OmegaConf.create(
        {
            "root": args.root,
            "mix": "joint",
            "image_fraction": 0.5,
            "num_workers": args.workers,
            "prefetch": 2,
            "image": {"name": "cifar10", "size": 64},
            "video": {"name": "clips", "size": 64, "frames": 8},
        }
    )
    t0 = time.perf_counter()
    loader = build_train_loader(cfg, args.batch_size, seed=0, start_step=0, steps=args.steps + 1)
    batches = iter(loader)
    first = next(batches)
    t1 = time.perf_counter()
    n = 0
    for batch in batches:
        n += batch["image"].shape[0] + batch["video"].shape[0]
    t2 = time.perf_counter()

    steady = t2 - t1
    record = {
        "config": "cifar10+clips joint, images 64px, clips 8x64px",
        "batch_size": args.batch_size,
        "images": first["image"].shape[0],
        "clips": first["video"].shape[0],
        "num_workers": args.workers,
        "steps_timed": args.steps,
        "first_batch_s": round(t1 - t0, 3),
        "samples_per_s": round(n / steady, 1),
        "ms_per_batch": round(1000 * steady / args.steps, 2),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"first batch (build, worker start, decode): {record['first_batch_s']:.2f} s")
    print(
        f"steady state over {args.steps} batches with {args.workers} workers: {record['samples_per_s']:.0f} "
        f"samples/s, {record['ms_per_batch']:.1f} ms per batch of {args.batch_size}"
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
