#!/usr/bin/env bash
# Thread placement on a 2-core CPU (issue 28): the default against OMP_PROC_BIND=close OMP_PLACES=cores (B)
# and that with OMP_WAIT_POLICY=ACTIVE (C), the eager anchor_s1 step at 2 threads, one process each, alternated
# A B C C B A twice; prints each process's median step (ms). Pause other work on the machine first.
cd "$(dirname "$0")/.."
run() {  # label env...
  local label=$1; shift
  env "$@" "${PYTHON:-python}" -m vjepa.bench --setting anchor_s1 --steps 10 --warmup 3 --threads 2 --no-parts 2>/dev/null \
    | python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(sys.argv[1], round(d["step_ms"],1), flush=True)' "$label"
}
for r in 1 2; do
  run A; run B OMP_PROC_BIND=close OMP_PLACES=cores; run C OMP_PROC_BIND=close OMP_PLACES=cores OMP_WAIT_POLICY=ACTIVE
  run C OMP_PROC_BIND=close OMP_PLACES=cores OMP_WAIT_POLICY=ACTIVE; run B OMP_PROC_BIND=close OMP_PLACES=cores; run A
done
