#!/usr/bin/env bash
# call 4 (2026-11-27, sixth session; code as call 1's): the default recipe (5 epochs) on the GPU,
# eager against the step recorded as CUDA graphs, alternately, new processes. From the root:
#   bash .device/remote.sh bash docs/gpu-runs/2026-11-27e/call4.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
for run in eager1 graphs1 eager2 graphs2; do
  extra=(); [[ $run == graphs* ]] && extra=(model.compile=true model.compile_mode=cuda-graphs)
  t0=$(date +%s.%N)
  timeout -k 5 80 python3 -m src.train trainer=gpu "${extra[@]}" hydra.run.dir="logs/call4/$run" \
    > "$OUT/$run.txt" 2>&1
  rc=$?
  python3 -c "import json,sys; r=json.load(open('logs/call4/$run/result.json')); print('$run rc $rc', r['status'], 'test_acc', round(r['test_acc'],4), 'fit_time_s', r['fit_time_s'], 'wall_time_s', r['wall_time_s'], 'process_s', round($(date +%s.%N)-$t0,1))"
  if (( $(date +%s) - start > 180 )); then break; fi
done
echo "all done after $(( $(date +%s) - start )) s"
