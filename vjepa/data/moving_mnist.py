"""Moving MNIST: labelled clips built from real handwritten digits.

Each clip shows one MNIST digit, in a random colour and scaled so its 28x28 box is 40-60 % of the frame
side, moving in a straight line over a black background and staying inside the frame where box and travel
fit (a box of 60 % moving 50 % does not: the box then starts at the edge and crosses the far one, and a
few clips lose part of the digit's ink in some frames). Labels: ``digit``
(appearance, 0..9) and ``direction`` (dynamics, 8 classes) with the convention of ``synthetic.py``:
k * 45 degrees counter-clockwise from +x (x to the right, y up), so 0 = right, 2 = up, 4 = left, 6 = down.
The digit travels 25-50 % of the frame side over the clip. Everything comes from a ``torch.Generator``.

Batch source ``moving_mnist`` (``data.video.*``): size, frames (default 8), split (train = first 80 %
of each digit class of the shared MNIST file | val = the other 20 % | all). Digits follow ``EpochOrder``;
motion, scale and colour come from ``step_generator(seed, step, STREAM)``. Items: normalised [B, 3, T, S, S].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa import schema
from vjepa.data import BatchSource, normalize, step_generator
from vjepa.data.common import EpochOrder
from vjepa.data.labelled import load_mnist, mnist_split
from vjepa.data.synthetic import NUM_DIRECTIONS, straight_path

STREAM, PERM_STREAM = 5, 55
CHUNK = 256


def generate_moving_mnist(
    digits, labels, n: int, frames: int, size: int, g: torch.Generator, index=None
) -> dict:
    """Clips of digits ``digits[index]`` (uint8 [N, 28, 28]; ``index`` [n] drawn from ``g`` if None).

    Returns ``video`` [n, 3, frames, size, size] float in [0, 1], ``digit`` [n], ``direction`` [n] and
    ``index`` [n] (long), and ``center`` [n, frames, 2] (x, y of the digit box centre in pixels, y down).
    """
    digits, labels = torch.as_tensor(digits), torch.as_tensor(labels)
    index = (
        torch.randint(0, len(digits), (n,), generator=g) if index is None else torch.as_tensor(index).long()
    )
    direction = torch.randint(0, NUM_DIRECTIONS, (n,), generator=g)
    half = size * (0.2 + 0.1 * torch.rand(n, generator=g))  # half side of the digit's 28x28 box
    cx, cy = straight_path(direction, half, frames, size, g)  # [n, T]
    colour = 0.5 + 0.5 * torch.rand(n, 3, generator=g)

    pix = torch.arange(size, dtype=torch.float32) + 0.5
    h = half.view(n, 1, 1, 1)
    # output pixel -> normalised position in the digit box ([-1, 1] spans the box, align_corners=False)
    gx = ((pix.view(1, 1, 1, size) - cx[..., None, None]) / h).expand(n, frames, size, size)
    gy = ((pix.view(1, 1, size, 1) - cy[..., None, None]) / h).expand(n, frames, size, size)
    src = (
        digits[index]
        .float()
        .div(255)[:, None, None]
        .expand(n, frames, 1, 28, 28)
        .reshape(n * frames, 1, 28, 28)
    )
    grid = torch.stack([gx, gy], dim=-1).reshape(n * frames, size, size, 2)
    alpha = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    video = alpha.view(n, 1, frames, size, size) * colour.view(n, 3, 1, 1, 1)
    return {
        "video": video.clamp(0, 1),
        "digit": labels[index].long(),
        "direction": direction,
        "index": index,
        "center": torch.stack([cx, cy], dim=-1),
    }


def moving_mnist_dataset(root, split: str, n: int, frames: int, size: int, seed: int) -> dict:
    """A fixed labelled set for probes: ``video`` as uint8 [n, 3, frames, size, size] (x 255, rounded),
    ``digit``, ``direction``; made in chunks of 256 clips from ``torch.Generator().manual_seed(seed)``."""
    x, y = mnist_split(*load_mnist(root), split)
    g = torch.Generator().manual_seed(seed)
    parts = [generate_moving_mnist(x, y, min(CHUNK, n - i), frames, size, g) for i in range(0, n, CHUNK)]
    return {
        "video": torch.cat([p["video"].mul(255).round_().to(torch.uint8) for p in parts]),
        "digit": torch.cat([p["digit"] for p in parts]),
        "direction": torch.cat([p["direction"] for p in parts]),
    }


class MovingMNISTBatches(BatchSource):
    def __init__(self, root, split: str, size: int, frames: int, batch_size: int, seed: int):
        self.root, self.split, self.size, self.frames, self.batch_size, self.seed = (
            root,
            split,
            size,
            frames,
            batch_size,
            seed,
        )
        self._digits = self.load()
        self.order = EpochOrder(len(self._digits[0]), seed, PERM_STREAM)

    def load(self):
        x, y = mnist_split(*load_mnist(self.root), self.split)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __getstate__(self):
        return {**self.__dict__, "_digits": None}

    def batch(self, step: int, rows: range) -> torch.Tensor:
        if self._digits is None:
            self._digits = self.load()
        # Clips draw their motion in sequence from one generator: generate the whole batch, keep the rows.
        index = [self.order.index(p) for p in self.order.positions(step, self.batch_size)]
        g = step_generator(self.seed, step, STREAM)
        clips = generate_moving_mnist(*self._digits, self.batch_size, self.frames, self.size, g, index=index)
        return normalize(clips["video"][rows.start : rows.stop])


def moving_mnist(cfg, batch_size, seed, root):
    return MovingMNISTBatches(
        root,
        schema.leaf(cfg, "data.video.split"),
        int(cfg["size"]),
        int(schema.leaf(cfg, "data.video.frames")),
        batch_size,
        seed,
    )
