import os

import pytest
import torch
from omegaconf import OmegaConf

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def compose_cfg(tmp_path):
    """Compose the training config the way `python -m vjepa.train` does, with a tmp run_dir."""
    from hydra import compose, initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)

    def _compose(*overrides: str, run_dir=None):
        with initialize_config_module("vjepa.conf", version_base=None):
            return compose(
                "train", overrides=[f"run_dir={run_dir or tmp_path / 'run'}", "progress=false", *overrides]
            )

    return _compose


# A configuration small enough for unit tests of the trainer: 32 px images / clips, 2-block encoder.
TINY_TEST = [
    "model=tiny",  # ViT-tiny shape (D=192, 8 px patches): 16 tokens per 32 px image keeps tests fast
    "model.depth=2",
    "predictor.depth=1",
    "predictor.width=32",
    "predictor.num_heads=2",
    "data.image.size=32",
    "data.video.size=32",
    "data.video.frames=4",
    "batch_size=8",
    "threads=1",
    "probes=none",
    "loss.context.weight=0",  # the tiny preset's context loss off: tests switch it on where they test it
]


# ---- the private SLURM cluster (tests/slurm_cluster.py), shared by every test marked `slurm` -------------
from tests.slurm_cluster import LocalSlurmCluster, slurm_available  # noqa: E402


def _require_slurm() -> bool:
    return os.environ.get("VJEPA_REQUIRE_SLURM", "") == "1"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running private SLURM cluster; os.environ points at it while it lives."""
    ok, reason = slurm_available()
    if not ok:
        if _require_slurm():
            pytest.fail(f"VJEPA_REQUIRE_SLURM=1 but SLURM is unavailable: {reason}", pytrace=False)
        pytest.skip(reason)
    cluster = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()  # raises SlurmClusterError (with daemon log tails) on failure
    saved = dict(os.environ)
    for key in cluster.foreign_env_keys():  # e.g. when pytest itself runs inside a SLURM job
        del os.environ[key]
    os.environ.update(cluster.env)  # submitit calls sbatch/sacct through os.environ
    try:
        yield cluster
    finally:
        os.environ.clear()
        os.environ.update(saved)
        cluster.stop()


# The encoder shape of the probe tests: 2 blocks of D=64, 8 px patches (16 tokens per 32 px image).
PROBE_MODEL = OmegaConf.create(
    {
        "embed_dim": 64,
        "depth": 2,
        "num_heads": 2,
        "mlp_ratio": 2.0,
        "patch_size": 8,
        "tubelet_size": 2,
        "tokenizer": "separate",
        "modality_embed": False,
    }
)


@pytest.fixture
def one_thread():
    """One torch thread for the test (probe heads are many small ops: on a busy 2-core machine, 2 threads
    mostly wait on each other); the count is restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def probe_encoder():
    """A random-init encoder of ``PROBE_MODEL`` (seed 0), shared by a module's tests."""
    from vjepa.probes import random_encoder

    return random_encoder(PROBE_MODEL, 0, "cpu")
