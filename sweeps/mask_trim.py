"""Mask trim (the last block kept in part loses its last raster-order tokens vs a side chosen at random), at the
preset's own masks (the tiny preset: ratio 0.6, met exactly by trimming):

    python sweeps/mask_trim.py preset=tiny                  # every point x 3 seeds (grid: sweeps/conf/mask_trim.yaml)
    python sweeps/mask_trim.py preset=tiny dry_run=true     # the runs and their compute, nothing launched

Options shared by every sweep: see sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("mask_trim")
