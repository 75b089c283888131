#!/usr/bin/env bash
# The published V-JEPA 2.1 tables at the tiny preset (issue 7), 3 seeds each, on real data: Table 12 (deep
# self-supervision) and Table 2 (context-loss weighting) on CIFAR-10 images, Table 1 (the cumulative recipe)
# on the six real clips and, from its "+ data mix" step on, CIFAR-10 images with them.
# Resumable like sweeps/reproduce_tiny.sh: run it again and completed runs are skipped, interrupted ones
# resume from their last checkpoint; seeds go in order, so a partial run already pairs its variants.
# The V-JEPA 2 masks are cut to the smallest in each of 5 groups of 25-26 samples (mask.buckets=5), as Meta's
# collator cuts each GPU's batch of 24 clips, rather than over all 128 samples (README, "Published V-JEPA 2.1
# recipe"). Cost (python sweeps/<name>.py ... dry_run=true): per run 28-43 TFLOP on images (V-JEPA 2.1 masks
# images with one 10-block setting, V-JEPA 2 with the clips' two) and 130-220 TFLOP on clips, 3.9 PFLOP in
# all (Table 12 0.17, Table 2 1.03, Table 1 2.69): about 14 hours of a 2-core CPU, minutes on a GPU.
# Then: nox -s report -- sweeps_out   (collect + regenerate reports/)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
common=(preset=tiny data=real mask.buckets=5)
status=0
for seed in 0 1 2; do
  "$PY" sweeps/deep_supervision.py "${common[@]}" data.mix=image "$@" seed=$seed || status=1
done
for seed in 0 1 2; do
  "$PY" sweeps/context_loss.py "${common[@]}" data.mix=image "$@" seed=$seed || status=1
done
for seed in 0 1 2; do
  "$PY" sweeps/recipe.py "${common[@]}" "$@" seed=$seed || status=1
done
exit $status
