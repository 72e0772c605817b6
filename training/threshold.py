"""Choose the liver threshold of a converted model on the validation patients, for its card.

    python -m training.threshold --model runs/NAME/models --data ../shared/data --json runs/NAME/threshold.json

The card's thresholds are what every user and every outside scorer applies, so they are chosen on
validation patients (never the held-out test volumes), through the runtime itself: for each
candidate, the model segments every validation slice (Predictor with the candidate in its card,
post-processing included) and the liver Dice is pooled per patient, as ``training.evaluate``
reports it. The candidate with the best mean over patients wins. The tumor threshold stays at 0.5:
no validation patient has labelled tumors to choose it on.
``convert.quantize`` reads the JSON and writes the thresholds, and how they were chosen, into the card.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from hepatoscan.model_card import find_card
from hepatoscan.predictor import Predictor

from .data import discover_cases
from .evaluate import evaluate_cases, with_liver_threshold

log = logging.getLogger("training.threshold")

LIVER_CANDIDATES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
TUMOR_THRESHOLD = 0.5


def pooled_liver_dice(card, cases, liver_threshold: float) -> tuple[float, float]:
    """-> (mean, worst) over patients of the pooled liver Dice with ``liver_threshold`` in the card."""
    trial = with_liver_threshold(card, liver_threshold)
    rows = evaluate_cases(Predictor(trial, verify=False), cases)["slice_sources"]
    values = [r["liver_dice_pooled"] for r in rows if r["liver_dice_pooled"] is not None]
    return float(np.mean(values)), float(np.min(values))


def choose_liver_threshold(card, cases, candidates=LIVER_CANDIDATES) -> dict:
    """-> {"liver", "tumor", "chosen_on", "grid": {threshold: {"mean", "worst"}}}."""
    if not cases:
        raise ValueError("no validation patients with 8-bit slices to choose a threshold on")
    grid = {}
    for t in candidates:
        mean, worst = pooled_liver_dice(card, cases, t)
        grid[f"{t:g}"] = {"mean": round(mean, 4), "worst": round(worst, 4)}
        log.info("liver threshold %g: pooled liver Dice mean %.4f, worst patient %.4f", t, mean, worst)
    best = max(candidates, key=lambda t: grid[f"{t:g}"]["mean"])
    return {"liver": best, "tumor": TUMOR_THRESHOLD, "grid": grid,
            "chosen_on": f"liver: best mean pooled liver Dice over the {len(cases)} validation patients "
                         f"(8-bit slices, runtime path with post-processing) among {list(candidates)}; "
                         f"tumor: {TUMOR_THRESHOLD}, untuned (no tumor-labelled validation patient)"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models", type=Path, help="model folder with the converted model's card")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--json", required=True, type=Path, help="where to write the choice (the run's threshold.json)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    card = find_card(a.model)
    val_ids = set(card.raw["training"]["split"]["val"])  # the model's own validation patients
    val = [c for c in discover_cases(a.data) if c.patient in val_ids and c.kind != "hu"]
    choice = choose_liver_threshold(card, val)
    a.json.write_text(json.dumps(choice, indent=1))
    log.info("chose liver %g, tumor %g -> %s", choice["liver"], choice["tumor"], a.json)


if __name__ == "__main__":
    main()
