"""Probe heads and their optimisers.

``fit_logistic``: multinomial logistic regression (a linear head) fitted full-batch with L-BFGS from zero
weights; the loss (mean cross-entropy + wd/2 |W|^2) is convex, so the fit does not depend on an init or
a data order. ``fit_adamw``: minibatch AdamW with a cosine learning rate, shuffled by a seeded generator,
for the heads that are not linear. ``AttentiveClassifier``: a learned query cross-attending to all tokens,
then LayerNorm and a linear classifier. ``seeded(seed)``: a block whose global RNG draws (parameter
initialisation) come from ``seed``, leaving the caller's RNG state untouched.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def seeded(seed: int):
    """``torch.manual_seed(seed)`` inside, every generator (CPU and each GPU's, which it also seeds) restored
    after."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, wd: float, iters: int, ignore: int = -1
) -> nn.Linear:
    """x [M, D] float, y [M] long (``ignore`` entries skipped) -> fitted nn.Linear(D, num_classes)."""
    keep = y != ignore
    x, y = x[keep], y[keep]
    lin = torch.nn.utils.skip_init(nn.Linear, x.shape[1], num_classes, device=x.device)  # no global RNG draw
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(
        lin.parameters(),
        lr=1.0,
        max_iter=iters,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y) + 0.5 * wd * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin.requires_grad_(False)


def fit_adamw(
    model: nn.Module, n: int, loss_fn, epochs: int, batch_size: int, lr: float, wd: float, seed: int
) -> nn.Module:
    """Minimise ``loss_fn(idx)`` (idx: long [b] sample indices) over ``epochs`` shuffled passes over n."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    total, step = epochs * math.ceil(n / batch_size), 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = loss_fn(perm[i : i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return model.eval()


class AttentiveClassifier(nn.Module):
    """Multi-head cross-attention of one learned query over tokens [B, N, D], LayerNorm, linear.

    With a single query, the query-key product folds into one score vector per head (u_h . x_i; the key
    bias cancels in the softmax), and the value projection commutes with the weighted sum, so this equals
    nn.MultiheadAttention with a learned query at O(N D H) instead of O(N D^2) per sample.
    """

    def __init__(self, dim: int, num_classes: int, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attentive probe: heads={heads} must divide the feature width {dim}")
        self.heads = heads
        self.score = nn.Parameter(torch.empty(heads, dim))
        self.value = nn.Parameter(torch.empty(heads, dim // heads, dim))
        self.value_bias = nn.Parameter(torch.zeros(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.score, std=0.02)  # near-uniform attention (average pooling) at the start
        nn.init.trunc_normal_(self.value, std=dim**-0.5)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.einsum("bnd,hd->bhn", x, self.score).softmax(-1)
        pooled = torch.einsum("bhn,bnd->bhd", attn, x)
        return torch.einsum("bhd,hed->bhe", pooled, self.value).flatten(1) + self.value_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.pool(x)))
