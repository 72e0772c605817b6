"""Probability maps -> clean masks: the liver as its largest connected component (3D for volumes),
holes filled; tumor kept inside the slightly dilated liver; specks below a physical size dropped."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .config import PostprocessConfig
from .measure import lesion_diameters
from .morphology import Components, dilate, fill_holes_2d, keep_largest, remove_components, remove_small
from .preprocessing import BLACK_GREY
from .scan import Note


def _margin_px(spacing_mm, cfg: PostprocessConfig) -> int:
    if spacing_mm is None:
        return cfg.tumor_margin_px
    return max(1, int(round(cfg.tumor_margin_mm / min(spacing_mm[1], spacing_mm[2]))))


def _min_lesion_voxels(spacing_mm, is_volume: bool, cfg: PostprocessConfig) -> int:
    if spacing_mm is None:
        return cfg.min_lesion_px
    r = cfg.min_lesion_diameter_mm / 2.0
    area_px = np.pi * r * r / (spacing_mm[1] * spacing_mm[2])
    if is_volume and spacing_mm[0]:
        return max(1, int(area_px * max(1.0, 2 * r / spacing_mm[0]) * 2 / 3))
    return max(1, int(area_px))


def flat_lesions(comps: Components, spacing_mm, ratio: float, min_diameter_mm: float,
                 among: np.ndarray | None = None, slab_mm: np.ndarray | None = None) -> np.ndarray:
    """comps: the lesions (3D components) of a (Z, H, W) tumor mask -> (n + 1,) bool, True for a
    lesion at least ``min_diameter_mm`` across (longest diameter on its largest slice) whose
    thickness (slices spanned x slice spacing) is below ``ratio`` x that diameter, in mm; a lesion
    on the volume's first or last slice is never flat (it may go on beyond). spacing_mm: (z, y, x),
    all known; among: (n + 1,) bool, the lesions to look at (default all); slab_mm: (Z,) mm each
    slice stands for where they are unevenly spaced (Scan.slab_mm; a thickness then sums them)."""
    flat = np.zeros(comps.n + 1, bool)
    if comps.n == 0:
        return flat
    sz, sy, sx = spacing_mm
    last = comps.shape[0] - 1
    z = comps.run_slice
    z_lo, z_hi = np.full(comps.n + 1, last + 1), np.full(comps.n + 1, -1)
    np.minimum.at(z_lo, comps.comp, z)
    np.maximum.at(z_hi, comps.comp, z)
    largest_z, _ = comps.largest_slices()
    for lesion in range(1, comps.n + 1):
        if (among is not None and not among[lesion]) or z_lo[lesion] == 0 or z_hi[lesion] == last:
            continue
        thickness_mm = ((z_hi[lesion] - z_lo[lesion] + 1) * sz if slab_mm is None
                        else float(slab_mm[z_lo[lesion]:z_hi[lesion] + 1].sum()))
        diameter_mm = lesion_diameters(comps.slice_labels(int(largest_z[lesion])) == lesion, sy, sx)[0]
        flat[lesion] = diameter_mm >= min_diameter_mm and thickness_mm < ratio * diameter_mm
    return flat


def drop_flat_lesions(tumor: np.ndarray, spacing_mm, ratio: float, min_diameter_mm: float) -> int:
    """tumor: (Z, H, W) bool, edited in place: the :func:`flat_lesions` cleared. -> how many."""
    comps = Components.of(tumor)
    flat = flat_lesions(comps, spacing_mm, ratio, min_diameter_mm)
    remove_components(tumor, comps, flat)
    return int(flat.sum())


def flat_lesions_note(dropped: int, ratio: float, min_diameter_mm: float) -> Note | None:
    """What the user is told of the flat lesions :func:`drop_flat_lesions` cleared (None: none)."""
    if not dropped:
        return None
    one = dropped == 1
    what = "1 flat mark was not counted as a lesion" if one else f"{dropped} flat marks were not counted as lesions"
    return Note(f"{what}: at least {min_diameter_mm:g} mm wide but thinner across slices than {ratio:g} of "
                f"{'its' if one else 'their'} width, as vessels seen along their length and partial-volume rims are "
                "(tumors are roughly round). If a flat lesion is expected, look at the CT itself.")


def clean_separate_slices(liver: np.ndarray, tumor: np.ndarray, spacing_mm,
                          cfg: PostprocessConfig = PostprocessConfig(),
                          stats: dict | None = None, slab_mm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`clean_masks`, but every slice on its own, as one image (a stack of separate images,
    not one series: no 3D components, so no flat lesions to drop, and no slabs)."""
    liver, tumor = np.asarray(liver, bool), np.asarray(tumor, bool)
    for z in range(liver.shape[0]):
        clean_masks(liver[z:z + 1], tumor[z:z + 1], spacing_mm, cfg)  # in place, on views
    return liver.view(np.uint8), tumor.view(np.uint8)


def clean_masks(liver: np.ndarray, tumor: np.ndarray, spacing_mm,
                cfg: PostprocessConfig = PostprocessConfig(),
                stats: dict | None = None, slab_mm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """liver, tumor: (Z, H, W) bool raw thresholded masks, cleaned *in place* (slice by slice, so a
    large volume needs no full-size temporaries) -> the same memory as (Z, H, W) uint8 in {0, 1}.
    ``stats``, where given, gets "flat_lesions_dropped" (:func:`flat_lesions`); ``slab_mm``: as
    there (a series with gaps).

    The returned liver includes the tumor (LiTS convention).
    """
    liver = np.asarray(liver, bool)  # bool input is used as is; anything else is converted once
    tumor = np.asarray(tumor, bool)
    volume = liver.shape[0] > 1
    if volume:
        keep_largest(liver, out=liver)
    else:
        keep_largest(liver[0], cfg.liver_keep_fraction_2d, out=liver[0])
    margin = _margin_px(spacing_mm, cfg)
    for z in range(liver.shape[0]):
        if liver[z].any():
            liver[z] = fill_holes_2d(liver[z])
        if tumor[z].any():
            tumor[z] &= dilate(liver[z], margin)
    if tumor.any():
        min_size = _min_lesion_voxels(spacing_mm, volume, cfg)
        if volume:  # specks and flat lesions dropped from one labelling
            comps = Components.of(tumor)
            drop = comps.sizes() < min_size
            if spacing_mm is not None and all(spacing_mm) and cfg.min_lesion_thickness_ratio > 0:
                flat = flat_lesions(comps, spacing_mm, cfg.min_lesion_thickness_ratio,
                                    cfg.flat_lesion_min_diameter_mm, among=~drop, slab_mm=slab_mm)
                drop |= flat
                if stats is not None:
                    stats["flat_lesions_dropped"] = int(flat.sum())
            remove_components(tumor, comps, drop)
        else:
            remove_small(tumor[0], min_size, out=tumor[0])
    np.logical_or(liver, tumor, out=liver)
    return liver.view(np.uint8), tumor.view(np.uint8)


def describe(cfg: PostprocessConfig = PostprocessConfig()) -> dict:
    """What the runtime does between the model's probabilities and its masks, for the model card:
    the steps in words and the parameters they use (a reader of the card alone can repeat them)."""
    return {
        "steps": [
            "resize each probability map back to the slice (bilinear) and threshold it at the card's threshold",
            "no mask on pixels at or below the bottom of window_hu (HU input) or black (8-bit input, grey "
            f"<= {BLACK_GREY}): air, lung, the darkest fat",
            "liver: the largest face-connected component (6-connected in 3D for a volume; for a single image, "
            "the largest 2D component and any of at least liver_keep_fraction_2d of its size), holes filled "
            "slice by slice",
            "tumor: kept inside the liver dilated in-plane by tumor_margin_mm (tumor_margin_px without "
            "spacing); components smaller than a disc of min_lesion_diameter_mm (min_lesion_px without "
            "spacing; in a volume, the disc's area times max(1, diameter / slice spacing) times 2/3 voxels) "
            "dropped",
            "tumor, in a volume of known spacing: a lesion whose longest diameter on its largest slice is at "
            "least flat_lesion_min_diameter_mm and whose thickness (slices spanned times slice spacing) is below "
            "min_lesion_thickness_ratio times that diameter is dropped, unless it lies on the first or last slice",
            "liver = liver or tumor (the LiTS convention: liver includes tumor)",
            "a stack of 8-bit images that are not one series' consecutive slices: each image on its own",
        ],
        "parameters": asdict(cfg),
        "code": "hepatoscan.postprocess.clean_masks",
    }
