#!/usr/bin/env bash
# The published V-JEPA 2.1 tables at the tiny preset (issue 7), 3 seeds each, on real data: Table 12 (deep
# self-supervision) and Table 2 (context-loss weighting) on CIFAR-10 images, Table 1 (the cumulative recipe)
# on the six real clips and, from its "+ data mix" step on, CIFAR-10 images with them.
# Image-only training leaves a separate video tokenizer untrained, so Table 12 (V-JEPA 2.1's tokenizer per
# modality) reports no video column; Table 2 (V-JEPA 2's shared 3-D tokenizer, trained on repeated frames)
# keeps its video probes, but motion (the SSv2 stand-in) is learnt from static images only.
# Resumable like sweeps/reproduce_tiny.sh: run it again and completed runs are skipped, interrupted ones
# resume from their last checkpoint; seeds go in order, so a partial run already pairs its variants.
# Drain it as sweeps/reproduce_tiny.sh says.
# The V-JEPA 2 masks are cut in 8 buckets of samples of similar union size (mask.buckets=8
# mask.bucket_by=size), so each sample keeps nearly its own masks, as the per-sample fractions the paper states
# (a cut over all 128 samples would mask 83 / 90 % for short / long range instead of 65 / 81 %; README,
# "Published V-JEPA 2.1 recipe"). Cost (python sweeps/<name>.py ... dry_run=true): per run 36-58 TFLOP on
# images (V-JEPA 2.1 masks images with one 10-block setting, V-JEPA 2 with the clips' two) and 168-305 TFLOP
# on clips, 5.3 PFLOP in all (Table 12 0.22, Table 2 1.39, Table 1 3.66): about 20 hours of a 2-core CPU,
# minutes on a GPU.
# On a machine without the run directories of earlier sessions, pass hydra.sweeper.recorded=reports/results.csv:
# the points the committed table records as completed (same configuration) are skipped.
# Across machines of more than one kind: PYTHON=sweeps/pin_platform.py keeps each sweep on the platform (CPU
# instruction set, GPU, torch build) of its completed runs, so no table mixes roundings.
# Then: nox -s report -- sweeps_out --update   (collect into reports/, keeping the recorded runs; regenerate)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
source sweeps/reproduce_common.sh
# one torch thread a run (the golden run's setting) on any machine: on CPU the thread count changes the float
# rounding, so a table trained partly elsewhere or with fewer points left would otherwise mix numerics
common=(preset=tiny data=real mask.buckets=8 mask.bucket_by=size threads=1)
status=0
# one call per table: its runs go seed by seed, two at a time, a finished run's slot taking the next; then the
# random-init baseline of one run per seed (each table's first row: the report's "random init" row is that
# network where the variants' encoders differ)
sweep sweeps/deep_supervision.py "${common[@]}" data.mix=image "$@"
random_init deep_supervision "*model.deep_supervision=False,seed=[0-9]*"
sweep sweeps/context_loss.py "${common[@]}" data.mix=image "$@"
random_init context_loss "context_variant=lambda0,*seed=[0-9]*"
sweep sweeps/recipe.py "${common[@]}" "$@"
random_init recipe "*recipe_step=vjepa2,seed=[0-9]*"
finish
