"""`python -m vjepa.train [overrides]`: one pretraining run (a Hydra app).

Outputs go to ``run_dir`` (default ``runs/<overrides>``); see ``vjepa.runfiles`` for the layout.
Running the same command again resumes from the last checkpoint, or does nothing if the run completed.
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


if not OmegaConf.has_resolver("vjepa_run_name"):
    OmegaConf.register_new_resolver("vjepa_run_name", run_name)


def _write_overrides(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from pathlib import Path

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
        path = Path(cfg.run_dir) / "overrides.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(overrides)))


@hydra.main(version_base=None, config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from vjepa.trainer import train

    try:
        _write_overrides(cfg)
        final = train(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if final:
        print(f"[vjepa] done: {cfg.run_dir}  loss {final['loss_first']:.4f} -> {final['loss_final']:.4f}")


if __name__ == "__main__":
    main()
