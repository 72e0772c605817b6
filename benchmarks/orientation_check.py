"""How often the runtime's "looks mirrored left-right" warning (hepatoscan.mirror) fires on CT as
given, and on the same CT mirrored. Prints figures; asserts nothing.

    python benchmarks/orientation_check.py [--data ../shared/data] [--every N]

Each HU volume of the data in HU and rendered at W150/L30, W400/L40 and W2000/L0, read whole (as
a NIfTI, or a zip of one series' PNG slices) and every Nth slice as a single image; every other
8-bit slice of the slice sources as a single image; each as given and mirrored left-right. The
figures use the shipped model, so they change with it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from hepatoscan.predictor import Predictor
from hepatoscan.scan import Scan
from training.data import discover_cases
from training.evaluate import _render_volume

RENDERS = [("HU", None), ("W150/L30", (-45, 105)), ("W400/L40", (-160, 240)), ("W2000/L0", (-1000, 1000))]
WARNING = "mirrored left-right (or turned by 180 degrees)"
BIG_LIVER = 0.10  # single slices whose expert liver covers more than this share: where detection counts


def _check(predictor: Predictor, pixels: np.ndarray, is_hu: bool, kind: str) -> tuple[float | None, bool]:
    """-> (the segmentation's mirror ratio, whether it warns that the input looks mirrored)."""
    spacing = (1.0, 1.0, 1.0) if is_hu else None
    seg = predictor.segment(Scan(np.ascontiguousarray(pixels), is_hu, spacing, kind, "check"))
    return seg.mirror_ratio, any(WARNING in w for w in seg.warnings)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--every", type=int, default=3, help="every Nth slice of the HU volumes as a single image")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    predictor = Predictor.from_model_dir()
    singles = []  # (source, liver share, (ratio, warned) as given, mirrored)
    for case in discover_cases(args.data):
        images, labels = case.load()
        if case.kind != "hu":
            for img, lab in zip(images[::2], labels[::2]):
                singles.append((case.source, (lab > 0).mean(), _check(predictor, img[None], False, "png"),
                                _check(predictor, img[None, :, ::-1], False, "png")))
            continue
        for name, window in RENDERS:
            vol = images if window is None else _render_volume(images, window)
            is_hu, kind = window is None, "nifti" if window is None else "png-stack"
            given, mirrored = _check(predictor, vol, is_hu, kind), _check(predictor, vol[:, :, ::-1], is_hu, kind)
            print(f"{case.patient:14s} {name:9s} whole: ratio as given {given[0]}, mirrored {mirrored[0]}; "
                  f"warned {given[1]} / {mirrored[1]}")
            for k in range(0, len(vol), args.every):
                singles.append((f"{case.patient} {name}", (labels[k] > 0).mean(),
                                _check(predictor, vol[k][None], is_hu, "png"),
                                _check(predictor, vol[k][None, :, ::-1], is_hu, "png")))
    given_warned = [s for s in singles if s[2][1]]
    big = [s for s in singles if s[1] > BIG_LIVER]
    print(f"single slices: {len(given_warned)} of {len(singles)} warned as given "
          f"({', '.join(sorted({s[0] for s in given_warned}))}); mirrored, warned {sum(s[3][1] for s in singles)} "
          f"of {len(singles)}, {sum(s[3][1] for s in big)} of the {len(big)} with over {BIG_LIVER:.0%} liver")


if __name__ == "__main__":
    main()
