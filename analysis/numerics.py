"""Which runs share numerics, and which seed pairs cross them.

Runs of one seed share initialisation and data order, so the report pairs them by seed to compare
variants. That pairing is clean only where both runs computed with the same numerics: the same configuration
trained by code whose numbers differ (a probe or data change, another torch build or CPU instruction set,
bf16 on a GPU) gives other numbers (e.g. the same loss to 8 digits but a CIFAR-10 linear probe 0.361 ->
0.355), so a pair across numerics measures that difference as well as the variants'.

``numerics_key`` gives each run the key its numerics are known by:

* runs that recorded them (``numerics``, ``platform``, ``probe_numerics``, ``probe_platform`` in
  results.csv: ``vjepa.golden``): ``numerics <id> on <platform>``, with `` (bf16)`` for an arithmetic other
  than fp32, `` at <n> threads`` for a CPU run at more than one torch thread (the thread count changes the
  float rounding: the golden numerics are one thread's) and, for probe metrics (their thread count is
  ``probe_threads``, where recorded), ``; probed: numerics <id> on <platform>`` where the probes ran with
  other numerics or elsewhere than the training;
* runs made before that: ``code <code_version>`` (unknown numerics: the code version is the best proxy, and
  two code versions are assumed to possibly differ), with `` on cuda (bf16)`` and the like where the
  recorded device or arithmetic is not the CPU's fp32 (and the thread suffix above); a modified checkout (``-dirty``) is its own code, one
  per run.

``crossing_pairs`` gives, for two variants, the seeds whose pair crosses keys; ``numerics_by_group`` lists
each (sweep, preset) group's keys and whether it is ``one numerics`` or ``mixed``; ``numerics_note`` is the
one-sentence flag a report prints under a mixed group. ``python -m analysis.numerics [results.csv]``
prints the groups.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping

import pandas as pd

ONE, MIXED = "one numerics", "mixed"
GROUP_COLUMNS = ["sweep", "preset", "numerics", "n_keys", "keys", "mixed_seeds", "runs"]


def _text(value) -> str | None:
    """A recorded text value, None for a missing one (NaN, None, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    value = str(value).strip()
    return value or None


def is_probe_metric(metric: str | None) -> bool:
    """Whether ``metric`` is a probe score (``probe/...``, ``probe_random/...``): its numbers depend on the
    probes' numerics too; a training metric (``loss_final``, ...) only on the training's."""
    return metric is not None and metric.startswith("probe")


def _arithmetic(row: Mapping) -> str:
    """`` (bf16)`` where the recorded arithmetic is not fp32, else empty."""
    precision = _text(row.get("precision"))
    return f" ({precision})" if precision and precision != "fp32" else ""


def _threads(row: Mapping, probes: bool = False) -> str:
    """`` at <n> threads`` for a CPU run (``probes``: CPU probes, ``probe_threads``) recorded at more than one
    torch thread, else empty: on CPU the thread count splits reductions differently (the losses of a run
    differ in the last bits within ten steps)."""
    if probes:
        cpu = (_text(row.get("probe_platform")) or _text(row.get("platform")) or "cpu").startswith("cpu")
        threads = _text(row.get("probe_threads"))
    else:
        cpu = (_text(row.get("device")) or "cpu").split(":")[0] == "cpu"
        threads = _text(row.get("threads"))
    if not cpu or threads is None:
        return ""
    n = int(float(threads))
    return f" at {n} threads" if n != 1 else ""


def run_key(row: Mapping, metric: str | None = None) -> str:
    """The numerics key of one run (a results row; see the module). ``metric``: a probe score's key includes
    the probes' numerics, a training metric's does not; None: as a probe score (the strictest)."""
    numerics = _text(row.get("numerics"))
    if numerics is None:
        version = _text(row.get("code_version")) or "unknown"
        key = f"code {version}"
        if version.endswith("-dirty") or version == "unknown":  # edited code: each run its own
            key += f" [{_text(row.get('run_id')) or id(row)}]"
        device = (_text(row.get("device")) or "cpu").split(":")[0]
        if device != "cpu" or _arithmetic(row):
            key += f" on {device}{_arithmetic(row)}"
        return key + _threads(row)
    platform = _text(row.get("platform"))
    trained = (
        f"numerics {numerics}" + (f" on {platform}" if platform else "") + _arithmetic(row) + _threads(row)
    )
    if metric is not None and not is_probe_metric(metric):
        return trained
    probe_numerics, probe_platform = _text(row.get("probe_numerics")), _text(row.get("probe_platform"))
    if probe_numerics is None and probe_platform is None:
        return trained  # not probed, or probed with the training (which records them since it records these)
    # probes that recorded no thread count ran at the training's (in its process, or before it was recorded)
    probe_threads = _threads(row, probes=True) if _text(row.get("probe_threads")) else _threads(row)
    if (probe_numerics, probe_platform, probe_threads) == (numerics, platform, _threads(row)):
        return trained
    probed = f"numerics {probe_numerics or '?'}" + (f" on {probe_platform}" if probe_platform else "")
    return f"{trained}; probed: {probed}{probe_threads}"


def numerics_key(runs: pd.DataFrame, metric: str | None = None) -> pd.Series:
    """Per run (indexed as ``runs``), the key its training and probe numerics are known by (``run_key``).
    Columns a table lacks (results.csv written before the numerics were recorded) count as missing."""
    return pd.Series(
        [run_key(row, metric) for row in runs.to_dict("records")], index=runs.index, dtype=object
    )


def _completed(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "completed"] if "status" in runs.columns else runs


def crossing_pairs(runs: pd.DataFrame, a: str, b: str, metric: str | None = None) -> list[int]:
    """For variants ``a`` and ``b`` of one table, the seeds completed by both whose runs do not all share a
    numerics key (``numerics_key``, for ``metric``): the pairs ``directions.paired_differences`` forms
    that cross numerics. Sorted."""
    done = _completed(runs)
    done = done[done["variant"].isin([a, b]) & done["seed"].notna()]
    keys = numerics_key(done, metric)
    crossing = []
    for seed, rows in done.groupby("seed"):
        if {a, b} <= set(rows["variant"]) and keys[rows.index].nunique() > 1:
            crossing.append(int(seed))
    return sorted(crossing)


def mixed_seeds(runs: pd.DataFrame, metric: str | None = None) -> list[int]:
    """The seeds whose completed runs (all variants) span several numerics keys: every pair of variants that
    crosses numerics is at one of them."""
    done = _completed(runs)
    done = done[done["seed"].notna()]
    keys = numerics_key(done, metric)
    return sorted(int(s) for s, rows in done.groupby("seed") if keys[rows.index].nunique() > 1)


def _describe(keys: list[str]) -> str:
    """The keys of a mixed group in words: recorded numerics as they are, unrecorded ones as code versions."""
    versions = [k.removeprefix("code ") for k in keys if k.startswith("code ")]
    recorded = [k for k in keys if not k.startswith("code ")]
    parts = []
    if recorded:
        parts.append(f"{len(recorded)} recorded numerics ({'; '.join(recorded)})")
    if versions:
        kinds = "code version" if len(versions) == 1 else "code versions"
        parts.append(f"{len(versions)} {kinds} with unrecorded numerics ({', '.join(versions)})")
    return " and ".join(parts)


def _seeds(seeds: list[int]) -> str:
    words = [str(s) for s in seeds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def numerics_note(group_runs: pd.DataFrame, metric: str | None = None) -> str | None:
    """One sentence for a (sweep, preset) group whose completed runs span several numerics keys, None for
    one numerics (or no completed run). E.g. "runs of 2 code versions with unrecorded numerics (4d8dd59,
    ea27e23): pairs across them may differ in numerics and are flagged (seeds 1 and 2 mix them)"."""
    done = _completed(group_runs)
    keys = sorted(set(numerics_key(done, metric)))
    if len(keys) < 2:
        return None
    seeds = mixed_seeds(done, metric)
    if not seeds:
        return (
            f"runs of {_describe(keys)}: each seed's runs share one, so no pair crosses numerics (means over "
            "seeds pool them)"
        )
    where = f"seed {_seeds(seeds)} mixes them" if len(seeds) == 1 else f"seeds {_seeds(seeds)} mix them"
    return f"runs of {_describe(keys)}: pairs across them may differ in numerics and are flagged ({where})"


def numerics_by_group(results: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (sweep, preset) group of a results table: its completed runs' distinct numerics keys
    (``keys``, "; "-joined; ``n_keys``), ``numerics``: "one numerics" or "mixed", ``mixed_seeds`` (the
    seeds whose runs span several keys, comma-joined) and the number of completed ``runs``."""
    rows = []
    for (sweep, preset), runs in _completed(results).groupby(["sweep", "preset"], sort=True):
        keys = sorted(set(numerics_key(runs, metric)))
        rows.append(
            {
                "sweep": sweep,
                "preset": preset,
                "numerics": ONE if len(keys) == 1 else MIXED,
                "n_keys": len(keys),
                "keys": " | ".join(keys),
                "mixed_seeds": ",".join(map(str, mixed_seeds(runs, metric))),
                "runs": len(runs),
            }
        )
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m analysis.numerics", description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", default="reports/results.csv")
    args = ap.parse_args(argv)
    from analysis.collect import load_results

    results = load_results(args.results)
    table = numerics_by_group(results)
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(table.to_string(index=False))
    for (sweep, preset), runs in results.groupby(["sweep", "preset"], sort=True):
        note = numerics_note(runs)
        if note:
            print(f"{sweep}/{preset or '-'}: {note}")


if __name__ == "__main__":
    main()
