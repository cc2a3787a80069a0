#!/usr/bin/env bash
# The speed figures of the README's "Speed" section in one command (a GPU machine is often lent
# for minutes only). On a GPU machine without the project's packages (../shared/gpu/README.md),
# after `bash ../shared/gpu/prepare.sh` here and sending the tree with .device/ there:
#     bash .device/remote.sh bash scripts/speed_checks.sh
# and where the project is installed: bash scripts/speed_checks.sh (PYTHON=.venv/bin/python ...).
# It runs
#   1. experiment=speedrun over seeds 0-4 as one sweep (the first job compiles, the others find
#      the compiled net in the cache), on the GPU where there is one;
#   2. scripts/benchmark.py with 3 repeats of each comparison;
# and writes into $OUT (logs/speed_checks without it): speedrun.md (the sweep's results table:
# test accuracy and fit_time_s of each seed), speedrun.txt, benchmark.json and benchmark.txt
# (the consoles). Its exit code is the first failing step's, 0 if none failed.
set -uo pipefail
out="$(realpath -m "${OUT:-logs/speed_checks}")"
py="${PYTHON:-python}"
cd "$(dirname "$0")/.."  # the repository root: data/ and logs/ are taken from there
sweep="logs/speed_checks_speedrun/$(date +%Y-%m-%d_%H-%M-%S)"  # a new sweep each time
mkdir -p "$out"
failed=0
keep_first_failure() { [ "$failed" -ne 0 ] || failed=$1; }

"$py" -m src.train -m experiment=speedrun seed=0,1,2,3,4 hydra.sweep.dir="$sweep" \
  >"$out/speedrun.txt" 2>&1 || keep_first_failure $?
cp "$sweep/results.md" "$out/speedrun.md" || keep_first_failure $?
tail -n 12 "$out/speedrun.txt"

"$py" scripts/benchmark.py --repeats 3 --fit-repeats 3 --out "$out/benchmark.json" 2>&1 |
  tee "$out/benchmark.txt"
keep_first_failure "${PIPESTATUS[0]}"
exit "$failed"
