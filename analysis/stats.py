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

Many tests at 5 % each call about 5 % of the noise-only differences real. Where the report tallies a family
of tests (the ingredients of one paper source, the leads of one table), each test's ``p_value`` is adjusted
by ``holm`` and a difference is called beyond noise where the adjusted p is below ``ALPHA``: the chance of
any false call in the family is then at most 5 %, with no assumption on how the tests depend on each other
(metrics of the same runs are correlated; Benjamini-Hochberg would assume positive dependence).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05  # each test's level; with ``holm``, the chance of any false call in a family


def t95(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (exact, fractional df such
    as Welch's included; scipy); NaN for df < 1 or NaN."""
    if not df >= 1:
        return math.nan
    return float(stats.t.ppf(1 - ALPHA / 2, df))


def p_value(mean: float, se: float, df: float) -> float:
    """Two-sided p-value of a mean (difference) ``mean`` with standard error ``se`` against 0, Student's t
    with ``df`` degrees of freedom: ``P(|T| >= |mean| / se)``. With ``se`` 0 (no spread at all): 0 for a
    nonzero mean, 1 for 0. NaN where the spread is unknown (``se`` NaN) or df < 1."""
    if not math.isfinite(se):
        return math.nan
    if se == 0:
        return 0.0 if mean != 0 else 1.0
    if not df >= 1:
        return math.nan
    return float(2 * stats.t.sf(abs(mean) / se, df))


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels ``multipletests(method="holm")``) of the finite
    entries of ``p``; NaN entries stay NaN and are not counted in the family. Calling every entry with an
    adjusted p below ``ALPHA`` keeps the chance of any false call in the family at most ``ALPHA``, whatever
    the dependence between the tests."""
    p = np.asarray(p, float)
    out = np.full(p.shape, math.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out


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
    """Whether ``difference`` lies outside its 95 % t interval (alone, uncorrected: ``p_value`` below
    ``ALPHA``); False where the spread is unknown (NaN)."""
    if not math.isfinite(se):
        return False
    if se == 0:
        return difference != 0
    return abs(difference) > t95(df) * se
