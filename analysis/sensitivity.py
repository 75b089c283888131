"""The probes as a measuring instrument: ``reports/sensitivity/README.md`` from committed results files.

Inputs (in the folder given, ``reports/sensitivity/`` by default):

* ``<probe set>.csv``: results tables (``analysis.collect``) of the same runs probed with one probe set each,
  named in ``PROBE_SETS`` (``v1``: the probes before the sensitivity work, ``default``: today's), each probed
  with the random-init baseline, bootstrap errors and refits;
* ``dense_candidates.csv``: candidate settings of the dense probes measured on those runs against random
  init (``candidates_table`` builds it from ``python -m vjepa.evaluate ... out=FILE`` outputs);
* the reproduction's ``results.csv`` (``--results``, default ``reports/results.csv``), for the motion label:
  the video-pretrained runs probed beside their random init on moving MNIST (``motion_table``).

``python -m analysis.sensitivity [--dir reports/sensitivity] [--candidates seed0.json ...]`` writes the
README (and, with ``--candidates``, first the candidates table). Regenerating from the same files gives the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pandas as pd
from scipy import stats as st

from analysis.ledger import ledger, markdown
from analysis.summary import without_untrained_probes

PROBE_SETS = {"v1": "old probes (`probes=v1`)", "default": "new probes (`probes=default`)"}
CANDIDATE_COLUMNS = "seed task metric pretrained random se gap_se time_s random_time_s".split()
HEADLINE = re.compile(r"(top1|_top1|miou|ap50|ap)")


def candidates_table(paths: list[Path]) -> pd.DataFrame:
    """One row per (run, task, headline metric) of ``vjepa.evaluate`` outputs (``out=`` JSON files named
    ``...seed<N>.json``) that carry ``probe/...`` and ``probe_random/...``."""
    rows = []
    for path in paths:
        d = json.loads(Path(path).read_text())
        seed = int(re.search(r"seed(\d+)", Path(path).stem).group(1))
        for key, value in sorted(d.items()):
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != "probe" or not HEADLINE.fullmatch(parts[2]):
                continue
            task, metric = parts[1], parts[2]
            rows.append(
                {
                    "seed": seed,
                    "task": task,
                    "metric": metric,
                    "pretrained": value,
                    "random": d.get(f"probe_random/{task}/{metric}", math.nan),
                    "se": d.get(f"{key}/se", math.nan),
                    "gap_se": d.get(f"{key}/gap_se", math.nan),
                    "time_s": d.get(f"probe/{task}/time_s", math.nan),
                    "random_time_s": d.get(f"probe_random/{task}/time_s", math.nan),
                }
            )
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS).sort_values(["task", "metric", "seed"])


def _f(x: float, digits: int = 3) -> str:
    return "" if not math.isfinite(x) else f"{x:.{digits}f}"


def candidates_markdown(c: pd.DataFrame) -> str:
    lines = [
        "| candidate | metric | seeds | pretrained | random init | gap (paired by seed) | p (paired t) | "
        "eval sampling of the gap (se) | gap / pooled se | time per encoder (s) |",
        "|" + "---|" * 10,
    ]
    for (task, metric), g in c.groupby(["task", "metric"], sort=False):
        gaps = (g["pretrained"] - g["random"]).to_numpy(float)
        n = len(gaps)
        se = gaps.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
        p = 2 * st.t.sf(abs(gaps.mean()) / se, n - 1) if n > 1 and se > 0 else math.nan
        pooled = math.hypot(se, g["gap_se"].mean()) if n > 1 else math.nan
        z = gaps.mean() / pooled if pooled and math.isfinite(pooled) else math.nan
        t = (g["time_s"].mean() + g["random_time_s"].mean()) / 2
        lines.append(
            f"| `{task}` | {metric} | {n} | {_f(g['pretrained'].mean())} | {_f(g['random'].mean())} | "
            f"{gaps.mean():+.4f} ± {_f(se, 4)} | {_f(p, 3)} | {_f(g['gap_se'].mean(), 4)} | {_f(z, 1)} | {t:.0f} |"
        )
    return "\n".join(lines)


def _cifar(runs: pd.DataFrame) -> str:
    lines = [
        "| probe | seed | tiny preset | random init | gap | eval sampling (se) | eval sampling of the gap (se) |",
        "|---|---|---|---|---|---|---|",
    ]
    done = runs[runs["status"] == "completed"].sort_values("seed")
    for task in ("cifar10_knn", "cifar10_linear", "cifar10_attentive"):
        m = f"probe/{task}/top1"
        if m not in done.columns:
            continue
        for _, row in done.iterrows():
            pre, rnd = row[m], row.get(f"probe_random/{task}/top1", math.nan)
            if not (math.isfinite(pre) and math.isfinite(rnd)):
                continue
            lines.append(
                f"| `{task}` | {int(row['seed'])} | {_f(pre)} | {_f(rnd)} | {pre - rnd:+.3f} | "
                f"{_f(row.get(m + '/se', math.nan))} | {_f(row.get(m + '/gap_se', math.nan), 4)} |"
            )
    return "\n".join(lines)


def timing_table(paths: dict[str, Path]) -> pd.DataFrame:
    """Per probe set (name -> an ``evaluate ... out=`` JSON of one run probed with ``baseline=true``), the
    wall time of each task for the pretrained and the random-init encoder."""
    rows = []
    for name, path in paths.items():
        d = json.loads(Path(path).read_text())
        for key, value in sorted(d.items()):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "time_s" and parts[0] in ("probe", "probe_random"):
                rows.append({"probe_set": name, "encoder": parts[0], "task": parts[1], "time_s": value})
    return pd.DataFrame(rows, columns=["probe_set", "encoder", "task", "time_s"])


def _times(t: pd.DataFrame) -> str:
    lines = ["| probe set | task | pretrained encoder (s) | random-init encoder (s) |", "|---|---|---|---|"]
    for (name, task), g in t.groupby(["probe_set", "task"], sort=False):
        by = dict(zip(g["encoder"], g["time_s"], strict=True))
        lines.append(
            f"| {PROBE_SETS.get(name, name)} | {task} | {by.get('probe', math.nan):.0f} | "
            f"{by.get('probe_random', math.nan):.0f} |"
        )
    return "\n".join(lines)


def _range_sentences(tables: dict[str, pd.DataFrame]) -> list[str]:
    out = []
    for name, runs in tables.items():
        led = ledger(without_untrained_probes(runs)[0])
        yes = [
            m.removeprefix("probe/") for m, r in zip(led["metric"], led["range"], strict=True) if r == "yes"
        ]
        no = [
            m.removeprefix("probe/") for m, r in zip(led["metric"], led["range"], strict=True) if r != "yes"
        ]
        out.append(
            f"- {PROBE_SETS[name]}: {len(yes)} of {len(led)} probe metrics have range "
            f"({', '.join(f'`{m}`' for m in yes) or 'none'}); without range or unknown: "
            f"{', '.join(f'`{m}`' for m in no) or 'none'}."
        )
    return out


INTRO = [
    "The default tiny run as the preset was first shipped (`preset=tiny batch_size=128 steps=1000 data=real "
    "data.mix=image`, the token loss: `loss_granularity`'s `loss=token` point; the preset since re-chosen is in "
    "`reports/tiny_preset/`), 3 seeds trained from one commit, each probed twice from its checkpoint: with the "
    "probe set used before (`probes=v1`) and with today's (`probes=default`), each beside the random-init "
    "encoder it started from (`baseline=true`), with the bootstrap errors and 3 refits of every head whose "
    "fit is random (`probes.tasks.<task>.refits=3`). The commands are in `sweeps/sensitivity.sh`.",
    "",
    "Read a ledger row as: the gap between the pretrained and the random-init encoder (paired by seed) is "
    "what the probe can see of pretraining; the seed spread, evaluation-sampling error and refit spread are "
    "what it cannot tell from noise. A probe whose gap is within noise has no range: no ablation can show "
    "an effect on it except by chance.",
    "",
]


MOTION_SWEEP, MOTION_VARIANT = "data_mix", "joint"  # the reproduction's video-pretrained runs with a baseline
MOTION_HEADS = {"mnist_video": "attentive", "mnist_video_linear": "linear (average-pooled tokens)"}


def motion_table(results: pd.DataFrame) -> pd.DataFrame:
    """Moving-MNIST labels (direction = motion, digit = appearance) by head, for the runs of ``MOTION_SWEEP``'s
    ``MOTION_VARIANT`` that were probed beside their random-init encoder: one row per (head, label) with the
    per-seed means, the paired gap, its standard error and the paired t-test's p."""
    runs = results[(results["sweep"] == MOTION_SWEEP) & (results["variant"] == MOTION_VARIANT)]
    rows = []
    for task, head in MOTION_HEADS.items():
        for label in ("direction", "digit"):
            cols = [f"probe/{task}/{label}_top1", f"probe_random/{task}/{label}_top1"]
            if not set(cols) <= set(runs.columns):
                continue
            pre, rnd = (runs[cols].dropna()[c] for c in cols)
            if len(pre) < 2:
                continue
            gap = pre - rnd
            rows.append(
                {
                    "label": label,
                    "head": head,
                    "seeds": len(pre),
                    "pretrained": pre.mean(),
                    "random": rnd.mean(),
                    "gap": gap.mean(),
                    "gap_se": gap.std(ddof=1) / math.sqrt(len(gap)),
                    "p": float(st.ttest_rel(pre, rnd).pvalue),
                }
            )
    return pd.DataFrame(rows)


def _motion(m: pd.DataFrame, versions: str) -> list[str]:
    lines = [
        f"The reproduction's `{MOTION_SWEEP}` runs pretrained on joint image + video batches (`data.mix="
        f"{MOTION_VARIANT}`, {m['seeds'].max()} seeds, trained at {versions}), probed with the old probe set "
        "(300 validation clips: evaluation-sampling error about 0.03; the new set's 2,500 clips bring it to "
        "0.01) beside the random-init encoder each started from (`reports/results.csv`).",
        "",
        "| label | head | pretrained | random init | gap (paired by seed) | p (paired t) |",
        "|---|---|---|---|---|---|",
    ]
    for r in m.itertuples():
        lines.append(
            f"| {r.label} | {r.head} | {_f(r.pretrained)} | {_f(r.random)} | {r.gap:+.3f} ± {r.gap_se:.3f} "
            f"(n={r.seeds}) | {r.p:.3f} |"
        )
    d = m[m["label"] == "direction"].set_index("head")
    if not set(MOTION_HEADS.values()) <= set(d.index):
        return lines
    att, lin = d.loc[MOTION_HEADS["mnist_video"]], d.loc[MOTION_HEADS["mnist_video_linear"]]
    lines += [
        "",
        f"The attentive head reads the direction of motion from the random-init encoder at {_f(att.random)} "
        f"(8 directions), so on it pretraining cannot show (gap {att.gap:+.3f} ± {att.gap_se:.3f}). Read "
        f"linearly from average-pooled tokens, random init reads {_f(lin.random)} and the video-pretrained "
        f"encoder {_f(lin.pretrained)}: a gap of {lin.gap / lin.gap_se:.1f} of its seed standard errors "
        f"(p {lin.p:.3f} with {lin.seeds} seeds). So the motion label that random init does not already solve "
        "is `mnist_video_linear/direction_top1` (the default probe set keeps it, on 2,500 validation clips); "
        + (
            "pretraining lifts it beyond noise."
            if lin.p < 0.05
            else "whether pretraining lifts it beyond noise cannot be told from these runs: they say only "
            "that it has room to."
        ),
    ]
    return lines


def readme(folder: Path, results: Path | None = None) -> str:
    tables = {
        name: pd.read_csv(folder / f"{name}.csv", low_memory=False)
        for name in PROBE_SETS
        if (folder / f"{name}.csv").exists()
    }
    parts = [
        "# Sensitivity of the probes",
        "",
        "Generated by `python -m analysis.sensitivity` from the files in this folder; do not edit by hand.",
        "",
    ]
    parts += INTRO
    if tables:
        parts += ["## In short", "", *_range_sentences(tables), ""]
    for name, runs in tables.items():
        kept, left_out = without_untrained_probes(runs)
        versions = ", ".join(sorted(set(runs["code_version"].dropna().astype(str))))
        numerics = ", ".join(
            sorted(set(runs.get("probe_numerics", pd.Series(dtype=str)).dropna().astype(str)))
        )
        parts += [
            f"## Noise ledger, {PROBE_SETS[name]}",
            "",
            f"`{name}.csv`: {len(runs)} runs (seeds {', '.join(map(str, sorted(runs['seed'].unique())))}), "
            f"trained at {versions}; probes' numerics id {numerics or 'not recorded'}.",
            "",
            markdown(ledger(kept)),
            "",
        ]
        if left_out:
            said = ", ".join(f"{m} probes of {n} run(s)" for m, n in sorted(left_out.items()))
            parts += [f"Left out: the {said}, whose tokenizer for that modality never trained.", ""]
    if "default" in tables:
        parts += [
            "## CIFAR-10 on the full splits (50,000 train, 10,000 test)",
            "",
            _cifar(tables["default"]),
            "",
        ]
    cand = folder / "dense_candidates.csv"
    if cand.exists():
        parts += ["## Dense probe settings, measured", "", candidates_markdown(pd.read_csv(cand)), ""]
    full = pd.read_csv(results, low_memory=False) if results and Path(results).exists() else None
    motion = motion_table(full) if full is not None else pd.DataFrame()
    if len(motion):
        runs = full[(full["sweep"] == MOTION_SWEEP) & (full["variant"] == MOTION_VARIANT)]
        versions = ", ".join(sorted(set(runs["code_version"].dropna().astype(str))))
        parts += ["## A motion label", "", *_motion(motion, versions), ""]
    timing = folder / "timing.csv"
    if timing.exists():
        t = pd.read_csv(timing)
        totals = t.groupby("probe_set", sort=False)["time_s"].sum()
        said = "; ".join(f"{PROBE_SETS.get(k, k)}: {v:.0f} s" for k, v in totals.items())
        parts += [
            "## Time of the probe set per run",
            "",
            "One run (seed 0) probed with each set as shipped (no refits), the random-init encoder beside it, "
            "one process with two threads on the 2-core machine, one set after the other; a task's time "
            "includes building its data and extracting its features where it is the first to need them "
            f"(CIFAR-10's 60,000 images: k-NN's row). In all: {said}.",
            "",
            _times(t),
            "",
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m analysis.sensitivity", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path("reports/sensitivity"))
    p.add_argument("--candidates", nargs="*", type=Path, default=[])
    p.add_argument("--timing", nargs="*", default=[], metavar="SET=JSON")
    p.add_argument("--results", type=Path, default=Path("reports/results.csv"), help="for the motion label")
    args = p.parse_args(argv)
    if args.timing:
        paths = dict(item.split("=", 1) for item in args.timing)
        timing_table(paths).to_csv(args.dir / "timing.csv", index=False)
    if args.candidates:
        candidates_table(args.candidates).to_csv(args.dir / "dense_candidates.csv", index=False)
    (args.dir / "README.md").write_text(readme(args.dir, args.results))
    print(f"[sensitivity] wrote {args.dir / 'README.md'}")


if __name__ == "__main__":
    main()
