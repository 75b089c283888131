"""analysis.stats, analysis.ranges and the multiple-comparison correction of the report's verdicts: Holm's
adjusted p-values against a hand computation, the exact t quantile, the verdict at the boundary of the 95 %
interval, probes without range left out of the tallies, and the tallies' chance counts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.directions import DIRECTION_COLUMNS, _verdict, correct
from analysis.ranges import probe_range
from analysis.stats import holm, p_value, t95
from analysis.summary import summarize
from analysis.tables import directions_overview, statement, variant_table


def hand_holm(p: list[float]) -> list[float]:
    """Holm by hand: sort ascending, multiply the i-th smallest (from 0) by m - i, carry the running
    maximum (adjusted p-values never decrease along the order), cap at 1."""
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def t2_p(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, closed form: 1 - t / sqrt(t^2 + 2)."""
    return 1 - abs(t) / math.sqrt(t * t + 2)


# ---- stats ----------------------------------------------------------------------------------------------
def test_holm_on_known_p_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert hand_holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    # NaN entries (no test) stay NaN and do not count in the family: m = 2 here, not 3
    got = holm([0.01, math.nan, 0.04])
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert holm([]).shape == (0,)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = list(rng.uniform(0, 0.2, size=7))
        assert holm(q) == pytest.approx(hand_holm(q))


def test_t_quantile_is_scipys_with_the_exact_df():
    assert t95(2) == pytest.approx(scipy_stats.t.ppf(0.975, 2), rel=1e-12)
    # t with 2 df has a closed form: P(|T| < q) = q / sqrt(q^2 + 2) = 0.95
    assert t95(2) == pytest.approx(math.sqrt(2 * 0.95**2 / (1 - 0.95**2)), rel=1e-12)
    assert t95(2.5) == pytest.approx(scipy_stats.t.ppf(0.975, 2.5)) and t95(3) < t95(2.5) < t95(2)
    assert math.isnan(t95(0.9))


def test_p_value_and_the_verdict_at_the_boundary():
    se = 0.01
    edge = t95(2) * se
    assert p_value(edge, se, 2) == pytest.approx(0.05, rel=1e-9)
    assert p_value(0.0567, se, 2) == pytest.approx(t2_p(5.67), rel=1e-9)
    assert p_value(0.3, 0.0, 2) == 0.0 and p_value(0.0, 0.0, 2) == 1.0 and math.isnan(p_value(1, math.nan, 2))
    # 3 seeds (2 df): just outside the interval holds (or reverses), just inside is within noise
    assert _verdict(3.1, edge * (1 + 1e-9), se, 3, False, True) == "holds"
    assert _verdict(3.1, -edge * (1 + 1e-9), se, 3, False, True) == "reversed"
    assert _verdict(3.1, edge * (1 - 1e-9), se, 3, False, True) == "same sign, within noise"
    # the corrected p decides where given; a row beyond noise alone but not after Holm says so
    assert _verdict(3.1, edge * 1.01, se, 3, False, True, p=0.06) == "same sign, within noise after Holm"
    assert _verdict(3.1, edge * 1.01, se, 3, False, True, p=0.049) == "holds"
    assert _verdict(3.1, edge * 2, se, 3, False, True, has_range=False) == "same sign, no range"


def _rows(changes: list[float], metric: str = "probe/shapes_det/ap", paper: float = 3.1) -> pd.DataFrame:
    """Direction rows with se 0.01 over 3 seeds (2 df)."""
    rows = [
        {
            "direction": f"d{i}",
            "from_variant": "a",
            "to_variant": "b",
            "paper_metric": "coco_apbox",
            "metric": metric,
            "paper_change": paper,
            "change": c,
            "se": 0.01,
            "n": 3,
            "p": p_value(c, 0.01, 2),
            "p_holm": math.nan,
            "better": c > 0,
            "verdict": "",
        }
        for i, c in enumerate(changes)
    ]
    return pd.DataFrame(rows, columns=DIRECTION_COLUMNS)


def test_correct_takes_one_family_across_sweeps_and_leaves_out_metrics_without_range():
    # two rows at p = 0.03 each (t = 5.643 with 2 df): each holds alone, neither after Holm (0.06)
    t = math.sqrt(2 * 0.97**2 / (1 - 0.97**2))
    assert t2_p(t) == pytest.approx(0.03)
    a, b = _rows([t * 0.01]), _rows([t * 0.01])
    assert _verdict(3.1, t * 0.01, 0.01, 3, False, True) == "holds"
    ca, cb = correct([a, b], [{}, {}])
    assert ca["p_holm"].iloc[0] == pytest.approx(0.06) and cb["p_holm"].iloc[0] == pytest.approx(0.06)
    assert ca["verdict"].iloc[0] == cb["verdict"].iloc[0] == "same sign, within noise after Holm"
    # the second sweep's metric has no range: out of the family, so the first is a family of one again
    no_range = {"probe/shapes_det/ap": {"has_range": False}}
    ca, cb = correct([a, b], [{}, no_range])
    assert ca["p_holm"].iloc[0] == pytest.approx(0.03) and ca["verdict"].iloc[0] == "holds"
    assert math.isnan(cb["p_holm"].iloc[0]) and cb["verdict"].iloc[0] == "same sign, no range"
    # a paper row pair with no change is no test: not in the family
    ca, cb = correct([a, _rows([t * 0.01], paper=0.0)], [{}, {}])
    assert ca["p_holm"].iloc[0] == pytest.approx(0.03) and cb["verdict"].iloc[0] == "paper: no change"


# ---- probes without range -----------------------------------------------------------------------------
AP = ("probe/shapes_det/ap", {"block": [0.10, 0.12, 0.14], "token": [0.20, 0.25, 0.30]}, [0.05, 0.06, 0.07])
# random init as good as pretraining, within noise
MIOU = (
    "probe/shapes_seg/miou",
    {"block": [0.30, 0.32, 0.29], "token": [0.31, 0.30, 0.33]},
    [0.31, 0.29, 0.32],
)
# random init at the ceiling: pretraining cannot show
DIGIT = (
    "probe/mnist_video/digit_top1",
    {"block": [0.90, 0.91, 0.92], "token": [0.99, 0.98, 0.99]},
    [0.96, 0.96, 0.96],
)


def synthetic_results(metrics=(AP, MIOU, DIGIT), random_seeds=(0, 1, 2)) -> pd.DataFrame:
    """loss_granularity, 2 variants x 3 seeds, completed; the random-init numbers on each seed's block run."""
    rows = []
    for variant in ("block", "token"):
        for seed in range(3):
            row = {
                "run_id": f"loss_granularity/preset=tiny/loss={variant},seed={seed}",
                "sweep": "loss_granularity",
                "preset": "tiny",
                "axis": "loss",
                "variant": variant,
                "seed": seed,
                "status": "completed",
                "command": "python sweeps/loss_granularity.py preset=tiny",
                "config/loss.granularity": variant,
            }
            for metric, values, random in metrics:
                row[metric] = values[variant][seed]
                if variant == "block" and seed in random_seeds:
                    row["probe_random/" + metric.removeprefix("probe/")] = random[seed]
            rows.append(row)
    return pd.DataFrame(rows)


def test_probe_range_decides_from_the_random_init_encoder_paired_by_seed():
    runs = synthetic_results()
    ap = probe_range(runs, "probe/shapes_det/ap")
    # per seed: mean of block and token minus random init = 0.10, 0.125, 0.15
    assert ap["has_range"] is True and ap["n"] == 3 and ap["gap"] == pytest.approx(0.125)
    assert ap["se"] == pytest.approx(0.025 / math.sqrt(3)) and ap["random"] == pytest.approx(0.06)
    miou = probe_range(runs, "probe/shapes_seg/miou")
    assert miou["has_range"] is False and "within noise" in miou["reason"]
    digit = probe_range(runs, "probe/mnist_video/digit_top1")
    assert digit["has_range"] is False and digit["reason"] == "random init at the ceiling, 0.960"
    unknown = probe_range(runs.drop(columns=["probe_random/shapes_det/ap"]), "probe/shapes_det/ap")
    assert unknown["has_range"] is None and unknown["reason"] == "no random-init probe"
    one = probe_range(synthetic_results(random_seeds=(0,)), "probe/shapes_det/ap")
    assert one["has_range"] is None and one["n"] == 1
    # a random init that beats pretraining beyond noise: no range either
    worse = synthetic_results(((AP[0], AP[1], [0.3, 0.32, 0.34]),))
    assert probe_range(worse, "probe/shapes_det/ap")["has_range"] is False


def test_a_probe_without_range_is_marked_and_left_out_of_the_tallies():
    (s,) = summarize(synthetic_results())
    assert s.has_range("probe/shapes_det/ap") is True
    assert (
        s.has_range("probe/shapes_seg/miou") is False and s.has_range("probe/mnist_video/digit_top1") is False
    )
    d = s.directions.set_index("metric")
    assert d.loc["probe/shapes_det/ap", "verdict"] == "holds"  # 0.10, 0.13, 0.16: a family of one
    assert d.loc["probe/shapes_det/ap", "p_holm"] == pytest.approx(d.loc["probe/shapes_det/ap", "p"])
    assert d.loc["probe/shapes_seg/miou", "verdict"].endswith("sign, no range")
    assert d.loc["probe/mnist_video/digit_top1", "verdict"].endswith("sign, no range")
    # without the range test, the ceiling metric would reverse beyond noise (K400 falls in the paper)
    assert d.loc["probe/mnist_video/digit_top1", "p"] < 0.05
    text = directions_overview([s])
    assert (
        "of 1 (ingredient, metric) pairs (2 more on metrics without range left out), 1 goes the paper's"
        in text
    )
    assert "0 the other way (0 beyond seed noise)" in text
    assert "at 5 % each, chance alone would give about 0.1 of 1 uncorrected (here: 1)" in text
    assert "after Holm's correction, at most a 5 % chance of any." in text
    said = statement(s)
    assert "1 metric pair(s) compared (agrees 1), 2 more on metrics without range not counted" in said
    assert "in 1 of them our best variant leads" in said and "over the 1 lead(s) tested here" in said
    assert "`shapes_seg/miou` (no range: random-init gap" in said
    assert "`mnist_video/digit_top1` (no range: random init at the ceiling, 0.960" in said
    lead = s.agreement.set_index("metric")
    assert lead.loc["probe/shapes_det/ap", "resolved"] and math.isnan(
        lead.loc["probe/shapes_seg/miou", "p_holm"]
    )
    # a lead on a metric without range is never tested, so its verdict names that, not the means' order
    assert (
        lead.loc["probe/shapes_det/ap", "verdict"] == lead.loc["probe/shapes_det/ap", "ordering"] == "agrees"
    )
    assert lead.loc["probe/shapes_seg/miou", "verdict"] == "no range"
    assert lead.loc["probe/shapes_seg/miou", "ordering"] in ("agrees", "disagrees", "partly agrees")
    header, _ = variant_table(s)
    assert "shapes_seg/miou †" in header and "shapes_det/ap" in header and "shapes_det/ap †" not in header


def test_without_random_init_numbers_the_range_is_unknown_and_counted():
    results = synthetic_results()
    (s,) = summarize(results[[c for c in results.columns if not c.startswith("probe_random/")]])
    assert all(s.has_range(m) is None for m in ("probe/shapes_det/ap", "probe/shapes_seg/miou"))
    text = directions_overview([s])
    assert "of 3 (ingredient, metric) pairs, " in text and "without range" not in text
    assert "chance alone would give about 0.2 of 3 uncorrected" in text
    assert "range unknown (no random-init probe)" in statement(s)
