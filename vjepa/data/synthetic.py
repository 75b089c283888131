"""Embedded default data: procedurally generated multi-object images and moving-object clips.

Everything is generated from a ``torch.Generator``, so a given seed always gives the same samples, and no
files are needed. Colour and texture are drawn independently of the shape class, so neither raw colour nor
position reveals an object's class: a probe has to recognise shape.

Shape classes (label 0 is background in segmentation maps, class c has map value c + 1):
    0 disk, 1 square, 2 triangle, 3 ring, 4 cross.
Motion classes (clips): 8 directions, k * 45 degrees counter-clockwise from +x (image x to the right,
y up), so 0 = right, 2 = up, 4 = left, 6 = down.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("disk", "square", "triangle", "ring", "cross")
NUM_SHAPES = len(SHAPES)
NUM_DIRECTIONS = 8


def _shape_masks(cls, cx, cy, r, rot, size: int) -> torch.Tensor:
    """Boolean masks [..., size, size] for objects with parameters of shape [...] (pixel units; the centre
    ``cy`` in rows, which grow downwards; the shape's own axes and ``rot`` measure y upwards)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    x = coords.view(1, size) - cx[..., None, None]
    y = cy[..., None, None] - coords.view(size, 1)  # y up
    cos, sin = rot.cos()[..., None, None], rot.sin()[..., None, None]
    u, v = cos * x + sin * y, -sin * x + cos * y
    r = r[..., None, None]
    rad = (u * u + v * v).sqrt()
    masks = torch.stack(
        [
            rad < r,
            torch.maximum(u.abs(), v.abs()) < 0.85 * r,
            (v > -0.5 * r) & (math.sqrt(3.0) * u.abs() + v < r),
            (rad < r) & (rad > 0.55 * r),
            ((u.abs() < 0.3 * r) & (v.abs() < r)) | ((v.abs() < 0.3 * r) & (u.abs() < r)),
        ],
        dim=0,
    )
    return torch.gather(masks, 0, cls[None, ..., None, None].expand(1, *cls.shape, size, size).long())[0]


def _textures(n: int, size: int, g: torch.Generator, contrast: float = 1.0) -> torch.Tensor:
    """[n, 3, size, size] two-colour stripe textures with random colours, orientation and frequency."""
    c1, c2 = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    theta = torch.rand(n, 1, 1, generator=g) * math.pi
    freq = (0.15 + 0.6 * torch.rand(n, 1, 1, generator=g)) * (64.0 / size)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    coords = torch.arange(size, dtype=torch.float32)
    proj = theta.cos() * coords.view(1, 1, size) + theta.sin() * coords.view(1, size, 1)
    mix = (0.5 + 0.5 * contrast * torch.sin(freq * proj + phase)).unsqueeze(1)
    return c1 * mix + c2 * (1 - mix)


def generate_shapes(n: int, size: int, g: torch.Generator, max_objects: int = 4) -> dict[str, torch.Tensor]:
    """Multi-object scenes.

    Returns ``image`` [n, 3, size, size] in [0, 1]; ``seg`` [n, size, size] long (0 background, c + 1 for
    class c, topmost object wins); ``instances`` [n, size, size] long (0 background, j + 1 for object j);
    ``classes`` [n, max_objects] long (-1 where the object is absent or fully occluded).
    """
    m = max_objects
    count = torch.randint(1, m + 1, (n,), generator=g)
    present = torch.arange(m).view(1, m) < count.view(n, 1)
    cls = torch.randint(0, NUM_SHAPES, (n, m), generator=g)
    r = size * (0.12 + 0.14 * torch.rand(n, m, generator=g))
    cx = r + (size - 2 * r) * torch.rand(n, m, generator=g)
    cy = r + (size - 2 * r) * torch.rand(n, m, generator=g)
    rot = torch.rand(n, m, generator=g) * 2 * math.pi
    masks = _shape_masks(cls, cx, cy, r, rot, size) & present[..., None, None]  # [n, m, S, S]

    image = _textures(n, size, g, contrast=0.6)
    tex = _textures(n * m, size, g).view(n, m, 3, size, size)
    instances = torch.zeros(n, size, size, dtype=torch.long)
    for j in range(m):  # later objects occlude earlier ones
        mj = masks[:, j]
        image = torch.where(mj[:, None], tex[:, j], image)
        instances = torch.where(mj, torch.full_like(instances, j + 1), instances)
    visible = torch.stack([(instances == j + 1).flatten(1).any(1) for j in range(m)], dim=1)
    classes = torch.where(visible, cls, torch.full_like(cls, -1))
    seg = torch.where(
        instances > 0, torch.gather(cls, 1, (instances - 1).clamp(min=0).flatten(1)).view_as(instances) + 1, 0
    )
    return {"image": image.clamp(0, 1), "seg": seg, "instances": instances, "classes": classes}


def straight_path(direction, half, frames: int, size: int, g: torch.Generator):
    """Centres (cx, cy) [n, frames] in pixels (rows grow downwards) of a straight motion in ``direction``
    (k * 45 degrees) travelling 25-50 % of the frame, started so that an object of half-extent ``half``
    stays inside the frame for the whole clip where ``2 * half`` plus the travel fits in the frame (else it
    starts at the near edge and crosses the far one). Draws speed, then x0, then y0 from ``g``."""
    n = len(direction)
    speed = size * (0.25 + 0.25 * torch.rand(n, generator=g)) / max(frames - 1, 1)
    angle = direction.float() * (math.pi / 4)
    vx, vy = speed * angle.cos(), -speed * angle.sin()
    travel_x, travel_y = vx * (frames - 1), vy * (frames - 1)
    lo_x, hi_x = half + torch.clamp(-travel_x, min=0), size - half - torch.clamp(travel_x, min=0)
    lo_y, hi_y = half + torch.clamp(-travel_y, min=0), size - half - torch.clamp(travel_y, min=0)
    x0 = lo_x + (hi_x - lo_x).clamp(min=0) * torch.rand(n, generator=g)
    y0 = lo_y + (hi_y - lo_y).clamp(min=0) * torch.rand(n, generator=g)
    t = torch.arange(frames, dtype=torch.float32).view(1, frames)
    return x0[:, None] + vx[:, None] * t, y0[:, None] + vy[:, None] * t


def generate_moving_shapes(n: int, frames: int, size: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Clips of one textured shape moving in a straight line over a static textured background.

    Returns ``video`` [n, 3, frames, size, size] in [0, 1], ``shape`` [n] and ``direction`` [n] labels, and
    ``seg`` [n, frames, size, size] (0 background, shape + 1 on the object).
    """
    cls = torch.randint(0, NUM_SHAPES, (n,), generator=g)
    direction = torch.randint(0, NUM_DIRECTIONS, (n,), generator=g)
    r = size * (0.14 + 0.1 * torch.rand(n, generator=g))
    cx, cy = straight_path(direction, r, frames, size, g)
    rot = torch.rand(n, generator=g) * 2 * math.pi
    masks = _shape_masks(  # cy in rows, as _shape_masks takes it (it measures offsets from it upwards)
        cls[:, None].expand(n, frames),
        cx,
        cy,
        r[:, None].expand(n, frames),
        rot[:, None].expand(n, frames),
        size,
    )
    bg = _textures(n, size, g, contrast=0.6)[:, :, None]
    fg = _textures(n, size, g)[:, :, None]
    video = torch.where(masks[:, None], fg, bg)
    seg = torch.where(masks, cls.view(n, 1, 1, 1) + 1, 0)
    return {"video": video, "shape": cls, "direction": direction, "seg": seg}
