"""The report's first screen: what can and cannot be told from the collected runs, in plain sentences
computed from the summaries (``analysis.summary``), before any method or table.

``findings(summaries)`` returns Markdown bullets:

* the paper's directions (``Summary.directions``, Holm-corrected per paper source): which hold and which are
  reversed beyond seed noise, which this scale cannot resolve, each with the smallest change its seeds could
  have detected (``vjepa.power.minimum_detectable_effect`` of the row's paired sd, 5 % two-sided, 80 %
  power, one test: the correction over many raises it), and which rest on one seed (nothing can be told);
* whether every variant beats the random-init encoder it started from: paired by seed over the seeds
  (``analysis.summary.versus_random``), or with one seed on the evaluation sample alone (the paired
  bootstrap error ``<metric>/gap_se``, z = gap / gap_se, Holm-corrected over the group's comparisons),
  which says nothing of another seed;
* per table: its seeds, the code that trained it (numerics ids, else code versions) and the minimum
  detectable effect of each compared metric with range (``vjepa.power.difference_spread`` of its runs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from analysis.directions import paper_source, verdict_class
from analysis.stats import ALPHA, holm
from analysis.summary import RANDOM, Summary, versus_random
from vjepa.power import difference_spread, minimum_detectable_effect


def _short(metric: str) -> str:
    return f"`{metric.removeprefix('probe/')}`"


def _num(x: float) -> str:
    return f"{x:+.3f}" if abs(x) >= 0.0005 or x == 0 else f"{x:+.1e}"


def row_mde(row) -> float:
    """The smallest change the paired seeds of a ``Summary.directions`` row could have detected (5 %
    two-sided, 80 % power, one test); NaN with fewer than 2 seeds."""
    n = int(row["n"]) if pd.notna(row["n"]) else 0
    sd = float(row["se"]) * math.sqrt(n) if n >= 2 and pd.notna(row["se"]) else math.nan
    return minimum_detectable_effect(sd, n)


def _direction_bullets(summaries: list[Summary]) -> list[str]:
    rows = []
    for s in summaries:
        if s.table is None or s.directions.empty:
            continue
        for r in s.directions.to_dict("records"):
            if s.has_range(r["metric"]) is False or r["verdict"] == "paper: no change":
                continue
            rows.append({**r, "source": paper_source(s.table), "table": s.table.title, "sweep": s.sweep})
    if not rows:
        return []

    def name(r) -> str:
        return f"*{r['direction']}* on {_short(r['metric'])} ({r['sweep']})"

    def change(r) -> str:
        se = f" ± {r['se']:.3f}" if pd.notna(r["se"]) else ""
        return f"ours {_num(r['change'])}{se} (paper {r['paper_change']:+.1f})"

    groups = {"holds": [], "reversed": [], "one seed": [], "cannot tell": []}
    for r in rows:  # the rows of metrics without range were left out above
        groups[verdict_class(r)].append(r)
    holds, reversed_, one, unresolved = groups.values()
    out = [
        f"**The paper's directions that hold at this scale beyond seed noise** (paired by seed, Holm-corrected "
        f"per paper source, of {len(rows)} (ingredient, metric) pairs on metrics with range): "
        + ("; ".join(f"{name(r)}: {change(r)}" for r in holds) if holds else "none")
        + ".",
        "**Reversed beyond seed noise**: "
        + ("; ".join(f"{name(r)}: {change(r)}" for r in reversed_) if reversed_ else "none")
        + ".",
    ]
    if unresolved:
        parts = []
        for r in unresolved:
            mde = row_mde(r)
            could = f"could have seen {mde:.3f}" if math.isfinite(mde) else "no spread to size it"
            parts.append(f"{name(r)}: {change(r)}, {could}")
        out.append(
            f"**This scale cannot tell** ({len(unresolved)} pair(s) within seed noise; the smallest change "
            "the seeds could have detected, paired t-test at 5 % with 80 % power before the correction for "
            "many tests, beside each): " + "; ".join(parts) + "."
        )
    if one:
        out.append(
            f"**One seed, nothing can be told** ({len(one)} pair(s): a single seed has no spread to tell an "
            "ingredient from seed noise): " + "; ".join(name(r) for r in one) + "."
        )
    return out


def _gap_z(s: Summary, variant: str, metric: str) -> tuple[float, float] | None:
    """(gap, z) of a one-seed variant against its random init on the evaluation sample; None without one."""
    rand, gse = "probe_random/" + metric.removeprefix("probe/"), f"{metric}/gap_se"
    done = s.runs[(s.runs["status"] == "completed") & (s.runs["variant"] == variant)]
    if not {rand, gse, metric} <= set(done.columns) or done.empty:
        return None
    row = done.iloc[0]
    if pd.isna(row[metric]) or pd.isna(row[rand]) or pd.isna(row[gse]) or row[gse] <= 0:
        return None
    gap = float(row[metric] - row[rand])
    return gap, gap / float(row[gse])


def _random_bullets(s: Summary) -> list[str]:
    metrics = [m for m in s.metrics if m.startswith("probe/")]
    variants = [v for v in s.variants if v != RANDOM]
    per_variant = {v: {} for v in variants}
    for m in metrics:
        for v, how in versus_random(s, m).items():
            if v in per_variant:
                per_variant[v][m] = how
    if not any(per_variant.values()):
        return []
    single = all(set(h.values()) <= {"one seed"} for h in per_variant.values() if h)
    if not single:
        done = s.runs[s.runs["status"] == "completed"]
        completed = sorted(int(x) for x in done["seed"].dropna().unique())
        # a variant paired with random init at one seed only has no spread: named apart, not counted
        one = [f"{s.axis}={v}" for v, hs in per_variant.items() if hs and set(hs.values()) == {"one seed"}]
        beats = {
            v: [m for m, h in hs.items() if h == "better"]
            for v, hs in per_variant.items()
            if hs and set(hs.values()) != {"one seed"}
        }
        none = [f"{s.axis}={v}" for v, b in beats.items() if not b]
        every = sorted(set.intersection(*(set(b) for b in beats.values()))) if beats else []
        who = "every variant with two or more seeds" if one else "every variant"
        return [
            f"**{s.title}, against the random-init encoder** (paired by seed over the completed seeds "
            f"{', '.join(map(str, completed))}): "
            + (
                f"{who} beats it beyond seed noise on {', '.join(map(_short, every))}"
                if every
                else f"no probe metric on which {who} beats it beyond seed noise"
            )
            + (f"; {', '.join(none)} beat{'s' * (len(none) == 1)} it on none" if none else "")
            + (f"; one seed so far, cannot tell: {', '.join(one)}" if one else "")
            + "."
        ]
    tests = []  # (variant, metric, gap, z)
    for v, hs in per_variant.items():
        for m in hs:
            gz = _gap_z(s, v, m)
            if gz is not None:
                tests.append((v, m, *gz))
    if not tests:
        return [
            f"**{s.title}, against the random-init encoder**: one seed and no evaluation error of the gap "
            "(`gap_se`): cannot tell."
        ]
    p = 2 * norm.sf(np.abs([t[3] for t in tests]))
    p_holm = holm(p)
    beyond = [(t, ph) for t, ph in zip(tests, p_holm, strict=True) if ph < ALPHA]
    better = [t for t, _ in beyond if t[2] > 0]
    worse = [t for t, _ in beyond if t[2] < 0]
    by_variant = {v: [t for t in better if t[0] == v] for v in per_variant}
    return [
        f"**{s.title}, against the random-init encoder** (one seed: on the evaluation sample alone, "
        f"z = gap / its paired bootstrap error, Holm-corrected over {len(tests)} comparisons; this says "
        "nothing of another seed): "
        + "; ".join(
            f"{s.axis}={v} beats it on "
            + (
                ", ".join(f"{_short(m)} ({_num(g)}, z {z:.1f})" for _, m, g, z in hits)
                if hits
                else "no metric"
            )
            for v, hits in by_variant.items()
        )
        + (
            "; worse than it: "
            + ", ".join(f"{s.axis}={v} on {_short(m)} ({_num(g)})" for v, m, g, _ in worse)
            if worse
            else ""
        )
        + ". Between variants, one seed cannot tell anything from seed noise."
    ]


def _table_bullet(s: Summary) -> str:
    done = s.runs[s.runs["status"] == "completed"]
    ids = [k for k in s.numerics_keys if not k.startswith("code ")]
    code = sorted(done["code_version"].dropna().astype(str).unique()) if "code_version" in done else []
    trained = (
        f"numerics {', '.join('`' + k.removeprefix('numerics ') + '`' for k in ids)}"
        + (f" (code {', '.join(f'`{c}`' for c in code)})" if code else "")
        if ids
        else f"code {', '.join(f'`{c}`' for c in code)} (no numerics id recorded)"
        if code
        else "unknown code"
    )
    compared = list(dict.fromkeys(s.agreement["metric"])) if not s.agreement.empty else []
    compared = [m for m in compared if s.has_range(m) is not False]
    variants = [v for v in s.variants if v != RANDOM and (done["variant"] == v).any()]
    seeds = [set(done.loc[done["variant"] == v, "seed"].dropna().astype(int)) for v in variants]
    n = len(set.intersection(*seeds)) if seeds else 0  # seeds at which every variant completed: the pairs
    mdes = []
    for m in compared:
        spread = difference_spread(s.runs, m)
        mde = minimum_detectable_effect(spread.sd, n) if spread is not None else math.nan
        mdes.append(f"{_short(m)} {mde:.3f}" if math.isfinite(mde) else f"{_short(m)} unknown")
    what = s.table.title if s.table is not None else "no paper table"
    return (
        f"**{s.title}** ({what}): {len(done)} completed run(s), {n} seed(s) completed by every variant, "
        f"trained by {trained}; "
        + (
            "smallest difference between two variants its seeds detect (paired, 5 %, 80 % power): "
            + ", ".join(mdes)
            if mdes
            else "no compared metric with range"
        )
        + "."
    )


def findings(summaries: list[Summary]) -> list[str]:
    """The first screen's bullets (Markdown, one string each); empty where nothing was collected."""
    if not summaries:
        return []
    out = _direction_bullets(summaries)
    for s in summaries:
        out += _random_bullets(s)
    out += [_table_bullet(s) for s in summaries]
    return out
