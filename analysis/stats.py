"""The seed-noise test the tables use: a difference is beyond seed noise when it lies outside its two-sided
95 % Student t interval, ``|difference| > t95(df) * standard error``.

With 3 seeds a plain "twice the standard error" rule calls a noise-only difference real 18 % of the time
(a paired difference has 2 degrees of freedom, and t with 2 exceeds 2 with probability 0.18); the t quantile
keeps that at 5 %.

A metric counted over a finite set (a top-1 accuracy over 300 clips moves in steps of 1/300) cannot show a
spread below its step: two seeds whose differences are the same multiple of the step have a sample spread of
0, which alone would call any difference real. So the standard error of a mean of n paired differences is
never taken below the rounding's own, ``q / sqrt(6 n)`` for a step ``q`` (each value carries a rounding
error uniform over one step, variance q^2 / 12, a difference two of them), with ``q`` the metric's
``resolution``: the smallest gap between its distinct values.
"""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95 % quantiles of Student's t (textbook values) for 1-30 degrees of freedom, then 40, 60, 120.
_T95 = {
    **dict(enumerate([12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228], start=1)),
    **dict(enumerate([2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086], start=11)),
    **dict(enumerate([2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042], start=21)),
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t95(df: float) -> float:
    """The two-sided 95 % t quantile for ``df`` degrees of freedom, rounded down to a tabulated df (so never
    below the exact value); NaN for df < 1."""
    if not df >= 1:
        return math.nan
    return _T95[max(k for k in _T95 if k <= df)]


def resolution(values) -> float:
    """The step of a metric: the smallest positive gap between its distinct values (at least the step for a
    count over n samples, 1/n; tiny for a continuous metric); 0 where fewer than two distinct values."""
    v = np.unique(np.asarray(values, float)[np.isfinite(np.asarray(values, float))])
    return float(np.diff(v).min()) if len(v) > 1 else 0.0


def settle(x: float, values) -> float:
    """``x``, computed from ``values`` (a mean, a spread), without the summation's float noise: rounded 12
    significant digits below the largest of ``values``. Two variants with the same seed values in another
    order, or paired differences +q and -q, then give exactly equal means or exactly 0 (unrounded, 1e-16
    apart: a tie read as a ranking, no change read as a change)."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v)]
    scale = float(v.max()) if len(v) else 0.0
    if not math.isfinite(x) or scale <= 0:
        return float(x)
    return float(round(x, 11 - math.floor(math.log10(scale))))


def mean_and_se(differences, step: float = 0.0) -> tuple[float, float]:
    """Mean of paired differences (``settle``d) and its standard error (NaN for fewer than 2), the latter at
    least the rounding's ``step / sqrt(6 n)`` for a metric of resolution ``step`` (module docstring)."""
    d = np.asarray(differences, float)
    mean = settle(float(d.mean()), d)
    if len(d) < 2:
        return mean, math.nan
    se = settle(float(d.std(ddof=1) / math.sqrt(len(d))), d)
    return mean, max(se, step / math.sqrt(6 * len(d)))


def welch_df(se_a: float, n_a: int, se_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two means with standard errors ``se_a``,
    ``se_b`` from ``n_a``, ``n_b`` values (each n >= 2); NaN where both standard errors are 0."""
    va, vb = se_a**2, se_b**2
    denominator = va**2 / (n_a - 1) + vb**2 / (n_b - 1)
    return (va + vb) ** 2 / denominator if denominator > 0 else math.nan


def beyond_noise(difference: float, se: float, df: float) -> bool:
    """Whether ``difference`` lies outside its 95 % t interval; False where the spread is unknown (NaN)."""
    if not math.isfinite(se):
        return False
    if se == 0:
        return difference != 0
    return abs(difference) > t95(df) * se
