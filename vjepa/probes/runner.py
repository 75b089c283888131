"""``run_probes``: every probe of a ``probes`` config on one frozen encoder (and optionally a random-init
baseline of the same shape), returning flat metrics (see ``vjepa.probes`` for the names).

Each task's data set is built once and its features extracted once per encoder (shared by tasks with the
same data spec and layers, e.g. linear and attentive CIFAR-10), then only the heads train. Data from the
user's folders (``vjepa.probes.folders``: imagefolder, ade20k, nyu_depth) is indexed instead of loaded and
its features extracted in one streamed pass (``vjepa.probes.stream``), keeping what the task's head needs. Head seeds
derive from (seed, task name), data from the data spec, so a run is reproducible task by task.
"""

from __future__ import annotations

import functools
import re
import sys
import time
import zlib

import torch
from omegaconf import OmegaConf

from vjepa.data.common import DataNotFoundError
from vjepa.probes import folders
from vjepa.probes.bootstrap import Scored, bootstrap_weights, paired_standard_error, standard_error
from vjepa.probes.classify import classify_probe
from vjepa.probes.datasets import build, resolve_spec
from vjepa.probes.dense import depth_probe, seg_from_pixels
from vjepa.probes.det import det_probe
from vjepa.probes.features import FeatureCache, extract, feature_spec, layer_problem
from vjepa.probes.heads import seeded
from vjepa.probes.seg import seg_probe
from vjepa.probes.stream import extract_folder, storage

KINDS = ("seg", "det", "classify", "depth")


def _log(msg: str) -> None:
    print(f"[probes] {msg}", file=sys.stderr, flush=True)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def task_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def random_encoder(model_cfg, seed: int, device):
    """A randomly initialised encoder of the run's shape. Built like ``JEPA`` builds its encoder right after
    ``torch.manual_seed(seed)``, so with the run's seed it is the very encoder pretraining started from."""
    from vjepa.models import build_encoder

    with seeded(int(seed)):
        return build_encoder(model_cfg).to(device).eval()


RANDOM_FITS = {"seg", "det", "attentive"}  # fits that depend on a seed (init, data order, pixel draw)


def _fit_task(name: str, task: dict, data, feats: dict, grid, seed: int, device) -> tuple[dict, dict]:
    """One fit of a task's head(s): (metrics, {metric: Scored})."""
    kind = task["kind"]
    streamed = isinstance(data, folders.FolderSet)
    if streamed and kind not in ("classify", "seg", "depth"):
        raise ValueError(
            f"probe {name}: {data.spec['name']} data serves classify, seg and depth probes, not {kind}"
        )
    if kind == "depth":
        if not streamed or data.spec["name"] != "nyu_depth":
            raise ValueError(f"probe {name}: depth probes read nyu_depth data")
        scored = depth_probe(feats, grid, task, device)
        return {"rmse": scored.value}, {"rmse": scored}
    if streamed and kind == "seg":
        classes = data.classes["seg"]
        miou, per_class, scored = seg_from_pixels(feats, grid, len(classes), task, device)
        return {"miou": miou, **{f"iou/{slug(classes[c])}": v for c, v in per_class.items()}}, {
            "miou": scored
        }
    if streamed:  # classify: the labels of the samples read, from the features
        y_train, y_val = {"label": feats["y_train"]}, {"label": feats["y_val"]}
    else:
        y_train, y_val = data.y_train, data.y_val
    if kind == "seg":
        classes = data.classes["seg"]
        miou, per_class, scored = seg_probe(
            feats, grid, data.y_train["seg"], data.y_val["seg"], len(classes), task, seed, device
        )
        return {"miou": miou, **{f"iou/{slug(classes[c])}": v for c, v in per_class.items()}}, {
            "miou": scored
        }
    if kind == "det":
        classes = data.classes["instance_classes"]
        r = det_probe(feats, grid, data.y_train, data.y_val, len(classes), data.size, task, seed, device)
        metrics = {
            "ap50": r["ap50"],
            "ap": r["ap"],
            **{f"ap50/{slug(classes[c])}": v for c, v in r["ap50_per_class"].items()},
        }
        return metrics, r["scored"]
    if kind == "classify":
        scored = {}
        for label in task["labels"]:
            scored["top1" if label == "label" else f"{label}_top1"] = classify_probe(
                task["head"],
                feats,
                y_train[label],
                y_val[label],
                len(data.classes[label]),
                task,
                task_seed(seed, label),
                device,
            )
        return {k: v.value for k, v in scored.items()}, scored
    raise ValueError(f"probe {name}: kind must be one of {KINDS}, got {kind!r}")


def _refits(task: dict) -> int:
    random_fit = task["kind"] in RANDOM_FITS or task.get("head") in RANDOM_FITS
    return max(1, int(task.get("refits", 1))) if random_fit else 1


def _run_task(name: str, task: dict, data, feats: dict, grid, seed: int, device) -> tuple[dict, dict]:
    """Metrics of a task and its headline metrics as ``Scored``. With ``refits: R`` (R > 1) a head whose fit
    is random is fitted R times (seeds: the task's, then derived ones): each metric is the mean over the
    fits, ``<metric>/refit_sd`` their sample spread, and the ``Scored`` averages the fits per resample."""
    fits = [
        _fit_task(name, task, data, feats, grid, seed if r == 0 else task_seed(seed, f"refit{r}"), device)
        for r in range(_refits(task))
    ]
    if len(fits) == 1:
        return fits[0]
    metrics = {k: sum(f[0][k] for f in fits) / len(fits) for k in fits[0][0] if all(k in f[0] for f in fits)}
    scored = {}
    for k in fits[0][1]:
        parts = [f[1][k] for f in fits]
        values = torch.tensor([p.value for p in parts], dtype=torch.float64)
        metrics[f"{k}/refit_sd"] = float(values.std(unbiased=True))
        scored[k] = Scored(
            metrics[k],
            lambda w, parts=parts: torch.stack([p.statistic(w) for p in parts]).mean(0),
            parts[0].samples,
        )
    return metrics, scored


@functools.lru_cache(maxsize=4)
def resample(name: str, m: int, replicates: int) -> torch.Tensor:
    """Bootstrap weights of a task's m val samples: the same for every encoder and run (a paired bootstrap).
    Cached: the pretrained encoder, the random-init one and their paired gap read the same weights."""
    return bootstrap_weights(m, replicates, task_seed(0, f"bootstrap/{name}"))


def _probe_encoder(
    encoder,
    cfg: dict,
    patch_size: int,
    seed: int,
    data_root,
    device,
    prefix: str,
    cache,
    datasets: dict,
    scored: dict,
) -> dict[str, float]:
    """Metrics of every task under ``prefix``; each headline metric's ``Scored`` goes into ``scored``
    by (task, metric)."""
    defaults = {
        "image_size": cfg["image_size"],
        "video_size": cfg["video_size"],
        "frames": cfg["frames"],
        "patch_size": patch_size,
    }
    out: dict[str, float] = {}
    bs = int(cfg["extract_batch"])
    t_all = time.perf_counter()
    for name, task in (cfg.get("tasks") or {}).items():
        t0 = time.perf_counter()
        spec = resolve_spec(task["data"], defaults)
        key = repr(sorted(spec.items()))
        try:
            if key not in datasets:
                streamed = spec["name"] in folders.FORMATS
                datasets[key] = folders.index(spec, data_root) if streamed else build(spec, data_root)
        except DataNotFoundError as exc:
            if cfg.get("missing_data", "skip") != "skip":
                raise
            _log(f"{prefix}/{name}: skipped, no data ({exc})")
            continue
        data = datasets[key]
        layers = task.get("layers", [-1])
        layers = layers if isinstance(layers, str) else list(layers)  # "levels" or block indices

        fspec = feature_spec(spec, layers, device)
        if isinstance(data, folders.FolderSet):
            store = storage(task, spec)
            fspec = {**fspec, "storage": store, "files": data.fingerprint()}
            workers = int(cfg.get("workers", 0))

            def compute(data=data, layers=layers, store=store, workers=workers):
                return extract_folder(encoder, data, layers, store, bs, workers, device)
        else:

            def compute(data=data, layers=layers):
                ft, grid = extract(encoder, data.x_train, layers, data.size, bs, device)
                fv, _ = extract(encoder, data.x_val, layers, data.size, bs, device)
                return {"train": ft, "val": fv, "grid": torch.tensor(grid)}

        feats = cache.get(fspec, compute)
        grid = tuple(feats["grid"].tolist())
        t_feat = time.perf_counter() - t0
        metrics, task_scored = _run_task(name, task, data, feats, grid, task_seed(seed, name), device)
        replicates = int(task.get("bootstrap", cfg.get("bootstrap", 0)))
        for k, sc in task_scored.items():
            if replicates > 1:
                metrics[f"{k}/se"] = standard_error(sc, resample(name, sc.samples, replicates))
            scored[(name, k)] = sc
        dt = time.perf_counter() - t0
        out.update({f"{prefix}/{name}/{k}": float(v) for k, v in metrics.items()})
        video = hasattr(data, "x_train") and data.x_train.ndim == 5
        out[f"{prefix}/{name}/frames"] = float(data.x_train.shape[2]) if video else 0.0
        if "skipped_train" in feats:
            out[f"{prefix}/{name}/skipped"] = float(feats["skipped_train"] + feats["skipped_val"])
        out[f"{prefix}/{name}/time_s"] = dt
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k)
        _log(f"{prefix}/{name}: {shown} ({dt:.1f} s, of which data + features {t_feat:.1f} s)")
    out[f"{prefix}/time_s"] = time.perf_counter() - t_all
    return out


def run_probes(
    encoder,
    probes_cfg,
    model_cfg,
    seed: int,
    data_root,
    device,
    *,
    prefix: str = "probe",
    baseline: bool | None = None,
    cache_dir=None,
    cache_tag: str | None = None,
) -> dict[str, float]:
    """Probe ``encoder`` (frozen; its train/eval mode is restored) with every task of ``probes_cfg``.

    ``baseline`` (default: ``probes_cfg.baseline``) also probes a random-init encoder built from
    ``model_cfg`` with ``seed``, under ``probe_random/``. ``cache_dir`` keeps features on disk as
    ``<cache_dir>/<cache_tag>-<hash>.pt``; ``cache_tag`` must identify the weights (e.g. "probe-step300").
    """
    cfg = (
        OmegaConf.to_container(probes_cfg, resolve=True)
        if OmegaConf.is_config(probes_cfg)
        else dict(probes_cfg)
    )
    depth = getattr(encoder, "depth", None)
    problems = [
        f"probes.tasks.{name}.{problem}"
        for name, task in (cfg.get("tasks") or {}).items()
        if depth is not None and (problem := layer_problem(task.get("layers", [-1]), depth))
    ]
    if problems:  # before any data is built
        raise ValueError("probe layers the encoder does not have:\n  - " + "\n  - ".join(problems))
    device = torch.device(device)
    patch = int(model_cfg["patch_size"])
    datasets = {}  # built once, shared with the baseline
    cache = FeatureCache(cache_dir, cache_tag or prefix)
    scored, rscored = {}, {}
    out = _probe_encoder(encoder, cfg, patch, seed, data_root, device, prefix, cache, datasets, scored)
    if cfg.get("baseline", False) if baseline is None else baseline:
        rand = random_encoder(model_cfg, seed, device)
        rcache = FeatureCache(cache_dir, f"random-seed{seed}")
        out.update(
            _probe_encoder(
                rand, cfg, patch, seed, data_root, device, "probe_random", rcache, datasets, rscored
            )
        )
        for (name, k), sc in scored.items():
            task = cfg["tasks"][name]
            replicates = int(task.get("bootstrap", cfg.get("bootstrap", 0)))
            if (name, k) in rscored and replicates > 1:
                w = resample(name, sc.samples, replicates)
                out[f"{prefix}/{name}/{k}/gap_se"] = paired_standard_error(sc, rscored[(name, k)], w)
    return out
