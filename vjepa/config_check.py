"""Validate a training configuration before any compute is spent.

``check_config(cfg)`` raises one ``ConfigError`` that lists every problem found, each naming the key, the
value given and what is allowed. Each key's own check comes from the configuration schema (``vjepa.schema``:
its allowed values); the checks across keys are the small functions below.
"""

from __future__ import annotations

import math

from vjepa import schema
from vjepa.data import split_batch
from vjepa.data.common import ON_ERROR
from vjepa.masks import SETTING_KEYS, cut_problems, mask_settings
from vjepa.probes.classify import HEADS as CLASSIFY_HEADS
from vjepa.probes.features import layer_problem
from vjepa.probes.folders import FORMATS as FOLDER_FORMATS
from vjepa.probes.folders import KIND as FOLDER_KIND
from vjepa.probes.runner import KINDS as PROBE_KINDS

DEVICES = schema.choices("device")
PRECISIONS = schema.choices("precision")


class ConfigError(ValueError):
    pass


def resolved_precision(precision: str, device_type: str) -> str:
    """The arithmetic (bf16 | fp32) that ``precision`` (auto | bf16 | fp32) trains in on a ``device_type``
    (cuda | cpu) device: bf16 autocast where asked for, or with auto on CUDA; fp32 otherwise."""
    return "bf16" if precision == "bf16" or (precision == "auto" and device_type == "cuda") else "fp32"


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _count_ok(x) -> bool:
    """A positive integer (a count the schema has checked; cross-key checks skip values it refused)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _choice(errors, key, value, allowed):
    if value not in allowed:
        errors.append(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")


def warmup_steps(warmup, steps: int) -> int:
    """Steps of the learning-rate warm-up that ``optim.warmup`` names: below 1 a fraction of ``steps``
    (rounded), from 1 on a step count."""
    return round(warmup * steps) if warmup < 1 else int(warmup)


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


def _count(e: list[str], key: str, value, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        e.append(f"{key}={value!r} must be an integer >= {least}")


def _check_probes(e: list[str], probes, depth) -> None:
    """Kinds, classification heads, encoder layers and the error settings (``bootstrap`` replicates,
    ``refits``) of the probe tasks, and for folder data (``vjepa.probes.folders``) the kind it serves and
    ``on_error``, as ``vjepa.probes`` reads them."""
    if (probes or {}).get("bootstrap") is not None:
        _count(e, "probes.bootstrap", probes.get("bootstrap"), 0)
    if (probes or {}).get("untrained_modality", "skip") not in ("skip", "probe"):
        e.append(f"probes.untrained_modality must be skip or probe, got {probes.get('untrained_modality')!r}")
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
        for setting in ("train_clips", "test_clips", "test_views", "n_train", "n_val"):
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


def _check_loss(e: list[str], cfg) -> None:
    """The context loss's warm-up: fractions of the steps within [0, 1], or steps."""
    fraction = schema.value(cfg, "loss.context.warmup_unit") == "fraction"
    check = schema.pair(lo=0.0, hi=1.0 if fraction else float("inf"), lo_open=False)
    problem = check("loss.context.warmup", schema.value(cfg, "loss.context.warmup"))
    if problem:
        e.append(problem)


def _check_masks(e: list[str], cfg) -> list:
    """Each mask setting's keys (schema checks, named by setting), and the cut and trim across settings.
    Returns the settings checked."""
    mask, settings = cfg.mask, []
    for field, modality in (("settings", "video"), ("image_settings", "image")):
        given = mask.get(field)
        if schema.problem(f"mask.{field}", given) or (field == "image_settings" and given is None):
            continue
        for i, st in enumerate(mask_settings(mask, modality)):
            key = "mask" if given is None else f"mask.{field}[{i}]"
            settings.append(st)
            for name in SETTING_KEYS:
                problem = schema.problem(f"mask.{name}", st[name], f"{key}.{name}")
                if problem:
                    e.append(problem)
    hint = " (preset=tiny sets mask.ratio=0.6: pass mask.ratio=null with mask=vjepa2)"
    cut, trim = schema.value(cfg, "mask.cut"), schema.value(cfg, "mask.trim")
    e += cut_problems(cut, trim, [st["ratio"] for st in settings], "mask.", hint)
    return settings


def _check_model(e: list[str], m, p) -> None:
    """Widths against heads, sincos / rope head dims, and a block per deep-supervision level."""
    if _num(m.embed_dim) and _num(m.num_heads) and m.num_heads > 0 and m.embed_dim % m.num_heads:
        e.append(
            f"model.embed_dim={m.embed_dim} must be a positive multiple of model.num_heads={m.num_heads}"
        )
    if isinstance(m.embed_dim, int) and (m.embed_dim % 2 or m.embed_dim < 6):
        e.append(f"model.embed_dim={m.embed_dim} must be even and >= 6 (sincos positions over t, h, w)")
    if schema.leaf(m, "model.deep_supervision") and isinstance(m.depth, int) and m.depth < 4:
        e.append(f"model.depth={m.depth} must be >= 4 with model.deep_supervision=true (4 levels)")
    if schema.leaf(m, "model.pos") == "rope":
        for key, dim, heads in (("model", m.embed_dim, m.num_heads), ("predictor", p.width, p.num_heads)):
            head = dim // heads if isinstance(dim, int) and isinstance(heads, int) and heads > 0 else None
            if head is not None and (head % 2 or head < 6):
                e.append(
                    f"{key} head dim {dim}/{heads} = {head} must be even and >= 6 for model.pos=rope "
                    "(rotations over t, h and w)"
                )
    if _count_ok(p.num_heads) and (not isinstance(p.width, int) or p.width <= 0 or p.width % p.num_heads):
        e.append(
            f"predictor.width={p.width!r} must be a positive multiple of predictor.num_heads={p.num_heads}"
        )
    elif isinstance(p.width, int) and (p.width % 2 or p.width < 6):
        e.append(f"predictor.width={p.width} must be even and >= 6 (sincos positions over t, h, w)")


def _check_batch(e: list[str], cfg, settings) -> None:
    """The joint mix's image fraction, and the batch against it and the mask buckets."""
    data, batch, buckets = cfg.data, cfg.batch_size, schema.value(cfg, "mask.buckets")
    fraction_ok = _num(data.image_fraction) and 0 < data.image_fraction < 1
    if data.mix == "joint" and not fraction_ok:
        e.append(f"data.image_fraction={data.image_fraction!r} must be in (0, 1) when data.mix=joint")
    if not _count_ok(batch) or data.mix not in schema.choices("data.mix"):
        return
    if data.mix == "joint" and batch < 2:
        e.append(f"batch_size={batch} must be >= 2 when data.mix=joint (one image and one clip)")
    elif (
        _count_ok(buckets)
        and any(st["ratio"] is None for st in settings)
        and (data.mix != "joint" or fraction_ok)
    ):
        for name, n in zip(("images", "clips"), split_batch(batch, data.mix, data.image_fraction)):
            if 0 < n < buckets:
                e.append(f"mask.buckets={buckets} exceeds the {n} {name} per step (at most one bucket each)")


def _check_image_size(e: list[str], cfg, patch) -> None:
    size = cfg.data.image.size
    if _count_ok(size) and patch and size % patch:
        e.append(f"data.image.size={size} must be a multiple of model.patch_size={patch}")
    elif patch and isinstance(size, int) and (size // patch) ** 2 < 2:
        e.append(
            f"data.image.size={size} with model.patch_size={patch} gives one token; "
            "masking needs at least 2 (a larger size or a smaller patch)"
        )


def _check_clip_size(e: list[str], cfg, patch) -> None:
    size, tp = cfg.data.video.size, cfg.model.tubelet_size
    frames, short = schema.value(cfg, "data.video.frames"), schema.value(cfg, "data.video.decode_short_side")
    if _count_ok(size) and patch and size % patch:
        e.append(f"data.video.size={size} must be a multiple of model.patch_size={patch}")
    if (
        not schema.problem("data.video.decode_short_side", short)
        and short
        and isinstance(size, int)
        and short < size
    ):
        e.append(
            f"data.video.decode_short_side={short} is below data.video.size={size}: every "
            "clip would be upscaled (null: twice the size, 0: native resolution)"
        )
    if not (_count_ok(frames) and isinstance(tp, int) and tp > 0):
        return
    if frames < tp:
        e.append(
            f"data.video.frames={frames} is shorter than the temporal patch "
            f"model.tubelet_size={tp}: a clip needs at least {tp} frames"
        )
    elif frames % tp:
        e.append(f"data.video.frames={frames} must be a multiple of model.tubelet_size={tp}")
    elif patch and isinstance(size, int) and size % patch == 0 and (frames // tp) * (size // patch) ** 2 < 2:
        e.append(
            f"data.video.size={size}, data.video.frames={frames} with "
            f"model.patch_size={patch}, model.tubelet_size={tp} give one token; masking needs at "
            "least 2 (a larger size, more frames or a smaller patch)"
        )


def check_config(cfg) -> None:
    """Raise one ``ConfigError`` listing every problem of training config ``cfg``: each key's own (from the
    schema), then those across keys."""
    e = schema.problems(cfg)
    _check_loss(e, cfg)
    settings = _check_masks(e, cfg)
    _check_model(e, cfg.model, cfg.predictor)
    _check_batch(e, cfg, settings)
    patch = cfg.model.patch_size if _count_ok(cfg.model.patch_size) else None
    if cfg.data.mix in ("image", "joint"):
        _check_image_size(e, cfg, patch)
    if cfg.data.mix in ("video", "joint"):
        _check_clip_size(e, cfg, patch)
    _check_warmup(e, cfg.optim.warmup, cfg.steps)
    _check_probes(e, cfg.get("probes"), cfg.model.get("depth"))
    if e:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(e))
    split_batch(cfg.batch_size, cfg.data.mix, cfg.data.image_fraction)
