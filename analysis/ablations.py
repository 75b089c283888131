"""Which sweep is which paper ablation, which variant is which paper row, which metric stands for which.

``ABLATIONS[sweep]`` names the paper table a sweep reproduces and maps a run (a row of the results table)
to the paper row it corresponds to; it reads the run's resolved config (``config/...`` columns), not its
directory name. A sweep without an entry still gets a table, without paper columns.

``COMPARE[paper metric]`` lists the toolkit metrics for a paper metric: first the paper's own benchmark read
from the user's folders (``probes=paper``: ``PAPER_BENCHMARKS``, the same metric, no stand-in), then the
metrics that stand in for it at small scale. The stand-in pairing is a judgement, stated here once: box AP of the frozen-feature detector on synthetic shapes for COCO
APbox; linear segmentation (CamVid, synthetic shapes) for ADE20K linear mIoU; appearance top-1 of the
attentive video probes (Moving-MNIST digit, moving-shapes shape) for K400; CIFAR-10 top-1 for IN1K; motion
top-1 of the attentive video probes (direction) for SSv2. Diving-48 (Table 12 only, last layer beside 4
layers) takes the linear Moving-MNIST direction probe in both columns, so the two differ only in the layers
read: ``probes=levels`` (``vjepa/conf/probes/levels.yaml``, the deep-supervision sweep's) reads the 4 levels
with linear heads only, and ``mnist_video_linear`` is its last-layer twin (same head, data and budget). NYU
RMSE has no stand-in: only the NYU depth probe of ``probes=paper`` reads it (its 4-layer twin:
``probes=paper_levels``, with ADE20K's). Metric names:
``vjepa/probes/__init__.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.paper import TABLES
from vjepa.probes.modality import untrained_modality  # noqa: F401 (re-exported: the engine decides it)

# The paper's benchmarks as ``probes=paper`` reads them from the user's folders: the paper's own metric
# (the toolkit's scores are fractions where the paper prints percentages; RMSE is in metres in both).
PAPER_BENCHMARKS = {
    "probe/coco_det/ap": "coco_apbox",
    "probe/ade20k_linear/miou": "ade20k_miou",
    "probe/k400_attentive/top1": "k400_top1",
    "probe/imagenet_attentive/top1": "in1k_top1",
    "probe/ssv2_attentive/top1": "ssv2_top1",
    "probe/diving48_attentive/top1": "diving48_top1",
    "probe/nyu_linear/rmse": "nyu_rmse",
    # Table 12's "4 layers" columns (probes=paper_levels)
    "probe/ade20k_linear_levels/miou": "ade20k_miou_4layers",
    "probe/nyu_linear_levels/rmse": "nyu_rmse_4layers",
}
_OWN = {paper: (ours,) for ours, paper in PAPER_BENCHMARKS.items()}

COMPARE = {
    "coco_apbox": (*_OWN["coco_apbox"], "probe/shapes_det/ap"),
    "ade20k_miou": (*_OWN["ade20k_miou"], "probe/camvid_linear/miou", "probe/shapes_seg/miou"),
    "k400_top1": (*_OWN["k400_top1"], "probe/mnist_video/digit_top1", "probe/shapes_video/shape_top1"),
    "in1k_top1": (*_OWN["in1k_top1"], "probe/cifar10_attentive/top1", "probe/cifar10_linear/top1"),
    "ssv2_top1": (
        *_OWN["ssv2_top1"],
        "probe/mnist_video/direction_top1",
        "probe/shapes_video/direction_top1",
    ),
    # Table 12's last layer: linear like its "4 layers" column below (no attentive probe reads the levels)
    "diving48_top1": (*_OWN["diving48_top1"], "probe/mnist_video_linear/direction_top1"),
    "nyu_rmse": _OWN["nyu_rmse"],
    # Table 12's "4 layers" columns: the probes reading the 4 levels (probes=levels)
    # (probes=levels; at scale probes=paper_levels reads ADE20K and NYU depth themselves)
    "ade20k_miou_4layers": (
        *_OWN["ade20k_miou_4layers"],
        "probe/camvid_linear_levels/miou",
        "probe/shapes_seg_levels/miou",
    ),
    "diving48_top1_4layers": ("probe/mnist_video_linear_levels/direction_top1",),
    "nyu_rmse_4layers": _OWN["nyu_rmse_4layers"],
}


# The toolkit's probe tasks that read clips (and their variants: _linear, _levels): how runs probed before
# the probes recorded ``probe/<task>/frames`` are read.
VIDEO_PROBES = ("mnist_video", "shapes_video")
PROBE_METADATA = ("time_s", "frames")  # per-task keys that describe the task rather than score it


def probe_modality(metric: str, row: dict | None = None) -> str | None:
    """The modality, "image" or "video", a probe score reads (``probe/<task>/...``, ``probe_online/...``):
    from the run's ``<prefix>/<task>/frames`` in ``row`` (0 for images) where the probes recorded it, else
    from the toolkit's task names. None for anything else, the per-task metadata included."""
    parts = metric.split("/")
    if len(parts) < 3 or not parts[0].startswith("probe") or parts[-1] in PROBE_METADATA:
        return None
    frames = (row or {}).get(f"{parts[0]}/{parts[1]}/frames")
    if frames is not None and not math.isnan(float(frames)):
        return "video" if float(frames) > 0 else "image"
    return "video" if parts[1].startswith(VIDEO_PROBES) else "image"


def lower_is_better(metric: str) -> bool:
    """Direction of a toolkit metric: losses and errors are lower-better, probe scores higher-better."""
    return metric.rsplit("/", 1)[-1].startswith(("loss", "rmse", "error"))


def _cfg(row, key):
    return row.get(f"config/{key}")


def _true(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Ablation:
    """``paper_row(row)``: the paper row of a run (None: no counterpart). ``order``: how variants sort
    (``"numeric"``: by value where all variants are numbers, else by text; or a tuple of the axis values in
    display order, unknown values after them). ``grid_rows``: the paper rows the sweep's own grid trains
    (its grid's variants in order, the same order as ``order``; tests/test_sweeps.py checks both), so a row
    without runs yet reads as not run yet rather than not run here, and the variant table lists it."""

    sweep: str
    table: str | None
    paper_row: Callable[[dict], str | None] = field(default=lambda row: None)
    order: str | tuple = "numeric"
    xlabel: str = ""
    log_x: bool = False
    notes: str = ""
    grid_rows: tuple[str, ...] = ()

    @property
    def grid_variants(self) -> dict[str, str]:
        """Each variant of the sweep's own grid (``order``) to its paper row (``grid_rows``), in grid order."""
        return dict(zip(self.order, self.grid_rows, strict=True)) if self.grid_rows else {}


def _loss_row(row):
    return {"block": "Block-level (V-JEPA 2 style)", "token": "Dense token-level (V-JEPA 2.1)"}.get(
        _cfg(row, "loss.granularity")
    )


def _mix_row(row):
    return {"image": "Image-only", "video": "Video-only", "joint": "Joint image+video"}.get(
        _cfg(row, "data.mix")
    )


def _mask_row(row):
    ratio = _num(_cfg(row, "mask.ratio"))
    label = f"{round(ratio * 100)}%" if math.isfinite(ratio) else None
    return label if label in dict(TABLES["design_mask_ratio"].rows) else None


def _width_row(row):
    """Paper width at the nearest width / D (log scale): the toolkit's widths are fractions of its own D."""
    frac = _num(_cfg(row, "predictor.width")) / _num(_cfg(row, "model.embed_dim"))
    if not math.isfinite(frac) or frac <= 0:
        return None
    labels = [label for label, _ in TABLES["design_predictor_width"].rows]
    return min(labels, key=lambda label: abs(math.log(frac) - math.log(int(label) / 1280)))


def _context_row(row):
    weight = _num(_cfg(row, "loss.context.weight"))
    image_weight = _num(_cfg(row, "loss.context.image_weight"))  # NaN where unset (null, or an older run)
    if _cfg(row, "data.mix") == "image" and math.isfinite(image_weight):
        weight = image_weight
    if not math.isfinite(weight):
        return None
    if weight == 0:
        return "lambda = 0"
    warmup = json.loads(_cfg(row, "loss.context.warmup") or "[0, 0]")
    label = f"lambda = {weight:g}"
    if _true(_cfg(row, "loss.context.distance_weighting")):
        label += " distance-weighted"
    label += " + warm-up" if any(float(w) > 0 for w in warmup) else " constant"
    return label if label in dict(TABLES["published_table2"].rows) else None


def _recipe_row(row):
    """The cumulative step of Table 1 whose ingredients the run has (sweeps/conf/recipe_step/): the small-scale
    stand-in for VisionMix is adding images to the clips (data.mix=joint); ViT-G and cool-down have none."""
    ctx = _num(_cfg(row, "loss.context.weight")) > 0
    deep = _true(_cfg(row, "model.deep_supervision"))
    joint = _cfg(row, "data.mix") == "joint"
    multimodal = _true(_cfg(row, "model.modality_embed")) and _cfg(row, "model.tokenizer") == "separate"
    steps = {
        (False, False, False, False): "V-JEPA 2",
        (True, False, False, False): "+ context loss",
        (True, True, False, False): "+ deep self-supervision",
        (True, True, True, False): "+ VisionMix",
        (True, True, True, True): "+ multi-modal tokenizer",
    }
    return steps.get((ctx, deep, joint, multimodal))


ABLATIONS = {
    "loss_granularity": Ablation(
        "loss_granularity", "design_loss", _loss_row, ("block", "token"), "prediction loss"
    ),
    "data_mix": Ablation(
        "data_mix", "design_data_mix", _mix_row, ("image", "video", "joint"), "training data"
    ),
    "predictor_width": Ablation(
        "predictor_width",
        "design_predictor_width",
        _width_row,
        "numeric",
        "predictor width D_p (channels)",
        log_x=True,
        notes="paper row = the paper's width at the nearest D_p / D (log scale)",
    ),
    "mask_ratio": Ablation("mask_ratio", "design_mask_ratio", _mask_row, "numeric", "mask ratio"),
    # the paper's row order (Table 2: lambda, then the warm-up variants; Table 1: cumulative steps)
    "context_loss": Ablation(
        "context_loss",
        "published_table2",
        _context_row,
        (
            "lambda0",
            "l005_const",
            "l02_const",
            "l05_const",
            "l1_const",
            "l02_warmup",
            "l05_warmup",
            "l05_dw_warmup",
        ),
        "context loss",
        grid_rows=(
            "lambda = 0",
            "lambda = 0.05 constant",
            "lambda = 0.2 constant",
            "lambda = 0.5 constant",
            "lambda = 1 constant",
            "lambda = 0.2 + warm-up",
            "lambda = 0.5 + warm-up",
            "lambda = 0.5 distance-weighted + warm-up",
        ),
    ),
    "recipe": Ablation(
        "recipe",
        "published_table1",
        _recipe_row,
        ("vjepa2", "context", "deep", "mix", "tokenizer"),
        "recipe step",
        grid_rows=(
            "V-JEPA 2",
            "+ context loss",
            "+ deep self-supervision",
            "+ VisionMix",
            "+ multi-modal tokenizer",
        ),
    ),
    "deep_supervision": Ablation(
        "deep_supervision",
        "published_table12",
        lambda row: "with" if _true(_cfg(row, "model.deep_supervision")) else "without",
        ("False", "True"),
        "deep self-supervision",
        grid_rows=("without", "with"),
    ),
    # no paper table: the paper does not ablate the cut; Meta's collator keeps the first raster-order tokens
    "mask_cut": Ablation(
        "mask_cut", None, order=("random", "raster"), xlabel="mask cut (ratio-free settings)"
    ),
    # no paper table: which tokens of the block trimmed to meet the ratio survive (vjepa/masks.py)
    "mask_trim": Ablation("mask_trim", None, order=("raster", "random_edge"), xlabel="mask trim"),
}


def ablation_for(sweep: str) -> Ablation:
    return ABLATIONS.get(sweep) or Ablation(sweep, None)


def sort_variants(variants, ablation: Ablation) -> list[str]:
    """Variants in display order: the ablation's own order, else numeric where all are numbers, else text."""
    variants = list(dict.fromkeys(variants))
    if isinstance(ablation.order, tuple):
        known = [v for v in ablation.order if v in variants]
        return known + sorted(v for v in variants if v not in known)
    if all(math.isfinite(_num(v)) for v in variants):
        return sorted(variants, key=_num)
    return sorted(variants, key=str)
