"""Multi-block masking on a (T', H', W') token grid, reaching a requested mask ratio exactly.

Each block has an area drawn uniformly from ``spatial_scale`` (fraction of the H' x W' plane), an aspect
ratio (h / w) from ``aspect_ratio``, a temporal extent from ``temporal_scale`` (fraction of T'; images have
T' = 1), and a uniformly random position. The masked set is the union of the blocks.

How a requested ``ratio`` is met (every sample ends with exactly n = round(ratio * N) masked tokens, so the
batch is one tensor and the realised ratio equals the request up to 1/N):
  1. draw ``num_blocks`` blocks per sample; while some sample's union holds fewer than n tokens, draw
     ``num_blocks`` more for every sample (same distribution), up to ``max_rounds`` rounds;
  2. rank masked tokens by the first block that covers them, and keep the first n: whole blocks in the
     order drawn, and the excess trimmed from the last block kept (see ``trim`` below);
  3. in the rare case the rounds run out below n, the missing tokens are drawn uniformly from the rest.
With ``ratio = None`` (the V-JEPA 2 / 2.1 behaviour) the union of ``num_blocks`` blocks is used as drawn (a
sample whose blocks cover the whole grid draws their positions again, as the released collator does): the
targets are each sample's union trimmed (as in step 2) to the smallest union in the batch, and the context is
each sample's complement of the union, cut to the smallest complement in the batch (a uniformly random subset).
``cut="raster"`` cuts as Meta's collator does instead: each set keeps its first tokens in raster order, which
favours the top of the frame (and, for clips, the first frames); both cuts consume the generator alike, so a
run with either sees the same blocks. Tokens cut from either set are neither seen nor predicted; in
particular the context never sees a token inside a target block.

``trim``: which tokens the last block kept in part keeps (step 2, and a ratio-free ``cut="random"`` trims
targets the same way). ``"raster"`` (every run before the key existed) keeps its first tokens in raster order:
the block stays contiguous, but trimmed tokens are always its bottom rows and last frames, so targets lean to
the top of the frame and the first frames (how much: docs/masks.md). ``"random_edge"`` trims that block from
one spatial side, chosen per sample (top, bottom, left or right), across all its frames (``_edge_order``): it
stays contiguous and keeps its temporal extent, and the profile is mirror-symmetric in rows and columns and,
for V-JEPA 2 blocks, flat over frames. (A random subset would leave holes, which with a ratio become context
inside the target block and make it easier to predict.) Both trims take the same draws from the generator, so
both draw the same blocks.

Length buckets (``sample_mask_buckets``, ratio-free settings only). The released code draws and cuts each
GPU's batch on its own (24 clips per GPU in V-JEPA 2's ViT-L configs), and the cut weighs: the smallest
complement among G samples shrinks as G grows, on any grid (the masked fractions: docs/masks.md). With
``buckets`` = k the batch is split into k parts, each its own encoder/predictor pass: ``by="order"`` splits it
into consecutive groups, each drawn and cut as a batch of its own (a GPU's share: k = 5 emulates 24-26 samples
per GPU for a batch of 128 on one process); ``by="size"`` draws the batch at once, sorts it by union size and
cuts each bucket on its own, so every sample keeps nearly its own masks.

All sampling is vectorised over the batch and blocks; randomness comes only from the given generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vjepa import schema


@dataclass(frozen=True)
class MaskSpec:
    ratio: float | None = 0.8
    num_blocks: int = 4
    spatial_scale: tuple[float, float] = (0.15, 0.7)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    max_rounds: int = 64
    cut: str = "random"  # ratio-free settings: which tokens survive the cut to the batch minimum (CUTS)
    trim: str = "raster"  # which tokens of the last block kept in part survive (TRIMS)

    def __post_init__(self):
        problems = cut_problems(self.cut, self.trim, [self.ratio])
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_cfg(cls, cfg) -> MaskSpec:
        return cls(
            ratio=None if cfg.ratio is None else float(cfg.ratio),
            num_blocks=int(cfg.num_blocks),
            spatial_scale=tuple(cfg.spatial_scale),
            aspect_ratio=tuple(cfg.aspect_ratio),
            temporal_scale=tuple(cfg.temporal_scale),
            cut=schema.leaf(cfg, "mask.cut"),
            trim=schema.leaf(cfg, "mask.trim"),
        )


SETTING_KEYS = schema.SETTING_KEYS  # ratio, num_blocks, spatial_scale, ...: a setting's own keys
CUTS = schema.choices("mask.cut")  # random subset | the first tokens in raster order (Meta's collator)
TRIMS = schema.choices("mask.trim")  # a block trimmed in part keeps its first raster tokens | a random edge's


def cut_problems(cut, trim, ratios, prefix: str = "", ratio_hint: str = "") -> list[str]:
    """What is wrong with a mask ``cut`` and ``trim`` for settings of the given ``ratios`` (``MaskSpec``'s
    checks and ``check_config``'s alike; keys named with ``prefix``, e.g. "mask.")."""
    out = [
        p
        for p in (
            schema.problem("mask.cut", cut, f"{prefix}cut"),
            schema.problem("mask.trim", trim, f"{prefix}trim"),
        )
        if p
    ]
    if trim != "raster" and cut == "raster":
        out.append(
            f"{prefix}trim={trim!r} chooses what a block trimmed in part keeps; {prefix}cut='raster' keeps every "
            f"sample's first tokens in raster order instead and trims no block: drop one of the two"
        )
    given = sorted({str(r) for r in ratios if r is not None})
    if cut == "raster" and given:
        out.append(
            f"{prefix}cut='raster' (Meta's cut of ratio-free settings to the batch minimum) needs ratio null in "
            f"every mask setting; ratio={', '.join(given)} is set{ratio_hint}"
        )
    return out


def mask_settings(mask_cfg, modality: str = "video") -> list:
    """The mask settings of a ``mask`` config for one modality: its own keys, or, when ``settings`` is a
    list, one per entry (each entry's missing keys taken from the group's own keys); for images,
    ``image_settings`` instead when it is a list (V-JEPA 2.1 masks images with 10 blocks, not the clips'
    short- and long-range settings). Each setting gets its own predictor pass; the group's ``cut`` (default
    random) and ``trim`` (default raster) apply to every setting."""
    base = {
        **{k: mask_cfg[k] for k in SETTING_KEYS},
        "cut": schema.leaf(mask_cfg, "mask.cut"),
        "trim": schema.leaf(mask_cfg, "mask.trim"),
    }
    entries = mask_cfg.get("settings") or [{}]
    if modality == "image" and mask_cfg.get("image_settings"):
        entries = mask_cfg.image_settings
    return [{**base, **dict(entry)} for entry in entries]


@dataclass
class Masks:
    """One batch of masks. Indices are sorted raster positions in [0, N)."""

    ctx_idx: torch.Tensor  # [B, N_c] visible (context) tokens, fed to the online encoder
    tgt_idx: torch.Tensor  # [B, N_t] masked (target) tokens, predicted
    blocks: torch.Tensor  # [B, K, N_t] bool: target token j lies in block k (blocks may overlap)
    grid: tuple[int, int, int]
    index: torch.Tensor | None = None  # [B] samples of the batch these are for (None: all, in order)

    @property
    def size(self) -> int:
        return self.ctx_idx.shape[0]

    @property
    def ratio(self) -> float:
        """Mask ratio: the fraction of the grid the online encoder does not see."""
        return 1.0 - self.ctx_idx.shape[1] / (self.grid[0] * self.grid[1] * self.grid[2])

    def rows(self, start: int, stop: int) -> Masks:
        """Masks of samples ``start .. stop - 1`` (a rank's slice of the global batch), their ``index``
        counted from ``start``; a bucket may hold none of them."""
        if self.index is None:
            return Masks(
                self.ctx_idx[start:stop], self.tgt_idx[start:stop], self.blocks[start:stop], self.grid
            )
        keep = (self.index >= start) & (self.index < stop)
        return Masks(
            self.ctx_idx[keep], self.tgt_idx[keep], self.blocks[keep], self.grid, self.index[keep] - start
        )

    def to(self, device) -> Masks:
        """These masks on ``device``. To CUDA through pinned memory without blocking: a copy from pageable
        memory first waits for all the work queued on the device, so the host could not queue ahead."""
        device = torch.device(device)

        def move(t: torch.Tensor) -> torch.Tensor:
            if device.type == "cuda" and t.device.type == "cpu":
                return t.pin_memory().to(device, non_blocking=True)
            return t.to(device)

        index = None if self.index is None else move(self.index)
        return Masks(move(self.ctx_idx), move(self.tgt_idx), move(self.blocks), self.grid, index)


def masked_count(ratio: float, n_tokens: int) -> int:
    """Tokens to mask for a ratio; at least one masked and one visible token."""
    return min(max(round(ratio * n_tokens), 1), n_tokens - 1)


def _draw_blocks(
    spec: MaskSpec, b: int, grid, g: torch.Generator, size: torch.Tensor | None = None, return_size=False
):
    """[b, K, N] bool coverage of K random blocks per sample.

    With a ratio, every block draws its own size. Without one (the V-JEPA 2 / 2.1 collator), one block size
    is drawn per batch (``size``: three uniforms, drawn here unless given; ``return_size`` returns them too)
    and shared by all blocks of all samples, with the released code's arithmetic: the spatial token count
    floored, height and width rounded from it, the temporal extent floored (at least 1).

    ``spatial_scale`` is a fraction of the grid's *area*, as in the V-JEPA 2 code the design document says
    it follows (its section 4.4 words it as a fraction of the grid's dimensions: [0.15, 0.7] of each side
    would cover 2-49 % of the area, not 15-70 %)."""
    t, h, w = grid
    k = spec.num_blocks
    u = torch.rand(b, k, 6, generator=g)
    lo, hi = spec.spatial_scale
    alo, ahi = spec.aspect_ratio
    tlo, thi = spec.temporal_scale
    if spec.ratio is None:
        size = torch.rand(3, generator=g) if size is None else size
        area = torch.tensor(float(int((lo + (hi - lo) * size[0].item()) * h * w))).expand(b, k)
        ar = (alo + (ahi - alo) * size[1]).expand(b, k)
        bt = torch.tensor(max(1, int(t * (tlo + (thi - tlo) * size[2].item())))).clamp(max=t).expand(b, k)
    else:
        area = (lo + (hi - lo) * u[..., 0]) * h * w
        ar = alo + (ahi - alo) * u[..., 1]
        bt = ((tlo + (thi - tlo) * u[..., 2]) * t).round().clamp(1, t).long()
    bh = (area * ar).sqrt().round().clamp(1, h).long()
    bw = (area / ar).sqrt().round().clamp(1, w).long()
    t0 = (u[..., 3] * (t - bt + 1)).floor().long()
    h0 = (u[..., 4] * (h - bh + 1)).floor().long()
    w0 = (u[..., 5] * (w - bw + 1)).floor().long()
    tt = torch.arange(t).view(t, 1, 1)
    hh = torch.arange(h).view(1, h, 1)
    ww = torch.arange(w).view(1, 1, w)

    def inside(coord, start, size):
        s, n = start[..., None, None, None], size[..., None, None, None]
        return (coord >= s) & (coord < s + n)

    cover = inside(tt, t0, bt) & inside(hh, h0, bh) & inside(ww, w0, bw)
    return (cover.flatten(2), size) if return_size else cover.flatten(2)


def draw_union(spec: MaskSpec, b: int, grid, g: torch.Generator) -> torch.Tensor:
    """[b, K, N] block coverage of ratio-free (V-JEPA 2 / 2.1) masks: one block size per batch, and, as in
    the released collator, a sample whose blocks cover every token draws its positions again (up to
    ``max_rounds`` times; on tiny grids where they always do, one token is left to the context later)."""
    cover, size = _draw_blocks(spec, b, grid, g, return_size=True)
    for _ in range(spec.max_rounds - 1):
        full = cover.any(1).all(1)
        if not full.any():
            break
        cover[full] = _draw_blocks(spec, int(full.sum()), grid, g, size=size)
    return cover


def _maskable_tokens(grid: tuple[int, int, int]) -> int:
    n = grid[0] * grid[1] * grid[2]
    if n < 2:
        raise ValueError(f"token grid {grid} has {n} token(s); masking needs at least 2")
    return n


def sample_masks(
    spec: MaskSpec, batch_size: int, grid: tuple[int, int, int], generator: torch.Generator
) -> Masks:
    n = _maskable_tokens(grid)
    if spec.ratio is None:
        return _cut(draw_union(spec, batch_size, grid, generator), spec, grid, generator)
    covers = [_draw_blocks(spec, batch_size, grid, generator)]
    want = masked_count(spec.ratio, n)
    for _ in range(spec.max_rounds - 1):
        if (torch.stack(covers).any(0).any(1).sum(1) >= want).all():
            break
        covers.append(_draw_blocks(spec, batch_size, grid, generator))
    return _cut(torch.cat(covers, dim=1), spec, grid, generator)


BUCKETING = schema.choices("mask.bucket_by")


def mask_bucketing(mask_cfg) -> tuple[int, str]:
    """(buckets, by) of a ``mask`` config (1, "order" where a config predates the keys)."""
    return int(schema.leaf(mask_cfg, "mask.buckets")), schema.leaf(mask_cfg, "mask.bucket_by")


def sample_mask_buckets(
    spec: MaskSpec,
    batch_size: int,
    grid: tuple[int, int, int],
    generator: torch.Generator,
    buckets: int = 1,
    by: str = "order",
) -> list[Masks]:
    """The masks of one batch as a list of length buckets (see the module docstring), each with the
    ``index`` of its samples; ``[sample_masks(...)]`` (identical draws) when ``buckets`` is 1 or the setting
    has a ratio (every sample then has the same counts, whatever ``buckets``). Buckets hold
    ``batch_size // buckets`` or one more samples; more buckets than samples is an error."""
    problem = schema.problem("mask.buckets", buckets, "buckets") or schema.problem("mask.bucket_by", by, "by")
    if problem:
        raise ValueError(problem)
    if buckets == 1 or spec.ratio is not None:
        return [sample_masks(spec, batch_size, grid, generator)]
    if buckets > batch_size:
        raise ValueError(f"buckets={buckets} exceeds the batch of {batch_size} samples")
    out = []
    if by == "order":
        for idx in torch.arange(batch_size).tensor_split(buckets):
            m = sample_masks(spec, len(idx), grid, generator)
            out.append(Masks(m.ctx_idx, m.tgt_idx, m.blocks, m.grid, idx))
        return out
    _maskable_tokens(grid)
    cover = draw_union(spec, batch_size, grid, generator)
    by_size = cover.any(1).sum(1).argsort(stable=True)
    for idx in by_size.tensor_split(buckets):
        idx = idx.sort().values
        m = _cut(cover[idx], spec, grid, generator)
        out.append(Masks(m.ctx_idx, m.tgt_idx, m.blocks, m.grid, idx))
    return out


def target_mask(buckets: list[Masks], batch_size: int) -> torch.Tensor:
    """[B, N] bool: True where a sample's token is a target (predicted), from all of a batch's buckets."""
    n = buckets[0].grid[0] * buckets[0].grid[1] * buckets[0].grid[2]
    mask = torch.zeros(batch_size, n, dtype=torch.bool)
    for m in buckets:
        rows = torch.arange(batch_size) if m.index is None else m.index
        mask[rows.unsqueeze(1), m.tgt_idx] = True
    return mask


def _cut(cover: torch.Tensor, spec: MaskSpec, grid, generator: torch.Generator) -> Masks:
    """Masks from [B, K, N] block coverage: with a ratio, the first ``masked_count`` tokens by priority
    (steps 2-3 of the module docstring); without, each sample's union trimmed to the smallest union and its
    complement cut to the smallest complement."""
    t, h, w = grid
    batch_size, k_total, n = cover.shape
    covered = cover.any(1)
    n_ctx = None  # ratio given: the context is every token that is not a target
    if spec.ratio is None:
        union = covered.sum(1)
        want = min(max(int(union.min()), 1), n - 1)
        n_ctx = min(max(int((n - union).min()), 1), n - want)
    else:
        want = masked_count(spec.ratio, n)

    raster = torch.arange(n).expand(batch_size, n)
    noise = torch.rand(batch_size, n, generator=generator)  # drawn for either cut: same stream after it
    if n_ctx is not None and spec.cut == "raster":
        # Meta's collator: each sample's target and context indices in raster order, cut to their first ones.
        # A sample whose blocks cover every token (redraws exhausted, tiny grids) takes its context from the
        # covered tokens that are not targets, never from the targets (n_ctx <= n - want leaves enough).
        tgt_idx = (raster + n * ~covered).argsort(dim=1)[:, :want]
        is_tgt = torch.zeros_like(covered).scatter_(1, tgt_idx, True)
        ctx_idx = (raster + n * covered + 2 * n * is_tgt).argsort(dim=1)[:, :n_ctx]
    else:
        # Priority: first covering block, then raster order (along randomly flipped axes for trim=
        # "random_edge"); uncovered tokens rank last, in random order.
        first_block = torch.where(
            covered, cover.float().argmax(1), torch.full_like(covered, k_total, dtype=torch.long)
        )
        within = (raster if spec.trim == "raster" else _edge_order(noise, grid)).float()
        priority = first_block * n + torch.where(covered, within, noise * n)
        order = priority.argsort(dim=1, stable=True)
        tgt_idx = order[:, :want].sort(dim=1).values
        ctx_idx = order[:, want if n_ctx is None else n - n_ctx :].sort(dim=1).values  # uncovered rank last
    blocks = torch.gather(cover, 2, tgt_idx.unsqueeze(1).expand(-1, k_total, -1))
    fill = ~blocks.any(1, keepdim=True)  # tokens added in step 3 form one extra block
    blocks = torch.cat([blocks, fill], dim=1)
    blocks = blocks[:, blocks.any(2).any(0)]  # drop blocks that lost all their tokens in every sample
    return Masks(ctx_idx=ctx_idx, tgt_idx=tgt_idx, blocks=blocks, grid=(t, h, w))


def _edge_order(noise: torch.Tensor, grid) -> torch.Tensor:
    """[B, N] a per-sample ordering of the tokens whose last ones lie on one spatial edge of the grid: rows
    (or, transposed, columns) major, each flipped at random, frames minor. Cut to its first tokens, a block
    loses its bottom, top, right or left side across all its frames: it keeps its temporal extent.

    The choices are the four lowest of the 24 random bits of each sample's first noise value (``torch.rand``
    float32 values are multiples of 2**-24; the order of uncovered tokens, which the noise also sets,
    depends on its high bits), so no further draw is taken from the generator."""
    t, h, w = grid
    bits = (noise[:, :1] * 2**24).long()  # [B, 1]
    flip_t, flip_h, flip_w, transpose = ((bits >> k) & 1 for k in range(4))
    tt, hh, ww = grid_coords(grid).unbind(1)  # [N] each
    tt = torch.where(flip_t.bool(), t - 1 - tt, tt)
    hh = torch.where(flip_h.bool(), h - 1 - hh, hh)
    ww = torch.where(flip_w.bool(), w - 1 - ww, ww)
    return torch.where(transpose.bool(), (ww * h + hh) * t + tt, (hh * w + ww) * t + tt)


def grid_coords(grid: tuple[int, int, int], device=None) -> torch.Tensor:
    """[N, 3] (t, h, w) integer coordinates of the tokens of a (t, h, w) grid, in raster order (the token
    order of the encoder, the masks' indices and the models' positions)."""
    t, h, w = grid
    axes = [torch.arange(n, device=device) for n in (t, h, w)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def expected_block_tokens(spec: MaskSpec, grid) -> float:
    """Mean tokens in one block (before overlap), used for dry-run cost estimates."""
    t, h, w = grid
    return math.prod([sum(spec.spatial_scale) / 2 * h * w, sum(spec.temporal_scale) / 2 * t])


# ---- the masks of a run ----------------------------------------------------------------------------------
MASK_STREAM = {"image": 11, "video": 12}


def mask_generator(seed: int, step: int, modality: str, k: int) -> torch.Generator:
    """The generator of mask setting ``k`` of ``modality`` at ``step``. Settings 0 and 1 (V-JEPA 2's two)
    keep their ``step_generator`` streams; from setting 2 on the stream would alias a data stream (4011 is
    stream 72 at step + 39, 6012 stream 53), so those are hashed."""
    from vjepa.data import hashed_generator, step_generator

    if k < 2:
        return step_generator(seed, step, MASK_STREAM[modality] + 1000 * k)
    return hashed_generator(seed, step, MASK_STREAM[modality], k)


class RunMasks:
    """The masks a run draws: at training step ``step``, for the global batch of one modality, one list of
    buckets (``sample_mask_buckets``) per mask setting of its ``mask`` config, setting ``k`` drawn from
    ``mask_generator(seed, step, modality, k)`` alone. The same (config, seed, step, batch size, grid) always
    gives the same masks; each process of a distributed run draws the global batch's and keeps its rows."""

    def __init__(self, mask_cfg, seed: int):
        from omegaconf import OmegaConf

        self.seed = int(seed)
        self.specs = {
            modality: [MaskSpec.from_cfg(OmegaConf.create(s)) for s in mask_settings(mask_cfg, modality)]
            for modality in MASK_STREAM
        }
        self.bucketing = mask_bucketing(mask_cfg)

    def draw(
        self, step: int, modality: str, batch_size: int, grid: tuple[int, int, int]
    ) -> list[list[Masks]]:
        return [
            sample_mask_buckets(
                spec, batch_size, grid, mask_generator(self.seed, step, modality, k), *self.bucketing
            )
            for k, spec in enumerate(self.specs[modality])
        ]


def token_grid(shape, patch_size: int, tubelet_size: int) -> tuple[int, int, int]:
    """The token grid (T', H', W') of an image batch [B, C, H, W] (T' = 1, with either tokenizer) or a clip
    batch [B, C, T, H, W], as the encoder's tokenizers cut it."""
    t = shape[-3] // tubelet_size if len(shape) == 5 else 1
    return t, shape[-2] // patch_size, shape[-1] // patch_size


@dataclass
class LoaderMasks:
    """The masks of one process's rows of a step's batch, drawn where the batch is loaded (in the data
    loader's workers): ``rows(step, modality, batch_size, shape, start, stop)`` draws the global batch's
    masks (``RunMasks.draw``: the step's own generators, so the masks are those the trainer would draw) on
    the token grid of inputs of ``shape``, and keeps rows ``start:stop`` of every bucket."""

    run: RunMasks
    patch_size: int
    tubelet_size: int

    def rows(self, step: int, modality: str, batch_size: int, shape, start: int, stop: int) -> list[list]:
        grid = token_grid(shape, self.patch_size, self.tubelet_size)
        drawn = self.run.draw(step, modality, batch_size, grid)
        return [[b.rows(start, stop) for b in buckets] for buckets in drawn]


def run_masks(
    cfg, step: int, modality: str, batch_size: int, grid: tuple[int, int, int]
) -> list[list[Masks]]:
    """The masks a run with config ``cfg`` (its ``mask`` and ``seed``) draws at ``step`` for a global batch of
    ``batch_size`` samples of ``modality`` on token grid ``grid`` (see ``RunMasks``)."""
    return RunMasks(cfg.mask, cfg.seed).draw(step, modality, batch_size, grid)
