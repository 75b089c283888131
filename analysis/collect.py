"""Run directories -> one tidy table (one row per run) and a long table of training curves.

    python -m analysis.collect sweeps_out [more roots or run dirs] --out reports/results.csv \
        [--curves reports/curves] [--data reports/data | --no-pictures]

A run directory is any directory holding ``config.yaml`` or ``status.json`` (found recursively; hidden
directories such as Hydra's ``.hydra`` are skipped). The sweeps' layout ``<out>/<sweep>/preset=<p>/<run>``
gives the sweep name and preset (a search's trials ``<out>/hpo/<study>/preset=<p>/trial=<n>``: the sweep
``hpo-<study>``); elsewhere the sweep is the parent directory's name. Columns:

* ``run_id`` (``<sweep>/[preset=<p>/]<run dir name>``), ``sweep``, ``preset``, ``seed``;
* ``axis`` / ``variant``: the override keys that vary within the run's (sweep, preset) group, besides the
  seed and keys that do not change a run (threads, ...), and this run's values of them;
* ``status``: running | interrupted | completed | failed from status.json, ``new`` without one, and
  ``no_metrics`` for a completed status without metrics.json (``vjepa.runfiles.recorded_state``). Only
  ``completed`` rows carry final metrics; every other row has NaN metrics, so it can never be averaged in;
* ``steps_done``, ``steps``, ``wall_time_s`` (training time; for unfinished runs up to the last log line),
  ``error`` (first line of a failure);
* ``config_hash``: sha256 of the resolved config without run-specific keys (run_dir, device, threads, ...)
  and without what a resumed run may change (probes, log_every, diagnostics: ``vjepa.run_identity.config_hashes``);
  ``group_hash``: the same without the seed (equal for the seeds of one variant); ``run_hash``: of the config
  without the run-specific keys only (``vjepa.run_identity.run_hash``: equal for the same run wherever it ran; a
  sweep's ``hydra.sweeper.recorded`` matches points by it);
* ``code_version``: the code that trained the run (``git describe`` recorded by the engine in metrics.json,
  or in status.json while it runs); for directories without it, this repository's at collect time;
* ``numerics`` / ``probe_numerics``: the numerics id (``vjepa.golden``: the hash of the golden run's numbers)
  of the code that trained / last probed the run, and ``platform`` / ``probe_platform`` where (device, CPU
  instruction set or GPU, torch build); empty for runs made before the engine recorded them (analysis then
  goes by ``code_version``: ``analysis.numerics``). Other probe prefixes likewise: ``probe_random_numerics``;
  ``probe_threads`` (likewise ``probe_random_threads``): the torch threads the probes ran at, where recorded;
* ``reused_from``: for a run a sweep adopted from another sweep's identical run (``sweeps/common.py``), that
  run's directory (relative to this run's parent), else empty: drop such rows when pooling sweeps;
* ``command``: the command that produces the group's runs, reconstructed from the runs themselves (a sweep is
  often launched in pieces: one call per seed, a rerun of the failed points) as
  ``python sweeps/<sweep>.py <common overrides> <axis>=<values> seed=<seeds>``; ``overrides``: the run's own
  overrides (JSON list);
* ``override/<key>``: each override's value as given; ``config/<key>``: the resolved config's scalars
  (lists as JSON; the probes group and run-specific keys left out);
* every key of metrics.json, as is (``loss_final``, ``probe/<task>/<metric>``, ``probe_random/...``).

Curves (``--curves``): a directory gets one CSV per (sweep, preset) group, ``<sweep>-<preset>.csv`` (as the
report's tables), so each file stays small as sweeps are added; a path ending in ``.csv`` gets one file.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from analysis.ablations import ablation_for, sort_variants
from vjepa import schema

RUN_MARKERS = ("config.yaml", "status.json")
# Override keys that are never an ablation axis (nor their sub-keys, e.g. cluster.partition): the seed, the
# preset (a directory level of its own) and the sweeps' own options, from the configuration schema; with the
# keys that do not change what a run computes (the engine's RESUME_FREE_KEYS, read in not_axis).
NOT_AXES = schema.NOT_AXES
NOT_IN_COMMAND = {"seed", "threads"}  # the sweeper sets threads per run itself
LEADING = (
    "run_id sweep preset axis variant seed status steps_done steps wall_time_s error config_hash group_hash run_hash "
    "code_version numerics probe_numerics platform probe_platform reused_from command overrides run_dir"
).split()
# what the engine records of how a run's numbers were computed (vjepa.golden), renamed for the table:
# metrics.json / status.json key -> column (probe prefixes other than probe/: <prefix>/numerics ->
# <prefix>_numerics, and likewise for platform)
NUMERICS_KEYS = ("numerics", "platform")
TEXT = set(LEADING) - {"seed", "steps_done", "steps", "wall_time_s"}


# ---- finding and reading run directories ---------------------------------------------------------------
def find_runs(roots) -> list[Path]:
    """Run directories under ``roots`` (a root may itself be a run directory), sorted."""
    found = []

    def walk(d: Path) -> None:
        if any((d / m).is_file() for m in RUN_MARKERS):
            found.append(d)
            return
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
                walk(child)

    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory")
        walk(root)
    return sorted(set(found))


def locate(run_dir: Path) -> tuple[str, str, str]:
    """(sweep, preset, run_id) from the path; preset is "" outside the sweeps' layout. The trials of a
    hyper-parameter search (``<out>/hpo/<study>/preset=<p>/trial=<n>``, sweeps/hpo.py) are the sweep
    ``hpo-<study>``, with run ids ``hpo/<study>/preset=<p>/trial=<n>``."""
    run_dir = Path(run_dir).resolve()
    parent = run_dir.parent
    if parent.name.startswith("preset="):
        preset, sweep = parent.name.split("=", 1)[1], parent.parent.name
        if parent.parent.parent.name == "hpo" and re.fullmatch(r"trial=\d+", run_dir.name):
            return f"hpo-{sweep}", preset, f"hpo/{sweep}/{parent.name}/{run_dir.name}"
        return sweep, preset, f"{sweep}/{parent.name}/{run_dir.name}"
    return parent.name, "", f"{parent.name}/{run_dir.name}"


def sweep_root(run_dir: Path) -> Path | None:
    """The ``preset=<p>`` directory above a run in the sweeps' layout (Hydra's sweep dir), else None."""
    parent = Path(run_dir).resolve().parent
    return parent if parent.name.startswith("preset=") else None


def read_overrides(run_dir: Path) -> list[str]:
    path = Path(run_dir) / "overrides.yaml"
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.exists() else []


def parse_override(override: str) -> tuple[str, str] | None:
    """("key", "value") of a Hydra override ``[+|++]key=value``; None for a deletion (``~key``)."""
    if override.startswith("~") or "=" not in override:
        return None
    key, value = override.split("=", 1)
    return key.lstrip("+"), value


def read_log(run_dir: Path) -> list[dict]:
    """metrics.jsonl records; a half-written last line (a run being written right now) is left out."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def flatten(d: dict, prefix: str = "", sep: str = "/") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}{sep}", sep))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, separators=(",", ":")) if isinstance(v, list) else v
    return out


def _without(cfg: dict, keys) -> dict:
    from vjepa.run_identity import without_keys  # the engine's rule, so hashes match what resume compares

    return without_keys(copy.deepcopy(cfg), keys)


def _resume_free() -> tuple[str, ...]:
    from vjepa.run_identity import RESUME_FREE_KEYS  # the engine's list of keys a resumed run may change

    return RESUME_FREE_KEYS


def not_axis(key: str) -> bool:
    """Whether an override key can never be an ablation axis (``NOT_AXES``, RESUME_FREE_KEYS, sub-keys)."""
    return any(key == k or key.startswith(k + ".") for k in (*NOT_AXES, *_resume_free()))


def config_hashes(cfg: dict) -> tuple[str, str]:
    """(config_hash, group_hash) of a run's config: ``vjepa.run_identity.config_hashes``, the engine's rule, which
    sweeps also use to match the runs a results table records."""
    from vjepa.run_identity import config_hashes as engine_hashes

    return engine_hashes(cfg)


def read_run(run_dir: Path) -> dict:
    """One row (without the group columns axis, variant and command)."""
    from omegaconf import OmegaConf

    from vjepa.runfiles import read_json, recorded_state

    run_dir = Path(run_dir)
    sweep, preset, run_id = locate(run_dir)
    state, status = recorded_state(run_dir)  # the engine's rule, as sweeps decide what to launch
    cfg_path = run_dir / "config.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=False) if cfg_path.exists() else {}
    overrides = read_overrides(run_dir)
    parsed = dict(p for p in map(parse_override, overrides) if p)
    log = read_log(run_dir)
    final = flatten(read_json(run_dir / "metrics.json")) if state == "completed" else {}
    error = (status.get("error") or "").strip() or (status.get("traceback") or "").strip().split("\n")[-1]
    seed = cfg.get("seed", parsed.get("seed"))
    from vjepa.run_identity import run_hash as engine_run_hash

    hashes = config_hashes(cfg) if cfg else (None, None)
    try:
        shown_dir = str(run_dir.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown_dir = str(run_dir.resolve())
    row = {
        "run_id": run_id,
        "sweep": sweep,
        "preset": preset or parsed.get("preset", ""),
        "seed": None if seed is None else int(seed),
        "status": state,
        "steps_done": int(status.get("step", log[-1]["step"] if log else 0)),
        "steps": status.get("steps", cfg.get("steps")),
        "wall_time_s": final.get("wall_time_s", log[-1].get("wall_time_s") if log else math.nan),
        "error": error.splitlines()[0] if error else None,
        "config_hash": hashes[0],
        "group_hash": hashes[1],
        "run_hash": engine_run_hash(cfg) if cfg else None,
        "code_version": final.get("code_version") or status.get("code_version"),
        # numerics, platform: None for runs made before the engine recorded them
        **{k: final.get(k) or status.get(k) for k in NUMERICS_KEYS},
        **{f"probe_{k}": final.get(f"probe/{k}") for k in NUMERICS_KEYS},
        "reused_from": status.get("reused_from", ""),
        "overrides": json.dumps(overrides),
        "run_dir": shown_dir,
    }
    row.update({f"override/{k}": v for k, v in parsed.items()})
    semantic = _without({k: v for k, v in cfg.items() if k not in ("probes", "hydra")}, _resume_free())
    row.update({f"config/{k}": v for k, v in flatten(semantic, sep=".").items()})
    for k in [k for k in final if k.count("/") == 1 and k.split("/")[1] in (*NUMERICS_KEYS, "threads")]:
        prefix, key = k.split("/")
        row[f"{prefix}_{key}"] = final.pop(k)  # probe/numerics -> probe_numerics, a text column
    row.update({k: v for k, v in final.items() if k not in row})
    return row


# ---- groups: axis, variant, command ---------------------------------------------------------------------
def _sort_key(value: str):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _group_columns(group: pd.DataFrame, sweep_root: Path | None) -> dict:
    """axis, variant (per row) and command of one (sweep, preset) group."""
    overrides = [dict(p for p in map(parse_override, json.loads(o)) if p) for o in group["overrides"]]
    keys = sorted(k for k in {k for o in overrides for k in o} if not not_axis(k))
    axis = [k for k in keys if len({o.get(k) for o in overrides}) > 1] if len(group) > 1 else []
    if len(axis) == 1:
        variants = [o.get(axis[0], "default") for o in overrides]
    else:
        variants = [",".join(f"{k}={o.get(k, 'default')}" for k in axis) for o in overrides]
    return {"axis": ",".join(axis), "variant": variants, "command": sweep_command(group, axis, sweep_root)}


def sweep_command(group: pd.DataFrame, axis: list[str], sweep_root: Path | None) -> str:
    """The command that produces a group's runs (see the module docstring)."""
    lists = [json.loads(o) for o in group["overrides"]]
    parsed = [dict(p for p in map(parse_override, o) if p) for o in lists]
    skip = set(axis) | NOT_IN_COMMAND
    common = [
        o
        for o in lists[0]
        if (p := parse_override(o)) and p[0] not in skip and all(q.get(p[0]) == p[1] for q in parsed)
    ]
    sweep = group["sweep"].iloc[0]

    def values(k: str) -> list[str]:  # a lone axis in the order the report shows it (the paper's row order)
        found = sorted({q[k] for q in parsed if k in q}, key=_sort_key)
        return sort_variants(found, ablation_for(sweep)) if axis == [k] else found

    swept = [f"{k}={','.join(values(k))}" for k in [*axis, "seed"] if any(k in q for q in parsed)]
    if sweep_root is None:
        prog = "python -m vjepa.train --multirun"
    elif sweep.startswith("hpo-") and sweep_root.parent.parent.name == "hpo":  # trials: sampled, not swept
        prog, swept = "python sweeps/hpo.py", []
        if not any(o.startswith("hpo.study=") for o in common):
            prog += f" hpo.study={shlex.quote(sweep_root.parent.name)}"
    else:
        prog = f"python sweeps/{sweep}.py"
    return " ".join([prog, *(shlex.quote(o) for o in common + swept)])


def code_version() -> str:
    """``git describe --always --tags`` of this repository (+ "-dirty" with uncommitted changes to tracked
    files), else the installed package's version. Read-only: no index refresh (GIT_OPTIONAL_LOCKS=0)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        git = ["git", "-C", str(root)]
        desc = subprocess.run(
            [*git, "describe", "--always", "--tags"], capture_output=True, text=True, env=env, timeout=30
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if desc.returncode == 0 and dirty.returncode == 0:
            return desc.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"vjepa {version('vjepa')}"


def collect(roots) -> pd.DataFrame:
    """One row per run directory under ``roots``, sorted by run_id (see the module docstring)."""
    dirs = find_runs(roots)
    rows = [read_run(d) for d in dirs]
    ids = [r["run_id"] for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        where = [str(d) for d, r in zip(dirs, rows, strict=True) if r["run_id"] in dupes]
        raise ValueError(f"run ids collide (same sweep and run name under two roots): {', '.join(where)}")
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=LEADING)
    df["code_version"] = df["code_version"].fillna(code_version()) if len(df) else df["code_version"]
    return _finish(df)


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """The group columns (axis, variant, command) of every (sweep, preset) group, the column order, the row
    order."""
    df = df.reset_index(drop=True)
    for c in LEADING:  # columns added since a table kept by --update was written (numerics, ...)
        if c not in df.columns:
            df[c] = None
    df["axis"], df["variant"], df["command"] = "", "", ""
    for _, idx in df.groupby(["sweep", "preset"], sort=True).groups.items():
        group = df.loc[idx]
        cols = _group_columns(group, sweep_root(Path(group["run_dir"].iloc[0])))
        df.loc[idx, "axis"], df.loc[idx, "variant"], df.loc[idx, "command"] = (
            cols["axis"],
            cols["variant"],
            cols["command"],
        )
    rest = sorted(c for c in df.columns if c not in LEADING)
    ordered = [c for c in rest if c.startswith("override/")] + [c for c in rest if c.startswith("config/")]
    df = df[LEADING + ordered + [c for c in rest if c not in ordered]]
    return df.sort_values("run_id", kind="stable").reset_index(drop=True)


def update_results(before: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """A results table collected ``before`` brought up to date with the rows collected ``now``: a run in
    both gets its new row; a completed run only ``before`` keeps its row (its directory was deleted, or
    collected on another machine), so the table is the record of every run completed so far. An unfinished
    or failed run only ``before`` is dropped: whatever it had done went with its directory. The group
    columns are computed again over the merged groups."""
    kept = before[~before["run_id"].isin(set(now["run_id"])) & (before["status"] == "completed")]
    if not len(kept):
        return now
    parts = [p.astype(object) for p in (kept, now) if len(p)]
    return _finish(pd.concat(parts, ignore_index=True))


def update_curves(before: pd.DataFrame, now: pd.DataFrame, kept: set[str]) -> pd.DataFrame:
    """Long curve tables likewise: ``now`` (the curves of the runs collected now) and, of ``before``, the
    curves of the ``kept`` runs (those ``update_results`` kept); a run collected now keeps no old curve, even
    where it has logged nothing yet."""
    kept = before[before["run_id"].isin(kept)]
    long = pd.concat([p for p in (kept, now) if len(p)] or [now], ignore_index=True)
    return long.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)


def collect_curves(roots) -> pd.DataFrame:
    """Training curves of every run under ``roots``: long table (run_id, step, metric, value) from
    metrics.jsonl, sorted; every numeric key of each logged record except ``step``."""
    rows = []
    for d in find_runs(roots):
        run_id = locate(d)[2]
        for rec in read_log(d):
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((run_id, int(rec["step"]), k, float(v)))
    df = pd.DataFrame(rows, columns=["run_id", "step", "metric", "value"])
    return df.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)


# ---- files ----------------------------------------------------------------------------------------------
def write_csv(df: pd.DataFrame, path: Path, float_format: str | None = None) -> None:
    """``df`` as CSV, replacing ``path`` atomically: with ``--update`` the results table is the only record
    of runs trained elsewhere, so an interrupted or failed write must leave the old one whole."""
    from vjepa.runfiles import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n", float_format=float_format))


def _write_wide(df: pd.DataFrame, path: Path) -> None:
    wide = df.pivot_table(index=["run_id", "step"], columns="metric", values="value", aggfunc="first")
    wide.columns.name = None
    write_csv(wide.reset_index(), path, float_format="%.6g")


def curves_file_stem(run_id: str) -> str:
    """The curves file of a run: ``<sweep>-<preset>`` from its id ``<sweep>/preset=<p>/<run>``, else the
    sweep (the id's first part)."""
    parts = run_id.split("/")
    if len(parts) == 4 and parts[0] == "hpo" and parts[2].startswith("preset="):
        return f"hpo-{parts[1]}-{parts[2].removeprefix('preset=')}"
    if len(parts) == 3 and parts[1].startswith("preset="):
        return f"{parts[0]}-{parts[1].removeprefix('preset=')}"
    return parts[0] if len(parts) > 1 else "runs"


def write_curves(df: pd.DataFrame, path: Path) -> list[Path]:
    """The long curves table stored wide (one row per run and step, a column per metric present in that
    file, 6 significant digits), so a run id is written once per step, not once per value: into ``path``
    itself when it ends in ``.csv``, else into the directory ``path``, one ``curves_file_stem`` file per
    group (files of groups not collected this time are left alone: the report reads the curves of the runs
    in its results table only). Returns the files written."""
    path = Path(path)
    if path.suffix == ".csv":
        _write_wide(df, path)
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    stems = df["run_id"].map(curves_file_stem)
    written = []
    for stem in sorted(stems.unique()):
        _write_wide(df[stems == stem], path / f"{stem}.csv")
        written.append(path / f"{stem}.csv")
    return written


def load_curves(path) -> pd.DataFrame:
    """Curves as written by ``write_curves`` (a directory of files or one file; wide, or the long table
    itself) as the long table (run_id, step, metric, value) of ``collect_curves``."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    parts = []
    for f in files:
        df = pd.read_csv(f)
        if "metric" not in df.columns:
            df = df.melt(id_vars=["run_id", "step"], var_name="metric", value_name="value")
        parts.append(df.dropna(subset=["value"]))
    if not parts:
        return pd.DataFrame(columns=["run_id", "step", "metric", "value"])
    long = pd.concat(parts, ignore_index=True)
    return long.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)


def curves_beside(results_path) -> Path:
    """Where curves are looked for beside a results.csv: the ``curves`` directory, else ``curves.csv``."""
    parent = Path(results_path).parent
    return parent / "curves" if (parent / "curves").is_dir() else parent / "curves.csv"


def load_results(path) -> pd.DataFrame:
    """A results.csv written by ``collect``, text columns kept as text (a variant "0.60" stays "0.60")."""
    header = pd.read_csv(path, nrows=0).columns
    text = {
        c: str
        for c in header
        if c in TEXT or c.startswith("override/") or c.endswith(("_numerics", "_platform"))
    }
    df = pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
    for c in ("axis", "variant", "preset"):
        df[c] = df[c].fillna("")
    for c in ("seed", "steps_done", "steps"):
        df[c] = df[c].astype("Int64")
    return df.copy()  # de-fragmented after the column conversions


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m analysis.collect", description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", help="sweep roots or run directories (searched recursively)")
    ap.add_argument("--out", required=True, help="results table (CSV)")
    ap.add_argument(
        "--curves", help="training curves: a directory (one CSV per sweep and preset) or a .csv file"
    )
    ap.add_argument("--data", help="arrays for the pictures (default: <dir of --out>/data)")
    ap.add_argument("--no-pictures", action="store_true", help="do not read checkpoints for the pictures")
    ap.add_argument(
        "--update",
        action="store_true",
        help="merge into the existing --out table and --curves: runs found under the roots replace their "
        "rows, completed runs collected before whose directories are not here keep theirs, and so do the "
        "pictures of a group with a variant none of whose runs is here",
    )
    args = ap.parse_args(argv)
    df = now = collect(args.roots)
    merged = args.update and Path(args.out).exists()
    if merged:
        # the rows kept are written back as they were read: every cell as its text
        df = update_results(pd.read_csv(args.out, dtype=str, keep_default_na=False), now)
        print(
            f"[collect] {len(df) - len(now)} runs kept from {args.out} (not under the roots)", file=sys.stderr
        )
    write_csv(df, args.out)
    if merged:
        df = load_results(args.out)  # one type per column again
    counts = ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().sort_index().items())
    print(f"[collect] {len(df)} runs ({counts}) -> {args.out}", file=sys.stderr)
    if args.curves:
        curves = collect_curves(args.roots)
        if args.update and Path(args.curves).exists():
            before = load_curves(args.curves)
            if Path(args.curves).is_dir():  # only the files of the groups collected now are written again
                stems = set(now["run_id"].map(curves_file_stem))
                before = before[before["run_id"].map(curves_file_stem).isin(stems)]
            curves = update_curves(before, curves, kept=set(df["run_id"]) - set(now["run_id"]))
        write_curves(curves, args.curves)
        print(f"[collect] curves -> {args.curves}", file=sys.stderr)
    if not args.no_pictures:
        from analysis.pictures import extract_all

        data = Path(args.data) if args.data else Path(args.out).parent / "data"
        for path in extract_all(df, data, keep_unseen=args.update):
            print(f"[collect] pictures -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
