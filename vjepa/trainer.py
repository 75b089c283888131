"""Step-based JEPA pretraining into a run directory (see ``vjepa.runfiles``): ``Trainer(cfg).run()``.

``Trainer`` sets a run up (device, processes, threads, precision, model, AdamW) and ties the parts of
``vjepa.training`` together: the run directory's refusals and status (``rundir``), the step
(``train_step``: masks drawn by ``vjepa.masks.RunMasks``, then ``training.step``), the checkpoint and
metrics (``records``), the loop (``loop``), then the end-of-run probes of the target encoder.

Determinism: every random draw of step s (batch, masks, drop-path) comes from generators seeded by
(seed, s), and schedules are functions of s, so a run restarted from its checkpoint at step k replays steps
k.. exactly as an uninterrupted run does: on CPU the final weights and metrics are bit-identical.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig

from vjepa import schema
from vjepa.config_check import ConfigError, check_config, resolved_precision
from vjepa.data import build_sources, split_batch, split_masks, split_skipped
from vjepa.distributed import broadcast_module, init_distributed
from vjepa.jepa import JEPA
from vjepa.masks import MASK_STREAM, RunMasks, mask_generator
from vjepa.models import count_params
from vjepa.probes.modality import trained_tasks
from vjepa.runfiles import MetricsLog, read_json, write_json
from vjepa.tensorboard import ScalarWriter
from vjepa.training import records
from vjepa.training.loop import Interrupted, Loop
from vjepa.training.rundir import RunDir, on_every_rank
from vjepa.training.step import DROP_PATH_STREAM, Schedule, TrainStep, read_back

__all__ = [
    "DROP_PATH_STREAM",
    "MASK_STREAM",
    "Interrupted",
    "Trainer",
    "available_cpus",
    "mask_generator",
    "param_groups",
    "probe_numerics",
    "resolve_device",
    "set_threads",
    "skipped_probes",
    "train",
]


class _StopNow(BaseException):
    """Raised by ``Trainer.request_stop`` (from a signal handler) into the end-of-run probes. Not an
    ``Exception``, so that no ``except Exception`` of probe or data code turns it into a probe failure or a
    skipped task; ``Trainer._probe`` turns it into ``Interrupted``."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available (use device=cpu or device=auto)")
    return torch.device(name)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_threads(threads) -> int:
    n = available_cpus() if threads in (None, "auto") else int(threads)
    torch.set_num_threads(max(n, 1))
    # Subnormal floats (e.g. Adam's second moments of parameters with tiny gradients) are up to 100x slower
    # on CPUs; flushing them to zero changes nothing above 1e-38.
    torch.set_flush_denormal(True)
    return torch.get_num_threads()


def param_groups(modules, weight_decay: float):
    """AdamW groups: weight decay on matrices only, none on biases, norms and other vectors."""
    decay, no_decay = [], []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """One run of ``cfg``: ``run()`` trains it into ``cfg.run_dir`` (see the module docstring)."""

    def __init__(self, cfg: DictConfig):
        check_config(cfg)
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.device = resolve_device(cfg.device)
        self.dist = init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        for name, n in zip(
            ("images", "clips"), split_batch(cfg.batch_size, cfg.data.mix, cfg.data.image_fraction)
        ):
            if n % self.dist.world:
                raise ConfigError(
                    f"batch_size={cfg.batch_size} gives {n} {name} per step, not divisible by the "
                    f"{self.dist.world} processes of this run"
                )
        self.is_main = self.dist.is_main
        self._stop_requested = False
        self._stop_at_once = False  # set while the end-of-run probes run (see request_stop)
        self.step_done = 0
        self.checkpoint_step = 0  # the step a rerun resumes from (the last checkpoint's)
        self.threads = set_threads(cfg.threads)
        self.precision = resolved_precision(cfg.precision, self.device.type)  # what auto means here
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.directory = RunDir(cfg, self.dist, self.device, self.precision)
        self.ckpt_path = self.directory.ckpt_path
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.curves = ScalarWriter.open(self.run_dir, self.is_main and schema.value(cfg, "tensorboard"))
        self.masks = RunMasks(cfg.mask, cfg.seed)
        self.schedule = Schedule.from_cfg(cfg)
        self.peak_lr, self.warmup_steps = self.schedule.peak_lr, self.schedule.warmup_steps
        self.stepper = TrainStep(
            self.schedule, cfg.seed, cfg.optim.grad_clip, self.dist, self.device, self.autocast_dtype
        )

    # ---- set-up -------------------------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        """Refuse to mix two different experiments in one directory; write config.yaml for a new run."""
        on_every_rank(self.directory.refuse_another_run, self.dist)
        self.directory.write_config()

    def _build_sources(self) -> None:
        """The training data sources (files listed, arrays loaded as the loader would; nothing decoded ahead),
        their settings checked on the way."""
        try:
            self.sources = build_sources(self.cfg.data, self.cfg.batch_size, self.cfg.seed)
        except (ValueError, TypeError, OSError) as exc:  # bad settings, missing files (DataNotFoundError)
            raise ConfigError(f"training data: {exc}") from exc

    def build(self) -> None:
        """The model (seeded by ``cfg.seed``) and its optimizer, as ``run()`` trains them; nothing trained, no
        file touched: what benchmarks and tests time and inspect."""
        torch.manual_seed(self.cfg.seed)
        self.model = JEPA(self.cfg).to(self.device)
        broadcast_module(self.model, self.dist)
        if schema.value(self.cfg, "activation_checkpointing"):
            self.model.encoder.grad_checkpointing = self.model.predictor.grad_checkpointing = True
        if mode := schema.compile_mode(self.cfg):
            self.model.compile_blocks(mode)
        opt = self.cfg.optim
        # One fused kernel per parameter on CPU and GPU, faster than torch's default per-parameter loop (what
        # CPU tensors get otherwise; reports/benchmarks), same update within float rounding.
        self.optimizer = torch.optim.AdamW(
            param_groups([self.model.encoder, self.model.predictor], opt.weight_decay),
            lr=self.peak_lr,
            betas=tuple(opt.betas),
            fused=True,
        )

    def _resume(self) -> tuple[int, float, list[dict]]:
        """(step, wall time, records of the unfinished logging window) of the last checkpoint."""
        if not self.ckpt_path.exists():
            if self.is_main:
                self.metrics.truncate_after(0)
            return 0, 0.0, []
        step, wall, window = records.load(self.ckpt_path, self.model, self.optimizer, self.device)
        if self.is_main:
            self.metrics.truncate_after(step)
        self.directory.resumed_from = step
        return step, wall, window

    def _save(self, step: int, wall: float, window: list[dict]) -> None:
        if self.is_main:
            records.save(
                self.ckpt_path, self.metrics, self.model, self.optimizer, self.cfg, step, wall, window
            )

    def _status(self, state: str, **fields) -> None:
        self.directory.status(state, **fields)

    # ---- one step -----------------------------------------------------------------------------------
    def context_weight(self, step: int, modality: str = "video") -> float:
        """lambda_t of the context loss for ``modality`` (``Schedule.context_weight``)."""
        return self.schedule.context_weight(step, modality)

    def train_step(self, step: int, batch: dict[str, torch.Tensor], read_back: bool = True):
        """One optimisation step; its record (losses, mask ratios, statistics) as numbers, or with
        ``read_back=False`` as it stands on the device, for ``read_back_step`` later: reading a number back
        waits for the device to finish the step, and the training loop reads each step's record only after
        it has queued the next step, so the device never waits for the host between steps."""
        batch, drawn = split_masks(batch)  # masks the loader drew with the batch, if it did
        batch, skipped = split_skipped(batch)  # this rank's rows of the global batch
        masks = {
            modality: self._local_masks(step, modality, x, drawn.get(modality))
            for modality, x in batch.items()
        }
        record, n_total = self.stepper(self.model, self.optimizer, step, batch, masks)
        launched = (record, skipped, n_total)
        return self.read_back_step(launched) if read_back else launched

    def _local_masks(self, step: int, modality: str, x: torch.Tensor, local=None) -> list[list]:
        """This rank's rows of the masks of the global batch (``local``: as the loader drew them, else drawn
        here), on the device; empty buckets left out."""
        with self.model.timer("masks"):
            if local is None:
                n_local, start = x.shape[0], self.dist.rank * x.shape[0]
                drawn = self.masks.draw(step, modality, n_local * self.dist.world, self.model.encoder.grid(x))
                local = [[b.rows(start, start + n_local) for b in buckets] for buckets in drawn]
            return [[b.to(self.device) for b in buckets if b.size] for buckets in local]

    def read_back_step(self, launched) -> dict[str, float]:
        """The record of a step ``train_step(..., read_back=False)`` returned, as numbers."""
        record, skipped, n_total = launched
        return read_back(record, skipped, n_total, self.dist)

    def request_stop(self) -> None:
        """Ask the run to stop (safe from a signal handler in the main thread).

        During training: checkpoint and raise ``Interrupted`` at the next step boundary. During the
        end-of-run probes, whose checkpoint (the final step) is already written: abort them at once (by
        raising ``_StopNow`` from here) and raise ``Interrupted``, so the job is handed back before the
        probes could outlast the scheduler's notice; a rerun resumes at the final step and goes straight to
        the probes.
        """
        self._stop_requested = True
        if self._stop_at_once:
            self._stop_at_once = False
            raise _StopNow

    # ---- the run ------------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None, accepted: Callable[[], None] | None = None) -> dict | None:
        """Train to ``cfg.steps`` (resuming if a checkpoint exists) and return the final metrics.

        ``stop_after``: return after this many steps of this call without finishing (simulates a kill
        right after a checkpoint; used by tests). A completed run is not trained again.
        ``accepted``: called on the main process once the run directory has accepted this run to train (a
        new run, or the same experiment resumable in this arithmetic), before any training; a refused run
        (``ConfigError``) and a completed one never call it.
        The run directory's refusals (another experiment in it, another arithmetic) come first, before any
        data is touched; then the data sources are built, before the run directory is written: a bad data
        key or a missing data path is a ``ConfigError`` that leaves nothing behind (a rerun with it mended
        is a new run).
        """
        status = self.directory.read_status()
        if self.directory.completed():
            self._check_run_dir()
            print(f"[vjepa] {self.run_dir} is already completed; nothing to do", file=sys.stderr)
            return read_json(self.run_dir / "metrics.json")
        on_every_rank(self.directory.refuse_another_run, self.dist)
        on_every_rank(lambda: self.directory.check_precision(status), self.dist)
        on_every_rank(self._build_sources, self.dist)
        self.directory.write_config()
        if accepted is not None and self.is_main:
            accepted()
        return self._train(stop_after)

    def _train(self, stop_after: int | None) -> dict | None:
        """Build, resume, train and probe, with status.json saying how it ended."""
        try:
            self.build()
            start, wall, window = self._resume()
            self._status("running", step=start, steps=self.cfg.steps, checkpoint_step=start)
            wall = Loop(self, start, wall, window).run(stop_after)
            return None if wall is None else self._finish(wall)
        except (Interrupted, KeyboardInterrupt) as exc:
            # step: where a rerun resumes (a Ctrl-C mid-window leaves steps after the last checkpoint)
            self._status(
                "interrupted",
                error=f"{type(exc).__name__}: {exc}",
                step=self.checkpoint_step,
                steps=self.cfg.steps,
                checkpoint_step=self.checkpoint_step,
            )
            raise
        except BaseException as exc:
            self._status("failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            raise
        finally:
            self.curves.close()

    def _finish(self, wall: float) -> dict | None:
        """metrics.json (written before the probes, so pretraining numbers survive a probe failure), then the
        end-of-run probes' results added to it; status completed."""
        cfg = self.cfg
        final = None
        if self.is_main:
            final = records.final_metrics(self.metrics.read(), cfg.steps, wall, self._facts())
            write_json(self.run_dir / "metrics.json", final)
            probes_cfg, untrained = trained_tasks(cfg.get("probes"), cfg)
            if untrained:  # the modality whose tokenizer this run never trained (vjepa.probes.modality)
                final["probe/untrained_skipped"] = untrained
            if probes_cfg is not None and probes_cfg.get("tasks"):
                results = self._probe(probes_cfg)
                final.update(results)
                final["probe/step"] = cfg.steps
                skipped = skipped_probes(probes_cfg, results)
                if skipped:  # tasks without data (probes.missing_data=skip): the sweep's summary names them
                    final["probe/skipped"] = skipped
                final.update(probe_numerics(final, self.device, schema.compile_mode(cfg)))
                write_json(self.run_dir / "metrics.json", final)
            self.curves.write({**final, "step": cfg.steps})  # the probe scores, at the last step
        self._status("completed", step=cfg.steps, steps=cfg.steps, checkpoint_step=cfg.steps)
        return final

    def _facts(self) -> dict:
        """What metrics.json records of the run besides its log: sizes, where and by what code it trained."""
        return {
            "params_encoder": count_params(self.model.encoder),
            "params_predictor": count_params(self.model.predictor),
            "threads": self.threads,
            "world_size": self.dist.world,
            "code_version": self.directory.code_version,
            "numerics": self.directory.numerics,
            "platform": self.directory.platform,
            "device": str(self.device),
            "precision": self.precision,
        }

    def _probe(self, probes_cfg) -> dict[str, float]:
        """The end-of-run probes of the target encoder. A stop requested before they start (e.g. in the
        last step) or that aborts them raises ``Interrupted``, and no probe result is kept: the checkpoint of
        the final step is on disk, so a rerun goes straight to the probes. Probes that got to their end (a
        request arriving after them, or one Python could not raise, as inside a finaliser) are kept, and
        the run completes. A request at any line of this method ends one of those two ways
        (test_preemption's line-by-line test)."""
        from vjepa.data import resolve_root
        from vjepa.probes import run_probes

        cfg = self.cfg
        results = None
        # request_stop clears the flag before it raises, so it raises at most once; the outer try also
        # catches a raise in the inner finally (a signal there, before the flag is cleared)
        try:
            try:
                # inside the try, before the check: a request from here on is caught
                self._stop_at_once = True
                if not self._stop_requested:
                    results = run_probes(
                        self.model.target_encoder,
                        probes_cfg,
                        cfg.model,
                        cfg.seed,
                        resolve_root(cfg.data.get("root")),
                        self.device,
                        cache_tag=f"probe-step{cfg.steps}",
                    )
            finally:
                self._stop_at_once = False
        except _StopNow:
            pass  # _stop_requested is set
        if results is None:
            raise Interrupted(
                f"stop requested at the end-of-run probes; checkpoint written at step {cfg.steps}"
            )
        return results


def skipped_probes(probes_cfg, results: dict) -> list[str]:
    """The probe tasks of ``probes_cfg`` that ``results`` (``run_probes``) has no numbers for: those skipped
    for want of data (every task that ran records ``probe/<task>/time_s``)."""
    return [name for name in probes_cfg.get("tasks") or {} if f"probe/{name}/time_s" not in results]


def probe_numerics(results: dict, device, compiled: str | None = None) -> dict[str, str | int | None]:
    """``<prefix>/numerics``, ``<prefix>/platform`` and ``<prefix>/threads`` for each probe prefix of
    ``results`` (``probe``, ``probe_random``, ...): the numerics id of the code that probed now (``compiled``:
    the torch.compile mode the encoder's blocks ran in, ``schema.compile_mode``), where, and at how many torch
    threads (on CPU the count changes the rounding; the probes may be run again later, by other code,
    elsewhere)."""
    from vjepa.golden import platform, run_numerics

    prefixes = {k.split("/", 1)[0] for k in results if "/" in k and k.startswith("probe")}
    ids = {
        "numerics": run_numerics(compiled),
        "platform": platform(device),
        "threads": torch.get_num_threads(),
    }
    return {f"{p}/{k}": v for p in sorted(prefixes) for k, v in ids.items()}


def train(cfg: DictConfig, stop_after: int | None = None) -> dict | None:
    return Trainer(cfg).run(stop_after=stop_after)
