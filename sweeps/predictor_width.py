"""Predictor width ablation: four widths per preset, up to the encoder width D.

    python sweeps/predictor_width.py preset=tiny                # its grid x 3 seeds
    python sweeps/predictor_width.py preset=tiny dry_run=true   # list runs and compute only

Options shared by every sweep: sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("predictor_width")
