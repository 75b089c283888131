"""Label-free health checks of an encoder on a fixed held batch, for logging during pretraining.

``held_batch_diagnostics(encoder, batch)``: ``batch`` a clip/image tensor or a dict of them by modality
(as the trainer's batches). For each modality m, with Z the [tokens, D] matrix of the batch's output tokens:

    rankme_m        RankMe (Garrido et al. 2023): exp of the entropy of p_k = s_k / sum(s) + eps, s the
                    singular values of Z (not centred); between 1 (collapse) and min(tokens, D)
    feat_std_m      mean over dimensions of the per-dimension std of Z (over tokens)
    feat_std_min_m  the smallest per-dimension std (a dead dimension shows as ~0)
    token_cos_m     mean cosine similarity over all pairs of distinct tokens (1 = all tokens alike)

The encoder runs in eval mode without gradients (its mode is restored), so the numbers depend only on the
weights and the batch. ``held_batch(data_cfg, batch_size, seed)`` draws ``batch_size`` samples per modality
from the run's sources at a step that training never reaches.
"""

from __future__ import annotations

import torch

EPS = 1e-7
# Far beyond any run's steps, and below 2**32: torch's CPU generator keeps only a seed's low 32 bits, so
# a step of 2**40 would alias step 0.
HELD_STEP = 2**31 - 1


def rankme(z: torch.Tensor) -> float:
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum() + EPS
    return torch.exp(-(p * p.log()).sum()).item()


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    """Mean over i != j of cos(z_i, z_j), in O(n D): |sum_i u_i|^2 = n + sum_{i != j} u_i . u_j."""
    u = torch.nn.functional.normalize(z.double(), dim=1)
    n = len(u)
    return ((u.sum(0).square().sum() - n) / (n * (n - 1))).item()


def token_diagnostics(z: torch.Tensor) -> dict[str, float]:
    std = z.double().std(0)
    return {
        "rankme": rankme(z),
        "feat_std": std.mean().item(),
        "feat_std_min": std.min().item(),
        "token_cos": mean_pairwise_cosine(z),
    }


@torch.no_grad()
def held_batch_diagnostics(encoder, batch) -> dict[str, float]:
    if torch.is_tensor(batch):
        batch = {"image" if batch.ndim == 4 else "video": batch}
    was_training = encoder.training
    encoder.eval()
    try:
        out = {}
        device = next(encoder.parameters()).device
        for modality, x in batch.items():
            z = encoder(x.to(device)).float().flatten(0, 1).cpu()
            out.update({f"{k}_{modality}": v for k, v in token_diagnostics(z).items()})
    finally:
        encoder.train(was_training)
    return out


def held_batch(data_cfg, batch_size: int, seed: int) -> dict:
    """``batch_size`` samples of each modality the run trains on, from its sources at ``HELD_STEP``, as a
    ``JointBatches`` item (file-backed sources add ``skipped_<modality>``: ``vjepa.data.split_skipped``)."""
    from omegaconf import OmegaConf

    from vjepa.data import JointBatches, build_sources, split_batch

    present = split_batch(2, data_cfg.mix, data_cfg.image_fraction)  # which modalities, not how many
    sources = {}
    for modality, n in zip(("image", "video"), present, strict=True):
        if n:
            sources.update(build_sources(OmegaConf.merge(data_cfg, {"mix": modality}), batch_size, seed))
    return JointBatches(sources)[HELD_STEP]
