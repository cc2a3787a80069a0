#!/usr/bin/env bash
# The speed checks behind docs/performance.md in one command, so that a GPU machine lent for a
# short while runs them all. Where the project is installed:
#     bash scripts/speed_checks.sh [check ...]   (PYTHON=.venv/bin/python ... to pick a python)
# The checks, in the order given (without any: speedrun benchmark):
#   speedrun    experiment=speedrun over seeds 0-4 as one sweep (each job records its training
#               step as CUDA graphs; the first also pays the process's CUDA start-up), on the
#               GPU where there is one;
#   benchmark   scripts/benchmark.py with 3 repeats of each comparison;
#   eager       the speedrun sweep with the net not compiled (model.compile=false);
#   eager-eval  the compiled sweep with model.compile_eval=false (validation not compiled);
#   compiled    the speedrun sweep with the net compiled (model.compile_mode=reduce-overhead:
#               torch.compile with CUDA graphs), the alternative to recording the step;
#   fused-adam  the speedrun sweep with Adam's fused step (+model.optimizer.fused=true);
#   bf16        the speedrun sweep in bfloat16 autocast (trainer.precision=bf16-mixed; the
#               step cannot be recorded under autocast, so eagerly: model.compile=false).
# Each writes into $OUT (logs/speed_checks without it) its console (<check>.txt) and, for the
# sweeps, the results table (<check>.md: test accuracy and fit_time_s of each seed), for the
# benchmark benchmark.json. Each check is stopped after its time limit (LIMIT_S seconds, 280
# without it: SIGTERM, then SIGKILL 15 s later), so that a hung one leaves time to the others
# and two fit in ten minutes; on a slow CPU give a larger LIMIT_S (e.g. 1200: the benchmark
# runs past the default there). Ctrl+C stops the script. The exit code is the first failing
# check's (124, or 137 after SIGKILL: out of time), 0 if none failed; an unknown check or limit
# is refused (exit 2) before any runs.
set -uo pipefail
out="$(realpath -m "${OUT:-logs/speed_checks}")"
py="${PYTHON:-$(command -v python || command -v python3)}"  # python3 where python is missing
limit="${LIMIT_S:-280}"
cd "$(dirname "$0")/.."  # the repository root: data/ and logs/ are taken from there
failed=0
keep_first_failure() { [ "$failed" -ne 0 ] || failed=$1; }
# --foreground: the check stays in this script's process group, so that Ctrl+C reaches it;
# the trap then ends the script instead of going on with the next check
trap 'exit 130' INT
trap 'exit 143' TERM
limited() { timeout --foreground -k 15 "$limit" "$@"; }

sweep() {  # name, then overrides beside the preset's
  local name=$1 dir
  dir="logs/speed_checks_$name/$(date +%Y-%m-%d_%H-%M-%S_%N)"  # a new sweep each time
  shift
  limited "$py" -m src.train -m experiment=speedrun seed=0,1,2,3,4 "$@" \
    hydra.sweep.dir="$dir" >"$out/$name.txt" 2>&1 || keep_first_failure $?
  if [ -f "$dir/results.md" ]; then  # none when the sweep was stopped before its end
    cp "$dir/results.md" "$out/$name.md"
  else
    keep_first_failure 1
  fi
  tail -n 12 "$out/$name.txt"
}

if ! [[ "$limit" =~ ^[1-9][0-9]*$ ]]; then
  echo "speed_checks.sh: LIMIT_S='$limit': must be a whole number of seconds >= 1" >&2
  exit 2
fi
checks=("$@")
[ $# -gt 0 ] || checks=(speedrun benchmark)
for check in "${checks[@]}"; do  # all checked before any runs
  case "$check" in
    speedrun | benchmark | eager | compiled | eager-eval | fused-adam | bf16) ;;
    *)
      echo "speed_checks.sh: check '$check': must be speedrun, benchmark, eager, compiled, eager-eval, fused-adam or bf16" >&2
      exit 2
      ;;
  esac
done

mkdir -p "$out"
for check in "${checks[@]}"; do
  case "$check" in
    speedrun) sweep speedrun ;;
    eager) sweep eager model.compile=false ;;
    compiled) sweep compiled model.compile_mode=reduce-overhead ;;
    eager-eval) sweep eager-eval model.compile_mode=reduce-overhead model.compile_eval=false ;;
    fused-adam) sweep fused-adam +model.optimizer.fused=true ;;
    bf16) sweep bf16 trainer.precision=bf16-mixed model.compile=false ;;
    benchmark)
      limited "$py" scripts/benchmark.py --repeats 3 --fit-repeats 3 \
        --out "$out/benchmark.json" 2>&1 | tee "$out/benchmark.txt"
      keep_first_failure "${PIPESTATUS[0]}"
      ;;
  esac
done
exit "$failed"
