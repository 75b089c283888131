# Sourced by the reproduction scripts: random_init SWEEP PATTERN probes the random-init encoder (the one
# pretraining started from) of every completed run of SWEEP at preset=tiny whose directory name matches
# PATTERN, alone (`python -m vjepa.evaluate baseline=only`), unless its metrics.json already has those numbers.
# The report's "random init" row takes one such run per seed (analysis/tables.py): about 2 minutes each.
random_init() {
  local d out=${VJEPA_SWEEPS_OUT:-sweeps_out}
  for d in "$out/$1/preset=tiny/"$2; do
    [ -f "$d/metrics.json" ] || continue
    grep -q '"probe_random/' "$d/metrics.json" && continue
    "${PY:-python}" -m vjepa.evaluate run_dir="$d" baseline=only threads=1 > /dev/null || status=1
  done
}
