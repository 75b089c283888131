"""The paper's reported numbers as data.

Sources (copies in ``../shared/paper/``): the design document's ablation tables (``vjepa21-seed.txt``
section 9.3; ViT-H, APbox / mIoU / top-1 in %) and the published paper's ablations (``vjepa21-published.md``:
Tables 1, 2 and 12; ViT-L primary phase). A table is an ordered list of rows ``(label, {metric: value})``;
``METRICS`` says what each metric is and whether higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    label: str
    higher_is_better: bool
    unit: str


@dataclass(frozen=True)
class Table:
    source: str
    title: str
    rows: tuple[tuple[str, dict[str, float]], ...]
    note: str = ""
    # What the paper says an ingredient does: (name, from row, to row), read by ``analysis.directions``.
    directions: tuple[tuple[str, str, str], ...] = ()

    @property
    def metrics(self) -> list[str]:
        """Metric keys in order of first appearance."""
        return list(dict.fromkeys(m for _, values in self.rows for m in values))

    def value(self, row: str, metric: str) -> float | None:
        return dict(self.rows).get(row, {}).get(metric)


METRICS = {
    "coco_apbox": Metric("COCO APbox", True, "AP %"),
    "ade20k_miou": Metric("ADE20K mIoU (linear)", True, "mIoU %"),
    "ade20k_miou_4layers": Metric("ADE20K mIoU (linear, 4 layers)", True, "mIoU %"),
    "k400_top1": Metric("K400 top-1", True, "%"),
    "in1k_top1": Metric("IN1K top-1", True, "%"),
    "ssv2_top1": Metric("SSv2 top-1", True, "%"),
    "nyu_rmse": Metric("NYU depth RMSE", False, "m"),
    "nyu_rmse_4layers": Metric("NYU depth RMSE (4 layers)", False, "m"),
    "diving48_top1": Metric("Diving-48 top-1", True, "%"),
    "diving48_top1_4layers": Metric("Diving-48 top-1 (4 layers)", True, "%"),
}

DESIGN = "design document, section 9.3"
PUBLISHED = "V-JEPA 2.1 (Mur-Labadia et al., 2026)"


def _table(
    source: str, title: str, metrics: tuple[str, ...], rows: list[tuple], note: str = "", directions=()
) -> Table:
    """A table from its columns and rows ``(label, value per metric)``, as printed in the paper.
    ``directions="cumulative"``: each row's ingredient added to the row above (a direction per row)."""
    rows = tuple((label, dict(zip(metrics, values, strict=True))) for label, *values in rows)
    if directions == "cumulative":
        directions = tuple((b, a, b) for (a, _), (b, _) in zip(rows, rows[1:]))
    return Table(source, title, rows, note, tuple(directions))


# fmt: off
TABLES = {
    "design_loss": _table(DESIGN, "Dense vs. block-level loss (ViT-H)",
                          ("coco_apbox", "ade20k_miou", "k400_top1"), [
        ("Block-level (V-JEPA 2 style)",   54.8, 46.2, 85.8),
        ("Dense token-level (V-JEPA 2.1)", 57.9, 52.4, 85.6),
    ], directions=[("dense token-level loss",
                    "Block-level (V-JEPA 2 style)", "Dense token-level (V-JEPA 2.1)")]),
    "design_data_mix": _table(DESIGN, "Image-only vs. video-only vs. joint training, dense loss (ViT-H)",
                              ("coco_apbox", "k400_top1"), [
        ("Image-only",        57.2, 83.4),
        ("Video-only",        55.1, 85.4),
        ("Joint image+video", 57.9, 85.6),
    ], directions=[("joint instead of image-only", "Image-only", "Joint image+video"),
                   ("joint instead of video-only", "Video-only", "Joint image+video")]),
    "design_predictor_width": _table(DESIGN, "Predictor width D_p (ViT-H, D = 1280)",
                                     ("coco_apbox", "ade20k_miou"), [
        ("192",  56.8, 51.0),
        ("384",  57.9, 52.4),
        ("768",  56.5, 50.2),
        ("1280", 55.3, 48.1),
    ], note="1280 = D: no bottleneck"),
    "design_mask_ratio": _table(DESIGN, "Mask ratio (ViT-H)", ("coco_apbox", "k400_top1"), [
        ("60%", 56.2, 84.8),
        ("75%", 57.4, 85.3),
        ("80%", 57.9, 85.6),
        ("90%", 57.5, 85.1),
    ]),
    "published_table1": _table(f"{PUBLISHED}, Table 1", "Recipe, cumulative steps (ViT-L, primary phase)",
                               ("in1k_top1", "ssv2_top1", "nyu_rmse", "ade20k_miou"), [
        ("V-JEPA 2",                82.2, 72.8, 0.682, 22.2),
        ("+ context loss",          72.6, 62.5, 0.474, 33.8),
        ("+ deep self-supervision", 80.8, 72.1, 0.463, 38.6),
        ("+ VisionMix",             81.6, 72.6, 0.418, 40.8),
        ("+ multi-modal tokenizer", 81.6, 72.6, 0.415, 41.4),
        ("+ ViT-G",                 84.8, 76.1, 0.365, 47.1),
        ("+ cool-down",             85.5, 77.7, 0.307, 47.9),
    ], note="each row adds its ingredient to the row above", directions="cumulative"),
    "published_table2": _table(f"{PUBLISHED}, Table 2", "Context-loss weighting (ViT-L)",
                               ("ade20k_miou", "ssv2_top1"), [
        ("lambda = 0",                               22.2, 72.8),
        ("lambda = 0.05 constant",                   26.4, 71.0),
        ("lambda = 0.2 constant",                    29.6, 62.5),
        ("lambda = 0.5 constant",                    27.5, 53.8),
        ("lambda = 1 constant",                      24.6, 51.1),
        ("lambda = 0.2 + warm-up",                   30.5, 60.5),
        ("lambda = 0.5 + warm-up",                   32.2, 61.5),
        ("lambda = 0.5 distance-weighted + warm-up", 33.8, 62.5),
    ], directions=[
        ("context loss, as published", "lambda = 0", "lambda = 0.5 distance-weighted + warm-up"),
        ("constant lambda 0.2 -> 1", "lambda = 0.2 constant", "lambda = 1 constant"),
        ("warm-up at lambda 0.2", "lambda = 0.2 constant", "lambda = 0.2 + warm-up"),
        ("warm-up at lambda 0.5", "lambda = 0.5 constant", "lambda = 0.5 + warm-up"),
        ("distance weighting", "lambda = 0.5 + warm-up", "lambda = 0.5 distance-weighted + warm-up"),
    ]),
    "published_table12": _table(f"{PUBLISHED}, Table 12", "Deep self-supervision (ViT-L)",
                                ("ade20k_miou", "ade20k_miou_4layers", "nyu_rmse", "nyu_rmse_4layers",
                                 "diving48_top1", "diving48_top1_4layers"), [
        ("without", 34.9, 39.1, 0.513, 0.463, 85.8, 86.9),
        ("with",    42.0, 43.9, 0.381, 0.370, 87.2, 88.1),
    ], note="probe reads the last layer, or the last 4 layers (_4layers)",
       directions=[("deep self-supervision", "without", "with")]),
}
# fmt: on
