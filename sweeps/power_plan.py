"""What a sweep's planned seeds can detect, printed by its dry run (``dry_run=true``), before compute is spent.

For each headline metric of the sweep, one line: the standard deviation of a paired difference between two
variants (same seed) estimated from recorded seed spreads, and the smallest true difference the planned
seeds detect (``vjepa.power``: paired t-test, 5 % two-sided, 80 % power). With ``power.effect=<x>`` (a
sweep key, like ``dry_run``: it names no run and never reaches a run's configuration) also the seeds needed
to detect a difference of x and what training that many seeds of every variant costs: FLOPs and GPU-hours
as the plan counts them, CPU-hours (core-hours) at the rate of timed completed runs of the sweep.

* Headline metrics: the toolkit metrics ``analysis.ablations.COMPARE`` compares with the paper for the
  sweep's table (``ABLATIONS``); for a sweep without a paper table, every probe score ``probe/<task>/<name>``
  whose name ends in ``top1``, ``miou`` or ``ap``. Either way only tasks the sweep's runs probe, and only
  metrics with a recorded value in the spread's source.
* The spread's source, the first holding completed runs of the sweep's preset: the results table of
  ``hydra.sweeper.recorded``, else the repository's ``reports/results.csv``, else the completed runs under
  the sweeps' output folder (``<out>/<any sweep>/preset=<preset>/``, their config.yaml and metrics.json).
  How the sd is estimated from them: ``vjepa.power.difference_spread``. No spread, no number: the line says
  so.
"""

from __future__ import annotations

import math
import re
import socket
import statistics
from dataclasses import dataclass
from pathlib import Path

from sweeps.common import ROOT, completed_in_folders, human, run_state
from vjepa.power import ALPHA, POWER, Spread, difference_spread, minimum_detectable_effect, seeds_needed

REPO_RESULTS = ROOT / "reports" / "results.csv"
SCORE = re.compile(r"probe/([^/]+)/[^/]*(top1|miou|ap)")  # the fallback rule for headline metrics


@dataclass
class Source:
    """Where the seed spreads come from: a results table (``runs``: a pandas DataFrame) and its name."""

    runs: object
    label: str


def read_table(path) -> object:
    """A results table of ``analysis.collect`` (CSV) as a DataFrame, the columns naming runs as text."""
    import pandas as pd

    text = {
        c: str for c in ("run_id", "sweep", "preset", "variant", "group_hash", "config_hash", "reused_from")
    }
    return pd.read_csv(path, dtype=text, low_memory=False)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def own_runs(sweeps_root, preset: str) -> object:
    """The completed runs under ``<sweeps_root>/<sweep>/preset=<preset>/`` as a results table: run_id, sweep,
    preset, variant and group_hash (the configuration without the seed, ``vjepa.run_identity``), config_hash,
    seed, status, reused_from, device, threads, wall_time_s and the numbers of metrics.json (nested keys
    joined by ``/``, as ``analysis.collect`` names them)."""
    import pandas as pd
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from vjepa.run_identity import config_hashes
    from vjepa.runfiles import read_json, read_status

    rows = []
    for cfg_path in sorted(Path(sweeps_root).glob(f"*/preset={preset}/*/config.yaml")):
        run_dir = cfg_path.parent
        if run_state(run_dir, ask_scheduler=False)[0] != "completed":
            continue
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=False)
            metrics = read_json(run_dir / "metrics.json")
        except (OmegaConfBaseException, OSError, ValueError):
            continue
        config_hash, group_hash = config_hashes(cfg)
        status = read_status(run_dir) or {}
        rows.append(
            {
                "run_id": f"{run_dir.parent.parent.name}/{run_dir.parent.name}/{run_dir.name}",
                "sweep": run_dir.parent.parent.name,
                "preset": preset,
                "variant": group_hash,
                "group_hash": group_hash,
                "config_hash": config_hash,
                "seed": cfg.get("seed"),
                "status": "completed",
                "reused_from": status.get("reused_from") or "",
                "host": status.get("host"),
                "device": metrics.get("device"),
                **_flatten(metrics),
            }
        )
    return pd.DataFrame(rows)


def _of_preset(runs, preset: str):
    if runs is None or runs.empty or "status" not in runs.columns:
        return None
    done = runs[runs["status"] == "completed"]
    if "preset" in done.columns:
        done = done[done["preset"].astype(str) == str(preset)]
    return done if not done.empty else None


def spread_source(recorded, sweeps_root, preset: str) -> tuple[Source | None, list[str]]:
    """The first source holding completed runs of ``preset`` (see the module), and what was looked at."""
    looked = []
    tables = [(Path(recorded), "hydra.sweeper.recorded")] if recorded else []
    if REPO_RESULTS.is_file() and not any(p.resolve() == REPO_RESULTS.resolve() for p, _ in tables):
        tables.append((REPO_RESULTS, "the repository's results table"))
    for path, why in tables:
        runs = _of_preset(read_table(path), preset)
        looked.append(f"{path} ({why})")
        if runs is not None:
            return Source(runs, f"{path} ({why})"), looked
    runs = _of_preset(own_runs(sweeps_root, preset), preset)
    looked.append(f"the completed runs under {Path(sweeps_root)}/*/preset={preset}/")
    if runs is not None:
        return Source(
            runs, f"the {len(runs)} completed run(s) under {Path(sweeps_root)}/*/preset={preset}/"
        ), looked
    return None, looked


def headline_metrics(sweep: str, columns, tasks) -> list[str]:
    """The sweep's headline metrics among ``columns`` (see the module), of the probe ``tasks`` its runs run
    (all where ``tasks`` is None)."""
    from analysis.ablations import ABLATIONS, COMPARE
    from analysis.paper import TABLES

    def probed(metric: str) -> bool:
        return tasks is None or metric.split("/")[1] in tasks

    ablation = ABLATIONS.get(sweep)
    table = TABLES.get(ablation.table) if ablation and ablation.table else None
    compared = [t for m in (table.metrics if table else []) for t in COMPARE.get(m, ())]
    metrics = [m for m in dict.fromkeys(compared) if m in columns and probed(m)]
    if metrics:
        return metrics
    return sorted(c for c in columns if SCORE.fullmatch(c) and probed(c))


def cpu_rate(points, runs) -> tuple[float, str] | None:
    """Training FLOPs per core-second (FLOPs / (wall time x torch threads)), the median over the completed runs
    of the sweep's output folders trained here on CPU (not adopted), else over the recorded runs of ``runs``
    (a results table) that are points of this sweep and trained on CPU; with a note of which. None without
    either."""
    from vjepa.runfiles import read_json, read_status

    rates = []
    for run_dir, flops in completed_in_folders([p.run_dir for p in points]):
        status, metrics = read_status(run_dir) or {}, read_json(Path(run_dir) / "metrics.json")
        wall, threads = metrics.get("wall_time_s") or 0, metrics.get("threads") or 0
        if (
            status.get("host") == socket.gethostname()
            and not status.get("reused_from")
            and str(metrics.get("device", "")).split(":")[0] == "cpu"
            and wall > 0
            and threads > 0
        ):
            rates.append(flops / (wall * threads))
    if rates:
        return statistics.median(rates), f"median of {len(rates)} run(s) of this sweep completed here on CPU"
    if runs is None or not {"run_id", "wall_time_s", "threads", "device"} <= set(runs.columns):
        return None
    by_id = {r["run_id"]: r for r in runs.to_dict("records")}
    for p in points:
        r = by_id.get(f"{p.run_dir.parent.parent.name}/{p.run_dir.parent.name}/{p.run_dir.name}")
        reused = r.get("reused_from") if r is not None else None
        if (
            r is None
            or str(r.get("device", "")).split(":")[0] != "cpu"
            or (isinstance(reused, str) and reused)
        ):
            continue
        wall, threads = float(r.get("wall_time_s") or 0), float(r.get("threads") or 0)
        if math.isfinite(wall) and math.isfinite(threads) and wall > 0 and threads > 0 and p.flops > 0:
            rates.append(p.flops / (wall * threads))
    if rates:
        return statistics.median(rates), f"median of {len(rates)} recorded run(s) of this sweep on CPU"
    return None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def power_lines(
    sweep: str,
    preset: str,
    points,
    *,
    recorded=None,
    sweeps_root,
    effect=None,
    peak_tflops: float,
    mfu: float,
) -> list[str]:
    """The dry run's lines about power (see the module): a header, one line per headline metric, with
    ``effect`` a line on how the cost is counted. ``points``: the plan's (``sweeps.sweeper.Point``: ``seed``,
    ``flops``, ``probe_tasks``, ``run_dir``, ``state``)."""
    from vjepa.flops import gpu_hours

    valid = [p for p in points if p.state != "invalid"]
    seeds = sorted({p.seed for p in valid})
    n = len(seeds)
    head = (
        f"[sweep] power of {n} seed(s) per variant (paired by seed, two-sided t-test at {ALPHA:.0%}, "
        f"{POWER:.0%} power)"
    )
    tasks = {t for p in valid for t in (p.probe_tasks or ())}
    if not tasks:
        return [f"{head}: the runs probe nothing (probes has no tasks), so there is no metric to power"]
    source, looked = spread_source(recorded, sweeps_root, preset)
    metrics = headline_metrics(sweep, source.runs.columns, tasks) if source is not None else []
    if not metrics:
        where = source.label if source is not None else "; ".join(looked)
        return [
            f"{head}: no seed spread known for preset={preset} (no recorded value of a probe score these runs "
            f"measure; looked at {where}), so the smallest detectable effect is unknown. Name a results table "
            "(hydra.sweeper.recorded=<results.csv>) or train two seeds of a variant first."
        ]
    lines = [f"{head}, seed spread of preset={preset} from {source.label}:"]
    width = max(len(m) for m in [*metrics, "metric"])
    columns = f"  {'metric':<{width}}{'sd(diff)':>10}{'detects':>10}"
    if effect is not None:
        per_seed = sum(p.flops for p in valid) / max(n, 1)
        runs_per_seed = len(valid) / max(n, 1)
        rate = cpu_rate(valid, source.runs)
        sustained = peak_tflops * mfu
        columns += f"{'seeds for ' + _fmt(effect):>17}{'runs':>7}{'FLOP':>9}{'GPU-h':>9}{'CPU-h':>9}"
    lines.append(f"{columns}  sd estimated from")
    for metric in metrics:
        spread: Spread | None = difference_spread(source.runs, metric, preset)
        if spread is None:
            lines.append(f"  {metric:<{width}}  no seed spread: no variant with two completed seeds recorded")
            continue
        mde = minimum_detectable_effect(spread.sd, n, ALPHA, POWER)
        line = f"  {metric:<{width}}{_fmt(spread.sd):>10}{_fmt(mde) if math.isfinite(mde) else 'n/a':>10}"
        if effect is not None:
            k = seeds_needed(effect, spread.sd, ALPHA, POWER)
            if k is None:
                line += f"{'> 1000':>17}{'':>7}{'':>9}{'':>9}{'':>9}"
            else:
                flops = k * per_seed
                cpu = _fmt(flops / rate[0] / 3600) if rate else "?"
                line += (
                    f"{k:>17}{round(k * runs_per_seed):>7}{human(flops):>9}"
                    f"{_fmt(gpu_hours(flops, sustained)):>9}{cpu:>9}"
                )
        lines.append(f"{line}  {spread.describe()}")
    if n < 2:
        lines.append("  detects n/a: one seed allows no paired test")
    if effect is not None:
        lines.append(
            f"  cost of k seeds: k x {runs_per_seed:g} runs of the plan's FLOPs; GPU-h at {sustained:.0f} TFLOP/s "
            "sustained per GPU; CPU-h: core-hours of training "
            + (
                f"at {human(rate[0])}FLOP/s per core ({rate[1]})"
                if rate
                else "unknown (?: no run of this sweep timed on CPU, here or in the table)"
            )
        )
    return lines
