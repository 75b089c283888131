import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def compose_cfg(tmp_path):
    """Compose the training config the way `python -m vjepa.train` does, with a tmp run_dir."""
    from hydra import compose, initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)

    def _compose(*overrides: str, run_dir=None):
        with initialize_config_module("vjepa.conf", version_base=None):
            return compose("train", overrides=[f"run_dir={run_dir or tmp_path / 'run'}", "progress=false", *overrides])

    return _compose


# A configuration small enough for unit tests of the trainer: 32 px images / clips, 2-block encoder.
TINY_TEST = [
    "model.depth=2",
    "predictor.depth=1",
    "predictor.width=32",
    "predictor.num_heads=2",
    "data.image.size=32",
    "data.video.size=32",
    "data.video.frames=4",
    "batch_size=8",
    "threads=1",
]
