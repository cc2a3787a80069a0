#!/usr/bin/env bash
# call 5: tests/test_graphs.py after the review's fixes (the stream warning an error)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 100 python3 -m pytest -q -p no:cacheprovider -W "error:The AccumulateGrad node's stream:UserWarning" tests/test_graphs.py > "$OUT/5-pytest-graphs.txt" 2>&1; tail -30 "$OUT/5-pytest-graphs.txt"
