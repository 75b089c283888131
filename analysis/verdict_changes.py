"""The paper's directions in two collections of runs side by side: which changed verdict, and what differs.

    python -m analysis.verdict_changes OLD.csv NEW.csv [--out FILE.md]

For each (sweep, ingredient, metric) of ``Summary.directions`` in either results table (Holm-corrected per
paper source within each table, as its report does): the verdict class in each (holds, reversed, cannot tell,
one seed, no range, not measured), our change with its standard error and paired seeds, and the smallest
change its seeds could have detected (``analysis.findings.row_mde``). ``changed`` is whether the class
differs. ``differs`` names what the two tables' runs of that sweep do not share, as facts: the seeds paired,
the minimum detectable effect, the metric's range, pairs crossing numerics, and the training configuration
keys whose values differ (``config/<key>`` columns of ``analysis.collect``; the preset's batch and steps, for
example), and the mean evaluation-sampling error of the metric (``<metric>/se``: the probes' evaluation sets).
A row measured in one table only is not a change. It does not say which of them caused the change: that is for the reader, with these beside it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from analysis.collect import load_results
from analysis.directions import verdict_class
from analysis.findings import row_mde
from analysis.summary import Summary, summarize

COLUMNS = (
    "sweep direction metric old_verdict new_verdict changed old_change old_se old_n new_change new_se new_n "
    "old_mde new_mde differs"
).split()
# configuration keys that vary within a table by design or say nothing of the training: not reported
IGNORED_CONFIG = (
    "config/seed",
    "config/run_dir",
    "config/threads",
    "config/device",
    "config/progress",
    "config/ckpt_every",
    "config/data.prefetch",
    "config/data.num_workers",
)


def _rows(summaries: list[Summary]) -> dict[tuple[str, str, str], dict]:
    out = {}
    for s in summaries:
        for r in s.directions.to_dict("records"):
            if r["verdict"] == "paper: no change":
                continue
            out[(s.title, r["direction"], r["metric"])] = {**r, "class": verdict_class(r), "summary": s}
    return out


def _text(x) -> str:
    """A configuration value as text, a whole number alike from an int column and from a float one (a
    column with gaps reads 8 as 8.0)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _config_differences(old: Summary, new: Summary) -> list[str]:
    """``key a -> b`` for each training configuration key whose values in the two groups' completed runs
    differ (several values: listed, sorted)."""

    def values(s: Summary, key: str) -> str:
        done = s.runs[s.runs["status"] == "completed"]
        if key not in done:
            return "absent"
        v = sorted({_text(x) for x in done[key].dropna()})
        return "/".join(v) if v else "absent"

    keys = sorted(
        k
        for k in set(old.runs.columns) | set(new.runs.columns)
        if k.startswith("config/") and not k.startswith(IGNORED_CONFIG)
    )
    out = []
    for k in keys:
        a, b = values(old, k), values(new, k)
        if a != b and "absent" not in (a, b):
            out.append(f"{k.removeprefix('config/')} {a} -> {b}")
    return out


def _evaluation_se(s: Summary, metric: str) -> str:
    """The mean evaluation-sampling error of ``metric`` over the group's completed runs (``<metric>/se``, the
    probe's bootstrap over its evaluation samples), as printed; "?" where not recorded."""
    done = s.runs[s.runs["status"] == "completed"]
    column = f"{metric}/se"
    if column not in done or not done[column].notna().any():
        return "?"
    return f"{float(done[column].mean()):.4f}"


def _range(s: Summary, metric: str) -> str:
    has = s.has_range(metric)
    return "range" if has else "no range" if has is False else "range unknown"


def compare(old_results: pd.DataFrame, new_results: pd.DataFrame) -> pd.DataFrame:
    """One row per (sweep, direction, metric) of either table (``COLUMNS``), sorted."""
    old, new = _rows(summarize(old_results)), _rows(summarize(new_results))
    config_differences, evaluation_se = {}, {}  # per sweep, per (group, metric): computed once
    rows = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        row = {"sweep": key[0], "direction": key[1], "metric": key[2]}
        for side, r in (("old", a), ("new", b)):
            row[f"{side}_verdict"] = r["class"] if r else "not measured"
            row[f"{side}_change"] = r["change"] if r else math.nan
            row[f"{side}_se"] = r["se"] if r else math.nan
            row[f"{side}_n"] = int(r["n"]) if r and pd.notna(r["n"]) else 0
            row[f"{side}_mde"] = row_mde(r) if r else math.nan
        row["changed"] = bool(a and b) and row["old_verdict"] != row["new_verdict"]
        differs = []
        if a and b:
            if row["old_n"] != row["new_n"]:
                differs.append(f"seeds paired {row['old_n']} -> {row['new_n']}")
            if any(map(math.isfinite, (row["old_mde"], row["new_mde"]))):
                differs.append(f"could have seen {_num(row['old_mde'])} -> {_num(row['new_mde'])}")
            for side, r in (("old", a), ("new", b)):
                if (side, key[0], key[2]) not in evaluation_se:
                    evaluation_se[side, key[0], key[2]] = _evaluation_se(r["summary"], key[2])
            ea, eb = evaluation_se["old", key[0], key[2]], evaluation_se["new", key[0], key[2]]
            if ea != eb:
                differs.append(f"evaluation error {ea} -> {eb}")
            ra, rb = _range(a["summary"], key[2]), _range(b["summary"], key[2])
            if ra != rb:
                differs.append(f"{ra} -> {rb}")
            ca, cb = (
                bool(str(a.get("crossing_seeds") or "").strip()),
                bool(str(b.get("crossing_seeds") or "").strip()),
            )
            if ca != cb:
                differs.append(
                    f"pairs crossing numerics: {'some' if ca else 'none'} -> {'some' if cb else 'none'}"
                )
            if key[0] not in config_differences:
                config_differences[key[0]] = _config_differences(a["summary"], b["summary"])
            differs += config_differences[key[0]]
        row["differs"] = "; ".join(differs)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _num(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "?"


def _cell(change: float, se: float, n: int, verdict: str) -> str:
    if not math.isfinite(change):
        return verdict
    spread = f" ± {se:.3f}" if math.isfinite(se) else ""
    return f"{change:+.3f}{spread} (n={n}): {verdict}"


def markdown(table: pd.DataFrame, old_name: str, new_name: str) -> str:
    """The comparison as Markdown: a count of changed verdicts, then one table row per direction."""
    changed = table[table["changed"]]
    both = table[(table["old_verdict"] != "not measured") & (table["new_verdict"] != "not measured")]
    lines = [
        f"# The paper's directions: `{old_name}` against `{new_name}`\n",
        "Generated by `analysis.verdict_changes`; do not edit by hand. Each table's verdicts are Holm-corrected "
        "per paper source within that table, as in its report. `could have seen`: the smallest change its "
        "paired seeds detect (paired t test at 5 % with 80 % power, before the correction). What differs is "
        "listed as facts, not as the cause.\n",
        f"{len(changed)} of the {len(both)} (sweep, ingredient, metric) rows measured in both changed verdict "
        f"class; {len(table) - len(both)} are measured in one of them only.\n",
        "| sweep | ingredient | metric | old | new | changed | what differs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in both.to_dict("records"):
        lines.append(
            f"| {r['sweep']} | {r['direction']} | `{r['metric'].removeprefix('probe/')}` | "
            f"{_cell(r['old_change'], r['old_se'], r['old_n'], r['old_verdict'])} | "
            f"{_cell(r['new_change'], r['new_se'], r['new_n'], r['new_verdict'])} | "
            f"{'**yes**' if r['changed'] else 'no'} | {r['differs']} |"
        )
    for side, name in (("new", old_name), ("old", new_name)):
        only = table[table[f"{side}_verdict"] == "not measured"]
        if len(only):
            counts = only.groupby("sweep").size()
            lines.append(
                f"\nMeasured in `{name}` only ({len(only)} rows, not compared): "
                + ", ".join(f"{sweep} ({n})" for sweep, n in counts.items())
                + "."
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m analysis.verdict_changes", description=__doc__.split("\n")[0]
    )
    ap.add_argument("old", help="results.csv of the earlier runs (analysis.collect)")
    ap.add_argument("new", help="results.csv of the later runs")
    ap.add_argument("--out", help="write the Markdown here (default: print it)")
    args = ap.parse_args(argv)
    for path in (args.old, args.new):
        if not Path(path).is_file():
            raise SystemExit(f"analysis.verdict_changes: no results file {path}")
    text = markdown(compare(load_results(args.old), load_results(args.new)), args.old, args.new)
    if args.out:
        Path(args.out).write_text(text)
        print(f"[verdict_changes] -> {args.out}", file=sys.stderr)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
