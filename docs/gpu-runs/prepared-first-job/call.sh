#!/usr/bin/env bash
# For the next GPU session (prepared 2026-11-27, fifth session; not yet run): from the project
# root, after `bash ../shared/gpu/prepare.sh`, the device tool's run with carry [".device"],
# timeout_s 300 and
#   bash .device/remote.sh bash docs/gpu-runs/prepared-first-job/call.sh
# about 2-3 minutes: where a new process's first training steps spend their time (plain torch,
# 4 variants x 3 rounds of new processes), then the speedrun's first two jobs in one process
# under Lightning's SimpleProfiler, job 0 against job 1.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
timeout -k 5 150 python3 docs/gpu-runs/prepared-first-job/run_first_steps.py --rounds 3 \
  > "$OUT/first-steps.txt" 2> "$OUT/first-steps.err"
tail -6 "$OUT/first-steps.txt"; tail -5 "$OUT/first-steps.err"
echo "first steps done after $(elapsed) s"
timeout -k 5 120 python3 -m src.train -m experiment=speedrun seed=0,1 trainer.profiler=simple \
  hydra.sweep.dir="logs/first-job-profile/$(date +%s)" > "$OUT/profile.txt" 2>&1
grep -E "Launching|#[01] :|Profiler Report|run_training_epoch|run_training_batch|\]SingleDeviceStrategy\.(training|validation|test)_step|MNISTDataModule.setup|fit_time" \
  "$OUT/profile.txt" | cut -c1-60,160-260 | head -40
echo "all done after $(elapsed) s"
