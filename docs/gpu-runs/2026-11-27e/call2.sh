#!/usr/bin/env bash
# call 2 (2026-11-27, sixth session; code as call 1's): step_profile.py, where Lightning's
# extra time a training step goes with the default net. From the project root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27e/call2.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
timeout -k 5 200 python3 docs/gpu-runs/2026-11-27e/step_profile.py --out "$OUT" \
  > "$OUT/step-profile.txt" 2>&1
grep -E "^repeat|^==|^   [a-zA-Z]" "$OUT/step-profile.txt"
gzip "$OUT"/*-trace.json
echo "all done after $(( $(date +%s) - start )) s"
