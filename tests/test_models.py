import pytest
import torch
from omegaconf import OmegaConf

from vjepa.models import build_encoder, build_predictor, count_params
from vjepa.models.pos_embed import axis_dims, sincos_3d


def _model_cfg(name):
    return OmegaConf.load(f"vjepa/conf/model/{name}.yaml")


def test_paper_presets_param_counts_on_meta_device():
    huge = build_encoder(_model_cfg("huge"), device="meta")
    giant = build_encoder(_model_cfg("giant"), device="meta")
    assert next(huge.parameters()).device.type == "meta"
    assert count_params(huge, "blocks") == pytest.approx(630e6, rel=0.01)
    assert count_params(giant, "blocks") == pytest.approx(1.01e9, rel=0.01)
    assert (huge.embed_dim, huge.depth, huge.num_heads, huge.patch_size) == (1280, 32, 16, 16)
    assert (giant.embed_dim, giant.depth, giant.num_heads, giant.patch_size) == (1408, 40, 16, 14)


def test_sincos_factored_over_time_height_width():
    emb = sincos_3d(48, (2, 3, 4))
    d_t, d_h, d_w = axis_dims(48)
    assert emb.shape == (24, 48)
    grid = emb.view(2, 3, 4, 48)
    # the time chunk depends only on t, the height chunk only on h, the width chunk only on w
    assert torch.equal(grid[0, 1, 2, :d_t], grid[0, 2, 3, :d_t])
    assert not torch.equal(grid[0, 0, 0, :d_t], grid[1, 0, 0, :d_t])
    assert torch.equal(grid[0, 1, 0, d_t : d_t + d_h], grid[1, 1, 3, d_t : d_t + d_h])
    assert torch.equal(grid[0, 0, 2, d_t + d_h :], grid[1, 2, 2, d_t + d_h :])


def test_encoder_image_and_video_tokens(compose_cfg):
    cfg = compose_cfg("model=tiny")
    enc = build_encoder(cfg.model)
    img, vid = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 8, 64, 64)
    assert enc.grid(img) == (1, 8, 8) and enc(img).shape == (2, 64, 192)
    assert enc.grid(vid) == (4, 8, 8) and enc(vid).shape == (2, 256, 192)
    assert enc.image_embed.proj.weight.ndim == 4 and enc.video_embed.proj.weight.shape[2] == 2


def test_encoder_sees_only_visible_tokens():
    """Dropping tokens happens before the blocks: the output at kept positions depends only on kept inputs."""
    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    enc = build_encoder(cfg).eval()
    x = torch.randn(1, 3, 32, 32)
    keep = torch.tensor([[0, 3, 5, 9]])
    out = enc(x, keep_idx=keep)
    x2 = x.clone()
    x2[..., 8:16, 8:16] += 5.0  # patch (1, 1) = token 5 changes ...
    x3 = x.clone()
    x3[..., 16:24, 16:24] += 5.0  # ... token 10 (not kept) changes
    assert out.shape == (1, 4, 192)
    assert not torch.allclose(enc(x2, keep_idx=keep), out)
    assert torch.equal(enc(x3, keep_idx=keep), out)


def test_return_layers_matches_final_output():
    enc = build_encoder(OmegaConf.load("vjepa/conf/model/tiny.yaml")).eval()
    x = torch.randn(2, 3, 32, 32)
    layers = enc(x, return_layers=[-4, -3, -2, -1])
    assert len(layers) == 4 and torch.allclose(layers[-1], enc(x))


def test_return_layers_come_in_the_order_asked_and_out_of_range_is_an_error():
    enc = build_encoder(OmegaConf.load("vjepa/conf/model/tiny.yaml")).eval()  # depth 6
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ordered = enc(x, return_layers=[1, 3, 5])
        asked = enc(x, return_layers=[5, 1, 1, -3])
    assert len(asked) == 4
    assert torch.equal(asked[0], ordered[2]) and torch.equal(asked[1], ordered[0])
    assert torch.equal(asked[2], ordered[0]) and torch.equal(asked[3], ordered[1])
    assert not torch.allclose(ordered[0], ordered[1])  # distinct blocks give distinct outputs
    for bad in ([6], [-7], [], [1.5]):
        with pytest.raises(ValueError, match=r"each must be a block index in \[-6, 5\]"):
            enc(x, return_layers=bad)


def test_blocks_after_the_last_layer_asked_for_do_not_run():
    enc = build_encoder(OmegaConf.load("vjepa/conf/model/tiny.yaml")).eval()
    ran = []
    for i, blk in enumerate(enc.blocks):
        blk.register_forward_hook(lambda *_, i=i: ran.append(i))
    with torch.no_grad():
        enc(torch.randn(1, 3, 32, 32), return_layers=[2, 0])
    assert ran == [0, 1, 2]


def test_shared3d_tokenizer_repeats_images():
    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    cfg.tokenizer = "shared3d"
    enc = build_encoder(cfg).eval()
    assert enc.image_embed is None
    img = torch.randn(1, 3, 32, 32)
    clip = img.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    assert torch.allclose(enc(img), enc(clip))


def test_modality_embedding_changes_only_the_named_modality():
    cfg = OmegaConf.load("vjepa/conf/model/tiny.yaml")
    cfg.modality_embed = True
    enc = build_encoder(cfg).eval()
    img, vid = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 2, 32, 32)
    base_img, base_vid = enc.embed(img).clone(), enc.embed(vid).clone()
    with torch.no_grad():
        enc.modality_embed[1] += 1.0  # video
    assert torch.equal(enc.embed(img), base_img)
    assert torch.allclose(enc.embed(vid), base_vid + 1.0, atol=1e-6)  # x + 1 rounds at ~6e-8


def test_predictor_mask_token_and_output_shape():
    pred = build_predictor(OmegaConf.create(dict(width=32, depth=1, num_heads=2)), embed_dim=48)
    ctx = torch.randn(2, 5, 48)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]])
    tgt_idx = torch.tensor([[5, 6, 7], [0, 1, 2]])
    out = pred(ctx, ctx_idx, tgt_idx, (1, 2, 4))
    assert out.shape == (2, 3, 48)
    out.sum().backward()
    assert pred.mask_token.grad is not None and pred.mask_token.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_block_matches_timm_eva_block(dtype):
    """The fused RoPE block computes what timm's EVA block (rotate-half RoPE) computes, forward and
    backward, given the same weights (EVA has no key bias: ours is set to zero)."""
    from timm.models.eva import EvaBlock

    from vjepa.models.rope import RopeBlock, rope_3d

    torch.manual_seed(0)
    dim, heads, n = 48, 2, 20
    ours = RopeBlock(dim, heads, qkv_bias=True).to(dtype)
    eva = EvaBlock(dim, heads, qkv_bias=True, num_prefix_tokens=0, rotate_half=True).to(dtype)
    with torch.no_grad():
        for name, p in eva.named_parameters():
            if name in ("attn.q_bias", "attn.v_bias"):
                continue
            dict(ours.named_parameters())[name].copy_(p)
        ours.attn.qkv.bias.copy_(torch.cat([eva.attn.q_bias, torch.zeros(dim), eva.attn.v_bias]))
    coords = torch.stack(
        [torch.randint(0, 4, (3, n)), torch.randint(0, 8, (3, n)), torch.randint(0, 8, (3, n))], -1
    )
    cos, signed_sin = rope_3d(coords, dim // heads)
    half = dim // heads // 2
    sin = signed_sin[..., half:]
    timm_rope = torch.cat([sin, sin, cos], dim=-1)  # timm's [sin, cos] layout
    x = torch.randn(3, n, dim, dtype=dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_eva = ours(x1, rope=(cos, signed_sin)), eva(x2, rope=timm_rope)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert y_ours.dtype == dtype
    torch.testing.assert_close(y_ours, y_eva, atol=tol, rtol=tol)
    y_ours.float().square().sum().backward()
    y_eva.float().square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=tol * 10, rtol=tol * 10)
    torch.testing.assert_close(
        ours.mlp.fc1.weight.grad, eva.mlp.fc1.weight.grad, atol=tol * 10, rtol=tol * 10
    )


def test_rope_rotation_preserves_norm_and_relative_positions():
    from vjepa.models.rope import apply_rope, rope_3d

    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 1, 12), torch.randn(2, 1, 1, 12)
    # the same (t, h, w) offset at two absolute positions gives the same q.k
    a = torch.tensor([[[0, 1, 2]], [[3, 5, 1]]])
    b = a + torch.tensor([1, 2, 3])
    ra, rb = rope_3d(a, 12), rope_3d(b, 12)
    qa, kb = apply_rope(q, ra), apply_rope(k, rb)
    torch.testing.assert_close(qa.norm(dim=-1), q.norm(dim=-1))
    dots = (qa * kb).sum(-1).flatten()
    q0 = apply_rope(q, rope_3d(torch.zeros_like(a), 12))
    k0 = apply_rope(k, rope_3d(b - a, 12))
    torch.testing.assert_close(dots, (q0 * k0).sum(-1).flatten())


def test_deep_supervision_needs_a_block_per_level():
    from vjepa.models import VisionTransformer

    with pytest.raises(ValueError, match=r"depth=3 must be >= 4"):
        VisionTransformer(embed_dim=48, depth=3, num_heads=2, patch_size=8, levels=4)
    enc = VisionTransformer(embed_dim=48, depth=4, num_heads=2, patch_size=8, levels=4)
    assert enc.level_ids == [0, 1, 2, 3]
    assert len(enc.forward_levels(torch.randn(1, 3, 16, 16))) == 4


def _jepa(compose_cfg, *overrides):
    from tests.conftest import TINY_TEST
    from vjepa.jepa import JEPA

    torch.manual_seed(0)
    return JEPA(compose_cfg(*TINY_TEST, *overrides))


def test_targets_are_computed_without_drop_path_while_the_online_encoder_drops_paths(compose_cfg):
    model = _jepa(compose_cfg, "model.drop_path=0.5").train()
    assert model.encoder.training and model.predictor.training and not model.target_encoder.training
    x = torch.randn(16, 3, 32, 32)  # 16 samples: two drop-path draws agree on all with chance 2**-16
    assert torch.equal(model.targets(x), model.targets(x))
    with torch.no_grad():
        assert not torch.equal(model.encoder(x), model.encoder(x))  # stochastic depth in train mode
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encoder(x), model.encoder(x))
    model.train()
    assert not model.target_encoder.training  # train() does not switch the target encoder back


@pytest.mark.parametrize(
    "overrides", [(), ("model.depth=4", "model.deep_supervision=true", "model.pos=rope")]
)
def test_without_drop_path_the_target_encoder_mode_changes_nothing(compose_cfg, overrides):
    """Why keeping the target encoder in eval mode leaves runs with drop_path 0 as they were: its targets
    and the random stream are the same in either mode."""
    model = _jepa(compose_cfg, *overrides)
    x = torch.randn(2, 3, 4, 32, 32)
    out = {}
    for mode in (True, False):
        model.target_encoder.train(mode)
        rng = torch.get_rng_state()
        out[mode] = model.targets(x)
        assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(out[True], out[False])


@pytest.mark.parametrize("pos", ["sincos", "rope"])
@pytest.mark.parametrize("modality_embed", [False, True])
def test_the_residual_stream_is_fp32_under_bf16_autocast_in_every_configuration(
    compose_cfg, pos, modality_embed
):
    """Under bf16 autocast (CPU here, CUDA with precision=auto) the blocks compute in bf16 but the residual
    stream they add to stays fp32, whether or not the fp32 modality embedding is added (it used to decide)."""
    model = _jepa(compose_cfg, f"model.pos={pos}", f"model.modality_embed={str(modality_embed).lower()}")
    seen = {}

    def record(name):
        def hook(module, args):
            seen.setdefault(name, args[0].dtype)  # returns None: the block's input is left as it is

        return hook

    model.encoder.blocks[0].register_forward_pre_hook(record("encoder"))
    model.predictor.blocks[0].register_forward_pre_hook(record("predictor"))
    x = torch.randn(2, 3, 4, 32, 32)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7]])
    tgt_idx = torch.tensor([[8, 9, 10], [0, 1, 9]])
    with torch.autocast("cpu", torch.bfloat16):
        ctx = model.encoder(x, keep_idx=ctx_idx)
        model.predictor(ctx, ctx_idx, tgt_idx, model.encoder.grid(x), modality=1)
    assert seen == {"encoder": torch.float32, "predictor": torch.float32}
