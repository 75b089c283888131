"""The published recipe, cumulatively (Table 1 steps that run at small scale): V-JEPA 2 -> + context loss ->

    python sweeps/recipe.py preset=tiny                  # every point x 3 seeds (grid: sweeps/conf/recipe.yaml)
    python sweeps/recipe.py preset=tiny dry_run=true     # the runs and their compute, nothing launched

Options shared by every sweep: see sweeps/README.md.
"""

from sweeps.common import ablation_main

if __name__ == "__main__":
    ablation_main("recipe")
