"""Predictor width ablation: four widths per preset, up to the encoder width D.

    python sweeps/predictor_width.py preset=tiny                # its grid x 3 seeds
    python sweeps/predictor_width.py preset=tiny dry_run=true   # list runs and compute only

Options shared by every sweep: sweeps/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweeps.common import ablation_main  # noqa: E402

if __name__ == "__main__":
    ablation_main("predictor_width")
