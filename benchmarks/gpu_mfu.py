"""GPU step time and model FLOPs utilisation (MFU) of paper-scale pretraining: one JSON line per configuration.

    python benchmarks/gpu_mfu.py                  # ViT-L/16 and ViT-H/16 images at 224 px, ViT-L/16 16-frame video
    python benchmarks/gpu_mfu.py --issue28 --no-checkpointing   # 256 images, 32 and 8 clips of ViT-L/16 (issue 28)
    python benchmarks/gpu_mfu.py --smoke          # a tiny configuration, runs on CPU (what the tests run)
    python benchmarks/gpu_mfu.py --issue28 --no-checkpointing compile=reduce-overhead   # overrides for every one

MFU = analytic model FLOPs of one step (``vjepa.flops.step_cost``: target forward, online encoder and predictor
forward + backward) / (step time x peak dense bf16 FLOP/s of the device the step ran on). The step time is that
of ``--steps`` steps run back to back as the training loop runs them (``Bench.time_back_to_back``);
``step_ms`` and ``mfu_synchronised_median`` are the median of as many steps each synchronised on its own. Peak: H100
and H200 SXM 989 TFLOP/s (PCIe 756, NVL 835), A100 312 TFLOP/s, else ``--peak-tflops``. Each configuration
runs in this process with bf16 autocast, fused AdamW, SDPA attention, and (``--compile``, default on for
CUDA) compiled blocks. The step is timed whole: ``--parts`` adds the time of each part, which synchronises the
device around every part and so slows the step (its MFU is then a lower bound). ``--profile N`` then profiles
N more steps (``torch.profiler``) and adds the operators that took the most of the device's own time per step
to the line (``profile_top``; on a CPU run, of the host's), where the next optimisation should look.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.profiler import ProfilerActivity, profile  # noqa: E402

from vjepa.bench import Bench  # noqa: E402
from vjepa.flops import step_cost  # noqa: E402

# dense bf16 peak by device name, the more specific names first (H100 PCIe and NVL are slower than SXM)
PEAK_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,
    "H200 NVL": 835.0,
    "H200": 989.0,
    "A100": 312.0,
}
GPU_CONFIGS = {
    "vitl16_image224": ["preset=vitl16", "data.mix=image", "batch_size=128"],
    "vith16_image224": ["preset=vith16", "data.mix=image", "batch_size=64"],
    "vitl16_video16x224": ["preset=vitl16", "data.mix=video", "data.video.frames=16", "batch_size=8"],
}
# issue 28's targets, per GPU: 256 images (45 % MFU), 32 clips of 16 frames (40 %), 8 clips (25 %)
ISSUE28 = {
    "vitl16_image224_b256": ["preset=vitl16", "data.mix=image", "batch_size=256"],
    "vitl16_video16x224_b32": ["preset=vitl16", "data.mix=video", "data.video.frames=16", "batch_size=32"],
    "vitl16_video16x224_b8": GPU_CONFIGS["vitl16_video16x224"],
}
SMOKE = {
    "tiny_smoke": ["preset=tiny", "data.mix=image", "batch_size=8", "model.depth=2", "data.image.size=32"]
}
COMMON = ["probes=none", "log_every=1000", "ckpt_every=1000000"]


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def profile_top(bench: Bench, steps: int, rows: int = 25) -> list[dict]:
    """The ``rows`` operators (kernels on CUDA) with the most self time per step over ``steps`` profiled
    steps: on CUDA the device's time, else the host's."""
    cuda = bench.trainer.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            bench.run_step(record=False)
    events = prof.key_averages()

    def self_us(e) -> float:
        return float(e.self_device_time_total if cuda else e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    top = sorted(events, key=self_us, reverse=True)[:rows]
    return [
        {
            "name": e.key[:160],
            "ms_per_step": round(self_us(e) / 1e3 / steps, 3),
            "share": round(self_us(e) / total, 4),
            "calls_per_step": e.count / steps,
        }
        for e in top
    ]


def measure(
    name: str,
    overrides: list[str],
    steps: int,
    warmup: int,
    peak_override: float | None,
    time_parts: bool = False,
    profile_steps: int = 0,
) -> dict:
    """One configuration's step time and MFU; the peak is that of the device it ran on (none for a CPU run
    unless ``--peak-tflops`` is given: ``--smoke`` on a GPU host runs on the CPU)."""
    bench = Bench([*overrides, *COMMON], time_parts)
    peak = peak_tflops(bench.trainer.device, peak_override)
    for _ in range(warmup):
        bench.run_step(record=False)
    for _ in range(steps):
        bench.run_step()
    out = bench.summary(name)
    cost = step_cost(bench.cfg)
    back_to_back = bench.time_back_to_back(steps)
    out.update(
        step_ms_back_to_back=1e3 * back_to_back,
        model_tflops_per_step=cost.flops / 1e12,
        achieved_tflops=cost.flops / back_to_back / 1e12,
        peak_tflops=peak,
        mfu=(cost.flops / back_to_back / (peak * 1e12)) if peak else None,
        mfu_synchronised_median=(cost.flops / statistics.median(bench.times) / (peak * 1e12))
        if peak
        else None,
        overrides=overrides,
        vjepa_from=str(Path(sys.modules["vjepa"].__file__).resolve().parents[1]),  # which tree's code ran
    )
    if bench.trainer.device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(bench.trainer.device)
    if profile_steps:
        out["profile_top"] = profile_top(bench, profile_steps)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU configuration (for tests)")
    ap.add_argument("--only", nargs="*", help="subset of configurations")
    ap.add_argument(
        "--issue28", action="store_true", help="the performance issue's three settings (ViT-L/16, per GPU)"
    )
    ap.add_argument("--steps", type=int, default=20)
    # token counts vary per step, so compiled blocks recompile for a while: 8 warm-ups left recompiles in the
    # median of ViT-L/16 (198 ms against 126 ms after 20, reports/benchmarks/README.md)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--parts", action="store_true", help="also time each part (slows a GPU step)")
    ap.add_argument(
        "--no-checkpointing", action="store_true", help="keep all activations (faster if memory allows)"
    )
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N steps (profile_top)")
    ap.add_argument("--tag", help="a label written into every line as its 'tree' (which code was measured)")
    ap.add_argument(
        "overrides", nargs="*", help="config overrides for every configuration (e.g. compile=max-autotune)"
    )
    args = ap.parse_args(argv)
    configs = SMOKE if args.smoke else ISSUE28 if args.issue28 else GPU_CONFIGS
    extra = ["compile=false"] if args.no_compile or args.smoke else []
    if args.no_checkpointing:
        extra.append("activation_checkpointing=false")
    if args.smoke:
        extra.append("device=cpu")
    extra.extend(args.overrides)  # last, so they win
    for name, overrides in configs.items():
        if args.only and name not in args.only:
            continue
        try:
            res = measure(
                name,
                [*overrides, *extra],
                args.steps,
                args.warmup,
                args.peak_tflops,
                args.parts,
                args.profile,
            )
        except torch.OutOfMemoryError as exc:  # report and go on with the next configuration
            res = {"setting": name, "error": f"out of memory: {exc}"[:300]}
            torch.cuda.empty_cache()
        if args.tag is not None:
            res["tree"] = args.tag
        print(json.dumps(res, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
