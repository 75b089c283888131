"""Context-loss weighting (published Table 2): on top of V-JEPA 2 (recipe=vjepa2), lambda 0 / 0.05 / 0.2 / 0.5 / 1

    python sweeps/context_loss.py preset=tiny                  # every point x 3 seeds (grid: sweeps/conf/context_loss.yaml)
    python sweeps/context_loss.py preset=tiny dry_run=true     # the runs and their compute, nothing launched

Options shared by every sweep: see sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("context_loss")
