"""Figures of an ablation: metric vs. variant with the spread over seeds, and training curves.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state), at a fixed size and dpi,
saved without the "Software" PNG tag: the same inputs give the same bytes. Every function returns the
figure; with ``out`` it is also written there.

* ``plot_ablation``: one panel per metric of the summary. Numeric axes (predictor width, mask ratio) as
  lines, categorical ones (loss, data mix) as bars; mean ± sample std over completed seeds, each seed as a
  dot, the random-init baseline as a dashed line, and the paper's numbers for the corresponding rows on a
  right-hand axis (grey diamonds) where the metric stands for a paper metric.
* ``plot_curves``: training loss and the collapse diagnostics (RankMe and token cosine of the online and
  target encoders on the held batch, when logged) vs. step, per variant: mean over the completed seeds,
  band ± std.
* ``plot_directions``: the paper's ingredients (``analysis.directions``), our paired change with its 95 % t
  interval beside the paper's change.
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

from analysis.ablations import COMPARE
from analysis.paper import METRICS
from analysis.stats import t95
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


def _numeric(variants: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in variants])
    except ValueError:
        return None


@styled
def plot_ablation(s: Summary, out=None) -> Figure:
    variants = s.variants
    x = _numeric(variants) if s.ablation.order == "numeric" else None
    pos = x if x is not None else np.arange(len(variants), dtype=float)
    colors = sns.color_palette("colorblind", max(len(variants), 1))
    done = s.runs[s.runs["status"] == "completed"]
    fig, axes = _grid(len(s.metrics), f"{s.title}: mean ± std over seeds (dots: seeds)")
    for ax, metric in zip(axes, s.metrics, strict=True):
        st = s.stats[s.stats["metric"] == metric].set_index("variant")
        mean = np.array([st.loc[v, "mean"] for v in variants], float)
        std = np.nan_to_num(np.array([st.loc[v, "std"] for v in variants], float))
        if x is None:
            ax.bar(pos, mean, yerr=std, color=colors, alpha=0.75, capsize=4, width=0.6, label="mean ± std")
        else:
            ax.errorbar(pos, mean, yerr=std, fmt="o-", color=colors[0], capsize=4, label="mean ± std")
        for i, v in enumerate(variants):
            vals = done.loc[done["variant"] == v, metric].dropna().to_numpy(float)
            offsets = (np.arange(len(vals)) - (len(vals) - 1) / 2) * (0.06 if x is None else 0.0)
            ax.plot(
                pos[i] + offsets,
                vals,
                "o",
                color="black",
                markersize=3,
                alpha=0.6,
                label="seeds" if i == 0 else None,
            )
        if RANDOM in st.index and np.isfinite(st.loc[RANDOM, "mean"]):
            ax.axhline(st.loc[RANDOM, "mean"], color="0.3", linestyle="--", linewidth=1, label=RANDOM)
        _paper_axis(ax, s, metric, pos, joined=x is not None)
        ax.set_title(short(metric))
        ax.set_ylabel(ylabel(metric))
        ax.set_xlabel(s.ablation.xlabel or s.axis)
        crowded = x is None and sum(map(len, variants)) > 30  # long category names would overlap
        ax.set_xticks(pos, variants, rotation=35 if crowded else 0, ha="right" if crowded else "center")
        if x is not None and s.ablation.log_x and (x > 0).all():
            ax.set_xscale("log", base=2)
            ax.set_xticks(pos, variants)
            ax.minorticks_off()
    if axes:
        _figure_legend(fig, fig.axes, 5)
    if out is not None:
        save(fig, out)
    return fig


def _paper_axis(ax, s: Summary, metric: str, pos: np.ndarray, joined: bool) -> None:
    table = s.table
    paper_metrics = [m for m in (table.metrics if table else []) if metric in COMPARE.get(m, ())]
    if not paper_metrics:
        return
    m = paper_metrics[0]
    rows = s.stats[(s.stats["metric"] == metric) & (s.stats["variant"] != RANDOM)].set_index("variant")
    vals = np.array([table.value(text(rows.loc[v, "paper_row"]), m) for v in s.variants], dtype=float)
    if not np.isfinite(vals).any():
        return
    twin = ax.twinx()
    twin.grid(False)
    keep = np.isfinite(vals)
    style = "D:" if joined else "D"  # no line between categories
    twin.plot(pos[keep], vals[keep], style, color=PAPER_COLOR, markersize=6, label="paper (right axis)")
    # at least 5 % of the value's size on the axis, so that a 0.2-point difference does not fill the panel
    lo, hi = vals[keep].min(), vals[keep].max()
    half = max(hi - lo, 0.05 * abs(vals[keep].mean())) * 0.6
    twin.set_ylim((lo + hi) / 2 - half, (lo + hi) / 2 + half)
    twin.set_ylabel(f"paper: {METRICS[m].label} ({METRICS[m].unit})", color=PAPER_COLOR)
    twin.tick_params(axis="y", colors=PAPER_COLOR)
    if not METRICS[m].higher_is_better:
        twin.invert_yaxis()  # so that "up is better" on both axes


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


@styled
def plot_directions(s: Summary, out=None) -> Figure | None:
    """The paper's ingredients as a forest plot: per (ingredient, toolkit metric), our paired change with its
    95 % t interval (a dot alone for one seed), coloured by whether it goes the paper's way; the paper's
    change printed on the right. None when the summary answers no direction."""
    d = s.directions
    if d.empty:
        return None
    n_rows = len(d)
    fig = Figure(figsize=(9.0, 1.2 + 0.42 * n_rows), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    way = {True: sns.color_palette("colorblind")[2], False: sns.color_palette("colorblind")[3]}
    y = np.arange(n_rows)[::-1]
    for yi, r in zip(y, d.to_dict("records"), strict=True):
        verdict = r["verdict"]
        same = verdict == "holds" or verdict.startswith("same sign")
        color = "0.5" if "no change" in verdict else way[same]
        half = t95(r["n"] - 1) * r["se"] if math.isfinite(r["se"]) else 0.0
        ax.errorbar(r["change"], yi, xerr=half, fmt="o", color=color, capsize=3)
        paper = signed(r["paper_change"], METRICS[r["paper_metric"]].unit)
        ax.annotate(
            f"paper {paper} ({METRICS[r['paper_metric']].label}); n={r['n']}",
            xy=(1.0, yi),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=PAPER_COLOR,
        )
    ax.axvline(0.0, color="0.3", linewidth=1)
    ax.set_yticks(y, [f"{r['direction']}\n{short(r['metric'])}" for r in d.to_dict("records")])
    ax.set_ylim(-0.7, n_rows - 0.3)
    ax.set_xlabel("our change, to minus from (paired by seed, 95 % t interval)")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=label)
        for c, label in ((way[True], "the paper's way"), (way[False], "the other way"), ("0.5", "no change"))
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    fig.suptitle(textwrap.fill(f"{s.title}: the paper's ingredients, ours", width=90))
    if out is not None:
        save(fig, out)
    return fig
