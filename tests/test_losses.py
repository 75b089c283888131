import pytest
import torch
import torch.nn.functional as F

from vjepa.losses import block_loss, distance, prediction_loss, token_loss


def test_smooth_l1_matches_design_document_formula():
    pred, target = torch.tensor([[0.5, 3.0, -1.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    beta = 2.0
    expected = ((0.5**2) / (2 * beta) + (3.0 - beta / 2) + (1.0**2) / (2 * beta)) / 3
    assert distance(pred, target, "smooth_l1", beta).item() == pytest.approx(expected)
    assert distance(pred, target, "l2").item() == pytest.approx((0.25 + 9 + 1) / 3)
    assert distance(pred, target, "l1").item() == pytest.approx((0.5 + 3 + 1) / 3)


def test_token_loss_is_mean_over_all_masked_tokens():
    pred, target = torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    assert token_loss(pred, target, "l2").item() == pytest.approx(F.mse_loss(pred, target).item(), rel=1e-6)


def test_block_loss_compares_block_means_weighted_by_size():
    pred = torch.tensor([[[1.0], [3.0], [10.0]]])
    target = torch.zeros(1, 3, 1)
    blocks = torch.tensor([[[True, True, False], [False, False, True]]])
    # block 0 mean 2 (size 2), block 1 mean 10 (size 1); l2 distances 4 and 100
    assert block_loss(pred, target, blocks, "l2").item() == pytest.approx((2 * 4 + 1 * 100) / 3)


def _grads(granularity):
    torch.manual_seed(0)
    pred = torch.randn(1, 6, 8, requires_grad=True)
    target = torch.randn(1, 6, 8)
    blocks = torch.tensor([[[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]], dtype=torch.bool)  # two disjoint blocks
    prediction_loss(pred, target, blocks, granularity, "smooth_l1", 2.0).backward()
    return pred.grad[0]


def test_block_loss_gives_every_token_of_a_block_the_same_gradient():
    g = _grads("block")
    assert torch.allclose(g[0], g[1]) and torch.allclose(g[1], g[2])
    assert torch.allclose(g[3], g[5]) and not torch.allclose(g[0], g[3])


def test_token_loss_gives_tokens_their_own_gradients():
    g = _grads("token")
    assert not torch.allclose(g[0], g[1]) and not torch.allclose(g[1], g[2])


def test_unknown_granularity_is_named():
    with pytest.raises(ValueError, match="loss.granularity"):
        prediction_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), None, "pixel")


def test_block_loss_is_fp32_under_bf16_autocast():
    """The trainer computes the loss inside its autocast region: under bf16 autocast (CPU here, CUDA in
    practice) the block means must not be rounded to bf16, or a prediction close to its target gets a
    loss and a gradient made of rounding noise."""
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(8, 200, 384, generator=g)
    target = pred + 0.01 * torch.randn(8, 200, 384, generator=g)
    blocks = torch.rand(8, 4, 200, generator=g) < 0.3

    def loss_and_grad(autocast: bool):
        p = pred.clone().requires_grad_()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss = block_loss(p, target, blocks, "l1")
        loss.backward()
        return loss.detach(), p.grad

    (ref, ref_grad), (got, got_grad) = loss_and_grad(False), loss_and_grad(True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-4, atol=1e-9)
