#!/usr/bin/env bash
# call 3: old/new Lightning throughput, default net, processes alternated
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
for i in 1 2 3; do
  for tree in .device/old . ; do
    DEFAULT_ONLY=1 REPEATS=5 timeout 60 python3 .device/ab.py "$tree" 2>&1 | grep '^AB' >> "$OUT/ab3.jsonl"
    echo "$tree done after $(( $(date +%s) - start )) s"
  done
done
