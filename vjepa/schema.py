"""The configuration schema: every key's default, allowed values, meaning and identity, written once.

``KEYS`` is a table of ``Key`` entries (dotted key, default, allowed values, one-line meaning, properties).
The YAML files under ``vjepa/conf`` stay the composition source (groups, presets, recipes); this table is
the one place that says what a key may hold, what it means where a config lacks it, and how it bears on a
run's identity:

- ``free``: ``None`` (the key names the run: a resumed run may not change it), ``"resume"`` (a resumed run
  may change it, though it changes what the run measures or logs: probes, log_every) or ``"run"`` (where and
  how fast it runs: the same experiment, though on CPU the thread count and ``compile`` change the float
  rounding, so ``analysis.numerics`` keys runs by their thread count). Sub-keys of a free key are free alike.
- ``added``: the key was added after runs existed without it; the value given (``AS_DEFAULT``: its default)
  reproduces what the code did before, so a config lacking it is the same experiment as one setting it.
- ``sweep``: a sweep's own option (``sweeps/conf``), removed before the engine sees the config.
- ``axis``: whether a sweep may vary it as an ablation axis (analysis's ``NOT_AXES``).

Derived from it: ``RESUME_FREE_KEYS``, ``RUN_FREE_KEYS``, ``ADDED_KEYS`` (re-exported by
``vjepa.run_identity``), ``SWEEP_KEYS``, ``NOT_AXES``, the per-key checks of ``vjepa.config_check``
(``problems``) and the defaults the engine reads (``value`` / ``leaf``). ``hydra.job.config.override_dirname
.exclude_keys`` in ``conf/train.yaml`` is a copy of ``RESUME_FREE_KEYS`` that tests/test_config.py compares.

This module imports nothing from the engine (sweeps and analysis import it through run_identity); choices
held by a registry elsewhere (data sources) are named as ``"module:ATTRIBUTE"`` and read when checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

REQUIRED = object()  # default of a key every composed config sets (the YAML groups do): no default
AS_DEFAULT = object()  # ``added=AS_DEFAULT``: the value that reproduces the old behaviour is the default
_NOT_ADDED = object()
_ABSENT = object()

Check = Callable[[str, object], "str | None"]  # (key as named in messages, value) -> problem or None


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# ---- allowed values: each a Check, with the message naming the key, the value and what is allowed --------


def choice(*values: object, ref: str | None = None) -> Check:
    """One of ``values``, or of the keys of the registry ``ref`` ("module:ATTRIBUTE", sorted)."""

    def check(key, v):
        allowed = (
            sorted(getattr(importlib.import_module(ref.split(":")[0]), ref.split(":")[1])) if ref else values
        )
        return None if v in allowed else f"{key}={v!r} is not one of: {', '.join(map(str, allowed))}"

    check.choices = values
    return check


BOOL = choice(False, True)
# torch.compile's modes besides its default (compile=true): CUDA graphs, autotuned kernels, or both
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def integer(minimum: int, note: str = "", null: bool = False) -> Check:
    """An integer >= ``minimum`` (not a bool); ``null`` allows None."""

    def check(key, v):
        if (v is None and null) or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum):
            return None
        return f"{key}={v!r} must be an integer >= {minimum}{f' {note}' if note else ''}{', or null' if null else ''}"

    return check


def number(bounds: str, note: str = "", null: bool = False, lo=None, hi=None) -> Check:
    """A number (not a bool) within ``bounds``: "> lo", ">= lo", "in (lo, hi)", "in [lo, hi]" (written as
    in the message); ``null`` allows None."""

    def inside(v) -> bool:
        if bounds.startswith(">"):
            return v > lo if bounds.startswith("> ") else v >= lo
        return (v > lo if bounds[3] == "(" else v >= lo) and (v < hi if bounds[-1] == ")" else v <= hi)

    def check(key, v):
        if (v is None and null) or (_num(v) and inside(v)):
            return None
        tail = (", or null" if null else "") + (f" {note}" if note else "")
        return f"{key}={v!r} must be a number {bounds}{tail}"

    return check


def pair(lo=0.0, hi=1.0, lo_open=True, hi_open=False) -> Check:
    """A pair [low, high], low <= high, within the interval from ``lo`` to ``hi`` (open or closed)."""

    def check(key, v):
        if not (isinstance(v, (list, tuple)) or hasattr(v, "__len__")) or len(v) != 2:
            return f"{key}={v!r} must be a pair [low, high]"
        a, b = v
        ok = _num(a) and _num(b) and a <= b
        ok = ok and (a > lo if lo_open else a >= lo) and (b < hi if hi_open else b <= hi)
        if ok:
            return None
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        return f"{key}={list(v)!r} must be a pair low <= high within {left}{lo}, {hi}{right}"

    return check


def settings_list(key, v):
    if v is None or (hasattr(v, "__len__") and not isinstance(v, str) and len(v)):
        return None
    return f"{key}={v!r} must be null or a non-empty list of mask settings"


@dataclass(frozen=True)
class Key:
    key: str  # dotted, from the root of the training config
    default: object  # its value where a config lacks it (REQUIRED: every composed config sets it)
    allowed: Check | None  # None: anything (or checked only across keys, in vjepa.config_check)
    meaning: str
    free: str | None = None  # None: names the run | "resume": free on resume | "run": free for run identity
    added: object = _NOT_ADDED  # added after runs without it existed: the value that reproduces them
    sweep: bool = False  # a sweep's own key (sweeps/conf), not the engine's
    axis: bool = True  # may be an ablation axis
    each_setting: bool = False  # a mask setting's key, checked per entry of mask.settings / image_settings
    when: Callable | None = None  # checked only where when(cfg) holds (e.g. the data a mix uses)


def _uses(modality: str) -> Callable:
    return lambda cfg: value(cfg, "data.mix") in (modality, "joint")


_R = REQUIRED
# fmt: off
KEYS: tuple[Key, ...] = (
    # ---- the run --------------------------------------------------------------------------------------
    Key("seed", _R, integer(0), "seed of the model init, data and masks", axis=False),
    Key("steps", _R, integer(1), "optimizer steps of the run"),
    Key("batch_size", _R, integer(1), "samples per step, over all processes (images + clips)"),
    Key("run_dir", _R, None, "where the run's outputs go (default: runs/<overrides>)", free="run"),
    Key("device", "auto", choice("auto", "cpu", "cuda"), "where it trains", free="run"),
    Key("precision", "auto", choice("auto", "fp32", "bf16"), "auto: bf16 autocast on CUDA, fp32 on CPU"),
    Key(
        "threads",
        "auto",
        None,
        "torch intra-op threads (auto: the CPUs this process may use; on CPU the count changes float rounding)",
        free="run",
    ),
    Key("progress", "auto", None, "tqdm bar (auto: when attached to a terminal)", free="run"),
    Key(
        "tensorboard",
        False,
        choice(True, False),
        "also write every metrics line and the final metrics as TensorBoard scalars (<run_dir>/tensorboard/)",
        free="run",
        added=AS_DEFAULT,
    ),
    Key(
        "compile",
        False,
        choice(False, True, *COMPILE_MODES),
        "torch.compile every block: true (inductor's default mode) or one of torch.compile's modes; other "
        "rounding than eager (float tolerance)",
        free="run",
    ),
    Key("activation_checkpointing", False, None, "recompute block activations in backward", free="run"),
    Key("log_every", _R, integer(1), "steps between log records", free="resume"),
    Key("ckpt_every", _R, integer(1), "steps between checkpoints"),
    Key("diagnostics", None, None, "label-free collapse checks at every log step", free="resume"),
    Key("diagnostics.batch_size", 0, integer(0, "(0 = no diagnostics)"), "held batch per modality"),
    Key("probes", None, None, "frozen-encoder probes at the end of the run (vjepa.probes)", free="resume"),
    # ---- model and predictor --------------------------------------------------------------------------
    Key("model.name", _R, None, "the model size's name (tiny, small, ..., giant)"),
    Key("model.embed_dim", _R, integer(1), "encoder width D"),
    Key("model.depth", _R, integer(1), "encoder blocks"),
    Key("model.num_heads", _R, integer(1), "encoder attention heads"),
    Key("model.mlp_ratio", _R, None, "encoder MLP width / D"),
    Key("model.patch_size", _R, integer(1), "patch side in pixels"),
    Key("model.tubelet_size", _R, integer(1), "frames per video token"),
    Key("model.in_chans", 3, None, "input channels"),
    Key("model.tokenizer", _R, choice("separate", "shared3d"), "separate 2-D/3-D patches | shared3d tubelets"),
    Key("model.modality_embed", False, None, "learned image / video embedding added to tokens"),
    Key("model.pos", "sincos", choice("sincos", "rope"), "sincos (added) | rope (rotary over t, h, w)"),
    Key("model.deep_supervision", False, BOOL, "4 equally spaced levels: multi-level targets and predictor"),
    Key("model.drop_path", 0.0, None, "stochastic depth rate"),
    Key("predictor.width", _R, None, "predictor width (a positive multiple of predictor.num_heads)"),
    Key("predictor.depth", _R, integer(1), "predictor blocks"),
    Key("predictor.num_heads", _R, integer(1), "predictor attention heads"),
    Key("predictor.mlp_ratio", 4.0, None, "predictor MLP width / width"),
    # ---- masks ----------------------------------------------------------------------------------------
    Key("mask.ratio", _R, number("in (0, 1)", "(the union of the blocks)", null=True, lo=0, hi=1),
        "masked fraction, exact per sample (null: the union of the blocks)", each_setting=True),
    Key("mask.num_blocks", _R, integer(1), "blocks drawn per round", each_setting=True),
    Key("mask.spatial_scale", _R, pair(), "block area, fraction of the frame", each_setting=True),
    Key("mask.aspect_ratio", _R, pair(0.0, float("inf"), hi_open=True), "block h / w", each_setting=True),
    Key("mask.temporal_scale", _R, pair(), "block extent, fraction of the frames", each_setting=True),
    Key("mask.settings", None, settings_list, "null, or a list of settings (each its own predictor pass)"),
    Key("mask.image_settings", None, settings_list, "null (as video), or the settings for images",
        added=AS_DEFAULT),
    Key("mask.buckets", 1, integer(1), "ratio-free settings: parts of the batch cut on their own",
        added=AS_DEFAULT),
    Key("mask.bucket_by", "order", choice("order", "size"), "order: consecutive groups | size: by union size",
        added=AS_DEFAULT),
    Key("mask.cut", "random", choice("random", "raster"),
        "ratio-free cut to the batch minimum keeps: random | raster (Meta's: first tokens)", added=AS_DEFAULT),
    Key("mask.trim", "raster", choice("raster", "random_edge"),
        "a block kept in part keeps its first raster tokens | those from a random side", added=AS_DEFAULT),
    # ---- loss -----------------------------------------------------------------------------------------
    Key("loss.granularity", _R, choice("token", "block"), "targets per token | per block"),
    Key("loss.distance", _R, choice("smooth_l1", "l2", "l1"), "distance of prediction and target"),
    Key("loss.beta", 2.0, number("> 0", lo=0), "smooth_l1's beta"),
    Key("loss.target_norm", "layer", choice("layer", "none"),
        "targets: layer-normed target-encoder features (V-JEPA) | the raw features", added=AS_DEFAULT),
    Key("loss.context.weight", 0.0, number(">= 0", "(0 = no context loss)", lo=0),
        "lambda of the context loss (L = L_predict + lambda * L_ctx)"),
    Key("loss.context.image_weight", None, number(">= 0", "(= loss.context.weight)", null=True, lo=0),
        "images' lambda where it differs (null: loss.context.weight)", added=AS_DEFAULT),
    Key("loss.context.distance_weighting", True, None, "weight context tokens by 1/sqrt(distance to a target)"),
    Key("loss.context.warmup", (0, 0), None, "lambda is 0 before warmup[0], reaches weight at warmup[1]"),
    Key("loss.context.warmup_unit", "fraction", choice("fraction", "steps"), "warmup in fractions of steps | steps"),
    # ---- data -----------------------------------------------------------------------------------------
    Key("data.root", None, None, "data root of real data sets (null: ../shared/data)", free="run"),
    Key("data.mix", _R, choice("image", "video", "joint"), "what a batch holds"),
    Key("data.image_fraction", _R, None, "share of a joint batch that is images, in (0, 1)"),
    Key("data.num_workers", 0, integer(0, "(0: load in the training process)"), "DataLoader workers",
        free="run"),
    Key("data.prefetch", 2, integer(1, "(batches each worker loads ahead)"), "batches per worker ahead"),
    Key("data.image.name", _R, choice(ref="vjepa.data:IMAGE_SOURCES"), "image source", when=_uses("image")),
    Key("data.image.size", _R, integer(1), "image side in pixels", when=_uses("image")),
    Key("data.video.name", _R, choice(ref="vjepa.data:VIDEO_SOURCES"), "video source", when=_uses("video")),
    Key("data.video.size", _R, integer(1), "frame side in pixels", when=_uses("video")),
    Key("data.video.frames", 8, integer(1), "frames per clip", when=_uses("video")),
    Key("data.video.decode_short_side", None, integer(0, "(0 = native)", null=True),
        "decode frames to this short side (null: twice the size, 0: native)", when=_uses("video")),
    Key("data.video.on_error", "raise", choice("raise", "skip"), "unreadable files: raise | skip"),
    Key("data.image.max_objects", 4, None, "shapes: the most objects an image holds"),
    Key("data.image.split", "train", None, "split of a named image data set"),
    Key("data.video.split", "train", None, "split of a named video data set"),
    Key("data.image.max_skips", 16, None, "on_error=skip: unreadable files in a row before giving up"),
    Key("data.video.max_skips", 16, None, "on_error=skip: unreadable files in a row before giving up"),
    Key("data.image.on_error", "raise", choice("raise", "skip"), "unreadable files: raise | skip"),
    # ---- optimizer ------------------------------------------------------------------------------------
    Key("optim.base_lr", _R, number("> 0", lo=0), "peak lr at batch 256 (scaled linearly)"),
    Key("optim.warmup", _R, None, "lr warm-up: a fraction of steps below 1, a step count from 1 on"),
    Key("optim.final_lr_frac", _R, number("in [0, 1]", "(final lr / peak lr)", lo=0, hi=1), "final lr / peak"),
    Key("optim.weight_decay", _R, number(">= 0", lo=0), "AdamW weight decay"),
    Key("optim.betas", _R, pair(0.0, 1.0, lo_open=False, hi_open=True), "AdamW betas"),
    Key("optim.grad_clip", _R, number("> 0", null=True, lo=0), "gradient norm clip (null: none)"),
    Key("optim.ema", _R, pair(0.0, 1.0, lo_open=False), "target-encoder momentum, start -> end (cosine)"),
    # ---- the sweeps' own keys (sweeps/conf), never the engine's ---------------------------------------
    Key("sweep", None, None, "the sweep's name and axes", sweep=True, axis=False),
    Key("cluster", None, None, "where the sweep's jobs run (scheduler parameters)", sweep=True, axis=False),
    Key("dry_run", None, None, "list the runs without launching them", sweep=True, axis=False),
    Key("hpo", None, None, "the hyper-parameter search's settings", sweep=True, axis=False),
    Key("power", None, None, "the power plan's settings", sweep=True, axis=False),
)
# fmt: on
BY_KEY = {k.key: k for k in KEYS}
GROUPS_NOT_AXES = ("preset",)  # config groups (not keys) that are never an ablation axis: a directory level

# ---- derived lists -------------------------------------------------------------------------------------
RESUME_FREE_KEYS = tuple(k.key for k in KEYS if k.free in ("resume", "run"))
RUN_FREE_KEYS = tuple(k.key for k in KEYS if k.free == "run")
ADDED_KEYS = {
    k.key: (k.default if k.added is AS_DEFAULT else k.added) for k in KEYS if k.added is not _NOT_ADDED
}
SWEEP_KEYS = tuple(k.key for k in KEYS if k.sweep)
NOT_AXES = tuple(k.key for k in KEYS if not k.axis and not k.sweep) + GROUPS_NOT_AXES + SWEEP_KEYS
SETTING_KEYS = tuple(k.key.split(".", 1)[1] for k in KEYS if k.each_setting)


def choices(key: str) -> tuple:
    """The allowed values of a key with a fixed set of them (``mask.cut`` -> ("random", "raster"))."""
    return BY_KEY[key].allowed.choices


# ---- reading values -------------------------------------------------------------------------------------


def leaf(node, key: str):
    """Value of dotted ``key`` read from ``node``, the config holding its last part (the ``mask`` group for
    ``mask.cut``), or the schema's default where ``node`` (None: absent) lacks it."""
    entry = BY_KEY[key]
    last = key.rsplit(".", 1)[-1]
    if node is None or last not in node:
        if entry.default is REQUIRED:
            raise KeyError(f"{key} is missing and has no default")
        return entry.default
    return node[last]


def value(cfg, key: str):
    """Value of dotted ``key`` in the root config ``cfg``; the schema's default where a config lacks it or
    one of its parents (or a parent is null)."""
    node = cfg
    for part in key.split(".")[:-1]:
        node = node.get(part) if node is not None and hasattr(node, "get") else None
    return leaf(node if hasattr(node, "get") else None, key)


def compile_mode(cfg) -> str | None:
    """How a config compiles its blocks: None (eager), "default" (``compile=true``) or a torch.compile mode."""
    mode = value(cfg, "compile")
    return None if mode is False or mode is None else "default" if mode is True else str(mode)


def _lookup(cfg, key: str):
    try:
        return value(cfg, key)
    except KeyError:
        return _ABSENT


def problem(key: str, v, named: str | None = None) -> str | None:
    """What is wrong with value ``v`` of schema key ``key`` (named ``named`` in the message), or None."""
    check = BY_KEY[key].allowed
    return check(named or key, v) if check else None


def problems(cfg) -> list[str]:
    """Each key's own problem in config ``cfg``, from the table (keys checked per mask setting, and keys of
    sweeps, are not: ``vjepa.config_check`` checks them)."""
    out = []
    for entry in KEYS:
        if entry.allowed is None or entry.each_setting or entry.sweep:
            continue
        if entry.when is not None and not entry.when(cfg):
            continue
        v = _lookup(cfg, entry.key)
        message = f"{entry.key} is missing" if v is _ABSENT else problem(entry.key, v)
        if message:
            out.append(message)
    return out
