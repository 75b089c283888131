"""A ``Summary`` (``analysis.summary``) as tables and sentences: the per-variant table beside the paper's
numbers, the ordering agreement and the ingredients' directions, as Markdown, LaTeX and CSV
(``write_tables``), and ``statement`` / ``directions_overview``, the report's plain words on which of the
paper's findings hold at this scale.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from analysis.ablations import COMPARE, sort_variants
from analysis.directions import paper_source, unanswered
from analysis.paper import METRICS
from analysis.ranges import encoder_keys_that_differ, random_source
from analysis.stats import ALPHA
from analysis.summary import RANDOM, Summary, text, versus_random, versus_random_crossings

LATEX = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
         "–": "--", "†": r"\textdagger{}", **{ch: "\\" + ch for ch in "&%$#_{}"}}  # fmt: skip
NO_RANGE = "†"  # marks a metric without range (analysis.ranges) wherever a table names it


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


def marked(s: Summary, metric: str) -> str:
    """``short(metric)``, with ``NO_RANGE`` where the metric has no range in this group."""
    return short(metric) + (f" {NO_RANGE}" if s.has_range(metric) is False else "")


def p_text(p: float) -> str:
    return "–" if not math.isfinite(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def seed_list(seeds) -> list[int]:
    """Seeds from a ``crossing_seeds`` cell ("0 2", "" or NaN for none) or a list."""
    if isinstance(seeds, str):
        return [int(x) for x in seeds.split()]
    return [] if seeds is None or (isinstance(seeds, float) and math.isnan(seeds)) else list(seeds)


def and_list(items) -> str:
    """ "0", "0 and 2", "0, 1 and 2"."""
    words = [str(x) for x in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def numerics_kind(keys) -> str:
    """How the keys of ``analysis.numerics`` are known, in words: "code versions" where every key is one
    (runs made before the numerics were recorded), else "numerics"."""
    keys = list(keys)
    return "code versions" if keys and all(k.startswith("code ") for k in keys) else "numerics"


def crossing_words(s: Summary, seeds) -> str:
    """ "pair of seed 0 crosses code versions", "pairs of seeds 0 and 2 cross numerics"; "" for none."""
    seeds = seed_list(seeds)
    if not seeds:
        return ""
    kind = numerics_kind(s.numerics_keys)
    if len(seeds) == 1:
        return f"pair of seed {seeds[0]} crosses {kind}"
    return f"pairs of seeds {and_list(seeds)} cross {kind}"


def numerics_text(s: Summary) -> str:
    """The group's numerics (``analysis.numerics``): which keys its completed runs have and, where several,
    ``numerics_note``'s flag."""
    keys = s.numerics_keys
    if not keys:
        return "Numerics: no completed run yet."
    if s.numerics_note:
        return f"Numerics: {s.numerics_note}."
    key = keys[0]
    if key.startswith("code "):
        known = (
            f"one code version, {key.removeprefix('code ')}, with unrecorded numerics (the code version "
            "stands for them)"
        )
    else:
        known = f"one recorded numerics, {key} (`vjepa/golden.py`)"
    return f"Numerics: every completed run has {known}, so no pair by seed crosses numerics."


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
        marked(s, k) if kind == "ours" else f"paper: {METRICS[k].label}" for kind, k in columns
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
            waiting = sum(v == variant for v, _ in s.not_started)
            incomplete = ", ".join(
                filter(None, [st["incomplete"].iloc[0], waiting and f"{waiting} not started"])
            )
            cells = [variant, paper_row or "–", str(n_runs), incomplete or "0"]
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
    shown = f"{best} (paper row {row})" if row and not says_it else best
    tied = text(r.get("tied_with"))
    return f"{shown}, tied with {tied}" if tied else shown


def margin_text(x) -> str:
    """Our best variant's lead: "tied" at exactly 0, two significant digits where three decimals would read
    0.000 for a lead that is not one."""
    if isinstance(x, float) and math.isfinite(x) and 0 < abs(x) < 5e-4:
        return f"{x:.2g}"
    return "0 (tied)" if x == 0 else num(x)


def agreement_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    header = (
        "paper metric|toolkit metric|variants|paper best|toolkit best|same best|Kendall tau|paper margin|"
        "toolkit margin|beyond seed noise (Holm)|verdict"
    ).split("|")
    rows = []
    for r in s.agreement.to_dict("records"):
        if r["variants"] < 2:
            rows.append(
                [METRICS[r["paper_metric"]].label, marked(s, r["metric"]), str(r["variants"])]
                + ["–"] * 7
                + [r["verdict"]]
            )
            continue
        rows.append(
            [
                METRICS[r["paper_metric"]].label,
                marked(s, r["metric"]),
                str(r["variants"]),
                r["paper_best"],
                shown_best(r),
                "yes" if r["best_agrees"] else "no",
                num(r["tau"], 2),
                paper_margin(r["paper_margin"], r["paper_metric"]),
                margin_text(r["margin"]),
                "– (no range)"
                if s.has_range(r["metric"]) is False
                else ("yes" if r["resolved"] else "no") + _crossing_cell(r.get("crossing_seeds")),
                r["verdict"],
            ]
        )
    return header, rows


def _crossing_cell(seeds) -> str:
    """ " (seeds 0, 2 cross)" after a table cell whose pairs cross numerics, else ""."""
    seeds = seed_list(seeds)
    if not seeds:
        return ""
    return (
        f" (seed {seeds[0]} crosses)" if len(seeds) == 1 else f" (seeds {', '.join(map(str, seeds))} cross)"
    )


def signed(x: float, unit: str = "") -> str:
    """A change with its sign; paper changes in % points to one decimal, others as ``num``."""
    return ("+" if x > 0 else "") + (f"{x:.1f}" if "%" in unit else num(x))


def direction_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    header = (
        "ingredient|from -> to|paper metric|paper change|toolkit metric|change ± se|seeds|p|p (Holm)|verdict"
    )
    header = header.split("|")
    rows = [
        [
            r["direction"],
            f"{r['from_variant']} -> {r['to_variant']}",
            METRICS[r["paper_metric"]].label,
            signed(r["paper_change"], METRICS[r["paper_metric"]].unit),
            marked(s, r["metric"]),
            signed(r["change"]) + (f" ± {num(r['se'])}" if math.isfinite(r["se"]) else ""),
            str(r["n"]) + _crossing_cell(r.get("crossing_seeds")),
            p_text(r["p"]),
            p_text(r["p_holm"]),
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


def not_started(s: Summary) -> str:
    """ "deep seed 2, mix seed 2": the runs ``Summary.not_started`` lists."""
    return ", ".join(f"{v} seed {seed}" for v, seed in s.not_started)


def legend(s: Summary) -> str:
    out = (
        f"Seeds run: {', '.join(map(str, s.seeds)) or 'none'}. Cells: mean ± sample std over each variant's "
        "completed seeds; n = completed runs, (n=k) where a metric has fewer values; runs that did not "
        "complete are counted under 'not completed' and never averaged in. Toolkit probe scores are "
        "fractions (0-1); paper numbers as published."
    )
    if s.not_started:
        out += f" Not started (no run directory): {not_started(s)}."
    if s.table:
        note = f" ({s.table.note})" if s.table.note else ""
        out += f" Paper: {s.table.source}, {s.table.title}{note}."
    if s.ablation.notes:
        out += f" Note: {s.ablation.notes}."
    if any(v not in s.variants for v in s.ablation.grid_variants):
        out += (
            " 'no run yet': a variant of the sweep's grid with no run here, shown with the paper's numbers."
        )
    if any(s.has_range(m) is False for m in s.metrics):
        out += (
            f" {NO_RANGE} no range: the random-init encoder scores as well as the pretrained runs (their gap, "
            "paired by seed, within seed noise or the wrong way) or at the ceiling (`analysis/ranges.py`), so "
            "the metric cannot show what pretraining learnt: shown, left out of the tallies."
        )
    unknown = [short(m) for m in s.ranges if s.has_range(m) is None]
    if unknown:
        out += f" Range unknown (no random-init probe to pair by seed): {', '.join(unknown)}."
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
    parts = [f"### {s.title}\n", numerics_text(s) + "\n", legend(s) + "\n", markdown(*variant_table(s))]
    if not s.agreement.empty:
        parts += ["\nOrdering of the variants, ours vs. the paper's:\n", markdown(*agreement_table(s))]
    if not s.directions.empty:
        parts += [
            "\nEach ingredient, ours vs. the paper's (change = to minus from; ours: mean over the seeds both "
            "variants completed, paired by seed, ± its standard error; p: two-sided paired t; holds / "
            "reversed: the paper's way / the other way beyond seed noise, p (Holm) below 0.05, Holm's "
            "correction over all the ingredients of this paper source in the report; 'within noise after "
            f"Holm': p below 0.05 alone only; {NO_RANGE} 'no range': not tested; seeds: the pairs, '(seed 0 "
            "crosses)' where a pair's two runs differ in numerics, kept in and flagged):\n",
            markdown(*direction_table(s)),
        ]
    return "\n".join(parts)


def to_latex(s: Summary) -> str:
    out = latex(*variant_table(s), f"{s.title}: per-variant results. {numerics_text(s)} {legend(s)}")
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
    crossing = {v: seeds for v, seeds in versus_random_crossings(s, metric).items() if v in vs.index}
    if crossing:
        seeds = sorted({x for seeds in crossing.values() for x in seeds})
        other = (
            "another code version" if numerics_kind(s.numerics_keys) == "code versions" else "other numerics"
        )
        at = and_list(seeds).replace(" and ", " or ")
        said += (
            f"; {len(crossing)} of {len(vs)} variants pair, at seed {at}, with a random-init number measured "
            f"by a run of {other}"
        )
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
    crossing = int(sum(bool(seed_list(x)) for x in d["crossing_seeds"])) if not d.empty else 0
    if crossing:
        tally += f"; {crossing} of them on pairs of seeds that cross {numerics_kind(s.numerics_keys)}"
    head = f"- The paper's ingredients, ours paired by seed ({len(d)} metric pair(s): {tally or 'none'})"
    if pending:
        head += f"; no completed run yet: {', '.join(pending)}"
    if skipped:
        head += f"; not run here: {', '.join(skipped)}"
    lines = [head + "."]
    for (name, a, b), g in d.groupby(["direction", "from_variant", "to_variant"], sort=False):
        parts = []
        # the seeds whose pairs cross numerics: once for the ingredient where all its metrics share them
        crossings = {tuple(seed_list(x)) for x in g["crossing_seeds"]}
        shared = crossing_words(s, next(iter(crossings))) if len(crossings) == 1 else ""
        for pm, gm in g.groupby("paper_metric", sort=False):
            ours = ", ".join(
                f"`{short(r['metric'])}` {signed(r['change'])}"
                + (f" ± {num(r['se'])}" if math.isfinite(r["se"]) else "")
                + f" ({r['verdict']}"
                + ("" if len(crossings) == 1 or not seed_list(r["crossing_seeds"]) else "; ")
                + ("" if len(crossings) == 1 else crossing_words(s, r["crossing_seeds"]))
                + ")"
                for r in gm.to_dict("records")
            )
            parts.append(
                f"{METRICS[pm].label} paper {signed(gm['paper_change'].iloc[0], METRICS[pm].unit)}, ours {ours}"
            )
        lines.append(f"  - *{name}* ({a} -> {b}{'; ' + shared if shared else ''}): " + "; ".join(parts) + ".")
    return lines


def _chance(tests: int) -> str:
    """How many of ``tests`` noise-only differences a 5 % test calls real, on average: "about 2 of 39"."""
    x = ALPHA * tests
    return f"about {x:.0f}" if x >= 1 else f"about {x:.1f}"


def directions_overview(summaries: list[Summary]) -> str | None:
    """One sentence per paper source: how many (ingredient, metric) pairs go the paper's way, and how many
    of them beyond seed noise after Holm's correction over the source's tests (``directions.correct``),
    beside how many chance alone would give; pairs on a metric without range are left out and counted.
    None where no sweep answers a direction."""
    by_source: dict[str, list[pd.DataFrame]] = {}
    keys: dict[str, list[str]] = {}
    for s in summaries:
        if s.table is not None and not s.directions.empty:
            ranged = [s.has_range(m) is not False for m in s.directions["metric"]]
            d = s.directions.assign(sweep=s.title, ranged=ranged)
            by_source.setdefault(paper_source(s.table), []).append(d)
            keys.setdefault(paper_source(s.table), []).extend(s.numerics_keys)
    lines = []
    for source, frames in by_source.items():
        everything = pd.concat(frames, ignore_index=True)
        everything["crossing"] = everything["crossing_seeds"].map(lambda x: bool(seed_list(x))).astype(bool)
        kind = numerics_kind(keys[source])
        d, left = everything[everything["ranged"]], int((~everything["ranged"]).sum())
        sweeps = ", ".join(dict.fromkeys(everything["sweep"]))
        head = f"**{source}, its ingredients in all** ({sweeps}): "
        if d.empty:
            lines.append(head + f"all {left} (ingredient, metric) pairs are on metrics without range.")
            continue
        v, cross = d["verdict"], d["crossing"]
        n_cross = int(cross.sum())
        beyond = int((cross & v.isin(["holds", "reversed"])).sum())
        rest = (
            f" {n_cross} of these {len(d)} verdicts rest{'s' * (n_cross == 1)} on pairs of seeds whose two runs "
            f"cross {kind}, {beyond} of them beyond seed noise: kept in the paired differences, flagged below."
            if n_cross
            else f" None of these {len(d)} verdicts rests on a pair of seeds that crosses {kind}."
        )
        same, other = (
            v.str.startswith("same") | (v == "holds"),
            v.str.startswith("opposite") | (v == "reversed"),
        )
        ties, one = len(d) - int(same.sum()) - int(other.sum()), int(v.str.endswith("one seed").sum())
        tests = d["p_holm"].notna()
        alone = int((d.loc[tests, "p"] < ALPHA).sum())
        lines.append(
            head
            + f"of {len(d)} (ingredient, metric) pairs"
            + (f" ({left} more on metrics without range left out)" if left else "")
            + f", {int(same.sum())} go{'es' * (int(same.sum()) == 1)} the paper's way "
            f"({int((v == 'holds').sum())} beyond seed noise) and "
            f"{int(other.sum())} the other way ({int((v == 'reversed').sum())} beyond seed noise)"
            + (f"; {ties} show{'s' * (ties == 1)} no change on one side" if ties else "")
            + (f"; {one} rest{'s' * (one == 1)} on a single seed" if one else "")
            + f". Beyond seed noise is after Holm's correction over these {int(tests.sum())} tests: at 5 % "
            f"each, chance alone would give {_chance(int(tests.sum()))} of {int(tests.sum())} uncorrected "
            f"(here: {alone}); after Holm's correction, at most a 5 % chance of any." + rest
        )
    return "\n\n".join(lines) or None


def _noise_words(r: dict, no_range: bool = False, crossing: str = "") -> str:
    """How our best variant's lead over the runner-up stands against seed noise (an agreement row), naming
    the unpaired test where the seeds did not pair, and ``crossing`` (``crossing_words``) where pairs cross
    numerics."""
    one = text(r.get("single_seed"))
    if no_range:
        return "lead not tested (no range)"
    if r["resolved"]:
        words = "beyond seed noise"
    elif one:
        words = f"no spread: one seed of {one}"
    else:
        alone = r.get("p", math.nan) < ALPHA
        words = "within seed noise" + (" after Holm (beyond it alone)" if alone else "")
    if r.get("noise_test") == "Welch":
        words += " (Welch, unpaired: fewer than 2 seeds in common)"
    return words + (f" ({crossing})" if crossing else "")


def _range_words(s: Summary, metric: str) -> tuple[str, str]:
    """(" (no range: why)" after the metric's name, "; range unknown (why)" at the end of its bullet)."""
    r = s.ranges.get(metric)
    if r is None:
        return "", ""
    if r["has_range"] is False:
        crossing = crossing_words(s, r.get("crossing_seeds"))
        return f" (no range: {r['reason']}{'; random-init ' + crossing if crossing else ''})", ""
    return ("", f"; range unknown ({r['reason']})") if r["has_range"] is None else ("", "")


def statement(s: Summary) -> str:
    """Sentences, computed from the agreement table, on whether this ablation agrees with the paper."""
    if s.table is None:
        return f"**{s.title}**: no paper table corresponds to this sweep."
    done = s.runs[s.runs["status"] == "completed"]
    waiting = f"; not started: {not_started(s)}" if s.not_started else ""
    head = (
        f"**{s.title}** ({s.table.source}: {s.table.title}; {len(done)} of {len(s.runs) + len(s.not_started)} "
        f"runs completed{waiting}; seeds {', '.join(map(str, s.seeds)) or 'none'}): "
    )
    rows = s.agreement[s.agreement["variants"] >= 2]
    if rows.empty:
        lines = [
            head + "not comparable: no toolkit metric that stands for a paper metric has values for two "
            "or more variants with a paper counterpart."
        ]
    else:
        ranged = rows[[s.has_range(m) is not False for m in rows["metric"]]]
        counts = ", ".join(f"{v} {n}" for v, n in ranged["verdict"].value_counts().sort_index().items())
        left = len(rows) - len(ranged)
        tests = int(ranged["p_holm"].notna().sum())
        if ranged.empty:
            lines = [head + f"no metric pair with range to compare ({left} on metrics without range)."]
        else:
            lines = [
                head
                + f"{len(ranged)} metric pair(s) compared ({counts})"
                + (f", {left} more on metrics without range not counted" if left else "")
                + f"; in {int(ranged['resolved'].sum())} of them our best variant leads the runner-up "
                f"beyond seed noise (outside the 95 % t interval after Holm's correction over the {tests} "
                "lead(s) tested here, paired by seed where two or more seeds pair)."
            ]
    for r in rows.to_dict("records"):
        after_name, at_end = _range_words(s, r["metric"])
        lines.append(
            f"- {METRICS[r['paper_metric']].label} vs. `{short(r['metric'])}`{after_name}: {r['verdict']} "
            f"(paper best: {r['paper_best']}, by {paper_margin(r['paper_margin'], r['paper_metric'])}; "
            f"ours: {shown_best(r)}{'' if text(r.get('tied_with')) else ', by ' + margin_text(r['margin'])}, "
            f"{_noise_words(r, s.has_range(r['metric']) is False, crossing_words(s, r.get('crossing_seeds')))}; "
            "Kendall tau "
            f"{num(r['tau'], 2)} over {r['variants']} variants{_beside_random(s, r['metric'])}{at_end})."
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
