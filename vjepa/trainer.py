"""Step-based JEPA pretraining loop writing into a run directory (see ``vjepa.runfiles``).

Determinism: every random draw of step s (batch, masks, drop-path) comes from generators seeded by
(seed, s), and schedules are functions of s, so a run restarted from its checkpoint at step k replays steps
k.. exactly as an uninterrupted run does: on CPU the final weights and metrics are bit-identical.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vjepa.config_check import ConfigError, check_config, resolved_precision, warmup_steps
from vjepa.data import (
    build_sources,
    build_train_loader,
    hashed_generator,
    split_batch,
    split_skipped,
    step_generator,
)
from vjepa.distributed import (
    any_across_ranks,
    average_gradients,
    barrier,
    broadcast_module,
    errors_across_ranks,
    init_distributed,
    mean_across_ranks,
)
from vjepa.jepa import JEPA
from vjepa.losses import context_weights
from vjepa.masks import MaskSpec, mask_bucketing, mask_settings, sample_mask_buckets
from vjepa.models import count_params
from vjepa.run_identity import config_differences, resume_view
from vjepa.runfiles import (
    MetricsLog,
    atomic_write_text,
    code_version,
    load_checkpoint,
    read_json,
    read_status,
    save_checkpoint,
    write_json,
    write_status,
)
from vjepa.schedules import ema_momentum, linear_warmup, warmup_cosine

MASK_STREAM = {"image": 11, "video": 12}
DROP_PATH_STREAM = 99


def mask_generator(seed: int, step: int, modality: str, k: int) -> torch.Generator:
    """The generator of mask setting ``k`` of ``modality`` at ``step``. Settings 0 and 1 (V-JEPA 2's two)
    keep their ``step_generator`` streams; from setting 2 on the stream would alias a data stream (4011 is
    stream 72 at step + 39, 6012 stream 53), so those are hashed."""
    if k < 2:
        return step_generator(seed, step, MASK_STREAM[modality] + 1000 * k)
    return hashed_generator(seed, step, MASK_STREAM[modality], k)


class Interrupted(Exception):
    """Raised after a stop request (preemption signal) once the checkpoint is written."""


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
        self.resumed_from: int | None = None
        self._status_at_start: dict | None = None  # status.json as this process found it (run)
        self.threads = set_threads(cfg.threads)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.mask_specs = {
            modality: [MaskSpec.from_cfg(OmegaConf.create(s)) for s in mask_settings(cfg.mask, modality)]
            for modality in MASK_STREAM
        }
        self.mask_buckets = mask_bucketing(cfg.mask)
        self.context_peaks = context_weights(cfg.loss)
        self.precision = resolved_precision(cfg.precision, self.device.type)  # what auto means here
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None

    # ---- set-up -------------------------------------------------------------------------------------
    def _on_every_rank(self, check: Callable[[], None]) -> None:
        """Run ``check``; if it raised ``ConfigError`` on any rank, raise one on every rank, naming the ranks
        and their errors. A rank that refuses alone (a data path missing on its node) would otherwise leave
        the others waiting at the next collective until the backend's timeout."""
        error = None
        try:
            check()
        except ConfigError as exc:
            if self.dist.world == 1:
                raise
            error = exc
        failed = errors_across_ranks(None if error is None else str(error), self.dist)
        if failed:
            raise ConfigError(
                "refused on rank(s) " + ", ".join(str(rank) for rank, _ in failed) + " of "
                f"{self.dist.world}:\n" + "\n".join(f"  rank {rank}: {msg}" for rank, msg in failed)
            ) from error

    def _check_run_dir(self) -> None:
        """Refuse to mix two different experiments in one directory; write config.yaml for a new run."""
        self._on_every_rank(self._refuse_another_run)
        self._write_config()

    def _write_config(self) -> None:
        cfg_path = self.run_dir / "config.yaml"
        if not cfg_path.exists() and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cfg_path, OmegaConf.to_yaml(self.cfg, resolve=True))
        barrier(self.dist)

    def _refuse_another_run(self) -> None:
        cfg_path = self.run_dir / "config.yaml"
        if cfg_path.exists():
            old = OmegaConf.load(cfg_path)
            diffs = [
                f"{key}: {a!r} (on disk) vs {b!r} (now)"
                for key, a, b in config_differences(resume_view(old), resume_view(self.cfg), missing=None)
            ]
            if diffs:
                raise ConfigError(
                    f"run_dir={str(self.run_dir)!r} already holds a run with a different configuration:\n  - "
                    + "\n  - ".join(diffs)
                    + "\nChoose another run_dir, or delete that directory to start over."
                )

    def _build(self) -> None:
        torch.manual_seed(self.cfg.seed)
        self.model = JEPA(self.cfg).to(self.device)
        broadcast_module(self.model, self.dist)
        if self.cfg.get("activation_checkpointing", False):
            self.model.encoder.grad_checkpointing = self.model.predictor.grad_checkpointing = True
        if self.cfg.get("compile", False):
            self.model.compile_blocks()
        opt = self.cfg.optim
        self.peak_lr = opt.base_lr * self.cfg.batch_size / 256.0
        self.warmup_steps = warmup_steps(opt.warmup, self.cfg.steps)
        # One fused kernel per parameter on CPU and GPU: on 2 CPU cores 2-5x faster than torch's default
        # per-parameter loop (which is what CPU tensors get otherwise), same update within float rounding.
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
        state = load_checkpoint(self.ckpt_path, map_location=self.device)
        self.model.encoder.load_state_dict(state["encoder"])
        self.model.target_encoder.load_state_dict(state["target_encoder"])
        self.model.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.is_main:
            self.metrics.truncate_after(state["step"])
        self.resumed_from = int(state["step"])
        return int(state["step"]), float(state["wall_time"]), list(state.get("log_window", []))

    def _save(self, step: int, wall_time: float, window: list[dict]) -> None:
        if not self.is_main:
            return
        self.metrics.sync()  # the log lines up to this checkpoint reach the disk before it does
        save_checkpoint(
            self.ckpt_path,
            {
                "step": step,
                "wall_time": wall_time,
                "encoder": self.model.encoder.state_dict(),
                "target_encoder": self.model.target_encoder.state_dict(),
                "predictor": self.model.predictor.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "config": OmegaConf.to_yaml(self.cfg, resolve=True),
                # steps since the last log line, so a run stopped mid-window logs what an uninterrupted one does
                "log_window": window,
            },
        )

    # ---- one step -----------------------------------------------------------------------------------
    def context_weight(self, step: int, modality: str = "video") -> float:
        """lambda_t of the context loss for ``modality``: 0 before the warm-up window, linear ramp, then
        constant (``context_weights``: one weight, or the images' own)."""
        c = self.cfg.loss.get("context") or {}
        weight = self.context_peaks[modality]
        if weight <= 0:
            return 0.0
        start, end = c.get("warmup", (0, 0))
        if c.get("warmup_unit", "fraction") == "fraction":
            start, end = start * self.cfg.steps, end * self.cfg.steps
        return linear_warmup(step, weight, round(start), round(end))

    def train_step(self, step: int, batch: dict[str, torch.Tensor], read_back: bool = True):
        """One optimisation step; its record (losses, mask ratios, statistics) as numbers, or with
        ``read_back=False`` as it stands on the device, for ``read_back_step`` later: reading a number back
        waits for the device to finish the step, and the training loop reads each step's record only after
        it has queued the next step, so the device never waits for the host between steps."""
        cfg = self.cfg
        lr = warmup_cosine(
            step, cfg.steps, self.peak_lr, self.warmup_steps, final=self.peak_lr * cfg.optim.final_lr_frac
        )
        tau = ema_momentum(step, cfg.steps, *cfg.optim.ema)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        drop_path_seed = step_generator(cfg.seed, step, DROP_PATH_STREAM).initial_seed()
        torch.manual_seed(drop_path_seed)  # drop-path, if any
        batch, skipped = split_skipped(batch)  # this rank's rows of the global batch
        n_total = sum(x.shape[0] for x in batch.values()) * self.dist.world
        timer = self.model.timer
        total = 0.0
        record = {"lr": lr, "momentum": tau}
        # lambda_t of the modalities in this batch: `context_weight` when they share it (an image-only run
        # logs the images' weight), and one key per modality where images have their own
        lams = {modality: self.context_weight(step, modality) for modality in batch}
        if len(set(self.context_peaks.values())) > 1:
            record.update({f"context_weight_{modality}": lam for modality, lam in lams.items()})
        if len(set(lams.values())) == 1:
            record["context_weight"] = next(iter(lams.values()))
        for modality, x in batch.items():
            grid = self.model.encoder.grid(x)
            n_local = x.shape[0]
            masks = []
            with timer("masks"):
                start = self.dist.rank * n_local
                for k, spec in enumerate(self.mask_specs[modality]):
                    g = mask_generator(cfg.seed, step, modality, k)
                    # global masks, then this rank's rows
                    buckets = sample_mask_buckets(
                        spec, n_local * self.dist.world, grid, g, *self.mask_buckets
                    )
                    local = [b.rows(start, start + n_local) for b in buckets]
                    masks.append([b.to(self.device) for b in local if b.size])
            with timer("to_device"):
                x = x.to(self.device, non_blocking=True)
            lam = lams[modality]
            ctx = (
                torch.autocast(self.device.type, self.autocast_dtype)
                if self.autocast_dtype
                else nullcontext()
            )
            with ctx:
                loss, stats = self.model.loss(x, masks, lam)
            total = total + loss * (n_local * self.dist.world / n_total)
            record[f"loss_{modality}"] = loss.detach()
            ratios = [sum(b.ratio * b.size for b in m) / n_local for m in masks]
            record[f"mask_ratio_{modality}"] = sum(ratios) / len(ratios)
            if len(masks) > 1:
                record.update({f"mask_ratio_{modality}_{k}": r for k, r in enumerate(ratios)})
            record[f"tokens_{modality}"] = x.shape[0] * self.dist.world * grid[0] * grid[1] * grid[2]
            record.update({f"{k}_{modality}": v for k, v in stats.items()})
        self.optimizer.zero_grad(set_to_none=True)
        with timer("backward"):
            total.backward()
            average_gradients(self.model.online_parameters(), self.dist)
        with timer("optimizer"):
            if cfg.optim.grad_clip is not None:
                record["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                    self.model.online_parameters(), cfg.optim.grad_clip
                )
            self.optimizer.step()
        with timer("ema"):
            self.model.update_target(tau)
        record["loss"] = total.detach()
        launched = (record, skipped, n_total)
        return self.read_back_step(launched) if read_back else launched

    def read_back_step(self, launched) -> dict[str, float]:
        """The record of a step ``train_step(..., read_back=False)`` returned, as numbers."""
        record, skipped, n_total = launched
        record = {k: (v.item() if torch.is_tensor(v) else v) for k, v in record.items()}
        # unreadable files replaced under data.*.on_error=skip: counted over all ranks, the rest averaged
        record = mean_across_ranks({**record, **skipped}, self.dist, counts=skipped)
        record["samples"] = n_total
        return record

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

    # ---- loop ---------------------------------------------------------------------------------------
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
        status = self._status_at_start = read_status(self.run_dir)
        if status and status["state"] == "completed" and (self.run_dir / "metrics.json").exists():
            self._check_run_dir()
            print(f"[vjepa] {self.run_dir} is already completed; nothing to do", file=sys.stderr)
            return read_json(self.run_dir / "metrics.json")
        self._on_every_rank(self._refuse_another_run)
        self._on_every_rank(lambda: self._check_precision(status))
        self._on_every_rank(self._build_sources)
        self._write_config()
        if accepted is not None and self.is_main:
            accepted()
        try:
            self._build()
            start, wall, window = self._resume()
            self._status("running", step=start, steps=self.cfg.steps, checkpoint_step=start)
            final = self._loop(start, wall, stop_after, window)
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
        return final

    def _build_sources(self) -> None:
        """The training data sources (files listed, arrays loaded as the loader would; nothing decoded ahead),
        their settings checked on the way."""
        try:
            self.sources = build_sources(self.cfg.data, self.cfg.batch_size, self.cfg.seed)
        except (ValueError, TypeError, OSError) as exc:  # bad settings, missing files (DataNotFoundError)
            raise ConfigError(f"training data: {exc}") from exc

    def _check_precision(self, status: dict | None) -> None:
        """Refuse to resume a run in another arithmetic than it trained in (precision=auto is fp32 on CPU and
        bf16 on CUDA, so moving a run between devices would silently change it)."""
        saved = (status or {}).get("precision")
        if saved and saved != self.precision and self.ckpt_path.exists():
            raise ConfigError(
                f"run_dir={str(self.run_dir)!r} trained in {saved} until step {status.get('step')}; this process "
                f"would continue it in {self.precision} (precision=auto is fp32 on CPU, bf16 on CUDA). Resume it "
                f"on {'CPU (device=cpu)' if saved == 'fp32' else 'a CUDA device (device=cuda)'}, or use another "
                "run_dir."
            )

    def _status(self, state: str, **fields) -> None:
        """status.json; every write names the code this process trains with (a resumed run may differ), the
        numerics and platform the run trained in (``numerics``, ``platform``) and its arithmetic."""
        if self.is_main:
            fields = {
                "code_version": self.code_version,
                "numerics": self.numerics,
                "platform": self.platform,
                "precision": self.precision,
                **fields,
            }
            write_status(self.run_dir, state, **fields)

    @functools.cached_property
    def code_version(self) -> str:
        return code_version()

    def _since_start(self, key: str, now: str | None) -> str | None:
        """``now``, or for a run resumed from a part recorded with another value of ``key``, the values of
        its parts in order joined by ">" ("?" for a part that did not record it), so a run resumed by other
        numerics or on another platform never counts as a run of either."""
        status = self._status_at_start if self.resumed_from else None
        if not status:
            return now
        before = status.get(key) or "?"
        return before if before.rsplit(">", 1)[-1] == now else f"{before}>{now}"

    @functools.cached_property
    def numerics(self) -> str | None:
        """The numerics id (``vjepa.golden.numerics_id``) of the code this run trains with."""
        from vjepa.golden import numerics_id

        return self._since_start("numerics", numerics_id())

    @functools.cached_property
    def platform(self) -> str:
        """Where this run trains, as far as it changes rounding (``vjepa.golden.platform``)."""
        from vjepa.golden import platform

        return self._since_start("platform", platform(self.device))

    def _diagnostics(self) -> dict[str, float]:
        """RankMe, feature std and token cosine of the online and target encoders on the held batch."""
        from vjepa.diagnostics import held_batch_diagnostics

        out = {}
        for name, enc in (("online", self.model.encoder), ("target", self.model.target_encoder)):
            out.update({f"{name}_{k}": v for k, v in held_batch_diagnostics(enc, self.held).items()})
        return out

    def _loop(self, start: int, wall: float, stop_after: int | None, window: list[dict]) -> dict | None:
        cfg = self.cfg
        diag_cfg = cfg.get("diagnostics") or {}
        self.held = None
        if self.is_main and diag_cfg.get("batch_size", 0):
            from vjepa.data import split_skipped
            from vjepa.diagnostics import held_batch

            self.held, _ = split_skipped(held_batch(cfg.data, int(diag_cfg.batch_size), cfg.seed))
        loader = build_train_loader(
            cfg.data,
            cfg.batch_size,
            cfg.seed,
            start,
            cfg.steps,
            self.dist.rank,
            self.dist.world,
            self.sources,
            pin_memory=self.device.type == "cuda",
        )
        bar = None
        if self.is_main and (cfg.progress is True or (cfg.progress == "auto" and sys.stderr.isatty())):
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=start, desc="pretrain", dynamic_ncols=True)
        # wall: training time (diagnostics left out) up to t_last. The rate of a logging window counts the
        # samples trained since t_window only: steps of a window restored from a checkpoint were timed by
        # the process that ran them, and a checkpoint mid-window does not restart the window's clock.
        t_last = t_window = time.perf_counter()
        timed_samples = 0
        self.step_done = self.checkpoint_step = start
        pending = None  # (step, record on the device): read back once the next step is queued

        def account(pending) -> None:
            nonlocal timed_samples
            step, record = pending[0], self.read_back_step(pending[1])
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"loss became {record['loss']} at step {step}; lower optim.base_lr")
            window.append(record)
            timed_samples += record["samples"]
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")

        for step, batch in enumerate(loader, start=start):
            launched = self.train_step(step, batch, read_back=False)
            if pending is not None:
                account(pending)
            pending = (step, launched)
            done = self.step_done = step + 1
            stop = any_across_ranks(self._stop_requested, self.dist) and done < cfg.steps
            logs = done % cfg.log_every == 0 or done == cfg.steps
            saves = done % cfg.ckpt_every == 0 or done == cfg.steps or stop
            last = stop_after is not None and done - start >= stop_after
            if logs or saves or last:  # the window, the checkpoint and a return need this step's numbers
                account(pending)
                pending = None
            if logs:
                now = time.perf_counter()
                wall += now - t_last
                if self.is_main:
                    rec = self._summarise(done, window, timed_samples / (now - t_window), wall)
                    if self.held is not None:
                        rec.update(self._diagnostics())
                    self.metrics.append(rec)
                if not saves:  # status.json follows the log (a checkpoint step writes it below)
                    self._status("running", step=done, steps=cfg.steps, checkpoint_step=self.checkpoint_step)
                window, timed_samples = [], 0
                t_last = t_window = time.perf_counter()  # diagnostics time not counted
            if saves:
                now = time.perf_counter()
                wall += now - t_last
                t_last = now
                self._save(done, wall, window)
                self.checkpoint_step = done
                self._status("running", step=done, steps=cfg.steps, checkpoint_step=done)
            if stop:
                if bar:
                    bar.close()
                raise Interrupted(f"stop requested; checkpoint written at step {done}")
            if last:
                if bar:
                    bar.close()
                return None
        if bar:
            bar.close()
        final = self._final_metrics(wall) if self.is_main else None
        if self.is_main:
            write_json(self.run_dir / "metrics.json", final)  # pretraining numbers survive a probe failure
            probes_cfg = cfg.get("probes")
            if probes_cfg is not None and probes_cfg.get("tasks"):
                results = self._probe(probes_cfg)
                final.update(results)
                final["probe/step"] = cfg.steps
                skipped = skipped_probes(probes_cfg, results)
                if skipped:  # tasks without data (probes.missing_data=skip): the sweep's summary names them
                    final["probe/skipped"] = skipped
                final.update(probe_numerics(final, self.device))
                write_json(self.run_dir / "metrics.json", final)
        self._status("completed", step=cfg.steps, steps=cfg.steps, checkpoint_step=cfg.steps)
        return final

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

    def _summarise(self, step: int, window: list[dict], samples_per_s: float, wall: float) -> dict:
        keys = window[-1].keys() - {"samples"}
        rec = {k: sum(r[k] for r in window) / (1 if k.startswith("skipped_") else len(window)) for k in keys}
        rec["lr"], rec["momentum"] = window[-1]["lr"], window[-1]["momentum"]
        rec.update(step=step, samples_per_s=samples_per_s, wall_time_s=wall)
        tokens = sum(v for k, v in rec.items() if k.startswith("tokens_"))
        rec["tokens_per_s"] = tokens * samples_per_s / max(sum(r["samples"] for r in window) / len(window), 1)
        return rec

    def _final_metrics(self, wall: float) -> dict:
        log = self.metrics.read()
        tail = log[-max(1, len(log) // 10) :]
        final = {
            "steps": self.cfg.steps,
            "wall_time_s": wall,
            "loss_first": log[0]["loss"],
            "loss_final": sum(r["loss"] for r in tail) / len(tail),
            "samples_per_s": sum(r["samples_per_s"] for r in log) / len(log),
            "params_encoder": count_params(self.model.encoder),
            "params_predictor": count_params(self.model.predictor),
            "threads": self.threads,
            "world_size": self.dist.world,
            "code_version": self.code_version,
            "numerics": self.numerics,
            "platform": self.platform,
            "device": str(self.device),
            "precision": self.precision,
        }
        for key in log[-1]:
            if key.startswith("skipped_"):
                final[key] = sum(r.get(key, 0) for r in log)
            if key.startswith(
                ("mask_ratio_", "context_std_", "target_std_", "pred_std_", "loss_", "online_", "target_")
            ):
                # over the tail lines that have it: diagnostics may be switched on when a run is resumed
                values = [r[key] for r in tail if key in r]
                final[f"{key}_final" if key.startswith("loss_") else key] = sum(values) / len(values)
        return final


def skipped_probes(probes_cfg, results: dict) -> list[str]:
    """The probe tasks of ``probes_cfg`` that ``results`` (``run_probes``) has no numbers for: those skipped
    for want of data (every task that ran records ``probe/<task>/time_s``)."""
    return [name for name in probes_cfg.get("tasks") or {} if f"probe/{name}/time_s" not in results]


def probe_numerics(results: dict, device) -> dict[str, str | None]:
    """``<prefix>/numerics`` and ``<prefix>/platform`` for each probe prefix of ``results`` (``probe``,
    ``probe_random``, ...): the numerics id of the code that probed now and where (the probes may be run
    again later, by other code, elsewhere)."""
    from vjepa.golden import numerics_id, platform

    prefixes = {k.split("/", 1)[0] for k in results if "/" in k and k.startswith("probe")}
    ids = {"numerics": numerics_id(), "platform": platform(device)}
    return {f"{p}/{k}": v for p in sorted(prefixes) for k, v in ids.items()}


def train(cfg: DictConfig, stop_after: int | None = None) -> dict | None:
    return Trainer(cfg).run(stop_after=stop_after)
