#!/usr/bin/env bash
# Screen a candidate before shipping it: int8 only, evaluated at the shipped model's liver threshold,
# compared with the shipped model. About a third of ship_model.sh's time; models/ is not touched.
#   scripts/screen_model.sh runs/NAME
# Writes runs/NAME/screen/ (the int8 model and its card) and runs/NAME/screen/eval.json.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/screen_model.sh runs/NAME}
data=${HEPATOSCAN_DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=.
liver=$($py -c "from hepatoscan.model_card import find_card; print(find_card('models').thresholds['liver'])")
$py -m convert.quantize "$run" --out "$run/screen" --data "$data" --variants int8 --version screen
$py -m training.evaluate --model "$run/screen" --data "$data" --split test+val --windows \
    --liver-threshold "$liver" --json "$run/screen/eval.json" > "$run/screen/eval.txt"
$py -m training.compare models "$run/screen/eval.json"
