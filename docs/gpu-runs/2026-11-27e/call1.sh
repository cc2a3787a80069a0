#!/usr/bin/env bash
# call 1 (2026-11-27, sixth session; code at b79123d), asked of an H100: the speedrun's 5-seed
# sweep and the benchmark (the figures on its card), then the prepared first-job
# experiment (../prepared-first-job). From the project root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27e/call1.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
LIMIT_S=100 OUT=$OUT bash scripts/speed_checks.sh speedrun > /dev/null 2>&1
cut -d'|' -f2,3,4,10,15,16 "$OUT/speedrun.md" 2>/dev/null
grep -c "Tensor Cores" "$OUT/speedrun.txt"
echo "speedrun sweep done after $(elapsed) s"
LIMIT_S=190 OUT=$OUT bash scripts/speed_checks.sh benchmark > /dev/null 2>&1
grep -A40 "benchmark (" "$OUT/benchmark.txt" | grep -v "^\s*$" | head -45
echo "benchmark done after $(elapsed) s"
OUT=$OUT timeout -k 5 220 bash docs/gpu-runs/prepared-first-job/call.sh
echo "all done after $(elapsed) s"
