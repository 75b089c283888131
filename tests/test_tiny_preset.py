"""analysis.tiny_preset: which candidate configuration of the tiny preset is adopted, and why."""

import numpy as np
import pandas as pd
import pytest

from analysis import tiny_preset as tp

METRICS = ("probe/cifar10_linear/top1", "probe/camvid_linear/miou")


def _runs(gains: dict[str, list[float]], batch_size: int = 128, noise: float = 0.0) -> pd.DataFrame:
    """3 seeds; each metric's random-init score depends on the seed only (the same random encoder for
    every configuration of one shape), the pretrained score adds the given per-seed gains."""
    rng = np.random.default_rng(batch_size)
    rows = []
    for seed in range(3):
        row = {
            "status": "completed",
            "sweep": "tiny_preset",
            "preset": "tiny",
            "variant": "default",
            "seed": seed,
            "code_version": "abc1234",
            "numerics": "5bafc6427b58",
            "wall_time_s": 600.0,
            "config/batch_size": batch_size,
            "config/seed": seed,
            "config/data.mix": "image",
        }
        for i, metric in enumerate(METRICS):
            random = 0.3 + 0.01 * seed + 0.1 * i
            row[metric.replace("probe/", "probe_random/")] = random
            row[metric] = random + gains[metric][seed] + noise * rng.normal()
            row[f"{metric}/gap_se"] = 0.002
            row[f"{metric}/se"] = 0.005
        rows.append(row)
    return pd.DataFrame(rows)


FIRST = {METRICS[0]: [0.07, 0.071, 0.072], METRICS[1]: [0.007, 0.009, 0.005]}


def test_changes_names_the_keys_a_candidate_sets_and_not_the_seed():
    first, cand = _runs(FIRST), _runs(FIRST, batch_size=64)
    assert tp.changes(first, cand) == "batch_size=64"
    assert tp.changes(first, first) == "nothing"


def test_a_candidate_better_beyond_noise_on_one_probe_and_worse_on_none_is_adopted():
    better = {METRICS[0]: [0.10, 0.101, 0.103], METRICS[1]: [0.008, 0.007, 0.006]}
    tables = {tp.FIRST: _runs(FIRST), "long": _runs(better, batch_size=64)}
    versus = tp.against_first(tables, list(METRICS))
    verdicts = dict(zip(versus["metric"], versus["verdict"], strict=True))
    assert verdicts == {METRICS[0]: "better", METRICS[1]: "cannot tell"}
    adopted, why = tp.choice(tp.gaps(tables), versus)
    assert adopted == "long" and "cifar10_linear" in why


def test_the_shipped_preset_stays_when_a_candidate_also_loses_beyond_noise():
    mixed = {METRICS[0]: [0.10, 0.101, 0.103], METRICS[1]: [-0.02, -0.021, -0.022]}
    tables = {tp.FIRST: _runs(FIRST), "camvid": _runs(mixed, batch_size=64)}
    versus = tp.against_first(tables, list(METRICS))
    assert set(versus["verdict"]) == {"better", "worse"}
    assert tp.choice(tp.gaps(tables), versus)[0] == tp.FIRST


def test_holm_turns_a_nominal_difference_into_cannot_tell_among_many_rows():
    # one row with p just under 0.05 alone is not beyond noise once corrected over several rows
    slight = {METRICS[0]: [0.074, 0.079, 0.079], METRICS[1]: [0.007, 0.009, 0.005]}
    tables = {
        tp.FIRST: _runs(FIRST),
        "a": _runs(slight, batch_size=64),
        "b": _runs(slight, batch_size=32),
    }
    versus = tp.against_first(tables, list(METRICS))
    row = versus[(versus["config"] == "a") & (versus["metric"] == METRICS[0])].iloc[0]
    assert row["p"] < 0.05 < row["p_holm"] and row["verdict"] == "cannot tell"
    assert tp.choice(tp.gaps(tables), versus)[0] == tp.FIRST


def test_readme_is_deterministic_and_marks_probes_at_the_target(tmp_path):
    _runs(FIRST).to_csv(tmp_path / "first.csv", index=False)
    (tmp_path / "cands").mkdir()
    _runs(FIRST, batch_size=64).to_csv(tmp_path / "cands" / "long.csv", index=False)
    tables = tp.load(tmp_path / "cands", tmp_path / "first.csv")
    text = tp.readme(tables)
    assert text == tp.readme(tp.load(tmp_path / "cands", tmp_path / "first.csv"))
    assert f"**Adopted: `{tp.FIRST}`**" in text
    linear = next(line for line in text.splitlines() if line.startswith("| `probe/cifar10_linear/top1`"))
    assert linear.count("✓") == 2  # z far above 5 for both configurations
    ledger = text.split(f"## Noise ledger of the adopted configuration (`{tp.FIRST}`)")[1].split("##")[0]
    assert "| `probe/cifar10_linear/top1` | 0.381 | 0.310 |" in ledger  # the adopted runs' own means


def test_a_dense_setting_measured_apart_joins_each_run_by_seed(tmp_path):
    dense = pd.DataFrame(
        {
            "config": "long",
            "seed": [2, 0, 1],  # any order
            "task": "cam64",
            "metric": "miou",
            "pretrained": [0.32, 0.30, 0.31],
            "random": [0.28, 0.28, 0.28],
            "se": 0.003,
            "gap_se": 0.001,
        }
    )
    runs = tp._with_dense(_runs(FIRST, batch_size=64), dense)
    assert runs["probe/cam64/miou"].tolist() == [0.30, 0.31, 0.32]
    row = tp.gaps({"long": runs}).set_index("metric").loc["probe/cam64/miou"]
    assert row["gap"] == pytest.approx(0.03) and row["n"] == 3
    assert row["eval_gap_se"] == pytest.approx(0.001)


def test_pairs_that_cross_training_numerics_are_flagged():
    first, cand = _runs(FIRST), _runs(FIRST, batch_size=64)
    assert tp._numerics_caveat({tp.FIRST: first, "long": cand}) == []
    first["numerics"] = None  # runs from before numerics were recorded
    (line, _) = tp._numerics_caveat({tp.FIRST: first, "long": cand})
    assert "cross training code" in line and "`long`" in line and "no training numerics id" in line
