#!/usr/bin/env bash
# The small-scale reproduction committed in reports/: the four design-document ablations at the tiny preset,
# 3 seeds each (loss granularity 6), on real data (CIFAR-10 images from ../shared/data; the data-mix sweep adds the six real clips).
# Resumable: run it again and completed runs are skipped, interrupted ones resume from their last checkpoint.
# To stop it by a given time with no run half trained, drain the sweep running: `pkill -USR1 -f 'sweeps/[a-z_]*\.py'`
# (its runs finish, no further sweep starts, the random-init probes of the completed runs run; exit 75).
# On machines that do not keep their disks: `python -m sweeps.archive save sweeps_out reports/rerun` after a
# drain carries the completed runs (without checkpoints) to the next machine, where
# `python -m sweeps.archive restore reports/rerun sweeps_out` puts them back before this script runs again.
# Seeds go in order (all variants of seed 0 first) so a partial reproduction already pairs its variants;
# points shared between sweeps (the preset's own values) are trained once and adopted by the others.
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
common=(preset=tiny data=real data.mix=image threads=1 "$@")
status=0
# each sweep runs its points seed by seed, CPUs // threads at a time, a finished run's slot taking the next
sweep sweeps/loss_granularity.py "${common[@]}"
sweep sweeps/mask_ratio.py "${common[@]}"  # its 0.6 point is loss_granularity's loss=token run
sweep sweeps/predictor_width.py "${common[@]}"
# the seed's core ablation (dense vs block) gets 3 more seeds (6 in all): with 3 seeds the smallest difference
# it can detect on the headline probes (reports/tiny_preset: CIFAR-10 linear 0.026, k-NN 0.025) is larger than
# the differences between variants the first reproduction measured (0.001-0.013)
sweep sweeps/loss_granularity.py "${common[@]}" seed=3,4,5
# video and joint batches cost 3-5x an image batch: last
sweep sweeps/data_mix.py preset=tiny data=real threads=1 "$@"
# the random-init baselines, one run per seed (the joint data-mix run: both tokenizers are probed)
random_init loss_granularity '*loss=token,seed=[0-9]*'
random_init mask_ratio '*mask.ratio=0.8,seed=[0-9]*'
random_init predictor_width '*predictor.width=64,seed=[0-9]*'
random_init data_mix 'data.mix=joint,*seed=[0-9]*'
finish
