"""Generated moving shapes: the direction label is the direction the object moves on screen (k * 45 degrees
counter-clockwise from +x, y up), as for moving MNIST."""

import math

import torch

from vjepa.data.synthetic import generate_moving_shapes


def test_direction_label_matches_the_objects_motion_on_screen():
    out = generate_moving_shapes(200, 6, 48, torch.Generator().manual_seed(0))
    mass = (out["seg"] > 0).float()  # [n, T, S, S], rows grow downwards
    coords = torch.arange(48, dtype=torch.float32) + 0.5
    area = mass.sum((2, 3))
    cx = (mass.sum(2) * coords).sum(-1) / area
    row = (mass.sum(3) * coords).sum(-1) / area
    dx, dy_up = cx[:, -1] - cx[:, 0], row[:, 0] - row[:, -1]
    moved = torch.hypot(dx, dy_up) > 0.15 * 48  # objects near an edge can be cut by it; all travel 25-50 %
    assert moved.float().mean() > 0.9
    k = torch.round(torch.atan2(dy_up, dx) / (math.pi / 4)).long() % 8
    assert torch.equal(k[moved], out["direction"][moved]) and len(set(out["direction"].tolist())) == 8
    up = out["direction"] == 2  # 90 degrees: towards the top rows of the frame
    assert up.any() and (dy_up[up & moved] > 0).all()
