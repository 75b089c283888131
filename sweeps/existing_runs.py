"""Runs already on disk or recorded elsewhere, met by a sweep's points before it launches anything.

* ``stored_run_differences``: how the run already in a point's directory differs from the point (run names
  leave out keys such as ``sweep.*``, ``probes`` and ``log_every``, so two configurations can share a name);
  the sweeper refuses the sweep rather than skip or resume such a run.
* ``RecordedRuns``: the completed runs a results table records (``hydra.sweeper.recorded``), skipped as runs
  trained on another machine.
* ``identical_run`` / ``adopt_run``: ablations share points (the preset's own mask ratio, predictor width and
  data mix are the base of three sweeps); a point whose configuration a completed run of another sweep
  already trained in the same arithmetic is adopted from it (its files copied, checkpoints hard-linked,
  ``reused_from`` in status.json) instead of being trained again.
* ``trained_precision``: the arithmetic a run trained in, as its files record it.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sweeps.common import run_entries, run_state
from vjepa.run_identity import ABSENT, RUN_FREE_KEYS, config_differences

# Keys that do not change what a run computes, measures or logs, so two runs differing only in them are the
# same run: the engine's list (analysis.collect's run_hash leaves out the same keys).
REUSE_FREE_KEYS = RUN_FREE_KEYS


def comparable_config(cfg) -> dict:
    """The resolved config without ``REUSE_FREE_KEYS``."""
    from vjepa.run_identity import without_added_defaults, without_keys

    c = without_keys(OmegaConf.to_container(cfg, resolve=True), REUSE_FREE_KEYS)
    return without_added_defaults(c)


def trained_precision(run_dir) -> str | None:
    """The arithmetic (bf16 | fp32) the run in ``run_dir`` trained in, as its files record it: status.json
    (the trainer names it in every status write), else metrics.json's ``precision``, else (runs from before
    either recorded it) config.yaml's ``precision`` resolved on metrics.json's ``device``. None where no file
    records it."""
    from vjepa.config_check import resolved_precision
    from vjepa.runfiles import read_json, read_status

    run_dir = Path(run_dir)
    status = read_status(run_dir) or {}
    metrics_path, cfg_path = run_dir / "metrics.json", run_dir / "config.yaml"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    recorded = status.get("precision") or metrics.get("precision")
    if recorded or not (metrics.get("device") and cfg_path.is_file()):
        return recorded
    precision = OmegaConf.load(cfg_path).get("precision", "auto")
    return resolved_precision(precision, str(metrics["device"]).split(":")[0])


def has_trained(run_dir) -> bool:
    """Whether ``run_dir`` holds training that a launch would not redo: a completed run, or the checkpoint
    (``checkpoints/last.pt``, the trainer's) a launch would resume."""
    if (Path(run_dir) / "checkpoints" / "last.pt").exists():
        return True
    return run_state(run_dir, ask_scheduler=False)[0] == "completed"


def stored_run_differences(run_dir, train_cfg, precision: str) -> list[tuple[str, object, object]]:
    """How the run already in ``run_dir`` differs from a point that would train ``train_cfg`` in ``precision``
    (bf16 | fp32, ``resolved_precision``): (key, on disk, this point) for every key of its config.yaml that
    differs from ``train_cfg`` up to ``REUSE_FREE_KEYS`` (the comparison adoption makes), and ``precision
    (trained in)`` where it has trained (``has_trained``) in another arithmetic (precision=auto is equal in
    both configs whatever the device). A run with a status.json but no config.yaml cannot be compared and is
    reported as differing in ``config.yaml``. Empty where the directory holds no run or the same run."""
    from vjepa.runfiles import read_status

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        return [("config.yaml", ABSENT, "this point's configuration")] if read_status(run_dir) else []
    differences = config_differences(
        comparable_config(OmegaConf.load(cfg_path)), comparable_config(train_cfg)
    )
    trained = trained_precision(run_dir) if has_trained(run_dir) else None
    if trained is not None and trained != precision:
        differences.append(("precision (trained in)", trained, precision))
    return differences


class RecordedRuns:
    """The completed runs a results table (``analysis.collect``'s CSV, e.g. the committed
    reports/results.csv) records, for a reproduction continued on another machine: a point whose directory
    holds nothing is skipped when the table records a completed run of its name (``<sweep>/preset=<p>/<run
    dir name>``) that is the point's run: the same ``run_hash`` (the configuration up to ``REUSE_FREE_KEYS``,
    as a run on disk is compared) and arithmetic. A recorded run of its name that differs refuses the sweep
    (``differences``). Rows collected before run_hash existed are matched by ``config_hash`` (which leaves
    out probes, log_every and diagnostics) and the probe tasks they have numbers for (``legacy``)."""

    REQUIRED = ("run_id", "status", "config_hash")

    def __init__(self, path):
        self.path = Path(path).absolute()
        if not self.path.is_file():
            raise ValueError(f"hydra.sweeper.recorded={path}: no such results table ({self.path})")
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in self.REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"hydra.sweeper.recorded={path}: not a results table of analysis.collect (no column "
                    f"{', '.join(missing)})"
                )
            self.rows = {r["run_id"]: r for r in reader if r["status"] == "completed"}
        self.legacy: set[str] = set()  # run ids matched without a run_hash

    @staticmethod
    def run_id(run_dir) -> str:
        run_dir = Path(run_dir)
        return f"{run_dir.parent.parent.name}/{run_dir.parent.name}/{run_dir.name}"

    def holds(self, run_dir) -> bool:
        return self.run_id(run_dir) in self.rows

    def differences(self, run_dir, train_cfg, precision: str) -> list[tuple[str, object, object]]:
        """(what, recorded, this point) where the recorded run of ``run_dir``'s name differs from a point
        that would train ``train_cfg`` in ``precision``; empty where none is recorded or it is the same. A
        row that does not say its arithmetic differs in it."""
        from vjepa.config_check import resolved_precision
        from vjepa.run_identity import config_hashes, run_hash

        run_id = self.run_id(run_dir)
        row = self.rows.get(run_id)
        if row is None:
            return []
        out = []
        cfg = OmegaConf.to_container(train_cfg, resolve=True)
        key = "run_hash" if row.get("run_hash") else "config_hash"
        want = run_hash(cfg) if key == "run_hash" else config_hashes(cfg)[0]
        if row[key] != want:
            out.append((key, row[key], want))
        if key == "config_hash":
            self.legacy.add(run_id)
            tasks = list((cfg.get("probes") or {}).get("tasks") or {})
            measured = {k.split("/")[1] for k, v in row.items() if k and k.startswith("probe/") and v}
            unmeasured = [t for t in tasks if t not in measured]
            if unmeasured:
                out.append(("probes", f"no numbers of {', '.join(unmeasured)}", f"tasks {', '.join(tasks)}"))
        trained = row.get("precision") or (
            resolved_precision(row.get("config/precision") or "auto", row["device"].split(":")[0])
            if row.get("device")
            else "unknown"
        )
        if trained != precision:
            out.append(("precision (trained in)", trained, precision))
        return out


def identical_run(train_cfg: DictConfig, sweeps_root, preset: str, run_dir, *, precision: str) -> Path | None:
    """A completed run under ``<sweeps_root>/<any sweep>/preset=<preset>/`` (not ``run_dir`` itself) whose
    configuration equals ``train_cfg`` up to ``REUSE_FREE_KEYS`` and that trained in ``precision``, the
    arithmetic this point would train in (``device`` is reuse-free and precision=auto is bf16 on CUDA, fp32 on
    CPU, so equal configs alone may differ in it); None if there is none. Runs that do not record their
    arithmetic (``trained_precision``) are not offered, nor runs that were themselves adopted, so every copy
    points at the run that trained."""
    from vjepa.runfiles import read_status

    want = comparable_config(train_cfg)
    here = Path(run_dir).absolute()
    for cfg_path in sorted(Path(sweeps_root).glob(f"*/preset={preset}/*/config.yaml")):
        donor = cfg_path.parent
        if donor.absolute() == here or run_state(donor, ask_scheduler=False)[0] != "completed":
            continue
        if "reused_from" in (read_status(donor) or {}) or trained_precision(donor) != precision:
            continue
        if not config_differences(comparable_config(OmegaConf.load(cfg_path)), want):
            return donor
    return None


def adopt_run(donor: Path, run_dir: Path, train_cfg: DictConfig, overrides: list[str]) -> None:
    """Make ``run_dir`` a completed run with ``donor``'s results: its files copied (checkpoints hard-linked
    where the file system allows), config.yaml naming ``run_dir``, overrides.yaml this point's overrides, and
    ``reused_from`` (the donor's path) in status.json.

    ``run_dir`` may already exist holding ``JOB_RESIDUE`` only (a job that died, or failed its config check,
    before the trainer wrote a file): the adopted run keeps those files, its overrides.yaml rewritten. A
    directory holding anything else (``run_entries``) is never touched: FileExistsError. The run is written
    into a temporary sibling that then replaces ``run_dir``, so an interruption leaves no half-adopted run and
    loses none of ``run_dir``'s files."""
    from vjepa.runfiles import atomic_write_text, read_status, write_json

    run_dir = Path(run_dir)
    held = run_entries(run_dir)
    if held:
        raise FileExistsError(
            f"{run_dir} holds {', '.join(held)}; only a directory without run files can adopt another "
            "sweep's run"
        )
    tmp = run_dir.with_name(f".{run_dir.name}.adopting")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        donor,
        tmp,
        ignore=shutil.ignore_patterns(".hydra", ".submitit", "job.json", "*.log"),
        copy_function=_link_or_copy,
    )
    _copy_job_residue(run_dir, tmp)
    cfg = OmegaConf.load(donor / "config.yaml")
    cfg.run_dir = str(run_dir)
    atomic_write_text(tmp / "config.yaml", OmegaConf.to_yaml(cfg))
    task = [o for o in overrides if o.split("=", 1)[0] not in REUSE_FREE_KEYS]
    atomic_write_text(tmp / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(task)))
    status = dict(read_status(donor))
    status["reused_from"] = os.path.relpath(donor.absolute(), run_dir.absolute().parent)
    write_json(tmp / "status.json", status)
    _replace_dir(tmp, run_dir)


def _copy_job_residue(run_dir: Path, dest: Path) -> None:
    """Copy the entries of ``run_dir`` (job residue; nothing where it does not exist) into ``dest``, but its
    overrides.yaml (the adoption writes the point's)."""
    if not run_dir.exists():
        return
    for entry in run_dir.iterdir():
        if entry.name != "overrides.yaml":
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, dest / entry.name)


def _replace_dir(new: Path, target: Path) -> None:
    """Rename directory ``new`` to ``target``. An existing ``target`` is first renamed aside
    (``.<name>.replaced``) and removed once ``new`` is in its place, so each moment one of them is whole."""
    if not target.exists():
        new.rename(target)
        return
    aside = target.with_name(f".{target.name}.replaced")
    shutil.rmtree(aside, ignore_errors=True)  # a copy an earlier replacement finished with
    target.rename(aside)
    new.rename(target)
    shutil.rmtree(aside)


def _link_or_copy(src, dst):
    """Hard-link checkpoints (large, never rewritten in place: saves are atomic renames), copy the rest."""
    if "checkpoints" in Path(src).parts:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)
