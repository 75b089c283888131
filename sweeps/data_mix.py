"""Data mix ablation: image-only, video-only and joint image+video batches.

    python sweeps/data_mix.py preset=tiny                # its grid x 3 seeds
    python sweeps/data_mix.py preset=tiny dry_run=true   # list runs and compute only

Options shared by every sweep: sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("data_mix")
