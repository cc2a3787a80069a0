#!/usr/bin/env bash
# call 1 (2026-11-27, third session): CUDA-graph step checks, speedrun sweeps, loop ratios
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; start=$(date +%s)
python3 .device/startup.py > "$OUT/0-startup.txt" 2>&1; cat "$OUT/0-startup.txt"
timeout 90 python3 .device/graphcheck.py > "$OUT/1-graphcheck.txt" 2>&1; tail -30 "$OUT/1-graphcheck.txt"
echo "check done after $(( $(date +%s) - start )) s"
LIMIT_S=100 OUT=$OUT bash scripts/speed_checks.sh graphs
echo "graphs sweep done after $(( $(date +%s) - start )) s"
d=logs/graphs-fused; timeout 100 python3 -m src.train -m experiment=speedrun seed=0,1,2,3,4 model.compile_mode=cuda-graphs +model.optimizer.fused=true hydra.sweep.dir=$d > "$OUT/graphs-fused.txt" 2>&1; cp $d/results.md "$OUT/graphs-fused.md"
echo "fused sweep done after $(( $(date +%s) - start )) s"
timeout 200 python3 .device/loops.py 2>&1 | grep '^LOOPS' > "$OUT/4-loops.jsonl"
echo "all done after $(( $(date +%s) - start )) s"
cat "$OUT"/*.md
python3 -c "
import json
for l in open('$OUT/4-loops.jsonl'):
    r = json.loads(l[6:]); print(r['variant'], r.get('ratio'), r.get('bare_img_s'), r.get('lightning_img_s'), r.get('error'))"
