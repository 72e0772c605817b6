"""How often the runtime's "does not look like a CT slice" warnings fire on CT, and on images that
are not CT. Prints figures; asserts nothing.

    python benchmarks/not_ct_check.py [--data ../shared/data] [--non-ct DIR ...]

CT: every slice of the shared HU volumes rendered with the evaluation grid's display windows and
variants (training.evaluate: WINDOW_GRID, VARIANTS, QUALITY) and three narrower liver windows, and
every 8-bit slice of the shared slice sources, each read as the runtime reads an 8-bit upload (the
region inside a uniform surround: preprocessing.content_box). Not CT: every PNG/JPEG/GIF under the
folders given, run through the whole runtime (pipeline.analyze).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from hepatoscan.config import QualityConfig
from hepatoscan.errors import HepatoScanError
from hepatoscan.preprocessing import content_box, to_grayscale
from hepatoscan.quality import looks_like_page, page_shares
from training.data import discover_cases
from training.evaluate import QUALITY, VARIANTS, WINDOW_GRID, _render_volume

NARROW = [("W100/L30", (-20, 80), 1.0, None), ("W100/L60", (10, 110), 1.0, None), ("W80/L40", (0, 80), 1.0, None)]
NOT_CT_WORDS = ("does not look like a CT slice", "If it is a photo or a drawing")


def _region(gray: np.ndarray) -> np.ndarray:
    g = to_grayscale(gray)
    box = content_box(g)
    return g if box is None else g[box[0]:box[1], box[2]:box[3]]


def ct_shares(data: str) -> dict[str, list[tuple[float, float]]]:
    """-> {render name: [(white share, dark share) per slice]} over every CT slice of ``data``."""
    out: dict[str, list[tuple[float, float]]] = {}
    renders = ([(n, w, 1.0, None, 0.0, 1.0) for n, w in WINDOW_GRID] + [(*v, 0.0, 1.0) for v in VARIANTS]
               + [(*v, 0.0, 1.0) for v in NARROW] + [(n, w, 1.0, None, b, s) for n, w, b, s in QUALITY])
    for case in discover_cases(data):
        images, _ = case.load()
        if case.kind == "hu":
            for name, window, gamma, jpeg, blur_px, shrink in renders:
                vol = _render_volume(images, window, gamma, jpeg, blur_px, shrink)
                out.setdefault(name, []).extend(page_shares(_region(s)) for s in vol)
        else:
            out.setdefault(f"8-bit slices ({case.source})", []).extend(page_shares(_region(s)) for s in images)
    return out


def non_ct_warned(folders: list[str]) -> tuple[int, int, list[str]]:
    """-> (images warned as not CT, images read, names of the ones not warned)."""
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    predictor = Predictor.from_model_dir()
    warned, read, missed = 0, 0, []
    files = sorted(f for d in folders for f in Path(d).rglob("*")
                   if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif"))
    for f in files:
        try:
            result = analyze(predictor, f)
        except HepatoScanError:
            continue
        read += 1
        if any(w in text for text in result.warnings for w in NOT_CT_WORDS):
            warned += 1
        else:
            missed.append(f.name)
    return warned, read, missed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--non-ct", nargs="*", default=[], help="folders of images that are not CT")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = QualityConfig()
    total = flagged = 0
    for name, shares in ct_shares(args.data).items():
        a = np.array(shares)
        hits = sum(looks_like_page(w, d, cfg) for w, d in shares)
        low_dark = a[a[:, 1] < cfg.page_max_dark_fraction]
        total, flagged = total + len(a), flagged + hits
        print(f"CT {name:28s} {len(a):4d} slices, warned {hits}; white share max {a[:, 0].max():.3f}, "
              f"where under {cfg.page_max_dark_fraction:.0%} dark: {len(low_dark)} slices, "
              f"white max {low_dark[:, 0].max() if len(low_dark) else 0:.3f}")
    print(f"CT all: {flagged} of {total} slices warned as a page")
    if args.non_ct:
        warned, read, missed = non_ct_warned(args.non_ct)
        print(f"not CT: {warned} of {read} images warned (page or mostly colour); not warned: {', '.join(missed)}")


if __name__ == "__main__":
    main()
