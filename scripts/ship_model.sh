#!/usr/bin/env bash
# Train (optional), convert, evaluate and ship a model with its card, reproducibly.
#   scripts/ship_model.sh runs/NAME [--train]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/ship_model.sh runs/NAME [--train]}
data=${HEPATOSCAN_DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=.
if [ "${2:-}" = "--train" ]; then
  $py -m training.train --data "$data" --out "$run" --epochs 16 --steps 100 --max-minutes 46
fi
$py -m convert.quantize "$run" --out models --data "$data"
$py -m training.evaluate --model models --data "$data" --split test+val --windows --json "$run/eval.json" | tee "$run/eval.txt"
$py -m convert.quantize "$run" --out models --data "$data" --update-card
