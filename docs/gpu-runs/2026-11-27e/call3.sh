#!/usr/bin/env bash
# call 3 (2026-11-27, sixth session; code as call 1's): graphs_throughput.py, the benchmark's
# throughput row with the step recorded as CUDA graphs and SGD's fused step. From the root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27e/call3.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
timeout -k 5 200 python3 docs/gpu-runs/2026-11-27e/graphs_throughput.py --repeats 3 \
  > "$OUT/graphs-throughput.txt" 2>&1
grep -E "^NVIDIA|ratio" "$OUT/graphs-throughput.txt"; tail -3 "$OUT/graphs-throughput.txt"
echo "all done after $(( $(date +%s) - start )) s"
