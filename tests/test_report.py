"""analysis.report, the notebook, and the pictures of a real (tiny) checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from analysis import pictures, report
from analysis.collect import collect, collect_curves, load_results, write_csv
from analysis.stats import t95
from tests.test_analysis import base_config, make_sweeps  # noqa: F401  (base_config: fixture)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "analysis" / "notebooks" / "ablations.ipynb"


@pytest.fixture(scope="module")
def collected(tmp_path_factory, base_config):  # noqa: F811
    """reports/results.csv and curves.csv of the synthetic sweeps (no checkpoints: no picture arrays)."""
    root = tmp_path_factory.mktemp("sweeps_out")
    make_sweeps(root, base_config)
    reports = tmp_path_factory.mktemp("reports")
    write_csv(collect([root]), reports / "results.csv")
    write_csv(collect_curves([root]), reports / "curves.csv")
    return reports


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_report_regenerates_identically(collected):
    out = collected
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "stale_sweep_metrics.png").write_bytes(b"old")
    args = ["--results", str(out / "results.csv"), "--out", str(out)]
    report.main(args)
    first = _tree(out)
    report.main(args)
    assert _tree(out) == first  # byte for byte: no timestamps, deterministic figures
    assert "figures/stale_sweep_metrics.png" not in first
    for stem in ("loss_granularity-tiny", "predictor_width-tiny", "mask_ratio-tiny"):
        for name in (
            f"tables/{stem}.md",
            f"tables/{stem}.csv",
            f"tables/{stem}.tex",
            f"tables/{stem}_agreement.csv",
            *(
                [f"tables/{stem}_directions.csv", f"figures/{stem}_directions.png"]
                if stem == "loss_granularity-tiny"
                else []
            ),
            f"figures/{stem}_metrics.png",
            f"figures/{stem}_curves.png",
        ):
            assert name in first, name
    readme = (out / "README.md").read_text()
    assert f"python -m analysis.report --results {out / 'results.csv'} --out {out}" in readme
    assert "python sweeps/loss_granularity.py preset=tiny loss=block,token seed=0,1,2,3,4" in readme
    assert (
        "`loss_granularity/preset=tiny/loss=token,seed=3`: failed (FloatingPointError: loss became nan"
        in readme
    )
    assert "![loss_granularity (preset=tiny): metrics](figures/loss_granularity-tiny_metrics.png)" in readme
    assert (
        "| block | Block-level (V-JEPA 2 style) | 3 | 1 interrupted, 1 running | 0.120 ± 0.020 | 54.8 |"
        in readme
    )
    section = readme.split("## Does the small scale agree with the paper?")[1].split("\n## ")[0]
    # the prose states the test the code runs: paired by seed, n - 1 degrees of freedom (t95(2) for 3 seeds)
    assert f"with n - 1 degrees of freedom (with 3 seeds, {t95(2):.1f} standard errors;" in section
    assert "our best variant's lead over the runner-up alike: the difference is taken per seed" in section
    # the correction for many tests, why Holm, and what chance alone would give, in the tally itself
    assert "corrected for multiple comparisons with Holm's step-down method" in section
    assert "Benjamini-Hochberg would bound the expected share of false calls instead" in section
    assert "at 5 % each, chance alone would give about 0.2 of 3 uncorrected" in section
    assert "K400 top-1 vs. `mnist_video/digit_top1`: disagrees" in section
    assert "COCO APbox vs. `shapes_det/ap`: cannot tell" in section  # mask ratio: one seed, no spread
    assert "  - *dense token-level loss* (block -> token): COCO APbox paper +3.1" in section
    assert "tables/mask_ratio-tiny_directions.csv" not in first  # the paper names no direction for it
    assert (out / "tables" / "loss_granularity-tiny.md").read_text().split("\n", 1)[1] in readme
    stats = load_results(out / "results.csv")  # the report did not touch its input
    assert len(stats) == 22


def test_report_flags_a_group_whose_runs_cross_code_versions(collected, tmp_path):
    """loss_granularity's token run of seed 0 trained by other code: its section of README.md and its
    table say which code versions the group mixes and that the pairs across them are flagged, its ingredient
    bullet names the seed, the tally counts it; predictor_width, one code version, says so and flags
    nothing."""
    results = load_results(collected / "results.csv")
    token0 = (
        (results["sweep"] == "loss_granularity")
        & (results["variant"] == "token")
        & (results["seed"] == 0)
        & (results["status"] == "completed")
    )
    assert token0.sum() == 1 and results["code_version"].nunique() == 1
    version = results["code_version"].iloc[0]
    results.loc[token0, "code_version"] = "fff0000"
    write_csv(results, tmp_path / "results.csv")
    report.build(tmp_path / "results.csv", tmp_path, curves_path=collected / "curves.csv")
    readme = (tmp_path / "README.md").read_text()
    sections = {part.split("\n", 1)[0]: part for part in readme.split("\n## ")[1:]}
    note = (
        f"Numerics: runs of 2 code versions with unrecorded numerics ({version}, fff0000): pairs across them "
        "may differ in numerics and are flagged (seed 0 mixes them)."
    )
    lg, pw = sections["loss_granularity (preset=tiny)"], sections["predictor_width (preset=tiny)"]
    assert lg.count(note) == 1 and note in (tmp_path / "tables" / "loss_granularity-tiny.md").read_text()
    assert "pairs across them" not in pw and " crosses)" not in pw and "crosses code" not in pw
    assert (
        f"Numerics: every completed run has one code version, {version}, with unrecorded numerics (the code "
        "version stands for them), so no pair by seed crosses numerics." in pw
    )
    agree = sections["Does the small scale agree with the paper?"]
    assert "  - *dense token-level loss* (block -> token; pair of seed 0 crosses code versions):" in agree
    assert "3 of these 3 verdicts rest on pairs of seeds whose two runs cross code versions" in agree
    assert "is kept in the paired difference, not dropped" in agree  # the method says how they are treated


@pytest.mark.skipif(not (ROOT / "reports" / "results.csv").exists(), reason="no committed reproduction")
def test_committed_reports_regenerate_identically(tmp_path, monkeypatch):
    """`nox -s report` on the committed reports/results.csv reproduces the committed report: README and
    tables byte for byte, the same figures at the same sizes (PNG bytes may differ with the font stack)."""
    from PIL import Image

    committed = ROOT / "reports"
    work = tmp_path / "reports"
    work.mkdir()
    (work / "results.csv").write_bytes((committed / "results.csv").read_bytes())
    for sub in ("curves", "data"):
        if (committed / sub).exists():
            (work / sub).mkdir()
            for f in (committed / sub).iterdir():
                (work / sub / f.name).write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path)
    report.main(["--results", "reports/results.csv", "--out", "reports"])
    for sub in ("tables",):
        assert _tree(work / sub) == _tree(committed / sub), sub
    assert (work / "README.md").read_text() == (committed / "README.md").read_text()
    figures = sorted(p.name for p in (work / "figures").iterdir())
    assert figures == sorted(p.name for p in (committed / "figures").iterdir())
    for name in figures:
        assert Image.open(work / "figures" / name).size == Image.open(committed / "figures" / name).size, name


def test_notebook_executes(collected, monkeypatch):
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no Jupyter kernel 'python3' installed (pip install ipykernel)")
    monkeypatch.setenv("VJEPA_RESULTS", str(collected / "results.csv"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert (
        "| block | Block-level (V-JEPA 2 style) | 3 | 1 interrupted, 1 running | 0.120 ± 0.020 | 54.8 |"
        in markdown
    )
    assert "K400 top-1 vs. `mnist_video/digit_top1`: disagrees" in markdown
    # 3 ablations: metrics and curves; loss_granularity's ingredient (the paper names none for the others)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 7


def test_position_centred_pca_shows_content_that_positions_hide():
    """Tokens = a strong per-position pattern + a weak per-sample content vector (the same at every position).
    Plain PCA paints the positions (every sample alike); position-centred PCA paints the content (each sample
    one colour)."""
    g = torch.Generator().manual_seed(0)
    n, m, positions, d = 6, 64, 16, 24
    pattern = 10 * torch.randn(positions, d, generator=g)

    def tokens(k):
        return pattern + torch.randn(k, 1, d, generator=g)  # [k, N, D]: position + content

    shown, fit = tokens(n), tokens(m)
    plain = pictures.pca_rgb(shown)
    centred = pictures.pca_rgb(shown, fit, per_position=True)
    assert plain.shape == centred.shape == (n, positions, 3)
    # plain: colours vary over positions, hardly over samples
    assert plain.std(axis=1).mean() > 10 * plain.std(axis=0).mean()
    # centred: each sample one colour, samples differ
    assert centred.std(axis=1).max() < 1e-6 and centred.std(axis=0).mean() > 0.1
    # the default (fit on the shown tokens, one mean) is the plain map
    assert np.array_equal(pictures.pca_rgb(shown, shown), plain)


def test_pca_maps_leave_out_a_modality_whose_tokenizer_no_run_trained(compose_cfg, tmp_path):
    """Image-only runs with a tokenizer per modality: no video maps (they would show a random tokenizer);
    with the shared 3-D tokenizer the video maps stay."""
    from tests.conftest import TINY_TEST
    from vjepa.trainer import train

    for tokenizer, video_maps in (("separate", False), ("shared3d", True)):
        run = tmp_path / tokenizer
        train(
            compose_cfg(
                *TINY_TEST, "data.mix=image", "steps=1", f"model.tokenizer={tokenizer}", f"run_dir={run}"
            )
        )
        z = np.load(pictures.extract_pca([("image", tokenizer, run)], tmp_path / f"{tokenizer}.npz"))
        assert "image_pca_1" in z and "image_pcapos_1" in z
        assert ("video_pca_1" in z) is video_maps and ("video_pca_0" in z) is video_maps
        assert (pictures.render_pca(tmp_path / f"{tokenizer}.npz", "video") is None) is not video_maps
    # a sweep that mixes them: the random-init and shared3d rows have video maps, the separate run's row none
    runs = [("separate", "a", tmp_path / "separate"), ("shared3d", "b", tmp_path / "shared3d")]
    z = np.load(pictures.extract_pca(runs, tmp_path / "mixed.npz"))
    assert ["video_pca_0" in z, "video_pca_1" in z, "video_pca_2" in z] == [True, False, True]
    fig = pictures.render_pca(tmp_path / "mixed.npz", "video")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["input", "random init", "separate (tokenizer untrained)", "shared3d"]


def test_mask_pictures_are_the_masks_the_trainer_drew_for_every_setting(compose_cfg, tmp_path, monkeypatch):
    """Three image mask settings: the third draws from a hashed stream in the trainer (mask_generator); the
    pictures used the plain stream for every setting, so theirs differed from setting 2 on."""
    from tests.conftest import TINY_TEST
    from vjepa import masks as masks_module
    from vjepa import trainer as trainer_module
    from vjepa.masks import target_mask

    three = "[{ratio: 0.5},{ratio: 0.6},{ratio: 0.75}]"
    cfg = compose_cfg(
        *TINY_TEST, "data.mix=image", "steps=2", f"mask.image_settings={three}", f"run_dir={tmp_path}"
    )
    drawn, sample = [], masks_module.sample_mask_buckets

    def record(spec, n, grid, g, *bucketing):
        buckets = sample(spec, n, grid, g, *bucketing)
        drawn.append(target_mask(buckets, n).view(n, *grid)[: pictures.MASK_IMAGES].numpy())
        return buckets

    monkeypatch.setattr(masks_module, "sample_mask_buckets", record)
    trainer_module.train(cfg)
    assert len(drawn) == 6  # 2 steps x 3 settings
    monkeypatch.undo()
    for step in (0, 1):
        pictured = pictures.run_masks(cfg, step=step)["image"][1]
        assert pictured.shape[0] == 3
        for k in range(3):
            assert np.array_equal(pictured[k], drawn[3 * step + k]), (step, k)


def test_pictures_from_a_real_checkpoint(tmp_path):
    """Train 2 steps with the real CLI, extract the PCA and mask arrays, render them."""
    run_dir = tmp_path / "pictures" / "preset=tiny" / "loss=token,seed=0"
    args = [
        "model=tiny",
        "model.depth=2",
        "predictor.depth=1",
        "predictor.width=32",
        "predictor.num_heads=2",
        "data.image.size=32",
        "data.video.size=32",
        "data.video.frames=4",
        "batch_size=8",
        "steps=2",
        "threads=1",
        "progress=false",
    ]
    defaults = yaml.safe_load((ROOT / "vjepa" / "conf" / "train.yaml").read_text())["defaults"]
    if any(isinstance(d, dict) and "probes" in d for d in defaults):  # the probes group exists: skip them
        args.append("probes=none")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "vjepa.train", *args, f"run_dir='{run_dir}'"]  # quoted: the name has a comma
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [("token", "pictures/preset=tiny/loss=token,seed=0", run_dir)]
    pca = pictures.extract_pca(runs, tmp_path / "data" / "pca.npz")
    masks = pictures.extract_masks(runs, tmp_path / "data" / "masks.npz")
    again = pictures.save_npz(tmp_path / "again.npz", dict(np.load(pca, allow_pickle=False)))
    assert again.read_bytes() == pca.read_bytes()  # no zip timestamps

    z = np.load(pca, allow_pickle=False)
    assert z["labels"].tolist() == ["random init", "token"]
    assert z["image_input"].shape == (pictures.N_IMAGES, 32, 32, 3) and z["image_input"].dtype == np.uint8
    assert z["image_pca_1"].shape == (pictures.N_IMAGES, 1, 4, 4, 3)  # 32 px / patch 8
    assert z["video_pca_0"].shape == (pictures.N_CLIPS, 2, 4, 4, 3)  # 4 frames / tubelet 2
    assert z["image_pca_1"].std() > 0
    assert z["image_pcapos_1"].shape == z["image_pca_1"].shape and z["video_pcapos_0"].shape == (
        2,
        2,
        4,
        4,
        3,
    )
    assert int(z["image_fit_n"]) == pictures.N_FIT_IMAGES and int(z["video_fit_n"]) == pictures.N_FIT_CLIPS
    assert not np.array_equal(z["image_pcapos_1"], z["image_pca_1"])

    m = np.load(masks, allow_pickle=False)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    image_mask = m["image_mask_0"]  # [settings, images, t, h, w]
    assert image_mask.shape == (1, pictures.MASK_IMAGES, 1, 4, 4) and m["image_input_0"].shape == (
        4,
        32,
        32,
        3,
    )
    assert m["video_mask_0"].shape == (1, 1, 2, 4, 4) and m["video_input_0"].shape == (1, 4, 32, 32, 3)
    # every sample has exactly round(ratio * N) masked tokens, the ratio the run logged
    logged = [
        json.loads(line)["mask_ratio_image"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert np.allclose(image_mask.reshape(4, -1).mean(1), round(cfg.mask.ratio * 16) / 16)
    assert np.allclose(image_mask.reshape(4, -1).mean(1), logged[-1])
    # step 0 of this run: the same masks on a second draw, other masks at another step
    again = pictures.run_masks(cfg, step=0)["image"][1]
    assert np.array_equal(again, image_mask)
    assert not np.array_equal(pictures.run_masks(cfg, step=1)["image"][1], image_mask)

    for kind, render, npz in (("pca", pictures.render_pca, pca), ("masks", pictures.render_masks, masks)):
        for modality in ("image", "video"):
            fig = render(npz, modality, tmp_path / f"{kind}_{modality}.png")
            rows = 3 if kind == "pca" else 1  # input, random init, token / one variant, one mask setting
            cols = pictures.N_IMAGES if kind == "pca" else pictures.MASK_IMAGES
            cols = {"image": cols, "video": pictures.N_CLIPS * 2 if kind == "pca" else 4}[modality]
            assert (
                len(fig.axes) == rows * cols and (tmp_path / f"{kind}_{modality}.png").stat().st_size > 1000
            )
    fig = pictures.render_pca(pca, "image", tmp_path / "pcapos_image.png", per_position=True)
    assert len(fig.axes) == 3 * pictures.N_IMAGES and "minus each position's mean" in fig._suptitle.get_text()
    assert (tmp_path / "pcapos_image.png").read_bytes() != (tmp_path / "pca_image.png").read_bytes()
    pictures.render_pca(pca, "image", tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "pca_image.png").read_bytes()


def test_random_init_is_the_runs_initial_encoder(base_config):  # noqa: F811
    """The PCA maps' "random init" row uses the weights the trainer starts from (same seed, same order)."""
    import torch

    from vjepa.trainer import Trainer

    cfg = OmegaConf.create(base_config)
    cfg.model.depth, cfg.seed, cfg.run_dir, cfg.threads = 1, 3, "unused", 1
    trainer = Trainer(cfg)
    trainer.build()
    ours = pictures.random_encoder(cfg).state_dict()
    for name, tensor in trainer.model.encoder.state_dict().items():
        assert torch.equal(ours[name], tensor), name


def test_compute_hours_counts_core_hours_once_per_trained_run():
    """Training and probing hours: threads x time on CPU, time on a GPU; an adopted run counts where it
    trained; the probes at their own thread count where recorded; missing columns are no hours."""
    import pandas as pd

    runs = pd.DataFrame(
        {
            "wall_time_s": [3600.0, 3600.0, 1800.0, 3600.0],
            "threads": [2, 1, 4, 1],
            "device": ["cpu", "cpu", "cuda:0", "cpu"],
            "reused_from": [None, None, None, "other_sweep/run"],
            "probe/time_s": [360.0, 720.0, 36.0, 360.0],
            "probe_random/time_s": [None, 360.0, None, None],
            "probe_threads": [1, None, None, None],
        }
    )
    training, probing = report.compute_hours(runs)
    assert training == pytest.approx(2 + 1 + 0.5)  # 2 threads x 1 h, 1 x 1 h, the GPU's 0.5 h; not the copy
    assert probing == pytest.approx(0.1 * 1 + (0.2 + 0.1) * 1 + 0.01)
    assert report.compute_hours(pd.DataFrame({"wall_time_s": [7200.0]})) == (2.0, 0)
