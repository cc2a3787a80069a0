#!/usr/bin/env bash
# For the next GPU session (prepared 2026-11-27, fourth session; not yet run): from the project
# root, after `bash ../shared/gpu/prepare.sh`, the device tool's run with carry [".device"],
# timeout_s 560 and
#   bash .device/remote.sh bash docs/gpu-runs/prepared-startup/call.sh
# about 6-7 minutes on an H100: 18 new processes of the speedrun's first job (first_job.py),
# then the preset's 5-seed sweep with this code (speed_checks.sh speedrun).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
timeout -k 5 330 python3 docs/gpu-runs/prepared-startup/first_job.py --rounds 3 --out "$OUT" \
  > "$OUT/first-job.txt" 2> "$OUT/first-job.err"
tail -8 "$OUT/first-job.txt"; tail -5 "$OUT/first-job.err"
echo "first jobs done after $(( $(date +%s) - start )) s"
rm -rf "$OUT/first-job-runs"  # too many files to come back
LIMIT_S=120 OUT=$OUT bash scripts/speed_checks.sh speedrun
echo "all done after $(( $(date +%s) - start )) s"
cut -d'|' -f2,3,4,10,15,16 "$OUT/speedrun.md" 2>/dev/null
