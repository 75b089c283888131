"""vjepa.power: the power of a paired t-test over seeds (noncentral t), and the sd of a paired difference
estimated from a results table."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from vjepa.power import difference_spread, minimum_detectable_effect, power, seeds_needed


def _normal_mde(sd, n, alpha=0.05, target=0.8):
    return (norm.ppf(1 - alpha / 2) + norm.ppf(target)) * sd / math.sqrt(n)


def test_mde_approaches_the_normal_closed_form_for_many_seeds():
    sd = 0.02
    assert minimum_detectable_effect(sd, 200) == pytest.approx(_normal_mde(sd, 200), rel=0.01)
    # the t distribution's heavier tails: always above the normal approximation
    assert minimum_detectable_effect(sd, 200) > _normal_mde(sd, 200)


def test_three_seeds_need_a_much_larger_effect_than_the_normal_approximation_says():
    """t with 2 degrees of freedom: a critical value of 4.30 instead of 1.96, about twice the effect."""
    assert minimum_detectable_effect(1.0, 3) > 1.9 * _normal_mde(1.0, 3)
    assert minimum_detectable_effect(1.0, 2) > 5 * _normal_mde(1.0, 2)


def test_power_is_the_noncentral_t_and_matches_statsmodels():
    from statsmodels.stats.power import TTestPower

    # hand-checked: d = 0.5 sd, 10 seeds, df 9, noncentrality 0.5 sqrt(10) = 1.581, t_crit = 2.262:
    # P(T' > 2.262) + P(T' < -2.262) = 0.2932
    assert power(0.5, 1.0, 10) == pytest.approx(0.2932, abs=5e-4)
    ref = TTestPower()
    for effect, sd, n in [(0.5, 1.0, 10), (0.01, 0.008, 3), (0.003, 0.01, 40), (1.2, 1.0, 4)]:
        expected = ref.power(effect_size=effect / sd, nobs=n, alpha=0.05, alternative="two-sided")
        assert power(effect, sd, n) == pytest.approx(expected, rel=1e-6)
        assert power(-effect, sd, n) == pytest.approx(expected, rel=1e-6)  # two-sided: the sign is free
    for n in (2, 3, 5, 20):
        mde = minimum_detectable_effect(0.01, n)
        assert power(mde, 0.01, n) == pytest.approx(0.8, abs=1e-9)
        expected = ref.solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided") * 0.01
        assert mde == pytest.approx(expected, rel=1e-5)


def test_mde_scales_with_sd_and_has_no_value_without_a_test():
    assert minimum_detectable_effect(0.02, 5) == pytest.approx(2 * minimum_detectable_effect(0.01, 5))
    assert math.isnan(minimum_detectable_effect(0.01, 1))
    assert math.isnan(minimum_detectable_effect(0.01, 0))
    assert math.isnan(minimum_detectable_effect(math.nan, 5))
    assert minimum_detectable_effect(0.0, 5) == 0.0
    assert math.isnan(power(0.1, 0.01, 1))
    with pytest.raises(ValueError):
        minimum_detectable_effect(0.01, 5, alpha=1.5)


def test_seeds_needed_is_the_first_seed_count_reaching_the_power_and_shrinks_with_the_effect():
    sd = 0.01
    needed = [seeds_needed(e, sd) for e in (0.004, 0.006, 0.01, 0.02, 0.05)]
    assert needed == sorted(needed, reverse=True) and needed[0] > needed[-1]
    for effect in (0.004, 0.006, 0.01, 0.02):
        n = seeds_needed(effect, sd)
        assert power(effect, sd, n) >= 0.8
        if n > 2:
            assert power(effect, sd, n - 1) < 0.8
        # consistent with the MDE: n seeds detect the effect, n - 1 do not
        assert minimum_detectable_effect(sd, n) <= effect < minimum_detectable_effect(sd, n - 1)
    assert seeds_needed(0.5, 1.0) == 34  # statsmodels: nobs 33.37 -> 34
    assert seeds_needed(0.2, 0.01) == 2  # n = 2 is the smallest paired test (its MDE: 11.5 sd)
    assert seeds_needed(1e-5, 0.01) is None  # not within max_seeds
    assert seeds_needed(0.0, 0.01) is None
    assert seeds_needed(0.01, 0.01, power=0.9) > seeds_needed(0.01, 0.01, power=0.8)
    assert seeds_needed(0.01, 0.01, alpha=0.01) > seeds_needed(0.01, 0.01, alpha=0.05)


def _table(values: dict, sweep="s", preset="tiny", **extra) -> pd.DataFrame:
    """{variant: [value per seed 0, 1, ...] (None: no run)} -> a results table."""
    rows = [
        {"sweep": sweep, "preset": preset, "variant": v, "seed": s, "status": "completed", "m": x, **extra}
        for v, xs in values.items()
        for s, x in enumerate(xs)
        if x is not None
    ]
    return pd.DataFrame(rows)


def test_difference_spread_uses_same_seed_differences_where_there_are_pairs():
    # b - a per seed: 0.01, 0.03, 0.02 -> sd 0.01, whatever the shared seed offsets (0, 0.5, -0.3)
    t = _table({"a": [0.30, 0.80, 0.00], "b": [0.31, 0.83, 0.02]})
    s = difference_spread(t, "m")
    assert s.method == "paired" and s.sd == pytest.approx(0.01)
    assert (s.runs, s.pairs, s.differences, s.groups) == (6, 1, 3, 1)
    assert "3 same-seed differences" in s.describe()


def test_paired_spread_of_a_complete_design_is_twice_the_additive_models_residual_variance():
    rng = np.random.default_rng(0)
    v, k = 5, 4
    x = rng.normal(size=(v, k)) + 3 * rng.normal(size=k)[None]
    t = _table({str(i): list(x[i]) for i in range(v)})
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    expected = math.sqrt(2 * (resid**2).sum() / ((v - 1) * (k - 1)))
    assert difference_spread(t, "m").sd == pytest.approx(expected)
    # a second sweep pools in by residual degrees of freedom, not once per variant pair
    y = rng.normal(size=(2, k)) * 2
    both = pd.concat([t, _table({"p": list(y[0]), "q": list(y[1])}, sweep="t")])
    d = y[1] - y[0]
    var_y = d.var(ddof=1)
    pooled = math.sqrt((expected**2 * (v - 1) * (k - 1) + var_y * (k - 1)) / ((v - 1) * (k - 1) + k - 1))
    assert difference_spread(both, "m").sd == pytest.approx(pooled)


def test_difference_spread_falls_back_to_sqrt2_times_the_pooled_within_variant_sd():
    # no seed shared by two variants: within-variant sds 0.01 (a) and 0.02 (b), 1 df each
    r2 = math.sqrt(2)
    t = _table({"a": [0.30, 0.30 + 0.01 * r2, None, None], "b": [None, None, 0.50, 0.50 + 0.02 * r2]})
    s = difference_spread(t, "m")
    assert s.method == "pooled"
    assert s.sd == pytest.approx(math.sqrt(2) * math.sqrt((0.01**2 + 0.02**2) / 2))
    assert (s.runs, s.variants) == (4, 2)


def test_difference_spread_counts_completed_runs_of_the_preset_once():
    t = _table({"a": [0.30, 0.32], "b": [0.40, None]})
    # an adopted copy (reused_from) and a repeated configuration (config_hash) add nothing
    t["config_hash"] = ["h0", "h1", "h2"]
    t["reused_from"] = ""
    copy = t.iloc[[0, 1]].assign(sweep="other", reused_from="../x")
    repeat = t.iloc[[1]].assign(sweep="third", m=0.9)
    failed = t.iloc[[0]].assign(status="failed", m=5.0, config_hash="h9")
    other_preset = _table({"a": [1.0, 2.0]}, preset="small")
    s = difference_spread(pd.concat([t, copy, repeat, failed, other_preset]), "m", preset="tiny")
    assert s.method == "pooled" and s.sd == pytest.approx(0.02)  # sqrt(2) x the sd of 0.30, 0.32
    assert s.runs == 2
    # nothing to estimate from: one seed per variant, an unknown metric
    assert difference_spread(_table({"a": [0.3], "b": [0.4]}), "m") is None
    assert difference_spread(t, "probe/none/top1") is None
    assert difference_spread(t, "m", preset="vitl16") is None
