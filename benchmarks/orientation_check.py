"""How often the runtime's "looks mirrored" and "rows and columns swapped" warnings
(hepatoscan.orientation), and its "reads alike mirrored" one (no anatomy: not CT), fire on CT as
given, and on the same CT mirrored, swapped (as a slice saved straight from a RAS NIfTI array) or
turned. Prints figures; asserts nothing.

    python benchmarks/orientation_check.py [--data ../shared/data] [--every N]

Each HU volume of the data in HU and rendered at W150/L30, W400/L40 and W2000/L0, read whole (as
a NIfTI, or a zip of one series' PNG slices) and every Nth slice as a single image; every other
8-bit slice of the slice sources as a single image; each as given and in the orientations below.
The figures use the shipped model, so they change with it.
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
# (Z, H, W) -> the same slices in another orientation
ORIENTATIONS = {
    "as given": lambda v: v,
    "mirrored": lambda v: v[:, :, ::-1],
    "swapped": lambda v: v.transpose(0, 2, 1)[:, ::-1, ::-1],  # data[:, :, k] of a RAS NIfTI
    "turned 180": lambda v: v[:, ::-1, ::-1],
    "turned 90": lambda v: np.rot90(v, 1, axes=(1, 2)),
    "transposed": lambda v: v.transpose(0, 2, 1),  # data[:, :, k] of an LPS NIfTI
}
WARNINGS = {"mirrored": "mirror image (left and right swapped)", "swapped": "rows and columns swapped",
            "no anatomy": "finds a liver as surely in"}  # the last: reads alike mirrored, not CT
BIG_LIVER = 0.10  # single slices whose expert liver covers more than this share: where detection counts


def _check(predictor: Predictor, pixels: np.ndarray, is_hu: bool, kind: str) -> tuple[float | None, str]:
    """-> (the segmentation's orientation ratio, which warning it gives: "mirrored", "swapped" or "")."""
    spacing = (1.0, 1.0, 1.0) if is_hu else None
    seg = predictor.segment(Scan(np.ascontiguousarray(pixels), is_hu, spacing, kind, "check"))
    said = [name for name, text in WARNINGS.items() if any(text in w for w in seg.warnings)]
    return seg.orientation_ratio, ",".join(said)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--every", type=int, default=3, help="every Nth slice of the HU volumes as a single image")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    predictor = Predictor.from_model_dir()
    singles: dict[str, list[tuple[str, float, str]]] = {o: [] for o in ORIENTATIONS}  # (source, liver, said)
    for case in discover_cases(args.data):
        images, labels = case.load()
        if case.kind != "hu":
            for img, lab in zip(images[::2], labels[::2]):
                for o, turn in ORIENTATIONS.items():
                    said = _check(predictor, turn(img[None]), False, "png")[1]
                    singles[o].append((case.source, (lab > 0).mean(), said))
            continue
        for name, window in RENDERS:
            vol = images if window is None else _render_volume(images, window)
            is_hu, kind = window is None, "nifti" if window is None else "png-stack"
            whole = {o: _check(predictor, turn(vol), is_hu, kind) for o, turn in ORIENTATIONS.items()}
            print(f"{case.patient:14s} {name:9s} whole: " + "; ".join(
                f"{o} {r if r is None else round(r, 2)} {said or '-'}" for o, (r, said) in whole.items()))
            for k in range(0, len(vol), args.every):
                for o, turn in ORIENTATIONS.items():
                    singles[o].append((f"{case.patient} {name}", (labels[k] > 0).mean(),
                                       _check(predictor, turn(vol[k][None]), is_hu, "png")[1]))
    for o, rows in singles.items():
        warned = [r for r in rows if r[2]]
        big = [r for r in rows if r[1] > BIG_LIVER]
        kinds = {w: sum(r[2] == w for r in rows) for w in sorted({r[2] for r in warned})}
        print(f"single slices {o}: {len(warned)} of {len(rows)} warned {kinds}, {sum(bool(r[2]) for r in big)} of "
              f"the {len(big)} with over {BIG_LIVER:.0%} liver"
              + (f" (as given: {', '.join(sorted({r[0] for r in warned}))})" if o == "as given" and warned else ""))


if __name__ == "__main__":
    main()
