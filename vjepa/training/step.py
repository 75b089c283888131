"""One optimisation step of JEPA pretraining on this process's share of a global batch, masks given.

``TrainStep(schedule, ...)(model, optimizer, step, batch, masks)`` sets the step's learning rate, seeds
drop-path from (seed, step), runs each modality's forward pass (under bf16 autocast where the run trains in
bf16), weights each modality's loss by its share of the global batch, backpropagates, averages gradients
across processes, clips them (``optim.grad_clip``), steps AdamW and moves the target encoder towards the
online one (EMA). It returns the step's record (learning rate, momentum, context weights, per-modality
losses, mask ratios, token counts and statistics, loss) as it stands on the device; ``read_back`` turns it
into numbers averaged across processes. The step holds no model or optimiser: it uses those it is given.
Everything a step does depends only on (config, step, batch, masks), so a resumed run repeats it exactly.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from vjepa import schema
from vjepa.config_check import warmup_steps
from vjepa.data import step_generator
from vjepa.distributed import average_gradients, mean_across_ranks
from vjepa.losses import context_weights
from vjepa.masks import Masks
from vjepa.schedules import ema_momentum, linear_warmup, warmup_cosine

DROP_PATH_STREAM = 99


@dataclass(frozen=True)
class Schedule:
    """The functions of the step a run trains with: learning rate, EMA momentum, context-loss weights."""

    steps: int
    peak_lr: float
    warmup_steps: int
    final_lr: float
    ema: tuple
    context_peaks: dict[str, float]  # each modality's lambda after the ramp (``context_weights``)
    context_ramp: tuple[int, int]  # the steps between which lambda rises linearly from 0

    @classmethod
    def from_cfg(cls, cfg) -> Schedule:
        opt = cfg.optim
        peak_lr = opt.base_lr * cfg.batch_size / 256.0
        start, end = schema.value(cfg, "loss.context.warmup")
        if schema.value(cfg, "loss.context.warmup_unit") == "fraction":
            start, end = start * cfg.steps, end * cfg.steps
        return cls(
            steps=cfg.steps,
            peak_lr=peak_lr,
            warmup_steps=warmup_steps(opt.warmup, cfg.steps),
            final_lr=peak_lr * opt.final_lr_frac,
            ema=tuple(opt.ema),
            context_peaks=context_weights(cfg.loss),
            context_ramp=(round(start), round(end)),
        )

    def lr(self, step: int) -> float:
        return warmup_cosine(step, self.steps, self.peak_lr, self.warmup_steps, final=self.final_lr)

    def momentum(self, step: int) -> float:
        return ema_momentum(step, self.steps, *self.ema)

    def context_weight(self, step: int, modality: str = "video") -> float:
        """lambda_t of the context loss for ``modality``: 0 before the ramp, linear ramp, then constant."""
        weight = self.context_peaks[modality]
        if weight <= 0:
            return 0.0
        return linear_warmup(step, weight, *self.context_ramp)

    def context_record(self, step: int, modalities) -> tuple[dict[str, float], dict[str, float]]:
        """(lambda_t of each of ``modalities``, what the step's record logs of them): ``context_weight`` when
        they share it (an image-only run logs the images' weight), and one key per modality where images
        have their own."""
        lams = {modality: self.context_weight(step, modality) for modality in modalities}
        record = {}
        if len(set(self.context_peaks.values())) > 1:
            record.update({f"context_weight_{modality}": lam for modality, lam in lams.items()})
        if len(set(lams.values())) == 1:
            record["context_weight"] = next(iter(lams.values()))
        return lams, record


class TrainStep:
    """The optimisation step of a run (see the module docstring); called with the model and optimiser."""

    def __init__(self, schedule: Schedule, seed: int, grad_clip, dist, device: torch.device, autocast_dtype):
        self.schedule, self.seed, self.grad_clip = schedule, seed, grad_clip
        self.dist, self.device, self.autocast_dtype = dist, device, autocast_dtype

    def __call__(
        self, model, optimizer, step: int, batch: dict[str, torch.Tensor], masks: dict[str, list[list[Masks]]]
    ) -> tuple[dict, int]:
        """(the step's record on the device, samples in the global batch). ``batch``: this process's rows of
        each modality; ``masks[modality]``: one list of buckets per mask setting, this process's rows."""
        lr, tau = self.schedule.lr(step), self.schedule.momentum(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(
            step_generator(self.seed, step, DROP_PATH_STREAM).initial_seed()
        )  # drop-path, if any
        n_total = sum(x.shape[0] for x in batch.values()) * self.dist.world
        lams, context_record = self.schedule.context_record(step, batch)
        record = {"lr": lr, "momentum": tau, **context_record}
        total = 0.0
        for modality, x in batch.items():
            loss = self._forward(model, modality, x, masks[modality], lams[modality], record)
            total = total + loss * (x.shape[0] * self.dist.world / n_total)
        self._update(model, optimizer, total, tau, record)
        record["loss"] = total.detach()
        return record, n_total

    def _forward(
        self, model, modality: str, x: torch.Tensor, masks, lam: float, record: dict
    ) -> torch.Tensor:
        """The loss of one modality; its numbers added to ``record``."""
        grid = model.encoder.grid(x)
        n_local = x.shape[0]
        with model.timer("to_device"):
            x = x.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast(self.device.type, self.autocast_dtype) if self.autocast_dtype else nullcontext()
        )
        with autocast:
            loss, stats = model.loss(x, masks, lam)
        record[f"loss_{modality}"] = loss.detach()
        ratios = [sum(b.ratio * b.size for b in m) / n_local for m in masks]
        record[f"mask_ratio_{modality}"] = sum(ratios) / len(ratios)
        if len(masks) > 1:
            record.update({f"mask_ratio_{modality}_{k}": r for k, r in enumerate(ratios)})
        record[f"tokens_{modality}"] = n_local * self.dist.world * grid[0] * grid[1] * grid[2]
        record.update({f"{k}_{modality}": v for k, v in stats.items()})
        return loss

    def _update(self, model, optimizer, total: torch.Tensor, tau: float, record: dict) -> None:
        """Backward, gradient averaging across processes, clipping, AdamW and the EMA of the target."""
        optimizer.zero_grad(set_to_none=True)
        with model.timer("backward"):
            total.backward()
            average_gradients(model.online_parameters(), self.dist)
        with model.timer("optimizer"):
            if self.grad_clip is not None:
                record["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                    model.online_parameters(), self.grad_clip
                )
            optimizer.step()
        with model.timer("ema"):
            model.update_target(tau)


def read_back(record: dict, skipped: dict[str, int], n_total: int, dist) -> dict[str, float]:
    """A step's record as numbers: averaged over the processes, with the files replaced under
    ``data.*.on_error=skip`` (``skipped``) counted over them, and ``samples`` the global batch."""
    record = {k: (v.item() if torch.is_tensor(v) else v) for k, v in record.items()}
    record = mean_across_ranks({**record, **skipped}, dist, counts=skipped)
    record["samples"] = n_total
    return record
