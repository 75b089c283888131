"""Per-ablation statistics beside the paper's numbers, and whether the orderings agree.

``summarize(results)``: one ``Summary`` per (sweep, preset) group that has an ablation axis:

* ``stats`` (long): per variant and metric, ``mean`` and ``std`` (sample std, ddof 1) over the completed
  runs' values, ``n`` (completed runs with a value), ``n_incomplete`` and ``incomplete`` (runs of the
  variant that did not complete, by status: they are counted, never averaged in), ``seeds`` and the variant's
  ``paper_row``. A ``random init`` row holds the ``probe_random/...`` baselines (one value per seed).
* ``agreement``: per (paper metric, toolkit metric) pair of ``ablations.COMPARE``, over the variants that
  have both numbers: the paper's best row and the toolkit's best variant (by the metric's direction),
  whether they match, Kendall's tau-b between the two orderings, both margins (best minus runner-up), whether
  the best leads the runner-up beyond seed noise (``resolved``, see ``lead_beyond_noise``: paired by seed
  like the directions and the random-init comparisons, Welch's unpaired test only where fewer than two
  seeds pair, ``noise_test`` says which; never where the best or the runner-up has a single seed, named in
  ``single_seed``), and a verdict: ``agrees`` (same best and tau > 0), ``disagrees`` (other best and
  tau <= 0), else ``partly agrees``.
* ``directions``: each ingredient the paper reports a change for, our change beside it, paired by seed
  (``analysis.directions``).

Written as Markdown, CSV and LaTeX by ``write_tables``; ``statement`` turns the agreement into sentences.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
from analysis.directions import directions, paired_differences, unanswered
from analysis.paper import METRICS, TABLES, Table
from analysis.stats import beyond_noise, mean_and_se, welch_df

RANDOM = "random init"
LATEX = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
         "–": "--", **{ch: "\\" + ch for ch in "&%$#_{}"}}  # fmt: skip
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
    return (float(values.mean()) if n else math.nan, float(values.std(ddof=1)) if n > 1 else math.nan, n)


STATS_COLUMNS = "variant paper_row metric mean std n n_incomplete incomplete seeds".split()


def _stat(variant, paper_row, metric: str, runs: pd.DataFrame, column: str, bad: pd.Series) -> tuple:
    mean, std, n = _moments(runs[column])
    seeds = " ".join(str(int(s)) for s in sorted(runs.loc[runs[column].notna(), "seed"]))
    return (variant, paper_row, metric, mean, std, n, int(bad.sum()), _incomplete(bad), seeds)


def _incomplete(bad: pd.Series) -> str:
    return ", ".join(f"{k} {s}" for s, k in bad.items())


def encoder_keys_that_differ(runs: pd.DataFrame) -> list[str]:
    """The ``model.*`` config keys whose values differ between the completed runs: where there are any, the
    variants' encoders are not the same network at initialisation."""
    done = runs[runs["status"] == "completed"]
    cols = [c for c in done.columns if c.startswith("config/model.")]
    return [c.removeprefix("config/") for c in cols if done[c].astype(str).nunique() > 1]


def random_source(runs: pd.DataFrame, ablation: Ablation, column: str) -> pd.DataFrame:
    """The runs whose ``probe_random/...`` number stands for the random-init encoder, one per seed: any run
    of the seed where the variants share the encoder's config, else only the runs of the first variant (in
    display order) that has the number, so every seed's number is the same network's."""
    have = runs[(runs["status"] == "completed") & runs[column].notna()]
    if encoder_keys_that_differ(runs):
        first = next(v for v in sort_variants(runs["variant"], ablation) if (have["variant"] == v).any())
        have = have[have["variant"] == first]
    return have.drop_duplicates("seed")


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
    """Kendall's tau-b of two equally long sequences (ties allowed); NaN when either is all ties."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if n_a == 0 or n_b == 0:
        return math.nan
    return float((da * db).sum() / math.sqrt(n_a * n_b))


def lead_beyond_noise(
    runs: pd.DataFrame, metric: str, best: pd.Series, second: pd.Series, sign: int
) -> tuple[bool, str]:
    """Whether ``best`` leads ``second`` (their stats rows) on ``metric`` beyond seed noise, and the test
    that decided it: ``"paired"``, ``"Welch"`` or ``""`` (none possible: not resolved).

    Paired by seed where at least two completed seeds have both (the same test as ``analysis.directions``
    and ``versus_random``): the mean of ``sign * (best - second)`` per seed outside its 95 % t interval with
    n - 1 degrees of freedom. Where fewer than two seeds pair (the variants ran different seeds), Welch's
    unpaired test on each variant's values, which needs two values of each. ``sign``: -1 for a
    lower-is-better metric."""
    d = sign * paired_differences(runs, metric, second["variant"], best["variant"])
    if len(d) >= 2:
        mean, se = mean_and_se(d)
        return bool(mean > 0 and beyond_noise(mean, se, len(d) - 1)), "paired"
    if best["n"] < 2 or second["n"] < 2:
        return False, ""
    se = [r["std"] / math.sqrt(r["n"]) for r in (best, second)]
    margin = sign * (best["mean"] - second["mean"])
    df = welch_df(se[0], best["n"], se[1], second["n"])
    return bool(margin > 0 and beyond_noise(margin, math.hypot(*se), df)), "Welch"


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
    best, second = rows.iloc[order[0]], rows.iloc[order[1]]
    paper_sorted = np.sort(np.unique(paper))[::-1]
    margin = (best["mean"] - second["mean"]) * t_sign
    resolved, noise_test = lead_beyond_noise(runs, metric, best, second, t_sign)
    tau = kendall_tau(paper, ours)
    agrees = best["paper_row"] in paper_best
    if not math.isfinite(tau):
        verdict = "no ordering (all tied)"
    else:
        verdict = (
            "agrees" if agrees and tau > 0 else "disagrees" if not agrees and tau <= 0 else "partly agrees"
        )
    return {
        **out,
        "paper_best": " / ".join(paper_best),
        "best": best["variant"],
        "best_row": best["paper_row"],
        "best_agrees": agrees,
        "tau": tau,
        "paper_margin": float(paper_sorted[0] - paper_sorted[1]) if len(paper_sorted) > 1 else 0.0,
        "margin": float(margin),
        "resolved": resolved,
        "noise_test": noise_test,
        "min_n": int(rows["n"].min()),
        "single_seed": " and ".join(r["variant"] for r in (best, second) if r["n"] < 2),
        "verdict": verdict,
    }


AGREEMENT_COLUMNS = (
    "paper_metric metric variants paper_best best best_row best_agrees tau paper_margin margin resolved "
    "noise_test min_n single_seed verdict"
).split()


def agreement(runs: pd.DataFrame, stats: pd.DataFrame, ablation: Ablation) -> pd.DataFrame:
    """One row per (paper metric, toolkit metric) pair (see the module); ``runs``: the group's runs, for
    the per-seed values ``lead_beyond_noise`` pairs."""
    table = TABLES.get(ablation.table) if ablation.table else None
    pairs = [
        (m, t)
        for m in (table.metrics if table else [])
        for t in COMPARE.get(m, ())
        if t in set(stats["metric"])
    ]
    return pd.DataFrame([_compare(runs, stats, table, m, t) for m, t in pairs], columns=AGREEMENT_COLUMNS)


def summarize(results: pd.DataFrame) -> list[Summary]:
    """One summary per (sweep, preset) group with an axis, sorted by sweep and preset."""
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
        out.append(
            Summary(
                sweep,
                preset,
                axis,
                ablation,
                runs,
                stats,
                agreement(runs, stats, ablation),
                metrics,
                sort_variants(runs["variant"], ablation),
                left_out,
                directions(runs, stats, table),
            )
        )
    return out


# ---- formatting -----------------------------------------------------------------------------------------
def text(x) -> str | None:
    """A text cell of a DataFrame, None where it is missing (NaN)."""
    return x if isinstance(x, str) else None


def paper_num(v: float, unit: str = "") -> str:
    """A paper number as it prints: one decimal for a % metric (the paper's precision) and for any value
    from 1 up, else three (an RMSE in m)."""
    return f"{v:.1f}" if abs(v) >= 1 or "%" in unit else f"{v:.3f}"


def paper_margin(v: float, paper_metric: str) -> str:
    """A difference of two paper numbers with its unit: percentage points ("0.4 pt") for a % metric."""
    unit = METRICS[paper_metric].unit
    return paper_num(v, unit) + (" pt" if "%" in unit else f" {unit}")


def num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or pd.isna(x):
        return "–"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.{digits}f}"


def short(metric: str) -> str:
    return metric.removeprefix("probe/")


def _cell(stats: pd.DataFrame, variant: str, metric: str, n_runs: int) -> str:
    r = stats[(stats["variant"] == variant) & (stats["metric"] == metric)]
    if r.empty or r["n"].iloc[0] == 0:
        return "–"
    r = r.iloc[0]
    cell = num(r["mean"]) + (f" ± {num(r['std'])}" if r["n"] > 1 else "")
    return cell + (f" (n={r['n']})" if r["n"] != n_runs else "")


def variant_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-variant table: toolkit metrics beside the paper metric they stand for."""
    table = s.table
    columns: list[tuple[str, str]] = []  # (kind, key)
    for m in table.metrics if table else []:
        columns += [("ours", t) for t in COMPARE.get(m, ()) if t in s.metrics and ("ours", t) not in columns]
        columns.append(("paper", m))
    columns += [("ours", t) for t in s.metrics if ("ours", t) not in columns]
    header = ["variant", "paper row", "n", "not completed"] + [
        short(k) if kind == "ours" else f"paper: {METRICS[k].label}" for kind, k in columns
    ]
    rows, every = [], s.stats_with_pending
    unrun = {v: row for v, row in s.ablation.grid_variants.items() if v not in s.variants}
    for variant in [*sort_variants([*s.variants, *unrun], s.ablation), RANDOM]:
        st = every[every["variant"] == variant]
        if variant in unrun:  # a step of the sweep's grid with no run here yet: the paper's numbers alone
            paper_row, n_runs = unrun[variant], 0
            cells = [variant, paper_row, "0", "no run yet"]
        elif st.empty:
            continue
        else:
            paper_row = text(st["paper_row"].iloc[0])
            n_runs = int(st["n"].max())
            cells = [variant, paper_row or "–", str(n_runs), st["incomplete"].iloc[0] or "0"]
        for kind, k in columns:
            if kind == "ours":
                cells.append(_cell(s.stats, variant, k, n_runs))
            else:
                v = table.value(paper_row, k) if paper_row else None
                cells.append("–" if v is None else paper_num(v, METRICS[k].unit))
        rows.append(cells)
    return header, rows


def shown_best(r: dict) -> str:
    """Our best variant, with the paper row it stands for where the row's name does not already say it."""
    best, row = str(r["best"]), text(r.get("best_row"))
    says_it = row and re.search(rf"(?<![\w.]){re.escape(best)}(?![\w.])", row, re.IGNORECASE)
    return f"{best} (paper row {row})" if row and not says_it else best


def agreement_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    header = (
        "paper metric|toolkit metric|variants|paper best|toolkit best|same best|Kendall tau|paper margin|"
        "toolkit margin|beyond seed noise|verdict"
    ).split("|")
    rows = []
    for r in s.agreement.to_dict("records"):
        if r["variants"] < 2:
            rows.append(
                [METRICS[r["paper_metric"]].label, short(r["metric"]), str(r["variants"])]
                + ["–"] * 7
                + [r["verdict"]]
            )
            continue
        rows.append(
            [
                METRICS[r["paper_metric"]].label,
                short(r["metric"]),
                str(r["variants"]),
                r["paper_best"],
                shown_best(r),
                "yes" if r["best_agrees"] else "no",
                num(r["tau"], 2),
                paper_margin(r["paper_margin"], r["paper_metric"]),
                num(r["margin"]),
                "yes" if r["resolved"] else "no",
                r["verdict"],
            ]
        )
    return header, rows


def signed(x: float, unit: str = "") -> str:
    """A change with its sign; paper changes in % points to one decimal, others as ``num``."""
    return ("+" if x > 0 else "") + (f"{x:.1f}" if "%" in unit else num(x))


def direction_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    header = "ingredient|from -> to|paper metric|paper change|toolkit metric|change ± se|seeds|verdict".split(
        "|"
    )
    rows = [
        [
            r["direction"],
            f"{r['from_variant']} -> {r['to_variant']}",
            METRICS[r["paper_metric"]].label,
            signed(r["paper_change"], METRICS[r["paper_metric"]].unit),
            short(r["metric"]),
            signed(r["change"]) + (f" ± {num(r['se'])}" if math.isfinite(r["se"]) else ""),
            str(r["n"]),
            r["verdict"],
        ]
        for r in s.directions.to_dict("records")
    ]
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    def esc(c):
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows]) + "\n"


def latex(header: list[str], rows: list[list[str]], caption: str) -> str:
    def esc(c):
        return "".join(LATEX.get(ch, ch) for ch in str(c))

    lines = [
        r"\begin{table}[ht]", r"\centering\small", r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule",
        " & ".join(map(esc, header)) + r" \\", r"\midrule", *(" & ".join(map(esc, r)) + r" \\" for r in rows),
        r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def legend(s: Summary) -> str:
    out = (
        f"Seeds run: {', '.join(map(str, s.seeds)) or 'none'}. Cells: mean ± sample std over each variant's "
        "completed seeds; n = completed runs, (n=k) where a metric has fewer values; runs that did not "
        "complete are counted under 'not completed' and never averaged in. Toolkit probe scores are "
        "fractions (0-1); paper numbers as published."
    )
    if s.table:
        note = f" ({s.table.note})" if s.table.note else ""
        out += f" Paper: {s.table.source}, {s.table.title}{note}."
    if s.ablation.notes:
        out += f" Note: {s.ablation.notes}."
    if any(v not in s.variants for v in s.ablation.grid_variants):
        out += (
            " 'no run yet': a variant of the sweep's grid with no run here, shown with the paper's numbers."
        )
    rand = s.stats[(s.stats["variant"] == RANDOM) & s.stats["mean"].notna()]
    differ = encoder_keys_that_differ(s.runs)
    if not rand.empty and differ:
        first = random_source(
            s.runs, s.ablation, "probe_random/" + rand["metric"].iloc[0].removeprefix("probe/")
        )
        out += (
            f" Random init: the encoder of `{first['variant'].iloc[0]}` before training (the variants' "
            f"encoders differ in {', '.join(differ)})."
        )
    return out


def to_markdown(s: Summary) -> str:
    parts = [f"### {s.title}\n", legend(s) + "\n", markdown(*variant_table(s))]
    if not s.agreement.empty:
        parts += ["\nOrdering of the variants, ours vs. the paper's:\n", markdown(*agreement_table(s))]
    if not s.directions.empty:
        parts += [
            "\nEach ingredient, ours vs. the paper's (change = to minus from; ours: mean over the seeds both "
            "variants completed, paired by seed, ± its standard error; holds / reversed: outside the 95 % t "
            "interval, the paper's way / the other way):\n",
            markdown(*direction_table(s)),
        ]
    return "\n".join(parts)


def to_latex(s: Summary) -> str:
    out = latex(*variant_table(s), f"{s.title}: per-variant results. {legend(s)}")
    if not s.agreement.empty:
        out += "\n" + latex(*agreement_table(s), f"{s.title}: ordering of the variants vs. the paper")
    if not s.directions.empty:
        caption = f"{s.title}: each ingredient's change (paired by seed, ± standard error) vs. the paper's"
        out += "\n" + latex(*direction_table(s), caption)
    return out


def write_tables(s: Summary, out_dir: Path) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex``, ``<stem>.csv`` (the long statistics), ``<stem>_agreement.csv`` and,
    where the paper names directions the sweep can answer, ``<stem>_directions.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{s.stem}{ext}" for ext in (".md", ".tex", ".csv", "_agreement.csv")]
    paths[0].write_text(to_markdown(s))
    paths[1].write_text(to_latex(s))
    s.stats.to_csv(paths[2], index=False, lineterminator="\n")
    s.agreement.to_csv(paths[3], index=False, lineterminator="\n")
    if not s.directions.empty:
        paths.append(out_dir / f"{s.stem}_directions.csv")
        s.directions.to_csv(paths[4], index=False, lineterminator="\n")
    return paths


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
        mean, se = mean_and_se(d)
        up = mean > 0
        out[variant] = (
            ("better" if up else "worse")
            if beyond_noise(mean, se, len(d) - 1)
            else ("above" if up else "below")
        )
    return out


def _beside_random(s: Summary, metric: str) -> str:
    """ "; variants a to b, random init c ± d (n=k): ..." where the random-init encoder was probed, else ""."""
    st = s.stats[(s.stats["metric"] == metric) & s.stats["mean"].notna()]
    rand, variants = st[st["variant"] == RANDOM], st[st["variant"] != RANDOM]
    if rand.empty or variants.empty:
        return ""
    r = rand.iloc[0]
    spread = f" ± {num(r['std'])}" if math.isfinite(r["std"]) else ""
    vs = pd.Series(versus_random(s, metric), dtype=object)
    words = {
        "better": "better beyond seed noise",
        "above": "ahead within noise",
        "below": "behind within noise",
        "worse": "worse beyond seed noise",
        "one seed": "on one seed",
    }
    said = ", ".join(f"{int((vs == k).sum())} {w}" for k, w in words.items() if (vs == k).any())
    return (
        f"; variants {num(variants['mean'].min())} to {num(variants['mean'].max())}, random init "
        f"{num(r['mean'])}{spread} (n={r['n']}); vs. random init, paired by seed: {said or 'no pairs'}"
    )


def _direction_lines(s: Summary) -> list[str]:
    """The paper's ingredients, one line each: its change beside ours per metric pair, and a tally."""
    d = s.directions
    pending, skipped = unanswered(s.stats_with_pending, s.table, s.ablation.grid_rows)
    if d.empty and not pending and not skipped:
        return []
    tally = "; ".join(f"{n} {v}" for v, n in d["verdict"].value_counts().sort_index().items())
    head = f"- The paper's ingredients, ours paired by seed ({len(d)} metric pair(s): {tally or 'none'})"
    if pending:
        head += f"; no completed run yet: {', '.join(pending)}"
    if skipped:
        head += f"; not run here: {', '.join(skipped)}"
    lines = [head + "."]
    for (name, a, b), g in d.groupby(["direction", "from_variant", "to_variant"], sort=False):
        parts = []
        for pm, gm in g.groupby("paper_metric", sort=False):
            ours = ", ".join(
                f"`{short(r['metric'])}` {signed(r['change'])}"
                + (f" ± {num(r['se'])}" if math.isfinite(r["se"]) else "")
                + f" ({r['verdict']})"
                for r in gm.to_dict("records")
            )
            parts.append(
                f"{METRICS[pm].label} paper {signed(gm['paper_change'].iloc[0], METRICS[pm].unit)}, ours {ours}"
            )
        lines.append(f"  - *{name}* ({a} -> {b}): " + "; ".join(parts) + ".")
    return lines


def directions_overview(summaries: list[Summary]) -> str | None:
    """One sentence per paper source: how many (ingredient, metric) pairs go the paper's way, and how many
    of them beyond seed noise. None where no sweep answers a direction."""
    by_source: dict[str, list[pd.DataFrame]] = {}
    for s in summaries:
        if s.table is not None and not s.directions.empty:
            paper = s.table.source.split(", Table")[0]  # the published paper's tables together
            by_source.setdefault(paper, []).append(s.directions.assign(sweep=s.title))
    lines = []
    for source, frames in by_source.items():
        d = pd.concat(frames)
        v = d["verdict"]
        same, other = (
            v.str.startswith("same") | (v == "holds"),
            v.str.startswith("opposite") | (v == "reversed"),
        )
        ties, one = len(d) - int(same.sum()) - int(other.sum()), int(v.str.endswith("one seed").sum())
        sweeps = ", ".join(dict.fromkeys(d["sweep"]))
        lines.append(
            f"**{source}, its ingredients in all** ({sweeps}): of {len(d)} (ingredient, metric) pairs, "
            f"{int(same.sum())} go the paper's way ({int((v == 'holds').sum())} beyond seed noise) and "
            f"{int(other.sum())} the other way ({int((v == 'reversed').sum())} beyond seed noise)"
            + (f"; {ties} show{'s' * (ties == 1)} no change on one side" if ties else "")
            + (f"; {one} rest{'s' * (one == 1)} on a single seed" if one else "")
            + "."
        )
    return "\n\n".join(lines) or None


def _noise_words(r: dict) -> str:
    """How our best variant's lead over the runner-up stands against seed noise (an agreement row), naming
    the unpaired test where the seeds did not pair."""
    one = text(r.get("single_seed"))
    if r["resolved"]:
        words = "beyond seed noise"
    else:
        words = f"no spread: one seed of {one}" if one else "within seed noise"
    if r.get("noise_test") == "Welch":
        words += " (Welch, unpaired: fewer than 2 seeds in common)"
    return words


def statement(s: Summary) -> str:
    """Sentences, computed from the agreement table, on whether this ablation agrees with the paper."""
    if s.table is None:
        return f"**{s.title}**: no paper table corresponds to this sweep."
    done = s.runs[s.runs["status"] == "completed"]
    head = (
        f"**{s.title}** ({s.table.source}: {s.table.title}; {len(done)} of {len(s.runs)} runs completed, "
        f"seeds {', '.join(map(str, s.seeds)) or 'none'}): "
    )
    rows = s.agreement[s.agreement["variants"] >= 2]
    if rows.empty:
        lines = [
            head + "not comparable: no toolkit metric that stands for a paper metric has values for two "
            "or more variants with a paper counterpart."
        ]
    else:
        counts = ", ".join(f"{v} {n}" for v, n in rows["verdict"].value_counts().sort_index().items())
        lines = [
            head
            + f"{len(rows)} metric pair(s) compared ({counts}); in {int(rows['resolved'].sum())} of them "
            "our best variant leads the runner-up beyond seed noise (outside the 95 % t interval, paired by "
            "seed where two or more seeds pair)."
        ]
    for r in rows.to_dict("records"):
        lines.append(
            f"- {METRICS[r['paper_metric']].label} vs. `{short(r['metric'])}`: {r['verdict']} "
            f"(paper best: {r['paper_best']}, by {paper_margin(r['paper_margin'], r['paper_metric'])}; "
            f"ours: {shown_best(r)}, by {num(r['margin'])}, {_noise_words(r)}; Kendall tau "
            f"{num(r['tau'], 2)} over {r['variants']} variants{_beside_random(s, r['metric'])})."
        )
    lines += _direction_lines(s)
    missing = s.agreement[s.agreement["variants"] < 2]
    if not missing.empty:
        lines.append(
            "- Not comparable: "
            + "; ".join(
                f"{METRICS[m].label} vs. `{short(t)}`"
                for m, t in zip(missing["paper_metric"], missing["metric"], strict=True)
            )
            + "."
        )
    unmeasured = [m for m in s.table.metrics if not set(COMPARE.get(m, ())) & set(s.metrics)]
    if unmeasured:
        stand_ins = {
            m: ", ".join(f"`{short(t)}`" for t in COMPARE.get(m, ())) or "no toolkit metric"
            for m in unmeasured
        }
        lines.append(
            "- Not measured here: "
            + "; ".join(f"{METRICS[m].label} ({stand_ins[m]})" for m in unmeasured)
            + "."
        )
    for modality, n in sorted(s.left_out.items()):
        trained = "images" if modality == "video" else "clips"
        lines.append(
            f"- Left out: the {modality} probes of {n} run(s) trained on {trained} only with their own "
            f"tokenizer per modality (model.tokenizer=separate), whose {modality} tokenizer never trained."
        )
    return "\n".join(lines)
