"""Loss granularity ablation: block-level vs dense token-level prediction loss.

    python sweeps/loss_granularity.py preset=tiny                # its grid x 3 seeds
    python sweeps/loss_granularity.py preset=tiny dry_run=true   # list runs and compute only

Options shared by every sweep: sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("loss_granularity")
