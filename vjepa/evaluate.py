"""`python -m vjepa.evaluate run_dir=DIR [key=value ...]`: probe a saved run and merge the numbers into
its ``metrics.json`` (atomically, keeping every key already there).

Keys: ``probes`` (a name in vjepa/conf/probes/ or a .yaml path; default: the run's own ``probes`` config if
it has one, else ``default``), ``encoder`` (target = the EMA encoder, default | online), ``baseline``
(default: the probe config's ``baseline``, as in training; true: also a random-init encoder of the same
shape, the one pretraining started from; false: not; only: that encoder alone, adding ``probe_random/...``
to a run whose own probes are already in its metrics, untouched),
``device`` (auto | cpu | cuda), ``threads`` (auto | n), ``data_root`` (default: the run's ``data.root``,
else ../shared/data), ``cache`` (true: keep features in ``DIR/probe_cache/``), ``out`` (a JSON file to write
the numbers to instead of merging them into the run's ``metrics.json``: for trying probe settings on a run
without touching its results), and ``probes.<key>=value`` to
override the probe config, e.g. ``probes.tasks.shapes_det.epochs=5``. Input sizes in the probe config
resolve against the run's ``data``. Each prefix written gets ``<prefix>/numerics`` and ``<prefix>/platform``:
the numerics id of the code that probed and where it ran (``vjepa.golden``).

Launched as several processes (``torchrun --nproc_per_node N -m vjepa.evaluate ...``, or N SLURM tasks
under ``srun``), the ranks share the feature extraction of folder data (``vjepa.probes.shard``): each reads
its part of every split with its own loader workers (on GPU ``cuda:<local rank>``), and rank 0 gets the
features in sample order, extracts the rest alone, fits the heads and writes ``metrics.json`` and the
feature cache; it alone prints the metrics.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

OPTIONS = {
    "run_dir": None,
    "probes": None,
    "encoder": "target",
    "baseline": None,
    "device": "auto",
    "threads": "auto",
    "data_root": None,
    "cache": False,
    "out": None,
}
PREFIX = {"target": "probe", "online": "probe_online"}


def probes_config(run_cfg, name=None, overrides=()):
    """The ``probes`` node, interpolations resolving against the run's config (its ``data`` sizes)."""
    if name is None and "probes" in run_cfg:
        probes = run_cfg.probes
    else:
        name = name or "default"
        path = (
            Path(name)
            if str(name).endswith(".yaml")
            else Path(__file__).parent / "conf" / "probes" / f"{name}.yaml"
        )
        if not path.exists():
            raise FileNotFoundError(f"probes={name}: no such probe config ({path})")
        probes = OmegaConf.load(path)
    root = OmegaConf.merge({k: v for k, v in run_cfg.items() if k != "probes"}, {"probes": probes})
    if overrides:
        root = OmegaConf.merge(root, OmegaConf.from_dotlist(list(overrides)))
    return root.probes


def evaluate(
    run_dir,
    probes=None,
    encoder="target",
    baseline=None,
    device="auto",
    threads="auto",
    data_root=None,
    cache=False,
    out=None,
    overrides=(),
    shards=None,
) -> dict[str, float]:
    """Probe the saved run (module docstring) and return the metrics written. ``shards``: this process's
    place among the ranks of a multi-process evaluation (``vjepa.probes.shard``); ranks other than 0 return
    {} and write nothing."""
    from vjepa.data import resolve_root
    from vjepa.probes import run_probes
    from vjepa.probes.modality import trained_tasks
    from vjepa.probes.shard import ONE
    from vjepa.runfiles import read_json, write_json
    from vjepa.trainer import probe_numerics, set_threads

    if encoder not in PREFIX:
        raise ValueError(f"encoder must be one of {tuple(PREFIX)}, got {encoder!r}")
    if baseline not in (None, True, False, "only"):
        raise ValueError(f"baseline must be true, false or only, got {baseline!r}")
    run_dir = Path(run_dir)
    only = baseline == "only"
    state, run_cfg = _saved_run(run_dir, only)
    probes_cfg = probes_config(run_cfg, probes, overrides)
    probes_cfg, _ = trained_tasks(probes_cfg, run_cfg)  # not the modality the run never trained
    shards = shards or ONE
    dev = _device(device, shards)
    set_threads(_threads(threads, shards))
    seed = int(run_cfg.seed)
    enc, prefix, tag = _encoder(run_cfg, state, encoder, seed, dev)
    root = resolve_root(data_root or run_cfg.data.get("root"))
    results = run_probes(
        enc,
        probes_cfg,
        run_cfg.model,
        seed,
        root,
        dev,
        prefix=prefix,
        baseline=None if baseline is None else baseline is True,  # None: the probe config's own
        cache_dir=run_dir / "probe_cache" if cache else None,
        cache_tag=tag,
        shards=shards,
    )
    if not shards.is_main:
        return {}
    if not only:
        results[f"{prefix}/step"] = int(state["step"])
    results.update(probe_numerics(results, dev))  # <prefix>/numerics, /platform: how these probes ran
    path = Path(out) if out else run_dir / "metrics.json"
    merged = read_json(path) if path.exists() and not out else {}
    merged.update(results)
    write_json(path, merged)
    return results


def _saved_run(run_dir: Path, only: bool):
    """(checkpoint state, or None with ``baseline=only``; the run's config), or a FileNotFoundError naming
    what is missing."""
    from vjepa.runfiles import load_checkpoint

    ckpt, cfg_path = run_dir / "checkpoints" / "last.pt", run_dir / "config.yaml"
    if only and not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} does not exist: is {run_dir} a run directory?")
    if not only and not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist: is {run_dir} a run directory with a checkpoint?")
    state = None if only else load_checkpoint(ckpt)
    run_cfg = OmegaConf.load(cfg_path) if cfg_path.exists() else OmegaConf.create(state["config"])
    return state, run_cfg


def _device(device: str, shards):
    """The device to probe on: ``device`` resolved, on CUDA this rank's local GPU when there are several."""
    import torch

    from vjepa.trainer import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and shards.world > 1:
        dev = torch.device("cuda", shards.local_rank)
    return dev


def _encoder(run_cfg, state, encoder: str, seed: int, dev):
    """(encoder, metric prefix, cache tag): the checkpoint's ``encoder`` weights, or with no checkpoint
    state (``baseline=only``) the encoder pretraining started from, probed as run_probes probes its baseline."""
    from vjepa.models import build_encoder
    from vjepa.probes.runner import random_encoder

    if state is None:
        return random_encoder(run_cfg.model, seed, dev), "probe_random", f"random-seed{seed}"
    enc = build_encoder(run_cfg.model)
    enc.load_state_dict(state["target_encoder" if encoder == "target" else "encoder"])
    prefix = PREFIX[encoder]
    return enc.to(dev), prefix, f"{prefix}-step{state['step']}"


def _threads(threads, shards):
    """Torch threads of this process: ``threads``, or with ``auto`` and several ranks on one node (torchrun's
    LOCAL_WORLD_SIZE) the node's CPUs shared among them."""
    from vjepa.trainer import available_cpus

    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if threads in (None, "auto") and shards.world > 1 and local > 1:
        return max(1, available_cpus() // local)
    return threads


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m vjepa.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("items", nargs="*", metavar="key=value")
    opts, overrides = dict(OPTIONS), []
    for item in parser.parse_args(argv).items:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"expected key=value, got {item!r}")
        if key.startswith("probes."):
            overrides.append(item)
        elif key in OPTIONS:
            opts[key] = OmegaConf.from_dotlist([item])[key]
        else:
            parser.error(f"unknown key {key!r}: one of {', '.join(OPTIONS)} or probes.<key>")
    if not opts["run_dir"]:
        parser.error("run_dir=DIR is required")
    if not isinstance(opts["cache"], bool):
        parser.error(f"cache must be true or false, got {opts['cache']!r}")
    if opts["baseline"] not in (None, True, False, "only"):
        parser.error(f"baseline must be true, false or only, got {opts['baseline']!r}")
    return opts, overrides


def main(argv: list[str] | None = None) -> None:
    from vjepa.distributed import init_distributed, shutdown_distributed
    from vjepa.probes.shard import Shards
    from vjepa.trainer import resolve_device

    opts, overrides = parse(sys.argv[1:] if argv is None else argv)
    try:
        shards = Shards.over(init_distributed(resolve_device(opts["device"]).type))
        results = evaluate(**opts, overrides=overrides, shards=shards)
    finally:
        shutdown_distributed()
    if not shards.is_main:
        return
    for key in sorted(results):
        if key.endswith(("/numerics", "/platform")):
            print(f"{key}: {results[key]}")
        elif not key.endswith("time_s") and "/iou/" not in key and "/ap50/" not in key:
            print(f"{key}: {results[key]:.4f}")
    where = opts["out"] or Path(opts["run_dir"]) / "metrics.json"
    print(f"[vjepa] {'wrote' if opts['out'] else 'merged'} {len(results)} probe metrics into {where}")


if __name__ == "__main__":
    main()
