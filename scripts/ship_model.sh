#!/usr/bin/env bash
# Train (optional), convert, evaluate and ship a model with its card, reproducibly.
#   VERSION=1.4.0 scripts/ship_model.sh runs/NAME [--train]
# The run may also be a weight average (python -m training.average runs/A runs/B --out runs/NAME)
# or the shipped model restored (python -m training.restore --out runs/NAME), e.g. to re-choose its thresholds.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: VERSION=x.y.z scripts/ship_model.sh runs/NAME [--train]}
version=${VERSION:?set VERSION to the model version the card will carry, e.g. VERSION=1.4.0}
data=${HEPATOSCAN_DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=.
if [ "${2:-}" = "--train" ]; then
  $py -m training.train --data "$data" --out "$run" --epochs 16 --steps 100 --max-minutes 46
fi
$py -m convert.quantize "$run" --out models --data "$data" --version "$version"
# The liver threshold is chosen on the validation patients and written into the card before the
# evaluation, so the held-out figures are those of the thresholds users get.
$py -m training.threshold --model models --data "$data" --json "$run/threshold.json"
$py -m convert.quantize "$run" --out models --data "$data" --update-card --version "$version"
$py -m training.evaluate --model models --data "$data" --split test+val --windows --json "$run/eval.json" | tee "$run/eval.txt"
$py -m convert.quantize "$run" --out models --data "$data" --update-card --version "$version"
