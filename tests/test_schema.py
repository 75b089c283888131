"""The configuration schema (vjepa/schema.py): the lists derived from it, the copies kept elsewhere, old run
directories, and the example axis of docs/adding_an_ablation_axis.md (``loss.target_norm``)."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY_TEST
from vjepa import schema
from vjepa.config_check import ConfigError, check_config
from vjepa.run_identity import (
    ADDED_KEYS,
    RESUME_FREE_KEYS,
    RUN_FREE_KEYS,
    config_hashes,
    run_hash,
    with_added_defaults,
)


def test_derived_lists_are_those_written_by_hand_before_the_schema():
    """Run identity may not change: the lists as they were written out before the schema (plus the keys
    added since: the axis loss.target_norm, free of identity at its default, and tensorboard, a log output
    that names no run)."""
    assert set(RESUME_FREE_KEYS) == {
        *("run_dir", "device", "threads", "progress", "log_every", "data.num_workers", "data.root"),
        *("compile", "activation_checkpointing", "diagnostics", "probes", "tensorboard"),
    }
    assert set(RUN_FREE_KEYS) == set(RESUME_FREE_KEYS) - {"log_every", "diagnostics", "probes"}
    assert ADDED_KEYS == {
        "mask.buckets": 1,
        "mask.bucket_by": "order",
        "mask.cut": "random",
        "mask.trim": "raster",
        "mask.image_settings": None,
        "loss.context.image_weight": None,
        "loss.target_norm": "layer",
        "tensorboard": False,
    }
    from sweeps.common import SWEEP_KEYS

    assert SWEEP_KEYS == ("sweep", "cluster", "dry_run", "hpo", "power")


def test_copies_of_the_schema_lists_agree_with_it():
    """train.yaml's exclude_keys is a copy (Hydra reads it before any resolver of ours may be registered:
    sweep launchers, ``--cfg hydra``); analysis reads the sweeps' keys from the schema as never an axis."""
    from analysis.collect import not_axis

    assert set(schema.NOT_AXES) == {"seed", "preset", "sweep", "cluster", "dry_run", "hpo", "power"}
    assert not_axis("cluster.partition") and not_axis("power.effect") and not not_axis("loss.target_norm")
    train_yaml = OmegaConf.load(Path(__file__).parents[1] / "vjepa" / "conf" / "train.yaml")
    assert set(train_yaml.hydra.job.config.override_dirname.exclude_keys) == set(RESUME_FREE_KEYS)


def test_every_key_of_the_composed_configs_is_in_the_schema(compose_cfg):
    """The schema names every key the default and the published configs hold (free subtrees, e.g. probes.*,
    are free with their root)."""

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v and f"{prefix}{k}" not in schema.BY_KEY:
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    for overrides in ([], ["recipe=vjepa21", "mask=vjepa21", "loss=block", "model.deep_supervision=true"]):
        c = OmegaConf.to_container(compose_cfg(*overrides), resolve=True)
        assert [k for k in leaves(c) if k not in schema.BY_KEY] == []


def test_value_reads_the_schema_default_where_a_config_lacks_the_key():
    cfg = OmegaConf.create({"mask": {"cut": "raster"}, "loss": {"context": None}})
    assert schema.value(cfg, "mask.cut") == "raster"
    assert schema.value(cfg, "mask.trim") == "raster"  # absent: the default
    assert schema.value(cfg, "loss.context.weight") == 0.0  # a null parent: the default
    assert schema.leaf(cfg.mask, "mask.buckets") == 1
    with pytest.raises(KeyError, match="model.depth is missing"):
        schema.value(cfg, "model.depth")


def test_a_config_written_before_the_added_keys_resumes_and_hashes_as_before(compose_cfg, tmp_path):
    """Migration: a config.yaml as the code wrote it before each ADDED_KEYS key existed (the key absent)
    resumes under today's config, is read with the keys at their old value, and hashes as today's."""
    from vjepa.trainer import Trainer

    cfg = compose_cfg("mask=vjepa2", "mask.ratio=null", f"run_dir={tmp_path}")
    now = OmegaConf.to_container(cfg, resolve=True)
    old = json.loads(json.dumps(now))
    for key in ADDED_KEYS:
        *path, last = key.split(".")
        node = old
        for p in path:
            node = node[p]
        node.pop(last, None)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(old)))
    Trainer(cfg)._check_run_dir()  # no refusal
    read = with_added_defaults(OmegaConf.to_container(OmegaConf.load(tmp_path / "config.yaml")))
    assert all(schema.value(read, key) == value for key, value in ADDED_KEYS.items())
    assert config_hashes(old) == config_hashes(now) and run_hash(old) == run_hash(now)
    with pytest.raises(ConfigError, match=r"loss.target_norm: 'layer' \(on disk\) vs 'none' \(now\)"):
        Trainer(
            compose_cfg("mask=vjepa2", "mask.ratio=null", "+loss.target_norm=none", f"run_dir={tmp_path}")
        )._check_run_dir()


def _losses(compose_cfg, tmp_path, name, *overrides):
    from vjepa.trainer import train

    cfg = compose_cfg(*TINY_TEST, "steps=3", "log_every=1", *overrides, run_dir=tmp_path / name)
    train(cfg)
    return [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def test_target_norm_axis_trains_and_its_default_is_todays_behaviour(compose_cfg, tmp_path):
    """The example axis: loss.target_norm=layer is bit for bit a config without the key, and the same run
    (run_hash); none trains on the raw target features; a bad value is named before any compute."""
    absent = _losses(compose_cfg, tmp_path, "absent")
    layer = _losses(compose_cfg, tmp_path, "layer", "+loss.target_norm=layer")
    raw = _losses(compose_cfg, tmp_path, "none", "+loss.target_norm=none")
    assert layer == absent and raw != absent and all(v == v for v in raw)
    container = OmegaConf.to_container(compose_cfg(*TINY_TEST, "+loss.target_norm=layer"), resolve=True)
    assert run_hash(container) == run_hash(OmegaConf.to_container(compose_cfg(*TINY_TEST), resolve=True))
    with pytest.raises(ConfigError, match="loss.target_norm='batch' is not one of: layer, none"):
        check_config(compose_cfg(*TINY_TEST, "+loss.target_norm=batch"))


OLD_RUN = Path(__file__).parent / "data" / "old_run_17cd7fb"


def test_a_run_directory_written_by_the_code_before_the_redesign_is_read_and_resumes(tmp_path):
    """tests/data/old_run_17cd7fb: a run directory as the code before the redesign (17cd7fb) wrote it, killed
    after its step-2 checkpoint of 4 (``old_code_hashes.json``: its overrides and the hashes that code gave
    its config; ``uninterrupted_metrics.jsonl``: that code's run of the same config straight to the end).
    Today's code hashes its config as the old code did, reads it, and resumes it with the same command to the
    same numbers, bit for bit."""
    import json
    import shutil

    from hydra import compose, initialize_config_module

    import vjepa.train  # noqa: F401  (registers the run-name resolver)
    from analysis.collect import read_run
    from vjepa.trainer import train

    old = json.loads((OLD_RUN / "old_code_hashes.json").read_text())
    cfg_old = OmegaConf.to_container(OmegaConf.load(OLD_RUN / "config.yaml"))
    assert "tensorboard" not in cfg_old and "target_norm" not in cfg_old["loss"]  # keys added since
    assert list(config_hashes(cfg_old)) == old["config_hashes"] and run_hash(cfg_old) == old["run_hash"]
    run_dir = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, run_dir)
    assert read_run(run_dir)["status"] == "running"
    overrides = [o for o in old["overrides"] if not o.startswith("run_dir=")] + [f"run_dir={run_dir}"]
    with initialize_config_module("vjepa.conf", version_base=None):
        cfg = compose("train", overrides=overrides)
    final = train(cfg)  # the same command: resumed from step 2, not refused as another experiment
    assert final["steps"] == 4 and read_run(run_dir)["status"] == "completed"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["numerics"] == json.loads((OLD_RUN / "status.json").read_text())["numerics"]  # one numerics

    def numbers(path):
        keep = lambda k: not k.endswith(("_per_s", "wall_time_s"))  # noqa: E731
        return [{k: v for k, v in json.loads(x).items() if keep(k)} for x in path.read_text().splitlines()]

    now, then = numbers(run_dir / "metrics.jsonl"), numbers(OLD_RUN / "uninterrupted_metrics.jsonl")
    from vjepa.golden import platform

    if platform("cpu") == json.loads((OLD_RUN / "status.json").read_text())["platform"]:
        assert now == then  # bit for bit where the fixture was written
    else:  # another CPU's vector instructions round differently from the first step on
        assert [r["step"] for r in now] == [r["step"] for r in then]
        assert [r["loss"] for r in now] == pytest.approx([r["loss"] for r in then], rel=1e-3)
