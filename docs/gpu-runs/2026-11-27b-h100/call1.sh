#!/usr/bin/env bash
# call 1: the speedrun sweeps (cold cache first), then old/new Lightning throughput
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s)
LIMIT_S=120 OUT=$OUT bash scripts/speed_checks.sh speedrun eager-eval
mv "$OUT/speedrun.md" "$OUT/speedrun-cold.md"; mv "$OUT/speedrun.txt" "$OUT/speedrun-cold.txt"
LIMIT_S=90 OUT=$OUT bash scripts/speed_checks.sh speedrun
echo "sweeps done after $(( $(date +%s) - start )) s"
for tree in .device/old . ; do
  timeout 100 python3 .device/ab.py "$tree" 2>&1 | grep '^AB' >> "$OUT/ab.jsonl"
done
echo "all done after $(( $(date +%s) - start )) s"
cat "$OUT"/*.md
