"""``run_probes``: every probe of a ``probes`` config on one frozen encoder (and optionally a random-init
baseline of the same shape), returning flat metrics (see ``vjepa.probes`` for the names).

Each task's data set is built once and its features extracted once per encoder (shared by tasks with the
same data spec and layers, e.g. linear and attentive CIFAR-10), then only the heads train. Data from the
user's folders (``vjepa.probes.folders``: imagefolder, ade20k, nyu_depth, video_list, coco) is indexed instead of loaded and
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
from vjepa.probes.det import box_probe, det_probe
from vjepa.probes.features import FeatureCache, extract, feature_spec, layer_problem
from vjepa.probes.heads import seeded
from vjepa.probes.seg import seg_probe
from vjepa.probes.shard import ONE
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


def _det_metrics(r: dict, classes) -> tuple[dict, dict]:
    per_class = {f"ap50/{slug(classes[c])}": v for c, v in r["ap50_per_class"].items()}
    return {"ap50": r["ap50"], "ap": r["ap"], **per_class}, r["scored"]


def _seg_metrics(result: tuple, classes) -> tuple[dict, dict]:
    miou, per_class, scored = result
    return {"miou": miou, **{f"iou/{slug(classes[c])}": v for c, v in per_class.items()}}, {"miou": scored}


def _classify(task: dict, feats: dict, y_train: dict, y_val: dict, classes: dict, seed: int, device):
    scored = {}
    for label in task["labels"]:
        scored["top1" if label == "label" else f"{label}_top1"] = classify_probe(
            task["head"], feats, y_train[label], y_val[label], len(classes[label]), task,
            task_seed(seed, label), device,
        )  # fmt: skip
    return {k: v.value for k, v in scored.items()}, scored


def _fit_streamed(name: str, task: dict, data, feats: dict, grid, seed: int, device) -> tuple[dict, dict]:
    """A head on features of folder data (``vjepa.probes.stream``), of the kind its format serves."""
    kind, fmt = task["kind"], data.spec["name"]
    if kind != folders.KIND[fmt]:
        raise ValueError(f"probe {name}: {fmt} data serves {folders.KIND[fmt]} probes, not {kind}")
    if kind == "depth":
        scored = depth_probe(feats, grid, task, device)
        return {"rmse": scored.value}, {"rmse": scored}
    if kind == "seg":
        classes = data.classes["seg"]
        return _seg_metrics(seg_from_pixels(feats, grid, len(classes), task, device), classes)
    if kind == "det":
        classes = data.classes["instance_classes"]
        args = (feats["y_train"], feats["y_val"], len(classes), data.size, task, seed, device)
        return _det_metrics(box_probe(feats, grid, *args), classes)
    y_train, y_val = {"label": feats["y_train"]}, {"label": feats["y_val"]}
    return _classify(task, feats, y_train, y_val, data.classes, seed, device)


def _fit_task(name: str, task: dict, data, feats: dict, grid, seed: int, device) -> tuple[dict, dict]:
    """One fit of a task's head(s): (metrics, {metric: Scored})."""
    kind = task["kind"]
    if kind not in KINDS:
        raise ValueError(f"probe {name}: kind must be one of {KINDS}, got {kind!r}")
    if isinstance(data, folders.FolderSet):
        return _fit_streamed(name, task, data, feats, grid, seed, device)
    if kind == "depth":
        raise ValueError(f"probe {name}: depth probes read nyu_depth data")
    if kind == "seg":
        classes = data.classes["seg"]
        result = seg_probe(
            feats, grid, data.y_train["seg"], data.y_val["seg"], len(classes), task, seed, device
        )
        return _seg_metrics(result, classes)
    if kind == "det":
        classes = data.classes["instance_classes"]
        r = det_probe(feats, grid, data.y_train, data.y_val, len(classes), data.size, task, seed, device)
        return _det_metrics(r, classes)
    return _classify(task, feats, data.y_train, data.y_val, data.classes, seed, device)


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


@functools.lru_cache(maxsize=1)
def resample(name: str, m: int, replicates: int) -> torch.Tensor:
    """Bootstrap weights of a task's m val samples: the same for every encoder and run (a paired bootstrap).
    Seeded by the task's name, so the pretrained encoder, the random-init one and their paired gap read the
    same weights; one task's kept (at ImageNet's 50,000 val images and 1,000 replicates they are 400 MB),
    the others drawn again when needed."""
    return bootstrap_weights(m, replicates, task_seed(0, f"bootstrap/{name}"))


def _dataset(name: str, spec: dict, cfg: dict, data_root, datasets: dict, prefix: str):
    """The task's data set, built or indexed once per data spec; None where it is absent and skipped."""
    key = repr(sorted(spec.items()))
    try:
        if key not in datasets:
            streamed = spec["name"] in folders.FORMATS
            datasets[key] = folders.index(spec, data_root) if streamed else build(spec, data_root)
    except DataNotFoundError as exc:
        if cfg.get("missing_data", "skip") != "skip":
            raise
        _log(f"{prefix}/{name}: skipped, no data ({exc})")
        return None
    return datasets[key]


def _task_data(name: str, spec: dict, cfg: dict, data_root, datasets: dict, prefix: str, shards):
    """``_dataset``, on ranks other than 0 only for folder data (the only data they extract); with several
    ranks, an error on every rank unless all of them found the folder data or none did."""
    streamed = spec["name"] in folders.FORMATS
    if not shards.is_main and not streamed:
        return None
    data = _dataset(name, spec, cfg, data_root, datasets, prefix)
    if streamed:
        shards.same(data is not None, f"whether the data of {prefix}/{name} is there")
    return data


def _features(encoder, task: dict, spec: dict, data, cfg: dict, cache, device, shards=ONE) -> dict | None:
    """The task's features, from the cache or extracted (streamed for folder data, over the ranks of
    ``shards``: rank 0 decides whether its cache holds them, and only it gets them; None on other ranks)."""
    layers = task.get("layers", [-1])
    layers = layers if isinstance(layers, str) else list(layers)  # "levels" or block indices
    bs = int(task.get("extract_batch", cfg["extract_batch"]))
    fspec = feature_spec(spec, layers, device)
    if isinstance(data, folders.FolderSet):
        store = storage(task, spec)
        fspec = {**fspec, "storage": store, "files": data.fingerprint()}
        workers = int(cfg.get("workers", 0))

        def compute():
            return extract_folder(encoder, data, layers, store, bs, workers, device, shards)

        hit = shards.agree(cache.has(fspec) if shards.is_main else None)
        if not shards.is_main:
            return None if hit else compute()
    else:

        def compute():
            ft, grid = extract(encoder, data.x_train, layers, data.size, bs, device)
            fv, _ = extract(encoder, data.x_val, layers, data.size, bs, device)
            return {"train": ft, "val": fv, "grid": torch.tensor(grid)}

    return cache.get(fspec, compute)


def _frames(data) -> float:
    """Frames of the task's inputs: 0 for images (analysis reads the modality from it)."""
    if isinstance(data, folders.FolderSet):
        return float(data.spec.get("frames", 0)) if data.spec["name"] == "video_list" else 0.0
    return float(data.x_train.shape[2]) if data.x_train.ndim == 5 else 0.0


def _probe_task(name, task, data, feats, cfg, seed, device, scored) -> dict[str, float]:
    """A task's metrics (with ``<metric>/se`` where ``bootstrap`` > 1); its Scored go into ``scored``."""
    grid = tuple(feats["grid"].tolist())
    metrics, task_scored = _run_task(name, task, data, feats, grid, task_seed(seed, name), device)
    replicates = int(task.get("bootstrap", cfg.get("bootstrap", 0)))
    for k, sc in task_scored.items():
        if replicates > 1:
            metrics[f"{k}/se"] = standard_error(sc, resample(name, sc.samples, replicates))
        scored[(name, k)] = sc
    metrics["frames"] = _frames(data)
    if "skipped_train" in feats:
        metrics["skipped"] = float(feats["skipped_train"] + feats["skipped_val"])
    return metrics


def _probe_encoder(
    encoder,
    cfg: dict,
    patch_size: int,
    seed: int,
    data_root,
    device,
    prefix: str,
    cache,
    datasets,
    scored,
    shards=ONE,
) -> dict[str, float]:
    """Metrics of every task under ``prefix``; each headline metric's ``Scored`` goes into ``scored``
    by (task, metric). Ranks other than 0 of ``shards`` only extract their parts of the folder data."""
    defaults = {k: cfg[k] for k in ("image_size", "video_size", "frames")} | {"patch_size": patch_size}
    out: dict[str, float] = {}
    t_all = time.perf_counter()
    for name, task in (cfg.get("tasks") or {}).items():
        t0 = time.perf_counter()
        spec = resolve_spec(task["data"], defaults)
        data = _task_data(name, spec, cfg, data_root, datasets, prefix, shards)
        if data is None:
            continue
        feats = _features(encoder, task, spec, data, cfg, cache, device, shards)
        if not shards.is_main:
            continue
        t_feat = time.perf_counter() - t0
        metrics = _probe_task(name, task, data, feats, cfg, seed, device, scored)
        dt = time.perf_counter() - t0
        out.update({f"{prefix}/{name}/{k}": float(v) for k, v in metrics.items()})
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
    shards=ONE,
) -> dict[str, float]:
    """Probe ``encoder`` (frozen; its train/eval mode is restored) with every task of ``probes_cfg``.

    ``baseline`` (default: ``probes_cfg.baseline``) also probes a random-init encoder built from
    ``model_cfg`` with ``seed``, under ``probe_random/``. ``cache_dir`` keeps features on disk as
    ``<cache_dir>/<cache_tag>-<hash>.pt``; ``cache_tag`` must identify the weights (e.g. "probe-step300").
    ``shards`` (``vjepa.probes.shard``; every rank calls this with the same arguments): the ranks share the
    extraction of folder data; rank 0 alone extracts the rest, fits the heads and returns the metrics, the
    other ranks return {}.
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
    out = _probe_encoder(
        encoder, cfg, patch, seed, data_root, device, prefix, cache, datasets, scored, shards
    )
    if cfg.get("baseline", False) if baseline is None else baseline:
        rand = random_encoder(model_cfg, seed, device)
        rcache = FeatureCache(cache_dir, f"random-seed{seed}")
        out.update(
            _probe_encoder(
                rand, cfg, patch, seed, data_root, device, "probe_random", rcache, datasets, rscored, shards
            )
        )
        for (name, k), sc in scored.items():
            task = cfg["tasks"][name]
            replicates = int(task.get("bootstrap", cfg.get("bootstrap", 0)))
            if (name, k) in rscored and replicates > 1:
                w = resample(name, sc.samples, replicates)
                out[f"{prefix}/{name}/{k}/gap_se"] = paired_standard_error(sc, rscored[(name, k)], w)
    return out if shards.is_main else {}
