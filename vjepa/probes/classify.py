"""Classification probes on frozen tokens of images or clips.

``linear``: logistic regression (L-BFGS) on average-pooled tokens, standardised with train statistics.
``attentive``: ``AttentiveClassifier`` (a learned query cross-attending to all tokens, then linear) on
standardised tokens, trained with AdamW. ``knn``: the weighted k-nearest-neighbour vote of DINO's evaluation
(Caron et al. 2021) on average-pooled tokens, L2-normalised: the ``k`` train samples of highest cosine
similarity s vote for their class with weight exp(s / ``temperature``); nothing is fitted, so it has no
training noise. Val samples with several feature rows (a test video's clips x spatial views,
``feats["views"]``) are scored on their rows' averaged class probabilities. Each returns top-1 accuracy on the val split as a ``Scored`` (per-sample correct flags, for
the bootstrap of ``vjepa.probes.bootstrap``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa.probes.bootstrap import Scored, accuracy
from vjepa.probes.features import Standardizer
from vjepa.probes.heads import AttentiveClassifier, fit_adamw, fit_logistic, seeded

HEADS = ("linear", "attentive", "knn")
EVAL_BATCH = 256


def _pooled(tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([tokens[i : i + EVAL_BATCH].float().mean(1) for i in range(0, len(tokens), EVAL_BATCH)])


def _correct(logits: torch.Tensor, y: torch.Tensor, feats: dict, votes: bool = False) -> Scored:
    """Top-1 of val scores [M * views, C]: with ``feats["views"]`` > 1 (a video's clips and spatial views,
    ``vjepa.probes.stream``) the views' class probabilities (softmax, or the k-NN votes normalised) are
    averaged per sample first."""
    views = int(feats.get("views", 1))
    if views > 1:
        p = logits / logits.sum(-1, keepdim=True).clamp(min=1e-30) if votes else logits.softmax(-1)
        logits = p.view(len(y), views, -1).mean(1)
    return accuracy(logits.argmax(-1) == y)


def linear_probe(feats: dict, y_train, y_val, num_classes: int, cfg: dict, device) -> Scored:
    xt, xv = _pooled(feats["train"]), _pooled(feats["val"])
    std = Standardizer(xt)
    lin = fit_logistic(
        std(xt).to(device), y_train.to(device), num_classes, float(cfg["wd"]), int(cfg["iters"])
    )
    return _correct(lin(std(xv).to(device)).cpu(), y_val, feats)


def attentive_probe(feats: dict, y_train, y_val, num_classes: int, cfg: dict, seed: int, device) -> Scored:
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
                for i in range(0, len(feats["val"]), EVAL_BATCH)
            ]
        )
    return _correct(logits, y_val, feats)


def knn_probe(feats: dict, y_train, y_val, num_classes: int, cfg: dict, device) -> Scored:
    k, temperature = int(cfg.get("k", 20)), float(cfg.get("temperature", 0.07))
    xt = F.normalize(_pooled(feats["train"]), dim=1).to(device)
    yt = y_train.to(device)
    k = min(k, len(yt))
    votes = []
    for i in range(0, len(feats["val"]), EVAL_BATCH * 4):
        xv = F.normalize(_pooled(feats["val"][i : i + EVAL_BATCH * 4]), dim=1).to(device)
        sim, idx = (xv @ xt.T).topk(k, dim=1)
        v = torch.zeros(len(xv), num_classes, device=device)
        votes.append(v.scatter_add_(1, yt[idx], (sim / temperature).exp()).cpu())
    return _correct(torch.cat(votes), y_val, feats, votes=True)


def classify_probe(
    head: str, feats: dict, y_train, y_val, num_classes: int, cfg: dict, seed: int, device
) -> Scored:
    if head == "linear":
        return linear_probe(feats, y_train, y_val, num_classes, cfg, device)
    if head == "attentive":
        return attentive_probe(feats, y_train, y_val, num_classes, cfg, seed, device)
    if head == "knn":
        return knn_probe(feats, y_train, y_val, num_classes, cfg, device)
    raise ValueError(f"classification probe head must be one of {HEADS}, got {head!r}")
