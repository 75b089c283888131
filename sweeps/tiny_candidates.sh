#!/usr/bin/env bash
# Re-choosing the tiny preset (docs/tiny_preset.md): configurations at about the first preset's compute per
# run, each trained for 3 seeds with the default image probes beside its random-init encoder, with bootstrap
# errors and 3 refits of every head whose fit is random, as sweeps/sensitivity.sh probes the first preset (batch
# 128, 1000 steps; the CamVid probe's pixels uniform, as then); then the CamVid probe settings of
# reports/tiny_preset/dense.yaml on each run. Results: reports/tiny_preset/<candidate>.csv (analysis.collect)
# and dense.csv, compared by `python -m analysis.tiny_preset`.
#
# Usage: sweeps/tiny_candidates.sh [candidate:seed ...]   (default: every candidate, seeds 0 1 2, seed-major)
# Resumable: a finished run (metrics.json with its random-init probes) is not trained again; an interrupted one
# resumes from its last checkpoint. Two runs at a time, one thread each. OUT defaults to tiny_candidates_out/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-tiny_candidates_out}
PY=${PY:-python}
export OMP_NUM_THREADS=1

declare -A CANDIDATE=(
  [long]="batch_size=64 steps=2000"                   # twice the updates, the same images seen
  [camvid]="batch_size=128 steps=1000 data.image.name=camvid"                # driving photos: the probe's domain
  [px64]="batch_size=128 steps=1000 data.image.size=64 model.patch_size=8"   # 64 px, the same 8 x 8 tokens
)
BASE="preset=tiny data=real data.mix=image loss=token probes=default probes.baseline=true ~probes.tasks.mnist_video
  ~probes.tasks.mnist_video_linear probes.tasks.cifar10_attentive.refits=3 probes.tasks.shapes_seg.refits=3
  probes.tasks.shapes_det.refits=3 probes.tasks.camvid_linear.refits=3 probes.tasks.camvid_linear.pixels=uniform
  threads=1"

run() {  # candidate:seed
  local name=${1%:*} seed=${1#*:}
  [ -n "${CANDIDATE[$name]+x}" ] || { echo "unknown candidate '$name' (${!CANDIDATE[*]})" >&2; return 2; }
  local d="$OUT/$name/seed$seed"
  if ! grep -q '"probe_random/' "$d/metrics.json" 2>/dev/null; then
    # shellcheck disable=SC2086
    $PY -m vjepa.train $BASE ${CANDIDATE[$name]} seed="$seed" run_dir="$d" > "$OUT/$name-seed$seed.log" 2>&1
  fi
  # CamVid probe settings beside random init (its own file: metrics.json keeps
  # the default probes)
  [ -f "$OUT/dense/$name-seed$seed.json" ] || $PY -m vjepa.evaluate run_dir="$d" \
    probes=reports/tiny_preset/dense.yaml threads=1 out="$OUT/dense/$name-seed$seed.json" >> "$OUT/dense.log" 2>&1
}
export -f run
export OUT PY BASE
export CANDIDATE_DEF
CANDIDATE_DEF=$(declare -p CANDIDATE)

jobs=("$@")
if [ ${#jobs[@]} -eq 0 ]; then
  for s in 0 1 2; do for c in long camvid px64; do jobs+=("$c:$s"); done; done
fi
mkdir -p "$OUT/dense"
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c 'eval "$CANDIDATE_DEF"; run "$1"' _ {}
for c in long camvid px64; do
  if compgen -G "$OUT/$c/seed*/metrics.json" > /dev/null; then
    $PY -m analysis.collect "$OUT/$c" --out "reports/tiny_preset/$c.csv"
  fi
done
$PY -m analysis.tiny_preset --dense "$OUT"/dense/*.json
