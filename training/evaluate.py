"""LiTS-style evaluation of a shipped TFLite model through the runtime (hepatoscan.Predictor).

    python -m training.evaluate --model models/ --data ../shared/data [--split test] [--windows]
        [--liver-threshold T] [--json runs/NAME/eval.json]

Per held-out volume: liver Dice, tumor Dice (cases with labelled tumor), lesion-wise recall and
precision (a lesion is detected when its Dice with one predicted lesion exceeds 0.5, as in
LiTS), recall of lesions of 10 mm or more, tumor burden error, the liver's and tumor's surface
distances (ASSD, HD95, Hausdorff: hepatoscan.surface); and ``card_only``, the liver and
tumor Dice of the card's recipe alone (window, resize, thresholds; no post-processing). Global tumor Dice pools all
voxels. Slice sources (8-bit exports) get liver Dice per patient. ``--windows`` renders each
held-out HU volume as 8-bit exports with a grid of display windows (plus gamma and JPEG
variants) and runs them through the runtime's own 8-bit path, reading each slice's window on its
own and then the whole render as one stack; it also probes image quality: blurred and half-size
exports, and the volume in a field of view 1.5 times as wide (HU and 8-bit).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from hepatoscan import agreement, surface
from hepatoscan.model_card import find_card
from hepatoscan.predictor import Predictor
from hepatoscan.preprocessing import render_8bit
from hepatoscan.scan import Scan

from .augment import jpeg_roundtrip, soften
from .data import SplitConfig, discover_cases, split_by_patient

log = logging.getLogger("training.evaluate")

WINDOW_GRID = [("W150/L30", (-45, 105)), ("W350/L50", (-125, 225)), ("W400/L40", (-160, 240)),
               ("W600/L100", (-200, 400)), ("W1000/L0", (-500, 500)), ("W1500/L-100", (-850, 650)),
               ("W2000/L0", (-1000, 1000))]
VARIANTS = [("W400/L40 gamma 0.7", (-160, 240), 0.7, None), ("W400/L40 gamma 1.4", (-160, 240), 1.4, None),
            ("W400/L40 JPEG q75", (-160, 240), 1.0, 75), ("W1000/L0 JPEG q75", (-500, 500), 1.0, 75)]
# Image quality beyond the window: exports blurred (smooth kernels, resampling) or made at half
# resolution and enlarged back (thumbnails, screenshots). (name, window, Gaussian sigma in source
# pixels, shrink factor)
# The grid is read twice: each slice's window read from that slice alone (as a single PNG or JPEG
# upload is read), and the renders read as one stack (a zip or folder of one series' slices, whose
# far-off readings take the stack's median: hepatoscan.preprocessing.share_stack_window). The
# stack's rows are keyed "<patient> as a stack".
STACK_SUFFIX = " as a stack"
QUALITY = [("W400/L40 blur 1 px", (-160, 240), 1.0, 1.0), ("W400/L40 blur 2 px", (-160, 240), 2.0, 1.0),
           ("W400/L40 half size", (-160, 240), 0.0, 0.5)]
# Field of view: the body filling less of the image than in the volume as given (a slim patient in a
# wide reconstruction field, a screenshot's black margin, a viewer zoomed out): the volume centred
# in a frame FIELD_OF_VIEW times as wide, air (-1024 HU) or black around it. (name, window or None
# for the HU path)
FIELD_OF_VIEW = 1.5
FIELD = [("HU path, field of view 1.5x", None), ("W400/L40, field of view 1.5x", (-160, 240))]


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """The runtime's Dice (hepatoscan.agreement), rounded to 4 places as the card prints it."""
    d = agreement.dice(a, b)
    return None if d is None else round(d, 4)


def lesion_detection(gt: np.ndarray, pred: np.ndarray, pixel_spacing_mm) -> dict:
    """gt, pred: (Z, H, W) bool tumor masks -> lesion-wise counts (3D components), by the runtime's
    hepatoscan.agreement.lesion_detection (spacing unknown: lesions sized in pixels)."""
    d = agreement.lesion_detection(gt, pred, pixel_spacing_mm or (1.0, 1.0))
    rounded = (lambda v: None if v is None else round(v, 3))
    return {"gt_lesions": d.reference_lesions, "pred_lesions": d.hepatoscan_lesions, "detected": d.detected,
            "recall": rounded(d.recall), "precision": rounded(d.precision),
            "gt_lesions_10mm": d.reference_lesions_10mm, "recall_10mm": rounded(d.recall_10mm)}


def surface_distances(gt: np.ndarray, pred: np.ndarray, spacing_mm) -> dict | None:
    """ASSD, HD95 and Hausdorff distance of two (Z, H, W) masks by the runtime's
    hepatoscan.surface (in mm; in voxels, taken as cubes, where the spacing is unknown); None where
    either is empty."""
    d = surface.surface_distance(gt, pred, spacing_mm)
    return None if d is None else d.to_dict()


def with_liver_threshold(card, liver_threshold: float):
    """-> a copy of the model card whose liver threshold is ``liver_threshold`` (the tumor one kept)."""
    return dataclasses.replace(card, thresholds={**card.thresholds, "liver": liver_threshold})


def evaluate_volume(predictor: Predictor, pixels: np.ndarray, labels: np.ndarray, is_hu: bool,
                    spacing_mm, tumor_labeled: bool, name: str, source_format: str | None = None) -> dict:
    """``source_format``: as the loader would set it ("jpeg" for JPEG renders, which the runtime reads
    as JPEG); by default "nifti" for HU, "png" for 8-bit."""
    scan = Scan(pixels.astype(np.float32), is_hu, spacing_mm, source_format or ("nifti" if is_hu else "png"), name)
    seg = predictor.segment(scan)
    gt_liver, gt_tumor = labels >= 1, labels == 2
    out = {"case": name, "slices": int(pixels.shape[0]), "liver_dice": dice(seg.liver, gt_liver),
           "liver_surface_distance": surface_distances(gt_liver, seg.liver, spacing_mm)}
    if tumor_labeled:
        out["tumor_dice"] = dice(seg.tumor, gt_tumor) if gt_tumor.any() else None
        out["tumor_voxels_gt"], out["tumor_voxels_pred"] = int(gt_tumor.sum()), int(seg.tumor.sum())
        burden_gt = gt_tumor.sum() / max(1, gt_liver.sum())
        burden_pred = seg.tumor.sum() / max(1, seg.liver.sum())
        out["tumor_burden_error_pct"] = round(100 * abs(float(burden_pred - burden_gt)), 2)
        out["lesions"] = lesion_detection(gt_tumor, seg.tumor.astype(bool), spacing_mm[1:] if spacing_mm else None)
        out["tumor_surface_distance"] = surface_distances(gt_tumor, seg.tumor, spacing_mm)
    out["_masks"] = (seg.tumor.astype(bool), gt_tumor)
    return out


def card_only(predictor: Predictor, hu: np.ndarray, labels: np.ndarray, tumor_labeled: bool) -> dict:
    """Dice of the masks that a reader of the model card alone would make, with none of the
    runtime's post-processing: each (H, W) HU slice of ``hu`` (Z, H, W) clipped to the card's
    window and scaled to [0, 1], centred on a square and resized bilinearly to the input size; the
    two probability maps resized back, cropped (Predictor.slice_probs) and thresholded at the
    card's thresholds (the liver channel includes tumor)."""
    thresholds = predictor.card.thresholds
    liver, tumor = np.zeros(hu.shape, bool), np.zeros(hu.shape, bool)
    for k in range(hu.shape[0]):
        probs = predictor.slice_probs(np.asarray(hu[k], np.float32), is_hu=True)
        liver[k] = probs[..., 0] > thresholds["liver"]
        tumor[k] = probs[..., 1] > thresholds["tumor"]
    out = {"liver_dice": dice(liver, labels >= 1)}
    if tumor_labeled:
        out["tumor_dice"] = dice(tumor, labels == 2) if (labels == 2).any() else None
    return out


def evaluate_cases(predictor: Predictor, cases, windows: bool = False) -> dict:
    per_case, windows_table, quality_table, slices_table = [], {}, {}, []
    stack_window = predictor.stack_window
    pooled_pred, pooled_gt = [], []
    for case in cases:
        pixels, labels = case.load()
        if case.kind == "hu":
            spacing = (case.spacing_z_mm, *case.spacing_yx_mm) if case.spacing_yx_mm else None
            r = evaluate_volume(predictor, pixels, labels, True, spacing, case.tumor_labeled, case.patient)
            r["card_only"] = card_only(predictor, pixels, labels, case.tumor_labeled)
            pred, gt = r.pop("_masks")
            if case.tumor_labeled:
                pooled_pred.append(pred.ravel())
                pooled_gt.append(gt.ravel())
            per_case.append(r)
            log.info("%s", r)
            if windows:
                try:
                    for stack in (False, True):
                        predictor.stack_window = stack
                        key = case.patient + (STACK_SUFFIX if stack else "")
                        windows_table[key] = window_grid(predictor, pixels, labels, spacing, case)
                        quality_table[key] = quality_probe(predictor, pixels, labels, spacing, case)
                finally:  # the caller's predictor reads stacks as it did before
                    predictor.stack_window = stack_window
        else:
            # 8-bit slices: each slice on its own, as a user uploads a PNG.
            # Per-slice Dice is harsh on slices that hold a few liver pixels; the pooled Dice
            # (all of the patient's slices as one set) weighs each pixel once.
            ds_l, overlap_px, total_px = [], 0, 0
            for img, lab in zip(pixels, labels):
                scan = Scan(img[None].astype(np.float32), False, None, "png", case.patient)
                pred, gt = predictor.segment(scan).liver[0].astype(bool), lab >= 1
                overlap_px += int((pred & gt).sum())
                total_px += int(pred.sum() + gt.sum())
                if gt.any():
                    ds_l.append(dice(pred, gt))
            slices_table.append({"case": case.patient, "source": case.source, "slices": len(pixels),
                                 "liver_dice_mean": round(float(np.mean(ds_l)), 4) if ds_l else None,
                                 "liver_dice_pooled": round(2 * overlap_px / total_px, 4) if total_px else None})
    out = {"volumes": per_case, "slice_sources": slices_table}
    if pooled_gt:
        out["tumor_dice_global"] = dice(np.concatenate(pooled_pred), np.concatenate(pooled_gt))
    if windows_table:
        out["window_grid"] = windows_table
        out["image_quality"] = quality_table
    out["summary"] = summarize(out)
    return out


def _render_volume(pixels, window, gamma=1.0, jpeg=None, blur_px=0.0, shrink=1.0) -> np.ndarray:
    out = np.empty(pixels.shape, np.float32)
    for z, s in enumerate(pixels):
        if blur_px or shrink != 1.0:
            s = soften(s, blur_px, shrink)
        g = render_8bit(s, window, gamma)
        if jpeg:
            g = jpeg_roundtrip(g, jpeg)
        out[z] = g
    return out


def _record(rows: dict, name: str, result: dict, case) -> None:
    """An evaluate_volume result -> rows[name], its liver and tumor Dice (logged)."""
    rows[name] = {"liver_dice": result["liver_dice"], "tumor_dice": result.get("tumor_dice")}
    log.info("%s %s: %s", case.patient, name, rows[name])


def window_grid(predictor: Predictor, pixels, labels, spacing, case) -> dict:
    rows = {}
    hu = evaluate_volume(predictor, pixels, labels, True, spacing, case.tumor_labeled, case.patient)
    hu.pop("_masks")
    rows["HU path"] = {"liver_dice": hu["liver_dice"], "tumor_dice": hu.get("tumor_dice")}
    grid = [(n, w, 1.0, None) for n, w in WINDOW_GRID] + VARIANTS
    for name, window, gamma, jpeg in grid:
        _record(rows, name, evaluate_volume(predictor, _render_volume(pixels, window, gamma, jpeg), labels, False,
                                            spacing, case.tumor_labeled, case.patient, "jpeg" if jpeg else "png"), case)
    return rows


def in_frame(image: np.ndarray, side_factor: float, fill_value) -> np.ndarray:
    """(..., H, W) -> (..., S, S), S = round(side_factor * max(H, W)): each slice centred in a frame
    of ``fill_value`` (air, black, or background for labels)."""
    h, w = image.shape[-2:]
    side = int(round(side_factor * max(h, w)))
    top, left = (side - h) // 2, (side - w) // 2
    out = np.full(image.shape[:-2] + (side, side), fill_value, image.dtype)
    out[..., top:top + h, left:left + w] = image
    return out


def quality_probe(predictor: Predictor, pixels, labels, spacing, case) -> dict:
    """Liver and tumor Dice on blurred and half-size exports (QUALITY), through the 8-bit path, and
    on the volume in a wider field of view (FIELD), through the HU and the 8-bit path."""
    rows = {}
    for name, window, blur_px, shrink in QUALITY:
        _record(rows, name, evaluate_volume(predictor, _render_volume(pixels, window, blur_px=blur_px, shrink=shrink),
                                            labels, False, spacing, case.tumor_labeled, case.patient), case)
    framed_labels = in_frame(labels, FIELD_OF_VIEW, 0)
    for name, window in FIELD:
        framed = (in_frame(pixels, FIELD_OF_VIEW, -1024) if window is None else
                  in_frame(_render_volume(pixels, window), FIELD_OF_VIEW, 0))
        _record(rows, name, evaluate_volume(predictor, framed, framed_labels, window is None, spacing,
                                            case.tumor_labeled, case.patient), case)
    return rows


def summarize(out: dict) -> dict:
    vols = out["volumes"]
    s = {}
    liver = [v["liver_dice"] for v in vols if v["liver_dice"] is not None]
    tumor = [v["tumor_dice"] for v in vols if v.get("tumor_dice") is not None]
    if liver:
        s["liver_dice_per_case_mean"] = round(float(np.mean(liver)), 4)
    if tumor:
        s["tumor_dice_per_case_mean"] = round(float(np.mean(tumor)), 4)
    if "tumor_dice_global" in out:
        s["tumor_dice_global"] = out["tumor_dice_global"]
    for part in ("liver", "tumor"):
        found = [v[f"{part}_surface_distance"] for v in vols if v.get(f"{part}_surface_distance")]
        if found and len({d["unit"] for d in found}) == 1:
            s[f"{part}_assd_per_case_mean_{found[0]['unit']}"] = round(float(np.mean([d["assd"] for d in found])), 3)
            s[f"{part}_hd95_per_case_mean_{found[0]['unit']}"] = round(float(np.mean([d["hd95"] for d in found])), 3)
    rec = [v["lesions"]["recall_10mm"] for v in vols if v.get("lesions", {}).get("recall_10mm") is not None]
    if rec:
        s["lesion_recall_10mm_mean"] = round(float(np.mean(rec)), 3)
    for key, name in (("liver_dice_mean", "liver_dice_8bit_slices_mean"),
                      ("liver_dice_pooled", "liver_dice_8bit_pooled_mean")):
        sl = [r[key] for r in out["slice_sources"] if r.get(key) is not None]
        if sl:
            s[name] = round(float(np.mean(sl)), 4)
    s["volumes"] = len(vols)
    s["slice_patients"] = len(out["slice_sources"])
    for key in ("window_grid", "image_quality"):
        for stack in (False, True):
            worst = [r["liver_dice"] for case, g in out.get(key, {}).items() if case.endswith(STACK_SUFFIX) == stack
                     for r in g.values() if r["liver_dice"] is not None]
            if worst:
                s[f"{key}{'_stack' if stack else ''}_min_liver_dice"] = min(worst)
    return s


def print_table(out: dict):
    print(f"{'case':<16}{'liver Dice':>11}{'tumor Dice':>11}{'lesions':>9}{'recall':>8}{'prec.':>7}{'rec>=10mm':>10}"
          f"{'liver ASSD / HD95':>22}")
    for v in out["volumes"]:
        les = v.get("lesions", {})
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        sd = v.get("liver_surface_distance")
        borders = "-" if not sd else f"{sd['assd']:.2f} / {sd['hd95']:.1f} {sd['unit']}"
        print(f"{v['case']:<16}{fmt(v['liver_dice']):>11}{fmt(v.get('tumor_dice')):>11}"
              f"{les.get('gt_lesions', '-'):>9}{fmt(les.get('recall')):>8}{fmt(les.get('precision')):>7}"
              f"{fmt(les.get('recall_10mm')):>10}{borders:>22}")
        if "card_only" in v:
            c = v["card_only"]
            print(f"{'  card only':<16}{fmt(c['liver_dice']):>11}{fmt(c.get('tumor_dice')):>11}"
                  "  (the card's recipe, no post-processing)")
    for r in out["slice_sources"]:
        print(f"{r['case']:<16}{r['liver_dice_mean'] if r['liver_dice_mean'] is not None else '-':>11}"
              f"  (8-bit slices, mean per slice; pooled {r.get('liver_dice_pooled', '-')})")
    for title, key in (("window grid", "window_grid"), ("image quality", "image_quality")):
        for case, rows in out.get(key, {}).items():
            print(f"\n{title}, {case} (8-bit path):")
            for name, r in rows.items():
                print(f"  {name:<22} liver {r['liver_dice']}  tumor {r['tumor_dice']}")
    print("\nsummary:", json.dumps(out["summary"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models", help="model folder with the default card")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--split", default="test", choices=["test", "val", "test+val"])
    p.add_argument("--cases", nargs="*", help="only these patient ids")
    p.add_argument("--windows", action="store_true", help="also run the display-window grid on HU volumes")
    p.add_argument("--liver-threshold", type=float, metavar="T",
                   help="use this liver threshold instead of the card's, e.g. to screen a candidate at the "
                        "shipped model's threshold before training.threshold chooses its own")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    if a.liver_threshold is not None and not 0.0 < a.liver_threshold < 1.0:
        p.error(f"--liver-threshold {a.liver_threshold}: expected a probability between 0 and 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    split = split_by_patient(discover_cases(a.data), SplitConfig())
    cases = [c for part in a.split.split("+") for c in split[part]]
    if a.cases:
        cases = [c for c in cases if c.patient in a.cases]
    card = find_card(a.model)
    if a.liver_threshold is not None:
        card = with_liver_threshold(card, a.liver_threshold)
    out = evaluate_cases(Predictor(card), cases, a.windows)
    out["thresholds"] = dict(card.thresholds)
    print_table(out)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
