# What the reproduction scripts share (sourced by sweeps/reproduce_*.sh, from the checkout's root):
# - PYTHONPATH: the sourcing checkout's own code first, also where the Python is another checkout's editable
#   install (a worktree of a fixed commit run with the main checkout's virtual environment).
# - sweep SCRIPT ARGS...: runs one sweep unless an earlier one was stopped or drained (exit 75: Ctrl-C or
#   SIGTERM to its python process, or SIGUSR1 to drain it: its running runs finish, no further one starts);
#   other failures set status=1.
# - random_init SWEEP PATTERN: probes the random-init encoder (the one pretraining started from) of every
#   completed run of SWEEP at preset=tiny whose directory name matches PATTERN, alone (`python -m
#   vjepa.evaluate baseline=only`), unless its metrics.json already has those numbers. The report's "random
#   init" row takes one such run per seed (analysis/tables.py): about 2 minutes each. After a drain these still
#   run (a partial reproduction is whole as far as it goes); after Ctrl-C / SIGTERM to the script nothing more
#   starts.
# - finish: ends the calling script, exit 75 if a sweep was stopped or drained, else its status.
export PYTHONPATH="$PWD:$PWD/sweeps/plugins${PYTHONPATH:+:$PYTHONPATH}"
trap 'stopped=1' INT TERM HUP
random_init() {
  local d out=${VJEPA_SWEEPS_OUT:-sweeps_out}
  [ -n "${stopped:-}" ] && return
  for d in "$out/$1/preset=tiny/"$2; do
    [ -f "$d/metrics.json" ] || continue
    grep -q '"probe_random/' "$d/metrics.json" && continue
    "${PY:-python}" -m vjepa.evaluate run_dir="$d" baseline=only threads=1 > /dev/null || status=1
  done
}

sweep() {
  [ -n "${halted:-}${stopped:-}" ] && return
  "${PY:-python}" "$@"
  local rc=$?
  if [ $rc -eq 75 ]; then halted=1; elif [ $rc -ne 0 ]; then status=1; fi
}

finish() {
  [ -n "${halted:-}${stopped:-}" ] && exit 75
  exit "${status:-0}"
}
