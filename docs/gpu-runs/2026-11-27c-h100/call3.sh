#!/usr/bin/env bash
# call 3: the GPU tests again (TF32 off, the warning an error), and a short preset run's console
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 120 python3 -m pytest -q -p no:cacheprovider -W "error:The AccumulateGrad node's stream:UserWarning" tests/test_graphs.py > "$OUT/3-pytest-graphs.txt" 2>&1; tail -25 "$OUT/3-pytest-graphs.txt"
timeout 90 python3 -m src.train experiment=speedrun +trainer.limit_train_batches=30 test=false paths.output_dir=/tmp/short > "$OUT/3-short-run.txt" 2>&1; echo "rc=$?"
grep -n "Warning\|recorded\|metrics" "$OUT/3-short-run.txt" | cut -c1-250
