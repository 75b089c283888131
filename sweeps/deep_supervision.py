"""Deep self-supervision (published Table 12): the V-JEPA 2.1 recipe with and without the 4-level targets and

    python sweeps/deep_supervision.py preset=tiny                  # every point x 3 seeds (grid: sweeps/conf/deep_supervision.yaml)
    python sweeps/deep_supervision.py preset=tiny dry_run=true     # the runs and their compute, nothing launched

Options shared by every sweep: see sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("deep_supervision")
