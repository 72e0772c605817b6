"""Thick-slice CT made from the shared HU volumes, segmented with and without the flat-lesion rule
(postprocess.flat_lesions): lesions found and false lesions at each thickness. Prints figures;
asserts nothing.

    python benchmarks/thick_slices.py [--data ../shared/data]

Each volume's slices are averaged in groups of k (a thicker reconstruction), the expert's tumor
by majority over the group; the spacing says the new thickness, so the rule applies (LiTS 117, whose spacing the data call unknown, at its NIfTI's nominal 1 mm).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from hepatoscan import agreement  # noqa: E402
from hepatoscan.config import PostprocessConfig  # noqa: E402
from hepatoscan.predictor import Predictor  # noqa: E402
from hepatoscan.scan import Scan  # noqa: E402
from training.data import discover_cases  # noqa: E402

GROUPS = (1, 2, 3, 5)  # slices averaged into one; kept where the result is at most 6.5 mm thick


def thicken(images: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Z, H, W) HU and labels -> (Z // k, H, W) int16 HU means, and the tumor by majority."""
    n = images.shape[0] // k

    def groups(a):
        return a[:n * k].reshape(n, k, *a.shape[1:]).mean(axis=1)
    return np.rint(groups(images.astype(np.float32))).astype(np.int16), groups(labels == 2) > 0.5


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    predictor = Predictor.from_model_dir()
    with_rule, without = predictor.postprocess, PostprocessConfig(min_lesion_thickness_ratio=0.0)
    for case in discover_cases(args.data):
        if case.kind != "hu":
            continue
        images, labels = case.load()
        sz, (sy, sx) = case.spacing_z_mm or 1.0, case.spacing_yx_mm or (1.0, 1.0)  # LiTS 117: nominal 1 mm
        for k in GROUPS:
            if k > 1 and sz * k > 6.5:
                continue
            hu, tumor = thicken(images, labels, k)
            spacing = (sz * k, sy, sx)
            row = []
            for name, cfg in (("with the rule", with_rule), ("without", without)):
                predictor.postprocess = cfg
                seg = predictor.segment(Scan(hu, True, spacing, "nifti", case.patient))
                d = agreement.lesion_detection(tumor, seg.tumor.astype(bool), spacing[1:])
                dice = agreement.dice(seg.tumor.astype(bool), tumor)
                row.append(f"{name}: {d.hepatoscan_lesions} lesions, {d.detected} of {d.reference_lesions} found"
                           + (f", tumor Dice {dice:.3f}" if dice is not None and tumor.any() else ""))
            predictor.postprocess = with_rule
            print(f"{case.patient} {spacing[0]:.1f} mm ({hu.shape[0]} slices): " + "; ".join(row), flush=True)


if __name__ == "__main__":
    main()
