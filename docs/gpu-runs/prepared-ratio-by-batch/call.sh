#!/usr/bin/env bash
# For the next GPU session (prepared 2026-11-27, seventh session; not yet run): from the project
# root, after `bash ../shared/gpu/prepare.sh`, the device tool's run with carry [".device"],
# timeout_s 300 and
#   bash .device/remote.sh bash docs/gpu-runs/prepared-ratio-by-batch/call.sh
# about 2-3 minutes: the benchmark's throughput row at batches 128, 512 and 2048, eager and
# with the step recorded as CUDA graphs with SGD's fused step (3 repeats a side, alternately).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
timeout -k 5 240 python3 docs/gpu-runs/prepared-ratio-by-batch/ratio_by_batch.py --repeats 3 \
  > "$OUT/ratio-by-batch.txt" 2>&1
grep -E "^NVIDIA|ratio" "$OUT/ratio-by-batch.txt"; tail -3 "$OUT/ratio-by-batch.txt"
echo "all done after $(( $(date +%s) - start )) s"
