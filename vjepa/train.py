"""`python -m vjepa.train [overrides]`: one pretraining run (a Hydra app).

Outputs go to ``run_dir`` (default ``runs/<overrides>``); see ``vjepa.runfiles`` for the layout.
Running the same command again resumes from the last checkpoint, or does nothing if the run completed.
The preemption signal (SIGUSR2, see ``vjepa.preemption``) checkpoints and stops the run; under submitit the
job is then requeued and resumes.
"""

from __future__ import annotations

import re
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from vjepa.config_check import ConfigError
from vjepa.runfiles import atomic_write_text


def run_name(override_dirname: str) -> str:
    """Directory name for a set of overrides: readable, deterministic, filesystem-safe."""
    if not override_dirname:
        return "default"
    return re.sub(r"[^A-Za-z0-9=,._+\-]", "_", override_dirname)


def named_overrides(overrides, exclude_keys) -> list[str]:
    """The ``overrides`` (``key=value``, sorted) that name a run: without ``exclude_keys`` and their sub-keys
    (``diagnostics`` also leaves out ``diagnostics.batch_size=0``), the keys a resumed run may change
    (``RESUME_FREE_KEYS``), so the same experiment always finds its directory."""
    skip = tuple(exclude_keys)

    def named(override: str) -> bool:
        key = override.split("=", 1)[0].lstrip("+~")
        return not any(key == k or key.startswith(k + ".") for k in skip)

    return sorted(filter(named, overrides))


def run_dir_name(overrides, exclude_keys) -> str:
    """``run_name`` of the overrides that name a run (``named_overrides``): the default ``run_dir``."""
    return run_name(",".join(named_overrides(overrides, exclude_keys)))


if not OmegaConf.has_resolver("vjepa_run_name"):
    OmegaConf.register_new_resolver("vjepa_run_name", run_dir_name)


def _note_mask_ratio(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        note = mask_ratio_note(cfg, dict(hc.runtime.choices), list(hc.overrides.task))
        if note:
            print(note, file=sys.stderr, flush=True)


def _write_overrides(cfg: DictConfig) -> None:
    """overrides.yaml of the run: the command line's overrides (under Hydra; nothing otherwise)."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
        path = Path(cfg.run_dir) / "overrides.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(overrides)))


def mask_ratio_note(cfg: DictConfig, choices: dict, overrides: list[str]) -> str | None:
    """A note when ``mask=vjepa2`` was chosen but a ratio it does not set (preset=tiny's 0.6) still applies.

    The V-JEPA 2 masks are ratio-free; with a ratio their blocks are trimmed or extended to it. A user who
    asked for the ratio on the command line gets no note.
    """
    ratio = cfg.mask.get("ratio")
    if choices.get("mask") != "vjepa2" or ratio is None or cfg.mask.get("settings"):
        return None
    if any(o.split("=", 1)[0].lstrip("+~") == "mask.ratio" for o in overrides):
        return None
    return (
        f"[vjepa] note: mask=vjepa2 runs with mask.ratio={ratio}, set by preset={choices.get('preset')} (or a "
        "config after it), so its blocks are trimmed or extended to that ratio; pass mask.ratio=null for "
        f"V-JEPA 2's ratio-free masks, or mask.ratio={ratio} to keep it without this note"
    )


def _resume_step(trainer) -> int | None:
    """Step of the checkpoint an unfinished run will resume from (None: starts fresh or is completed)."""
    from vjepa.runfiles import read_status

    status = read_status(trainer.run_dir)
    if not trainer.ckpt_path.exists() or (status and status["state"] == "completed"):
        return None
    import torch

    return int(torch.load(trainer.ckpt_path, map_location="cpu", weights_only=True, mmap=True)["step"])


def run(cfg: DictConfig) -> dict | None:
    """Train (or resume, or skip if completed) the run of ``cfg`` in ``cfg.run_dir``; returns final metrics.

    Used by this app and by the sweep/HPO jobs. The run checkpoints on the preemption signal
    (``vjepa.preemption``) before it is requeued.
    """
    from vjepa.distributed import shutdown_distributed

    try:
        return _run(cfg)
    finally:  # on a refusal too: every rank leaves the process group in order before it exits
        shutdown_distributed()


def _run(cfg: DictConfig) -> dict | None:
    from vjepa.preemption import stop_on_signal
    from vjepa.trainer import Trainer

    trainer = Trainer(cfg)  # validates cfg
    if trainer.is_main:
        _note_mask_ratio(cfg)
    step = _resume_step(trainer)
    if step is not None and trainer.is_main:
        print(f"[vjepa] resuming {cfg.run_dir} from step {step}", file=sys.stderr, flush=True)
    # A stop request on any rank stops every rank at the same training step (the trainer all-reduces the
    # flag); during the end-of-run probes, which run on the main process only, its own request stops them.
    with stop_on_signal(trainer.request_stop):
        # overrides.yaml only once the run directory accepts the run: a refused one leaves its files alone
        return trainer.run(accepted=lambda: _write_overrides(cfg))


@hydra.main(version_base=None, config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from vjepa.trainer import Interrupted

    try:
        final = run(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:
        print(f"[vjepa] {exc}; run the same command again to resume", file=sys.stderr)
        sys.exit(75)  # EX_TEMPFAIL: try again
    if final:
        print(f"[vjepa] done: {cfg.run_dir}  loss {final['loss_first']:.4f} -> {final['loss_final']:.4f}")


if __name__ == "__main__":
    main()
