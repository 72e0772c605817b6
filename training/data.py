"""Read CT with liver/tumor labels into per-patient cases, and split them by patient.

Layouts understood (``discover_cases``):

* the shared data folder: ``manifest.json`` + ``volumes/<case>/{volume,segmentation}.nii.gz`` and
  ``slices/<source>/{images,masks}/<patient>_<slice>.png``;
* the LiTS download: ``volume-N.nii`` + ``segmentation-N.nii`` (any folder depth);
* the MSD Task03 layout: ``imagesTr/*.nii.gz`` + ``labelsTr/*.nii.gz``.

Labels: 0 background, 1 liver, 2 tumor. A case carries ``tumor_labeled``: where it is False the
tumor channel must not be trained or scored (liver there includes any tumor).
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hepatoscan.io.nifti import read_nifti

log = logging.getLogger(__name__)

HELD_OUT_ALWAYS = ("lits_117",)  # the shipped sample and a test case: never trained on


@dataclass
class Case:
    """One patient. ``kind`` is "hu" (volume in HU) or "windowed8" (8-bit display slices)."""

    patient: str
    source: str
    kind: str
    tumor_labeled: bool
    spacing_yx_mm: tuple[float, float] | None = None
    spacing_z_mm: float | None = None
    volume_path: Path | None = None
    label_path: Path | None = None
    slice_files: list[tuple[Path, Path]] = field(default_factory=list)
    window_hu: tuple[float, float] | None = None  # known display window of 8-bit slices

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (images (Z, H, W): float32 HU or uint8 grey, labels (Z, H, W) uint8 in {0, 1, 2})."""
        if self.kind == "hu":
            import nibabel as nib

            vol, _, _ = read_nifti(nib.load(str(self.volume_path)))
            lab, _, _ = read_nifti(nib.load(str(self.label_path)))
            return vol.astype(np.float32), np.rint(lab).astype(np.uint8)
        imgs = [np.asarray(Image.open(i).convert("L"), np.uint8) for i, _ in self.slice_files]
        labs = [np.asarray(Image.open(m), np.uint8) for _, m in self.slice_files]
        return np.stack(imgs), np.stack(labs)


def _shared_cases(root: Path) -> list[Case]:
    manifest = json.loads((root / "manifest.json").read_text())
    cases: list[Case] = []
    for src in manifest["sources"]:
        path = root / src["path"]
        if src["kind"] == "volume":
            sz, sy, sx = src["spacing_zyx_mm"]
            cases.append(Case(
                patient=src["patients"][0], source=src["name"], kind="hu",
                tumor_labeled=bool(src["tumor_labeled"]),
                spacing_yx_mm=(sy, sx) if src.get("spacing_known", True) else None,
                spacing_z_mm=sz if src.get("spacing_known", True) else None,
                volume_path=path / "volume.nii.gz", label_path=path / "segmentation.nii.gz"))
            continue
        by_patient: dict[str, list[tuple[Path, Path]]] = {}
        for img in sorted((path / "images").glob("*.png")):
            patient = img.stem.rsplit("_", 1)[0]
            by_patient.setdefault(patient, []).append((img, path / "masks" / img.name))
        for patient, files in sorted(by_patient.items()):
            window = tuple(src["window_hu"]) if src.get("window_hu") else None
            cases.append(Case(patient=patient, source=src["name"], kind="windowed8",
                              tumor_labeled=bool(src["tumor_labeled"]), slice_files=files,
                              window_hu=window))
    return cases


def _paired_volume_cases(root: Path) -> list[Case]:
    cases = []
    for vol in sorted(root.rglob("volume-*.nii*")):
        seg = vol.with_name(vol.name.replace("volume-", "segmentation-"))
        if seg.exists():
            cases.append(Case(patient="lits_" + vol.name.split("-")[1].split(".")[0], source="lits",
                              kind="hu", tumor_labeled=True, volume_path=vol, label_path=seg))
    for img_dir in sorted(root.rglob("imagesTr")):
        for vol in sorted(img_dir.glob("*.nii*")):
            seg = img_dir.parent / "labelsTr" / vol.name
            if seg.exists() and not vol.name.startswith("._"):
                cases.append(Case(patient="msd_" + vol.name.split(".")[0], source="msd", kind="hu",
                                  tumor_labeled=True, volume_path=vol, label_path=seg))
    return cases


def discover_cases(root: str | Path) -> list[Case]:
    """All labelled cases under ``root``, in any of the supported layouts."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data folder {root} does not exist; pass --data PATH")
    cases = _shared_cases(root) if (root / "manifest.json").exists() else []
    cases += _paired_volume_cases(root) if not cases else []
    if not cases:
        raise FileNotFoundError(f"no labelled CT found under {root} (expected manifest.json, "
                                "volume-N.nii + segmentation-N.nii, or imagesTr/ + labelsTr/)")
    log.info("found %d cases under %s", len(cases), root)
    return cases


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 117  # recorded in the model card
    val_fraction: float = 0.15  # of the patients of each source with more than 3 patients
    held_out: tuple[str, ...] = HELD_OUT_ALWAYS + ("chaos_ct_set3",)  # whole patients for testing


def split_by_patient(cases: list[Case], cfg: SplitConfig = SplitConfig()) -> dict[str, list[Case]]:
    """-> {"train": [...], "val": [...], "test": [...]}; never splits a patient's slices."""
    rng = random.Random(cfg.seed)
    out: dict[str, list[Case]] = {"train": [], "val": [], "test": []}
    by_source: dict[str, list[Case]] = {}
    for c in cases:
        if c.patient in cfg.held_out:
            out["test"].append(c)
        else:
            by_source.setdefault(c.source, []).append(c)
    for source, group in sorted(by_source.items()):
        group = sorted(group, key=lambda c: c.patient)
        if len(group) > 3:
            rng.shuffle(group)
            n_val = max(1, round(cfg.val_fraction * len(group)))
            out["val"] += group[:n_val]
            out["train"] += group[n_val:]
        else:
            out["train"] += group
    return out
