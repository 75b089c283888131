"""Per-ablation statistics beside the paper's numbers, and whether the orderings agree.

``summarize(results)``: one ``Summary`` per (sweep, preset) group that has an ablation axis:

* ``stats`` (long): per variant and metric, ``mean`` and ``std`` (sample std, ddof 1) over the completed
  runs' values, ``n`` (completed runs with a value), ``n_incomplete`` and ``incomplete`` (runs of the
  variant that did not complete, by status: they are counted, never averaged in), ``seeds`` and the variant's
  ``paper_row``. A ``random init`` row holds the ``probe_random/...`` baselines (one value per seed).
* ``agreement``: per (paper metric, toolkit metric) pair of ``ablations.COMPARE``, over the variants that
  have both numbers: the paper's best row and the toolkit's best variant (by the metric's direction),
  whether they match (where variants tie at the top, ``tied_with`` names the others and the paper's best
  among them is ours), Kendall's tau-b between the two orderings, both margins (best minus runner-up), whether
  the best leads the runner-up beyond seed noise (``p``, see ``lead_p_value``: paired by seed like the
  directions and the random-init comparisons, Welch's unpaired test only where fewer than two seeds pair,
  ``noise_test`` says which; never where the best or the runner-up has a single seed, named in
  ``single_seed``; ``p_holm`` and ``resolved``: Holm-corrected over the table's pairs, metrics without
  range left out), ``crossing_seeds`` (the paired seeds whose two runs cross numerics, see below), the
  ``ordering`` of the means: ``agrees`` (same best and tau > 0), ``disagrees`` (other best and tau <= 0),
  else ``partly agrees``; and the ``verdict``: that ordering only where the lead is resolved, ``cannot tell``
  where it is within seed noise (or untested: one seed), ``no range`` where the metric has none.
* ``directions``: each ingredient the paper reports a change for, our change beside it, paired by seed
  (``analysis.directions``), its verdict corrected over the paper source's rows across the groups.
* ``ranges``: per probe metric, whether it has range (``analysis.ranges.probe_range``).
* ``versus_random``: per variant, how it stands against the random-init encoder, paired by seed
  (``versus_random_crossings``: the seeds where that number came from a run of other numerics).
* ``numerics_note`` and ``numerics_keys``: the group's numerics (``analysis.numerics``): its completed
  runs' distinct keys (recorded numerics ids, or code versions for runs made before they were recorded) and,
  where there are several, the sentence that flags it.

Pairs by seed assume both runs computed with the same numerics. A pair whose runs differ in numerics key
(the same configuration may give other numbers under other code) is kept in the paired difference, as the
committed reproduction has many, and flagged: ``crossing_seeds`` in ``directions`` and ``agreement``,
``crossing_seeds`` of ``ranges``, ``versus_random_crossings``.

``analysis.tables`` writes a summary as Markdown, CSV and LaTeX and turns it into sentences.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from analysis.ablations import (
    COMPARE,
    PROBE_METADATA,
    Ablation,
    ablation_for,
    lower_is_better,
    probe_modality,
    sort_variants,
    untrained_modality,
)
from analysis.directions import (
    correct,
    crossing_seeds,
    directions,
    paired_differences,
    paper_source,
    seeds_text,
)
from analysis.numerics import numerics_key, numerics_note
from analysis.paper import METRICS, TABLES, Table
from analysis.ranges import crossing_random, probe_range, random_source
from analysis.stats import ALPHA, beyond_noise, holm, mean_and_se, p_value, resolution, settle, welch_df

RANDOM = "random init"
HEADLINE = re.compile(r"probe/[^/]+/[^/]+")


def group_stem(sweep: str, preset: str) -> str:
    """File name stem of a (sweep, preset) group's tables, figures and arrays."""
    return f"{sweep}-{preset}" if preset else sweep


@dataclass
class Summary:
    sweep: str
    preset: str
    axis: str
    ablation: Ablation
    runs: pd.DataFrame  # every run of the group, any status
    stats: pd.DataFrame
    agreement: pd.DataFrame
    metrics: list[str]
    variants: list[str]
    left_out: dict[str, int]  # modality -> runs whose probes of it were left out (untrained tokenizer)
    directions: pd.DataFrame  # each ingredient's change, ours vs. the paper's (analysis.directions)
    ranges: dict[str, dict]  # probe metric -> analysis.ranges.probe_range
    numerics_note: str | None = None  # analysis.numerics.numerics_note: None for one numerics
    numerics_keys: list[str] = field(default_factory=list)  # the completed runs' numerics keys, sorted

    def has_range(self, metric: str) -> bool | None:
        """``probe_range``'s verdict for ``metric``: False where it has no range, None where unknown."""
        return self.ranges.get(metric, {}).get("has_range")

    @property
    def stem(self) -> str:
        return group_stem(self.sweep, self.preset)

    @property
    def title(self) -> str:
        return f"{self.sweep} (preset={self.preset})" if self.preset else self.sweep

    @property
    def table(self) -> Table | None:
        return TABLES.get(self.ablation.table) if self.ablation.table else None

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.runs["seed"].dropna().unique())

    @property
    def not_started(self) -> list[tuple[str, int]]:
        """(variant, seed) of the variants with runs and the seeds any run used that have no run directory
        (a sweep stopped before it launched them): a table's n and 'not completed' cannot show them."""
        seeded = self.runs[self.runs["seed"].notna()]
        have = set(zip(seeded["variant"], seeded["seed"].astype(int)))
        return [(v, seed) for v in self.variants for seed in self.seeds if (v, seed) not in have]

    @property
    def command(self) -> str:
        return str(self.runs["command"].iloc[0])

    @property
    def pending(self) -> pd.DataFrame:
        """One stats row (``_pending_stats``) per variant none of whose runs has completed and which has no
        row in ``stats`` (which holds every variant once any run of the sweep has a metric)."""
        listed = set(self.stats["variant"])
        frames = [
            _pending_stats(self.runs[self.runs["variant"] == v], v, self.ablation)
            for v in self.variants
            if v not in listed
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=STATS_COLUMNS)

    @property
    def stats_with_pending(self) -> pd.DataFrame:
        """``stats`` and ``pending`` together: a row for every variant."""
        frames = [f for f in (self.stats, self.pending) if not f.empty]  # concat warns on empty frames
        return pd.concat(frames, ignore_index=True) if frames else self.stats


# ---- statistics -----------------------------------------------------------------------------------------
def headline_metrics(runs: pd.DataFrame, ablation: Ablation) -> list[str]:
    """Compared toolkit metrics first (in the paper table's order), then other probe scores, then the loss."""
    table = TABLES.get(ablation.table) if ablation.table else None
    compared = [t for m in (table.metrics if table else []) for t in COMPARE.get(m, ())]
    others = sorted(
        c for c in runs.columns if HEADLINE.fullmatch(c) and c.rsplit("/", 1)[-1] not in PROBE_METADATA
    )
    metrics = list(dict.fromkeys(compared + others + ["loss_final"]))
    return [m for m in metrics if m in runs.columns and runs[m].notna().any()]


def without_untrained_probes(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``runs`` with the probe scores of each run's untrained modality (``ablations.untrained_modality``)
    blanked (which modality each task reads: ``ablations.probe_modality``), and how many runs that touched
    per modality."""
    runs, left_out = runs.copy(), {}
    for i, row in zip(runs.index, runs.to_dict("records"), strict=True):
        modality = untrained_modality(row.get("config/model.tokenizer"), row.get("config/data.mix"))
        columns = [c for c in runs.columns if modality and probe_modality(c, row) == modality]
        if columns and runs.loc[i, columns].notna().any():
            runs.loc[i, columns] = math.nan
            left_out[modality] = left_out.get(modality, 0) + 1
    return runs, left_out


def _moments(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna().astype(float)
    n = len(values)
    mean = settle(float(values.mean()), values) if n else math.nan
    return mean, settle(float(values.std(ddof=1)), values) if n > 1 else math.nan, n


STATS_COLUMNS = "variant paper_row metric mean std n n_incomplete incomplete seeds".split()


def _stat(variant, paper_row, metric: str, runs: pd.DataFrame, column: str, bad: pd.Series) -> tuple:
    mean, std, n = _moments(runs[column])
    seeds = " ".join(str(int(s)) for s in sorted(runs.loc[runs[column].notna(), "seed"]))
    return (variant, paper_row, metric, mean, std, n, int(bad.sum()), _incomplete(bad), seeds)


def _incomplete(bad: pd.Series) -> str:
    return ", ".join(f"{k} {s}" for s, k in bad.items())


def _paper_row(group: pd.DataFrame, ablation: Ablation) -> str | None:
    """The paper row most of a variant's runs stand for."""
    paper_rows = [ablation.paper_row(r) for r in group.to_dict("records")]
    return max(set(paper_rows), key=paper_rows.count) if any(paper_rows) else None


def _not_completed(group: pd.DataFrame) -> pd.Series:
    """Runs per status other than completed, by status name."""
    return group[group["status"] != "completed"]["status"].value_counts().sort_index()


def _pending_stats(group: pd.DataFrame, variant: str, ablation: Ablation) -> pd.DataFrame:
    """A variant's one stats row while none of its runs has completed: no metric, what its runs are doing."""
    bad = _not_completed(group)
    row = (
        variant,
        _paper_row(group, ablation),
        "",
        math.nan,
        math.nan,
        0,
        int(bad.sum()),
        _incomplete(bad),
        "",
    )
    return pd.DataFrame([row], columns=STATS_COLUMNS)


def variant_stats(runs: pd.DataFrame, ablation: Ablation, metrics: list[str]) -> pd.DataFrame:
    done = runs[runs["status"] == "completed"]
    rows = []
    for variant in sort_variants(runs["variant"], ablation):
        group = runs[runs["variant"] == variant]
        ok = done[done["variant"] == variant]
        paper_row, bad = _paper_row(group, ablation), _not_completed(group)
        rows += [_stat(variant, paper_row, m, ok, m, bad) for m in metrics]
    none = pd.Series(dtype=int)
    for metric in metrics:
        rand = "probe_random/" + metric.removeprefix("probe/")
        if metric.startswith("probe/") and rand in done.columns and done[rand].notna().any():
            rows.append(_stat(RANDOM, None, metric, random_source(runs, ablation, rand), rand, none))
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two equally long sequences (ties allowed: a pair tied in either counts neither way,
    and the denominator is sqrt of the untied pairs of each, ``scipy.stats.kendalltau``'s default); NaN
    when either is all ties or shorter than 2."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    # settled: scipy's float noise (0.39999999999999997 for 0.4) would reach the CSV tables
    return settle(float(kendalltau(a, b).statistic), [1.0]) if len(a) >= 2 else math.nan


def lead_p_value(
    runs: pd.DataFrame, metric: str, best: pd.Series, second: pd.Series, sign: int
) -> tuple[float, str]:
    """The two-sided p-value of ``best``'s lead over ``second`` (their stats rows) on ``metric``, and the
    test that gave it: ``"paired"``, ``"Welch"`` or ``""`` (none possible: p NaN). p is 1 where the test's
    mean does not favour ``best`` (no lead to call beyond noise).

    Paired by seed where at least two completed seeds have both (the same test as ``analysis.directions``
    and ``versus_random``): the mean of ``sign * (best - second)`` per seed, Student t with n - 1 degrees of
    freedom. Where fewer than two seeds pair (the variants ran different seeds), Welch's unpaired test on
    each variant's values, which needs two values of each. ``sign``: -1 for a lower-is-better metric.
    ``agreement`` corrects the p-values of one table together (Holm)."""
    d = sign * paired_differences(runs, metric, second["variant"], best["variant"])
    step = resolution(runs[metric])
    if len(d) >= 2:
        mean, se = mean_and_se(d, step)
        return (p_value(mean, se, len(d) - 1) if mean > 0 else 1.0), "paired"
    if best["n"] < 2 or second["n"] < 2:
        return math.nan, ""
    # each mean's standard error at least its values' rounding (analysis.stats): step / sqrt(12 n)
    se = [max(r["std"] / math.sqrt(r["n"]), step / math.sqrt(12 * r["n"])) for r in (best, second)]
    margin = sign * (best["mean"] - second["mean"])
    df = welch_df(se[0], best["n"], se[1], second["n"])
    return (p_value(margin, math.hypot(*se), df) if margin > 0 else 1.0), "Welch"


def _compare(runs: pd.DataFrame, stats: pd.DataFrame, table: Table, paper_metric: str, metric: str) -> dict:
    rows = stats[(stats["metric"] == metric) & (stats["variant"] != RANDOM) & stats["mean"].notna()]
    rows = rows.assign(paper=[table.value(r, paper_metric) if text(r) else None for r in rows["paper_row"]])
    rows = rows[rows["paper"].notna()]
    out = {"paper_metric": paper_metric, "metric": metric, "variants": len(rows)}
    if len(rows) < 2:
        return {**out, "verdict": f"not comparable ({len(rows)} variant(s) with both numbers)"}
    p_sign = 1 if METRICS[paper_metric].higher_is_better else -1
    t_sign = -1 if lower_is_better(metric) else 1
    paper, ours = rows["paper"].to_numpy(float) * p_sign, rows["mean"].to_numpy(float) * t_sign
    paper_best = sorted(set(rows["paper_row"][paper == paper.max()]))
    order = np.argsort(-ours, kind="stable")
    # variants tied at the top (means are settled, so a tie is exact): the paper's best among them leads,
    # so the naming order of the variants cannot decide whether the best agrees
    top = [i for i in order if ours[i] == ours[order[0]]]
    order = [*sorted(top, key=lambda i: rows["paper_row"].iloc[i] not in paper_best), *order[len(top) :]]
    best, second = rows.iloc[order[0]], rows.iloc[order[1]]
    paper_sorted = np.sort(np.unique(paper))[::-1]
    margin = (best["mean"] - second["mean"]) * t_sign
    p, noise_test = lead_p_value(runs, metric, best, second, t_sign)
    tau = kendall_tau(paper, ours)
    agrees = best["paper_row"] in paper_best
    if not math.isfinite(tau):
        ordering = "no ordering (all tied)"
    else:
        ordering = (
            "agrees" if agrees and tau > 0 else "disagrees" if not agrees and tau <= 0 else "partly agrees"
        )
    return {
        **out,
        "paper_best": " / ".join(paper_best),
        "best": best["variant"],
        "best_row": best["paper_row"],
        "tied_with": " and ".join(str(rows["variant"].iloc[i]) for i in order[1 : len(top)]),
        "best_agrees": agrees,
        "tau": tau,
        "paper_margin": float(paper_sorted[0] - paper_sorted[1]) if len(paper_sorted) > 1 else 0.0,
        "margin": float(margin),
        "p": p,
        "resolved": False,  # set by ``agreement`` after Holm's correction
        "noise_test": noise_test,
        "crossing_seeds": seeds_text(
            crossing_seeds(runs, metric, second["variant"], best["variant"]) if noise_test == "paired" else []
        ),
        "min_n": int(rows["n"].min()),
        "single_seed": " and ".join(r["variant"] for r in (best, second) if r["n"] < 2),
        "ordering": ordering,
        "verdict": ordering,  # until ``agreement`` knows whether the lead is beyond seed noise
    }


AGREEMENT_COLUMNS = (
    "paper_metric metric variants paper_best best best_row tied_with best_agrees tau paper_margin margin p p_holm resolved "
    "noise_test crossing_seeds min_n single_seed ordering verdict"
).split()


def agreement(
    runs: pd.DataFrame, stats: pd.DataFrame, ablation: Ablation, ranges: dict[str, dict] | None = None
) -> pd.DataFrame:
    """One row per (paper metric, toolkit metric) pair (see the module); ``runs``: the group's runs, for
    the per-seed values ``lead_p_value`` pairs. The leads' p-values are corrected together (Holm over the
    rows with a test whose metric is not without range, ``ranges``: ``probe_range`` per metric):
    ``resolved`` where ``p_holm`` is below 5 %; the ``verdict`` follows from it (see the module)."""
    table = TABLES.get(ablation.table) if ablation.table else None
    pairs = [
        (m, t)
        for m in (table.metrics if table else [])
        for t in COMPARE.get(m, ())
        if t in set(stats["metric"])
    ]
    out = pd.DataFrame([_compare(runs, stats, table, m, t) for m, t in pairs], columns=AGREEMENT_COLUMNS)
    ranged = out["metric"].map(lambda m: (ranges or {}).get(m, {}).get("has_range") is not False)
    out["p_holm"] = holm(out["p"].where(ranged.astype(bool)).to_numpy(float))
    out["resolved"] = (out["p_holm"] < ALPHA).astype(bool)
    compared = (out["variants"] >= 2) & ~out["ordering"].astype(str).str.startswith("no ordering")
    out["verdict"] = out["verdict"].where(~compared, out["ordering"].where(out["resolved"], "cannot tell"))
    out["verdict"] = out["verdict"].where(~compared | ranged.astype(bool), "no range")
    return out


def summarize(results: pd.DataFrame) -> list[Summary]:
    """One summary per (sweep, preset) group with an axis, sorted by sweep and preset. The ingredients'
    verdicts are corrected over each paper source's rows across the groups (``directions.correct``)."""
    out = []
    for (sweep, preset), runs in results.groupby(["sweep", "preset"], sort=True):
        axis = str(runs["axis"].iloc[0])
        if not axis:
            continue
        ablation = ablation_for(sweep)
        runs, left_out = without_untrained_probes(runs)
        metrics = headline_metrics(runs, ablation)
        stats = variant_stats(runs, ablation, metrics)
        table = TABLES.get(ablation.table) if ablation.table else None
        ranges = {m: probe_range(runs, m, ablation) for m in metrics if m.startswith("probe/")}
        done = runs[runs["status"] == "completed"]
        out.append(
            Summary(
                sweep,
                preset,
                axis,
                ablation,
                runs,
                stats,
                agreement(runs, stats, ablation, ranges),
                metrics,
                sort_variants(runs["variant"], ablation),
                left_out,
                directions(runs, stats, table),
                ranges,
                numerics_note(runs),
                sorted(set(numerics_key(done))),
            )
        )
    families: dict[str, list[Summary]] = {}
    for s in out:
        if s.table is not None:
            families.setdefault(paper_source(s.table), []).append(s)
    for family in families.values():
        corrected = correct([s.directions for s in family], [s.ranges for s in family])
        for s, d in zip(family, corrected, strict=True):
            s.directions = d
    return out


def versus_random(s: Summary, metric: str) -> dict[str, str]:
    """Per variant, how it compares with the random-init encoder on ``metric``, paired by seed (the same
    seed's random-init number): ``better`` / ``worse`` beyond seed noise (95 % t interval), ``above`` /
    ``below`` (the better / worse side) within it, or ``one seed`` (no spread). Empty where the random-init
    encoder was not probed."""
    rand_col = "probe_random/" + metric.removeprefix("probe/")
    if rand_col not in s.runs.columns or not s.runs[rand_col].notna().any():
        return {}
    rand = random_source(s.runs, s.ablation, rand_col).set_index("seed")[rand_col]
    done = s.runs[s.runs["status"] == "completed"]
    sign = -1 if lower_is_better(metric) else 1
    out = {}
    for variant in s.variants:
        ours = done[done["variant"] == variant].groupby("seed")[metric].mean().dropna()
        seeds = ours.index.intersection(rand.index)
        if len(seeds) == 0:
            continue
        d = sign * (ours[seeds] - rand[seeds]).to_numpy(float)
        if len(d) < 2:
            out[variant] = "one seed"
            continue
        mean, se = mean_and_se(d, resolution(pd.concat([s.runs[metric], s.runs[rand_col]])))
        up = mean > 0
        out[variant] = (
            ("better" if up else "worse")
            if beyond_noise(mean, se, len(d) - 1)
            else ("above" if up else "below")
        )
    return out


def versus_random_crossings(s: Summary, metric: str) -> dict[str, list[int]]:
    """Per variant that ``versus_random`` compares, the seeds at which its run is paired with a random-init
    number measured by a run of other numerics (``analysis.ranges.crossing_random``); variants with none are
    left out."""
    rand_col = "probe_random/" + metric.removeprefix("probe/")
    if rand_col not in s.runs.columns or not s.runs[rand_col].notna().any():
        return {}
    source = random_source(s.runs, s.ablation, rand_col)
    out = {}
    for variant in s.variants:
        seeds = crossing_random(s.runs[s.runs["variant"] == variant], source, metric)
        if seeds:
            out[variant] = seeds
    return out


def text(x) -> str | None:
    """A text cell of a DataFrame, None where it is missing (NaN)."""
    return x if isinstance(x, str) else None
