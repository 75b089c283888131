#!/usr/bin/env bash
# The published V-JEPA 2.1 tables at the tiny preset (issue 7), 3 seeds each, on real data: Table 12 (deep
# self-supervision) and Table 2 (context-loss weighting) on CIFAR-10 images, Table 1 (the cumulative recipe)
# on the six real clips and, from its "+ data mix" step on, CIFAR-10 images with them.
# Resumable like sweeps/reproduce_tiny.sh: run it again and completed runs are skipped, interrupted ones
# resume from their last checkpoint; seeds go in order, so a partial run already pairs its variants.
# Cost (python sweeps/<name>.py ... dry_run=true): per run about 38-40 TFLOP on images and 150-190 TFLOP on
# clips (multi-mask V-JEPA 2 steps), 3.6 PFLOP in all (Table 12 0.25, Table 2 0.97, Table 1 2.43): about
# 12 hours of a 2-core CPU, minutes on a GPU.
# Then: nox -s report -- sweeps_out   (collect + regenerate reports/)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
status=0
for seed in 0 1 2; do
  "$PY" sweeps/deep_supervision.py preset=tiny data=real data.mix=image "$@" seed=$seed || status=1
done
for seed in 0 1 2; do
  "$PY" sweeps/context_loss.py preset=tiny data=real data.mix=image "$@" seed=$seed || status=1
done
for seed in 0 1 2; do
  "$PY" sweeps/recipe.py preset=tiny data=real "$@" seed=$seed || status=1
done
exit $status
