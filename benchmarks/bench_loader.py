"""Data loading against training: loader samples/s beside the trainer's consumption, for one configuration.

Composes the training config (default: the tiny preset on real data, CIFAR-10 images + the shared clips,
joint), runs ``build_train_loader`` exactly as the trainer does (``data.num_workers`` worker processes) and
reports the time to the first batch (worker start, per-worker video decoding, CIFAR cache) separately from
steady-state samples/s; then times ``train_step`` on one of those batches (no loading) and prints the ratio.
The loader should be at least 3x faster than the trainer consumes. The last line is a JSON record.

    python benchmarks/bench_loader.py [--steps 40] [--train-steps 3] [overrides ...]
    python benchmarks/bench_loader.py data.num_workers=1 preset=small
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vjepa.bench import Bench, compose  # noqa: E402
from vjepa.data import build_train_loader, split_skipped  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40, help="batches to time after the first")
    ap.add_argument("--train-steps", type=int, default=3, help="training steps to time (after one warm-up)")
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_args()
    overrides = ["preset=tiny", "data=real", "data.num_workers=2", *args.overrides]
    cfg = compose(overrides)

    t0 = time.perf_counter()
    loader = iter(build_train_loader(cfg.data, cfg.batch_size, cfg.seed, 0, args.steps + 1))
    batch, _ = split_skipped(next(loader))
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(args.steps):
        next(loader)
    loader_s = (time.perf_counter() - t1) / args.steps
    loader_sps = cfg.batch_size / loader_s

    bench = Bench([*overrides, "data.num_workers=0"])
    bench.batch = batch
    bench.run_step(record=False)
    for _ in range(args.train_steps):
        bench.run_step()
    train_s = statistics.median(bench.times)
    train_sps = cfg.batch_size / train_s
    print(
        f"loader: first batch {first:.1f} s, then {loader_s * 1e3:.0f} ms/batch = {loader_sps:.0f} samples/s "
        f"({cfg.data.num_workers} workers)"
    )
    print(f"trainer: {train_s * 1e3:.0f} ms/step = {train_sps:.0f} samples/s consumed")
    print(f"loader / trainer: {loader_sps / train_sps:.1f}x")
    print(
        json.dumps(
            {
                "overrides": overrides,
                "batch_size": cfg.batch_size,
                "workers": cfg.data.num_workers,
                "first_batch_s": first,
                "loader_samples_per_s": loader_sps,
                "trainer_samples_per_s": train_sps,
                "loader_over_trainer": loader_sps / train_sps,
            }
        )
    )


if __name__ == "__main__":
    main()
