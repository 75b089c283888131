"""The ablation sweeper of sweeps/ (``hydra/sweeper: ablation``).

Points: the cartesian product of the config's ``grid`` (per preset where given as a mapping), its ``seeds``
and the command line's own sweeps (a command-line sweep of a key replaces that key's grid). Before launching
it prints the plan: every run directory, whether it is launched or skipped (completed, or still in a live
scheduler job), and the compute (``vjepa.flops``); for local launches also the wall time they will take, timed
by the sweep's runs that completed on this host alike. Points whose configuration is invalid are reported and
not launched. A point whose directory already holds a run that differs from it (``stored_run_differences``:
its config.yaml up to the reuse-free keys, or the arithmetic it trained in) refuses the whole sweep
(``SweepRefused``) after the plan, before anything is adopted or launched: skipping or resuming that run would
report it as the point. ``dry_run=true`` stops after the plan and that check, printing what the planned
seeds can detect (``sweeps.power_plan``; ``power.effect``: the seeds a difference of that size needs).
Adoption is offered only to a point whose directory holds no run files (``run_entries``). Local launches keep
``max_parallel`` runs going (default: CPUs // threads per run, ``threads`` set per run), seed by seed, a
finished run's slot taking the next; SLURM launches are sized by the ``cluster`` group, except for any
``hydra.launcher.*`` key given on the command line. At the end: a summary of completed / skipped / failed runs
and exit status 1 unless every point is completed.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sweeps.common import (
    completed_in_folders,
    compute_line,
    engine_config,
    human,
    launch_device_type,
    local_gpus,
    local_slots,
    measured_rate,
    pool_wall_time,
    record_queued_job,
    relay_gpus_to_local_jobs,
    run_entries,
    run_state,
    scheduler_params,
    submitted_job_ids,
)
from sweeps.existing_runs import RecordedRuns, adopt_run, identical_run, stored_run_differences
from vjepa.config_check import resolved_precision
from vjepa.runfiles import read_status


@dataclass
class Point:
    overrides: list[str]
    run_dir: Path
    # run_state() at planning time, "reuse" (adopt another sweep's identical run), "recorded" (completed
    # elsewhere: the ``recorded`` results table holds it), "invalid", or "conflict" (its directory, or the
    # table's row of its name, holds a run that differs from the point: ``differences``)
    state: str
    detail: str = ""
    tokens: int = 0  # per step
    step_flops: float = 0.0
    steps: int = 0
    donor: Path | None = None
    train_cfg: DictConfig | None = None
    differences: list[tuple[str, object, object]] = field(default_factory=list)  # (key, on disk, this point)
    probe_tasks: tuple[str, ...] = ()  # the probe tasks the run measures (the dry run's power lines)

    @property
    def flops(self) -> float:
        return self.step_flops * self.steps

    @property
    def seed(self) -> int:
        """The point's ``seed=`` override (0 where it has none or it is not a number)."""
        seeds = [o.split("=", 1)[1] for o in self.overrides if o.split("=", 1)[0].lstrip("+~") == "seed"]
        return int(seeds[-1]) if seeds and seeds[-1].lstrip("-").isdigit() else 0

    @property
    def launch(self) -> bool:
        return self.state not in ("completed", "recorded", "active", "invalid", "reuse", "conflict")


class SweepRefused(CompactHydraException):
    """The sweep cannot go on as asked; nothing was adopted or launched. Hydra prints the message alone."""


def refusal_message(conflicts: list[Point]) -> str:
    """Why the sweep refuses ``conflicts`` (points whose directory holds a run that differs from them), what
    differs in each, and what to do instead."""
    lines = [
        f"[sweep] refused: the run directories of {len(conflicts)} point(s) already hold a run (or the results "
        "table of hydra.sweeper.recorded records one under their name) that differs from the point (run names "
        "leave out keys such as sweep.*, probes and log_every), so skipping or resuming it would report that "
        "run as this configuration. Nothing was adopted or launched."
    ]
    for p in conflicts:
        where = "recorded" if p.detail.startswith("recorded as completed") else "on disk"
        lines.append(f"  {p.run_dir}: {p.detail}")
        lines += [f"    {key}: {old!r} {where}, {new!r} in this sweep" for key, old, new in p.differences]
    keys = {key.split(".", 1)[0] for p in conflicts for key, _, _ in p.differences}
    lines.append(
        "To train this configuration, give the sweep another output directory (VJEPA_SWEEPS_OUT=<dir>); "
        "to go on with the runs on disk, drop the overrides that changed them."
    )
    if "probes" in keys:
        lines.append(
            "To probe a completed run with other probes, run `python -m vjepa.evaluate run_dir=<run dir> "
            "probes=<name>` (it merges the numbers into the run's metrics.json) instead of sweeping."
        )
    if any(p.detail.startswith("recorded as completed") for p in conflicts):
        lines.append(
            "A run the results table (hydra.sweeper.recorded) records under a point's name was trained "
            "elsewhere differently: to train this one anyway, leave hydra.sweeper.recorded out "
            "(analysis.collect --update then replaces that row with the new run). The committed runs trained "
            "on CPU in fp32: on a GPU machine, device=cpu goes on in their arithmetic."
        )
    if "precision (trained in)" in keys:
        lines.append(
            "A run that trained in another arithmetic (precision=auto is bf16 on CUDA, fp32 on CPU) is "
            "skipped or resumed only by a sweep launching where it trained (device=cuda for bf16, device=cpu "
            "for fp32)."
        )
    return "\n".join(lines)


def launcher_kind(config: DictConfig) -> str:
    """slurm | local (submitit's launchers) | other (Hydra's basic launcher, or no launcher configured)."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    for kind in ("slurm", "local"):
        if target.endswith(f"{kind.capitalize()}Launcher"):
            return kind
    return "other"


# Not a BasicSweeper subclass: Hydra's plugin scan re-executes its module, replacing the class a subclass
# would have been made from.
class AblationSweeper(Sweeper):
    def __init__(
        self,
        grid=None,
        seeds=(0, 1, 2),
        max_parallel=None,
        gpu_peak_tflops=989.0,
        mfu=0.4,
        reuse=True,
        recorded=None,
    ):
        self.reuse = bool(reuse)
        self.recorded = RecordedRuns(recorded) if recorded else None
        self.grid = OmegaConf.to_container(grid) if OmegaConf.is_config(grid) else dict(grid or {})
        self.seeds = list(seeds)
        self.max_parallel = max_parallel
        self.gpu_peak_tflops = float(gpu_peak_tflops)
        self.mfu = float(mfu)

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        kind = launcher_kind(config)
        if kind == "local":
            relay_gpus_to_local_jobs()
        if kind in ("slurm", "local"):
            explicit = {
                o.split("=", 1)[0].lstrip("+~").removeprefix("hydra.launcher.")
                for o in config.hydra.overrides.hydra
                if o.lstrip("+~").startswith("hydra.launcher.")
            }
            with open_dict(config.hydra.launcher):
                for key, value in scheduler_params(config.cluster, kind).items():
                    if key not in explicit:
                        config.hydra.launcher[key] = value
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ---- planning ---------------------------------------------------------------------------------------
    def _grid_overrides(self, preset: str | None) -> list[str]:
        out = []
        for key, values in self.grid.items():
            if isinstance(values, dict):
                if preset not in values:
                    raise ValueError(
                        f"the grid of {key} has no values for preset={preset} (it has: "
                        f"{', '.join(values)}); add them to the sweep's config or sweep {key} "
                        "on the command line"
                    )
                values = values[preset]
            out.append(f"{key}={','.join(str(v) for v in values)}")
        return out + ([f"seed={','.join(str(s) for s in self.seeds)}"] if self.seeds else [])

    def _plan(self, overrides: list[str]) -> Point:
        from vjepa.config_check import ConfigError, check_config
        from vjepa.flops import step_cost

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        hydra_cfg = HydraConfig.instance()
        saved = hydra_cfg.cfg
        hydra_cfg.set_config(cfg)
        try:
            run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
                cfg.hydra.runtime.output_dir = str(run_dir.absolute())
            train_cfg = engine_config(cfg)
            try:
                check_config(train_cfg)
            except ConfigError as exc:
                return Point(overrides, run_dir, "invalid", str(exc).replace("\n", " "))
            state, detail = run_state(run_dir)
            cost = step_cost(train_cfg)
            point = Point(overrides, run_dir, state, detail, cost.tokens, cost.flops, int(train_cfg.steps))
            point.probe_tasks = tuple((train_cfg.get("probes") or {}).get("tasks") or {})
            precision = self._launch_precision(train_cfg)
            point.differences = stored_run_differences(run_dir, train_cfg, precision)
            if point.differences:
                point.state = "conflict"
                point.detail = f"the {state} run on disk differs in " + ", ".join(
                    k for k, _, _ in point.differences
                )
                return point
            # never skip nor adopt over a run's files
            if state != "new" or run_entries(run_dir):
                return point
            if self.recorded is not None:
                point.differences = self.recorded.differences(run_dir, train_cfg, precision)
                if point.differences:
                    point.state = "conflict"
                    point.detail = (
                        f"recorded as completed in {self.recorded.path}, differing in "
                        + ", ".join(k for k, _, _ in point.differences)
                    )
                    return point
                if self.recorded.holds(run_dir):
                    point.state, point.detail = "recorded", f"completed, in {self.recorded.path}"
                    return point
            if self.reuse:
                sweeps_root = Path(str(cfg.hydra.sweep.dir)).parent.parent
                preset = str(cfg.hydra.runtime.choices.get("preset"))
                donor = identical_run(train_cfg, sweeps_root, preset, run_dir, precision=precision)
                if donor is not None:
                    point.state, point.detail, point.donor = "reuse", f"same config as {donor}", donor
                    point.train_cfg = train_cfg
            return point
        finally:
            hydra_cfg.cfg = saved

    def _launch_precision(self, train_cfg: DictConfig) -> str:
        """The arithmetic (bf16 | fp32) a run of ``train_cfg`` launched by this sweep trains in."""
        launcher = self.config.hydra.launcher
        device = launch_device_type(
            train_cfg.device, launcher_kind(self.config), launcher.get("gpus_per_node")
        )
        return resolved_precision(train_cfg.precision, device)

    def _print_plan(self, points: list[Point], kind: str, slots: int, threads: int | None) -> None:
        from vjepa.flops import gpu_hours

        cfg = self.config
        name, preset = cfg.hydra.job.config_name, cfg.hydra.runtime.choices.get("preset")
        launch = [p for p in points if p.launch]
        n = {state: sum(p.state == state for p in points) for state in {p.state for p in points}}
        recorded = (
            f"{n.get('recorded', 0)} completed elsewhere (skipped: recorded in {self.recorded.path}), "
            if self.recorded is not None
            else ""
        )
        print(
            f"[sweep] {name} preset={preset}: {len(points)} runs, {len(launch)} to launch, "
            f"{n.get('completed', 0)} completed (skipped), {recorded}"
            f"{n.get('active', 0)} in live jobs (skipped), "
            f"{n.get('reuse', 0)} identical to another sweep's completed run (adopted), "
            f"{n.get('invalid', 0)} invalid, "
            f"{n.get('conflict', 0)} differing from the run on disk{' or recorded' if recorded else ''} (refused)"
        )
        legacy = sorted(self.recorded.legacy) if self.recorded is not None else []
        if legacy:
            print(
                f"[sweep] {len(legacy)} recorded run(s) collected before run_hash existed: matched by config_hash "
                "and the probe tasks they have numbers for; their probe settings, log_every and diagnostics are "
                "not compared"
            )
        if kind == "local":
            print(f"[sweep] launcher submitit_local: {slots} at a time x {threads} thread(s)")
        elif kind == "slurm":
            c = cfg.cluster
            print(
                f"[sweep] launcher submitit_slurm: partition={c.partition or 'default'}, "
                f"{c.nodes} node(s) x {c.gpus_per_node or 0} GPU(s), {c.tasks_per_node} task(s)/node, "
                f"{c.time_min} min per job"
            )
        sustained = self.gpu_peak_tflops * self.mfu
        header = f"{'tokens/step':>12}{'FLOP/step':>10}{'steps':>9}{'FLOP':>9}{'GPU-h':>9}"
        print(f"  {'action':<7}{header}  run dir")
        for p in points:
            note = "" if p.state == "new" else f" ({p.state}{': ' + p.detail if p.detail else ''})"
            action = "launch" if p.launch else {"reuse": "adopt", "conflict": "refuse"}.get(p.state, "skip")
            print(
                f"  {action:<7}{p.tokens:>12,}{human(p.step_flops):>10}{p.steps:>9}"
                f"{human(p.flops):>9}{gpu_hours(p.flops, sustained):>9.3g}  {p.run_dir}{note}"
            )
        total = sum(p.flops for p in launch)
        print(f"[sweep] to launch: {compute_line(total, self.gpu_peak_tflops, self.mfu)}", flush=True)
        if kind == "local" and launch:
            self._print_estimate(points, slots, threads)

    def _print_estimate(self, points: list[Point], slots: int, threads: int) -> None:
        """The local wall time of the launches, timed by this sweep's runs that completed here alike: the
        points of this call and the other runs in the sweep's output folder."""
        device = "cuda" if local_gpus() else "cpu"
        measured = measured_rate(completed_in_folders([p.run_dir for p in points]), threads, device)
        if measured is None:
            print(
                f"[sweep] no run of this sweep completed here at {threads} thread(s) to time the launches by"
            )
            return
        rate, n = measured
        left = []
        for p in sorted((p for p in points if p.launch), key=lambda p: p.seed):
            status = read_status(p.run_dir) or {}
            left.append(p.flops * (1 - min(int(status.get("step") or 0), p.steps) / max(p.steps, 1)) / rate)
        hours = pool_wall_time(left, slots) / 3600
        print(
            f"[sweep] estimated wall time here: {hours:.3g} h, {slots} at a time (training only, from where "
            f"each run stands; {human(rate)}FLOP/s per run: the median of {n} completed run(s) of this sweep "
            f"here at {threads} thread(s) on {device})",
            flush=True,
        )

    def _print_power(self, points: list[Point]) -> None:
        """The dry run's power lines (``sweeps.power_plan``): what the planned seeds can detect per headline
        metric and, with ``power.effect``, the seeds (and compute) a difference of that size needs."""
        from sweeps.power_plan import power_lines

        cfg = self.config
        effect = OmegaConf.select(cfg, "power.effect", default=None)
        if effect is not None:
            try:
                effect = abs(float(effect))
            except (TypeError, ValueError):
                raise SweepRefused(
                    f"power.effect={effect}: not a number (a difference of the metrics)"
                ) from None
            if effect == 0 or effect != effect:
                raise SweepRefused(f"power.effect={effect}: name a nonzero difference of the metrics")
        lines = power_lines(
            str(cfg.hydra.job.config_name),
            str(cfg.hydra.runtime.choices.get("preset")),
            points,
            recorded=self.recorded.path if self.recorded is not None else None,
            sweeps_root=Path(str(cfg.hydra.sweep.dir)).parent.parent,
            effect=effect,
            peak_tflops=self.gpu_peak_tflops,
            mfu=self.mfu,
        )
        print("\n".join(lines), flush=True)

    # ---- sweep ------------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> list:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        cfg = self.config
        preset = cfg.hydra.runtime.choices.get("preset")
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._grid_overrides(preset) + list(arguments))
        jobs = BasicSweeper.split_arguments(overrides, None)[0]  # the cartesian product, as Hydra's sweeper
        points = [self._plan(job) for job in jobs]
        todo = [p for p in points if p.launch]
        kind = launcher_kind(cfg)
        slots, threads = (0, None)
        if kind == "local":
            slots, threads = local_slots(cfg.threads, len(todo), self.max_parallel, local_gpus())
        if threads is not None and cfg.threads in (None, "auto"):
            for p in todo:
                p.overrides.append(f"threads={threads}")
        self._print_plan(points, kind, slots, threads)
        conflicts = [p for p in points if p.state == "conflict"]
        if conflicts:
            raise SweepRefused(refusal_message(conflicts))
        if cfg.dry_run:
            self._print_power(points)
            return []
        for p in points:
            if p.state == "reuse":
                adopt_run(p.donor, p.run_dir, p.train_cfg, p.overrides)
        errors = self._launch(todo, slots or max(1, len(todo)))
        if self._summarise(points, errors):
            sys.exit(1)
        return []

    def _launch(self, todo: list[Point], slots: int) -> dict[Path, str]:
        """Run ``todo`` with at most ``slots`` jobs in flight: each finished job's slot takes the next point
        (runs differ in cost, so waiting for a whole batch would leave CPUs idle), seed by seed, so a sweep
        stopped part way already pairs its variants by seed. Returns the error of each point whose job
        failed. With ``slots >= len(todo)`` (SLURM: the scheduler queues) it is one launch of all points."""
        todo = sorted(todo, key=lambda p: p.seed)  # stable: grid order within a seed
        if slots >= len(todo):
            return self._launch_batch(todo, 0)
        errors: dict[Path, str] = {}
        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="sweep-slot") as pool:
            for done in [pool.submit(self._launch_batch, [p], i) for i, p in enumerate(todo)]:
                errors.update(done.result())
        return errors

    def _launch_batch(self, batch: list[Point], first_idx: int) -> dict[Path, str]:
        """One blocking launch of ``batch``; returns the error of each point whose job failed."""
        submitted = threading.Event()  # set when the launch returns; the watcher stops then at the latest
        watcher, folder = None, self._job_folders()
        if folder is not None:
            before = {p.name for p in folder.iterdir()} if folder.is_dir() else set()  # before submitting
            watcher = threading.Thread(
                target=self._record_queued,
                args=(batch, folder, before, submitted),
                name="sweep-queued",
                daemon=True,
            )
            watcher.start()
        try:
            results = self.launcher.launch([p.overrides for p in batch], initial_job_idx=first_idx)
        except Exception as exc:
            # A job ended without a result (killed, node failure, ...): the launcher stops waiting at the
            # first such job, so wait for the others through their run directories.
            while any(run_state(p.run_dir)[0] == "active" for p in batch):
                time.sleep(10)
            return {p.run_dir: f"{type(exc).__name__}: {exc}" for p in batch}
        finally:
            submitted.set()
            if watcher is not None:
                watcher.join()
        return {
            p.run_dir: f"{type(r._return_value).__name__}: {r._return_value}"
            for p, r in zip(batch, results, strict=True)
            if r.status == JobStatus.FAILED
        }

    def _job_folders(self) -> Path | None:
        """Where a SLURM launch's submitit job folders appear (``hydra.launcher.submitit_folder`` is
        ``<folder>/%j``); None for other launchers or another folder pattern."""
        if launcher_kind(self.config) != "slurm":
            return None
        pattern = Path(str(OmegaConf.select(self.config, "hydra.launcher.submitit_folder", default="")))
        return pattern.parent if pattern.name == "%j" and "%" not in str(pattern.parent) else None

    @staticmethod
    def _record_queued(batch: list[Point], folder: Path, before: set[str], launched: threading.Event) -> None:
        """While the launch of ``batch`` blocks: once submitit has made the job folders of the submission
        in ``folder`` (names not in ``before``), write each point's job.json naming its queued job, so a
        rerun while they wait in the queue (this process killed) sees them as active instead of submitting
        them again."""
        while True:
            ids = submitted_job_ids(folder, before, len(batch))
            if ids is not None:
                for p, job_id in zip(batch, ids, strict=True):
                    record_queued_job(p.run_dir, job_id)
                return
            if launched.wait(0.5):
                return

    def _summarise(self, points: list[Point], errors: dict[Path, str]) -> int:
        counts = {"completed": 0, "skipped": 0, "adopted": 0, "failed": 0, "in live jobs": 0}
        lines = []
        for p in points:
            if not p.launch:
                key = {
                    "completed": "skipped",
                    "recorded": "skipped",
                    "reuse": "adopted",
                    "active": "in live jobs",
                    "invalid": "failed",
                }[p.state]
                counts[key] += 1
                if key not in ("skipped", "adopted"):
                    lines.append(f"  {key:<12} {p.run_dir}: {p.detail}")
                continue
            state, detail = run_state(p.run_dir, ask_scheduler=False)  # its job has returned
            if state == "completed":
                counts["completed"] += 1
            else:
                counts["failed"] += 1
                why = detail or errors.get(p.run_dir) or state  # status.json's error first: it is the run's
                lines.append(f"  {'failed':<12} {p.run_dir}: {why.splitlines()[0]}")
        name = self.config.hydra.job.config_name
        print(f"[sweep] {name} summary: " + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
        for line in lines:
            print(line, flush=True)
        bad = counts["failed"] + counts["in live jobs"]
        if bad:
            print(
                f"[sweep] {bad} of {len(points)} runs not completed; failed runs keep their traceback in "
                "status.json. Run the same command again to resume them.",
                file=sys.stderr,
            )
        return 1 if bad else 0
