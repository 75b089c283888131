import pytest
import torch

from vjepa.masks import TRIMS, MaskSpec, sample_masks


@pytest.mark.parametrize("ratio", [0.6, 0.75, 0.8, 0.9])
@pytest.mark.parametrize("grid", [(1, 8, 8), (4, 8, 8), (1, 14, 14), (8, 14, 14)])
def test_requested_ratio_is_met_per_sample(ratio, grid):
    g = torch.Generator().manual_seed(0)
    m = sample_masks(MaskSpec(ratio=ratio, temporal_scale=(0.5, 1.0)), 32, grid, g)
    n = grid[0] * grid[1] * grid[2]
    per_sample = m.tgt_idx.shape[1] / n
    assert abs(per_sample - ratio) <= 0.02
    assert m.ctx_idx.shape[1] + m.tgt_idx.shape[1] == n
    # context and target partition the grid, per sample
    both = torch.cat([m.ctx_idx, m.tgt_idx], 1).sort(1).values
    assert torch.equal(both, torch.arange(n).expand(32, n))
    # every masked token belongs to at least one block
    assert m.blocks.any(1).all()


def test_blocks_are_rectangular_boxes_on_the_grid():
    g = torch.Generator().manual_seed(1)
    spec = MaskSpec(ratio=None, num_blocks=1, spatial_scale=(0.2, 0.2), aspect_ratio=(1.0, 1.0))
    m = sample_masks(spec, 16, (1, 10, 10), g)
    for b in range(16):
        idx = m.tgt_idx[b]
        rows, cols = idx // 10, idx % 10
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h * w == idx.numel()  # a full rectangle
        assert (h, w) == (4, 4)  # sqrt(0.2 * 100) rounded, aspect 1


def test_union_mode_trims_to_batch_minimum_and_is_deterministic():
    spec = MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0))
    a = sample_masks(spec, 8, (4, 8, 8), torch.Generator().manual_seed(3))
    b = sample_masks(spec, 8, (4, 8, 8), torch.Generator().manual_seed(3))
    assert torch.equal(a.tgt_idx, b.tgt_idx) and torch.equal(a.blocks, b.blocks)
    assert 0.3 < a.ratio < 0.9


@pytest.mark.parametrize("grid", [(1, 8, 8), (8, 8, 8)])
def test_union_mode_context_is_the_complement_cut_to_the_batch_minimum(grid):
    """ratio=None (V-JEPA 2 / 2.1): targets = union trimmed to the smallest union, context = complement of
    the union cut to the smallest complement; the context never holds a token of any block."""
    from vjepa.masks import draw_union

    spec = MaskSpec(ratio=None, num_blocks=3, spatial_scale=(0.1, 0.4))
    n = grid[0] * grid[1] * grid[2]
    for seed in range(5):
        m = sample_masks(spec, 8, grid, torch.Generator().manual_seed(seed))
        covered = draw_union(spec, 8, grid, torch.Generator().manual_seed(seed)).any(1)  # the same draw
        union = covered.sum(1)
        assert m.tgt_idx.shape[1] == union.min() and m.ctx_idx.shape[1] == (n - union).min()
        assert not torch.gather(covered, 1, m.ctx_idx).any()
        assert torch.gather(covered, 1, m.tgt_idx).all()
        assert m.ratio == pytest.approx(1 - m.ctx_idx.shape[1] / n)
        # samples with a smaller union than the batch's largest lose context tokens: neither seen nor predicted
        seen = torch.zeros(8, n, dtype=torch.long).scatter_add_(1, m.ctx_idx, torch.ones_like(m.ctx_idx))
        seen.scatter_add_(1, m.tgt_idx, torch.ones_like(m.tgt_idx))
        assert seen.max() == 1 and (seen.sum(1) == m.ctx_idx.shape[1] + m.tgt_idx.shape[1]).all()


@pytest.mark.parametrize("grid", [(1, 8, 8), (4, 8, 8)])
def test_raster_cut_keeps_each_sets_first_tokens_as_metas_collator(grid):
    """cut="raster": targets and context are each sample's first covered / uncovered tokens in raster order
    (brute force below), from the same blocks as the random cut; the context then leans to the top of the
    frame (and the first frames) where the random cut's does not."""
    from vjepa.masks import draw_union

    base = dict(ratio=None, num_blocks=3, spatial_scale=(0.1, 0.4))
    positions_raster, positions_random = [], []
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        m = sample_masks(MaskSpec(**base, cut="raster"), 8, grid, g)
        g_random = torch.Generator().manual_seed(seed)
        r = sample_masks(MaskSpec(**base), 8, grid, g_random)
        assert torch.equal(g.get_state(), g_random.get_state())  # both cuts consume the same draws
        covered = draw_union(MaskSpec(**base), 8, grid, torch.Generator().manual_seed(seed)).any(1)
        union = covered.sum(1)
        n_tgt, n_ctx = int(union.min()), int((covered.shape[1] - union).min())
        for b in range(8):
            expect_tgt = [j for j in range(covered.shape[1]) if covered[b, j]][:n_tgt]
            expect_ctx = [j for j in range(covered.shape[1]) if not covered[b, j]][:n_ctx]
            assert m.tgt_idx[b].tolist() == expect_tgt and m.ctx_idx[b].tolist() == expect_ctx
        assert m.tgt_idx.shape == r.tgt_idx.shape and m.ctx_idx.shape == r.ctx_idx.shape
        assert torch.gather(covered, 1, r.tgt_idx).all() and not torch.gather(covered, 1, r.ctx_idx).any()
        assert m.blocks.any(1).all()  # every target token lies in a block
        positions_raster.append(m.ctx_idx.flatten())
        positions_random.append(r.ctx_idx.flatten())
    # the context's mean raster position (top rows, first frames come first): ~0.41 vs ~0.50 of the grid here
    n = covered.shape[1]
    assert (
        torch.cat(positions_raster).float().mean() / n < torch.cat(positions_random).float().mean() / n - 0.05
    )


def test_raster_cut_needs_a_ratio_free_setting():
    with pytest.raises(ValueError, match="needs ratio null in every mask setting; ratio=0.6 is set"):
        MaskSpec(ratio=0.6, cut="raster")
    with pytest.raises(ValueError, match="cut='first' is not one of: random, raster"):
        MaskSpec(ratio=None, cut="first")


def _target_profile(spec, grid, batches=20, batch_size=128, seed=0):
    """Mean masked-target fraction by frame and by row over ``batches`` batches."""
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1] * grid[2]
    hits = torch.zeros(n)
    for _ in range(batches):
        m = sample_masks(spec, batch_size, grid, g)
        hits += torch.zeros(batch_size, n).scatter_(1, m.tgt_idx, 1.0).mean(0)
    p = (hits / batches).view(*grid)
    return p.mean((1, 2)), p.mean((0, 2))


@pytest.mark.parametrize(
    "spec",
    [
        MaskSpec(ratio=0.6, temporal_scale=(0.5, 1.0)),
        MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15)),
    ],
)
def test_trims_draw_the_same_blocks_and_keep_the_same_counts(spec):
    """trim only chooses which tokens of the block kept in part survive: same draws, same counts, targets
    inside the same union, whole earlier blocks kept alike."""
    from dataclasses import replace

    grid = (4, 8, 8)
    g_raster, g_random = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = sample_masks(spec, 16, grid, g_raster)
    b = sample_masks(replace(spec, trim="random_edge"), 16, grid, g_random)
    assert torch.equal(g_raster.get_state(), g_random.get_state())
    assert a.tgt_idx.shape == b.tgt_idx.shape and a.ctx_idx.shape == b.ctx_idx.shape
    assert not torch.equal(a.tgt_idx, b.tgt_idx)
    n = grid[0] * grid[1] * grid[2]
    for m in (a, b):  # every token is a target or context, never both
        seen = torch.zeros(16, n).scatter_add_(1, m.tgt_idx, torch.ones(m.tgt_idx.shape))
        assert seen.scatter_add_(1, m.ctx_idx, torch.ones(m.ctx_idx.shape)).max() == 1
    if spec.ratio is None:  # blocks before the one kept in part are kept whole by both trims
        from vjepa.masks import draw_union

        cover = draw_union(spec, 16, grid, torch.Generator().manual_seed(5))
        covered = cover.any(1)
        first = torch.where(covered, cover.float().argmax(1), torch.tensor(cover.shape[1]))
        for m in (a, b):
            assert covered.gather(1, m.tgt_idx).all()
            last_kept = first.gather(1, m.tgt_idx).max(1).values
            whole = first < last_kept.unsqueeze(1)
            assert (torch.zeros(16, n).scatter_(1, m.tgt_idx, 1.0)[whole] == 1).all()
        assert torch.equal(first.gather(1, a.tgt_idx).max(1).values, first.gather(1, b.tgt_idx).max(1).values)


def test_raster_trim_leans_to_the_top_and_first_frames_random_trim_does_not():
    """The measured bias of trim="raster" (module docstring) and its absence with trim="random_edge": at ratio
    0.6 the bottom row is masked ~0.23 vs ~0.41 for the top, the last frame less than the first; the random
    edge's profile is mirror-symmetric up to sampling noise, and it leaves no holes in the target blocks."""
    from dataclasses import replace

    image, clip = MaskSpec(ratio=0.6), MaskSpec(ratio=0.6, temporal_scale=(0.5, 1.0))
    _, rows = _target_profile(image, (1, 8, 8))
    assert rows[0] - rows[-1] > 0.12
    _, rows = _target_profile(replace(image, trim="random_edge"), (1, 8, 8))
    assert (rows - rows.flip(0)).abs().max() < 0.03
    for trim in TRIMS:  # trimmed from an edge, not in holes: targets seldom have context on both sides
        m = sample_masks(replace(image, trim=trim), 512, (1, 8, 8), torch.Generator().manual_seed(1))
        target = torch.zeros(512, 64, dtype=torch.bool).scatter_(1, m.tgt_idx, True).view(512, 8, 8)
        between = (target[:, 1:-1] & ~target[:, :-2] & ~target[:, 2:]).sum() + (
            target[:, :, 1:-1] & ~target[:, :, :-2] & ~target[:, :, 2:]
        ).sum()
        assert between / target.sum() < 0.01
    frames, _ = _target_profile(clip, (4, 8, 8))
    assert frames[0] - frames[-1] > 0.07
    frames, _ = _target_profile(replace(clip, trim="random_edge"), (4, 8, 8))
    assert (frames - frames.flip(0)).abs().max() < 0.03


def test_random_trim_keeps_ratio_free_targets_flat_over_frames():
    """V-JEPA 2 blocks span the whole clip; trimmed to the batch's smallest union, targets thin out over
    frames with trim="raster" and stay flat with trim="random_edge"."""
    spec = MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15))
    frames, _ = _target_profile(spec, (4, 8, 8), batches=10)
    assert frames[0] - frames[-1] > 0.04
    frames, _ = _target_profile(
        MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15), trim="random_edge"),
        (4, 8, 8),
        batches=10,
    )
    assert frames.max() - frames.min() < 0.01


def test_trim_is_checked():
    with pytest.raises(ValueError, match="trim='first' is not one of: raster, random_edge$"):
        MaskSpec(trim="first")
    with pytest.raises(ValueError, match="cut='raster' keeps every sample's first tokens"):
        MaskSpec(ratio=None, cut="raster", trim="random_edge")


@pytest.mark.parametrize(
    "grid, blocks, scale, published",
    [((8, 16, 16), 8, 0.15, 0.62), ((8, 16, 16), 2, 0.7, 0.82), ((1, 16, 16), 10, 0.15, 0.68)],
)
def test_union_masks_match_the_published_masked_fractions(grid, blocks, scale, published):
    """V-JEPA 2.1's mask settings at 16x16 patches (16 frames, tubelet 2): per-sample masked fraction about
    62 % (short range), 82 % (long range), 68 % (images), as measured on the released code."""
    from vjepa.masks import draw_union

    spec = MaskSpec(ratio=None, num_blocks=blocks, spatial_scale=(scale, scale), temporal_scale=(1.0, 1.0))
    frac = torch.cat(
        [
            draw_union(spec, 16, grid, torch.Generator().manual_seed(s)).any(1).float().mean(1)
            for s in range(60)
        ]
    )
    assert frac.mean().item() == pytest.approx(published, abs=0.015)


def test_union_mode_redraws_samples_whose_blocks_cover_the_whole_grid():
    """The long-range setting (2 blocks of 70 %) on an 8 x 8 grid: a 6 x 8 or 8 x 5 block pair covers the
    whole plane for many samples. As the released collator, such samples draw their positions again, so the
    context never holds a target token and is not cut to one token for the whole batch."""
    from vjepa.masks import draw_union

    spec = MaskSpec(ratio=None, num_blocks=2, spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0))
    full_size_batches = 0
    for seed in range(40):
        covered = draw_union(spec, 128, (1, 8, 8), torch.Generator().manual_seed(seed)).any(1)
        assert not covered.all(1).any()
        m = sample_masks(spec, 128, (1, 8, 8), torch.Generator().manual_seed(seed))
        assert not torch.gather(covered, 1, m.ctx_idx).any()
        assert m.ctx_idx.shape[1] == (64 - covered.sum(1)).min() >= 1
        full_size_batches += bool((covered.sum(1) >= 48).any())  # some sample spans 6 or more full rows
    assert full_size_batches > 0  # the case arose


def test_union_mode_realised_tokens_match_the_released_step():
    """Anchor S1 (anchor-timing.md: 16 frames at 64 px, tubelet 2, patch 8 -> 8 x 8 x 8 tokens, batch 8):
    Meta's step kept 50.9 context / 354.2 target tokens per sample with the long-range setting and 137.5 /
    264.7 with the short-range one (means over its measured steps; a step's batch minimum varies by about
    30 tokens, so a few dozen steps give about +-6)."""
    long = MaskSpec(ratio=None, num_blocks=2, spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0))
    short = MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0))

    def mean_counts(spec):
        ms = [sample_masks(spec, 8, (8, 8, 8), torch.Generator().manual_seed(s)) for s in range(300)]
        ctx = sum(m.ctx_idx.shape[1] for m in ms) / len(ms)
        return ctx, sum(m.tgt_idx.shape[1] for m in ms) / len(ms)

    ctx, tgt = mean_counts(long)
    assert ctx == pytest.approx(50.9, abs=5) and tgt == pytest.approx(354.2, abs=12)
    ctx, tgt = mean_counts(short)
    assert ctx == pytest.approx(137.5, abs=12) and tgt == pytest.approx(264.7, abs=12)


def test_union_mode_on_a_grid_the_blocks_always_cover_keeps_one_context_token():
    spec = MaskSpec(ratio=None, num_blocks=2, spatial_scale=(1.0, 1.0), max_rounds=4)
    m = sample_masks(spec, 3, (1, 2, 2), torch.Generator().manual_seed(0))
    assert m.ctx_idx.shape == (3, 1) and m.tgt_idx.shape == (3, 3)
    assert not (m.ctx_idx[:, :, None] == m.tgt_idx[:, None, :]).any()


def test_union_mode_draws_one_block_size_per_batch():
    from vjepa.masks import _draw_blocks

    spec = MaskSpec(ratio=None, num_blocks=3, spatial_scale=(0.1, 0.5), aspect_ratio=(0.5, 2.0))
    sizes = _draw_blocks(spec, 6, (1, 12, 12), torch.Generator().manual_seed(0)).sum(2)
    assert (sizes == sizes[0, 0]).all()  # positions differ, the size does not
    per_block = _draw_blocks(MaskSpec(ratio=0.8, spatial_scale=(0.1, 0.5)), 6, (1, 12, 12), torch.Generator())
    assert per_block.sum(2).unique().numel() > 1


def test_temporal_extent_of_video_blocks():
    spec = MaskSpec(ratio=None, num_blocks=1, spatial_scale=(0.3, 0.3), temporal_scale=(0.5, 0.5))
    m = sample_masks(spec, 8, (4, 6, 6), torch.Generator().manual_seed(0))
    t = m.tgt_idx // 36
    assert ((t.max(1).values - t.min(1).values + 1) == 2).all()


@pytest.mark.parametrize("grid", [(1, 1, 2), (1, 2, 2), (1, 1, 3), (2, 1, 1), (1, 3, 3)])
@pytest.mark.parametrize(
    "spec",
    [
        MaskSpec(ratio=0.9),
        MaskSpec(ratio=None, num_blocks=8, cut="raster"),
        MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.7, 0.7), cut="raster"),
        MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.7, 0.7)),
    ],
    ids=["ratio", "union-raster-cut", "union-raster-cut-covering", "union-random-cut-covering"],
)
def test_tiny_grids_keep_one_visible_and_one_masked_token_never_both(grid, spec):
    """Blocks that cover the whole grid after every redraw (likely on a few tokens) still leave a context
    token that is no target, with either cut."""
    n = grid[0] * grid[1] * grid[2]
    for batch in (1, 3, 8):
        for seed in range(4):
            m = sample_masks(spec, batch, grid, torch.Generator().manual_seed(seed))
            assert m.ctx_idx.shape[1] >= 1 and m.tgt_idx.shape[1] >= 1
            assert m.ctx_idx.shape[1] + m.tgt_idx.shape[1] <= n
            assert not (m.ctx_idx[:, :, None] == m.tgt_idx[:, None, :]).any(), (batch, seed)


def test_single_token_grid_is_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        sample_masks(MaskSpec(), 2, (1, 1, 1), torch.Generator())


SHORT = MaskSpec(ratio=None, num_blocks=8, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0))
LONG = MaskSpec(ratio=None, num_blocks=2, spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0))


def test_one_bucket_and_ratio_settings_draw_exactly_the_unbucketed_masks():
    from vjepa.masks import sample_mask_buckets

    for spec, buckets in ((SHORT, 1), (MaskSpec(ratio=0.6), 8)):
        (m,) = sample_mask_buckets(spec, 32, (1, 8, 8), torch.Generator().manual_seed(5), buckets)
        ref = sample_masks(spec, 32, (1, 8, 8), torch.Generator().manual_seed(5))
        assert m.index is None
        for a, b in ((m.ctx_idx, ref.ctx_idx), (m.tgt_idx, ref.tgt_idx), (m.blocks, ref.blocks)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("spec", [SHORT, LONG], ids=["short", "long"])
def test_buckets_partition_the_batch_by_union_size_and_cut_each_on_its_own(spec):
    """Each sample lands in exactly one bucket; buckets hold consecutive union sizes; a bucket's context is
    outside every one of its samples' blocks and its targets inside them, cut to the bucket's own minima."""
    from vjepa.masks import draw_union, sample_mask_buckets

    b, grid = 30, (1, 8, 8)
    buckets = sample_mask_buckets(spec, b, grid, torch.Generator().manual_seed(2), 4, by="size")
    union = draw_union(spec, b, grid, torch.Generator().manual_seed(2)).any(1)  # the same first draw
    assert [m.size for m in buckets] == [8, 8, 7, 7]
    assert torch.equal(torch.cat([m.index for m in buckets]).sort().values, torch.arange(b))
    sizes = [union[m.index].sum(1) for m in buckets]
    for lower, upper in zip(sizes, sizes[1:]):
        assert lower.max() <= upper.min()
    for m, size in zip(buckets, sizes):
        u = union[m.index]
        assert not torch.gather(u, 1, m.ctx_idx).any()
        assert torch.gather(u, 1, m.tgt_idx).all()
        assert m.tgt_idx.shape[1] == size.min()
        assert m.ctx_idx.shape[1] == (64 - size).min()  # never 0: full covers are redrawn


def test_buckets_keep_tiny_grid_masks_near_each_samples_own_union():
    """At the tiny preset's 8 x 8 grid and batch 128, one cut over the batch masks far more than a sample's
    own blocks (the published fractions are per sample); 8 length buckets bring it back within 0.03."""
    from vjepa.masks import draw_union, sample_mask_buckets

    for spec in (SHORT, LONG):
        own, one, eight = [], [], []
        for seed in range(10):
            own.append(
                draw_union(spec, 128, (1, 8, 8), torch.Generator().manual_seed(seed)).any(1).float().mean()
            )
            for out, k in ((one, 1), (eight, 8)):
                ms = sample_mask_buckets(
                    spec, 128, (1, 8, 8), torch.Generator().manual_seed(seed), k, by="size"
                )
                out.append(sum(m.ratio * m.size for m in ms) / 128)
        own, one, eight = (sum(v) / len(v) for v in (own, one, eight))
        assert one > own + 0.09
        assert abs(eight - own) < 0.03


def test_bucket_rows_and_target_mask():
    from vjepa.masks import sample_mask_buckets, target_mask

    buckets = sample_mask_buckets(SHORT, 12, (1, 8, 8), torch.Generator().manual_seed(0), 3, by="size")
    local = [m.rows(4, 8) for m in buckets]
    assert sum(m.size for m in local) == 4
    assert torch.equal(torch.cat([m.index for m in local]).sort().values, torch.arange(4))
    full, part = target_mask(buckets, 12), target_mask(local, 4)
    assert torch.equal(full[4:8], part)
    for m in buckets:
        assert full[m.index].sum(1).eq(m.tgt_idx.shape[1]).all()


def test_bucket_count_is_checked():
    from vjepa.masks import sample_mask_buckets

    with pytest.raises(ValueError, match="buckets=5 exceeds the batch of 4 samples"):
        sample_mask_buckets(SHORT, 4, (1, 8, 8), torch.Generator(), 5)
    assert len(sample_mask_buckets(MaskSpec(ratio=0.6), 4, (1, 8, 8), torch.Generator(), 5)) == 1  # no effect
    with pytest.raises(ValueError, match="buckets=0 must be an integer >= 1"):
        sample_mask_buckets(SHORT, 4, (1, 8, 8), torch.Generator(), 0)
    with pytest.raises(ValueError, match="by='random' is not one of: order, size"):
        sample_mask_buckets(SHORT, 4, (1, 8, 8), torch.Generator(), 2, by="random")


def test_buckets_in_order_are_batches_of_their_own_as_on_separate_gpus():
    """by="order": consecutive groups, each drawn (its own block size) and cut exactly as a batch of its own
    size; cut over fewer samples, the context grows (tiny grid, short range: 83 % masked over 128 samples,
    about 78 % over groups of 25-26 as the released code's 24 clips per GPU)."""
    from vjepa.masks import sample_mask_buckets

    g, ref = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    parts = sample_mask_buckets(SHORT, 10, (1, 8, 8), g, 3)
    assert [m.index.tolist() for m in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    for m in parts:
        alone = sample_masks(SHORT, m.size, (1, 8, 8), ref)
        assert torch.equal(m.ctx_idx, alone.ctx_idx) and torch.equal(m.tgt_idx, alone.tgt_idx)
    one, five = [], []
    for seed in range(10):
        for out, k in ((one, 1), (five, 5)):
            ms = sample_mask_buckets(SHORT, 128, (1, 8, 8), torch.Generator().manual_seed(seed), k)
            out.append(sum(m.ratio * m.size for m in ms) / 128)
    assert sum(one) / 10 > 0.8 and 0.74 < sum(five) / 10 < 0.81


def test_the_loader_draws_the_masks_the_trainer_would_and_training_is_unchanged(compose_cfg, tmp_path):
    """Masks drawn in the loader's worker processes (LoaderMasks) are the step's own: equal, row for row, to
    those RunMasks draws for the global batch; a run whose loader has 2 workers logs the same numbers, bit for
    bit, as one loading in the training process, and as the trainer drawing the masks itself."""
    import json

    from tests.conftest import TINY_TEST
    from vjepa.data import build_sources, build_train_loader, split_masks
    from vjepa.masks import LoaderMasks, RunMasks, token_grid
    from vjepa.models import build_encoder
    from vjepa.trainer import Trainer, train

    base = [*TINY_TEST, "data=synthetic", "data.mix=joint", "steps=4", "log_every=1", "device=cpu"]
    cfg = compose_cfg(*base, "data.num_workers=2", run_dir=tmp_path / "w2")
    enc = build_encoder(cfg.model)
    run = RunMasks(cfg.mask, cfg.seed)
    loader_masks = LoaderMasks(run, cfg.model.patch_size, cfg.model.tubelet_size)
    sources = build_sources(cfg.data, cfg.batch_size, cfg.seed)
    loader = build_train_loader(cfg.data, cfg.batch_size, cfg.seed, 2, 4, 1, 2, sources, masks=loader_masks)
    batch, drawn = split_masks(next(iter(loader)))  # step 2, rank 1 of 2, from a worker process
    assert set(drawn) == set(batch) - {k for k in batch if k.startswith("skipped_")} == {"image", "video"}
    for modality, local in drawn.items():
        x = batch[modality]
        assert token_grid(x.shape, cfg.model.patch_size, cfg.model.tubelet_size) == enc.grid(x)
        n = x.shape[0]
        expected = run.draw(2, modality, 2 * n, enc.grid(x))
        for got, want in zip(local, expected, strict=True):
            for g, w in zip(got, [b.rows(n, 2 * n) for b in want], strict=True):
                assert torch.equal(g.ctx_idx, w.ctx_idx) and torch.equal(g.tgt_idx, w.tgt_idx)
                assert torch.equal(g.blocks, w.blocks) and g.grid == w.grid

    def numbers(run_dir):
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.endswith(("_per_s", "wall_time_s"))} for r in lines]

    train(cfg)
    train(compose_cfg(*base, "data.num_workers=0", run_dir=tmp_path / "w0"))
    assert numbers(tmp_path / "w2") == numbers(tmp_path / "w0")
    # the trainer's own draw (a batch without masks, as tests and benchmarks feed it) gives the same step
    step_cfg = compose_cfg(*base, run_dir=tmp_path / "own")
    losses = []
    for with_masks in (True, False):
        t = Trainer(step_cfg)
        t.build()
        masks = LoaderMasks(t.masks, step_cfg.model.patch_size, step_cfg.model.tubelet_size)
        item = next(
            iter(build_train_loader(step_cfg.data, step_cfg.batch_size, step_cfg.seed, 0, 1, masks=masks))
        )
        losses.append(t.train_step(0, item if with_masks else split_masks(item)[0])["loss"])
    assert losses[0] == losses[1]
