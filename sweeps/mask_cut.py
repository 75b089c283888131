"""Mask cut (Meta's raster-order cut vs a random subset of each sample's tokens), on the V-JEPA 2.1 recipe:

    python sweeps/mask_cut.py preset=tiny                  # every point x 3 seeds (grid: sweeps/conf/mask_cut.yaml)
    python sweeps/mask_cut.py preset=tiny dry_run=true     # the runs and their compute, nothing launched

Options shared by every sweep: see sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("mask_cut")
