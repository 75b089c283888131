#!/usr/bin/env bash
# Issue 28's GPU measurements, prepared for one call of a lent GPU machine: ViT-L/16 at 256 images, 32 and 8
# clips of 16 x 224 (benchmarks/gpu_mfu.py --issue28, no activation checkpointing), one JSON line per setting
# appended to $OUT/issue28.jsonl with the tree ("before" or "head") and the overrides it ran with.
#
#   bash benchmarks/gpu_issue28.sh before-after   # .before, HEAD, HEAD, .before (alternated: drift hits both)
#   bash benchmarks/gpu_issue28.sh modes          # HEAD with compile=reduce-overhead (CUDA graphs), then
#                                                 # compile=max-autotune-no-cudagraphs
#   bash benchmarks/gpu_issue28.sh profile        # HEAD, 256 images and 8 clips, 5 profiled steps each: the
#                                                 # kernels with the most device time (profile_top in each line)
#   bash benchmarks/gpu_issue28.sh smoke          # the same calls at gpu_mfu's --smoke size, on CPU (tests)
#
# Prepare once, here, in the repository root (the machine has PyTorch and timm, not Hydra):
#   echo /.before/ >> .git/info/exclude                       # wheels/ is ignored already
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d wheels hydra-core==1.3.2 omegaconf==2.3.0   # PyYAML is there
#   python3 -m pip wheel --no-deps -w wheels antlr4-python3-runtime==4.9.3   # published as source only
#   mkdir -p .before && git archive 2e56d23 vjepa benchmarks | tar -x -C .before   # the code measured before
# then run `bash benchmarks/gpu_issue28.sh before-after` there with carry ["wheels", ".before"]. The
# before tree runs HEAD's gpu_mfu.py (its own has no --issue28), which imports the tree it sits in.
# STEPS and WARMUP (default 20 each) shorten a call that would not fit in the command's limit.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
what=${1:-before-after}
before=${BEFORE:-.before}  # the tree of the code before (tests point it elsewhere)
if ! "${PYTHON:-python3}" -c "import hydra" 2>/dev/null && compgen -G "wheels/*.whl" >/dev/null; then
    "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ $what == smoke ]]; then
    size=(--smoke --steps 1 --warmup 0)
else
    size=(--issue28 --no-checkpointing --steps "${STEPS:-20}" --warmup "${WARMUP:-20}")
fi
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

measure() {  # TREE LABEL [OVERRIDES ...]: every setting in one process, its lines tagged
    local tree=$1 label=$2
    shift 2
    if [[ $tree != . ]]; then
        cp benchmarks/gpu_mfu.py "$tree/benchmarks/gpu_mfu_head.py" || return 1
    fi
    local script=$tree/benchmarks/gpu_mfu_head.py
    [[ $tree == . ]] && script=benchmarks/gpu_mfu.py
    echo "[gpu_issue28] $label ${*:-}" >&2
    "$py" "$script" "${size[@]}" --tag "$label" "$@" | tee -a "$out/issue28.jsonl"
}

status=0
case $what in
    before-after | smoke)
        if [[ -d $before ]]; then
            measure "$before" before || status=1
            measure . head || status=1
            measure . head || status=1
            measure "$before" before || status=1
        else
            echo "[gpu_issue28] no $before tree (see the preparation above): HEAD only" >&2
            measure . head || status=1
        fi
        ;;
    profile)
        measure . head --profile 5 --only vitl16_image224_b256 vitl16_video16x224_b8 || status=1
        ;;
    modes)
        measure . head compile=reduce-overhead || status=1
        measure . head compile=max-autotune-no-cudagraphs || status=1
        ;;
    *)
        echo "usage: bash benchmarks/gpu_issue28.sh before-after | modes | profile | smoke" >&2
        exit 2
        ;;
esac
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >"$out/gpu.csv" 2>/dev/null || true
echo "[gpu_issue28] lines in $out/issue28.jsonl" >&2
exit $status
