#!/usr/bin/env bash
# call 2 (2026-11-27, fifth session): the project's own CUDA warm-up (src/cuda_warmup.py), built
# from call 1's `late` variant: its CUDA tests, the speedrun's first job of new processes with it
# (baseline) and without it (nowarm) or without the freeze (nofreeze), 4 rounds, the preset's
# 5-seed sweep, then where the imports' 11-14 s go. From the project root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27d/call2.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
timeout 90 python3 -m pytest -q -p no:cacheprovider -W "error:The AccumulateGrad node's stream:UserWarning" \
  tests/test_cuda_warmup.py tests/test_graphs.py > "$OUT/pytest-cuda.txt" 2>&1; tail -4 "$OUT/pytest-cuda.txt"
echo "tests done after $(elapsed) s"
timeout -k 5 230 python3 docs/gpu-runs/prepared-startup/first_job.py --rounds 4 --out "$OUT" \
  --variants baseline,nowarm,nofreeze > "$OUT/first-job.txt" 2> "$OUT/first-job.err"
tail -8 "$OUT/first-job.txt"; tail -5 "$OUT/first-job.err"
echo "first jobs done after $(elapsed) s"
rm -rf "$OUT/first-job-runs"  # too many files to come back
LIMIT_S=60 OUT=$OUT bash scripts/speed_checks.sh speedrun > /dev/null 2>&1
cut -d'|' -f2,3,4,10,15,16 "$OUT/speedrun.md" 2>/dev/null
echo "speedrun sweep done after $(elapsed) s"
if [ "$(elapsed)" -lt 340 ]; then
  timeout 30 python3 -X importtime -c "import src.train" 2> "$OUT/importtime.txt"
  sort -t'|' -k2 -n -r "$OUT/importtime.txt" | head -25
fi
echo "all done after $(elapsed) s"
