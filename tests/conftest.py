"""Shared fixtures. Tests that need the shared CT data skip, with the reason, when it is absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SAMPLES = ROOT / "samples"
MODELS = ROOT / "models"
DATA = Path(os.environ.get("HEPATOSCAN_DATA", ROOT.parent / "shared" / "data"))


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "manifest.json").exists():
        pytest.skip(f"shared CT data not found at {DATA} (set HEPATOSCAN_DATA or place ../shared/data)")
    return DATA


@pytest.fixture(scope="session")
def predictor():
    from hepatoscan.predictor import Predictor

    return Predictor.from_model_dir(MODELS)


@pytest.fixture(scope="session")
def sample_pngs() -> list[tuple[Path, np.ndarray]]:
    """[(png path, (H, W) uint8 label mask 0/1/2)] of the shipped LiTS 117 slices."""
    out = []
    for p in sorted(SAMPLES.glob("lits117_z*_w*.png")):
        if p.name.endswith("_mask.png"):
            continue
        out.append((p, np.asarray(Image.open(p.with_name(p.stem + "_mask.png")))))
    assert out, "samples/ is empty: run python scripts/fetch_samples.py"
    return out


@pytest.fixture(scope="session")
def sample_volume():
    """(path, (Z, H, W) HU, (Z, H, W) labels) of LiTS case 117."""
    import nibabel as nib

    from hepatoscan.io import load_scan
    from hepatoscan.io.nifti import read_nifti

    vol = SAMPLES / "lits117_volume.nii.gz"
    labels = read_nifti(nib.load(str(SAMPLES / "lits117_segmentation.nii.gz")))[0]  # display order, as the CT
    return vol, load_scan(vol).pixels, np.rint(labels).astype(np.uint8)


def viewer_screenshot(slice_grey: np.ndarray, canvas_hw, at_yx, grey: int, jpeg: int | None = None) -> np.ndarray:
    """The slice pasted into a viewer-like panel of one grey, with a caption and a dark button."""
    from PIL import ImageDraw

    canvas = Image.new("L", canvas_hw[::-1], grey)
    canvas.paste(Image.fromarray(slice_grey), at_yx[::-1])
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 4), "Series 3  Img 80/128  W:350 L:50", fill=255)
    draw.rectangle((8, canvas_hw[0] - 24, 120, canvas_hw[0] - 6), fill=30)
    out = np.asarray(canvas)
    if jpeg:
        from training.augment import jpeg_roundtrip

        return jpeg_roundtrip(out, jpeg)
    return out
