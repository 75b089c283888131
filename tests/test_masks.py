import pytest
import torch

from vjepa.masks import MaskSpec, sample_masks


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


def test_temporal_extent_of_video_blocks():
    spec = MaskSpec(ratio=None, num_blocks=1, spatial_scale=(0.3, 0.3), temporal_scale=(0.5, 0.5))
    m = sample_masks(spec, 8, (4, 6, 6), torch.Generator().manual_seed(0))
    t = m.tgt_idx // 36
    assert ((t.max(1).values - t.min(1).values + 1) == 2).all()


@pytest.mark.parametrize("grid", [(1, 1, 2), (1, 2, 2), (1, 1, 3)])
def test_tiny_grids_keep_one_visible_and_one_masked_token(grid):
    m = sample_masks(MaskSpec(ratio=0.9), 1, grid, torch.Generator().manual_seed(0))
    assert m.ctx_idx.shape[1] >= 1 and m.tgt_idx.shape[1] >= 1


def test_single_token_grid_is_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        sample_masks(MaskSpec(), 2, (1, 1, 1), torch.Generator())
