"""How often the runtime's "does not look like a CT slice" and "model unsure" warnings fire on CT, and
on images that are not CT. Prints figures; asserts nothing.

    python benchmarks/not_ct_check.py [--data ../shared/data] [--non-ct DIR ...] [--unsure-every N]

CT: every slice of the shared HU volumes rendered with the evaluation grid's display windows and
variants (training.evaluate: WINDOW_GRID, VARIANTS, QUALITY), three narrower liver windows, a lung
and a bone window, and
every 8-bit slice of the shared slice sources, each read as the runtime reads an 8-bit upload (the
region inside a uniform surround: preprocessing.content_box). Not CT: every PNG/JPEG/GIF under the
folders given, run through the whole runtime (pipeline.analyze).

Model unsure (quality.unsure_fraction): every Nth slice of each HU render and of each 8-bit source,
segmented as a single image, and each HU render segmented whole as a stack of 8-bit slices (as a
zip of one series' PNGs is read); the counts use the shipped model, so they change with it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from hepatoscan.config import QualityConfig
from hepatoscan.errors import HepatoScanError
from hepatoscan.preprocessing import content_box, to_grayscale
from hepatoscan.quality import looks_like_page, page_shares
from hepatoscan.scan import Scan
from training.data import discover_cases
from training.evaluate import QUALITY, VARIANTS, WINDOW_GRID, _render_volume

NARROW = [("W100/L30", (-20, 80), 1.0, None), ("W100/L60", (10, 110), 1.0, None), ("W80/L40", (0, 80), 1.0, None)]
NOT_CT_WORDS = ("does not look like a CT slice", "not look like CT", "If it is a photo or a drawing", "The model is unsure")
LUNG_BONE = [("W1500/L-600 lung", (-1350, 150), 1.0, None), ("W2000/L500 bone", (-500, 1500), 1.0, None)]


def _region(gray: np.ndarray) -> np.ndarray:
    g = to_grayscale(gray)
    box = content_box(g)
    return g if box is None else g[box[0]:box[1], box[2]:box[3]]


def ct_shares(data: str) -> dict[str, list[tuple[float, float]]]:
    """-> {render name: [(white share, dark share) per slice]} over every CT slice of ``data``."""
    out: dict[str, list[tuple[float, float]]] = {}
    for case in discover_cases(data):
        images, _ = case.load()
        if case.kind == "hu":
            for name, window, gamma, jpeg, blur_px, shrink in _renders():
                vol = _render_volume(images, window, gamma, jpeg, blur_px, shrink)
                out.setdefault(name, []).extend(page_shares(_region(s)) for s in vol)
        else:
            out.setdefault(f"8-bit slices ({case.source})", []).extend(page_shares(_region(s)) for s in images)
    return out


def _as_grey_png(path: Path) -> bytes:
    """The image as the runtime reads it (transparency over black), saved as a grey PNG."""
    import io

    from hepatoscan.io import load_scan

    buf = io.BytesIO()
    Image.fromarray(np.rint(to_grayscale(load_scan(path).pixels[0])).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def non_ct_warned(folders: list[str], as_grey: bool = False) -> tuple[int, int, list[str]]:
    """-> (images warned as not CT or the model unsure, images read, names of the ones not warned).
    as_grey: each image converted to grey first (a grey photo or screenshot: no colour warning)."""
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    predictor = Predictor.from_model_dir()
    warned, read, missed = 0, 0, []
    files = sorted(f for d in folders for f in Path(d).rglob("*")
                   if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif"))
    for f in files:
        try:
            result = (analyze(predictor, _as_grey_png(f), f.stem + ".png") if as_grey
                      else analyze(predictor, f))
        except (HepatoScanError, OSError):
            continue
        read += 1
        if any(w in text for text in result.warnings for w in NOT_CT_WORDS):
            warned += 1
        else:
            missed.append(f.name)
    return warned, read, missed


def _renders():
    return ([(n, w, 1.0, None, 0.0, 1.0) for n, w in WINDOW_GRID] + [(*v, 0.0, 1.0) for v in VARIANTS]
            + [(*v, 0.0, 1.0) for v in NARROW + LUNG_BONE] + [(n, w, 1.0, None, b, s) for n, w, b, s in QUALITY])


def ct_unsure(data: str, every: int) -> tuple[dict[str, list[float]], dict[str, list[float | None]]]:
    """-> ({render: unsure fractions of single slices with liver enough to judge},
    {render: unsure fraction of each HU volume's render read as a stack})."""
    from hepatoscan.predictor import Predictor

    predictor = Predictor.from_model_dir()
    slices: dict[str, list[float]] = {}
    stacks: dict[str, list[float | None]] = {}

    def single(name, img, fmt="png"):
        seg = predictor.segment(Scan(np.asarray(img)[None], False, None, fmt, "slice"))
        if seg.unsure_fraction is not None:
            slices.setdefault(name, []).append(seg.unsure_fraction)

    for case in discover_cases(data):
        images, _ = case.load()
        if case.kind != "hu":
            for img in images[::every]:
                single(f"8-bit slices ({case.source})", img)
            continue
        for name, window, gamma, jpeg, blur_px, shrink in _renders():
            vol = _render_volume(images, window, gamma, jpeg, blur_px, shrink)
            fmt = "jpeg" if jpeg else "png"  # JPEG renders read as JPEG (their black spread)
            for img in vol[::every]:
                single(name, img, fmt)
            stacks.setdefault(name, []).append(
                predictor.segment(Scan(vol, False, None, f"{fmt}-stack", case.patient)).unsure_fraction)
    return slices, stacks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--non-ct", nargs="*", default=[], help="folders of images that are not CT")
    ap.add_argument("--unsure-every", type=int, default=6, help="every Nth slice for the model-unsure figures")
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
    slices, stacks = ct_unsure(args.data, args.unsure_every)
    n_all = n_over = 0
    for name, fractions in slices.items():
        a = np.array(fractions)
        over = int((a > cfg.max_unsure_fraction).sum())
        n_all, n_over = n_all + len(a), n_over + over
        judged = [f for f in stacks.get(name, []) if f is not None]
        print(f"CT {name:28s} model unsure: {len(a):4d} single slices judged, {over} warned, max {a.max():.2f}"
              + (f"; as stacks max {max(judged):.2f}" if judged else ""))
    print(f"CT all: {n_over} of {n_all} single slices warned as unsure")
    if args.non_ct:
        for as_grey in (False, True):
            warned, read, missed = non_ct_warned(args.non_ct, as_grey)
            print(f"not CT{' (read as grey)' if as_grey else ''}: {warned} of {read} images warned (page, mostly "
                  f"colour or model unsure); not warned: {', '.join(missed)}")


if __name__ == "__main__":
    main()
