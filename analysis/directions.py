"""Does each ingredient move the results the way the paper says?

A paper table's ``directions`` (``analysis.paper``) name what its ingredients do: (name, from row, to row),
e.g. Table 1's "+ context loss" (V-JEPA 2 -> + context loss) or Table 2's "warm-up at lambda 0.5". For each
direction whose two rows both have a variant in the sweep, and each (paper metric, toolkit metric) pair of
``ablations.COMPARE``, ``directions`` gives:

* ``paper_change``: the paper's to-row minus from-row, and ``change``: ours, the mean over the seeds that
  both variants completed of (to-variant minus from-variant), **paired by seed** (same seed = same
  initialisation and data order), with ``se`` the standard error of that mean (NaN for one seed) and ``p``
  its two-sided paired t p-value (n - 1 degrees of freedom, ``analysis.stats``);
* ``crossing_seeds``: the seeds (space-separated, empty for none) whose pair crosses numerics: its two runs
  have different numerics keys (``analysis.numerics``: the recorded numerics id, or for runs made before it
  was recorded the code version), so the pair measures a change of code as well as the ingredient's. Such a
  pair stays in ``change`` and the report flags it;
* ``verdict``: ``holds`` (same sign, beyond seed noise), ``reversed`` (opposite sign, beyond it),
  ``same sign, within noise`` / ``opposite sign, within noise``, ``same sign, one seed`` /
  ``opposite sign, one seed`` (no spread), ``ours: no change`` (exactly equal, e.g. a tied accuracy), or,
  where the paper's two rows are equal, ``paper: no change``. Alone, beyond seed noise is ``p`` below 5 %.

``correct`` then decides over a family, all the rows of one paper source (``paper_source``) across the
report, the set the report tallies: ``p_holm`` is Holm's adjusted p over the family's tests and beyond seed
noise becomes ``p_holm`` below 5 % (a row beyond noise alone but not after it reads ``... sign, within noise
after Holm``), so the chance of any false holds / reversed among a source's tally is at most 5 %. Rows on a
metric without range (``analysis.ranges``) are left out of the family and read ``same sign, no range`` /
``opposite sign, no range``.

Signs are as printed (a lower NYU RMSE is a negative change); ``better`` says whether our change goes the
better way for the toolkit metric, so a verdict never mixes the two directions of "better".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.ablations import COMPARE, lower_is_better
from analysis.numerics import crossing_pairs
from analysis.paper import METRICS, Table
from analysis.stats import ALPHA, holm, mean_and_se, p_value, resolution

DIRECTION_COLUMNS = (
    "direction from_variant to_variant paper_metric metric paper_change change se n p p_holm better verdict "
    "crossing_seeds"
).split()


def paper_source(table: Table) -> str:
    """The publication a table is from (its tables together): the family ``correct`` and the report's
    tallies take together."""
    return table.source.split(", Table")[0]


def _variant_of(stats: pd.DataFrame) -> dict[str, str]:
    """Paper row -> the one variant that stands for it (rows with several variants are left out)."""
    pairs = stats[["variant", "paper_row"]].drop_duplicates()
    # .loc with a bool Series: an empty one (no completed run yet) must select no rows, not no columns
    pairs = pairs.loc[pairs["paper_row"].map(lambda r: isinstance(r, str)).astype(bool)]
    counts = pairs["paper_row"].value_counts()
    return {r: v for v, r in zip(pairs["variant"], pairs["paper_row"], strict=True) if counts[r] == 1}


def paired_differences(runs: pd.DataFrame, metric: str, a: str, b: str) -> np.ndarray:
    """Per seed completed by both variants (and with a value of ``metric``): metric of b minus metric of a.
    Runs of one seed share the initialisation and data order, so the pairs cancel what a seed changes."""
    done = runs[runs["status"] == "completed"]
    by_seed = [done[done["variant"] == v].groupby("seed")[metric].mean().dropna() for v in (a, b)]
    seeds = by_seed[0].index.intersection(by_seed[1].index)
    return (by_seed[1][seeds] - by_seed[0][seeds]).to_numpy(float)


def crossing_seeds(runs: pd.DataFrame, metric: str, a: str, b: str) -> list[int]:
    """The seeds of ``paired_differences``'s pairs (both variants completed, with a value of ``metric``)
    whose runs do not share a numerics key (``analysis.numerics.crossing_pairs``). Sorted."""
    if metric not in runs.columns:
        return []
    return crossing_pairs(runs[runs[metric].notna()], a, b, metric)


def seeds_text(seeds) -> str:
    """Seeds as a table cell: "0 2", "" for none (like the statistics' ``seeds``)."""
    return " ".join(str(int(s)) for s in seeds)


def _verdict(
    paper_change: float,
    change: float,
    se: float,
    n: int,
    toolkit_lower_better: bool,
    paper_higher_better: bool,
    p: float | None = None,
    has_range: bool | None = None,
) -> str:
    """A row's verdict (see the module). ``p``: the p-value that decides beyond seed noise, the row's
    Holm-adjusted one (NaN: not in a family); None: its own, uncorrected. ``has_range`` False: no range."""
    if paper_change == 0:
        return "paper: no change"
    if change == 0:
        return "ours: no change"
    paper_better = (paper_change > 0) == paper_higher_better
    ours_better = (change > 0) != toolkit_lower_better
    sign = "same" if paper_better == ours_better else "opposite"
    if not math.isfinite(se):
        return f"{sign} sign, one seed"
    if has_range is False:
        return f"{sign} sign, no range"
    alone = p_value(change, se, n - 1)
    if (alone if p is None else p) < ALPHA:
        return "holds" if sign == "same" else "reversed"
    return f"{sign} sign, within noise" + (" after Holm" if p is not None and alone < ALPHA else "")


def verdict_class(row) -> str:
    """The class of one ``directions`` row, as the findings and the verdict comparison count it: ``one seed``
    (fewer than 2 paired seeds: no spread, whatever the verdict says of the one difference), ``holds``,
    ``reversed``, ``no range``, else ``cannot tell``."""
    n = int(row["n"]) if pd.notna(row["n"]) else 0
    if n < 2:
        return "one seed"
    verdict = str(row["verdict"])
    if verdict in ("holds", "reversed"):
        return verdict
    return "no range" if verdict.endswith("no range") else "cannot tell"


def directions(runs: pd.DataFrame, stats: pd.DataFrame, table: Table | None) -> pd.DataFrame:
    """One row per (direction, paper metric, toolkit metric) that the sweep can answer; see the module."""
    if table is None:
        return pd.DataFrame(columns=DIRECTION_COLUMNS)
    variant = _variant_of(stats)
    measured = set(stats["metric"])
    rows = []
    for name, row_a, row_b in table.directions:
        if row_a not in variant or row_b not in variant:
            continue
        a, b = variant[row_a], variant[row_b]
        for pm in table.metrics:
            pa, pb = table.value(row_a, pm), table.value(row_b, pm)
            if pa is None or pb is None:
                continue
            for metric in (t for t in COMPARE.get(pm, ()) if t in measured):
                d = paired_differences(runs, metric, a, b)
                if len(d) == 0:
                    continue
                change, se = mean_and_se(d, resolution(runs[metric]))
                low = lower_is_better(metric)
                rows.append(
                    {
                        "direction": name,
                        "from_variant": a,
                        "to_variant": b,
                        "paper_metric": pm,
                        "metric": metric,
                        "paper_change": round(pb - pa, 6),
                        "change": change,
                        "se": se,
                        "n": len(d),
                        "p": p_value(change, se, len(d) - 1),
                        "p_holm": math.nan,
                        "better": (change > 0) != low if change != 0 else False,
                        "verdict": _verdict(
                            round(pb - pa, 6), change, se, len(d), low, METRICS[pm].higher_is_better
                        ),
                        "crossing_seeds": seeds_text(crossing_seeds(runs, metric, a, b)),
                    }
                )
    return pd.DataFrame(rows, columns=DIRECTION_COLUMNS)


def correct(family: list[pd.DataFrame], ranges: list[dict[str, dict]]) -> list[pd.DataFrame]:
    """``family``: the ``directions`` of the sweeps of one paper source, ``ranges``: each sweep's
    ``analysis.ranges.probe_range`` per metric. Returns them with ``p_holm`` (Holm over the rows that can
    hold or reverse: a paper change, a p-value, a metric not without range) and the verdicts it decides."""

    def tested(d: pd.DataFrame, r: dict[str, dict]) -> pd.Series:
        has = d["metric"].map(lambda m: r.get(m, {}).get("has_range") is not False)
        return has.astype(bool) & (d["paper_change"] != 0) & d["p"].notna()

    masks = [tested(d, r) for d, r in zip(family, ranges, strict=True)]
    p = [d.loc[m, "p"].to_numpy(float) for d, m in zip(family, masks, strict=True)]
    adjusted = holm(np.concatenate(p)) if p else np.array([])
    out, start = [], 0
    for d, r, m in zip(family, ranges, masks, strict=True):
        d = d.copy()
        d["p_holm"] = math.nan
        d.loc[m, "p_holm"] = adjusted[start : start + int(m.sum())]
        start += int(m.sum())
        d["verdict"] = [
            _verdict(
                row["paper_change"],
                row["change"],
                row["se"],
                row["n"],
                lower_is_better(row["metric"]),
                METRICS[row["paper_metric"]].higher_is_better,
                row["p_holm"],
                r.get(row["metric"], {}).get("has_range"),
            )
            for row in d.to_dict("records")
        ]
        out.append(d)
    return out


def _completed_variants(stats: pd.DataFrame) -> set[str]:
    """Variants with a value of some metric, i.e. at least one completed run."""
    return set(stats.loc[stats["n"] > 0, "variant"])


def unanswered(
    stats: pd.DataFrame, table: Table | None, grid_rows: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """The table's directions this sweep gives no pair of completed variants for, in two lists:

    * ``pending``: each of the two paper rows has a variant, but one of them has no completed run yet (its
      runs exist and are running, failed, ...: rows of ``stats`` with ``n`` 0 on every metric, such as
      ``tables._pending_stats`` gives), or has no run at all yet but is one of the sweep's ``grid_rows``
      (``Ablation.grid_rows``);
    * ``not_run``: a paper row has no variant at all and the sweep does not train it (e.g. Table 1's
      "+ ViT-G").

    ``stats``: one row or more per variant (``variant``, ``paper_row``, ``n``), pending variants included.
    """
    variant, completed = _variant_of(stats), _completed_variants(stats)
    pending, never = [], []
    for name, a, b in table.directions if table else ():
        if any(r not in variant and r not in grid_rows for r in (a, b)):
            never.append(name)
        elif not all(r in variant and variant[r] in completed for r in (a, b)):
            pending.append(name)
    return pending, never
