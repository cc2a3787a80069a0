#!/usr/bin/env bash
# call 1 (2026-11-27, fifth session; code at 65c1365): the prepared start-up comparison
# (../prepared-startup: 18 new processes of the speedrun's first job, 6 variants x 3 rounds),
# the preset's 5-seed sweep, the benchmark, then the CUDA tests of tests/test_graphs.py if
# time is left. From the project root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27d/call1.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
timeout -k 5 250 python3 docs/gpu-runs/prepared-startup/first_job.py --rounds 3 --out "$OUT" \
  > "$OUT/first-job.txt" 2> "$OUT/first-job.err"
tail -8 "$OUT/first-job.txt"; tail -5 "$OUT/first-job.err"
echo "first jobs done after $(elapsed) s"
rm -rf "$OUT/first-job-runs"  # too many files to come back
LIMIT_S=100 OUT=$OUT bash scripts/speed_checks.sh speedrun > /dev/null 2>&1
cut -d'|' -f2,3,4,10,15,16 "$OUT/speedrun.md" 2>/dev/null
echo "speedrun sweep done after $(elapsed) s"
LIMIT_S=190 OUT=$OUT bash scripts/speed_checks.sh benchmark > /dev/null 2>&1
grep -A40 "benchmark (" "$OUT/benchmark.txt" | head -45
echo "benchmark done after $(elapsed) s"
if [ "$(elapsed)" -lt 480 ]; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider -W "error:The AccumulateGrad node's stream:UserWarning" tests/test_graphs.py \
    > "$OUT/pytest-graphs.txt" 2>&1; tail -4 "$OUT/pytest-graphs.txt"
fi
echo "all done after $(elapsed) s"
