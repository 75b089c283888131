"""Figures of an ablation: each variant's effect with its interval, the ingredients, and training curves.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state), at a fixed size and dpi,
saved without the "Software" PNG tag: the same inputs give the same bytes. Every function returns the
figure; with ``out`` it is also written there.

* ``plot_ablation``: one panel per metric of the summary, effects rather than levels: each variant minus the
  reference variant (the first in display order with a value), paired by seed, mean and 95 % t interval
  (``effects``); hollow grey where the interval includes 0 (within seed noise), the seeds' own differences
  as dots, and where the metric stands for a paper metric the paper's difference between the same rows as
  a grey bar from 0 on a right-hand axis that shares the zero line (``zero_aligned``). Every axis holds 0,
  so no bar or interval is read against a truncated axis; the panel's title gives the reference's level
  (and the random init's). A metric without range (``analysis.ranges``) gets a grey "no range" panel.
* ``plot_curves``: training loss and the collapse diagnostics (RankMe and token cosine of the online and
  target encoders on the held batch, when logged) vs. step, per variant: mean over the completed seeds,
  band ± std.
* ``plot_directions``: the paper's ingredients (``analysis.directions``), our paired change with its 95 % t
  interval beside the paper's change, drawn by its verdict: filled where it holds or is reversed beyond
  noise (after Holm), hollow grey within noise or from one seed, a grey square without range.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.ablations import COMPARE, lower_is_better
from analysis.directions import paired_differences
from analysis.paper import METRICS
from analysis.stats import mean_and_se, resolution, t95
from analysis.summary import RANDOM, Summary, text
from analysis.tables import short, signed

DPI = 100
PANEL = (4.2, 3.2)  # inches per panel
PAPER_COLOR = "0.45"
STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.8)}


def styled(fn):
    """Run ``fn`` under the seaborn style without touching the caller's global rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


@styled
def save(fig: Figure, out) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, metadata={"Software": None})


def _figure_legend(fig: Figure, axes, max_cols: int, **kwargs) -> None:
    """One legend below the panels with each label of ``axes`` once."""
    uniq = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            uniq.setdefault(label, h)
    fig.legend(
        list(uniq.values()), list(uniq), loc="outside lower center", ncols=min(len(uniq), max_cols), **kwargs
    )


def _grid(n: int, title: str) -> tuple[Figure, list]:
    ncols = min(3, max(n, 1))
    nrows = math.ceil(max(n, 1) / ncols)
    fig = Figure(figsize=(PANEL[0] * ncols, PANEL[1] * nrows + 0.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(textwrap.fill(title, width=int(11 * PANEL[0] * ncols)))
    return fig, axes[:n]


def ylabel(metric: str) -> str:
    if metric.startswith("probe/"):
        return f"{short(metric)} (fraction)"
    return {"loss_final": "final training loss", "loss": "training loss"}.get(metric, metric)


# ---- the metrics figure: effects as paired differences --------------------------------------------------
EFFECT_COLUMNS = "variant n mean half low high seeds within_noise paper".split()
OURS_COLOR = sns.color_palette("colorblind")[0]
NOISE_COLOR = "0.55"  # within noise, one seed, no range
NO_RANGE_FACE = "0.92"


def reference(s: Summary, metric: str) -> str | None:
    """The variant every other is compared with on ``metric``: the first in display order with a completed
    run that has a value of it (a probe left out for an untrained tokenizer has none: data_mix's image-only
    runs on the video probes)."""
    if metric not in s.runs.columns:
        return None
    have = set(s.runs.loc[(s.runs["status"] == "completed") & s.runs[metric].notna(), "variant"])
    return next((v for v in s.variants if v in have), None)


def paper_metric(s: Summary, metric: str) -> str | None:
    """The paper metric ``metric`` stands for in the summary's table (``ablations.COMPARE``), if any."""
    table = s.table
    return next((m for m in (table.metrics if table else []) if metric in COMPARE.get(m, ())), None)


def effects(s: Summary, metric: str) -> pd.DataFrame:
    """What a panel of ``plot_ablation`` draws for ``metric``: per variant other than the reference
    (``reference``), in display order, its difference from the reference paired by seed
    (``analysis.directions.paired_differences``): ``n`` seeds, ``mean`` and the 95 % t interval
    ``low``..``high`` (``half`` = t95(n - 1) x the standard error of ``analysis.stats.mean_and_se``, its
    rounding floor included; NaN for one seed), the per-seed differences (``seeds``), ``within_noise``
    (the interval includes 0, or one seed gives none), and ``paper``: the paper's difference between the
    two variants' rows (NaN where either has no number). Variants without a seed paired with the
    reference are left out."""
    ref = reference(s, metric)
    if ref is None:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    table, pm = s.table, paper_metric(s, metric)
    rows = s.stats[(s.stats["metric"] == metric) & (s.stats["variant"] != RANDOM)].set_index("variant")

    def paper(v):
        row = text(rows.loc[v, "paper_row"]) if v in rows.index else None
        value = table.value(row, pm) if table is not None and pm and row else None
        return math.nan if value is None else float(value)

    step = resolution(s.runs[metric])
    out = []
    for v in (v for v in s.variants if v != ref):
        d = paired_differences(s.runs, metric, ref, v)
        if not len(d):
            continue
        mean, se = mean_and_se(d, step)
        half = t95(len(d) - 1) * se if math.isfinite(se) else math.nan
        inside = not math.isfinite(half) or abs(mean) <= half
        out.append(
            (v, len(d), mean, half, mean - half, mean + half, d.tolist(), inside, paper(v) - paper(ref))
        )
    return pd.DataFrame(out, columns=EFFECT_COLUMNS)


def _extent(values) -> tuple[float, float]:
    """(low, high) of the finite ``values`` and 0, padded by 8 % of the span (1e-3 where all are 0)."""
    v = np.asarray([x for x in values if math.isfinite(x)] + [0.0], float)
    lo, hi = float(v.min()), float(v.max())
    pad = 0.08 * (hi - lo) if hi > lo else 1e-3
    return lo - pad, hi + pad


def zero_aligned(extents: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Axis limits, one per ``(low, high)`` extent (each with low <= 0 <= high, low < high), that hold their
    extent and put 0 at the same height on every axis, so that twin axes share their zero line."""
    below = max(-lo / (hi - lo) for lo, hi in extents)
    above = max(hi / (hi - lo) for lo, hi in extents)
    out = []
    for lo, hi in extents:
        scale = max(-lo / below if below > 0 else 0.0, hi / above if above > 0 else 0.0)
        out.append((-below * scale, above * scale))
    return out


def _unit(metric: str) -> str:
    return "fraction" if metric.startswith("probe/") else "loss" if metric.startswith("loss") else "value"


def _level(s: Summary, metric: str, variant: str) -> str:
    st = s.stats[(s.stats["metric"] == metric) & (s.stats["variant"] == variant)]
    return f"{st['mean'].iloc[0]:.3g}" if len(st) and math.isfinite(st["mean"].iloc[0]) else "–"


@styled
def plot_ablation(s: Summary, out=None) -> Figure:
    """One panel per metric: each variant minus the reference variant (``reference``: the first with a
    value of the metric, named in the panel's title and axis), paired by seed, as its mean with the 95 % t
    interval (``effects``): filled where the interval excludes 0, hollow grey where it includes 0 (within
    seed noise) or one seed gives none; the seeds' own differences as dots. Where the metric stands for a
    paper metric, the paper's difference between the same rows as a bar from 0 on a right-hand axis whose
    0 is the left axis's 0 (``zero_aligned``). A metric without range (``analysis.ranges``) has a grey
    panel, "(no range)" in its title, and grey markers. Every axis holds 0: a difference is read from the
    zero line, and the title gives the reference's level (and the random init's)."""
    refs = {reference(s, m) for m in s.metrics}
    ref = refs.pop() if len(refs) == 1 else "the first variant"
    fig, axes = _grid(
        len(s.metrics), f"{s.title}: each variant minus {ref}, paired by seed (mean, 95 % t interval)"
    )
    for ax, metric in zip(axes, s.metrics, strict=True):
        _effect_panel(ax, s, metric)
    if axes:
        fig.legend(handles=_effect_legend(s), loc="outside lower center", ncols=3, fontsize="small")
    if out is not None:
        save(fig, out)
    return fig


def _effect_panel(ax, s: Summary, metric: str) -> None:
    ref = reference(s, metric)
    e = effects(s, metric)
    no_range = s.has_range(metric) is False
    others = [v for v in s.variants if v != ref]  # the reference is the zero line
    pos = {v: float(i) for i, v in enumerate(others)}
    has_paper = bool(np.isfinite(e["paper"].to_numpy(float)).any())
    shift = -0.15 if has_paper else 0.0
    ax.axhline(0.0, color="0.2", linewidth=1)
    for r in e.to_dict("records"):
        x = pos[r["variant"]] + shift
        quiet = r["within_noise"] or no_range
        color = NOISE_COLOR if quiet else OURS_COLOR
        seeds = np.asarray(r["seeds"], float)
        jitter = (np.arange(len(seeds)) - (len(seeds) - 1) / 2) * 0.04
        ax.plot(x + jitter, seeds, ".", color="black", markersize=3, alpha=0.5)
        ax.errorbar(
            x,
            r["mean"],
            yerr=r["half"] if math.isfinite(r["half"]) else None,
            fmt="o",
            color=color,
            markerfacecolor="white" if r["within_noise"] else color,
            markeredgewidth=1.5,
            capsize=3,
        )
    if e.empty:
        ax.text(0.5, 0.5, f"no seed paired with {ref}", transform=ax.transAxes, ha="center", color="0.3")
    ours = [v for r in e.to_dict("records") for v in (r["low"], r["high"], r["mean"], *r["seeds"])]
    extents = [_extent(ours)]
    if has_paper:
        twin = _paper_bars(ax, s, metric, e, pos)
        extents.append(_extent(e["paper"]))
        lims = zero_aligned(extents)
        ax.set_ylim(*lims[0])
        pm = paper_metric(s, metric)
        flipped = METRICS[pm].higher_is_better == lower_is_better(metric)  # "up is better" on both axes
        twin.set_ylim(*(lims[1][::-1] if flipped else lims[1]))
    else:
        ax.set_ylim(*extents[0])
    title = short(metric) + (" (no range)" if no_range else "")
    ax.set_title(f"{title}\n{ref}: {_level(s, metric, ref)}" + _random_level(s, metric), fontsize="medium")
    better = "lower" if lower_is_better(metric) else "higher"
    ax.set_ylabel(f"difference from {ref}\n({_unit(metric)}; {better} is better)")
    ax.set_xlabel(s.ablation.xlabel or s.axis)
    ax.set_xlim(-0.6, max(len(others), 1) - 0.4)
    crowded = sum(map(len, others)) > 24  # long category names would overlap
    ax.set_xticks(
        list(pos.values()), others, rotation=35 if crowded else 0, ha="right" if crowded else "center"
    )
    if no_range:
        ax.set_facecolor(NO_RANGE_FACE)


def _random_level(s: Summary, metric: str) -> str:
    st = s.stats[(s.stats["metric"] == metric) & (s.stats["variant"] == RANDOM)]
    return f"; random init: {_level(s, metric, RANDOM)}" if len(st) else ""


def _paper_bars(ax, s: Summary, metric: str, e: pd.DataFrame, pos: dict[str, float]):
    """The paper's differences as bars from 0 on a twin axis (limits set by the caller); returns it."""
    pm = paper_metric(s, metric)
    keep = e[np.isfinite(e["paper"].to_numpy(float))]
    twin = ax.twinx()
    twin.grid(False)
    twin.bar(
        [pos[v] + 0.18 for v in keep["variant"]],
        keep["paper"].to_numpy(float),
        width=0.28,
        color=PAPER_COLOR,
        alpha=0.45,
    )
    unit = METRICS[pm].unit
    twin.set_ylabel(
        f"paper: {METRICS[pm].label}\ndifference ({'points' if '%' in unit else unit})", color=PAPER_COLOR
    )
    twin.tick_params(axis="y", colors=PAPER_COLOR)
    return twin


def _effect_legend(s: Summary) -> list:
    handles = [
        Line2D([], [], marker="o", color=OURS_COLOR, label="beyond seed noise (interval excludes 0)"),
        Line2D(
            [],
            [],
            marker="o",
            color=NOISE_COLOR,
            markerfacecolor="white",
            markeredgewidth=1.5,
            label="within seed noise (interval includes 0) or one seed",
        ),
        Line2D(
            [], [], marker=".", linestyle="", color="black", alpha=0.5, label="seeds (paired differences)"
        ),
    ]
    if any(paper_metric(s, m) for m in s.metrics):
        handles.append(Patch(color=PAPER_COLOR, alpha=0.45, label="paper's difference (right axis, from 0)"))
    if any(s.has_range(m) is False for m in s.metrics):
        handles.append(
            Patch(facecolor=NO_RANGE_FACE, edgecolor="0.6", label="no range: random init as good (all grey)")
        )
    return handles


DIAGNOSTIC = re.compile(r"(online|target)_(rankme|token_cos)_(\w+)")


def curve_metrics(logged) -> list[str]:
    """The curves drawn: the training loss, then the collapse diagnostics the trainer logs on its held
    batch (``vjepa.diagnostics``, as ``<online|target>_<rankme|token_cos>_<modality>``): RankMe before token
    cosine, per modality, online encoder before target."""
    found = [(m, DIAGNOSTIC.fullmatch(m)) for m in logged]
    kinds, sides = ("rankme", "token_cos"), ("online", "target")
    diagnostics = sorted((kinds.index(g[2]), g[3], sides.index(g[1]), m) for m, g in found if g)
    return ["loss"] * ("loss" in logged) + [m for *_, m in diagnostics]


@styled
def plot_curves(s: Summary, curves: pd.DataFrame, out=None) -> Figure | None:
    """None when no completed run of the summary has logged curves."""
    done = s.runs[s.runs["status"] == "completed"][["run_id", "variant"]]
    c = curves.merge(done, on="run_id")
    metrics = curve_metrics(set(c["metric"]))
    if c.empty or not metrics:
        return None
    colors = dict(zip(s.variants, sns.color_palette("colorblind", len(s.variants)), strict=True))
    fig, axes = _grid(len(metrics), f"{s.title}: training curves (mean ± std over completed seeds)")
    for ax, metric in zip(axes, metrics, strict=True):
        cm = c[c["metric"] == metric]
        for v in s.variants:
            g = cm[cm["variant"] == v].groupby("step")["value"]
            if not len(g):
                continue
            mean, std, n = g.mean(), g.std(ddof=1).fillna(0.0), cm.loc[cm["variant"] == v, "run_id"].nunique()
            ax.plot(mean.index, mean.to_numpy(), color=colors[v], label=f"{v} (n={n})")
            ax.fill_between(
                mean.index,
                (mean - std).to_numpy(),
                (mean + std).to_numpy(),
                color=colors[v],
                alpha=0.2,
                linewidth=0,
            )
        ax.set_title(metric)
        ax.set_xlabel("training step")
        ax.set_ylabel(
            "RankMe (effective rank of features)"
            if "rankme" in metric
            else "mean cosine between tokens (1 = collapse)"
            if "token_cos" in metric
            else ylabel(metric)
        )
    # one legend for all panels: a variant may be missing from a panel
    _figure_legend(fig, axes, 4, title=s.ablation.xlabel or s.axis, fontsize="small", title_fontsize="small")
    if out is not None:
        save(fig, out)
    return fig


VERDICT_KINDS = {  # how plot_directions draws a kind of verdict: its legend label
    "holds": "holds: the paper's way",
    "reversed": "reversed: the other way",
    "noise": "within noise, one seed or no change",
    "no range": "no range (analysis/ranges.py)",
}


def verdict_kind(verdict: str) -> str:
    """The kind of an ``analysis.directions`` verdict, as ``plot_directions`` draws it: ``holds`` or
    ``reversed`` (beyond seed noise after Holm: filled), ``no range`` (a grey square), else ``noise`` (within
    noise, one seed, or no change on either side: hollow grey)."""
    if verdict in ("holds", "reversed"):
        return verdict
    return "no range" if verdict.endswith("no range") else "noise"


@styled
def plot_directions(s: Summary, out=None) -> Figure | None:
    """The paper's ingredients as a forest plot: per (ingredient, toolkit metric), our paired change with its
    95 % t interval (a dot alone for one seed), drawn by its verdict (``verdict_kind``): filled green where
    it holds, filled vermilion where it is reversed beyond seed noise (Holm-corrected over the paper
    source), hollow grey where it is within noise (whichever way it leans), one seed or no change, a grey
    square where the metric has no range; the paper's change and the verdict printed on the right. None
    when the summary answers no direction."""
    d = s.directions
    if d.empty:
        return None
    n_rows = len(d)
    fig = Figure(figsize=(10.0, 1.2 + 0.42 * n_rows), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    palette = sns.color_palette("colorblind")
    color = {"holds": palette[2], "reversed": palette[3], "noise": NOISE_COLOR, "no range": NOISE_COLOR}
    y = np.arange(n_rows)[::-1]
    for yi, r in zip(y, d.to_dict("records"), strict=True):
        kind = verdict_kind(r["verdict"])
        half = t95(r["n"] - 1) * r["se"] if math.isfinite(r["se"]) else 0.0
        ax.errorbar(
            r["change"],
            yi,
            xerr=half,
            fmt="s" if kind == "no range" else "o",
            color=color[kind],
            markerfacecolor=color[kind] if kind in ("holds", "reversed") else "white",
            markeredgewidth=1.5,
            capsize=3,
        )
        paper = signed(r["paper_change"], METRICS[r["paper_metric"]].unit)
        ax.annotate(
            f"paper {paper} ({METRICS[r['paper_metric']].label}); n={r['n']}; {r['verdict']}",
            xy=(1.0, yi),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color="black" if kind in ("holds", "reversed") else PAPER_COLOR,
        )
    ax.axvline(0.0, color="0.3", linewidth=1)
    ax.set_yticks(y, [f"{r['direction']}\n{short(r['metric'])}" for r in d.to_dict("records")])
    ax.set_ylim(-0.7, n_rows - 0.3)
    ax.set_xlabel("our change, to minus from (paired by seed, 95 % t interval)")
    handles = [
        Line2D(
            [],
            [],
            marker="s" if kind == "no range" else "o",
            linestyle="",
            color=color[kind],
            markerfacecolor=color[kind] if kind in ("holds", "reversed") else "white",
            markeredgewidth=1.5,
            label=label,
        )
        for kind, label in VERDICT_KINDS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle(textwrap.fill(f"{s.title}: the paper's ingredients, ours (verdicts after Holm)", width=90))
    if out is not None:
        save(fig, out)
    return fig
