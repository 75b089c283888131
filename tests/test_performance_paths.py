"""Each speed path leaves results unchanged, and the benchmarks run and report what they promise."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vjepa.bench as bench_module
from tests.conftest import TINY_TEST
from vjepa.jepa import JEPA
from vjepa.losses import context_distance_weights
from vjepa.masks import MaskSpec, sample_masks

ROOT = Path(__file__).parents[1]


def _loss_and_grads(model, x, masks):
    model.zero_grad(set_to_none=True)
    loss, _ = model.loss(x, masks, context_weight=0.5)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_same_loss_and_gradients(compose_cfg):
    torch.manual_seed(0)
    model = JEPA(
        compose_cfg(*TINY_TEST, "loss.context.weight=0.5", "model.depth=4", "model.deep_supervision=true")
    )
    x = torch.randn(2, 3, 4, 32, 32)
    masks = sample_masks(MaskSpec(ratio=0.75), 2, model.encoder.grid(x), torch.Generator().manual_seed(0))
    ref_loss, ref_grads = _loss_and_grads(model, x, masks)
    model.encoder.grad_checkpointing = model.predictor.grad_checkpointing = True
    loss, grads = _loss_and_grads(model, x, masks)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert ref_grads.keys() == grads.keys()
    for name in ref_grads:
        assert torch.allclose(grads[name], ref_grads[name], atol=1e-6, rtol=1e-5), name


def test_compiled_blocks_match_eager_as_the_token_count_changes(compose_cfg):
    """compile=true (torch.compile of every block, dynamic shapes) with RoPE, the published recipe's
    positions: the same loss and gradients as eager for masks that keep different numbers of tokens (the
    second count used to crash the compiled attention backward)."""
    import copy

    torch.manual_seed(0)
    eager = JEPA(compose_cfg(*TINY_TEST, "model.pos=rope", "loss.context.weight=0.5"))
    compiled = copy.deepcopy(eager)
    compiled.compile_blocks()
    x = torch.randn(4, 3, 4, 32, 32)
    for ratio in (0.5, 0.75, 0.5):
        masks = sample_masks(
            MaskSpec(ratio=ratio), 4, eager.encoder.grid(x), torch.Generator().manual_seed(int(100 * ratio))
        )
        ref_loss, ref_grads = _loss_and_grads(eager, x, masks)
        loss, grads = _loss_and_grads(compiled, x, masks)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert ref_grads.keys() == grads.keys()
        for name in ref_grads:
            assert torch.allclose(grads[name], ref_grads[name], atol=1e-5, rtol=1e-4), (ratio, name)


def test_fused_ema_equals_per_parameter_loop(compose_cfg):
    model = JEPA(compose_cfg(*TINY_TEST))
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    expected = [
        0.9 * t + 0.1 * o for t, o in zip(model.target_encoder.parameters(), model.encoder.parameters())
    ]
    model.update_target(0.9)
    for e, t in zip(expected, model.target_encoder.parameters()):
        assert torch.allclose(e, t, atol=1e-7)


def test_fused_adamw_equals_per_parameter_loop(compose_cfg, tmp_path):
    """The trainer's fused AdamW takes the steps of torch's reference per-parameter AdamW: same losses on a
    fixed batch and same weights after 3 steps, within float rounding."""
    from vjepa.data import JointBatches, build_sources, split_skipped
    from vjepa.trainer import Trainer, param_groups

    cfg = compose_cfg(*TINY_TEST, f"run_dir={tmp_path}", "loss.context.weight=0.5")
    batch, _ = split_skipped(JointBatches(build_sources(cfg.data, cfg.batch_size, cfg.seed))[0])
    runs = []
    for fused in (True, False):
        trainer = Trainer(cfg)
        trainer.build()
        assert trainer.optimizer.defaults["fused"] is True
        if not fused:
            groups = param_groups([trainer.model.encoder, trainer.model.predictor], cfg.optim.weight_decay)
            trainer.optimizer = torch.optim.AdamW(
                groups, lr=trainer.peak_lr, betas=tuple(cfg.optim.betas), foreach=False
            )
            assert trainer.optimizer.param_groups[0]["fused"] is None
        losses = [trainer.train_step(step, batch)["loss"] for step in range(3)]
        runs.append((losses, {n: p.detach().clone() for n, p in trainer.model.named_parameters()}))
    (fused_losses, fused_w), (ref_losses, ref_w) = runs
    assert fused_losses == pytest.approx(ref_losses, rel=1e-5)
    assert fused_losses[2] != fused_losses[0]  # the steps did move the weights
    for name, w in ref_w.items():
        torch.testing.assert_close(fused_w[name], w, atol=1e-6, rtol=1e-5, msg=name)


def test_chunked_distance_weights_equal_unchunked():
    m = sample_masks(MaskSpec(ratio=0.8), 16, (4, 8, 8), torch.Generator().manual_seed(0))
    full = context_distance_weights(m.ctx_idx, m.tgt_idx, m.grid)
    chunked = context_distance_weights(m.ctx_idx, m.tgt_idx, m.grid, chunk=1000)
    assert torch.equal(full, chunked)


def _run(args):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_step_benchmark_reports_parts_and_shares():
    (res,) = _run(
        [
            "-m",
            "vjepa.bench",
            "--setting",
            "tiny_image",
            "batch_size=8",  # an override right after the setting names is an override, not a setting
            "--steps",
            "1",
            "--warmup",
            "0",
            "model.depth=2",
            "data.image.size=32",
        ]
    )
    assert res["step_ms"] > 0 and res["samples_per_s"] > 0 and res["peak_memory_mib"] > 0
    assert res["peak_memory_scope"] == "process so far"  # a CPU process's peak RSS cannot be reset
    assert res["samples_per_s"] * res["step_ms"] / 1e3 == pytest.approx(8)
    for part in (
        "masks",
        "target_encoder",
        "online_encoder",
        "predictor",
        "loss",
        "backward",
        "optimizer",
        "ema",
    ):
        assert res["parts_ms"][part] > 0, part
    assert sum(v for k, v in res["parts_share"].items() if k != "distance_weights") <= 1.0 + 1e-6


def test_compare_mode_prints_ratios():
    rows = _run(
        [
            "-m",
            "vjepa.bench",
            "--compare",
            "mask.ratio=0.5",
            "mask.ratio=0.9",
            "--steps",
            "1",
            "--warmup",
            "0",
            "preset=tiny",
            "data.mix=image",
            "model.depth=2",
            "batch_size=8",
            "data.image.size=32",
        ]
    )
    assert [r["setting"] for r in rows] == ["A", "B", "ratio B/A"]
    assert rows[2]["step_time"] > 0


class _FakeBench:
    """Stands in for vjepa.bench.Bench: records the overrides each configuration was built with."""

    built: list = []

    def __init__(self, overrides, time_parts=True):
        self.overrides, self.time_parts = overrides, time_parts
        self.trainer = type("T", (), {"device": torch.device("cpu")})()
        _FakeBench.built.append(overrides)

    def run_step(self, record=True):
        pass

    def summary(self, name):
        return {"setting": name, "step_ms": 1.0, "parts_ms": dict.fromkeys(bench_module.PARTS, 1.0)}


def test_bench_arguments_are_all_used_or_refused(monkeypatch, capsys):
    """--compare builds on the --setting given (it used to drop it), --encoder-scaling takes --steps and
    --warmup (it used to time 5 after 1 whatever was asked), unknown or too many settings are refused before
    anything is built."""
    monkeypatch.setattr(bench_module, "Bench", _FakeBench)
    _FakeBench.built = []
    bench_module.main(
        ["--setting", "small_video", "--compare", "model.depth=2", "model.depth=4", "--steps", "1"]
    )
    base = bench_module.SETTINGS["small_video"]
    assert _FakeBench.built == [[*base, "model.depth=2"], [*base, "model.depth=4"]]
    calls = []
    monkeypatch.setattr(bench_module, "encoder_scaling", lambda o, **kw: calls.append((o, kw)) or {})
    bench_module.main(["--encoder-scaling", "--setting", "tiny_video", "--steps", "7", "--warmup", "3"])
    assert calls == [(bench_module.SETTINGS["tiny_video"], {"repeats": 7, "warmup": 3})]
    _FakeBench.built = []
    for argv, message in (
        (["--setting", "tiny_imag"], "unknown --setting 'tiny_imag'"),
        (["--setting", "tiny_image", "tiny_video", "--compare", "a=1", "a=2"], "give at most one --setting"),
    ):
        with pytest.raises(SystemExit, match=message):
            bench_module.main(argv)
    assert _FakeBench.built == []


def test_revision_comparison_gives_overrides_after_setting_back(monkeypatch, tmp_path):
    """compare_revisions.py: an override written after --setting names is an override for every setting, not
    a setting of its own (which timed the default settings under that name)."""
    import contextlib
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compare_revisions", ROOT / "benchmarks" / "compare_revisions.py"
    )
    cr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cr)
    ran = []
    monkeypatch.setattr(cr, "worktree", lambda rev: contextlib.nullcontext(tmp_path / rev))
    monkeypatch.setattr(
        cr,
        "bench",
        lambda tree, setting, args, extra=(): ran.append((setting, list(args.overrides))) or {"step_ms": 1.0},
    )
    cr.main(["A", "B", "--setting", "tiny_image", "model.depth=2"])
    assert ran == [("tiny_image", ["model.depth=2"])] * 2


def test_revision_comparison_repeats_pairs_and_gives_a_paired_interval(monkeypatch, tmp_path):
    """--repeats: the pairs alternate which revision runs first; --b-overrides reach revision B only; the
    summary is the geometric mean of the pairs' ratios with the t interval of their logs (scipy's)."""
    import contextlib
    import importlib.util

    from scipy import stats

    spec = importlib.util.spec_from_file_location(
        "compare_revisions", ROOT / "benchmarks" / "compare_revisions.py"
    )
    cr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cr)
    monkeypatch.setattr(cr, "worktree", lambda rev: contextlib.nullcontext(tmp_path / rev))
    ran, b_steps = [], iter([90.0, 95.0, 88.0, 93.0])

    def fake_bench(tree, setting, args, extra=()):
        ran.append((tree.name, setting, list(extra)))
        return {"step_ms": next(b_steps) if tree.name == "B" else 100.0}

    monkeypatch.setattr(cr, "bench", fake_bench)
    out = tmp_path / "r.json"
    cr.main(["A", "B", "--setting", "anchor_s1", "anchor_s2", "--repeats", "2", "--b-overrides", "compile=true",
             "--json", str(out)])  # fmt: skip
    assert [r[:2] for r in ran] == [
        ("A", "anchor_s1"), ("B", "anchor_s1"), ("B", "anchor_s2"), ("A", "anchor_s2"),
        ("A", "anchor_s1"), ("B", "anchor_s1"), ("B", "anchor_s2"), ("A", "anchor_s2"),
    ]  # fmt: skip
    assert all(extra == (["compile=true"] if tree == "B" else []) for tree, _, extra in ran)
    result = json.loads(out.read_text())
    assert result["b"] == "B compile=true"
    s1 = result["ratios"]["anchor_s1"]
    logs = np.log([0.90, 0.88])
    low, high = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert s1["pairs"] == 2 and s1["geometric_mean"] == pytest.approx(math.exp(logs.mean()))
    assert (s1["low"], s1["high"]) == pytest.approx((math.exp(low), math.exp(high)))
    assert cr.paired_ratio([0.9])["low"] is None


def test_revision_comparison_times_both_checkouts_and_cleans_up(tmp_path):
    """benchmarks/compare_revisions.py: each revision measured from its own worktree, table and JSON written,
    worktrees removed; an unknown revision is refused before anything runs."""
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    small = ["preset=tiny", "model.depth=1", "batch_size=4", "data.image.size=16", "data.video.size=16"]
    out = subprocess.run(
        [sys.executable, "benchmarks/compare_revisions.py", "HEAD~1", "HEAD", "--setting", "tiny_image",
         "--steps", "1", "--warmup", "0", "--json", str(tmp_path / "r.json"),
         "--markdown", str(tmp_path / "r.md"), *small],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.match(r"tiny_image: HEAD~1 \d+ ms, HEAD \d+ ms, ratio [\d.]+", out.stdout)
    (res,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert res["a"]["step_ms"] > 0 and res["ratio"] == pytest.approx(
        res["b"]["step_ms"] / res["a"]["step_ms"]
    )
    assert (tmp_path / "r.md").read_text().count("| tiny_image |") == 1
    after = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == worktrees
    bad = subprocess.run(
        [sys.executable, "benchmarks/compare_revisions.py", "no-such-rev", "HEAD"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "not a revision" in bad.stderr


def test_gpu_benchmark_script_smoke_on_cpu():
    (res,) = _run(["benchmarks/gpu_mfu.py", "--smoke", "--steps", "1", "--warmup", "0"])
    assert res["model_tflops_per_step"] > 0 and res["achieved_tflops"] > 0 and res["device"] == "cpu"
    assert "profile_top" not in res  # only on request (--profile)


def test_gpu_benchmark_profiles_the_step_on_request():
    """--profile N adds the operators with the most self time per step (the device's on a GPU, here the
    host's), largest first, as shares of the profiled time."""
    (res,) = _run(["benchmarks/gpu_mfu.py", "--smoke", "--steps", "1", "--warmup", "0", "--profile", "2"])
    top = res["profile_top"]
    assert 5 <= len(top) <= 25 and all(r["ms_per_step"] > 0 and r["calls_per_step"] > 0 for r in top)
    assert [r["ms_per_step"] for r in top] == sorted((r["ms_per_step"] for r in top), reverse=True)
    assert 0 < sum(r["share"] for r in top) <= 1.0001
    assert {"aten::mm", "aten::addmm"} & {r["name"] for r in top[:8]}  # the matrix products lead on a CPU


def test_encoder_scaling_times_the_arithmetic_the_run_trains_in():
    """precision=bf16 trains under bf16 autocast: the encoder-scaling benchmark must time that, not fp32."""
    from vjepa.bench import encoder_scaling

    dtypes = set()

    def record(module, args, out):
        if isinstance(module, torch.nn.Linear):
            dtypes.add(out.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        out = encoder_scaling([*TINY_TEST, "precision=bf16", "device=cpu"], repeats=1)
    finally:
        handle.remove()
    assert dtypes == {torch.bfloat16}
    assert 0 < out["masked_over_full"] and out["visible_fraction"] == pytest.approx(0.2, abs=0.05)


def test_gpu_benchmark_takes_each_cards_own_peak(monkeypatch):
    """MFU is achieved over peak: an H100 PCIe (756 dense bf16 TFLOP/s) or NVL (835) must not be measured
    against the SXM card's 989."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_mfu", ROOT / "benchmarks" / "gpu_mfu.py")
    gpu_mfu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_mfu)
    cuda = torch.device("cuda", 0)
    names = {
        "NVIDIA H100 80GB HBM3": 989.0,
        "NVIDIA H100 PCIe": 756.0,
        "NVIDIA H100 NVL": 835.0,
        "NVIDIA H200": 989.0,
        "NVIDIA H200 NVL": 835.0,
        "NVIDIA A100-SXM4-80GB": 312.0,
        "NVIDIA GeForce RTX 4090": None,
    }
    for name, peak in names.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, name=name: name)
        assert gpu_mfu.peak_tflops(cuda, None) == peak, name
    assert gpu_mfu.peak_tflops(cuda, 500.0) == 500.0
    # the peak is the device the step ran on: --smoke runs on the CPU even on a GPU host, so no MFU
    smoke = [*gpu_mfu.SMOKE["tiny_smoke"], "compile=false", "device=cpu"]
    res = gpu_mfu.measure("tiny_smoke", smoke, 1, 0, None)
    assert res["device"] == "cpu" and res["peak_tflops"] is None and res["mfu"] is None


def test_gpu_benchmark_times_the_step_without_per_part_synchronisation():
    """Timing each part synchronises a GPU around every part, which slows the very step whose MFU is reported:
    the MFU run leaves the step's timer off, and only ``--parts`` turns it on."""
    from vjepa.bench import Bench

    untimed = Bench([*TINY_TEST, "device=cpu"], time_parts=False)
    assert not untimed.trainer.model.timer.enabled
    untimed.run_step()
    res = untimed.summary("x")
    assert res["parts_timed"] is False and res["parts_ms"] is None and res["step_ms"] > 0
    (mfu,) = _run(["benchmarks/gpu_mfu.py", "--smoke", "--steps", "1", "--warmup", "0", "batch_size=4"])
    assert mfu["parts_timed"] is False and mfu["parts_ms"] is None
    assert mfu["overrides"][-1] == "batch_size=4"  # trailing overrides reach every configuration, last
    (parts,) = _run(["benchmarks/gpu_mfu.py", "--smoke", "--steps", "1", "--warmup", "0", "--parts"])
    assert parts["parts_timed"] is True and parts["parts_ms"]["backward"] > 0
    (whole,) = _run(["-m", "vjepa.bench", "--setting", "tiny_image", "--steps", "1", "--warmup", "0",
                     "--no-parts", *TINY_TEST])  # fmt: skip
    assert whole["parts_ms"] is None and whole["step_ms"] > 0


def test_back_to_back_steps_train_exactly_as_synchronised_steps():
    """The GPU benchmark's step time comes from steps run as the training loop runs them (each step's numbers
    read back after the next is queued): the same steps, the same weights as steps timed one by one."""
    from vjepa.bench import Bench

    one_by_one, back_to_back = (Bench([*TINY_TEST, "device=cpu"], time_parts=False) for _ in range(2))
    for _ in range(3):
        one_by_one.run_step()
    assert back_to_back.time_back_to_back(3) > 0 and back_to_back.step == one_by_one.step == 3
    for a, b in zip(
        one_by_one.trainer.model.parameters(), back_to_back.trainer.model.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    (mfu,) = _run(["benchmarks/gpu_mfu.py", "--smoke", "--steps", "2", "--warmup", "0"])
    assert mfu["step_ms_back_to_back"] > 0 and mfu["achieved_tflops"] == pytest.approx(
        mfu["model_tflops_per_step"] / mfu["step_ms_back_to_back"] * 1e3
    )


def test_step_profile_script_prints_the_operators_of_a_step():
    """benchmarks/profile_step.py: a (shrunken) anchor step profiled; its table names the matrix products."""
    out = subprocess.run(
        [sys.executable, "benchmarks/profile_step.py", "anchor_s2", "model.depth=4", "batch_size=2",
         "--steps", "1", "--warmup", "0", "--threads", "1", "--by-shape"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("anchor_s2 model.depth=4 batch_size=2: 1 steps, 1 threads")
    assert out.stdout.count("Self CPU time total") == 2 and "aten::addmm" in out.stdout
    bad = subprocess.run(
        [sys.executable, "benchmarks/profile_step.py", "no_such_setting"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


def test_gpu_benchmark_has_the_performance_issues_three_settings():
    """--issue28: ViT-L/16 at 256 images, 32 and 8 clips of 16 frames per GPU, each a valid configuration
    (checked here, before a lent GPU's minutes are spent on it)."""
    import importlib.util

    from vjepa.config_check import check_config

    spec = importlib.util.spec_from_file_location("gpu_mfu", ROOT / "benchmarks" / "gpu_mfu.py")
    gpu_mfu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_mfu)
    batches = {}
    for name, overrides in gpu_mfu.ISSUE28.items():
        cfg = bench_module.compose([*overrides, *gpu_mfu.COMMON, "activation_checkpointing=false"])
        check_config(cfg)
        assert cfg.model.embed_dim == 1024 and cfg.model.patch_size == 16 and cfg.data.image.size == 224
        assert cfg.data.video.size == 224
        batches[name] = (
            cfg.data.mix,
            cfg.batch_size,
            cfg.data.video.frames if cfg.data.mix == "video" else 1,
        )
    assert sorted(batches.values()) == [("image", 256, 1), ("video", 8, 16), ("video", 32, 16)]


def test_gpu_issue28_script_alternates_the_before_tree_and_head_each_with_its_own_code(tmp_path):
    """The prepared device call (benchmarks/gpu_issue28.sh, smoke size on CPU): before, head, head, before,
    each line tagged, and the before tree's lines computed by that tree's vjepa, not this checkout's."""
    import os
    import shutil

    before = tmp_path / "before"
    for part in ("vjepa", "benchmarks"):
        shutil.copytree(ROOT / part, before / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "BEFORE": str(before)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_issue28.sh"), "smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in (out / "issue28.jsonl").read_text().splitlines()]
    assert [line["tree"] for line in lines] == ["before", "head", "head", "before"]
    assert all(line["setting"] == "tiny_smoke" and line["step_ms_back_to_back"] > 0 for line in lines)
    assert {line["vjepa_from"] for line in lines if line["tree"] == "before"} == {str(before.resolve())}
    assert {line["vjepa_from"] for line in lines if line["tree"] == "head"} == {str(ROOT.resolve())}


def test_linear_bias_goes_apart_only_in_compiled_fp32_cpu_code():
    """Compiled for CPU in fp32, the blocks' linear layers add their bias apart (fused into the next
    element-wise kernel instead of copied into the product's output); eager blocks keep timm's layers (the
    golden run's numbers), and under autocast a separate fp32 bias would promote the product to fp32."""
    from vjepa.models.rope import _bias_apart

    x = torch.ones(3)
    assert not _bias_apart(x)
    traced = torch.compile(lambda x: x + 1 if _bias_apart(x) else x - 1, backend="eager", dynamic=False)
    assert torch.equal(traced(x), x + 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(traced(x), x - 1)
