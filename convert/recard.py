"""Refresh the shipped model's card after a change of the runtime's reading, the .tflite kept.

    python -m training.evaluate --model models --data ../shared/data --split test+val --windows \\
        --json runs/eval.json
    python -m convert.recard --model models --eval runs/eval.json --version 1.8.0 \\
        --why "the body cropped to fill body_fill of the square"

The card's input block (the reading's description, the window estimate's landmarks, body_fill)
is written anew from hepatoscan.preprocessing, its metrics and post-processing effect from the
evaluation, its version bumped; the file, its sha256, the quantization record and the training
history stay, with the earlier version named in ``training.restored_from``. Run the evaluation with
a card that already names the new reading (a copy of models/ with the field edited), so that its
figures are the new reading's.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hepatoscan.model_card import find_card
from hepatoscan.preprocessing import InputSpec, window_estimate_landmarks

from .quantize import INPUT_PREPROCESSING, postprocessing_effect

log = logging.getLogger("convert.recard")


def recard(card: dict, metrics: dict, version: str, why: str, spec: InputSpec = InputSpec()) -> dict:
    """-> a copy of ``card`` (a shipped card's JSON) carrying today's reading, ``metrics`` (an
    evaluation's JSON) and ``version``; ``why``: the change, for training.restored_from."""
    out = json.loads(json.dumps(card))
    out["version"] = version
    out["input"].update({"body_fill": spec.body_fill, "preprocessing": INPUT_PREPROCESSING,
                         "window_estimate": window_estimate_landmarks()})
    out["metrics"] = metrics
    out["postprocessing"]["effect"] = postprocessing_effect(metrics)
    before = card["training"].get("restored_from")
    out["training"]["restored_from"] = (f"{card['name']} {card['version']} (the same .tflite, read anew: {why}"
                                        + (f"; itself the weights of {before})" if before else ")"))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models"), help="the folder of the shipped model and card")
    p.add_argument("--eval", type=Path, required=True, help="training.evaluate's JSON of the new reading")
    p.add_argument("--version", required=True)
    p.add_argument("--why", required=True, help="what changed, in a few words")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    card = find_card(a.model)
    path = card.model_path.with_suffix(".json")
    path.write_text(json.dumps(recard(card.raw, json.loads(a.eval.read_text()), a.version, a.why),
                               indent=1, ensure_ascii=False))
    log.info("%s: version %s -> %s", path, card.version, a.version)


if __name__ == "__main__":
    main()
