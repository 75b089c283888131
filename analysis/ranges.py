"""Does a probe metric have range: can it tell a pretrained encoder from the random-init one?

A probe score that the random-init encoder (the network pretraining started from) already reaches measures
the probe head, the data or the task's ceiling, not what pretraining learnt: no ablation can move it beyond
noise except by chance. ``probe_range`` decides it from the group's ``probe_random/<task>/<m>`` numbers,
one per seed (``random_source``), paired by seed: each completed run's ``probe/<task>/<m>`` minus its own
seed's random-init number, averaged over the runs of a seed so that seeds are the unit. The metric has
range where

* random init is not at the ceiling (mean below ``CEILING`` for a fraction-valued accuracy, mIoU or AP),
* and the gap's mean is beyond seed noise (``analysis.stats``: two-sided paired t at 5 %, the resolution
  floor of ``mean_and_se`` included) and goes the better way (``ablations.lower_is_better``).

``has_range`` is None (unknown) where the random-init encoder was not probed, or where one seed alone
gives no spread.

A seed's random-init number comes from one run of the seed (``random_source``): the other runs of the seed
pair with a number another run measured, which may have had other numerics (``analysis.numerics``: another
numerics id, or for runs made before it was recorded another code version). ``crossing_random`` names the
seeds where that happens; such pairs stay in the gap and ``probe_range`` lists them (``crossing_seeds``).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from analysis.ablations import Ablation, ablation_for, lower_is_better, sort_variants
from analysis.numerics import numerics_key
from analysis.stats import beyond_noise, mean_and_se, resolution

CEILING = 0.95
FRACTION = re.compile(r"(.*_)?(top\d+|acc\w*|m?iou|ap\d*)")  # the last name part of a 0-1 score


def encoder_keys_that_differ(runs: pd.DataFrame) -> list[str]:
    """The ``model.*`` config keys whose values differ between the completed runs: where there are any, the
    variants' encoders are not the same network at initialisation."""
    done = runs[runs["status"] == "completed"]
    cols = [c for c in done.columns if c.startswith("config/model.")]
    return [c.removeprefix("config/") for c in cols if done[c].astype(str).nunique() > 1]


def random_source(runs: pd.DataFrame, ablation: Ablation, column: str) -> pd.DataFrame:
    """The runs whose ``probe_random/...`` number stands for the random-init encoder, one per seed: any run
    of the seed where the variants share the encoder's config, else only the runs of the first variant (in
    display order) that has the number, so every seed's number is the same network's."""
    have = runs[(runs["status"] == "completed") & runs[column].notna()]
    if encoder_keys_that_differ(runs):
        first = next(v for v in sort_variants(runs["variant"], ablation) if (have["variant"] == v).any())
        have = have[have["variant"] == first]
    return have.drop_duplicates("seed")


def crossing_random(runs: pd.DataFrame, source: pd.DataFrame, metric: str) -> list[int]:
    """The seeds at which a completed run of ``runs`` with a value of ``metric`` is paired with a random-init
    number from a run (``source``: ``random_source``'s, one per seed) of another numerics key
    (``analysis.numerics.numerics_key`` for ``metric``). Sorted."""
    if source.empty or metric not in runs.columns:
        return []
    theirs = dict(zip(source["seed"], numerics_key(source, metric), strict=True))
    done = runs[(runs["status"] == "completed") & runs[metric].notna() & runs["seed"].isin(list(theirs))]
    ours = numerics_key(done, metric)
    return sorted({int(s) for s, k in zip(done["seed"], ours, strict=True) if k != theirs[s]})


def _at_ceiling(metric: str, values: pd.Series, random: float) -> bool:
    fraction = FRACTION.fullmatch(metric.rsplit("/", 1)[-1]) and values.abs().max() <= 1
    return bool(fraction and not lower_is_better(metric) and random >= CEILING)


def probe_range(runs: pd.DataFrame, metric: str, ablation: Ablation | None = None) -> dict:
    """Whether ``metric`` (``probe/<task>/<m>``) has range over ``runs`` (one sweep group's runs; its
    completed ones count): ``{"has_range": True / False / None, "gap": mean pretrained minus random init,
    "se": its standard error, "n": seeds paired, "random": random-init mean over seeds, "reason": short
    text, "crossing_seeds": the paired seeds whose random-init number another run of other numerics
    measured (``crossing_random``)}`` (see the module). ``ablation``: the group's, for ``random_source``
    (default: from its sweep)."""
    out = {"has_range": None, "gap": math.nan, "se": math.nan, "n": 0, "random": math.nan}
    out["crossing_seeds"] = []
    column = "probe_random/" + metric.removeprefix("probe/")
    if not metric.startswith("probe/") or column not in runs.columns or not runs[column].notna().any():
        return {**out, "reason": "no random-init probe"}
    ablation = ablation or ablation_for(str(runs["sweep"].iloc[0]))
    source = random_source(runs, ablation, column)
    rand = source.set_index("seed")[column]
    done = runs[runs["status"] == "completed"]
    ours = done.groupby("seed")[metric].mean().dropna()
    seeds = ours.index.intersection(rand.index)
    sign = -1 if lower_is_better(metric) else 1
    gap, se = mean_and_se(
        sign * (ours[seeds] - rand[seeds]).to_numpy(float),
        resolution(pd.concat([runs[metric], runs[column]])),
    )
    out = {**out, "gap": sign * gap, "se": se, "n": len(seeds), "random": float(rand.mean())}
    out["crossing_seeds"] = crossing_random(runs, source, metric)
    if _at_ceiling(metric, pd.concat([runs[metric], runs[column]]).dropna(), out["random"]):
        return {**out, "has_range": False, "reason": f"random init at the ceiling, {out['random']:.3f}"}
    if len(seeds) < 2:
        return {**out, "reason": f"{len(seeds)} seed(s) paired with random init: no spread"}
    said = f"random-init gap {out['gap']:+.2g} ± {se:.2g} over {len(seeds)} seeds"
    if not beyond_noise(gap, se, len(seeds) - 1):
        return {**out, "has_range": False, "reason": f"{said}, within noise"}
    if gap < 0:
        return {**out, "has_range": False, "reason": f"{said}: random init better beyond noise"}
    return {**out, "has_range": True, "reason": "beyond random init"}
