"""Statistical power of a paired comparison of two variants over seeds, before compute is spent.

The comparison: two variants of an ablation trained with the same n seeds, the per-seed difference
d_s = metric(variant B, seed s) - metric(variant A, seed s), and a two-sided paired t-test of mean(d) = 0 at
level ``alpha`` (n - 1 degrees of freedom). ``sd`` is the standard deviation of d_s over seeds (the seed noise
of the paired difference, not of one variant's metric). With a true mean difference ``effect`` the test
statistic follows a noncentral t distribution with n - 1 degrees of freedom and noncentrality
effect / sd * sqrt(n); the power is its probability beyond the two critical values +-t_{1-alpha/2, n-1}. This
is exact (no normal approximation), so it holds for the few seeds ablations run.

* ``power(effect, sd, n, alpha)``: the probability that the test rejects at a true difference ``effect``.
* ``minimum_detectable_effect(sd, n, alpha, power)``: the smallest true |difference| the test detects with
  that power (NaN for n < 2 or an unknown sd; 0 for sd = 0), in the metric's units (those of ``sd``).
* ``seeds_needed(effect, sd, alpha, power, max_seeds)``: the smallest n >= 2 whose power for ``effect``
  reaches ``power``; None where none up to ``max_seeds`` does (or the effect is 0, or sd unknown).
* ``difference_spread(results, metric, preset)``: the sd of a paired difference of ``metric`` estimated from
  recorded runs (a results table, as ``analysis.collect`` writes it): ``Spread``, which says how.

Statistics from scipy (and numpy); a results table is used through the pandas DataFrame methods only. No
other part of the toolkit is imported, so the sweeps (and anything else) can use this without ``analysis``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
POWER = 0.8


def _check(alpha: float, target: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} is not in (0, 1)")
    if target is not None and not 0 < target < 1:
        raise ValueError(f"power={target} is not in (0, 1)")


def _power_at(noncentrality, df, alpha: float):
    """Two-sided power of a t-test with ``df`` degrees of freedom at ``noncentrality`` (array-friendly)."""
    import numpy as np
    from scipy import stats

    crit = stats.t.ppf(1 - alpha / 2, df)
    # the lower tail as the upper tail of the mirrored distribution (scipy's nct.cdf far in the lower tail
    # can return NaN); it is at most alpha / 2 for a nonnegative noncentrality
    lower = np.nan_to_num(stats.nct.sf(crit, df, -np.asarray(noncentrality, dtype=float)), nan=0.0)
    return stats.nct.sf(crit, df, noncentrality) + lower


def power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that a two-sided paired t-test at level ``alpha`` on ``n`` seeds rejects no difference
    when the true mean difference is ``effect`` and the paired differences have standard deviation ``sd``.
    NaN for n < 2 (no test) or an unknown (NaN) input; for sd = 0, 1 where effect != 0 and ``alpha``
    otherwise."""
    _check(alpha)
    if n < 2 or math.isnan(effect) or math.isnan(sd):
        return math.nan
    if sd < 0:
        raise ValueError(f"sd={sd} is negative")
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    return float(_power_at(abs(effect) / sd * math.sqrt(n), n - 1, alpha))


def minimum_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference (>= 0, in the units of ``sd``) that a two-sided paired t-test at
    level ``alpha`` on ``n`` seeds detects with probability ``power``, the paired differences having standard
    deviation ``sd``: the noncentrality solving power(noncentrality) = ``power`` (noncentral t, brentq),
    times sd / sqrt(n). NaN for n < 2 or an unknown sd; 0 for sd = 0."""
    from scipy.optimize import brentq

    _check(alpha, power)
    if n < 2 or sd is None or math.isnan(sd):
        return math.nan
    if sd < 0:
        raise ValueError(f"sd={sd} is negative")
    if sd == 0:
        return 0.0
    df = n - 1
    if _power_at(0.0, df, alpha) >= power:  # power below alpha cannot be asked of a test
        return 0.0
    hi = 1.0
    while _power_at(hi, df, alpha) < power:
        hi *= 2
    delta = brentq(lambda d: _power_at(d, df, alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-12)
    return float(delta * sd / math.sqrt(n))


def seeds_needed(
    effect: float, sd: float, alpha: float = ALPHA, power: float = POWER, max_seeds: int = 1000
) -> int | None:
    """The smallest number of seeds n >= 2 at which a two-sided paired t-test at level ``alpha`` detects a
    true mean difference ``effect`` (its sign does not matter) with probability at least ``power``, the
    paired differences having standard deviation ``sd``. None where no n <= ``max_seeds`` does, where
    ``effect`` is 0 or either input is unknown (NaN). Power grows with n, so every n from the result up
    reaches ``power`` and n - 1 does not (or n = 2)."""
    import numpy as np

    _check(alpha, power)
    if math.isnan(effect) or math.isnan(sd) or effect == 0:
        return None
    if sd < 0:
        raise ValueError(f"sd={sd} is negative")
    if sd == 0:
        return 2
    n = np.arange(2, max(int(max_seeds), 2) + 1)
    reached = np.flatnonzero(_power_at(abs(effect) / sd * np.sqrt(n), n - 1, alpha) >= power)
    return int(n[reached[0]]) if reached.size else None


# ---- the sd of a paired difference, from recorded runs --------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """The per-seed standard deviation ``sd`` of a paired difference of ``metric`` between two variants.

    ``method``: ``"paired"`` (pooled over actual same-seed differences between the variants of one sweep:
    ``differences`` of them, in ``pairs`` variant pairs of ``groups`` sweeps) or ``"pooled"`` (sqrt(2) x the pooled within-variant
    standard deviation over ``variants`` variants with at least two seeds, as if the two variants' seeds
    were independent). ``runs``: the completed runs the estimate used."""

    metric: str
    sd: float
    method: str
    runs: int
    variants: int = 0
    pairs: int = 0
    differences: int = 0
    groups: int = 0

    def describe(self) -> str:
        if self.method == "paired":
            return (
                f"paired: {self.differences} same-seed differences of {self.pairs} variant pair(s) in "
                f"{self.groups} sweep(s), {self.runs} runs"
            )
        return f"sqrt(2) x within-variant sd: {self.variants} variants, {self.runs} runs"


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _variant_key(row) -> str:
    """A variant's identity across sweeps: its ``group_hash`` (the configuration without the seed) where the
    table has one, else ``<sweep>/<variant>``."""
    g = row.get("group_hash")
    if isinstance(g, str) and g:
        return g
    return f"{row.get('sweep')}/{row.get('variant')}"


def difference_spread(results, metric: str, preset: str | None = None) -> Spread | None:
    """The sd of a paired difference of ``metric`` from the completed runs (``status == "completed"``, a
    value of ``metric``) of ``results``, a pandas DataFrame with the columns ``sweep``, ``variant``,
    ``seed``, ``status`` and ``metric`` (optional: ``preset``, ``group_hash``, ``config_hash``,
    ``reused_from``), as ``analysis.collect`` writes them. ``preset``: only its runs (seed noise depends on
    the model and data, so variants of one preset are pooled, over all sweeps).

    * ``paired`` where some two variants of one (sweep, preset) group share at least two seeds: each such
      variant pair's per-seed differences give a sum of squares about their mean with (seeds - 1) degrees of
      freedom; a group's variance is their pooled variance (sums of squares / degrees of freedom) and the
      sd is the square root of the groups' variances averaged with weights (degrees of freedom) x 2 /
      (variants paired). For a complete seed x variant design a group's variance is twice the residual
      variance of an additive seed + variant model and its weight that model's residual degrees of freedom,
      (variants - 1) x (seeds - 1), so a sweep of many variants does not count once per pair. A variant
      pair (by ``group_hash``) met in several groups (shared points) counts in the first only.
    * ``pooled`` otherwise: sqrt(2) x the pooled within-variant sample sd over variants with at least two
      seeds; runs adopted from another sweep (``reused_from``) and repeated configurations (``config_hash``)
      count once.

    None where neither can be estimated (no variant with two seeds)."""
    rows = _completed_rows(results, metric, preset)
    if not rows:
        return None
    return _paired_spread(rows, metric) or _pooled_spread(rows, metric)


def _completed_rows(results, metric: str, preset: str | None) -> list[dict]:
    """The completed runs with a finite ``metric`` and seed (of ``preset``), as dicts with ``_variant``,
    ``_value`` and ``_seed``."""
    if metric not in results.columns or "status" not in results.columns:
        return []
    done = results[(results["status"] == "completed") & results[metric].notna()]
    if preset is not None and "preset" in done.columns:
        done = done[done["preset"].astype(str) == str(preset)]
    rows = [{**r, "_variant": _variant_key(r), "_value": float(r[metric])} for r in done.to_dict("records")]
    rows = [r for r in rows if math.isfinite(r["_value"]) and _finite(r.get("seed"))]
    for r in rows:
        r["_seed"] = int(float(r["seed"]))
    return rows


def _paired_spread(rows: list[dict], metric: str) -> Spread | None:
    """The ``paired`` estimate of ``difference_spread``: differences between the variants of one (sweep,
    preset) group, by seed; None where no two variants of a group share two seeds."""
    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in rows:
        table = groups.setdefault((r.get("sweep"), r.get("preset")), {})
        table.setdefault(r["_variant"], {}).setdefault(r["_seed"], r["_value"])
    claimed: set[tuple[str, str]] = set()  # variant pairs met in an earlier group (shared points)
    paired_runs: set[tuple[str, int]] = set()
    weighted = weights = 0.0
    n_groups = n_pairs = n_differences = 0
    for table in groups.values():
        ss = dof = 0.0
        involved: set[str] = set()
        variants = sorted(table)
        for i, a in enumerate(variants):
            for b in variants[i + 1 :]:
                seeds = sorted(set(table[a]) & set(table[b]))
                if len(seeds) < 2 or (a, b) in claimed:
                    continue
                claimed.add((a, b))
                d = [table[b][s] - table[a][s] for s in seeds]
                mean = sum(d) / len(d)
                ss += sum((x - mean) ** 2 for x in d)
                dof += len(d) - 1
                involved |= {a, b}
                paired_runs |= {(v, s) for v in (a, b) for s in seeds}
                n_pairs += 1
                n_differences += len(d)
        if dof > 0:
            weight = dof * 2 / len(involved)  # (variants - 1) x (seeds - 1) in a complete design
            weighted += weight * ss / dof
            weights += weight
            n_groups += 1
    if weights <= 0:
        return None
    counts = dict(runs=len(paired_runs), pairs=n_pairs, differences=n_differences, groups=n_groups)
    return Spread(metric, math.sqrt(weighted / weights), "paired", **counts)


def _pooled_spread(rows: list[dict], metric: str) -> Spread | None:
    """The ``pooled`` estimate of ``difference_spread``: sqrt(2) x the pooled within-variant sd, each
    configuration once (adopted copies and repeats left out); None without a variant of two seeds."""
    rows = sorted(rows, key=lambda r: bool(isinstance(r.get("reused_from"), str) and r.get("reused_from")))
    seen, per_variant = set(), {}
    for r in rows:
        reused = r.get("reused_from")
        if isinstance(reused, str) and reused:
            continue
        config = r.get("config_hash")
        key = config if isinstance(config, str) and config else (r["_variant"], r["_seed"])
        if key in seen:
            continue
        seen.add(key)
        per_variant.setdefault(r["_variant"], []).append(r["_value"])
    ss = dof = 0.0
    runs = variants = 0
    for values in per_variant.values():
        if len(values) < 2:
            continue
        mean = sum(values) / len(values)
        ss += sum((x - mean) ** 2 for x in values)
        dof += len(values) - 1
        runs += len(values)
        variants += 1
    if dof <= 0:
        return None
    return Spread(metric, math.sqrt(2) * math.sqrt(ss / dof), "pooled", runs=runs, variants=variants)
