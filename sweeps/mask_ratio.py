"""Mask ratio ablation: 60 / 75 / 80 / 90 % of the tokens masked.

    python sweeps/mask_ratio.py preset=tiny                # its grid x 3 seeds
    python sweeps/mask_ratio.py preset=tiny dry_run=true   # list runs and compute only

Options shared by every sweep: sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("mask_ratio")
