"""The step loop: from a start step to ``cfg.steps``, or until a stop request or ``stop_after`` steps.

Each step is launched (``trainer.train_step(..., read_back=False)``) before the previous step's record is
read back, so the device never waits for the host between steps. After step s (``done`` = s + 1):
- every ``log_every`` steps and at the end, one metrics line for the steps since the last (with the held
  batch's diagnostics where ``diagnostics.batch_size`` is set, on the main process), and status.json;
- every ``ckpt_every`` steps, at the end, and when a stop was requested on any process, the checkpoint and
  status.json; after a requested stop, ``Interrupted`` (all processes stop at the same step).
Training time counts the steps and checkpoints, not the diagnostics; a logging window's rate counts only
the samples this process trained (a window restored from a checkpoint keeps the records of its earlier
steps, timed by the process that ran them).
"""

from __future__ import annotations

import math
import sys
import time

from vjepa import schema
from vjepa.data import build_train_loader, split_skipped
from vjepa.distributed import any_across_ranks
from vjepa.masks import LoaderMasks
from vjepa.training.records import window_line


class Interrupted(Exception):
    """Raised after a stop request (preemption signal) once the checkpoint is written."""


class Window:
    """The records of the steps since the last log line, their samples, and the training time so far."""

    def __init__(self, wall: float, records: list[dict]):
        self.wall, self.records, self.samples = wall, records, 0
        self.t_last = self.t_window = time.perf_counter()

    def lap(self) -> float:
        """Add the time since the last lap to the training time; now."""
        now = time.perf_counter()
        self.wall += now - self.t_last
        self.t_last = now
        return now

    def restart(self) -> None:
        self.records, self.samples = [], 0
        self.t_last = self.t_window = time.perf_counter()


class Loop:
    """The step loop of one ``Trainer.run`` from step ``start``, with the training time and the unlogged
    records of the checkpoint it resumed from."""

    def __init__(self, trainer, start: int, wall: float, window: list[dict]):
        self.trainer, self.cfg, self.start = trainer, trainer.cfg, start
        self.held = self._held_batch()
        self.wall, self.records = wall, window
        self.bar = self.window = None

    def _held_batch(self):
        if not (self.trainer.is_main and schema.value(self.cfg, "diagnostics.batch_size")):
            return None
        from vjepa.diagnostics import held_batch

        return split_skipped(
            held_batch(self.cfg.data, int(schema.value(self.cfg, "diagnostics.batch_size")), self.cfg.seed)
        )[0]

    def _progress_bar(self):
        cfg = self.cfg
        if self.trainer.is_main and (
            cfg.progress is True or (cfg.progress == "auto" and sys.stderr.isatty())
        ):
            from tqdm import tqdm

            return tqdm(total=cfg.steps, initial=self.start, desc="pretrain", dynamic_ncols=True)
        return None

    def run(self, stop_after: int | None) -> float | None:
        """Train; the training time at ``cfg.steps``, or None after ``stop_after`` steps of this call."""
        t, cfg = self.trainer, self.cfg
        loader = build_train_loader(
            cfg.data,
            cfg.batch_size,
            cfg.seed,
            self.start,
            cfg.steps,
            t.dist.rank,
            t.dist.world,
            t.sources,
            pin_memory=t.device.type == "cuda",
            masks=LoaderMasks(t.masks, cfg.model.patch_size, cfg.model.tubelet_size),
        )
        self.bar = self._progress_bar()
        self.window = Window(self.wall, self.records)
        t.step_done = t.checkpoint_step = self.start
        pending = None  # (step, record on the device): read back once the next step is queued
        try:
            for step, batch in enumerate(loader, start=self.start):
                launched = t.train_step(step, batch, read_back=False)
                if pending is not None:
                    self._account(*pending)
                pending = (step, launched)
                done = t.step_done = step + 1
                stop = any_across_ranks(t._stop_requested, t.dist) and done < cfg.steps
                logs = done % cfg.log_every == 0 or done == cfg.steps
                saves = done % cfg.ckpt_every == 0 or done == cfg.steps or stop
                last = stop_after is not None and done - self.start >= stop_after
                if logs or saves or last:  # the window, the checkpoint and a return need this step's numbers
                    self._account(*pending)
                    pending = None
                if logs:
                    self._log(done, saves)
                if saves:
                    self._checkpoint(done)
                if stop:
                    raise Interrupted(f"stop requested; checkpoint written at step {done}")
                if last:
                    return None
        finally:
            if self.bar:
                self.bar.close()
        return self.window.wall

    def _account(self, step: int, launched) -> None:
        record = self.trainer.read_back_step(launched)
        if not math.isfinite(record["loss"]):
            raise FloatingPointError(f"loss became {record['loss']} at step {step}; lower optim.base_lr")
        self.window.records.append(record)
        self.window.samples += record["samples"]
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.4f}")

    def _log(self, done: int, saves: bool) -> None:
        t, w = self.trainer, self.window
        now = w.lap()
        if t.is_main:
            rec = window_line(done, w.records, w.samples / (now - w.t_window), w.wall)
            if self.held is not None:
                rec.update(self._diagnostics())
            t.metrics.append(rec)
            t.curves.write(rec)
        if not saves:  # status.json follows the log (a checkpoint step writes it below)
            t._status("running", step=done, steps=self.cfg.steps, checkpoint_step=t.checkpoint_step)
        w.restart()  # diagnostics time not counted

    def _checkpoint(self, done: int) -> None:
        t = self.trainer
        self.window.lap()
        t._save(done, self.window.wall, self.window.records)
        t.checkpoint_step = done
        t._status("running", step=done, steps=self.cfg.steps, checkpoint_step=done)

    def _diagnostics(self) -> dict[str, float]:
        """RankMe, feature std and token cosine of the online and target encoders on the held batch."""
        from vjepa.diagnostics import held_batch_diagnostics

        model, out = self.trainer.model, {}
        for name, enc in (("online", model.encoder), ("target", model.target_encoder)):
            out.update({f"{name}_{k}": v for k, v in held_batch_diagnostics(enc, self.held).items()})
        return out
