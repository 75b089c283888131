"""``python -m analysis.report --results reports/results.csv --out reports/``: everything in ``reports/``
from the collected results, without training and without checkpoints.

Reads ``results.csv`` and, beside it unless given, ``curves/`` (or ``curves.csv``) and ``data/*.npz`` (all
written by ``analysis.collect``). Writes, per (sweep, preset) group with an axis
(``<stem>`` = ``<sweep>-<preset>``): ``tables/<stem>.{md,csv,tex}``, ``tables/<stem>_agreement.csv`` and
``tables/<stem>_directions.csv`` (where the paper names what an ingredient does);
``figures/<stem>_metrics.png``, ``_directions.png`` (likewise), ``_curves.png``, ``_masks_{image,video}.png``,
``_pca_{image,video}.png``, ``_pcapos_{image,video}.png`` (where the data exist); and
``README.md``, which shows them with the command that produced the runs, the seeds, and a statement per
ablation on agreement with the paper, computed from the data. No timestamps: the same inputs give the same
bytes. Stale ``.md/.csv/.tex/.png`` files in ``tables/`` and ``figures/`` are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import pictures, plots
from analysis.collect import curves_beside, load_curves, load_results
from analysis.findings import findings
from analysis.ledger import ledger
from analysis.ledger import markdown as ledger_markdown
from analysis.numerics import mixed_seeds
from analysis.stats import t95
from analysis.summary import Summary, summarize, without_untrained_probes
from analysis.tables import directions_overview, markdown, statement, to_markdown, write_tables

PROBE_TIMES = ("probe/time_s", "probe_online/time_s", "probe_random/time_s")


def compute_hours(runs: pd.DataFrame) -> tuple[float, float]:
    """(training, probing) hours the runs took: on CPU torch threads x time (core-hours), on a GPU the time.
    Training is ``wall_time_s`` (steps and checkpoints, summed over resumes), probing the probe passes'
    ``<prefix>/time_s`` (end-of-run, online and random-init probes) at ``probe_threads`` where recorded, else
    the training's threads. A run adopted from another sweep (``reused_from``) counts where it trained."""

    def column(name: str, default) -> pd.Series:
        values = runs[name] if name in runs else pd.Series(default, index=runs.index)
        return pd.to_numeric(values, errors="coerce").fillna(default)

    every = pd.Series(True, index=runs.index)
    own = runs["reused_from"].fillna("").astype(str).str.len() == 0 if "reused_from" in runs else every
    cpu = runs["device"].fillna("cpu").astype(str).str.startswith("cpu") if "device" in runs else every
    threads = column("threads", 1).where(cpu, 1)
    probe_threads = column("probe_threads", float("nan")).fillna(threads).where(cpu, 1)
    training = (column("wall_time_s", 0) * threads)[own].sum()
    probing = sum((column(c, 0) * probe_threads)[own].sum() for c in PROBE_TIMES if c in runs)
    return training / 3600, probing / 3600


def _runs_section(results: pd.DataFrame) -> list[str]:
    rows = []
    for (sweep, preset), g in results.groupby(["sweep", "preset"], sort=True):
        counts = g["status"].value_counts()
        other = ", ".join(f"{n} {s}" for s, n in counts.sort_index().items() if s != "completed") or "0"
        training, probing = compute_hours(g)
        rows.append(
            [
                sweep,
                preset or "–",
                g["axis"].iloc[0] or "–",
                str(len(g)),
                str(counts.get("completed", 0)),
                other,
                f"{training:.1f}",
                f"{probing:.1f}",
            ]
        )
    training, probing = compute_hours(results)
    head = ["sweep", "preset", "axis", "runs", "completed", "not completed", "training (h)", "probes (h)"]
    lines = [
        "## Runs\n",
        markdown(head, rows),
        f"Compute: {training:.1f} h of training and {probing:.1f} h of probing in all (on CPU torch threads x "
        "time, i.e. core-hours; on a GPU its time; a run adopted from another sweep counts once, where it "
        "trained; the probes include the random-init ones).\n",
    ]
    bad = results[results["status"] != "completed"]
    if len(bad):
        lines.append("Runs that did not complete (counted, never averaged in):\n")
        lines += [
            f"- `{r.run_id}`: {r.status}" + (f" ({r.error})" if isinstance(r.error, str) else "")
            for r in bad.itertuples()
        ]
        lines.append("")
    done = results[results["status"] == "completed"]
    mixed = done.groupby(["sweep", "preset", "variant"])["group_hash"].nunique()
    for (sweep, preset, variant), n in mixed[mixed > 1].items():
        lines.append(
            f"Warning: variant `{variant}` of {sweep} (preset={preset or '–'}) mixes {n} different "
            "configurations besides the seed (see `group_hash` in results.csv).\n"
        )
    return lines


def _numerics_here(summaries: list[Summary]) -> str:
    """Which groups' runs of one seed cross numerics keys, and how the keys are known, in a sentence or
    two."""
    if not summaries:
        return ""
    recorded = any(not k.startswith("code ") for s in summaries for k in s.numerics_keys)
    crossing = [s.title for s in summaries if mixed_seeds(s.runs)]
    pooled = [s.title for s in summaries if len(s.numerics_keys) > 1 and not mixed_seeds(s.runs)]
    kind = "numerics" if recorded else "code versions"
    out = "" if recorded else " No run here recorded its numerics id, so the code versions stand for them."
    if crossing:
        out += f" Runs of one seed cross {kind} in {', '.join(crossing)}"
        out += f"; in {', '.join(pooled)} they differ only between seeds." if pooled else "."
    elif pooled:
        out += f" No runs of one seed cross {kind}; in {', '.join(pooled)} they differ between seeds."
    else:
        out += f" No group mixes {kind}."
    return out


def _figure(path: Path, out: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out).as_posix()})\n"


LEDGER_INTRO = (
    "Noise ledger (`analysis/ledger.py`): per probe metric, the random-init gap paired by seed beside each "
    "source of noise: the spread over pretraining seeds (within a variant), the evaluation-sampling error "
    "(bootstrap over the evaluation samples, and of the gap on the same samples), the spread of the probe's "
    "own refits where it was measured ('fixed': a deterministic fit), the gap in units of its pooled "
    "standard error, and the minimum detectable effect: the smallest difference between two variants that "
    "this group's seeds detect, paired by seed, two-sided at 5 %, with 80 % power (`vjepa.power`). Runs "
    "probed before these errors were recorded leave their columns empty.\n"
)


def _group(s: Summary, out: Path, curves: pd.DataFrame | None, data: Path) -> tuple[list[str], list[Path]]:
    tables, figures = out / "tables", out / "figures"
    written = write_tables(s, tables)
    lines = [
        f"## {s.title}\n",
        "Command that produced these runs:\n",
        f"```bash\n{s.command}\n```\n",
        to_markdown(s).split("\n", 1)[1].lstrip("\n"),
    ]
    led = ledger(without_untrained_probes(s.runs)[0], [m for m in s.metrics if m.startswith("probe/")])
    if led["random"].notna().any():
        path = tables / f"{s.stem}_ledger.csv"
        led.to_csv(path, index=False, float_format="%.6g")
        written.append(path)
        lines += [LEDGER_INTRO, ledger_markdown(led) + "\n"]
    links = " · ".join(f"[{p.name}]({p.relative_to(out).as_posix()})" for p in written)
    lines.append(f"Tables: {links}\n")
    path = figures / f"{s.stem}_metrics.png"
    if s.metrics:
        plots.plot_ablation(s, path)
        written.append(path)
        lines.append(_figure(path, out, f"{s.title}: metrics"))
    path = figures / f"{s.stem}_directions.png"
    if plots.plot_directions(s, path) is not None:
        written.append(path)
        lines.append(_figure(path, out, f"{s.title}: the paper's ingredients, ours"))
    path = figures / f"{s.stem}_curves.png"
    if curves is not None and plots.plot_curves(s, curves, path) is not None:
        written.append(path)
        lines.append(_figure(path, out, f"{s.title}: training curves"))
    for kind, source, render, caption in pictures.PICTURE_KINDS:
        npz = data / f"{source}_{s.stem}.npz"
        if not npz.exists():
            continue
        for modality in ("image", "video"):
            path = figures / f"{s.stem}_{kind}_{modality}.png"
            if render(npz, modality, path) is not None:
                written.append(path)
                lines.append(_figure(path, out, f"{s.title}: {caption} ({modality})"))
    return lines, written


def _findings_section(summaries: list[Summary]) -> list[str]:
    """What these runs can and cannot tell, first (``analysis.findings``)."""
    bullets = findings(summaries)
    if not bullets:
        return []
    return ["## What these runs can and cannot tell\n", "\n".join(f"- {b}" for b in bullets) + "\n"]


def build(results_path, out, curves_path=None, data_dir=None, argv: list[str] | None = None) -> list[Path]:
    """Write the report; returns the files written (README.md last)."""
    results_path, out = Path(results_path), Path(out)
    curves_path = Path(curves_path) if curves_path else curves_beside(results_path)
    data = Path(data_dir) if data_dir else results_path.parent / "data"
    results = load_results(results_path)
    curves = load_curves(curves_path) if curves_path.exists() else None
    summaries = summarize(results)
    command = "python -m analysis.report " + " ".join(
        argv if argv is not None else ["--results", str(results_path), "--out", str(out)]
    )
    versions = ", ".join(f"`{v}`" for v in sorted(results["code_version"].dropna().unique())) or "unknown"
    lines = [
        "# Ablation results\n",
        "Generated by `analysis.report` from the collected runs; do not edit by hand. Regenerate (no "
        f"training, no checkpoints needed):\n\n```bash\n{command}\n```\n",
        *_findings_section(summaries),
        f"Inputs: `{results_path.name}` ({len(results)} runs), "
        + (
            f"`{curves_path.name}{'/' if curves_path.is_dir() else ''}`"
            if curves is not None
            else "no training curves"
        )
        + ", "
        + (f"`{data.name}/`" if data.is_dir() else "no picture arrays")
        + f". Code that trained the runs (git describe): {versions}.\n",
        *_runs_section(results),
        "## Does the small scale agree with the paper?\n",
        "Computed from the tables below: for each paper metric and the toolkit metric that stands for it "
        "(`analysis/ablations.py`), whether our best variant is the paper's, and Kendall's tau between our "
        "ordering of the variants and the paper's: agrees (the same best and tau > 0), disagrees (another best "
        "and tau <= 0) or partly agrees, said only where our best variant leads the runner-up beyond seed noise; "
        "within it the verdict is cannot tell (no range where the metric has none), whatever the means' order. "
        "Then, for each ingredient whose effect the paper reports "
        "(a pair of its rows, `analysis/paper.py`), the paper's change beside ours, paired by seed: holds / "
        "reversed where ours goes the paper's way / the other way beyond seed noise. Beyond seed noise, "
        "for an ingredient and for our best variant's lead over the runner-up alike: the difference is taken "
        "per seed (runs of one seed share the initialisation and data order), and its mean lies outside its "
        f"95 % Student t interval with n - 1 degrees of freedom (with 3 seeds, {t95(2):.1f} standard errors; "
        "`analysis/stats.py`); Welch's unpaired test only where fewer than two seeds pair, and said so. "
        "A standard error is never taken below what rounding alone gives (an accuracy over 300 clips moves "
        "in steps of 1/300, so seeds that differ by the same step show no spread), step / sqrt(6 n). "
        "Where the random-init encoder (the network "
        "pretraining started from) was probed, each compared metric also gives its number and how the "
        "variants stand against it, paired by seed: pretraining that does not beat it has learnt nothing "
        "that metric can see.\n",
        "Many tests at 5 % each call about 1 in 20 noise-only differences real, so the verdicts are "
        "corrected for multiple comparisons with Holm's step-down method (statsmodels): the ingredients' over "
        "all the pairs of one paper source in this report (the set each tally below counts), our best "
        "variants' leads over the pairs of one table. Beyond seed noise then means a Holm-adjusted p below "
        "0.05, which keeps the chance of any false holds / reversed (or lead) in the family at 5 % with no "
        "assumption on how the tests depend on each other; they do depend, being several metrics of the same "
        "runs (Benjamini-Hochberg would bound the expected share of false calls instead, assuming positive "
        "dependence). Each tally says how many calls chance alone would give uncorrected; a pair beyond "
        "noise alone but not after the correction reads 'within noise after Holm'. A probe metric has no "
        "range (marked '(no range)', † in the tables) where the random-init encoder scores as well, paired "
        "by seed (the gap within seed noise or the wrong way), or sits at the ceiling (0.95 or more for an "
        "accuracy, mIoU or AP; `analysis/ranges.py`): pretraining cannot show on it, so it stays in the "
        "tables but is left out of the tallies, the counts of leads and the corrected families; where the "
        "random-init encoder was not probed, the range is said to be unknown.\n",
        "A pair by seed is clean only where its two runs computed with the same numerics: the same "
        "configuration under other code (a probe or data change, another torch build or CPU), or on a CPU "
        "at another number of threads, may give other numbers. How we know: runs record the numerics id of "
        "the code that trained and probed them (a hash of the golden run's numbers, `vjepa/golden.py`), the "
        "platform and the thread count; for runs made before the numerics id, the "
        "code version (git describe) stands for it, and two code versions are taken to possibly differ "
        "(`analysis/numerics.py`). Each group below says which its runs have. A pair whose two runs differ "
        "(an ingredient's or a lead's two variants, or a run and the random-init number another run of its "
        "seed measured) is kept in the paired difference, not dropped, since dropping it would leave many "
        "comparisons here with one seed or none, but flagged: its seeds are named beside the verdict (e.g. "
        "'pairs of seeds 0 and 2 cross code versions'), and each paper source's tally says how many of its "
        "verdicts rest on such pairs. A flagged verdict is as good as the assumption that the code change "
        "moved neither variant's numbers more than seed noise does." + _numerics_here(summaries) + "\n",
    ]
    overview = directions_overview(summaries)
    lines += [overview + "\n"] if overview else []
    lines += [statement(s) + "\n" for s in summaries] or ["No sweep with an ablation axis was collected.\n"]
    written = []
    for s in summaries:
        section, files = _group(s, out, curves, data)
        lines += section
        written += files
    for sub in ("tables", "figures"):
        for stale in sorted((out / sub).glob("*")) if (out / sub).is_dir() else []:
            if stale.suffix in (".md", ".csv", ".tex", ".png") and stale not in written:
                stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    readme = out / "README.md"
    readme.write_text("\n".join(lines))
    return written + [readme]


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True, help="results.csv written by analysis.collect")
    ap.add_argument("--out", required=True, help="report directory")
    ap.add_argument(
        "--curves",
        help="curves directory or .csv (default: beside --results, curves/ or curves.csv, if there)",
    )
    ap.add_argument("--data", help="picture arrays (default: data/ beside --results)")
    args = ap.parse_args(argv)
    files = build(args.results, args.out, args.curves, args.data, argv)
    print(f"[report] {len(files)} files -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
