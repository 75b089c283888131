"""The report's first screen (analysis.findings): what the runs can and cannot tell, computed from them."""

import math

import pandas as pd
import pytest

from analysis.findings import findings
from analysis.summary import summarize
from tests.test_analysis import _ap_by_seed, base_config, make_sweeps  # noqa: F401  (base_config: fixture)
from vjepa.power import difference_spread, minimum_detectable_effect

DENSE = "*dense token-level loss* on `shapes_det/ap` (loss_granularity)"
RANDOM = "probe_random/shapes_det/ap"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, base_config):  # noqa: F811 (the fixture imported above)
    """test_analysis's synthetic sweeps, collected."""
    from analysis.collect import collect

    root = tmp_path_factory.mktemp("sweeps_out")
    make_sweeps(root, base_config)
    return collect([root])


def _no_random(results, block, token) -> pd.DataFrame:
    """``_ap_by_seed`` without the random-init numbers: the range of shapes_det/ap is then unknown, not
    absent (against random init 0.05-0.07 these seeds' spread would leave it without range)."""
    return _ap_by_seed(results, block, token).drop(columns=[RANDOM])


def _bullets(lg: pd.DataFrame) -> dict[str, str]:
    """The findings of loss_granularity alone, by their bold head."""
    out = {}
    for b in findings([s for s in summarize(lg) if s.sweep == "loss_granularity"]):
        out[b.split("**")[1]] = b
    return out


def _direction(lg: pd.DataFrame, metric: str) -> dict:
    s = next(s for s in summarize(lg) if s.sweep == "loss_granularity")
    return s.directions.set_index("metric").loc[metric].to_dict()


def test_a_direction_beyond_seed_noise_holds_or_reverses_and_the_rest_are_said_to_be_unresolved(runs):
    # token - block per seed: +0.03, +0.031, +0.029 (the paper: dense +3.1): holds
    lg = _no_random(runs, [0.10, 0.30, 0.50], [0.13, 0.331, 0.529])
    held = _bullets(lg)
    row = _direction(lg, "probe/shapes_det/ap")
    head = "The paper's directions that hold at this scale beyond seed noise"
    assert row["verdict"] == "holds"
    assert f"{DENSE}: ours +0.030 ± {row['se']:.3f} (paper +3.1)" in held[head]
    assert DENSE not in held["Reversed beyond seed noise"]
    assert not [b for h, b in held.items() if DENSE in b and h != head]
    # the other way round, beyond noise: reversed
    lg = _no_random(runs, [0.13, 0.331, 0.529], [0.10, 0.30, 0.50])
    rev = _bullets(lg)
    assert DENSE not in rev[head] and _direction(lg, "probe/shapes_det/ap")["verdict"] == "reversed"
    assert f"{DENSE}: ours -0.030 ± " in rev["Reversed beyond seed noise"]
    # within noise: said so, with the smallest change the 3 paired seeds could have seen
    d = [0.01, -0.02, 0.015]
    lg = _no_random(runs, [0.10, 0.30, 0.50], [0.10 + d[0], 0.30 + d[1], 0.50 + d[2]])
    unresolved = next(b for h, b in _bullets(lg).items() if h.startswith("This scale cannot tell"))
    row = _direction(lg, "probe/shapes_det/ap")
    assert row["verdict"].endswith("within noise") and row["n"] == 3
    mde = minimum_detectable_effect(row["se"] * math.sqrt(3), 3)  # the paired sd of the 3 differences
    assert row["se"] >= pd.Series(d).std() / math.sqrt(3)  # never below the seeds' own spread
    assert f"{DENSE}: ours +0.002 ± {row['se']:.3f} (paper +3.1), could have seen {mde:.3f}" in unresolved


def test_one_seed_is_said_to_tell_nothing_between_variants_and_random_init_uses_the_evaluation_error(runs):
    lg = _ap_by_seed(runs, [0.10, 0.30, 0.50], [0.13, 0.331, 0.529])
    one = lg[lg["seed"] == 0].copy()
    bullets = _bullets(one)
    assert DENSE in bullets["One seed, nothing can be told"]
    tie = _ap_by_seed(runs, [0.10, 0.30, 0.50], [0.10, 0.331, 0.529])  # seed 0: exactly equal
    tie = _bullets(tie[tie["seed"] == 0])
    assert DENSE in tie["One seed, nothing can be told"]
    assert not [h for h in tie if h.startswith("This scale cannot tell")]
    # random init 0.05 at seed 0: block +0.05 with gap_se 0.01 (z 5), token +0.08 with gap_se 0.1 (z 0.8)
    one["probe/shapes_det/ap/gap_se"] = one["variant"].map({"block": 0.01, "token": 0.1})
    text = _bullets(one)["loss_granularity (preset=tiny), against the random-init encoder"]
    assert "one seed: on the evaluation sample alone" in text and "Holm-corrected over 2 comparisons" in text
    assert "loss=block beats it on `shapes_det/ap` (+0.050, z 5.0)" in text
    assert "loss=token beats it on no metric" in text
    assert "one seed cannot tell anything from seed noise" in text


def test_with_seeds_every_variant_is_compared_with_its_random_init_by_seed(runs):
    # random init 0.05, 0.06, 0.07: block sits on it (within noise), token beats it at every seed
    lg = _ap_by_seed(runs, [0.051, 0.058, 0.071], [0.13, 0.141, 0.149])
    text = _bullets(lg)["loss_granularity (preset=tiny), against the random-init encoder"]
    assert "(paired by seed over the completed seeds 0, 1, 2)" in text
    assert (
        "no probe metric on which every variant beats it beyond seed noise; loss=block beats it on none."
        in text
    )
    lg = _ap_by_seed(runs, [0.10, 0.12, 0.13], [0.13, 0.151, 0.159])
    text = _bullets(lg)["loss_granularity (preset=tiny), against the random-init encoder"]
    assert "every variant beats it beyond seed noise on `shapes_det/ap`." in text
    # a variant with one seed so far has no spread: named apart, not said to beat it on none
    part = lg[(lg["variant"] != "token") | (lg["seed"] == 0)]
    text = _bullets(part)["loss_granularity (preset=tiny), against the random-init encoder"]
    assert (
        "every variant with two or more seeds beats it beyond seed noise on `shapes_det/ap`; one seed so far, "
        "cannot tell: loss=token." in text
    ), text


def test_each_table_names_its_code_and_the_smallest_difference_its_seeds_detect(runs):
    lg = _no_random(runs, [0.10, 0.30, 0.50], [0.11, 0.33, 0.49])
    table = _bullets(lg)["loss_granularity (preset=tiny)"]
    spread = difference_spread(lg, "probe/shapes_det/ap")
    assert spread.sd == pytest.approx(pd.Series([0.01, 0.03, -0.01]).std())  # paired: one pair, 3 seeds
    mde = minimum_detectable_effect(spread.sd, 3)  # the 3 seeds both variants completed
    assert "6 completed run(s), 3 seed(s) completed by every variant" in table  # not seed 3 (failed)
    assert "trained by code `abc1234` (no numerics id recorded)" in table
    assert f"`shapes_det/ap` {mde:.3f}," in table
    lg["numerics"], lg["platform"] = "5bafc6427b58", "cpu x86_64 AVX2"
    table = _bullets(lg)["loss_granularity (preset=tiny)"]
    assert "trained by numerics `5bafc6427b58 on cpu x86_64 AVX2` (code `abc1234`)" in table
