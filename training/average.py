"""Average the weights of fine-tuned models into a new run folder (a two-point "model soup").

    python -m training.average runs/v5 runs/v6 --out runs/v6avg

Each run folder holds a ``model.keras`` of the same architecture, fine-tuned one from another (so
their weights lie in one basin), trained on the same patient split. The output folder gets the
mean of all weights, BatchNorm statistics included, as ``model.keras``, with a ``config.json`` that
records the runs averaged (``train.averaged_from``) and the shared ``split.json``, so
``convert.quantize`` and ``training.evaluate`` treat it as any other run.

Measured (runs/v6avg = mean of v5 and v6, model 1.4.0): a fine-tune towards clipped livers (v6)
raised the W150/L30 export and the tumor figures but cost 0.003 to 0.004 liver Dice on the other
windows; the mean kept most of those gains (W150/L30 0.842 -> 0.860 where v6 alone had 0.850) and
the other windows came back to v5's. See the README for the runs that did not ship.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger("training.average")


class AverageError(ValueError):
    """The runs cannot be averaged (different architectures or patient splits)."""


def mean_weights(weight_lists: list[list]) -> list:
    """[[array, ...] per model] -> [mean array, ...]; every model must have the same shapes."""
    shapes = [[w.shape for w in ws] for ws in weight_lists]
    if any(s != shapes[0] for s in shapes[1:]):
        raise AverageError("the models have different architectures: only fine-tunes of one network can be averaged")
    return [sum(ws) / len(ws) for ws in zip(*weight_lists)]


def average_runs(runs: list[Path], out: Path) -> Path:
    """Write the mean of the runs' model.keras weights to out/model.keras (with config and split)."""
    import keras

    if len(runs) < 2:
        raise AverageError("give at least two run folders to average")
    splits = [json.loads((r / "split.json").read_text()) for r in runs]
    if any(s != splits[0] for s in splits[1:]):
        raise AverageError("the runs were trained on different patient splits: their mean has no held-out set")
    models = [keras.saving.load_model(r / "model.keras", compile=False) for r in runs]
    merged = models[0]
    merged.set_weights(mean_weights([m.get_weights() for m in models]))
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / "model.keras")
    config = json.loads((runs[-1] / "config.json").read_text())
    config["train"].update(epochs=0, init=None, averaged_from=[str(r / "model.keras") for r in runs])
    (out / "config.json").write_text(json.dumps(config, indent=1))
    shutil.copy(runs[-1] / "split.json", out / "split.json")
    log.info("mean of %s written to %s", [str(r) for r in runs], out / "model.keras")
    return out / "model.keras"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders with model.keras, config.json, split.json")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    average_runs(a.runs, a.out)


if __name__ == "__main__":
    main()
