"""Operator profile of the training step at a named setting: where a step's time goes, kernel by kernel.

    python benchmarks/profile_step.py anchor_s1 --by-shape            # eager, also grouped by input shape
    python benchmarks/profile_step.py anchor_s1 --warmup 10 compile=true

Builds the step of ``vjepa.bench`` (``--setting``'s model, optimizer and synthetic batch), runs ``--warmup``
untimed steps (compiled blocks need about 10 on the anchors, whose token counts change from step to step),
then profiles ``--steps`` steps with ``torch.profiler`` and prints the operators sorted by their own time
(PyTorch's table; divide by ``--steps`` for a step's share). Times are those of this process on this machine:
read shares, and profile on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vjepa.bench import SETTINGS, Bench  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setting", choices=sorted(SETTINGS))
    ap.add_argument("overrides", nargs="*", help="Hydra overrides on top of the setting")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--by-shape", action="store_true", help="also the table grouped by input shapes")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = Bench([*SETTINGS[args.setting], *args.overrides], time_parts=False)
    for _ in range(args.warmup):
        bench.run_step(record=False)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=args.by_shape) as prof:
        for _ in range(args.steps):
            bench.run_step()
    print(f"{args.setting} {' '.join(args.overrides)}: {args.steps} steps, {args.threads} threads")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.by_shape:
        table = prof.key_averages(group_by_input_shape=True)
        print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
