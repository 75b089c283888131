"""What a run writes as it trains, besides status.json: the checkpoint and the metrics.

- ``checkpoints/last.pt`` (``save`` / ``load``): the step, the training time so far, the online, target and
  predictor weights, the optimiser state, the resolved config, and the records of the steps since the last
  log line, so that a run stopped between two log lines logs what an uninterrupted run does.
- ``metrics.jsonl``: one line per logging window (``window_line``): the window's mean of each number of its
  steps (sums for the ``skipped_*`` counts), the last step's learning rate and momentum, samples and tokens
  per second of training time, and the training time so far.
- ``metrics.json`` (``final_metrics``): the run's numbers from its log: first loss, the mean over the last
  tenth of the log lines of the losses, mask ratios, statistics and diagnostics, the mean throughput, the
  skipped-file totals, and the facts of the run it is given.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vjepa.runfiles import MetricsLog, load_checkpoint, save_checkpoint

TAIL_KEYS = ("mask_ratio_", "context_std_", "target_std_", "pred_std_", "loss_", "online_", "target_")


def save(path: Path, metrics: MetricsLog, model, optimizer, cfg, step: int, wall: float, window: list[dict]):
    """The checkpoint of ``step``, after the log lines up to it have reached the disk."""
    metrics.sync()
    save_checkpoint(
        path,
        {
            "step": step,
            "wall_time": wall,
            "encoder": model.encoder.state_dict(),
            "target_encoder": model.target_encoder.state_dict(),
            "predictor": model.predictor.state_dict(),
            "optimizer": optimizer.state_dict(),
            "config": OmegaConf.to_yaml(cfg, resolve=True),
            "log_window": window,
        },
    )


def load(path: Path, model, optimizer, device) -> tuple[int, float, list[dict]]:
    """Load the checkpoint into ``model`` and ``optimizer``; (its step, training time, unlogged records)."""
    state = load_checkpoint(path, map_location=device)
    model.encoder.load_state_dict(state["encoder"])
    model.target_encoder.load_state_dict(state["target_encoder"])
    model.predictor.load_state_dict(state["predictor"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state["wall_time"]), list(state.get("log_window", []))


def window_line(step: int, window: list[dict], samples_per_s: float, wall: float) -> dict:
    """The log line of the steps ``window`` (their records), ending at ``step``."""
    keys = window[-1].keys() - {"samples"}
    rec = {k: sum(r[k] for r in window) / (1 if k.startswith("skipped_") else len(window)) for k in keys}
    rec["lr"], rec["momentum"] = window[-1]["lr"], window[-1]["momentum"]
    rec.update(step=step, samples_per_s=samples_per_s, wall_time_s=wall)
    tokens = sum(v for k, v in rec.items() if k.startswith("tokens_"))
    rec["tokens_per_s"] = tokens * samples_per_s / max(sum(r["samples"] for r in window) / len(window), 1)
    return rec


def final_metrics(log: list[dict], steps: int, wall: float, facts: dict) -> dict:
    """metrics.json of a run from its log lines; ``facts``: what the log does not hold (sizes, versions)."""
    tail = log[-max(1, len(log) // 10) :]
    final = {
        "steps": steps,
        "wall_time_s": wall,
        "loss_first": log[0]["loss"],
        "loss_final": sum(r["loss"] for r in tail) / len(tail),
        "samples_per_s": sum(r["samples_per_s"] for r in log) / len(log),
        **facts,
    }
    for key in log[-1]:
        if key.startswith("skipped_"):
            final[key] = sum(r.get(key, 0) for r in log)
        if key.startswith(TAIL_KEYS):
            # over the tail lines that have it: diagnostics may be switched on when a run is resumed
            values = [r[key] for r in tail if key in r]
            final[f"{key}_final" if key.startswith("loss_") else key] = sum(values) / len(values)
    return final
