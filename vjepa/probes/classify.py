"""Classification probes on frozen tokens of images or clips.

``linear``: logistic regression (L-BFGS) on average-pooled tokens, standardised with train statistics.
``attentive``: ``AttentiveClassifier`` (a learned query cross-attending to all tokens, then linear) on
standardised tokens, trained with AdamW. Both return top-1 accuracy on the val split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa.probes.features import Standardizer
from vjepa.probes.heads import AttentiveClassifier, fit_adamw, fit_logistic, seeded
from vjepa.probes.metrics import top1

HEADS = ("linear", "attentive")
EVAL_BATCH = 256


def _pooled(tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([tokens[i : i + EVAL_BATCH].float().mean(1) for i in range(0, len(tokens), EVAL_BATCH)])


def linear_probe(feats: dict, y_train, y_val, num_classes: int, cfg: dict, device) -> float:
    xt, xv = _pooled(feats["train"]), _pooled(feats["val"])
    std = Standardizer(xt)
    lin = fit_logistic(
        std(xt).to(device), y_train.to(device), num_classes, float(cfg["wd"]), int(cfg["iters"])
    )
    return top1(lin(std(xv).to(device)).cpu(), y_val)


def attentive_probe(feats: dict, y_train, y_val, num_classes: int, cfg: dict, seed: int, device) -> float:
    std = Standardizer(feats["train"].flatten(0, 1))
    with seeded(seed):
        model = AttentiveClassifier(feats["train"].shape[-1], num_classes, int(cfg.get("heads", 4))).to(
            device
        )
    y = y_train.to(device)

    def loss_fn(idx):
        return F.cross_entropy(model(std(feats["train"][idx].to(device))), y[idx.to(device)])

    fit_adamw(
        model,
        len(y_train),
        loss_fn,
        int(cfg["epochs"]),
        int(cfg["batch_size"]),
        float(cfg["lr"]),
        float(cfg["wd"]),
        seed,
    )
    with torch.no_grad():
        logits = torch.cat(
            [
                model(std(feats["val"][i : i + EVAL_BATCH].to(device))).cpu()
                for i in range(0, len(y_val), EVAL_BATCH)
            ]
        )
    return top1(logits, y_val)


def classify_probe(
    head: str, feats: dict, y_train, y_val, num_classes: int, cfg: dict, seed: int, device
) -> float:
    if head == "linear":
        return linear_probe(feats, y_train, y_val, num_classes, cfg, device)
    if head == "attentive":
        return attentive_probe(feats, y_train, y_val, num_classes, cfg, seed, device)
    raise ValueError(f"classification probe head must be one of {HEADS}, got {head!r}")
