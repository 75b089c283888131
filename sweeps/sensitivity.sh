#!/usr/bin/env bash
# The probes as a measuring instrument (reports/sensitivity/): the default tiny run, 3 seeds, probed with the
# old probe set (v1) and today's (default), each beside its random-init encoder, with bootstrap errors and 3
# refits of every head whose fit is random; then candidate settings of the dense probes; then the report.
# Resumable: a trained run is not trained again, and a probed copy keeps its numbers (delete its metrics.json
# probe keys to probe again). Two processes at a time, one thread each. OUT defaults to sensitivity_out/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-sensitivity_out}
PY=${PY:-python}
export OMP_NUM_THREADS=1
# the preset as first shipped (batch 128, 1000 steps) and the CamVid probe's uniform pixels of that time
RUN="preset=tiny batch_size=128 steps=1000 data=real data.mix=image loss=token"
REFITS="probes.tasks.cifar10_attentive.refits=3 probes.tasks.mnist_video.refits=3 probes.tasks.shapes_seg.refits=3
  probes.tasks.shapes_det.refits=3 probes.tasks.camvid_linear.refits=3"

train() { $PY -m vjepa.train $RUN seed="$1" probes=none threads=1 run_dir="$OUT/runs/seed$1"; }
probe() {  # probe set, seed
  local d="$OUT/$1/default_tiny/preset=tiny/data.mix=image,data=real,loss=token,seed=$2"
  [ -d "$d" ] || { mkdir -p "$d" && cp -r "$OUT/runs/seed$2/." "$d/"; }
  if ! grep -q '"probe_random/' "$d/metrics.json" 2>/dev/null; then
    local extra=""
    [ "$1" = v1 ] && extra="probes.bootstrap=1000 probes.tasks.shapes_det.bootstrap=200"
    [ "$1" = default ] && extra="probes.tasks.camvid_linear.pixels=uniform"
    # shellcheck disable=SC2086
    $PY -m vjepa.evaluate run_dir="$d" probes="$1" baseline=true threads=1 $REFITS $extra
  fi
}
candidates() {  # seed
  [ -f "$OUT/candidates/seed$1.json" ] || $PY -m vjepa.evaluate run_dir="$OUT/runs/seed$1" \
    probes=reports/sensitivity/dense_candidates.yaml threads=1 out="$OUT/candidates/seed$1.json"
}

mkdir -p "$OUT/candidates"
train 0 & train 1 & wait
train 2
for s in 0 1 2; do probe v1 "$s" & probe default "$s" & wait; done
candidates 0 & candidates 1 & wait
candidates 2
for v in v1 default; do $PY -m analysis.collect "$OUT/$v" --out "reports/sensitivity/$v.csv"; done
$PY -m analysis.sensitivity --dir reports/sensitivity --candidates "$OUT"/candidates/seed*.json
