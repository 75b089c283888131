"""The noise ledger: for each probe metric, how large each source of noise is beside what pretraining moved.

For a set of completed runs (one sweep group, or one variant's seeds) and each probe metric
``probe/<task>/<m>`` with a value, one row:

* ``pretrained`` / ``random``: the mean score of the runs and of their random-init encoders (one per seed);
* ``gap``, ``gap_se``: the random-init gap paired by seed (``analysis.ranges.probe_range``), the standard
  error of its mean over seeds;
* ``seed_sd``: the pretraining-seed spread, the sample standard deviation over the runs of one variant
  (pooled over variants: within-variant, so an ablation's own effect is not counted as noise);
* ``eval_se``: the evaluation-sampling error, the bootstrap over the evaluation samples the probe recorded
  (``<metric>/se``, mean over runs), and ``eval_gap_se`` that of the paired pretrained-minus-random
  difference on the same samples (``<metric>/gap_se``);
* ``refit_sd``: the spread of the probe's own fit over refits with other head seeds (``<metric>/refit_sd``,
  recorded by probes run with ``refits`` > 1); "fixed" where the fit is deterministic (linear classifiers
  from zero weights with L-BFGS, k-NN: tasks named ``*_linear`` / ``*_knn`` scoring top-1), empty where it
  was not measured;
* ``pooled_se``: the error of the gap counting both the seeds and the shared evaluation set,
  sqrt(gap_se^2 + eval_gap_se^2) (the bootstrap error is not divided by the seeds: every seed is scored on
  the same samples, so that error does not average out), and ``z`` = gap / pooled_se;
* ``range``: ``probe_range``'s verdict (yes / no / unknown) and its reason;
* ``mde``: the minimum detectable effect of a comparison of two variants at the runs' number of seeds,
  paired, two-sided at 5 %, 80 % power (``vjepa.power``), from the sd of a paired difference these runs
  give (``vjepa.power.difference_spread``: same-seed differences between variants where there are
  several, else sqrt(2) x the seed spread).

``python -m analysis.ledger RESULTS.csv [--sweep S] [--variant V] [--label L] ...`` prints the ledger as
markdown (several results files: one ledger each, e.g. the same runs under two probe sets).
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.ablations import PROBE_METADATA
from analysis.ranges import probe_range
from vjepa.power import difference_spread, minimum_detectable_effect

SCORE = re.compile(r"probe/[^/]+/[^/]+")
DETERMINISTIC = ("linear", "knn")  # heads whose fit has no seed
COLUMNS = (
    "metric pretrained random gap gap_se seed_sd eval_se eval_gap_se refit_sd pooled_se z n range reason mde"
).split()


def score_metrics(runs: pd.DataFrame) -> list[str]:
    """The probe score columns with a value (per-class and metadata keys left out)."""
    return sorted(
        c
        for c in runs.columns
        if SCORE.fullmatch(c) and c.rsplit("/", 1)[-1] not in PROBE_METADATA and runs[c].notna().any()
    )


def _mean(runs: pd.DataFrame, column: str) -> float:
    return float(runs[column].mean()) if column in runs.columns and runs[column].notna().any() else math.nan


def _seed_sd(runs: pd.DataFrame, metric: str) -> float:
    """Within-variant sample std of ``metric``, pooled over variants (degrees of freedom weighted)."""
    ss, df = 0.0, 0
    for _, g in runs.groupby("variant", dropna=False):
        v = g[metric].dropna().to_numpy(float)
        if len(v) > 1:
            ss += float(((v - v.mean()) ** 2).sum())
            df += len(v) - 1
    return math.sqrt(ss / df) if df else math.nan


def _refit(runs: pd.DataFrame, metric: str) -> float | str:
    column = f"{metric}/refit_sd"
    if column in runs.columns and runs[column].notna().any():
        return float(runs[column].mean())
    # classification by a linear or k-NN head is a deterministic fit; a segmentation probe's pixel draw, a
    # detection head and an attentive head depend on a seed (vjepa.probes.runner.RANDOM_FITS)
    task, name = metric.split("/")[1], metric.rsplit("/", 1)[-1]
    deterministic = name.endswith("top1") and task.split("_")[-1] in DETERMINISTIC
    return "fixed" if deterministic else math.nan


def ledger(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per probe metric of the completed ``runs`` (see the module)."""
    done = runs[runs["status"] == "completed"]
    seeds = done["seed"].nunique()
    rows = []
    for metric in metrics or score_metrics(done):
        r = probe_range(done, metric)
        spread = difference_spread(done, metric)
        mde = minimum_detectable_effect(spread.sd, seeds) if spread is not None else math.nan
        eval_gap_se = _mean(done, f"{metric}/gap_se")
        pooled = math.hypot(r["se"], eval_gap_se) if math.isfinite(eval_gap_se) else r["se"]
        rows.append(
            {
                "metric": metric,
                "pretrained": _mean(done, metric),
                "random": r["random"],
                "gap": r["gap"],
                "gap_se": r["se"],
                "seed_sd": _seed_sd(done, metric),
                "eval_se": _mean(done, f"{metric}/se"),
                "eval_gap_se": eval_gap_se,
                "refit_sd": _refit(done, metric),
                "pooled_se": pooled,
                "z": r["gap"] / pooled if pooled and math.isfinite(pooled) and pooled > 0 else math.nan,
                "n": r["n"],
                "range": {True: "yes", False: "no", None: "unknown"}[r["has_range"]],
                "reason": r["reason"],
                "mde": mde,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(x, digits: int = 3) -> str:
    if isinstance(x, str):
        return x
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(x)
    return f"{x:.{digits}f}" if abs(x) >= 10**-digits or x == 0 else f"{x:.1g}"


def markdown(table: pd.DataFrame) -> str:
    head = (
        "| probe metric | pretrained | random init | gap (paired by seed) | seed spread (sd) | "
        "eval sampling (se) | eval sampling of the gap (se) | refit spread (sd) | gap / pooled se | "
        "minimum detectable effect | range |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in table.itertuples(index=False):
        gap = f"{_cell(r.gap)} ± {_cell(r.gap_se)} (n={r.n})" if math.isfinite(r.gap) else ""
        z = f"{r.z:.1f}" if math.isfinite(r.z) else ""
        rng = r.range if r.range == "yes" else f"{r.range}: {r.reason}"
        lines.append(
            f"| `{r.metric}` | {_cell(r.pretrained)} | {_cell(r.random)} | {gap} | {_cell(r.seed_sd)} | "
            f"{_cell(r.eval_se)} | {_cell(r.eval_gap_se)} | {_cell(r.refit_sd)} | {z} | {_cell(r.mde)} | {rng} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m analysis.ledger", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--sweep", help="only the runs of this sweep")
    p.add_argument("--variant", help="only the runs of this variant")
    p.add_argument("--label", action="append", default=[], help="a title per results file")
    args = p.parse_args(argv)
    for i, path in enumerate(args.results):
        runs = pd.read_csv(path, low_memory=False)
        if args.sweep:
            runs = runs[runs["sweep"] == args.sweep]
        if args.variant:
            runs = runs[runs["variant"].astype(str) == args.variant]
        if runs.empty:
            raise SystemExit(f"{path}: no runs match --sweep {args.sweep} --variant {args.variant}")
        title = args.label[i] if i < len(args.label) else str(path)
        print(f"### {title}\n\n{markdown(ledger(runs))}\n")


if __name__ == "__main__":
    main()
