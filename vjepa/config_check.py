"""Validate a training configuration before any compute is spent.

``check_config(cfg)`` raises one ``ConfigError`` that lists every problem found, each naming the key, the
value given and what is allowed.
"""

from __future__ import annotations

import math

from vjepa.data import IMAGE_SOURCES, MIXES, VIDEO_SOURCES, split_batch
from vjepa.data.common import ON_ERROR
from vjepa.losses import DISTANCES, GRANULARITIES
from vjepa.masks import BUCKETING, CUTS, TRIMS, mask_settings
from vjepa.models.vit import POSITIONS, TOKENIZERS
from vjepa.probes.classify import HEADS as CLASSIFY_HEADS
from vjepa.probes.features import layer_problem
from vjepa.probes.folders import FORMATS as FOLDER_FORMATS
from vjepa.probes.folders import KIND as FOLDER_KIND
from vjepa.probes.runner import KINDS as PROBE_KINDS

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(ValueError):
    pass


def resolved_precision(precision: str, device_type: str) -> str:
    """The arithmetic (bf16 | fp32) that ``precision`` (auto | bf16 | fp32) trains in on a ``device_type``
    (cuda | cpu) device: bf16 autocast where asked for, or with auto on CUDA; fp32 otherwise."""
    return "bf16" if precision == "bf16" or (precision == "auto" and device_type == "cuda") else "fp32"


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _range(errors, key, value, lo=0.0, hi=1.0, lo_open=True, hi_open=False):
    if not (isinstance(value, (list, tuple)) or hasattr(value, "__len__")) or len(value) != 2:
        errors.append(f"{key}={value!r} must be a pair [low, high]")
        return
    a, b = value
    ok = _num(a) and _num(b) and a <= b
    ok = ok and (a > lo if lo_open else a >= lo) and (b < hi if hi_open else b <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        errors.append(f"{key}={list(value)!r} must be a pair low <= high within {left}{lo}, {hi}{right}")


def _choice(errors, key, value, allowed):
    if value not in allowed:
        errors.append(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")


def _positive_int(errors, key, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        errors.append(f"{key}={value!r} must be an integer >= {minimum}")
        return False
    return True


def warmup_steps(warmup, steps: int) -> int:
    """Steps of the learning-rate warm-up that ``optim.warmup`` names: below 1 a fraction of ``steps``
    (rounded), from 1 on a step count."""
    return round(warmup * steps) if warmup < 1 else int(warmup)


def _check_optim(e: list[str], opt, steps) -> None:
    if not _num(opt.base_lr) or opt.base_lr <= 0:
        e.append(f"optim.base_lr={opt.base_lr!r} must be a number > 0")
    _check_warmup(e, opt.warmup, steps)
    final = opt.final_lr_frac
    if not _num(final) or not 0 <= final <= 1:
        e.append(f"optim.final_lr_frac={final!r} must be a number in [0, 1] (final lr / peak lr)")
    if not _num(opt.weight_decay) or opt.weight_decay < 0:
        e.append(f"optim.weight_decay={opt.weight_decay!r} must be a number >= 0")
    _range(e, "optim.ema", opt.ema, lo=0.0, lo_open=False)
    _range(e, "optim.betas", opt.betas, lo=0.0, lo_open=False, hi_open=True)
    if opt.grad_clip is not None and (not _num(opt.grad_clip) or opt.grad_clip <= 0):
        e.append(f"optim.grad_clip={opt.grad_clip!r} must be a number > 0 or null")


def _check_warmup(e: list[str], warmup, steps) -> None:
    """A fraction of the steps below 1, a whole number of steps from 1 on; the peak lr must be reached
    before the last step."""
    if not _num(warmup) or not math.isfinite(warmup) or warmup < 0:
        e.append(f"optim.warmup={warmup!r} must be >= 0 (a fraction of steps if < 1, else a step count)")
    elif warmup >= 1 and warmup != int(warmup):
        e.append(
            f"optim.warmup={warmup!r} must be a whole number of steps when >= 1 (a fraction of steps if < 1)"
        )
    elif isinstance(steps, int) and steps > 0 and warmup_steps(warmup, steps) >= steps:
        e.append(
            f"optim.warmup={warmup!r} is {warmup_steps(warmup, steps)} warm-up steps, not fewer than "
            f"steps={steps}: the peak learning rate would never be reached"
        )


def _check_loader(e: list[str], data) -> None:
    """The DataLoader's own settings (it is built only when training starts)."""
    workers, prefetch = data.get("num_workers", 0), data.get("prefetch", 2)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        e.append(f"data.num_workers={workers!r} must be an integer >= 0 (0: load in the training process)")
    if not isinstance(prefetch, int) or isinstance(prefetch, bool) or prefetch < 1:
        e.append(f"data.prefetch={prefetch!r} must be an integer >= 1 (batches each worker loads ahead)")


def _check_diagnostics(e: list[str], diagnostics) -> None:
    size = (diagnostics or {}).get("batch_size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        e.append(f"diagnostics.batch_size={size!r} must be an integer >= 0 (0 = no diagnostics)")


def _count(e: list[str], key: str, value, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        e.append(f"{key}={value!r} must be an integer >= {least}")


def _check_probes(e: list[str], probes, depth) -> None:
    """Kinds, classification heads, encoder layers and the error settings (``bootstrap`` replicates,
    ``refits``) of the probe tasks, and for folder data (``vjepa.probes.folders``) the kind it serves and
    ``on_error``, as ``vjepa.probes`` reads them."""
    if (probes or {}).get("bootstrap") is not None:
        _count(e, "probes.bootstrap", probes.get("bootstrap"), 0)
    for name, task in ((probes or {}).get("tasks") or {}).items():
        key = f"probes.tasks.{name}"
        if not hasattr(task, "get"):
            e.append(f"{key}={task!r} must be a mapping with a kind ({', '.join(PROBE_KINDS)})")
            continue
        _choice(e, f"{key}.kind", task.get("kind"), PROBE_KINDS)
        if task.get("kind") == "classify":
            _choice(e, f"{key}.head", task.get("head"), CLASSIFY_HEADS)
        if task.get("kind") == "seg" and task.get("pixels") is not None:
            _choice(e, f"{key}.pixels", task.get("pixels"), ("uniform", "balanced"))
        data = task.get("data") or {}
        if hasattr(data, "get") and data.get("name") in FOLDER_FORMATS:
            _choice(e, f"{key}.data.on_error", data.get("on_error", "raise"), ON_ERROR)
            if task.get("pixels", "uniform") != "uniform":
                e.append(f"{key}.pixels={task.get('pixels')!r}: folder data draws train pixels uniformly")
            kinds = FOLDER_KIND
            if task.get("kind") != kinds[data.get("name")]:
                e.append(
                    f"{key}.kind={task.get('kind')!r}: {data.get('name')} data is probed by kind {kinds[data.get('name')]}"
                )
        elif task.get("kind") == "depth":
            e.append(
                f"{key}: depth probes read data.name=nyu_depth, got {data.get('name') if hasattr(data, 'get') else data!r}"
            )
        for setting, least in (("pixels_per_image", 1), ("token_grid", 1), ("time_grid", 1)):
            if task.get(setting) is not None:
                _count(e, f"{key}.{setting}", task.get(setting), least)
        for setting in ("test_clips", "test_views", "n_train", "n_val"):
            if hasattr(data, "get") and data.get("name") in FOLDER_FORMATS and data.get(setting) is not None:
                _count(e, f"{key}.data.{setting}", data.get(setting), 1)
        for setting, least in (("bootstrap", 0), ("refits", 1), ("k", 1)):
            if task.get(setting) is not None:
                _count(e, f"{key}.{setting}", task.get(setting), least)
        if task.get("temperature") is not None and not (
            _num(task.get("temperature")) and task.get("temperature") > 0
        ):
            e.append(f"{key}.temperature={task.get('temperature')!r} must be a number > 0")
        if isinstance(depth, int) and depth >= 1:
            problem = layer_problem(task.get("layers", [-1]), depth)
            if problem:
                e.append(f"{key}.{problem}")


def check_config(cfg) -> None:
    e: list[str] = []
    m, p, mask, loss, data, opt = cfg.model, cfg.predictor, cfg.mask, cfg.loss, cfg.data, cfg.optim

    _choice(e, "loss.granularity", loss.granularity, GRANULARITIES)
    _choice(e, "loss.distance", loss.distance, DISTANCES)
    if not _num(loss.get("beta", 2.0)) or loss.get("beta", 2.0) <= 0:
        e.append(f"loss.beta={loss.get('beta')!r} must be a number > 0")

    ctx = loss.get("context") or {}
    if not _num(ctx.get("weight", 0.0)) or ctx.get("weight", 0.0) < 0:
        e.append(f"loss.context.weight={ctx.get('weight')!r} must be a number >= 0 (0 = no context loss)")
    image = ctx.get("image_weight")
    if image is not None and (not _num(image) or image < 0):
        e.append(
            f"loss.context.image_weight={image!r} must be a number >= 0, or null (= loss.context.weight)"
        )
    _choice(e, "loss.context.warmup_unit", ctx.get("warmup_unit", "fraction"), ("fraction", "steps"))
    hi = 1.0 if ctx.get("warmup_unit", "fraction") == "fraction" else float("inf")
    _range(e, "loss.context.warmup", ctx.get("warmup", [0, 0]), lo=0.0, hi=hi, lo_open=False)

    settings = []
    for field, modality in (("settings", "video"), ("image_settings", "image")):
        given = mask.get(field)
        if given is not None and (not hasattr(given, "__len__") or isinstance(given, str) or not len(given)):
            e.append(f"mask.{field}={given!r} must be null or a non-empty list of mask settings")
            continue
        if field == "image_settings" and given is None:
            continue
        for i, st in enumerate(mask_settings(mask, modality)):
            key = "mask" if given is None else f"mask.{field}[{i}]"
            settings.append(st)
            if st["ratio"] is not None and (not _num(st["ratio"]) or not 0 < st["ratio"] < 1):
                e.append(
                    f"{key}.ratio={st['ratio']!r} must be a number in (0, 1) (or null for the union of the blocks)"
                )
            _positive_int(e, f"{key}.num_blocks", st["num_blocks"])
            _range(e, f"{key}.spatial_scale", st["spatial_scale"])
            _range(e, f"{key}.temporal_scale", st["temporal_scale"])
            _range(e, f"{key}.aspect_ratio", st["aspect_ratio"], lo=0.0, hi=float("inf"), hi_open=True)
    _choice(e, "mask.cut", mask.get("cut", "random"), CUTS)
    _choice(e, "mask.trim", mask.get("trim", "raster"), TRIMS)
    if mask.get("trim", "raster") != "raster" and mask.get("cut", "random") == "raster":
        e.append(
            f"mask.trim={mask.get('trim')!r} chooses what a block trimmed in part keeps; mask.cut=raster keeps "
            "every sample's first tokens in raster order instead and trims no block: drop one of the two"
        )
    ratios = sorted({str(st["ratio"]) for st in settings if st["ratio"] is not None})
    if mask.get("cut", "random") == "raster" and ratios:
        e.append(
            f"mask.cut=raster (Meta's cut of ratio-free settings to the batch minimum) needs ratio null in every "
            f"mask setting; ratio {', '.join(ratios)} is set (preset=tiny sets mask.ratio=0.6: pass "
            "mask.ratio=null with mask=vjepa2)"
        )

    buckets = mask.get("buckets", 1)
    buckets_ok = _positive_int(e, "mask.buckets", buckets)
    _choice(e, "mask.bucket_by", mask.get("bucket_by", "order"), BUCKETING)

    for key in ("embed_dim", "depth", "num_heads", "patch_size", "tubelet_size"):
        _positive_int(e, f"model.{key}", m[key])
    if _num(m.embed_dim) and _num(m.num_heads) and m.num_heads > 0 and m.embed_dim % m.num_heads:
        e.append(
            f"model.embed_dim={m.embed_dim} must be a positive multiple of model.num_heads={m.num_heads}"
        )
    if isinstance(m.embed_dim, int) and (m.embed_dim % 2 or m.embed_dim < 6):
        e.append(f"model.embed_dim={m.embed_dim} must be even and >= 6 (sincos positions over t, h, w)")
    _choice(e, "model.tokenizer", m.tokenizer, TOKENIZERS)
    _choice(e, "model.pos", m.get("pos", "sincos"), POSITIONS)
    _choice(e, "model.deep_supervision", m.get("deep_supervision", False), (False, True))
    if m.get("deep_supervision", False) and isinstance(m.depth, int) and m.depth < 4:
        e.append(f"model.depth={m.depth} must be >= 4 with model.deep_supervision=true (4 levels)")
    if m.get("pos") == "rope":
        for key, dim, heads in (("model", m.embed_dim, m.num_heads), ("predictor", p.width, p.num_heads)):
            head = dim // heads if isinstance(dim, int) and isinstance(heads, int) and heads > 0 else None
            if head is not None and (head % 2 or head < 6):
                e.append(
                    f"{key} head dim {dim}/{heads} = {head} must be even and >= 6 for model.pos=rope "
                    "(rotations over t, h and w)"
                )

    if _positive_int(e, "predictor.num_heads", p.num_heads) and (
        not isinstance(p.width, int) or p.width <= 0 or p.width % p.num_heads
    ):
        e.append(
            f"predictor.width={p.width!r} must be a positive multiple of predictor.num_heads={p.num_heads}"
        )
    elif isinstance(p.width, int) and (p.width % 2 or p.width < 6):
        e.append(f"predictor.width={p.width} must be even and >= 6 (sincos positions over t, h, w)")
    _positive_int(e, "predictor.depth", p.depth)

    _choice(e, "data.mix", data.mix, MIXES)
    if data.mix == "joint" and (not _num(data.image_fraction) or not 0 < data.image_fraction < 1):
        e.append(f"data.image_fraction={data.image_fraction!r} must be in (0, 1) when data.mix=joint")
    if _positive_int(e, "batch_size", cfg.batch_size) and data.mix in MIXES:
        if data.mix == "joint" and cfg.batch_size < 2:
            e.append(f"batch_size={cfg.batch_size} must be >= 2 when data.mix=joint (one image and one clip)")
        elif (
            buckets_ok
            and any(st["ratio"] is None for st in settings)
            and (data.mix != "joint" or (_num(data.image_fraction) and 0 < data.image_fraction < 1))
        ):
            counts = split_batch(cfg.batch_size, data.mix, data.image_fraction)
            for name, n in zip(("images", "clips"), counts):
                if 0 < n < buckets:
                    e.append(
                        f"mask.buckets={buckets} exceeds the {n} {name} per step (at most one bucket each)"
                    )
    uses_images = data.mix in ("image", "joint")
    uses_video = data.mix in ("video", "joint")
    patch = m.patch_size if isinstance(m.patch_size, int) and m.patch_size > 0 else None
    if uses_images:
        _choice(e, "data.image.name", data.image.name, sorted(IMAGE_SOURCES))
        if _positive_int(e, "data.image.size", data.image.size) and patch and data.image.size % patch:
            e.append(f"data.image.size={data.image.size} must be a multiple of model.patch_size={patch}")
        elif patch and isinstance(data.image.size, int) and (data.image.size // patch) ** 2 < 2:
            e.append(
                f"data.image.size={data.image.size} with model.patch_size={patch} gives one token; "
                "masking needs at least 2 (a larger size or a smaller patch)"
            )
    if uses_video:
        _choice(e, "data.video.name", data.video.name, sorted(VIDEO_SOURCES))
        if _positive_int(e, "data.video.size", data.video.size) and patch and data.video.size % patch:
            e.append(f"data.video.size={data.video.size} must be a multiple of model.patch_size={patch}")
        short = data.video.get("decode_short_side")
        if short is not None and (not isinstance(short, int) or isinstance(short, bool) or short < 0):
            e.append(f"data.video.decode_short_side={short!r} must be an integer >= 0 (0 = native), or null")
        elif short and isinstance(data.video.size, int) and short < data.video.size:
            e.append(
                f"data.video.decode_short_side={short} is below data.video.size={data.video.size}: every "
                "clip would be upscaled (null: twice the size, 0: native resolution)"
            )
        tp = m.tubelet_size
        if _positive_int(e, "data.video.frames", data.video.frames) and isinstance(tp, int) and tp > 0:
            if data.video.frames < tp:
                e.append(
                    f"data.video.frames={data.video.frames} is shorter than the temporal patch "
                    f"model.tubelet_size={tp}: a clip needs at least {tp} frames"
                )
            elif data.video.frames % tp:
                e.append(
                    f"data.video.frames={data.video.frames} must be a multiple of model.tubelet_size={tp}"
                )
            elif patch and isinstance(data.video.size, int) and data.video.size % patch == 0:
                if (data.video.frames // tp) * (data.video.size // patch) ** 2 < 2:
                    e.append(
                        f"data.video.size={data.video.size}, data.video.frames={data.video.frames} with "
                        f"model.patch_size={patch}, model.tubelet_size={tp} give one token; masking needs at "
                        "least 2 (a larger size, more frames or a smaller patch)"
                    )

    _positive_int(e, "steps", cfg.steps)
    _positive_int(e, "log_every", cfg.log_every)
    _positive_int(e, "ckpt_every", cfg.ckpt_every)
    _check_optim(e, opt, cfg.steps)
    _check_diagnostics(e, cfg.get("diagnostics"))
    _check_loader(e, data)
    _check_probes(e, cfg.get("probes"), m.get("depth"))
    _choice(e, "device", cfg.device, DEVICES)
    _choice(e, "precision", cfg.precision, PRECISIONS)

    if e:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(e))
    split_batch(cfg.batch_size, data.mix, data.image_fraction)
