"""Dense probes on streamed features (``vjepa.probes.stream``): features already interpolated at sampled
train pixels, every token of each val image.

``seg_from_pixels``: the linear segmentation probe of ``vjepa.probes.seg`` (logistic regression, L-BFGS,
on features standardised with the sampled train pixels' statistics), scored single-scale by mIoU at the
input size (``seg.seg_scores``). ``depth_probe``: a per-token linear regression to depth in metres (ridge,
closed form: deterministic), its predictions upsampled (bilinear) to the depth map and scored by the RMSE
in metres over pixels with a measurement (depth > 0), pooled over all val pixels; the ``Scored`` recomputes
it per bootstrap replicate from per-image squared-error sums and pixel counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa.probes.bootstrap import Scored
from vjepa.probes.features import Standardizer
from vjepa.probes.heads import fit_logistic
from vjepa.probes.seg import CHUNK, seg_scores, token_map


def seg_from_pixels(feats: dict, grid, num_classes: int, cfg: dict, device) -> tuple[float, dict, Scored]:
    x, y = feats["train"].flatten(0, 1), feats["y_train"].flatten().long()
    std = Standardizer(x)
    lin = fit_logistic(std(x).to(device), y.to(device), num_classes, float(cfg["wd"]), int(cfg["iters"]))
    return seg_scores(lin, std, feats["val"], grid, feats["y_val"].long(), num_classes, device)


def fit_ridge(x: torch.Tensor, y: torch.Tensor, wd: float) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_w,b mean((x w + b - y)^2) + wd |w|^2 in float64: (w [D], b)."""
    x, y = x.double(), y.double()
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    gram = xc.T @ xc / len(x) + wd * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(gram, xc.T @ (y - my) / len(x))
    return w.float(), (my - mx @ w).float()


def rmse_per_sample(sse: torch.Tensor, count: torch.Tensor) -> Scored:
    """RMSE over all pixels of the val images from per-image squared-error sums and pixel counts [M]."""
    sse, count = sse.double(), count.double()

    def stat(wt: torch.Tensor) -> torch.Tensor:
        return ((wt @ sse) / (wt @ count).clamp(min=1)).sqrt()

    return Scored(float(stat(torch.ones(1, len(sse), dtype=torch.float64))[0]), stat, len(sse))


def depth_probe(feats: dict, grid, cfg: dict, device) -> Scored:
    keep = feats["y_train"].flatten() > 0
    x, y = feats["train"].flatten(0, 1)[keep], feats["y_train"].flatten()[keep].float()
    std = Standardizer(x)
    w, b = fit_ridge(std(x).to(device), y.to(device), float(cfg["wd"]))
    sse, count = [], []
    y_val = feats["y_val"].float()
    size = tuple(y_val.shape[-2:])
    for i in range(0, len(y_val), CHUNK):
        pred = std(feats["val"][i : i + CHUNK].to(device)) @ w + b  # [b, L]
        pred = F.interpolate(
            token_map(pred[..., None], grid), size=size, mode="bilinear", align_corners=False
        )
        target = y_val[i : i + CHUNK].to(device)
        valid = target > 0
        err = (pred[:, 0] - target).square() * valid
        sse.append(err.flatten(1).sum(1).cpu())
        count.append(valid.flatten(1).sum(1).cpu())
    return rmse_per_sample(torch.cat(sse), torch.cat(count))
