"""Rebuild a run folder from the shipped model, to fine-tune it or average it with a fine-tune.

    python -m training.restore --model models --out runs/shipped
    python -m training.train --out runs/NEXT --init runs/shipped/model.keras ...
    python -m training.average runs/shipped runs/NEXT --out runs/NEXTavg

Run folders stay out of git (runs/ is ignored), so a fresh clone has none. ``models/`` keeps
what a run needs: the float model (``source/hepatoscan_unet.keras``), its recipe
(``training_config.json``) and, in the card, the patient split and the history of the chain of
fine-tunes and averages behind it. The restored folder holds them as a run does (``model.keras``,
``config.json``, ``split.json``) plus the card itself (``card.json``), from which
``convert.quantize`` records the shipped model's history in the next model's card.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from hepatoscan.model_card import find_card

log = logging.getLogger("training.restore")


def restore_run(model_dir: Path, out: Path) -> Path:
    """models/ -> out/{model.keras, config.json, split.json, card.json}; -> out."""
    card = find_card(model_dir)
    source = model_dir / "source" / "hepatoscan_unet.keras"
    config = model_dir / "training_config.json"
    for path in (source, config):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {model_dir} holds no float source model to restore; "
                                    "check out the repository's models/ folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, out / "model.keras")
    shutil.copy(config, out / "config.json")
    (out / "split.json").write_text(json.dumps(card.raw["training"]["split"], indent=1))
    (out / "card.json").write_text(json.dumps(card.raw, indent=1))
    log.info("restored %s %s into %s", card.name, card.version, out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models", type=Path, help="the folder of the shipped model and its card")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    restore_run(a.model, a.out)


if __name__ == "__main__":
    main()
