"""analysis: collecting run directories, per-variant statistics, agreement with the paper, tables, plots.

The run directories are synthetic but written the way the trainer and the sweeps write them (resolved
config.yaml, overrides.yaml, status.json via ``vjepa.runfiles``, metrics.jsonl, metrics.json), in the
sweeps' layout ``<out>/<sweep>/preset=tiny/<overrides>``, with a failed, an interrupted (holding a stale
metrics.json) and a running run among them.
"""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis import plots
from analysis.ablations import (
    ABLATIONS,
    COMPARE,
    PAPER_BENCHMARKS,
    lower_is_better,
    probe_modality,
    sort_variants,
)
from analysis.collect import collect, collect_curves, load_results, write_csv
from analysis.directions import _verdict, unanswered
from analysis.paper import TABLES
from analysis.stats import beyond_noise, t95, welch_df
from analysis.summary import kendall_tau, summarize
from analysis.tables import (
    directions_overview,
    legend,
    paper_num,
    shown_best,
    statement,
    to_latex,
    to_markdown,
    variant_table,
)
from vjepa.runfiles import MetricsLog, write_json, write_status

# (axis override, value, config key, config value) -> {seed: metrics}
LOSS = {
    ("loss", "block", "loss.granularity", "block"): {
        0: {"ap": 0.10, "miou": 0.30, "digit": 0.50},
        1: {"ap": 0.12, "miou": 0.30, "digit": 0.52},
        2: {"ap": 0.14, "miou": 0.33, "digit": 0.54},
    },
    ("loss", "token", "loss.granularity", "token"): {
        0: {"ap": 0.20, "miou": 0.40, "digit": 0.60},
        1: {"ap": 0.25, "miou": 0.42, "digit": 0.60},
        2: {"ap": 0.30, "miou": 0.44, "digit": 0.60},
    },
}
WIDTH = {
    ("predictor.width", str(w), "predictor.width", w): {0: {"ap": a}, 1: {"ap": b}}
    for w, a, b in [(24, 0.20, 0.22), (48, 0.30, 0.32), (96, 0.21, 0.23), (192, 0.10, 0.12)]
}
RATIO = {
    ("mask.ratio", str(r), "mask.ratio", r): {0: {"ap": a}}
    for r, a in [(0.6, 0.1), (0.75, 0.2), (0.8, 0.15), (0.9, 0.3)]
}
RANDOM_AP = {0: 0.05, 1: 0.06, 2: 0.07}
CODE = "abc1234"  # the code version the synthetic runs record (as the trainer does), whatever this checkout's


@pytest.fixture(scope="session")
def base_config():
    from hydra import compose, initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)

    with initialize_config_module("vjepa.conf", version_base=None):
        cfg = compose("train", overrides=["run_dir=unused", "preset=tiny"])
    return OmegaConf.to_container(cfg, resolve=True)


def _set(cfg: dict, key: str, value) -> None:
    *path, last = key.split(".")
    for p in path:
        cfg = cfg[p]
    cfg[last] = value


def write_run(run_dir, base, overrides: list[str], config: dict, state: str, metrics=None, step=None):
    """A run directory as the trainer leaves it in ``state`` (completed runs get metrics.json)."""
    cfg = copy.deepcopy(base)
    for key, value in {**config, "run_dir": str(run_dir), "steps": 20, "log_every": 10}.items():
        _set(cfg, key, value)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    (run_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    done = 20 if state == "completed" else step
    log = MetricsLog(run_dir / "metrics.jsonl")
    for s in range(10, done + 1, 10):
        loss = 0.3 / s + 0.01 * cfg["seed"]
        log.append(
            {
                "step": s,
                "loss": loss,
                "loss_image": loss,
                "lr": 1e-3,
                "wall_time_s": 0.5 * s,
                "online_rankme_image": 10.0 + s / 10,  # the trainer's collapse diagnostics
                "target_token_cos_image": 0.1 * s / 20,
            }
        )
    extra = {
        "error": "FloatingPointError: loss became nan at step 7",
        "traceback": "Traceback ...\nFloatingPointError",
    }
    write_status(
        run_dir, state, step=done, steps=20, code_version=CODE, **(extra if state == "failed" else {})
    )
    if metrics is not None:
        write_json(
            run_dir / "metrics.json",
            {
                "steps": 20,
                "wall_time_s": 10.0,
                "loss_first": 0.03,
                "loss_final": 0.01 + 0.001 * cfg["seed"],
                **metrics,
            },
        )


def probe_metrics(m: dict, seed: int) -> dict:
    names = {
        "ap": "probe/shapes_det/ap",
        "miou": "probe/shapes_seg/miou",
        "digit": "probe/mnist_video/digit_top1",
    }
    out = {names[k]: v for k, v in m.items()}
    out["probe/shapes_det/time_s"] = 1.0
    if "ap" in m and seed in RANDOM_AP:
        out["probe_random/shapes_det/ap"] = RANDOM_AP[seed]
    return out


def make_sweeps(root, base) -> None:
    """loss_granularity (3 seeds + failed + interrupted + running), predictor_width (2 seeds), mask_ratio
    (1 seed), and a lone run outside the sweeps' layout."""
    for sweep, grid in (("loss_granularity", LOSS), ("predictor_width", WIDTH), ("mask_ratio", RATIO)):
        for (key, value, cfg_key, cfg_value), seeds in grid.items():
            for seed, m in seeds.items():
                name = f"{key}={value},seed={seed}"
                write_run(
                    root / sweep / "preset=tiny" / name,
                    base,
                    [f"{key}={value}", f"seed={seed}", "preset=tiny", "threads=1"],
                    {cfg_key: cfg_value, "seed": seed},
                    "completed",
                    probe_metrics(m, seed),
                )
    lg = root / "loss_granularity" / "preset=tiny"
    for value, seed, state, metrics in [
        ("token", 3, "failed", None),
        ("block", 3, "interrupted", {"probe/shapes_det/ap": 99.0}),
        ("block", 4, "running", None),
    ]:
        write_run(
            lg / f"loss={value},seed={seed}",
            base,
            [f"loss={value}", f"seed={seed}", "preset=tiny", "threads=1"],
            {"loss.granularity": value, "seed": seed},
            state,
            metrics,
            step=10,
        )
    write_run(root / "runs" / "default", base, [], {"seed": 0}, "completed", {})


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, base_config):
    root = tmp_path_factory.mktemp("sweeps_out")
    make_sweeps(root, base_config)
    return root


@pytest.fixture(scope="module")
def results(sweeps):
    return collect([sweeps])


def _summary(results, sweep):
    return next(s for s in summarize(results) if s.sweep == sweep)


def _stat(s, variant, metric):
    return s.stats[(s.stats["variant"] == variant) & (s.stats["metric"] == metric)].iloc[0]


# ---- collect --------------------------------------------------------------------------------------------
def test_collect_rows_columns_statuses(results):
    assert len(results) == 6 + 3 + 8 + 4 + 1
    assert results["run_id"].is_unique and list(results["run_id"]) == sorted(results["run_id"])
    lg = results[results["sweep"] == "loss_granularity"].set_index("run_id")
    row = lg.loc["loss_granularity/preset=tiny/loss=token,seed=3"]
    assert (row["status"], row["preset"], row["axis"], row["variant"], row["seed"]) == (
        "failed",
        "tiny",
        "loss",
        "token",
        3,
    )
    assert row["error"] == "FloatingPointError: loss became nan at step 7" and row["steps_done"] == 10
    assert math.isnan(row["probe/shapes_det/ap"])
    stale = lg.loc["loss_granularity/preset=tiny/loss=block,seed=3"]
    assert stale["status"] == "interrupted" and math.isnan(
        stale["probe/shapes_det/ap"]
    )  # stale metrics.json unread
    running = lg.loc["loss_granularity/preset=tiny/loss=block,seed=4"]
    assert running["status"] == "running" and running["steps_done"] == 10 and running["wall_time_s"] == 5.0
    assert sorted(lg["status"].value_counts().items()) == [
        ("completed", 6),
        ("failed", 1),
        ("interrupted", 1),
        ("running", 1),
    ]
    done = lg[lg["status"] == "completed"]
    assert done["steps_done"].eq(20).all() and done["wall_time_s"].eq(10.0).all()
    for col in (
        "probe/shapes_det/ap",
        "probe_random/shapes_det/ap",
        "loss_final",
        "override/loss",
        "config/loss.granularity",
        "config/model.embed_dim",
        "code_version",
        "config_hash",
    ):
        assert col in results.columns, col
    assert not any(c.startswith("config/probes") or c == "config/run_dir" for c in results.columns)
    assert results["code_version"].nunique() == 1 and results["code_version"].iloc[0]
    # seeds of a variant share a group hash (config without the seed); every run has its own config hash
    assert done.groupby("variant")["group_hash"].nunique().eq(1).all() and done["group_hash"].nunique() == 2
    assert done["config_hash"].is_unique
    lone = results.set_index("run_id").loc["runs/default"]
    assert (lone["sweep"], lone["preset"], lone["axis"]) == ("runs", "", "")
    assert results[results["sweep"] == "predictor_width"]["variant"].tolist() == [
        "192",
        "192",
        "24",
        "24",
        "48",
        "48",
        "96",
        "96",
    ]


def test_collect_records_the_sweep_command(results, sweeps):
    lg = results[results["sweep"] == "loss_granularity"]
    assert lg["command"].unique().tolist() == [
        "python sweeps/loss_granularity.py preset=tiny loss=block,token seed=0,1,2,3,4"
    ]
    mr = results[results["sweep"] == "mask_ratio"]["command"].unique().tolist()
    assert mr == ["python sweeps/mask_ratio.py preset=tiny mask.ratio=0.6,0.75,0.8,0.9 seed=0"]


def test_results_csv_round_trip_and_curves(results, sweeps, tmp_path):
    write_csv(results, tmp_path / "results.csv")
    back = load_results(tmp_path / "results.csv")
    assert back.shape == results.shape and list(back.columns) == list(results.columns)
    assert back["variant"].tolist() == results["variant"].tolist()  # "0.75" stays text, "" stays ""
    assert back["seed"].tolist() == results["seed"].tolist()
    pd.testing.assert_series_equal(back["probe/shapes_det/ap"], results["probe/shapes_det/ap"])
    curves = collect_curves([sweeps])
    assert list(curves.columns) == ["run_id", "step", "metric", "value"]
    one = curves[curves["run_id"] == "loss_granularity/preset=tiny/loss=block,seed=1"]
    assert sorted(one["metric"].unique()) == [
        "loss",
        "loss_image",
        "lr",
        "online_rankme_image",
        "target_token_cos_image",
        "wall_time_s",
    ]
    assert one[one["metric"] == "loss"]["value"].tolist() == pytest.approx([0.03 + 0.01, 0.015 + 0.01])
    # the running run's partial curve is there too (the report only averages completed runs)
    assert len(curves[curves["run_id"].str.endswith("block,seed=4") & (curves["metric"] == "loss")]) == 1
    # stored wide (one row per run and step), read back as the same long table
    from analysis.collect import load_curves, write_curves

    write_curves(curves, tmp_path / "curves.csv")
    assert len(pd.read_csv(tmp_path / "curves.csv")) == len(curves[["run_id", "step"]].drop_duplicates())
    back = load_curves(tmp_path / "curves.csv")
    assert back[["run_id", "step", "metric"]].equals(curves[["run_id", "step", "metric"]])
    assert back["value"].tolist() == pytest.approx(curves["value"].tolist(), rel=1e-5)
    # or one file per sweep and preset (the report's stems), read back as the same table
    written = write_curves(curves, tmp_path / "curves")
    assert sorted(p.name for p in written) == [
        "loss_granularity-tiny.csv",
        "mask_ratio-tiny.csv",
        "predictor_width-tiny.csv",
        "runs.csv",  # a run outside the sweeps' <sweep>/preset=<p>/ layout: its sweep (parent) name
    ]
    lg = pd.read_csv(tmp_path / "curves" / "loss_granularity-tiny.csv")
    assert lg["run_id"].str.startswith("loss_granularity/preset=tiny/").all()
    own = curves[curves["run_id"].str.startswith("loss_granularity/")]["metric"]
    assert set(lg.columns) - {"run_id", "step"} == set(own)  # its own metrics' columns, no empty others
    back = load_curves(tmp_path / "curves")
    assert back[["run_id", "step", "metric"]].equals(curves[["run_id", "step", "metric"]])
    assert back["value"].tolist() == pytest.approx(curves["value"].tolist(), rel=1e-5)


# ---- statistics and agreement ---------------------------------------------------------------------------
def test_variant_stats_hand_computed(results):
    s = _summary(results, "loss_granularity")
    assert s.variants == ["block", "token"]
    block, token = _stat(s, "block", "probe/shapes_det/ap"), _stat(s, "token", "probe/shapes_det/ap")
    assert block["mean"] == pytest.approx(0.12) and block["std"] == pytest.approx(0.02) and block["n"] == 3
    assert token["mean"] == pytest.approx(0.25) and token["std"] == pytest.approx(0.05) and token["n"] == 3
    assert (block["n_incomplete"], block["incomplete"]) == (
        2,
        "1 interrupted, 1 running",
    )  # 99.0 not averaged
    assert (token["n_incomplete"], token["incomplete"], token["seeds"]) == (1, "1 failed", "0 1 2")
    seg = _stat(s, "block", "probe/shapes_seg/miou")
    assert seg["mean"] == pytest.approx(0.31) and seg["std"] == pytest.approx(math.sqrt(0.0003))
    rand = _stat(s, "random init", "probe/shapes_det/ap")
    assert rand["mean"] == pytest.approx(0.06) and rand["std"] == pytest.approx(0.01) and rand["n"] == 3
    assert block["paper_row"] == "Block-level (V-JEPA 2 style)"
    assert s.metrics[:3] == ["probe/shapes_det/ap", "probe/shapes_seg/miou", "probe/mnist_video/digit_top1"]
    assert "probe/shapes_det/time_s" not in s.metrics and s.metrics[-1] == "loss_final"
    one = _summary(results, "mask_ratio")
    r = _stat(one, "0.75", "probe/shapes_det/ap")
    assert r["n"] == 1 and r["mean"] == pytest.approx(0.2) and math.isnan(r["std"])
    assert [s.sweep for s in summarize(results)] == ["loss_granularity", "mask_ratio", "predictor_width"]


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(5 / math.sqrt(5 * 6))  # tau-b with a tie
    assert math.isnan(kendall_tau([1, 1], [1, 2]))


def test_agreement_with_the_paper(results):
    lg = _summary(results, "loss_granularity").agreement.set_index("metric")
    ap = lg.loc["probe/shapes_det/ap"]
    assert (ap["paper_metric"], ap["best"], ap["paper_best"]) == (
        "coco_apbox",
        "token",
        "Dense token-level (V-JEPA 2.1)",
    )
    assert ap["best_agrees"] and ap["tau"] == 1.0 and ap["verdict"] == "agrees"
    assert ap["margin"] == pytest.approx(0.13) and ap["paper_margin"] == pytest.approx(3.1)
    # paired by seed: token - block = 0.10, 0.13, 0.16, mean 0.13 > t95(2) * 0.03 / sqrt 3 = 0.075; unpaired
    # (Welch, df 2.6) it would be within noise: 0.13 < 4.303 * hypot(0.05 / sqrt 3, 0.02 / sqrt 3) = 0.134
    assert ap["resolved"] and ap["noise_test"] == "paired"
    k400 = lg.loc["probe/mnist_video/digit_top1"]  # the paper has block ahead (85.8 vs 85.6), ours token
    assert not k400["best_agrees"] and k400["tau"] == -1.0 and k400["verdict"] == "disagrees"
    assert lg.loc["probe/shapes_seg/miou", "verdict"] == "agrees"
    assert "probe/camvid_linear/miou" not in lg.index  # not measured: no pair

    pw = _summary(results, "predictor_width")
    assert [_stat(pw, v, "probe/shapes_det/ap")["paper_row"] for v in pw.variants] == [
        "192",
        "384",
        "768",
        "1280",
    ]
    ap = pw.agreement.set_index("metric").loc["probe/shapes_det/ap"]
    # ours 48 > 96 > 24 > 192, paper 384 > 192 > 768 > 1280 (= 48 > 24 > 96 > 192): one discordant pair of 6
    assert ap["best"] == "48" and ap["best_agrees"] and ap["tau"] == pytest.approx(4 / 6)
    assert ap["best_row"] == "384" and shown_best(ap) == "48 (paper row 384)"
    assert shown_best(lg.loc["probe/shapes_det/ap"]) == "token"  # the row's name says it already
    assert (
        shown_best({"best": "128", "best_row": "1280"}) == "128 (paper row 1280)"
    )  # a word, not a substring
    assert shown_best({"best": "False", "best_row": "without"}) == "False (paper row without)"
    assert shown_best({"best": "0.8", "best_row": None}) == "0.8"
    # 48 - 96 = 0.09 on both seeds: no spread, so beyond any interval
    assert ap["verdict"] == "agrees" and ap["resolved"] and ap["noise_test"] == "paired"
    mr = _summary(results, "mask_ratio").agreement.set_index("metric").loc["probe/shapes_det/ap"]
    # ours 0.9 > 0.75 > 0.8 > 0.6, paper 80% > 90% > 75% > 60%: 4 concordant, 2 discordant pairs
    assert mr["best"] == "0.9" and not mr["best_agrees"] and mr["tau"] == pytest.approx(2 / 6)
    # the means order partly as the paper's, but one seed each gives no spread: no direction is claimed
    assert mr["ordering"] == "partly agrees" and mr["min_n"] == 1 and not mr["resolved"]
    assert mr["verdict"] == "cannot tell"
    assert mr["single_seed"] == "0.9 and 0.75"  # best and runner-up both have one seed
    assert mr["noise_test"] == ""  # one pair, one value each: no test
    assert ap["single_seed"] == "" and lg.loc["probe/shapes_det/ap"]["single_seed"] == ""


def test_a_runner_up_with_one_seed_is_named_and_never_resolved(results):
    """The best (token, 3 seeds) leads by far, but the runner-up (block) kept one completed seed: no spread."""
    lg = results[results["sweep"] == "loss_granularity"]
    drop = (lg["variant"] == "block") & (lg["seed"] != 0)
    s = _summary(results.drop(lg[drop].index), "loss_granularity")
    ap = s.agreement.set_index("metric").loc["probe/shapes_det/ap"]
    assert ap["best"] == "token" and ap["min_n"] == 1 and ap["single_seed"] == "block"
    assert not ap["resolved"] and ap["margin"] > 0.1
    line = next(x for x in statement(s).splitlines() if x.startswith("- COCO APbox vs. `shapes_det/ap`"))
    assert f"ours: token, by {ap['margin']:.3f}, no spread: one seed of block;" in line


def _ap_by_seed(results, block: list[float], token: list[float], token_seeds=(0, 1, 2)) -> pd.DataFrame:
    """loss_granularity with the completed runs' shapes_det/ap replaced: block's seeds 0-2 get ``block``,
    token's get ``token`` and the seeds ``token_seeds``."""
    lg = results[results["sweep"] == "loss_granularity"].copy()
    for variant, values, seeds in (("block", block, (0, 1, 2)), ("token", token, token_seeds)):
        rows = lg[(lg["variant"] == variant) & (lg["status"] == "completed")].sort_values("seed").index
        lg.loc[rows, "probe/shapes_det/ap"], lg.loc[rows, "seed"] = values, seeds
    return lg


def _lead(lg: pd.DataFrame) -> dict:
    return _summary(lg, "loss_granularity").agreement.set_index("metric").loc["probe/shapes_det/ap"]


def test_the_best_variants_lead_is_paired_by_seed_where_unpaired_says_otherwise(results):
    """Two cases where Welch's unpaired test and the paired one disagree; the lead follows the paired one,
    the test the directions and the random-init comparisons use (same seed, same initialisation and data)."""
    # a seed moves both variants alike: token leads by 0.03, 0.031, 0.029, far outside 4.303 * se 0.0006;
    # unpaired, the seeds' spread (std 0.2) hides it
    lg = _ap_by_seed(results, [0.10, 0.30, 0.50], [0.13, 0.331, 0.529])
    # without the random-init numbers: against them (0.05-0.07) the seeds' spread would leave the metric
    # without range (analysis.ranges), and a metric without range has no lead tested
    lg = lg.drop(columns=["probe_random/shapes_det/ap"])
    se = math.hypot(0.2 / math.sqrt(3), 0.199 / math.sqrt(3))
    assert not beyond_noise(0.03, se, welch_df(0.2 / math.sqrt(3), 3, 0.199 / math.sqrt(3), 3))
    lead = _lead(lg)
    assert lead["best"] == "token" and lead["resolved"] and lead["noise_test"] == "paired"
    # predictor_width's shapes_det/ap in reports/: the lead is steady in the means, not seed by seed
    # (0.01, 0.05, 0.09: mean 0.05 < 4.303 * 0.04 / sqrt 3 = 0.099); unpaired, 0.05 > 2.776 * 0.0163
    lg = _ap_by_seed(results, [0.49, 0.47, 0.45], [0.50, 0.52, 0.54])
    se = 0.02 / math.sqrt(3)
    assert beyond_noise(0.05, math.hypot(se, se), welch_df(se, 3, se, 3))
    lead = _lead(lg)
    assert lead["margin"] == pytest.approx(0.05) and not lead["resolved"] and lead["noise_test"] == "paired"
    # three seeds, token ahead on the means as in the paper: within seed noise that is no direction
    assert lead["ordering"] == "agrees" and lead["verdict"] == "cannot tell"
    text = statement(_summary(lg, "loss_granularity"))
    assert "ours: token, by 0.050, within seed noise; Kendall tau" in text
    assert "COCO APbox vs. `shapes_det/ap`: cannot tell (paper best" in text


def test_equal_means_summed_in_another_order_are_a_tie_not_a_ranking(results):
    """Table 1's direction_top1 at seeds 0 and 1: deep {0.93, 0.9633}, tokenizer {0.9333, 0.96}: equal means
    that float summation puts 1e-16 apart. They tie: Kendall's tau counts no pair from them, the lead is 0
    and the paired change is exactly 0 ("ours: no change"), not a change of the other sign."""
    from analysis.stats import mean_and_se, settle

    deep, tok = [0.93, 0.9633333333333334], [0.9333333333333333, 0.96]
    assert np.mean(deep) != np.mean(tok)  # the float noise this guards against
    assert settle(float(np.mean(deep)), deep) == settle(float(np.mean(tok)), tok)
    d = np.subtract(tok, deep)
    assert d.mean() != 0 and mean_and_se(d)[0] == 0.0
    assert _verdict(0.6, mean_and_se(d)[0], mean_and_se(d)[1], 2, False, True) == "ours: no change"
    assert settle(0.0123456789012345, [0.5]) == 0.012345678901 and settle(-3.0, [0.0]) == -3.0
    lg = _ap_by_seed(results, [0.93, 0.9633333333333334, 0.95], [0.9333333333333333, 0.96, 0.95])
    lead = _lead(lg)
    assert lead["margin"] == 0.0 and not lead["resolved"]
    assert math.isnan(lead["tau"]) and lead["verdict"] == "no ordering (all tied)"  # was tau +-1


def test_a_tie_at_the_top_is_named_and_the_papers_best_among_it_leads(results):
    """Table 1's direction_top1 read "ours: deep, by 0.000": deep tied with tokenizer, named first only by the
    variants' order. A tie is said, and where the paper's best is in it, it is ours whatever the order; a lead
    below 0.0005 is shown, not rounded to 0.000."""
    tie = [0.93, 0.9633333333333334, 0.95]
    for lg in (_ap_by_seed(results, tie, tie), _ap_by_seed(results, tie, tie).iloc[::-1]):
        lead = _lead(lg)
        assert lead["best"] == "token" and lead["tied_with"] == "block" and lead["best_agrees"]
        assert lead["margin"] == 0.0 and not lead["resolved"]
    text = statement(_summary(_ap_by_seed(results, tie, tie), "loss_granularity"))
    assert "ours: token, tied with block, within seed noise" in text
    lg = _ap_by_seed(results, tie, [x + 1e-4 for x in tie])
    assert _lead(lg)["tied_with"] == "" and _lead(lg)["margin"] == pytest.approx(1e-4)
    assert "ours: token, by 0.0001, within seed noise" in statement(_summary(lg, "loss_granularity"))


def test_runs_a_sweep_never_started_are_named(results):
    """loss_granularity without block's seed 2 directory: the table's 'not completed' cell, the legend and
    the statement name it; n counts the completed runs only. (The fixture has a block run at seed 4 and none
    of token: that one is named too.)"""
    lg = results[results["sweep"] == "loss_granularity"]
    gone = lg[(lg["variant"] == "block") & (lg["seed"] == 2)].index
    assert len(gone) == 1
    s = _summary(results.drop(gone), "loss_granularity")
    assert s.not_started == [("block", 2), ("token", 4)]
    row = next(line for line in to_markdown(s).splitlines() if line.startswith("| block |"))
    assert row.split(" | ")[3] == "1 interrupted, 1 running, 1 not started"
    assert "Not started (no run directory): block seed 2, token seed 4." in legend(s)
    assert (
        f"5 of {len(lg) + 1} runs completed; not started: block seed 2, token seed 4; seeds 0, 1, 2, 3, 4)"
        in (statement(s))
    )
    assert _summary(results, "loss_granularity").not_started == [("token", 4)]


def test_the_lead_falls_back_to_welch_where_the_seeds_do_not_pair(results):
    """token ran seeds 10-12, block 0-2: no pair, so the unpaired test decides, and the statement says so."""
    lg = _ap_by_seed(results, [0.10, 0.12, 0.14], [0.30, 0.31, 0.32], token_seeds=(10, 11, 12))
    lead = _lead(lg)
    assert lead["resolved"] and lead["noise_test"] == "Welch"  # 0.19 > 4.303 * hypot(0.0115, 0.0058)
    text = statement(_summary(lg, "loss_granularity"))
    assert "by 0.190, beyond seed noise (Welch, unpaired: fewer than 2 seeds in common);" in text


def test_markdown_latex_and_statement(results):
    s = _summary(results, "loss_granularity")
    md = to_markdown(s)
    assert "| variant | paper row | n | not completed | shapes_det/ap | paper: COCO APbox |" in md
    assert (
        "| block | Block-level (V-JEPA 2 style) | 3 | 1 interrupted, 1 running | 0.120 ± 0.020 | 54.8 |" in md
    )
    assert "| random init | – | 3 | 0 | 0.060 ± 0.010 |" in md
    assert "| COCO APbox | shapes_det/ap | 2 | Dense token-level (V-JEPA 2.1) | token | yes | 1.00 |" in md
    tex = to_latex(s)
    assert tex.count(r"\begin{tabular}") == 3 and r"shapes\_det/ap" in tex and r"0.120 $\pm$ 0.020" in tex
    text = statement(s)
    assert (
        "6 of 10 runs completed; not started: token seed 4;" in text
        and "3 metric pair(s) compared (agrees 2, disagrees 1)" in text
    )
    assert "K400 top-1 vs. `mnist_video/digit_top1`: disagrees" in text and "beyond seed noise" in text
    # random init probed for shapes_det/ap only (RANDOM_AP): block 0.12, token 0.25 vs 0.06 +- 0.01
    assert (
        "over 2 variants; variants 0.120 to 0.250, random init 0.060 ± 0.010 (n=3); vs. random init, paired "
        "by seed: 2 better beyond seed noise)." in text
    )
    assert text.count("random init 0.") == 1  # the one metric probed at random init
    assert "Not measured here" not in text
    mr = statement(_summary(results, "mask_ratio"))
    # its means order partly as the paper's, on one seed each: no spread, so no direction is claimed
    assert "`shapes_det/ap`: cannot tell (" in mr and "no spread: one seed of 0.9 and 0.75;" in mr
    assert "partly agrees" not in mr
    assert (
        "Not measured here: K400 top-1 (`k400_attentive/top1`, `mnist_video/digit_top1`, `shapes_video/shape_top1`)"
        in mr
    )


@pytest.mark.parametrize("sweep", ["context_loss", "recipe", "mask_cut"])
def test_published_sweeps_display_in_their_grid_order(sweep):
    """Tables and plots list Table 2's rows and Table 1's cumulative steps as the sweep's grid (the paper's
    order), not alphabetically (which put Table 1's "V-JEPA 2" step last)."""
    grid = OmegaConf.load(Path(__file__).parents[1] / "sweeps" / "conf" / f"{sweep}.yaml").hydra.sweeper.grid
    (values,) = [list(map(str, v)) for v in grid.values()]
    assert sort_variants(sorted(values) + ["mine"], ABLATIONS[sweep]) == values + ["mine"]


def test_ablation_rows_of_published_sweeps(base_config):
    def row(**cfg):
        return {f"config/{k}": v for k, v in cfg.items()}

    ctx = ABLATIONS["context_loss"].paper_row
    assert ctx(row(**{"loss.context.weight": 0.0})) == "lambda = 0"
    assert (
        ctx(
            row(
                **{
                    "loss.context.weight": 0.5,
                    "loss.context.distance_weighting": True,
                    "loss.context.warmup": "[0.111,0.222]",
                }
            )
        )
        == "lambda = 0.5 distance-weighted + warm-up"
    )
    assert (
        ctx(
            row(
                **{
                    "loss.context.weight": 0.2,
                    "loss.context.distance_weighting": "False",
                    "loss.context.warmup": "[0.0,0.0]",
                }
            )
        )
        == "lambda = 0.2 constant"
    )
    own = {"loss.context.weight": 0.0, "loss.context.image_weight": 0.2, "loss.context.warmup": "[0.0,0.0]"}
    own["loss.context.distance_weighting"] = False
    assert ctx(row(**own, **{"data.mix": "image"})) == "lambda = 0.2 constant"  # images train with 0.2
    assert ctx(row(**own, **{"data.mix": "video"})) == "lambda = 0"
    recipe = ABLATIONS["recipe"].paper_row
    assert recipe(row(**{"loss.context.weight": 0.0, "model.deep_supervision": False})) == "V-JEPA 2"
    mixed = {"loss.context.weight": 0.5, "model.deep_supervision": True, "data.mix": "joint"}
    assert recipe(row(**mixed, **{"model.tokenizer": "shared3d"})) == "+ VisionMix"
    assert (
        recipe(
            row(
                **{
                    "loss.context.weight": 0.5,
                    "model.deep_supervision": True,
                    "data.mix": "joint",
                    "model.modality_embed": True,
                    "model.tokenizer": "separate",
                }
            )
        )
        == "+ multi-modal tokenizer"
    )
    assert ABLATIONS["mask_ratio"].paper_row(row(**{"mask.ratio": 0.5})) is None


# ---- plots ----------------------------------------------------------------------------------------------
def test_plots_are_written_and_deterministic(results, sweeps, tmp_path):
    s = _summary(results, "predictor_width")
    fig = plots.plot_ablation(s, tmp_path / "a.png")
    plots.plot_ablation(s, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    ax = fig.axes[0]  # shapes_det/ap: each width minus the first, 24 (the zero line)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["48", "96", "192"]
    assert ax.get_title() == "shapes_det/ap\n24: 0.21; random init: 0.055"
    assert ax.get_ylabel() == "difference from 24\n(fraction; higher is better)"
    assert "paper: COCO APbox" in fig.axes[-1].get_ylabel()
    assert fig.legends and {t.get_text() for t in fig.legends[0].get_texts()} >= {
        "beyond seed noise (interval excludes 0)",
        "seeds (paired differences)",
        "paper's difference (right axis, from 0)",
    }
    assert b"Software" not in (tmp_path / "a.png").read_bytes()[:200]
    lg = _summary(results, "loss_granularity")
    marks = plots.plot_ablation(lg).axes[0].containers[0].lines[0]
    assert marks.get_ydata() == pytest.approx([0.13])  # token minus block, paired by seed: the mean
    curves = collect_curves([sweeps])
    fig = plots.plot_curves(lg, curves, tmp_path / "c.png")
    plots.plot_curves(lg, curves, tmp_path / "d.png")
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "d.png").read_bytes()
    assert [ax.get_title() for ax in fig.axes] == ["loss", "online_rankme_image", "target_token_cos_image"]
    assert fig.axes[2].get_ylabel() == "mean cosine between tokens (1 = collapse)"
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == [
        "block (n=3)",
        "token (n=3)",
    ]
    line = fig.axes[0].get_lines()[0]  # block: mean over its 3 completed seeds at steps 10, 20
    assert line.get_xdata().tolist() == [10, 20]
    assert np.allclose(line.get_ydata(), [0.03 + 0.01, 0.015 + 0.01])
    assert fig.axes[0].get_legend_handles_labels()[1] == ["block (n=3)", "token (n=3)"]


def test_probes_through_an_untrained_tokenizer_are_left_out():
    """Image-only runs with a tokenizer per modality never train the video one: their video probes are left
    out (and said so); with the shared 3-D tokenizer (trained on repeated frames) they are kept."""

    def runs(tokenizer):
        rows = []
        for deep in (False, True):
            for seed in (0, 1):
                rows.append(
                    {
                        "run_id": f"deep_supervision/{deep},{seed}",
                        "sweep": "deep_supervision",
                        "preset": "tiny",
                        "axis": "model.deep_supervision",
                        "variant": str(deep),
                        "seed": seed,
                        "status": "completed",
                        "command": "python sweeps/deep_supervision.py",
                        "config/model.deep_supervision": deep,
                        "config/model.tokenizer": tokenizer,
                        "config/data.mix": "image",
                        "probe/camvid_linear/miou": 0.2 + 0.02 * deep + 0.001 * seed,
                        "probe/mnist_video_linear/direction_top1": 0.9 - 0.05 * deep + 0.01 * seed,
                        "probe_random/mnist_video_linear/direction_top1": 0.5,
                        "loss_final": 0.5,
                    }
                )
        return pd.DataFrame(rows)

    s = _summary(runs("separate"), "deep_supervision")
    assert "probe/camvid_linear/miou" in s.metrics
    assert not [m for m in s.metrics if "mnist_video" in m] and s.left_out == {"video": 4}
    text = statement(s)
    assert "Diving-48 top-1 (`diving48_attentive/top1`, `mnist_video_linear/direction_top1`)" in text
    assert "Left out: the video probes of 4 run(s) trained on images only" in text
    assert "ADE20K mIoU (linear) vs. `camvid_linear/miou`: agrees" in text
    assert "Diving-48 top-1 vs." not in text

    shared = _summary(runs("shared3d"), "deep_supervision")
    assert "probe/mnist_video_linear/direction_top1" in shared.metrics and shared.left_out == {}
    assert "Diving-48 top-1 vs. `mnist_video_linear/direction_top1`: disagrees" in statement(shared)

    # Where the probes recorded their inputs' frames, those decide, whatever the task is called: a user's
    # clip task "my_clips" is left out, and a task named like a video one that read images is kept.
    named = runs("separate")
    named["probe/my_clips/top1"] = 0.4 + 0.01 * named["seed"]
    named["probe/my_clips/frames"] = 8.0
    named["probe/mnist_video_linear/frames"] = 0.0
    s = _summary(named, "deep_supervision")
    assert "probe/mnist_video_linear/direction_top1" in s.metrics
    assert not [m for m in s.metrics if "my_clips" in m] and s.left_out == {"video": 4}
    assert probe_modality("probe/my_clips/top1") == "image"  # by name: what runs probed before read
    assert probe_modality("probe/my_clips/frames", {"probe/my_clips/frames": 8.0}) is None


@pytest.mark.parametrize(
    "last, four", [("ade20k_miou", "ade20k_miou_4layers"), ("diving48_top1", "diving48_top1_4layers")]
)
def test_table12_last_layer_and_4_layer_columns_read_one_probe(last, four):
    """Table 12 sets a last-layer column beside a 4-layer one: each pair of stand-ins is the same probe (head,
    data, budget, score) reading other layers, among the tasks the deep-supervision sweep runs
    (probes=levels), so the two columns differ only in what the paper's do."""
    sweep = OmegaConf.load(Path(__file__).parents[1] / "sweeps" / "conf" / "deep_supervision.yaml")
    assert {"override /probes": "levels"} in list(sweep.defaults)
    conf = Path(__file__).parents[1] / "vjepa" / "conf" / "probes"
    tasks = {**OmegaConf.load(conf / "default.yaml").tasks, **OmegaConf.load(conf / "levels.yaml").tasks}
    stand_ins = [m for m in COMPARE[last] if m not in PAPER_BENCHMARKS]  # the paper's own: below
    four_stand_ins = [m for m in COMPARE[four] if m not in PAPER_BENCHMARKS]
    # the paper's own benchmarks, read from folders: probes=paper and its 4-level twins, probes=paper_levels
    paper = OmegaConf.load(conf / "paper.yaml").tasks
    paper_levels = {**paper, **OmegaConf.load(conf / "paper_levels.yaml").tasks}
    own = [m for m in COMPARE[last] if m in PAPER_BENCHMARKS]
    four_own = [m for m in COMPARE[four] if m in PAPER_BENCHMARKS]
    assert len(stand_ins) == len(four_stand_ins) > 0
    pairs = [(a, b, tasks) for a, b in zip(stand_ins, four_stand_ins, strict=True)]
    if four_own:  # ADE20K: the paper's own twin too (Diving-48's attentive probe reads one layer: none)
        pairs.append((*own, *four_own, paper_levels))
    for a, b, where in pairs:
        (_, task_a, score_a), (_, task_b, score_b) = a.split("/"), b.split("/")
        probe_a, probe_b = (OmegaConf.to_container(where[t]) for t in (task_a, task_b))
        assert probe_a.pop("layers") == [-1] and probe_b.pop("layers") == "levels"
        assert probe_a == probe_b and score_a == score_b, (a, b)
    assert ("ade20k" in last) == bool(four_own)


def test_a_paper_scale_run_sets_the_papers_own_benchmark_beside_the_paper_with_no_stand_in():
    """Runs probed with probes=paper (ADE20K read from the user's folders) put their ADE20K mIoU in the column
    beside the paper's ADE20K mIoU, and the verdicts read it; no stand-in is named."""
    rows = [
        {
            "run_id": f"deep_supervision/{deep},{seed}",
            "sweep": "deep_supervision",
            "preset": "vitl16",
            "axis": "model.deep_supervision",
            "variant": str(deep),
            "seed": seed,
            "status": "completed",
            "command": "python sweeps/deep_supervision.py preset=vitl16 probes=paper",
            "config/model.deep_supervision": deep,
            "config/data.mix": "joint",
            "probe/ade20k_linear/miou": 0.40 + 0.05 * deep + 0.002 * seed,
            "probe/nyu_linear/rmse": 0.60 - 0.05 * deep + 0.003 * seed,
            "loss_final": 0.5,
        }
        for deep in (False, True)
        for seed in (0, 1, 2)
    ]
    s = _summary(pd.DataFrame(rows), "deep_supervision")
    header, _ = variant_table(s)
    i = header.index("paper: ADE20K mIoU (linear)")
    assert "ade20k_linear/miou" in header[i - 1] and not any("camvid" in h or "shapes" in h for h in header)
    text = statement(s)
    assert "ADE20K mIoU (linear) vs. `ade20k_linear/miou`: agrees" in text
    assert "NYU depth RMSE vs. `nyu_linear/rmse`: agrees" in text  # lower is better, as in the paper
    assert PAPER_BENCHMARKS["probe/ade20k_linear/miou"] == "ade20k_miou" and lower_is_better(
        "probe/nyu_linear/rmse"
    )


# ---- directions -----------------------------------------------------------------------------------------
def test_every_direction_names_rows_of_its_table():
    for key, table in TABLES.items():
        rows = [label for label, _ in table.rows]
        for name, a, b in table.directions:
            assert a in rows and b in rows and a != b, (key, name)
    t1 = TABLES["published_table1"].directions
    assert t1[0] == ("+ context loss", "V-JEPA 2", "+ context loss") and len(t1) == 6  # cumulative


def test_each_ingredient_paired_by_seed_against_the_paper(results):
    """block -> token over seeds 0-2 (the interrupted block seed 3 with ap 99 is not a pair): ap +0.10,
    +0.13, +0.16; miou +0.10, +0.12, +0.11; digit +0.10, +0.08, +0.06 where the paper's K400 drops 0.2."""
    s = _summary(results, "loss_granularity")
    d = s.directions.set_index("metric")
    assert set(d["direction"]) == {"dense token-level loss"} and (d["n"] == 3).all()
    ap = d.loc["probe/shapes_det/ap"]
    assert (ap["from_variant"], ap["to_variant"], ap["paper_metric"]) == ("block", "token", "coco_apbox")
    assert ap["paper_change"] == pytest.approx(3.1) and ap["change"] == pytest.approx(0.13)
    assert ap["se"] == pytest.approx(0.03 / math.sqrt(3)) and ap["verdict"] == "holds" and ap["better"]
    miou = d.loc["probe/shapes_seg/miou"]
    assert miou["change"] == pytest.approx(0.11) and miou["se"] == pytest.approx(0.01 / math.sqrt(3))
    digit = d.loc["probe/mnist_video/digit_top1"]
    assert digit["paper_change"] == pytest.approx(-0.2) and digit["change"] == pytest.approx(0.08)
    assert digit["verdict"] == "reversed"  # +0.08 > 2 * 0.0115, against the paper's sign
    text = statement(s)
    assert "ours paired by seed (3 metric pair(s): 2 holds; 1 reversed)" in text
    assert (
        "  - *dense token-level loss* (block -> token): COCO APbox paper +3.1, ours `shapes_det/ap` "
        "+0.130 ± 0.017 (holds);" in text
    )
    assert (
        # p (Holm) 0.035: Holm over the design document's 3 rows, p = 0.0027 (miou), 0.0173 (ap), 0.0202
        # (digit): 3 * 0.0027, 2 * 0.0173 = 0.035, then max(1 * 0.0202, 0.035)
        "| dense token-level loss | block -> token | K400 top-1 | -0.2 | mnist_video/digit_top1 | +0.080 ± 0.012 | 3 | 0.020 | 0.035 | reversed |"
        in to_markdown(s)
    )


@pytest.mark.parametrize(
    "paper, ours, se, n, lower, higher, verdict",
    [
        (3.1, 0.01, 0.001, 3, False, True, "holds"),
        (3.1, -0.01, 0.001, 3, False, True, "reversed"),
        (3.1, 0.01, 0.003, 3, False, True, "same sign, within noise"),  # 3.3 se: inside t(2) = 4.303
        (3.1, 0.01, 0.003, 10, False, True, "holds"),  # outside t(9) = 2.262
        (3.1, -0.01, math.nan, 1, False, True, "opposite sign, one seed"),
        (-0.2, -0.05, 0.01, 3, True, False, "holds"),  # the paper's RMSE and our loss both fell: both better
        (-0.2, 0.05, 0.01, 3, True, False, "reversed"),  # our loss rose
        (-0.2, 0.05, 0.01, 3, False, False, "holds"),  # paper's RMSE fell (better), our score rose (better)
        (0.0, 0.05, 0.01, 3, False, True, "paper: no change"),
        (1.0, 0.0, 0.01, 3, False, True, "ours: no change"),
    ],
)
def test_direction_verdicts(paper, ours, se, n, lower, higher, verdict):
    assert _verdict(paper, ours, se, n, lower, higher) == verdict


def test_t_quantiles_are_the_95_percent_points_of_students_t():
    """The table against a numerical integral of the t density: 95 % of the mass lies within +-t95(df)."""
    for df in [1, 2, 3, 4, 5, 7, 10, 15, 20, 29, 30, 40, 60, 120]:
        t = t95(df)
        x = np.linspace(-t, t, 400_001)
        log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        y = np.exp(log_c - (df + 1) / 2 * np.log1p(x**2 / df))
        mass = float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())  # trapezoid rule
        assert mass == pytest.approx(0.95, abs=2e-4), df
    # exact degrees of freedom, fractional ones (Welch's) included: no rounding down to a tabulated df
    assert t95(3) < t95(2.7) < t95(2) and t95(45) < t95(40) and t95(1e6) == pytest.approx(1.95996, abs=1e-5)
    assert math.isnan(t95(0.5)) and math.isnan(t95(math.nan))


def test_seed_noise_uses_welch_degrees_of_freedom():
    assert welch_df(0.01, 3, 0.01, 3) == pytest.approx(4.0)  # equal spreads: n_a + n_b - 2
    assert welch_df(0.01, 3, 0.0, 5) == pytest.approx(2.0)  # all the spread in one variant: its n - 1
    assert beyond_noise(0.03, 0.01, 4.0) and not beyond_noise(0.027, 0.01, 4.0)  # t(4) = 2.776
    assert not beyond_noise(0.5, math.nan, 4.0) and beyond_noise(0.1, 0.0, math.nan)


def test_directions_skip_rows_the_sweep_did_not_run(results):
    s = _summary(results, "mask_ratio")  # the design table names no direction for the mask ratio
    assert s.directions.empty and unanswered(s.stats, s.table) == ([], [])
    t1 = TABLES["published_table1"]
    stats = pd.DataFrame(
        {"variant": ["vjepa2", "context"], "paper_row": ["V-JEPA 2", "+ context loss"], "n": [3, 3]}
    )
    later = ["+ deep self-supervision", "+ VisionMix", "+ multi-modal tokenizer", "+ ViT-G", "+ cool-down"]
    assert unanswered(stats, t1) == ([], later)
    stats["n"] = [3, 0]  # the context runs exist, none completed: pending, not "not run"
    assert unanswered(stats, t1) == (["+ context loss"], later)
    # rows the sweep's grid trains but with no run at all yet (a table collected part way): pending too
    grid = ABLATIONS["recipe"].grid_rows
    stats["n"] = [3, 3]
    assert unanswered(stats, t1, grid) == (later[:3], later[3:])


def _recipe(results, vjepa2_status: str) -> pd.DataFrame:
    """``results`` plus Table 1's first two steps at seed 0: the vjepa2 run with ``vjepa2_status`` (a
    completed one copies a completed run's probe scores), the context run still running."""
    done = results[results["status"] == "completed"].iloc[[0]]
    running = results[results["status"] == "running"].iloc[[0]]
    recipe = pd.concat([done if vjepa2_status == "completed" else running, running], ignore_index=True)
    recipe["sweep"], recipe["axis"], recipe["variant"] = "recipe", "recipe_step", ["vjepa2", "context"]
    recipe["run_id"], recipe["seed"] = ["recipe/preset=tiny/vjepa2", "recipe/preset=tiny/context"], 0
    recipe["config/loss.context.weight"] = [0.0, 0.5]  # Table 1's first two steps (analysis.ablations)
    recipe["config/model.deep_supervision"], recipe["config/data.mix"] = False, "video"
    recipe["config/model.modality_embed"], recipe["config/model.tokenizer"] = False, "shared3d"
    return pd.concat([results, recipe], ignore_index=True)


@pytest.mark.parametrize("vjepa2_status", ["running", "completed"])
def test_a_direction_whose_runs_have_not_completed_is_pending_not_unrun(results, vjepa2_status):
    """Table 1's "+ context loss" (vjepa2 -> context): both run directories exist, the context run is still
    training. The statement says it waits for a completed run, as it does for the steps the sweep's grid
    trains but that have no run yet; only the steps no sweep here trains are "not run"."""
    s = _summary(_recipe(results, vjepa2_status), "recipe")
    assert s.directions.empty and set(s.pending["paper_row"]) <= {"V-JEPA 2", "+ context loss"}
    head = next(x for x in statement(s).splitlines() if x.startswith("- The paper's ingredients"))
    assert head == (
        "- The paper's ingredients, ours paired by seed (0 metric pair(s): none); no completed run yet: "
        "+ context loss, + deep self-supervision, + VisionMix, + multi-modal tokenizer; not run here: "
        "+ ViT-G, + cool-down."
    )


def test_the_variant_table_lists_the_grids_steps_without_runs_with_the_papers_numbers(results):
    """Table 1 with its first two steps run: the table still has a row for each of the grid's other three
    steps, in the grid's order, with no numbers of ours and the paper's beside them."""
    s = _summary(_recipe(results, "completed"), "recipe")
    header, rows = variant_table(s)
    assert [r[:4] for r in rows[:5]] == [
        ["vjepa2", "V-JEPA 2", "1", "0"],
        ["context", "+ context loss", "0", "1 running"],
        ["deep", "+ deep self-supervision", "0", "no run yet"],
        ["mix", "+ VisionMix", "0", "no run yet"],
        ["tokenizer", "+ multi-modal tokenizer", "0", "no run yet"],
    ]
    ours = [i for i, h in enumerate(header) if i >= 4 and not h.startswith("paper: ")]
    in1k = header.index("paper: IN1K top-1")
    for row, paper in zip(rows[2:], ("+ deep self-supervision", "+ VisionMix", "+ multi-modal tokenizer")):
        assert all(row[i] == "–" for i in ours)
        assert row[in1k] == paper_num(TABLES["published_table1"].value(paper, "in1k_top1"), "%")
    assert "'no run yet': a variant of the sweep's grid with no run here" in legend(s)
    assert "no run yet" not in legend(_summary(results, "loss_granularity"))


def test_directions_overview_counts_each_paper(results):
    text = directions_overview(summarize(results))
    assert text == (
        "**design document, section 9.3, its ingredients in all** (loss_granularity (preset=tiny)): of 3 "
        "(ingredient, metric) pairs, 2 go the paper's way (2 beyond seed noise) and 1 the other way (1 beyond "
        "seed noise). Beyond seed noise is after Holm's correction over these 3 tests: at 5 % each, chance "
        "alone would give about 0.2 of 3 uncorrected (here: 3); after Holm's correction, at most a 5 % chance "
        "of any. None of these 3 verdicts rests on a pair of seeds that crosses code versions."
    )
    assert directions_overview([_summary(results, "mask_ratio")]) is None


def _token_seed0(results, **columns) -> pd.DataFrame:
    """loss_granularity with ``columns`` set on the completed token run of seed 0 only."""
    lg = results[results["sweep"] == "loss_granularity"].copy()
    row = (lg["variant"] == "token") & (lg["seed"] == 0) & (lg["status"] == "completed")
    assert row.sum() == 1
    for column, value in columns.items():
        lg.loc[row, column] = value
    return lg


def test_a_pair_across_code_versions_is_flagged_and_kept(results):
    """token seed 0 trained by other code than block seed 0 (code_version, no numerics recorded): every
    block -> token row names seed 0 in crossing_seeds, keeps the pair in its change, and the statement, the
    lead, the random-init comparison (block's run of seed 0 measured the random-init number) and the tally
    say so."""
    from analysis.summary import versus_random_crossings

    s = _summary(_token_seed0(results, code_version="def5678"), "loss_granularity")
    d = s.directions.set_index("metric")
    assert (d["crossing_seeds"] == "0").all()
    ap = d.loc["probe/shapes_det/ap"]
    assert ap["n"] == 3 and ap["change"] == pytest.approx(0.13) and ap["verdict"] == "holds"  # kept in
    assert s.numerics_keys == [f"code {CODE}", "code def5678"]
    assert s.numerics_note == (
        f"runs of 2 code versions with unrecorded numerics ({CODE}, def5678): pairs across them may differ in "
        "numerics and are flagged (seed 0 mixes them)"
    )
    text = statement(s)
    assert (
        "  - *dense token-level loss* (block -> token; pair of seed 0 crosses code versions): COCO APbox "
        "paper +3.1, ours `shapes_det/ap` +0.130 ± 0.017 (holds);" in text
    )
    assert "3 of them on pairs of seeds that cross code versions)" in text
    lead = s.agreement.set_index("metric").loc["probe/shapes_det/ap"]
    assert lead["noise_test"] == "paired" and lead["crossing_seeds"] == "0"
    assert "beyond seed noise (pair of seed 0 crosses code versions); Kendall tau" in text
    assert versus_random_crossings(s, "probe/shapes_det/ap") == {"token": [0]}
    assert s.ranges["probe/shapes_det/ap"]["crossing_seeds"] == [0]
    assert (
        "2 better beyond seed noise; 1 of 2 variants pair, at seed 0, with a random-init number measured by "
        "a run of another code version)." in text
    )
    md = to_markdown(s)
    assert md.startswith(f"### loss_granularity (preset=tiny)\n\nNumerics: {s.numerics_note}.\n")
    assert "| mnist_video/digit_top1 | +0.080 ± 0.012 | 3 (seed 0 crosses) |" in md
    overview = directions_overview([s])
    assert (
        "3 of these 3 verdicts rest on pairs of seeds whose two runs cross code versions, 3 of them beyond "
        "seed noise: kept in the paired differences, flagged below." in overview
    )


def test_pairs_that_share_a_numerics_id_are_not_flagged(results):
    """The same runs with one recorded numerics id: the code versions no longer count, nothing crosses; with
    another id for token seed 0, seed 0's pairs cross numerics again."""
    lg = _token_seed0(results, code_version="def5678").assign(numerics="111111111111")
    s = _summary(lg, "loss_granularity")
    assert (s.directions["crossing_seeds"] == "").all() and (s.agreement["crossing_seeds"] == "").all()
    assert s.numerics_note is None and s.numerics_keys == ["numerics 111111111111"]
    assert s.ranges["probe/shapes_det/ap"]["crossing_seeds"] == []
    text = statement(s)
    assert "cross" not in text and "another code version" not in text
    assert "  - *dense token-level loss* (block -> token): COCO APbox paper +3.1" in text
    assert to_markdown(s).startswith(
        "### loss_granularity (preset=tiny)\n\nNumerics: every completed run has one recorded numerics, "
        "numerics 111111111111 (`vjepa/golden.py`), so no pair by seed crosses numerics.\n"
    )
    assert "None of these 3 verdicts rests on a pair of seeds that crosses numerics." in directions_overview(
        [s]
    )
    other = _summary(_token_seed0(lg, numerics="222222222222"), "loss_granularity")
    assert (other.directions["crossing_seeds"] == "0").all()
    assert "(block -> token; pair of seed 0 crosses numerics)" in statement(other)


def test_directions_forest_plot(results, tmp_path):
    """One row per (ingredient, metric): our paired change with its 95 % t interval, coloured by its verdict
    (holds, reversed); deterministic bytes; no figure for a sweep the paper names no direction for."""
    s = _summary(results, "loss_granularity")
    fig = plots.plot_directions(s, tmp_path / "a.png")
    plots.plot_directions(s, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    ax = fig.axes[0]
    bars = list(ax.containers)  # one errorbar container per row, top row first
    assert len(bars) == 3
    ap = bars[0]
    (x,), (y,) = ap.lines[0].get_data()
    assert x == pytest.approx(0.13) and y == 2  # the first row sits on top
    (segment,) = ap.lines[2][0].get_segments()  # the interval: 0.13 -+ t95(2) * 0.03 / sqrt 3
    half = math.sqrt(2 * 0.95**2 / (1 - 0.95**2)) * 0.03 / math.sqrt(3)  # t with 2 df: closed form, 4.3027
    assert segment[:, 0] == pytest.approx([0.13 - half, 0.13 + half])
    colors = [b.lines[0].get_color() for b in bars]
    assert colors[0] == colors[1] != colors[2]  # the K400 stand-in went the other way
    assert "paper +3.1 (COCO APbox); n=3; holds" in [t.get_text() for t in ax.texts]
    assert plots.plot_directions(_summary(results, "mask_ratio")) is None


def test_collect_update_keeps_the_rows_curves_and_pictures_of_runs_no_longer_here(
    sweeps, tmp_path, monkeypatch
):
    """The results table is the record: run directories go (deleted, another machine) and new runs come;
    `--update` brings the table and curves up to date without losing the runs collected before, and gives
    their groups the axis, variants and command of all their runs."""
    import shutil

    from analysis import pictures
    from analysis.collect import main

    out = tmp_path / "sweeps_out"
    shutil.copytree(sweeps, out)
    monkeypatch.chdir(tmp_path)
    args = ["sweeps_out", "--out", "rep/results.csv", "--curves", "rep/curves", "--no-pictures"]
    main(args)
    first = Path("rep/results.csv").read_text()
    first_curves = {p.name: p.read_text() for p in Path("rep/curves").glob("*.csv")}
    pw = out / "predictor_width" / "preset=tiny"
    gone = sorted(pw.iterdir())[1:]  # one predictor_width run stays: alone it would have no axis
    for d in gone:
        shutil.rmtree(d)
    shutil.rmtree(out / "runs")
    main([*args, "--update"])
    assert Path("rep/results.csv").read_text() == first
    assert {p.name: p.read_text() for p in Path("rep/curves").glob("*.csv")} == first_curves
    # an unfinished run whose directory is gone is dropped, its curve too: what it had done went with it
    lost = "loss_granularity/preset=tiny/loss=block,seed=4"
    shutil.rmtree(out / lost)
    main([*args, "--update"])
    assert lost not in set(load_results("rep/results.csv")["run_id"])
    assert lost not in set(pd.read_csv("rep/curves/loss_granularity-tiny.csv")["run_id"])
    # a run collected again gets its new row; the others stay as they were
    changed = (
        out
        / "mask_ratio"
        / "preset=tiny"
        / sorted(p.name for p in (out / "mask_ratio" / "preset=tiny").iterdir())[0]
    )
    metrics = json.loads((changed / "metrics.json").read_text())
    write_json(changed / "metrics.json", {**metrics, "probe/shapes_det/ap": 0.123})
    main([*args, "--update"])
    now = load_results("rep/results.csv")
    row = now[now["run_dir"] == str(Path("sweeps_out") / changed.relative_to(out))]
    assert row["probe/shapes_det/ap"].tolist() == [0.123]
    assert len(now) == len(first.splitlines()) - 2  # the header and the lost run
    assert set(now["axis"][now["sweep"] == "predictor_width"]) == {"predictor.width"}
    # without --update the table is what is here now
    main(args)
    alone = load_results("rep/results.csv")
    assert len(alone) == len(now) - len(gone) - 1
    assert set(alone["axis"][alone["sweep"] == "predictor_width"]) == {""}
    # curves in one file: the kept runs' curves stay in it
    one = ["sweeps_out", "--out", "one/results.csv", "--curves", "one/curves.csv", "--no-pictures"]
    shutil.copytree(sweeps / "loss_granularity", out / "loss_granularity", dirs_exist_ok=True)
    main(one)
    all_curves = pd.read_csv("one/curves.csv")
    shutil.rmtree(out / "loss_granularity")
    main([*one, "--update"])
    kept, table = pd.read_csv("one/curves.csv"), load_results("one/results.csv")
    assert set(kept["run_id"]) == set(table["run_id"])
    assert len(table[table["sweep"] == "loss_granularity"]) == 6  # the completed ones; 2 unfinished dropped
    same = all_curves[all_curves["run_id"].isin(set(table["run_id"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, same[kept.columns])
    # pictures: a group with a variant none of whose runs is here keeps its file; others are drawn
    calls = []
    monkeypatch.setattr(pictures, "extract_pca", lambda runs, out: calls.append(("pca", out.name)) or out)
    monkeypatch.setattr(pictures, "extract_masks", lambda runs, out: calls.append(("masks", out.name)) or out)
    data = tmp_path / "data"
    data.mkdir()
    (data / "pca_predictor_width-tiny.npz").write_bytes(b"kept")
    assert pictures.unseen_variants(now[now["sweep"] == "predictor_width"], True) != []
    pictures.extract_all(now, data, keep_unseen=True)
    assert ("pca", "pca_predictor_width-tiny.npz") not in calls
    assert ("masks", "masks_predictor_width-tiny.npz") in calls  # no file yet: drawn from the runs here
    assert ("pca", "pca_mask_ratio-tiny.npz") in calls
    assert (data / "pca_predictor_width-tiny.npz").read_bytes() == b"kept"


def test_curves_show_the_trainers_collapse_diagnostics():
    """The names the trainer logs (tests/test_trainer.py), ordered RankMe then token cosine, per modality,
    online before target; feature std, lr and the like are not drawn."""
    logged = {
        "loss", "lr", "online_feat_std_image", "target_token_cos_video", "online_token_cos_image",
        "target_rankme_image", "online_rankme_video", "online_rankme_image", "target_token_cos_image",
    }  # fmt: skip
    assert plots.curve_metrics(logged) == [
        "loss",
        "online_rankme_image",
        "target_rankme_image",
        "online_rankme_video",
        "online_token_cos_image",
        "target_token_cos_image",
        "target_token_cos_video",
    ]
    assert plots.curve_metrics({"lr", "rankme_image"}) == []


def test_random_init_row_takes_each_seed_from_a_run_that_has_it(results):
    """`evaluate baseline=only` on one run per seed is enough: the first run of a seed without the numbers
    does not hide them."""
    lg = results[results["sweep"] == "loss_granularity"].copy()
    block = lg["variant"] == "block"
    lg.loc[block, "probe_random/shapes_det/ap"] = math.nan  # only the token runs were baseline-probed
    rand = _stat(_summary(lg, "loss_granularity"), "random init", "probe/shapes_det/ap")
    assert rand["n"] == 3 and rand["mean"] == pytest.approx(0.06) and rand["seeds"] == "0 1 2"


def test_keys_that_change_no_result_are_never_an_axis():
    """One seed re-run with compile=true, another under a different cluster.time_min: still one axis
    (mask.ratio), plain variants, and the command does not sweep those keys."""
    from analysis.collect import _group_columns, not_axis

    overrides = [
        ["mask.ratio=0.6", "seed=0"],
        ["mask.ratio=0.8", "seed=0", "compile=true"],
        ["mask.ratio=0.6", "seed=1", "cluster.time_min=600", "diagnostics.batch_size=8"],
        ["mask.ratio=0.8", "seed=1", "probes=fast"],
    ]
    group = pd.DataFrame(
        {"overrides": [json.dumps(o) for o in overrides], "sweep": "mask_ratio", "seed": [0, 0, 1, 1]}
    )
    cols = _group_columns(group, None)
    assert cols["axis"] == "mask.ratio" and cols["variant"] == ["0.6", "0.8", "0.6", "0.8"]
    assert "compile" not in cols["command"] and "cluster" not in cols["command"]
    assert not_axis("cluster.partition") and not_axis("data.root") and not not_axis("data.mix")
    assert not not_axis("seeds") and not not_axis("probe")  # whole keys or sub-keys only


def test_random_init_row_is_one_network_where_the_variants_encoders_differ(results):
    """Where a sweep changes the encoder (here block runs get another depth), each seed's random-init number
    comes from the first variant's runs only, and the legend says whose encoder it is."""
    lg = results[results["sweep"] == "loss_granularity"].copy()
    token = lg["variant"] == "token"
    lg.loc[token, "config/model.depth"] = 99
    lg.loc[token, "probe_random/shapes_det/ap"] = 0.5  # another network's numbers, never mixed in
    s = _summary(lg, "loss_granularity")
    rand = _stat(s, "random init", "probe/shapes_det/ap")
    assert rand["n"] == 3 and rand["mean"] == pytest.approx(0.06)  # block's (first in display order)
    assert (
        "Random init: the encoder of `block` before training (the variants' encoders differ in model.depth)."
        in (to_markdown(s))
    )
    lg.loc[lg["variant"] == "block", "probe_random/shapes_det/ap"] = math.nan  # only token's were probed
    rand = _stat(_summary(lg, "loss_granularity"), "random init", "probe/shapes_det/ap")
    assert rand["n"] == 3 and rand["mean"] == pytest.approx(0.5)
    same = _summary(results, "loss_granularity")
    assert "Random init:" not in to_markdown(same)  # one encoder: nothing to say


def test_each_variant_against_the_random_init_encoder_paired_by_seed(results):
    """block ap - random: +0.05, +0.06, +0.07 (better); token moved below random by 0.03 +- 0.005 (worse);
    with block's seeds 1-2 gone it is one seed; a metric without random-init numbers gives nothing."""
    from analysis.summary import versus_random

    s = _summary(results, "loss_granularity")
    assert versus_random(s, "probe/shapes_det/ap") == {"block": "better", "token": "better"}
    assert versus_random(s, "probe/shapes_seg/miou") == {}
    lg = results[results["sweep"] == "loss_granularity"].copy()
    token = (lg["variant"] == "token") & (lg["status"] == "completed")
    lg.loc[token, "probe/shapes_det/ap"] = lg.loc[token, "probe_random/shapes_det/ap"] - [0.025, 0.03, 0.035]
    drop = (lg["variant"] == "block") & lg["seed"].isin([1, 2])
    s = _summary(lg.drop(lg[drop].index), "loss_granularity")
    assert versus_random(s, "probe/shapes_det/ap") == {"block": "one seed", "token": "worse"}
    lg.loc[token, "probe/shapes_det/ap"] = lg.loc[token, "probe_random/shapes_det/ap"] + [0.01, -0.005, 0.0]
    assert versus_random(_summary(lg, "loss_granularity"), "probe/shapes_det/ap")["token"] == "above"


def test_a_sweep_with_no_completed_run_yet_is_listed_and_compares_nothing(results):
    """Table 1's first two runs, both still training: summarize raised (an empty bool mask selected no
    columns in directions); now the statement counts them and compares nothing."""
    running = results[results["status"] == "running"].iloc[[0, 0]].copy()
    running["sweep"], running["axis"], running["variant"] = "recipe", "recipe_step", ["vjepa2", "context"]
    running["run_id"] = ["recipe/preset=tiny/vjepa2", "recipe/preset=tiny/context"]
    s = _summary(pd.concat([results, running], ignore_index=True), "recipe")
    assert s.stats.empty and s.agreement.empty and s.directions.empty
    text = statement(s)
    assert "0 of 2 runs completed" in text and "not comparable" in text
    assert "| vjepa2 | – | 0 | 1 running | – |" in to_markdown(s)  # listed, nothing to show yet


def test_sweep_command_lists_a_lone_axis_in_the_papers_row_order():
    """Table 1's steps are cumulative: the command names them V-JEPA 2 first (it sorted them by name)."""
    from analysis.collect import sweep_command

    steps = ["tokenizer", "context", "vjepa2", "deep"]
    group = pd.DataFrame(
        {
            "sweep": "recipe",
            "overrides": [json.dumps(["preset=tiny", f"recipe_step={s}", "seed=0"]) for s in steps],
        }
    )
    assert sweep_command(group, ["recipe_step"], Path("sweeps_out/recipe/preset=tiny")) == (
        "python sweeps/recipe.py preset=tiny recipe_step=vjepa2,context,deep,tokenizer seed=0"
    )


def test_a_failed_write_of_the_results_table_leaves_the_old_one_whole(tmp_path):
    """The table holds the only record of runs trained elsewhere: a write that fails half-way (here a value
    that cannot be formatted, after the first rows) must not truncate it."""

    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot format")

    path = tmp_path / "results.csv"
    write_csv(pd.DataFrame({"run_id": ["a", "b"], "x": [1, 2]}), path)
    before = path.read_text()
    rows = pd.DataFrame({"run_id": [f"r{i}" for i in range(3000)], "x": [1] * 2999 + [Unprintable()]})
    with pytest.raises(RuntimeError, match="cannot format"):
        write_csv(rows, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary file left behind


def test_a_spread_below_the_metrics_step_is_not_taken_for_certainty():
    """Two seeds whose accuracies (over 300 clips: steps of 1/300) differ by the same -3 steps have a sample
    spread of 0, which alone would call the difference real; the rounding's own standard error, step /
    sqrt(6 n), keeps it within noise. Differences that vary, or a continuous metric, are unaffected."""
    from analysis.stats import mean_and_se, resolution

    step = 1 / 300
    values = np.array([0.9367, 0.9267, 0.9300, 0.9633]).round(4)
    assert resolution(values) == pytest.approx(0.0033, abs=1e-4)
    d = np.array([-3 * step, -3 * step])
    mean, se = mean_and_se(d)
    assert se == 0 and beyond_noise(mean, se, 1)  # the old rule: certainty from two equal roundings
    mean, se = mean_and_se(d, step)
    assert se == pytest.approx(step / math.sqrt(12)) and not beyond_noise(mean, se, 1)
    spread = np.array([0.01, 0.03, 0.02])
    assert mean_and_se(spread, step) == mean_and_se(spread)  # a real spread above the floor is kept
    assert resolution([0.5]) == 0.0 and math.isnan(mean_and_se([0.1], step)[1])
