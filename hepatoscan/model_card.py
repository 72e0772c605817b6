"""The model card: the single source of truth for input size, HU window and thresholds."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .preprocessing import InputSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    model_path: Path  # the .tflite beside the card
    sha256: str
    input_spec: InputSpec
    thresholds: dict  # {"liver": float, "tumor": float}
    outputs: tuple[str, ...]  # ("liver", "tumor")
    quantization: str
    raw: dict  # the whole card, for reports (metrics, training provenance)

    @classmethod
    def from_json(cls, card_path: str | Path) -> "ModelCard":
        card_path = Path(card_path)
        try:
            raw = json.loads(card_path.read_text())
            inp = raw["input"]
            spec = InputSpec(height=int(inp["height"]), width=int(inp["width"]),
                             window_hu=(float(inp["window_hu"][0]), float(inp["window_hu"][1])),
                             body_fill=None if inp.get("body_fill") is None else float(inp["body_fill"]))
            return cls(name=raw["name"], version=str(raw["version"]), model_path=card_path.parent / raw["file"],
                       sha256=raw["sha256"], input_spec=spec,
                       thresholds={k: float(v) for k, v in raw["thresholds"].items()},
                       outputs=tuple(raw["outputs"]), quantization=str(raw.get("quantization", {}).get("type", "unknown")),
                       raw=raw)
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"cannot read model card {card_path}: {e}. Restore it from the repository.") from e
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelError(f"model card {card_path} lacks or mangles field {e}; it needs name, version, "
                             "file, sha256, input{height,width,window_hu}, outputs, thresholds.") from e

    def validation_summary(self) -> str:
        """The card's held-out figures in words, for reports: "" when the card has none."""
        m = self.raw.get("metrics", {}).get("summary", {})
        parts = []
        if "liver_dice_per_case_mean" in m:
            vols = f"{m['volumes']} held-out CT volumes" if "volumes" in m else "held-out CT volumes"
            tumor = ""
            if "tumor_dice_per_case_mean" in m:
                tumor = f", tumor Dice {m['tumor_dice_per_case_mean']:.2f} where tumors are labelled"
            parts.append(f"{vols}: liver Dice {m['liver_dice_per_case_mean']:.2f}{tumor}")
        if "lesion_recall_10mm_mean" in m:
            parts.append(f"lesions of 10 mm or more found: {100 * m['lesion_recall_10mm_mean']:.0f}%")
        if "liver_dice_8bit_pooled_mean" in m:
            parts.append(f"8-bit images of {m.get('slice_patients', 'held-out')} held-out patients: "
                         f"liver Dice {m['liver_dice_8bit_pooled_mean']:.2f}")
        if "window_grid_min_liver_dice" in m:
            parts.append(f"worst display window (W150 to W2000): liver Dice {m['window_grid_min_liver_dice']:.2f}")
        return "; ".join(parts)

    def verify(self) -> None:
        """Check that the .tflite exists and matches the card's sha256."""
        if not self.model_path.exists():
            raise ModelError(f"model file {self.model_path} named by the card is missing. Restore "
                             "models/ from the repository (git checkout models/).")
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise ModelError(f"{self.model_path.name} does not match its card (sha256 {digest[:12]}... "
                             f"!= {self.sha256[:12]}...): the file is corrupt or was replaced. Restore it, or "
                             "regenerate the card with python -m convert.quantize.")


def find_card(model_dir: str | Path, name: str | None = None) -> ModelCard:
    """The card named ``name`` in ``model_dir``, else the one marked ``"default": true``."""
    model_dir = Path(model_dir)
    if model_dir.is_file() and model_dir.suffix == ".json":
        return ModelCard.from_json(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model folder {model_dir} does not exist; pass the folder that holds the "
                         ".tflite and its .json card (the repository's models/).")
    cards = sorted(model_dir.glob("*.json"))
    matches = []
    for path in cards:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (name and raw.get("name") == name) or (not name and raw.get("default") is True):
            matches.append(path)
    if len(matches) > 1:
        raise ModelError(f"{len(matches)} cards in {model_dir} match ({', '.join(p.name for p in matches)}); "
                         "keep one model per folder, or pass the card's name.")
    if matches:
        return ModelCard.from_json(matches[0])
    raise ModelError(f"no {'card named ' + name if name else 'default model card'} in {model_dir} "
                     f"({len(cards)} .json files). Restore models/ from the repository.")
