#!/usr/bin/env bash
# call 2 (2026-11-27, third session): GPU tests of the recorded step, the preset sweep (a new
# process), the benchmark, then the eager and compiled sweeps as same-machine baselines
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
python3 .device/startup.py > "$OUT/0-startup.txt" 2>&1; cat "$OUT/0-startup.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py > "$OUT/1-pytest-graphs.txt" 2>&1; tail -5 "$OUT/1-pytest-graphs.txt"
echo "tests done after $(( $(date +%s) - start )) s"
LIMIT_S=100 OUT=$OUT bash scripts/speed_checks.sh speedrun
echo "speedrun sweep done after $(( $(date +%s) - start )) s"
LIMIT_S=200 OUT=$OUT bash scripts/speed_checks.sh benchmark > /dev/null 2>&1
grep -A40 "benchmark (" "$OUT/benchmark.txt" | head -45
echo "benchmark done after $(( $(date +%s) - start )) s"
LIMIT_S=80 OUT=$OUT bash scripts/speed_checks.sh eager > /dev/null 2>&1
echo "eager sweep done after $(( $(date +%s) - start )) s"
LIMIT_S=110 OUT=$OUT bash scripts/speed_checks.sh compiled > /dev/null 2>&1
echo "all done after $(( $(date +%s) - start )) s"
for f in "$OUT"/*.md; do echo "== $f"; cut -d'|' -f2,3,4,10,15,16 "$f"; done
grep -h "recorded as CUDA graphs\|UserWarning" "$OUT"/speedrun.txt | head -8
