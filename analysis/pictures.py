"""The pictures to look at first: the masks a run trained with, and PCA maps of its frozen features.

Two steps, so that reports regenerate without checkpoints (they are not committed):

* ``extract_all(results, data_dir)`` (run by ``analysis.collect``) reads, per (sweep, preset) group with an
  axis, one representative run per variant (the completed run with the lowest seed) and writes small uint8
  arrays: ``pca_<stem>.npz`` and ``masks_<stem>.npz``. Zip entries carry a fixed date, so identical arrays
  give identical files.
* ``render_pca`` / ``render_masks`` draw those arrays (``analysis.report``).

Masks: regenerated exactly as the trainer drew them at ``step`` (its batch from ``vjepa.data``, its masks
from ``vjepa.masks.RunMasks``, the trainer's own per-step generators), shown as darkened tokens
over the first images and the first clip of the batch. PCA maps: tokens of the frozen target (EMA) encoder,
of the random-init encoder (the same init the run started from) and of each variant, on a fixed held set of
generated images and clips (``HELD_SEED``); per encoder and modality the first three principal components,
fitted jointly over all held samples, scaled to their 1st-99th percentiles, as RGB. A second map per encoder
(``<modality>_pcapos_<i>``) first removes each token position's mean feature, estimated on a larger fit set
(``N_FIT_IMAGES`` / ``N_FIT_CLIPS``, ``FIT_SEED``), and fits the components there: small encoders' leading
components are often their positional embedding, the same picture for every input, which hides what the
features say about the content.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.ablations import ablation_for, sort_variants, untrained_modality
from analysis.summary import group_stem

HELD_SEED = 20260101
N_IMAGES, N_CLIPS = 6, 2  # held set of the PCA maps
FIT_SEED = HELD_SEED + 1
N_FIT_IMAGES, N_FIT_CLIPS = 128, 16  # fit set of the position-centred PCA maps
MASK_IMAGES = 4  # images of a training batch shown with their masks
DARKEN = 0.25  # brightness left to masked tokens


# ---- arrays on disk ------------------------------------------------------------------------------------
def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Like ``np.savez_compressed``, with fixed zip dates so that equal arrays give equal bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())
    return path


def _uint8(x) -> np.ndarray:
    return (np.asarray(x, dtype=np.float64).clip(0, 1) * 255).round().astype(np.uint8)


def _channels_last(x):
    """[n, 3, H, W] -> [n, H, W, 3]; [n, 3, T, H, W] -> [n, T, H, W, 3]."""
    return x.movedim(1, -1).numpy()


# ---- extraction (needs torch and the run directories) ---------------------------------------------------
def held_inputs(cfg, n_images: int = N_IMAGES, n_clips: int = N_CLIPS, seed: int = HELD_SEED) -> dict:
    """The fixed held set, in [0, 1]: images [n_images, 3, H, W] and clips [n_clips, 3, T, H, W] at the
    run's sizes."""
    import torch

    from vjepa.data.synthetic import generate_moving_shapes, generate_shapes

    g = torch.Generator().manual_seed(seed)
    image = generate_shapes(n_images, int(cfg.data.image.size), g, int(cfg.data.image.get("max_objects", 4)))
    video = generate_moving_shapes(n_clips, int(cfg.data.video.frames), int(cfg.data.video.size), g)
    return {"image": image["image"], "video": video["video"]}


def fit_inputs(cfg) -> dict:
    """The fit set of the position-centred PCA maps (disjoint draws from the held set's)."""
    return held_inputs(cfg, N_FIT_IMAGES, N_FIT_CLIPS, FIT_SEED)


def load_encoder(run_dir: Path, which: str = "target_encoder"):
    """(frozen encoder, config) from a run's ``checkpoints/last.pt``."""
    from omegaconf import OmegaConf

    from vjepa.models import build_encoder
    from vjepa.runfiles import load_checkpoint

    state = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
    cfg = OmegaConf.create(state["config"])
    encoder = build_encoder(cfg.model)
    encoder.load_state_dict(state[which])
    return encoder.eval(), cfg


def random_encoder(cfg):
    """The encoder a run with ``cfg`` starts from (the trainer seeds with cfg.seed, then builds it first)."""
    import torch

    from vjepa.models import build_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        return build_encoder(cfg.model).eval()


def pca_rgb(tokens, fit=None, per_position: bool = False) -> np.ndarray:
    """[n, N, D] tokens -> [n, N, 3] in [0, 1]: their first 3 principal components as RGB.

    The components (and the mean removed first) are fitted on ``fit`` ([m, N, D]; default: ``tokens``), over
    all m * N tokens; ``per_position`` removes each of the N positions' own mean over the m samples instead
    of one mean. Each component is scaled to the 1st-99th percentiles of its projections on ``tokens``."""
    import torch

    n, m, d = tokens.shape
    fit = tokens if fit is None else fit
    fit = fit.double()
    mean = fit.mean(0) if per_position else fit.reshape(-1, d).mean(0)  # [N, D] or [D]
    _, _, vh = torch.linalg.svd((fit - mean).reshape(-1, d), full_matrices=False)
    comps = vh[:3]
    # fix each component's sign: its largest loading positive
    comps = comps * comps.gather(1, comps.abs().argmax(1, keepdim=True)).sign()
    proj = ((tokens.double() - mean).reshape(-1, d)) @ comps.T
    lo, hi = torch.quantile(proj, 0.01, dim=0), torch.quantile(proj, 0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return rgb.reshape(n, m, -1).numpy()


def encoder_maps(encoder, x, fit) -> tuple[np.ndarray, np.ndarray]:
    """(PCA maps, position-centred PCA maps), each [n, t, h, w, 3] uint8, of an encoder's tokens on a batch
    ``x`` in [0, 1]; the centred maps are fitted on the batch ``fit`` (same sizes)."""
    import torch

    from vjepa.data import normalize

    with torch.no_grad():
        tokens = encoder(normalize(x))
        fit_tokens = encoder(normalize(fit))
    t, h, w = encoder.grid(x)
    maps = _uint8(pca_rgb(tokens).reshape(len(x), t, h, w, 3))
    centred = pca_rgb(tokens, fit_tokens, per_position=True)
    return maps, _uint8(centred.reshape(len(x), t, h, w, 3))


def extract_pca(runs: list[tuple[str, str, Path]], out: Path) -> Path | None:
    """``runs``: (variant, run_id, run_dir) of completed runs with checkpoints; a random-init row first. A
    run gets no maps of a modality whose tokenizer it never trained (``ablations.untrained_modality``), and
    a modality no run trained gets none at all."""
    runs = [r for r in runs if (Path(r[2]) / "checkpoints" / "last.pt").exists()]
    if not runs:
        return None
    encoders = [load_encoder(d) for _, _, d in runs]
    untrained = [None] + [untrained_modality(c.model.tokenizer, c.data.mix) for _, c in encoders]
    held, fit = held_inputs(encoders[0][1]), fit_inputs(encoders[0][1])
    labels = ["random init"] + [v for v, _, _ in runs]
    ids = [f"{runs[0][1]} (initial weights)"] + [i for _, i, _ in runs]
    arrays = {
        "labels": np.array(labels),
        "run_ids": np.array(ids),
        "image_input": _uint8(_channels_last(held["image"])),
        "video_input": _uint8(_channels_last(held["video"])),
        **{f"{modality}_fit_n": np.array(len(x)) for modality, x in fit.items()},
    }
    for i, encoder in enumerate([random_encoder(encoders[0][1])] + [e for e, _ in encoders]):
        for modality, x in held.items():
            if untrained[i] == modality or set(untrained[1:]) == {modality}:
                continue
            arrays[f"{modality}_pca_{i}"], arrays[f"{modality}_pcapos_{i}"] = encoder_maps(
                encoder, x, fit[modality]
            )
    return save_npz(out, arrays)


def run_masks(cfg, step: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{modality: (inputs [n, (T,) H, W, 3] uint8, masks [settings, n, t, h, w] bool)} of training step
    ``step``, exactly as the trainer drew them; n = MASK_IMAGES images or 1 clip."""
    import torch

    from vjepa.data import MEAN, STD, JointBatches, build_sources, split_skipped
    from vjepa.masks import RunMasks, target_mask
    from vjepa.models import build_encoder

    batch, _ = split_skipped(JointBatches(build_sources(cfg.data, cfg.batch_size, cfg.seed))[step])
    grid_of = build_encoder(cfg.model, device="meta").grid
    run = RunMasks(cfg.mask, cfg.seed)  # the masks the trainer draws
    out = {}
    for modality, x in batch.items():
        grid = grid_of(x)
        drawn = run.draw(step, modality, x.shape[0], grid)
        masks = [target_mask(buckets, x.shape[0]).view(x.shape[0], *grid) for buckets in drawn]
        keep = MASK_IMAGES if modality == "image" else 1
        shape = (1, 3) + (1,) * (x.ndim - 2)
        pixels = x[:keep] * torch.tensor(STD).view(shape) + torch.tensor(MEAN).view(shape)
        out[modality] = (_uint8(_channels_last(pixels)), torch.stack(masks)[:, :keep].numpy())
    return out


def extract_masks(runs: list[tuple[str, str, Path]], out: Path, step: int = 0) -> Path | None:
    from omegaconf import OmegaConf

    arrays, labels, ids = {}, [], []
    for variant, run_id, run_dir in runs:
        cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
        try:
            drawn = run_masks(cfg, step)
        except OSError as exc:  # data files of a real-data run are not here
            print(f"[pictures] masks of {run_id}: skipped ({exc})", file=sys.stderr)
            continue
        i = len(labels)
        labels.append(variant)
        ids.append(run_id)
        for modality, (pixels, masks) in drawn.items():
            arrays[f"{modality}_input_{i}"], arrays[f"{modality}_mask_{i}"] = pixels, masks
    if not labels:
        return None
    return save_npz(
        out, {**arrays, "labels": np.array(labels), "run_ids": np.array(ids), "step": np.array(step)}
    )


def representatives(runs: pd.DataFrame, completed_only: bool) -> list[tuple[str, str, Path]]:
    """(variant, run_id, run_dir) per variant in display order: lowest seed, completed runs first."""
    ablation = ablation_for(str(runs["sweep"].iloc[0]))
    out = []
    for variant in sort_variants(runs["variant"], ablation):
        g = runs[runs["variant"] == variant].assign(unfinished=lambda d: d["status"] != "completed")
        if completed_only:
            g = g[~g["unfinished"]]
        g = g[[(Path(d) / "config.yaml").exists() for d in g["run_dir"]]]
        if len(g):
            r = g.sort_values(["unfinished", "seed", "run_id"]).iloc[0]
            out.append((variant, r["run_id"], Path(r["run_dir"])))
    return out


def extract_all(results: pd.DataFrame, data_dir: Path, keep_unseen: bool = False) -> list[Path]:
    """PCA and mask arrays of every (sweep, preset) group with an axis; returns the files written.
    ``keep_unseen``: a picture file that exists is left as it is when a variant it would show has runs in
    ``results`` but none whose directory is here (runs collected earlier, elsewhere): drawn again, it would
    lose that variant."""
    written = []
    for (sweep, preset), runs in results.groupby(["sweep", "preset"], sort=True):
        if not str(runs["axis"].iloc[0]):
            continue
        stem = group_stem(sweep, preset)
        for kind, extract, completed_only in (("pca", extract_pca, True), ("masks", extract_masks, False)):
            out = Path(data_dir) / f"{kind}_{stem}.npz"
            unseen = unseen_variants(runs, completed_only)
            if keep_unseen and unseen and out.exists():
                print(f"[pictures] {out.name} kept: no run of {', '.join(unseen)} here", file=sys.stderr)
                continue
            path = extract(representatives(runs, completed_only), out)
            if path is not None:
                written.append(path)
    return written


def unseen_variants(runs: pd.DataFrame, completed_only: bool) -> list[str]:
    """Variants with (completed) runs in the table but none whose run directory is here."""
    if completed_only:
        runs = runs[runs["status"] == "completed"]
    if not len(runs):
        return []
    here = runs["run_dir"].map(lambda d: (Path(d) / "config.yaml").exists())
    unseen = set(runs["variant"]) - set(runs.loc[here, "variant"])
    return sort_variants(unseen, ablation_for(str(runs["sweep"].iloc[0])))


# ---- rendering (numpy and matplotlib only) --------------------------------------------------------------
def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour [h, w, ...] -> [H, W, ...] (H, W multiples of h, w)."""
    return a.repeat(shape[0] // a.shape[0], 0).repeat(shape[1] // a.shape[1], 1)


def _image_grid(
    cells: list[list[np.ndarray | None]], row_labels: list[str], col_labels: list[str], title: str, out=None
):
    from matplotlib.figure import Figure

    from analysis.plots import save

    nrows, ncols = len(cells), max(len(r) for r in cells)
    fig = Figure(figsize=(1.35 * ncols + 1.2, 1.35 * nrows + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, row in enumerate(cells):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row) and row[j] is not None:
                ax.imshow(row[j], interpolation="nearest")
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
    fig.suptitle(title, fontsize=10)
    if out is not None:
        save(fig, out)
    return fig


def render_pca(npz_path: Path, modality: str, out=None, per_position: bool = False):
    """Rows: the held inputs, then random init and each variant; columns: held images (or the temporal
    token slices of the held clips, shown with the first frame of each slice). ``per_position``: the
    position-centred maps (None where the arrays predate them). A run without maps of the modality (its
    tokenizer never trained) gets an empty row."""
    z = np.load(npz_path, allow_pickle=False)
    labels = [str(v) for v in z["labels"]]
    inputs = z[f"{modality}_input"]
    key = "pcapos" if per_position else "pca"
    if f"{modality}_{key}_0" not in z:
        return None
    maps = [z[f"{modality}_{key}_{i}"] if f"{modality}_{key}_{i}" in z else None for i in range(len(labels))]
    labels = [label if m is not None else f"{label} (tokenizer untrained)" for label, m in zip(labels, maps)]
    if modality == "image":
        cols = [f"image {k}" for k in range(len(inputs))]
        first = list(inputs)
        rows = [
            [_upsample(m[k, 0], inputs.shape[1:3]) for k in range(len(inputs))] if m is not None else []
            for m in maps
        ]
    else:
        t = maps[0].shape[1]
        tubelet = inputs.shape[1] // t
        cols = [f"clip {c}, t={s}" for c in range(len(inputs)) for s in range(t)]
        first = [inputs[c, s * tubelet] for c in range(len(inputs)) for s in range(t)]
        rows = [
            [_upsample(m[c, s], inputs.shape[2:4]) for c in range(len(inputs)) for s in range(t)]
            if m is not None
            else []
            for m in maps
        ]
    return _image_grid(
        [first, *rows],
        ["input", *labels],
        cols,
        (
            f"PCA of frozen {modality} tokens minus each position's mean (3 components as RGB, fitted per "
            f"encoder on {int(z[f'{modality}_fit_n'])} other held {'images' if modality == 'image' else 'clips'})"
            if per_position
            else f"PCA of frozen {modality} tokens (first 3 components as RGB, fitted per encoder)"
        ),
        out,
    )


def render_masks(npz_path: Path, modality: str, out=None):
    """Rows: variant (x mask setting); columns: the first images of the training batch, or the frames of
    its first clip. Dark tokens are masked (predicted); tokens in full colour are the context."""
    z = np.load(npz_path, allow_pickle=False)
    labels = [str(v) for v in z["labels"]]
    cells, names, cols = [], [], []
    for i, label in enumerate(labels):
        if f"{modality}_input_{i}" not in z:
            continue
        pixels, masks = z[f"{modality}_input_{i}"], z[f"{modality}_mask_{i}"]
        if modality == "video":  # one clip: its frames become the columns
            pixels, masks = pixels[0], masks[:, 0]
            masks = masks.repeat(pixels.shape[0] // masks.shape[1], axis=1)[:, :, None]
        for k, setting in enumerate(masks):
            row = []
            for j, img in enumerate(pixels):
                mask = _upsample(setting[j, 0], img.shape[:2])[..., None]
                row.append(np.where(mask, DARKEN * img / 255, img / 255))
            cells.append(row)
            ratio = setting.mean()
            names.append(f"{label}" + (f"\nsetting {k}" if len(masks) > 1 else "") + f"\n{ratio:.0%} masked")
        cols = [f"{'image' if modality == 'image' else 'frame'} {j}" for j in range(len(pixels))]
    if not cells:
        return None
    return _image_grid(
        cells,
        names,
        cols,
        f"Masks of training step {int(z['step'])} ({modality}): dark = masked "
        "(predicted) tokens, full colour = context",
        out,
    )


def _render_pca_centred(npz_path: Path, modality: str, out=None):
    return render_pca(npz_path, modality, out, per_position=True)


# The pictures of a sweep: (figure kind, arrays file prefix, renderer(npz, modality, out=None), caption);
# figures are <stem>_<kind>_<modality>.png from data/<prefix>_<stem>.npz.
PICTURE_KINDS = (
    ("masks", "masks", render_masks, "masks"),
    ("pca", "pca", render_pca, "PCA maps"),
    ("pcapos", "pca", _render_pca_centred, "PCA maps, positional mean removed"),
)
