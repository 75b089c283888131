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
from analysis.directions import unanswered
from analysis.paper import METRICS
from analysis.summary import RANDOM, Summary, encoder_keys_that_differ, random_source, text, versus_random

LATEX = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
         "–": "--", **{ch: "\\" + ch for ch in "&%$#_{}"}}  # fmt: skip


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
                margin_text(r["margin"]),
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
            f"ours: {shown_best(r)}{'' if text(r.get('tied_with')) else ', by ' + margin_text(r['margin'])}, "
            f"{_noise_words(r)}; Kendall tau "
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
