"""`python -m sweeps.evaluate TARGET [key=value ...]`: probe every completed run of a sweep, one
``vjepa.evaluate`` job per run, through the launchers the sweeps use (submitit: local processes or SLURM).

TARGET: a sweep's output folder (any folder holding run directories, searched recursively), or a sweep's
name, read as ``${VJEPA_SWEEPS_OUT:-sweeps_out}/<name>``. Runs are the folders with a ``status.json``; only
``completed`` ones (``vjepa.runfiles.recorded_state``) are probed, and of these only those whose
``metrics.json`` lacks a task of the probe set (no ``<prefix>/<task>/time_s``; prefix ``probe``,
``probe_online`` with ``encoder=online``, ``probe_random`` with ``baseline=only``), unless ``force=true``.

Keys of this script: ``launcher`` (auto | local | slurm; auto: SLURM where ``sbatch`` reaches a controller),
``cluster`` (a name in vjepa/conf/cluster/, default ``default``) and ``cluster.<key>=value`` (the job's
resources, as for the sweeps: ``cluster.tasks_per_node=8`` makes 8 SLURM tasks that share the feature
extraction), ``parallel`` (jobs at a time; local default: the CPUs shared as for sweeps, one job with
GPUs), ``force``, ``dry_run`` (list what would be probed and skipped, submit nothing). Every other key goes
to ``python -m vjepa.evaluate`` unchanged (``probes``, ``data_root``, ``cache``, ``device``, ``threads``,
``encoder``, ``baseline``, ``probes.<key>``). Job logs: ``<sweep folder>/.submitit/<job id>/``. Exit status 1
when a job failed.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from sweeps.common import default_launcher, job_active, local_gpus, local_slots, make_executor

OWN = {"launcher": "auto", "cluster": "default", "parallel": None, "force": False, "dry_run": False}
CLUSTER_DIR = Path(__file__).resolve().parents[1] / "vjepa" / "conf" / "cluster"


class EvalJob:
    """A submitit job: ``python -m vjepa.evaluate`` with ``argv`` in this process (every SLURM task of the
    job runs it; ``vjepa.distributed`` makes them the ranks of one evaluation)."""

    def __call__(self, argv: list[str]) -> None:
        from sweeps.common import restore_local_gpus
        from vjepa.evaluate import main

        restore_local_gpus()
        main(list(argv))


def parse(argv: list[str]) -> tuple[Path, dict, list[str], list[str]]:
    """(sweep folder, this script's keys, cluster overrides, vjepa.evaluate's key=value items)."""
    if not argv or "=" in argv[0] or argv[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    target, own, cluster, rest = Path(argv[0]).absolute(), dict(OWN), [], []
    if not target.is_dir():
        target = Path(os.environ.get("VJEPA_SWEEPS_OUT", "sweeps_out")).absolute() / argv[0]
    if not target.is_dir():
        raise SystemExit(f"[eval] {argv[0]}: neither a folder nor a sweep under {target.parent}")
    for item in argv[1:]:
        key, sep, _ = item.partition("=")
        if not sep:
            raise SystemExit(f"[eval] expected key=value, got {item!r}")
        if key.startswith("cluster."):
            cluster.append(item.removeprefix("cluster."))
        elif key in OWN:
            own[key] = OmegaConf.from_dotlist([item])[key]
        elif key == "run_dir":
            raise SystemExit("[eval] run_dir is each run's: give the sweep folder instead")
        else:
            rest.append(item)
    from vjepa.evaluate import parse as evaluate_parse

    evaluate_parse(["run_dir=.", *rest])  # the evaluation's keys checked once, before any job
    return target, own, cluster, rest


def cluster_config(name: str, overrides: list[str]):
    """The ``cluster`` group's ``name`` (its defaults list followed) with ``overrides`` (key=value)."""
    cfg = OmegaConf.load(CLUSTER_DIR / f"{name}.yaml")
    bases = [d for d in cfg.pop("defaults", []) if d != "_self_"]
    cfg = OmegaConf.merge(*(cluster_config(b, []) for b in bases), cfg)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))


def run_dirs(folder: Path) -> list[Path]:
    """The run directories under ``folder`` (those with a status.json), outside hidden folders, sorted."""
    found = {p.parent for p in folder.rglob("status.json")}
    return sorted(d for d in found if not any(part.startswith(".") for part in d.relative_to(folder).parts))


def metrics_prefix(evaluate_args: list[str]) -> str:
    """The metrics.json prefix the evaluation ``evaluate_args`` writes under (probe, probe_online, probe_random)."""
    from vjepa.evaluate import PREFIX, parse

    opts, _ = parse(["run_dir=.", *evaluate_args])
    return "probe_random" if opts["baseline"] == "only" else PREFIX[opts["encoder"]]


def missing_tasks(run_dir: Path, evaluate_args: list[str]) -> list[str]:
    """The tasks of the probe set ``evaluate_args`` names whose metrics ``run_dir``'s metrics.json lacks."""
    from vjepa.evaluate import parse, probes_config
    from vjepa.runfiles import read_json

    opts, overrides = parse([f"run_dir={run_dir}", *evaluate_args])
    probes = probes_config(OmegaConf.load(run_dir / "config.yaml"), opts["probes"], overrides)
    prefix = metrics_prefix(evaluate_args)
    metrics = read_json(run_dir / "metrics.json")
    return [t for t in (probes.get("tasks") or {}) if f"{prefix}/{t}/time_s" not in metrics]


def plan(
    runs: list[Path], evaluate_args: list[str], force: bool
) -> tuple[list[Path], list[tuple], list[Path]]:
    """(runs to probe, [(run, reason skipped)], every completed run of ``runs``, probed before or not)."""
    from vjepa.runfiles import recorded_state

    todo, skipped, completed = [], [], []
    for run in runs:
        state, _ = recorded_state(run)
        if state != "completed":
            skipped.append((run, f"not completed ({state})"))
            continue
        completed.append(run)
        if job_active(run):
            skipped.append((run, "a scheduler job still works on it"))
        elif not force and not missing_tasks(run, evaluate_args):
            skipped.append((run, "already probed (force=true probes it again)"))
        else:
            todo.append(run)
    return todo, skipped, completed


def recorded_threads(completed: list[Path], evaluate_args: list[str]) -> Counter:
    """{torch threads: runs} that earlier evaluations under this prefix recorded (``<prefix>/threads``)."""
    from vjepa.runfiles import read_json

    key = f"{metrics_prefix(evaluate_args)}/threads"
    found = (read_json(run / "metrics.json").get(key) for run in completed)
    return Counter(t for t in found if isinstance(t, int) and not isinstance(t, bool) and t > 0)


def job_threads(
    kind: str, completed: list[Path], own: dict, evaluate_args: list[str]
) -> tuple[int, int | None]:
    """(jobs at a time, torch threads to pass each job or None to pass none).

    On CPU the thread count changes a probe's float rounding, so every probe of a folder should run at one
    count: a ``threads=`` the user gave; else the count the folder's earlier probes recorded (the most common
    one, with a warning when they differ); else, for local jobs, the CPUs shared among all the folder's
    completed runs, not only those left to probe, so that probing the rest later gives the same count."""
    given = [a.partition("=")[2] for a in evaluate_args if a.startswith("threads=")]
    recorded = recorded_threads(completed, evaluate_args)
    threads = None
    if not given and recorded:
        threads = recorded.most_common(1)[0][0]
        if len(recorded) > 1:
            counts = ", ".join(f"{n} run(s) at {t}" for t, n in sorted(recorded.items()))
            print(
                f"[eval] warning: earlier probes ran at different thread counts ({counts}); using {threads}"
            )
    if kind != "local":
        return int(own["parallel"] or 4), threads
    fixed = threads or (int(given[0]) if given and given[0].isdigit() else "auto")
    slots, auto = local_slots(fixed, len(completed), own["parallel"], local_gpus())
    return slots, None if given else auto


def launch(todo: list[Path], folder: Path, own: dict, cluster, evaluate_args: list[str], completed) -> dict:
    """Submit one job per run, at most ``slots`` at a time; {run: (error or None, stderr log)}."""
    kind = default_launcher().removeprefix("submitit_") if own["launcher"] == "auto" else str(own["launcher"])
    slots, threads = job_threads(kind, completed, own, evaluate_args)
    extra = [f"threads={threads}"] if threads else []
    executor = make_executor(kind, folder / ".submitit" / "%j", cluster, f"eval-{folder.name}")
    at = f", {threads} torch thread(s) each" if threads else ""
    print(f"[eval] {len(todo)} run(s) to probe on {kind}, {slots} at a time{at}", flush=True)
    waiting, running, done = list(todo), {}, {}
    while waiting or running:
        while waiting and len(running) < slots:
            run = waiting.pop(0)
            running[run] = executor.submit(EvalJob(), [f"run_dir={run}", *evaluate_args, *extra])
            print(f"[eval] {run}: job {running[run].job_id}, log {running[run].paths.stderr}", flush=True)
        time.sleep(1.0)
        for run, job in list(running.items()):
            if job.done():
                error = job.exception()
                done[run] = (None if error is None else _first_line(error), job.paths.stderr)
                print(f"[eval] {run}: {'failed' if error else 'probed'}", flush=True)
                del running[run]
    return done


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def summary(done: dict, skipped: list[tuple]) -> int:
    """Print what was probed, skipped and failed (with the failed jobs' logs); the exit status."""
    failed = {run: r for run, r in done.items() if r[0] is not None}
    print(f"[eval] probed {len(done) - len(failed)}, skipped {len(skipped)}, failed {len(failed)}")
    for run, reason in skipped:
        print(f"[eval]   skipped {run}: {reason}")
    for run, (error, log) in failed.items():
        print(f"[eval]   failed {run}: {error}\n[eval]     log: {log}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    folder, own, cluster_overrides, evaluate_args = parse(sys.argv[1:] if argv is None else argv)
    found = run_dirs(folder)
    todo, skipped, completed = plan(found, evaluate_args, bool(own["force"]))
    if own["dry_run"]:
        for run in todo:
            print(f"[eval] would probe {run}")
        return summary({}, skipped)
    cluster = cluster_config(str(own["cluster"]), cluster_overrides)
    done = launch(todo, folder, own, cluster, evaluate_args, completed)
    return summary(done, skipped)


if __name__ == "__main__":
    sys.exit(main())
