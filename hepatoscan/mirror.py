"""Does the image look mirrored left-right?

Viewers show axial CT with the patient's right on the image's left, and the model learned it so:
it uses where the liver lies, and given the mirror image of a slice it paints the spleen or the
stomach as liver (liver Dice 0.35 to 0.42 on the held-out volumes, README "Slice orientation").
Images come mirrored from scripts that save slices without reading the file's orientation, from a
NIfTI whose header gives the wrong one, or flipped in an editor. The runtime cannot see the
patient, but the model can say where it finds a liver more surely: on a few slices it also reads
the mirror image of its own input, and when the mirror holds far more of a liver than the image
as given, the user is told (a warning, never a silent flip: a patient with situs inversus is
mirrored too).

Evidence of a liver on a slice: pixels the model is sure are liver (above the unsure band's top)
less the unsure ones (within the band), at its input size. A crisp liver scores high; a haze, or
nothing, scores near or below zero.
"""
from __future__ import annotations

import numpy as np

from .config import QualityConfig


def liver_evidence(liver_probs: np.ndarray, cfg: QualityConfig = QualityConfig()) -> int:
    """liver_probs: (H, W) float32 liver probabilities in [0, 1] at the model's input size ->
    pixels above ``cfg.unsure_band``'s top less pixels within the band (may be negative)."""
    p = np.asarray(liver_probs)
    lo, hi = cfg.unsure_band
    return int(np.count_nonzero(p >= hi)) - int(np.count_nonzero((p > lo) & (p < hi)))


def mirror_ratio(given: int, mirrored: int, cfg: QualityConfig = QualityConfig()) -> float | None:
    """Evidence of a liver (:func:`liver_evidence`, summed over the slices checked) as given and in
    the mirror image -> how many times surer the mirror is (a large number where the image as
    given shows none), or None when the mirror finds too little liver to judge."""
    if mirrored < cfg.min_mirror_evidence_px:
        return None
    return mirrored / max(given, 1)


def looks_mirrored(ratio: float | None, mirror_unsure: float | None, cfg: QualityConfig = QualityConfig()) -> bool:
    """:func:`mirror_ratio`, and the mirror's unsure pixels per pixel it calls liver
    (quality.unsure_fraction) -> whether the mirror reads far surer than the image as given, and
    as surely as CT reads (an image with no anatomy may find more in its mirror, but a haze too)."""
    if ratio is None or ratio <= cfg.max_mirror_ratio:
        return False
    return mirror_unsure is None or mirror_unsure <= cfg.max_mirror_unsure_fraction


def mirrored_warning(ratio: float | None, mirror_unsure: float | None, is_hu: bool,
                     cfg: QualityConfig = QualityConfig(), subject: str = "This image looks") -> str | None:
    """:func:`mirror_ratio` and the mirror's unsure fraction -> a sentence for the user, or None when
    the image does not look mirrored (:func:`looks_mirrored`). ``subject``: what it is said of
    ("2 of 12 images (a.png, b.png) look")."""
    if not looks_mirrored(ratio, mirror_unsure, cfg):
        return None
    times = "far more" if ratio >= 10 else f"{ratio:.1f} times as"
    where = "its mirror image" if subject.endswith("looks") else "their mirror images"
    fix = ("The file's orientation (the NIfTI header's affine, or DICOM's ImageOrientationPatient) may be "
           "wrong: check the masks, and the scan in a viewer, and fix the header or segment the original DICOM."
           if is_hu else "It may have been saved by a script that ignores the scan's orientation, or flipped "
           "in an editor: check the masks, export the slices as the viewer shows them (or flip them back) "
           "and segment again.")
    return (f"{subject} mirrored left-right (or turned by 180 degrees): the model finds a liver {times} "
            f"surely in {where}. Viewers show axial CT with the patient's right on the image's left, and the "
            f"model learned it so; on a mirrored image it may paint the spleen or the stomach as liver. {fix} "
            "If the patient's organs are indeed mirrored (situs inversus), flip the image for the model and "
            "the masks back.")


def mirrored_images_warning(checks: dict[int, tuple[float | None, float | None]], names: list[str],
                            cfg: QualityConfig = QualityConfig(), named: int = 5) -> str | None:
    """Separate images (not one series): {image index: (its :func:`mirror_ratio`, its mirror's
    unsure fraction)} of the images checked, (Z,) names -> the warning naming the images that look
    mirrored, or None. One mirrored image among many would be lost in a pooled figure."""
    flipped = [k for k, (r, u) in checks.items() if looks_mirrored(r, u, cfg)]
    if not flipped:
        return None
    more = f" and {len(flipped) - named} more" if len(flipped) > named else ""
    subject = (f"{len(flipped)} of {len(checks)} images ({', '.join(names[k] for k in flipped[:named])}{more}) "
               f"look{'s' if len(flipped) == 1 else ''}")
    return mirrored_warning(max(checks[k][0] for k in flipped), None, False, cfg, subject)
