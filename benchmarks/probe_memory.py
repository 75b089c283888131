"""Peak memory of an ImageFolder linear probe as the folder grows (issue 27: streamed extraction).

    PYTHONPATH=. python -m benchmarks.probe_memory [--sizes 1000 10000] [--px 64] [--out FILE]

For each size N, writes an ImageFolder of N JPEGs (``--px`` square, 4 classes of noisy colours, 80 % train
/ 20 % val) in a temporary folder, then in a fresh subprocess (so each peak is its own) indexes it, extracts
features with ``vjepa.probes.stream.extract_folder`` (the linear task's storage: one pooled token) and fits
the linear head, as ``run_probes`` does for an ``imagefolder`` task. Prints one JSON line per size: peak RSS
(``ru_maxrss``) after imports and at the end, the bytes of the features kept (N x 1 x D float32)
and the bytes the decoded images would take if all were held at once (N x 3 x px x px uint8).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = 4
COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 220], [230, 220, 40]], dtype=np.float64)


def write(root: Path, n: int, px: int, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    n_val = n // 5
    for i in range(n):
        split = "val" if i < n_val else "train"
        c = i % CLASSES
        d = root / split / f"c{c}"
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(COLOURS[c] + rng.normal(0, 40, (px, px, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)
    return root


def child(root: str, px: int, batch: int) -> dict:
    import resource

    import torch

    from tests.conftest import PROBE_MODEL
    from vjepa.probes import folders, random_encoder
    from vjepa.probes.classify import linear_probe
    from vjepa.probes.stream import extract_folder, storage

    torch.set_num_threads(1)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731 (Linux: KiB)
    encoder = random_encoder(PROBE_MODEL, 0, "cpu")
    base = rss()
    t0 = time.perf_counter()
    data = folders.index({"name": "imagefolder", "folder": ".", "size": [px, px]}, root)
    linear = storage({"kind": "classify", "head": "linear"}, {"name": "imagefolder"})
    f = extract_folder(encoder, data, [-1], linear, batch, 0, "cpu")
    top1 = linear_probe(f, f["y_train"], f["y_val"], CLASSES, {"iters": 100, "wd": 1e-3}, "cpu").value
    n = len(f["train"]) + len(f["val"])
    return {
        "images": n,
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "px": px,
        "extract_batch": batch,
        "peak_rss_after_imports_mb": round(base / 2**20, 1),
        "peak_rss_mb": round(rss() / 2**20, 1),
        "feature_shape_train": list(f["train"].shape),
        "feature_dtype": str(f["train"].dtype),
        "feature_bytes": int(f["train"].nbytes + f["val"].nbytes),
        "decoded_image_bytes_if_held": n * 3 * px * px,
        "top1": top1,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--px", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.px, a.batch)))
        return
    for n in a.sizes:
        with tempfile.TemporaryDirectory(prefix="probe_memory-") as tmp:
            write(Path(tmp), n, a.px)
            cmd = [sys.executable, "-m", "benchmarks.probe_memory", "--child", tmp, "--px", str(a.px)]
            out = subprocess.run(cmd + ["--batch", str(a.batch)], capture_output=True, text=True, check=True)
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            if a.out:
                with open(a.out, "a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
