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
``max_parallel`` runs going (default: CPUs // threads per run, ``threads`` set per run from the number of
the sweep's points, so a resumed sweep trains each run at the thread count of its first launch: on CPU the
count changes a run's float rounding), seed by seed, a finished run's slot taking the next; SLURM launches are sized by the ``cluster`` group, except for any
``hydra.launcher.*`` key given on the command line. While local runs train, ``LocalMonitor`` shows each one's
progress on the console and stops them all with a checkpoint on Ctrl-C / SIGTERM (exit status 75); SIGUSR1
drains the sweep instead: the runs in progress finish, no further one starts (exit status 75). At the
end: a summary of completed / skipped / failed / interrupted runs, the probes they skipped for want of data
and where their logs are, and exit status 1 unless every point is completed.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
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
    detach_local_jobs,
    engine_config,
    human,
    job_logs,
    launch_device_type,
    live_controllers,
    local_gpus,
    local_slots,
    measured_rate,
    pool_wall_time,
    record_queued_job,
    relay_gpus_to_local_jobs,
    resume_step,
    run_entries,
    run_progress,
    run_state,
    scheduler_params,
    started_threads,
    submitted_job_ids,
    timed_rate,
)
from sweeps.existing_runs import RecordedRuns, adopt_run, identical_run, stored_run_differences
from vjepa.config_check import resolved_precision
from vjepa.runfiles import read_json, read_status


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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _shown_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def progress_line(idx: int, name: str, progress: dict, name_last: bool = False) -> str:
    """One run's progress (``sweeps.common.run_progress``): step/steps, loss, samples/s and the training time
    left at the last logged window's pace. ``name_last``: the run's name after the numbers (a terminal's
    live lines are cut at its width; ``#idx`` names the run too)."""
    state, step, steps = progress["state"], progress["step"], progress.get("steps")
    if state == "starting":
        info = "starting"
    elif state == "interrupted":
        info = f"interrupted, checkpoint at step {step}/{steps}; the same command resumes it"
    else:
        parts = [f"step {step}/{steps} ({step / steps:.0%})" if steps else f"step {step}"]
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("samples_per_s"):
            parts.append(f"{progress['samples_per_s']:.3g} samples/s")
        if state == "running" and progress.get("s_per_step") and steps:
            parts.append(f"ETA {_duration(progress['s_per_step'] * max(0, steps - step))}")
        info = ", ".join(parts if state == "running" else [state, *parts])
    return f"[sweep] #{idx} {info}  {name}" if name_last else f"[sweep] #{idx} {name}: {info}"


class _Shown:
    """A launched run as the console shows it."""

    def __init__(self, idx: int, point: Point):
        self.idx, self.point = idx, point
        self.step, self.printed_at = None, -math.inf
        self.logs_shown = self.finished = False


class LocalMonitor:
    """The console of a local sweep while its runs train, and its stop.

    Progress: every ``REFRESH_S`` a thread reads each launched run's status.json and the tail of its
    metrics.jsonl (written every ``log_every`` steps) and shows one line per run: on a terminal a block of
    live lines rewritten in place (other output clears it first and is printed above it); otherwise plain
    lines, one for a run when its logged step has changed and ``every_s`` seconds have passed since its last
    one (``VJEPA_SWEEP_PROGRESS_S``, default 30), and one when it ends. When a run's job starts, a line names
    its log files (submitit's ``.submitit/<job>/<job>_0_log.{err,out}``).

    Stop: Ctrl-C, SIGTERM or SIGHUP to the sweep (``install``) starts no further run and sends SIGTERM to
    every local job controller started here (``sweeps.common.detach_local_jobs``), which passes it on to
    its training process: the trainer writes a checkpoint at the next step, marks the run ``interrupted`` and
    exits (``vjepa.preemption``), the controller exits after it. The signal is sent again every
    ``RESEND_S`` to controllers still alive (a job whose trainer had not yet set its handler). A second
    signal kills every job's process group at once (no checkpoint: those runs resume from their last).

    Drain: SIGUSR1 (``DRAIN_SIGNAL``) starts no further run and lets the running ones finish, so a sweep
    that must end by a given time (a reservation, a machine lent for hours) leaves no run half trained; a
    stop signal after it still stops the running ones as above."""

    REFRESH_S = 2.0
    RESEND_S = 5.0
    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
    DRAIN_SIGNAL = "SIGUSR1"

    def __init__(self, submitit_folder=None, every_s: float | None = None, stream=None):
        self.stream = stream or sys.stdout
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        env = os.environ.get("VJEPA_SWEEP_PROGRESS_S")
        self.every_s = float(every_s if every_s is not None else env if env else 30.0)
        self.submitit_folder = submitit_folder
        self.lock = threading.RLock()
        self.runs: dict[Path, _Shown] = {}
        self.signals: list[int] = []  # received, in order (appended by the handler, nothing else there)
        self.drains: list[int] = []  # drain signals received (likewise)
        self.drawn = 0  # lines of the live block on the terminal
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers: dict[int, object] = {}
        self._wrapped: list[tuple[object, str, object]] = []

    # -- state -------------------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return bool(self.signals)

    @property
    def starts_no_more(self) -> bool:
        """No further run starts: the sweep was stopped or drained."""
        return bool(self.signals or self.drains)

    def started(self, idx: int, point: Point) -> None:
        with self.lock:
            self.runs[point.run_dir] = _Shown(idx, point)

    def finished(self, point: Point) -> None:
        with self.lock:
            if point.run_dir in self.runs:
                self.runs[point.run_dir].finished = True

    # -- signals -----------------------------------------------------------------------------------------
    def install(self) -> None:
        """Handle the stop signals (main thread only: Python runs handlers there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None:
                self._handlers[signum] = signal.signal(signum, self._on_signal)
        drain = getattr(signal, self.DRAIN_SIGNAL, None)
        if drain is not None:
            self._handlers[drain] = signal.signal(drain, self._on_drain)

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)  # the monitor thread acts on it (no I/O in a handler)

    def _on_drain(self, signum, frame) -> None:
        self.drains.append(signum)

    def uninstall(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers.clear()

    def _stop_runs(self, first: bool) -> None:
        live = live_controllers()
        name = signal.Signals(self.signals[-1]).name
        if first:
            self.print(
                f"[sweep] {name}: stopping. No further run starts; each of the {len(live)} running run(s) writes "
                "a checkpoint at its next step and exits (status.json: interrupted). Run the same command "
                "again to resume them. Ctrl-C or SIGTERM once more kills them at once (no checkpoint: they "
                "resume from their last one)."
            )
        for process in live:
            try:
                process.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def _kill_runs(self) -> None:
        live = live_controllers()
        self.print(f"[sweep] killing {len(live)} local job(s) and their processes (SIGKILL)")
        for process in live:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # its own process group (detach_local_jobs)
            except OSError:
                pass

    # -- output ------------------------------------------------------------------------------------------
    def print(self, text: str) -> None:
        """A line above the live block (from any thread)."""
        with self.lock:
            try:
                self._erase()
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed terminal (SIGHUP)
                pass

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self, lines: list[str]) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        with self.lock:
            try:
                self._erase()
                self.stream.write("".join(line[:width] + "\n" for line in lines))
                self.stream.flush()
                self.drawn = len(lines)
            except (OSError, ValueError):
                pass

    def refresh(self, final: bool = False) -> None:
        """Read every launched run and show where it stands."""
        now = time.monotonic()
        with self.lock:
            shown = list(self.runs.values())
        block = []
        for r in shown:
            if not r.logs_shown:
                logs = job_logs(r.point.run_dir, self.submitit_folder)
                if logs is not None:
                    r.logs_shown = True
                    self.print(
                        f"[sweep] #{r.idx} {r.point.run_dir.name}: started, log {_shown_path(logs[0])}"
                    )
            progress = run_progress(r.point.run_dir)
            line = progress_line(r.idx, r.point.run_dir.name, progress)
            live = progress_line(r.idx, r.point.run_dir.name, progress, name_last=True)
            state = progress["state"]
            # a run stopped or failed may still be requeued while its job lives; a completed one is done
            ended = state == "completed" or (state in ("failed", "interrupted") and (r.finished or final))
            if ended:
                self.print(line)
                with self.lock:
                    self.runs.pop(r.point.run_dir, None)
            elif self.tty:
                block.append(live)
            elif (
                state == "running"
                and progress["step"] != r.step
                and progress.get("loss") is not None
                and now - r.printed_at >= self.every_s
            ):
                self.print(line)
                r.printed_at, r.step = now, progress["step"]
        if self.tty:
            self._draw(block)

    # -- the thread --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.tty:
            self._wrap_streams()
        self._thread = threading.Thread(target=self._loop, name="sweep-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Show the runs' last state, end the thread and give the console back."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.refresh(final=True)
        with self.lock:
            self._erase()
        self._unwrap_streams()

    def wait_for_jobs(self) -> None:
        """After a stop: until every local job started here has exited (their training processes first)."""
        note = time.monotonic()
        while live_controllers():
            if time.monotonic() - note >= 30:
                self.print(f"[sweep] waiting for {len(live_controllers())} run(s) to checkpoint and exit")
                note = time.monotonic()
            time.sleep(0.2)

    def _loop(self) -> None:
        acted, sent, drawn, drained = 0, 0.0, -math.inf, False
        while not self._done.wait(0.2):
            now = time.monotonic()
            if self.drains and not drained and not self.signals:
                drained = True
                with self.lock:
                    running = sum(not r.finished for r in self.runs.values())
                self.print(
                    f"[sweep] {self.DRAIN_SIGNAL}: draining. No further run starts; the {running} running run(s) "
                    "finish. Run the same command again to start the rest. Ctrl-C or SIGTERM stops the running "
                    "ones with a checkpoint."
                )
            if len(self.signals) > acted:
                acted = len(self.signals)
                if acted == 1:
                    self._stop_runs(first=True)
                    sent = now
                else:
                    self._kill_runs()
            elif acted == 1 and now - sent >= self.RESEND_S:
                self._stop_runs(first=False)
                sent = now
            if now - drawn >= self.REFRESH_S:
                try:
                    self.refresh()
                except Exception as exc:  # noqa: BLE001 (a display must never stop the sweep)
                    self.print(f"[sweep] progress display: {type(exc).__name__}: {exc}")
                drawn = now

    # -- terminal output of others -----------------------------------------------------------------------
    def _wrap_streams(self) -> None:
        """On a terminal, route other output (print, warnings, Hydra's log lines) through ``_Clearing``, so
        the live block is cleared before it and redrawn below it."""
        originals = {id(sys.stdout): sys.stdout, id(sys.stderr): sys.stderr}
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            self._wrapped.append((sys, name, stream))
            setattr(sys, name, _Clearing(stream, self))
        handlers = list(logging.getLogger().handlers)
        for logger in list(logging.Logger.manager.loggerDict.values()):
            handlers += getattr(logger, "handlers", [])
        for handler in handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in originals:
                self._wrapped.append((handler, "stream", stream))
                handler.stream = _Clearing(stream, self)

    def _unwrap_streams(self) -> None:
        for owner, name, stream in reversed(self._wrapped):
            setattr(owner, name, stream)
        self._wrapped.clear()


class _Clearing:
    """A text stream that clears the monitor's live block before each write."""

    def __init__(self, stream, monitor: LocalMonitor):
        self._stream, self._monitor = stream, monitor

    def write(self, text):
        with self._monitor.lock:
            self._monitor._erase()
            return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


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
        progress_s=None,
    ):
        self.progress_s = progress_s  # local sweeps' plain progress lines: seconds between a run's lines
        self.monitor: LocalMonitor | None = None  # while a local sweep launches
        self.not_started: set[Path] = set()  # points a stop kept from starting
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
            detach_local_jobs()  # this process stops them (LocalMonitor): Ctrl-C reaches it alone
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
            point.train_cfg = train_cfg
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

    def _print_plan(
        self, points: list[Point], kind: str, slots: int, threads: int | None, time_steps: bool = False
    ) -> None:
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
            print(
                f"[sweep] launcher submitit_local: {slots} at a time x {threads} thread(s); Ctrl-C or SIGTERM "
                "stops every run with a checkpoint, the same command resumes them"
            )
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
            self._print_estimate(points, slots, threads, time_steps)

    def _print_estimate(
        self, points: list[Point], slots: int, threads: int, time_steps: bool = False
    ) -> None:
        """The local wall time of the launches, timed by this sweep's runs that completed here alike: the
        points of this call and the other runs in the sweep's output folder. Without such a run and with
        ``time_steps`` (a dry run), by a few steps of the first launch timed here now (``timed_rate``)."""
        device = "cuda" if local_gpus() else "cpu"
        launch = sorted((p for p in points if p.launch), key=lambda p: p.seed)
        measured = measured_rate(completed_in_folders([p.run_dir for p in points]), threads, device)
        if measured is not None:
            rate, n = measured
            source = (
                f"the median of {n} completed run(s) of this sweep here at {threads} thread(s) on {device}"
            )
        elif not time_steps:
            print(
                f"[sweep] no run of this sweep completed here at {threads} thread(s) to time the launches by "
                "(a dry run times a few steps instead)"
            )
            return
        else:
            first = launch[0]
            print(
                f"[sweep] no run of this sweep completed here at {threads} thread(s): timing a few steps of "
                f"{first.run_dir.name} ...",
                flush=True,
            )
            try:
                rate, steps, took = timed_rate(first.train_cfg, threads)
            except Exception as exc:  # noqa: BLE001 (e.g. its data is missing here): the plan still stands
                print(
                    f"[sweep] no time estimate: timing {first.run_dir.name} failed: {type(exc).__name__}: {exc}"
                )
                return
            source = (
                f"timed from {steps} step(s), after 1 warm-up, of {first.run_dir.name} in this process at "
                f"{threads} thread(s) on {device}, alone: the timing took {took:.1f} s"
            )
        left = []
        for p in launch:
            step = resume_step(read_status(p.run_dir))
            left.append(p.flops * (1 - min(step, p.steps) / max(p.steps, 1)) / rate)
        hours = pool_wall_time(left, slots) / 3600
        print(
            f"[sweep] estimated wall time here: {hours:.3g} h, {slots} at a time (training only, from where "
            f"each run stands; {human(rate)}FLOP/s per run: {source})",
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
            # threads from the whole sweep, not the points left: on CPU the thread count changes the float
            # rounding of a run, so a resumed sweep keeps the count its first launch gave every run
            slots, threads = local_slots(cfg.threads, len(points), self.max_parallel, local_gpus())
        if threads is not None and cfg.threads in (None, "auto"):
            for p in todo:
                p.overrides.append(f"threads={started_threads(p.run_dir) or threads}")
        conflicts = [p for p in points if p.state == "conflict"]
        self._print_plan(points, kind, slots, threads, time_steps=bool(cfg.dry_run) and not conflicts)
        if conflicts:
            raise SweepRefused(refusal_message(conflicts))
        if cfg.dry_run:
            self._print_power(points)
            return []
        for p in points:
            if p.state == "reuse":
                adopt_run(p.donor, p.run_dir, p.train_cfg, p.overrides)
        if kind == "local" and todo:
            folder = OmegaConf.select(cfg, "hydra.launcher.submitit_folder", default=None)
            self.monitor = LocalMonitor(folder, self.progress_s)
            self.monitor.install()
            self.monitor.start()
        try:
            errors = self._launch(todo, slots or max(1, len(todo)))
            if self.monitor is not None and self.monitor.stopping:
                self.monitor.wait_for_jobs()
        finally:
            if self.monitor is not None:
                self.monitor.stop()
                self.monitor.uninstall()
        stopped = self.monitor is not None and self.monitor.starts_no_more
        incomplete = self._summarise(points, errors)
        if stopped:  # 75 (EX_TEMPFAIL), as a stopped run: the same command resumes
            if not incomplete:  # drained during its last runs: a script running sweeps in turn must stop too
                print("[sweep] drained as its last runs finished: every point completed; exit 75", flush=True)
            sys.exit(75)
        if incomplete:
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
        """One blocking launch of ``batch``; returns the error of each point whose job failed. After a stop
        or a drain (``LocalMonitor``) nothing is launched."""
        monitor = self.monitor
        if monitor is not None:
            with monitor.lock:
                if monitor.starts_no_more:
                    self.not_started.update(p.run_dir for p in batch)
                    return {}
                for i, p in enumerate(batch):
                    monitor.started(first_idx + i, p)
        try:
            return self._launch_batch_now(batch, first_idx)
        finally:
            if monitor is not None:
                for p in batch:
                    monitor.finished(p)

    def _launch_batch_now(self, batch: list[Point], first_idx: int) -> dict[Path, str]:
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
            # A job ended without a result (killed, node failure, a requeued job in a state that submitit
            # takes for an end, e.g. CONFIGURING): the launcher stops waiting at the first such job, so wait
            # for the others through their run directories; a run that completed after all is no error.
            while any(run_state(p.run_dir)[0] == "active" for p in batch):
                time.sleep(10)
            return {
                p.run_dir: f"{type(exc).__name__}: {exc}"
                for p in batch
                if run_state(p.run_dir, ask_scheduler=False)[0] != "completed"
            }
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
        """The summary: counts, the runs not completed and why, probes skipped for want of data, and where
        the launched runs' logs are. 1 unless every point is completed."""
        counts = {"completed": 0, "skipped": 0, "adopted": 0, "failed": 0, "in live jobs": 0}
        lines = []
        stopped = self.monitor is not None and self.monitor.stopping
        drained = self.monitor is not None and self.monitor.starts_no_more
        for p in points:
            if p.run_dir in self.not_started:
                counts["not started"] = counts.get("not started", 0) + 1
                continue
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
            elif state == "new" and stopped:  # its job was stopped before the trainer wrote anything
                counts["not started"] = counts.get("not started", 0) + 1
            elif state == "interrupted" or (state == "running" and stopped):
                counts["interrupted"] = counts.get("interrupted", 0) + 1
                step = resume_step(read_status(p.run_dir))
                how = (
                    "checkpoint at step"
                    if state == "interrupted"
                    else "killed; resumes from its checkpoint at step"
                )
                lines.append(f"  {'interrupted':<12} {p.run_dir}: {how} {step} of {p.steps}")
            else:
                counts["failed"] += 1
                why = detail or errors.get(p.run_dir) or state  # status.json's error first: it is the run's
                lines.append(f"  {'failed':<12} {p.run_dir}: {why.splitlines()[0]}")
        name = self.config.hydra.job.config_name
        base = ("completed", "skipped", "adopted", "failed", "in live jobs")
        shown = [*base, *(k for k in ("interrupted", "not started") if k in counts)]  # these two when any
        print(f"[sweep] {name} summary: " + ", ".join(f"{counts[k]} {k}" for k in shown), flush=True)
        for line in lines:
            print(line, flush=True)
        for line in self._skipped_probe_lines(points) + self._log_lines(points):
            print(line, flush=True)
        bad = sum(counts[k] for k in counts if k not in ("completed", "skipped", "adopted"))
        if bad:
            print(
                f"[sweep] {bad} of {len(points)} runs not completed"
                + (" (the sweep was stopped)" if stopped else " (the sweep was drained)" if drained else "")
                + ("; failed runs keep their traceback in status.json" if counts["failed"] else "")
                + ". Run the same command again to resume them.",
                file=sys.stderr,
            )
        return 1 if bad else 0

    @staticmethod
    def _skipped_probe_lines(points: list[Point]) -> list[str]:
        """The probe tasks that completed runs skipped for want of data (metrics.json ``probe/skipped``),
        with the runs that skipped them."""
        runs: dict[tuple[str, ...], list[Path]] = {}
        for p in points:
            path = p.run_dir / "metrics.json"
            try:
                skipped = read_json(path).get("probe/skipped") if path.exists() else None
            except (ValueError, OSError):
                continue
            if skipped:
                runs.setdefault(tuple(skipped), []).append(p.run_dir)
        lines = []
        for tasks, dirs in runs.items():
            lines.append(
                f"[sweep] probes skipped for want of data (probes.missing_data=skip; data.root names where "
                f"they are read): {', '.join(tasks)}, in {len(dirs)} run(s):"
            )
            lines += [f"  {d}" for d in dirs]
        return lines

    def _log_lines(self, points: list[Point]) -> list[str]:
        """Where each run launched by this call logs (its job's stderr; stdout beside it)."""
        folder = OmegaConf.select(self.config, "hydra.launcher.submitit_folder", default=None)
        logs = [
            (p, job_logs(p.run_dir, folder)) for p in points if p.launch and p.run_dir not in self.not_started
        ]
        logs = [(p, paths) for p, paths in logs if paths is not None]
        if not logs:
            return []
        lines = ["[sweep] logs of the runs launched (stderr; stdout beside it as *_log.out):"]
        return lines + [f"  {p.run_dir.name}: {_shown_path(err)}" for p, (err, _) in logs]
