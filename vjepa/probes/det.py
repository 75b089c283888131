"""Detection probe: ViTDet simple feature pyramid + CenterNet head on a frozen token map.

Boxes: from instance masks, the tight box (x0, y0, x1, y1) in pixels of each object's visible pixels.
Pyramid (Li et al. 2022, ViTDet): from the single stride-p token map (first projected to ``width``
channels by a 1x1 conv), maps at strides p/2 (2x2 deconvolution), p (identity) and 2p (2x2 max-pool),
fused at stride p/2 by nearest upsampling and summing, then a 3x3 conv. Head (Zhou et al. 2019,
CenterNet): per-class centre heatmap (focal loss on Gaussian targets; TTFNet's elliptical Gaussians with
sigma = 0.54 * box side / 6), box size and sub-cell centre offset (L1 at object centres).
Decoding keeps 3x3 local maxima and the ``max_det`` best scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vjepa.probes.bootstrap import box_ap_per_sample
from vjepa.probes.features import Standardizer
from vjepa.probes.heads import fit_adamw, seeded
from vjepa.probes.metrics import box_ap, crowd_flags
from vjepa.probes.seg import token_map

GAUSS_ALPHA = 0.54
SIZE_WEIGHT = 0.1


def instance_boxes(instances: torch.Tensor, classes: torch.Tensor) -> list[dict]:
    """instances [N, H, W] (0 background, j + 1 object j), classes [N, M] (-1 absent) -> per image
    {"boxes": float [k, 4] (x0, y0, x1, y1), "labels": long [k]}."""
    out = []
    for inst, cls in zip(instances, classes, strict=True):
        boxes, labels = [], []
        for j, c in enumerate(cls.tolist()):
            ys, xs = (inst == j + 1).nonzero(as_tuple=True)
            if c >= 0 and len(xs):
                boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
                labels.append(c)
        out.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                "labels": torch.tensor(labels, dtype=torch.long),
            }
        )
    return out


def regular_boxes(gt: dict) -> dict:
    """One image's ground truth without its crowd regions (``crowd`` flags, COCO's ``iscrowd``)."""
    keep = ~crowd_flags(gt)
    return {"boxes": gt["boxes"][keep], "labels": gt["labels"][keep]}


def centernet_targets(gts: list[dict], num_classes: int, out_hw, stride: float) -> dict[str, torch.Tensor]:
    """Heatmap [N, C, h, w], size and offset [N, 2, h, w] (in cells), and the centre mask [N, h, w]."""
    n, (h, w) = len(gts), out_hw
    heat = torch.zeros(n, num_classes, h, w)
    size, offset = torch.zeros(n, 2, h, w), torch.zeros(n, 2, h, w)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    ys, xs = torch.arange(h, dtype=torch.float32).view(h, 1), torch.arange(w, dtype=torch.float32).view(1, w)
    for i, g in enumerate(gts):
        for box, c in zip(g["boxes"] / stride, g["labels"].tolist(), strict=True):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            bw, bh = box[2] - box[0], box[3] - box[1]
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(GAUSS_ALPHA * bw / 6, 1e-3), max(GAUSS_ALPHA * bh / 6, 1e-3)
            gauss = torch.exp(-((xs - ix) ** 2) / (2 * sx**2) - ((ys - iy) ** 2) / (2 * sy**2))
            heat[i, c] = torch.maximum(heat[i, c], gauss)
            heat[i, c, iy, ix] = 1.0
            size[i, :, iy, ix] = torch.stack([bw, bh])
            offset[i, :, iy, ix] = torch.stack([cx - ix, cy - iy])
            mask[i, iy, ix] = True
    return {"heat": heat, "size": size, "offset": offset, "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of centres."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -(1 - p).pow(2) * p.log() * pos
    neg_loss = -(1 - target).pow(4) * p.pow(2) * (1 - p).log() * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


class PyramidCenterNet(nn.Module):
    def __init__(self, dim: int, width: int, num_classes: int):
        super().__init__()
        self.reduce = nn.Conv2d(
            dim, width, 1
        )  # shared 1x1 projection first: the levels then cost width, not dim
        self.up = nn.ConvTranspose2d(width, width, 2, stride=2)  # stride p/2
        self.down = nn.MaxPool2d(2, ceil_mode=True)  # stride 2p
        self.fuse = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.heat = nn.Conv2d(width, num_classes, 1)
        self.box = nn.Conv2d(width, 4, 1)  # size (w, h) and offset (x, y), in cells of the output stride
        nn.init.constant_(self.heat.bias, -math.log((1 - 0.1) / 0.1))  # prior 0.1, as CenterNet

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D, h, w] -> heat logits [B, C, 2h, 2w], box [B, 4, 2h, 2w]."""
        r = self.reduce(f)
        hi = self.up(r)
        size = hi.shape[-2:]
        x = (
            hi
            + F.interpolate(r, size=size, mode="nearest")
            + F.interpolate(self.down(r), size=size, mode="nearest")
        )
        x = self.fuse(x)
        return self.heat(x), self.box(x)


@torch.no_grad()
def decode(heat_logits: torch.Tensor, box: torch.Tensor, stride: float, max_det: int, image_hw) -> list[dict]:
    heat = heat_logits.sigmoid()
    heat = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    b, c, h, w = heat.shape
    scores, idx = heat.flatten(1).topk(min(max_det, c * h * w), dim=1)
    labels, cell = idx // (h * w), idx % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()
    bx = box.flatten(2).gather(2, cell[:, None].expand(-1, 4, -1))  # [b, 4, k]
    cx, cy = (xs + bx[:, 2]) * stride, (ys + bx[:, 3]) * stride
    bw, bh = bx[:, 0].clamp(min=0) * stride, bx[:, 1].clamp(min=0) * stride
    H, W = image_hw
    boxes = torch.stack(
        [
            (cx - bw / 2).clamp(0, W),
            (cy - bh / 2).clamp(0, H),
            (cx + bw / 2).clamp(0, W),
            (cy + bh / 2).clamp(0, H),
        ],
        -1,
    )
    return [{"boxes": boxes[i].cpu(), "scores": scores[i].cpu(), "labels": labels[i].cpu()} for i in range(b)]


def det_probe(
    feats: dict, grid, y_train: dict, y_val: dict, num_classes: int, image_hw, cfg: dict, seed: int, device
) -> dict:
    """``box_probe`` on the boxes of instance masks."""
    gt_train = instance_boxes(y_train["instances"], y_train["instance_classes"])
    gt_val = instance_boxes(y_val["instances"], y_val["instance_classes"])
    return box_probe(feats, grid, gt_train, gt_val, num_classes, image_hw, cfg, seed, device)


def box_probe(
    feats: dict, grid, gt_train: list, gt_val: list, num_classes: int, image_hw, cfg: dict, seed: int, device
) -> dict:
    """Train the pyramid + head on frozen train features and per-image boxes ({"boxes" [k, 4] x0 y0 x1 y1
    px, "labels" [k], optionally "crowd" [k]: crowd regions, no target, ignored in scoring}); AP50 / AP (0.5:0.95) and per-class AP50 on val, and under ``scored`` the two AP
    metrics recomputable per val image (``vjepa.probes.bootstrap``)."""
    std = Standardizer(feats["train"].flatten(0, 1))
    h, w = grid[1:]
    stride = image_hw[0] / (2 * h)
    gt_train = [regular_boxes(g) for g in gt_train]  # crowd regions are no training target
    tgt = centernet_targets(gt_train, num_classes, (2 * h, 2 * w), stride)
    with seeded(seed):
        model = PyramidCenterNet(feats["train"].shape[-1], int(cfg["width"]), num_classes).to(device)

    def loss_fn(idx):
        f = token_map(std(feats["train"][idx].to(device)), grid)
        heat, box = model(f)
        t = {k: v[idx].to(device) for k, v in tgt.items()}
        m = t["mask"][:, None].float()
        n = m.sum().clamp(min=1)
        l_size = (F.l1_loss(box[:, :2], t["size"], reduction="none") * m).sum() / n
        l_off = (F.l1_loss(box[:, 2:], t["offset"], reduction="none") * m).sum() / n
        return focal_loss(heat, t["heat"]) + SIZE_WEIGHT * l_size + l_off

    fit_adamw(
        model,
        len(gt_train),
        loss_fn,
        int(cfg["epochs"]),
        int(cfg["batch_size"]),
        float(cfg["lr"]),
        float(cfg["wd"]),
        seed,
    )
    dets = []
    with torch.no_grad():
        for i in range(0, len(gt_val), 256):
            heat, box = model(token_map(std(feats["val"][i : i + 256].to(device)), grid))
            dets += decode(heat, box, stride, int(cfg["max_det"]), image_hw)
    out = box_ap(dets, gt_val, num_classes)
    out["scored"] = box_ap_per_sample(dets, gt_val, num_classes)
    return out
