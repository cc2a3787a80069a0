#!/usr/bin/env bash
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 120 python3 -m pytest -q -p no:cacheprovider -W "error:The AccumulateGrad node's stream:UserWarning" tests/test_graphs.py > "$OUT/4-pytest-graphs.txt" 2>&1; tail -25 "$OUT/4-pytest-graphs.txt"
