"""Re-choosing the tiny preset: ``reports/tiny_preset/README.md`` from committed results files.

Inputs: the first preset's runs (``--first``, default ``reports/sensitivity/default.csv``: the default
tiny run's seeds probed with the default probe set beside their random-init encoders) and, in ``--dir``
(default ``reports/tiny_preset/``), one results table per candidate configuration (``<name>.csv``, written by
``sweeps/tiny_candidates.sh``), probed the same way. What a candidate changes is read from the tables'
``config/`` columns, not restated here. A dense-probe setting measured apart from the runs' own probes
(``dense.csv`` in ``--dir``: one row per configuration, seed and metric, ``--dense`` builds it from
``vjepa.evaluate ... out=<config>-seed<N>.json`` files; the first preset's from ``--first-dense``,
reports/sensitivity's candidates table) joins each run's row by seed as one more probe metric.

Per configuration and image probe metric: the random-init gap paired by seed and its pooled standard error
(``analysis.ledger``), and whether the gap reaches ``TARGET_Z`` pooled standard errors. Per candidate and
metric, against the first preset: the difference of the gaps, paired by seed (same seed, same random-init
encoder), a one-sample t test on the per-seed differences, Holm-corrected over every (candidate, metric)
pair. A candidate is adopted only if it beats the first preset beyond noise on some metric and loses on
none; otherwise the first preset stays, and the report says so.

``python -m analysis.tiny_preset [--dir reports/tiny_preset] [--dense out.json ...]`` writes the README (with
``--dense``, first ``dense.csv``); the same files give the same bytes.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from analysis.ledger import ledger, markdown
from analysis.sensitivity import candidates_table
from analysis.stats import ALPHA, holm
from analysis.summary import without_untrained_probes

TARGET_Z = 5.0  # the target: every headline probe's gap at least 5 pooled standard errors
FIRST = "first"  # the preset as first shipped
IGNORED_CONFIG = ("config/seed", "config/ckpt_every")


DENSE = "dense.csv"


def dense_table(paths: list[Path]) -> pd.DataFrame:
    """``candidates_table`` of ``<config>-seed<N>.json`` files with the configuration's name added."""
    rows = []
    for path in paths:
        one = candidates_table([path])
        one.insert(0, "config", Path(path).stem.rsplit("-seed", 1)[0])
        rows.append(one)
    return pd.concat(rows, ignore_index=True)


def _with_dense(runs: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each (task, metric) of ``dense`` as probe columns, joined by seed."""
    runs = runs.copy()
    for (task, metric), rows in dense.groupby(["task", "metric"], sort=True):
        by_seed = rows.set_index("seed")
        key = f"probe/{task}/{metric}"
        for column, source in (
            (key, "pretrained"),
            (key.replace("probe/", "probe_random/", 1), "random"),
            (f"{key}/se", "se"),
            (f"{key}/gap_se", "gap_se"),
        ):
            runs[column] = runs["seed"].map(by_seed[source])
    return runs


def load(folder: Path, first: Path, first_dense: Path | None = None) -> dict[str, pd.DataFrame]:
    """The first preset's runs first, then each candidate's (sorted by name); completed runs only, the
    probes of a modality a run never trained blanked, the dense-probe setting joined where measured."""
    paths = {FIRST: first} | {p.stem: p for p in sorted(folder.glob("*.csv")) if p.name != DENSE}
    dense = pd.read_csv(folder / DENSE) if (folder / DENSE).exists() else None
    tables = {}
    for name, path in paths.items():
        runs = pd.read_csv(path, low_memory=False)
        runs = runs[runs["status"] == "completed"]
        if len(runs) == 0:
            raise ValueError(f"{path}: no completed runs")
        runs = without_untrained_probes(runs)[0]
        if dense is not None:
            if name == FIRST:
                mine = pd.read_csv(first_dense) if first_dense and Path(first_dense).exists() else None
                mine = None if mine is None else mine[mine["task"].isin(set(dense["task"]))]
            else:
                mine = dense[dense["config"] == name]
            if mine is not None and len(mine):
                runs = _with_dense(runs, mine)
        tables[name] = runs
    return tables


def changes(first: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The configuration keys whose value differs from the first preset's, as ``key=value``."""
    out = []
    for col in sorted(c for c in runs.columns if c.startswith("config/") and c not in IGNORED_CONFIG):
        mine = set(runs[col].dropna().astype(str))
        theirs = set(first[col].dropna().astype(str)) if col in first else set()
        if mine != theirs:
            out.append(f"{col.removeprefix('config/')}={'/'.join(sorted(mine)) or 'null'}")
    return ", ".join(out) or "nothing"


def gaps(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (configuration, probe metric): ``analysis.ledger``'s columns and ``meets`` (z at least
    ``TARGET_Z``)."""
    frames = []
    for name, runs in tables.items():
        table = ledger(runs)
        table.insert(0, "config", name)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out["meets"] = out["z"] >= TARGET_Z
    return out


def _per_seed_gap(runs: pd.DataFrame, metric: str) -> pd.Series:
    random = metric.replace("probe/", "probe_random/", 1)
    return (runs[metric] - runs[random]).groupby(runs["seed"]).mean().dropna()


def against_first(tables: dict[str, pd.DataFrame], metrics: list[str]) -> pd.DataFrame:
    """Per candidate and metric: the candidate's gap minus the first preset's, paired by seed, its
    standard error, the t test's p and the Holm-adjusted p over all rows, and the verdict."""
    rows = []
    base = tables[FIRST]
    for name, runs in tables.items():
        if name == FIRST:
            continue
        for metric in metrics:
            if metric not in runs or metric not in base:
                continue
            d = (_per_seed_gap(runs, metric) - _per_seed_gap(base, metric)).dropna()
            n = len(d)
            se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            p = float(st.ttest_1samp(d, 0.0).pvalue) if n > 1 and se > 0 else math.nan
            rows.append({"config": name, "metric": metric, "diff": float(d.mean()), "se": se, "n": n, "p": p})
    out = pd.DataFrame(rows, columns=["config", "metric", "diff", "se", "n", "p"])
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []
    out["verdict"] = [
        "cannot tell" if not (p < ALPHA) else ("better" if diff > 0 else "worse")
        for p, diff in zip(out["p_holm"], out["diff"], strict=True)
    ]
    return out


def choice(g: pd.DataFrame, versus: pd.DataFrame) -> tuple[str, str]:
    """(configuration adopted, why): a candidate better beyond noise on some metric and worse on none,
    the one meeting the target on most metrics; else the first preset."""
    eligible = []
    for name, rows in versus.groupby("config", sort=True):
        if (rows["verdict"] == "better").any() and not (rows["verdict"] == "worse").any():
            eligible.append((int(g[g["config"] == name]["meets"].sum()), name))
    if not eligible:
        return (
            FIRST,
            "no candidate is better than the first preset beyond noise on any probe without being worse on another",
        )
    meets, name = max(eligible)
    better = ", ".join(
        f"`{m}`" for m in versus[(versus["config"] == name) & (versus["verdict"] == "better")]["metric"]
    )
    return (
        name,
        f"better than the first preset beyond noise on {better}, worse on none, {meets} metrics at the target",
    )


def _f(x: float, digits: int = 3) -> str:
    if not isinstance(x, (int, float, np.floating)) or not math.isfinite(x):
        return ""
    return f"{x:+.{digits}f}" if digits else f"{x:.0f}"


def _adopted_lines(adopted: str, g: pd.DataFrame, versus: pd.DataFrame) -> list[str]:
    """Where the adopted configuration meets the target and where not, and how its gaps compare."""
    rows = g[g["config"] == adopted]
    short = ", ".join(
        f"`{m}` ({z:.1f})" for m, z in zip(rows["metric"], rows["z"], strict=True) if not z >= TARGET_Z
    )
    lines = [
        f"`{adopted}` meets the target on {int(rows['meets'].sum())} of {len(rows)} probe metrics"
        + (f"; not on {short} (z in brackets)." if short else "."),
    ]
    mine = versus[versus["config"] == adopted]
    if len(mine):
        larger = int((mine["diff"] > 0).sum())
        lines.append(
            f"Against the first preset its gap is larger on {larger} of {len(mine)} metrics; "
            f"{int((mine['verdict'] == 'better').sum())} of them beyond noise after the correction, "
            f"{int((mine['verdict'] == 'worse').sum())} smaller beyond noise."
        )
    return [*lines, ""]


def _numerics_caveat(tables: dict[str, pd.DataFrame]) -> list[str]:
    """A sentence where a candidate's runs and the first preset's are not known to share training numerics."""
    first = set(tables[FIRST]["numerics"].dropna().astype(str))
    crossing = [
        name
        for name, runs in tables.items()
        if name != FIRST and (not first or set(runs["numerics"].dropna().astype(str)) != first)
    ]
    if not crossing:
        return []
    said = ", ".join(f"`{n}`" for n in crossing)
    versions = ", ".join(sorted(set(tables[FIRST]["code_version"].dropna().astype(str))))
    first_said = (
        f"numerics {', '.join(sorted(first))}" if first else "no training numerics id (recorded since)"
    )
    return [
        f"These pairs cross training code: the first preset's runs (trained at {versions}) have {first_said}, "
        f"unlike {said}, so their arithmetic is not known to be identical and a difference may include that. "
        "Each configuration's own gap to random init does not depend on it.",
        "",
    ]


def _p(x: float, n: int) -> str:
    return f"{x:.3f}" if math.isfinite(x) else ("one seed" if n < 2 else "no spread")


def readme(tables: dict[str, pd.DataFrame]) -> str:
    g = gaps(tables)
    metrics = sorted(set(g["metric"]))
    versus = against_first(tables, metrics)
    adopted, why = choice(g, versus)
    base = tables[FIRST]
    lines = [
        "# Re-choosing the tiny preset",
        "",
        "Generated by `python -m analysis.tiny_preset` from the files in this folder and the first preset's "
        "runs (`reports/sensitivity/default.csv`); do not edit by hand. The candidates were trained by "
        "`sweeps/tiny_candidates.sh`, each seed probed with the default image probes beside the random-init "
        "encoder it started from (bootstrap errors, 3 refits of every head whose fit is random). "
        "`camvid_linear` draws its training pixels uniformly, as the probe set did then; `cam32_b` is the same "
        "probe with class-balanced pixels (today's `camvid_linear`), `cam64_b` at twice the size, "
        "`cam64_b_levels` that on the last 4 levels (`dense.yaml`).",
        "",
        f"Target: every probe's random-init gap at least {TARGET_Z:g} of its pooled standard errors "
        "(seeds and evaluation sampling).",
        "",
        f"**Adopted: `{adopted}`** ({why}).",
        "",
        *_adopted_lines(adopted, g, versus),
        "## The configurations",
        "",
        "| configuration | changes from the first preset | seeds | trained at | training numerics | "
        "training time per run (min; one thread, two runs at a time) | probes at the target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in tables.items():
        rows = g[g["config"] == name]
        versions = ", ".join(sorted(set(runs["code_version"].dropna().astype(str))))
        numerics = ", ".join(sorted(set(runs["numerics"].dropna().astype(str)))) or "not recorded"
        minutes = runs["wall_time_s"].mean() / 60 if "wall_time_s" in runs else math.nan
        said = "(the preset as first shipped)" if name == FIRST else changes(base, runs)
        lines.append(
            f"| `{name}` | {said} | {runs['seed'].nunique()} | {versions} | {numerics} | {_f(minutes, 0)} | "
            f"{int(rows['meets'].sum())} of {len(rows)} |"
        )
    lines += [
        "",
        "Training times are wall time without the probes; the first preset's runs were trained on another day, "
        "and times on these machines move 1.3-1.6x between days.",
        "",
        "## Random-init gap per probe (paired by seed; ± its seed standard error; z = gap / pooled se)",
        "",
        "| probe metric | " + " | ".join(f"`{n}`" for n in tables) + " |",
        "|---|" + "---|" * len(tables),
    ]
    for metric in metrics:
        cells = []
        for name in tables:
            r = g[(g["config"] == name) & (g["metric"] == metric)]
            if len(r) == 0 or not math.isfinite(r["gap"].iloc[0]):
                cells.append("")
                continue
            r = r.iloc[0]
            mark = " ✓" if r["meets"] else ""
            if math.isfinite(r["z"]):
                cells.append(f"{_f(r['gap'])} ± {abs(r['gap_se']):.3f} (z {r['z']:.1f}){mark}")
            else:
                cells.append(f"{_f(r['gap'])} (n={r['n']})")
        lines.append(f"| `{metric}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Noise ledger of the adopted configuration (`{adopted}`)",
        "",
        markdown(g[g["config"] == adopted].drop(columns=["config", "meets"])),
        "",
        "## Each candidate against the first preset",
        "",
        "Candidate's gap minus the first preset's, paired by seed (both start from the same random-init "
        f"encoder per seed where the model's shape is the same); Holm-adjusted over the {versus['p'].notna().sum()} "
        "rows with a p value at "
        f"{ALPHA:g}, which keeps the chance of any false call among them at {ALPHA:g} or less.",
        "",
        *_numerics_caveat(tables),
        "| candidate | probe metric | difference of the gaps | p (paired t) | p (Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in versus.itertuples(index=False):
        lines.append(
            f"| `{r.config}` | `{r.metric}` | {_f(r.diff)} ± {r.se:.3f} (n={r.n}) | {_p(r.p, r.n)} | "
            f"{_p(r.p_holm, r.n)} | {r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m analysis.tiny_preset", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path("reports/tiny_preset"))
    p.add_argument("--first", type=Path, default=Path("reports/sensitivity/default.csv"))
    p.add_argument("--first-dense", type=Path, default=Path("reports/sensitivity/dense_candidates.csv"))
    p.add_argument("--dense", nargs="*", type=Path, default=[], help="vjepa.evaluate out= files to tabulate")
    args = p.parse_args(argv)
    if args.dense:
        dense_table(args.dense).to_csv(args.dir / DENSE, index=False)
    tables = load(args.dir, args.first, args.first_dense)
    (args.dir / "README.md").write_text(readme(tables))
    print(f"[tiny_preset] wrote {args.dir / 'README.md'}")


if __name__ == "__main__":
    main()
