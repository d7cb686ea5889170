#!/bin/sh
# The fleet benchmark's repositories: 8 histories of stdlib edits (bench/build_history_small.py,
# seeds 1-8, 1,500-3,000 commits each), into bench/work/fleet/repos/ (gitignored), and the
# list file bench/work/fleet/repos.txt. About 2 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=$PWD/bench/work/fleet
mkdir -p "$OUT/repos"
: > "$OUT/repos.txt"
for seed in 1 2 3 4 5 6 7 8; do
  commits=$(( 1500 + (seed % 4) * 500 ))
  repo="$OUT/repos/stdlib-$seed"
  [ -e "$repo/.git/bench-marks" ] || "$PY" bench/build_history_small.py --out "$repo" \
      --commits "$commits" --seed "$seed" > "$OUT/build-$seed.log"
  echo "$repo" >> "$OUT/repos.txt"
done
