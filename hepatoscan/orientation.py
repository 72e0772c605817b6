"""Does the image look mirrored, or turned?

Viewers show axial CT with the patient's right on the image's left and the front at the top, and
the model learned it so: it uses where the liver lies, and given a slice mirrored left-right it
paints the spleen or the stomach as liver (liver Dice 0.35 to 0.42 on the held-out volumes, README
"Slice orientation"). Images come mirrored or turned from scripts that save slices without reading
the scan's orientation (a slice saved straight from a NIfTI array, ``data[:, :, k]`` of a RAS
file, comes out with its rows and columns swapped and reversed), from a NIfTI whose header gives
the wrong orientation, or from an editor. The runtime cannot see the patient, but the model can
say where it finds a liver more surely: on a few slices it also reads its own input mirrored, and
with its rows and columns swapped and reversed, and when either holds far more of a liver than
the image as given, the user is told (a warning, never a silent turn: a patient with situs
inversus reads mirrored too).

Evidence of a liver on a slice: pixels the model is sure are liver (above the unsure band's top)
less the unsure ones (within the band), at its input size. A crisp liver scores high; a haze, or
nothing, scores near or below zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import QualityConfig
from .errors import InputError
from .quality import unsure_counts, unsure_fraction
from .scan import Note


@dataclass(frozen=True)
class Reading:
    """Another way to read a slice: ``turn`` maps the (N, N) model input to it (its own inverse)."""

    name: str
    turn: Callable[[np.ndarray], np.ndarray]
    found_in: tuple[str, str]  # how the model then reads the image: one image, several
    mirrored: bool  # a mirror image (a situs inversus patient reads so too)
    asked: str  # how it was read, and for what, where the user asked for it (read_as_note)
    note: str = ""  # what such an image is, said after found_in
    tip: str = ""  # for an 8-bit image read so: how to save it as viewers show it


# Which reading wins says roughly how the image lies, not exactly: an image turned by 180 degrees
# reads best swapped, one turned by 90 degrees swapped or not at all (benchmarks/orientation_check.py).
READINGS = (
    Reading("mirrored", lambda x: x[:, ::-1], ("in its mirror image (left and right swapped)",
                                               "in their mirror images (left and right swapped)"), True,
            "mirrored (left and right swapped), as asked (for a patient with situs inversus, or an image saved "
            "mirrored)"),
    Reading("swapped", lambda x: x.T[::-1, ::-1],
            ("with its rows and columns swapped", "with their rows and columns swapped"), False,
            "with its rows and columns swapped and reversed, as asked (for slices saved straight from a RAS NIfTI "
            "array, data[:, :, k])",
            "turned by a quarter and mirrored, as a slice saved straight from a NIfTI array, data[:, :, k], comes out",
            "From a NIfTI in RAS order (nibabel.as_closest_canonical), data[:, :, k].T[::-1, ::-1] is the slice "
            "as viewers show it."),
)


# A reading a user may ask for but the check does not try: an image upside down (the spine at the
# top), as a NIfTI shows whose header states no orientation or a wrong one (LiTS 117 so saved).
UPSIDE_DOWN = Reading("upside-down", lambda x: x[::-1, :], ("upside down", "upside down"), False,
                      "upside down (top and bottom swapped), as asked (for a volume shown with the spine at the "
                      "top, as a NIfTI whose header states no orientation may be)")
ASKABLE = (*READINGS, UPSIDE_DOWN)  # what read_as may name: the app's Read the image, the CLI's --read-as


def reading_named(name: str) -> Reading:
    """"mirrored", "swapped" or "upside-down" -> that :class:`Reading`, for reading an image so on
    purpose (a patient with situs inversus, an image the orientation warning names, a volume shown
    with the spine at the top); InputError otherwise."""
    for reading in ASKABLE:
        if reading.name == name:
            return reading
    raise InputError(f"cannot read the image as '{name}': give one of {', '.join(r.name for r in ASKABLE)} "
                     "(or nothing, to read it as given).")


def read_as_note(reading: Reading) -> Note:
    """What the user is told where the model read the image ``reading``'s way, as asked."""
    return Note(f"Read {reading.asked}: the model saw each slice so, and its masks were turned back, "
                "so they, the overlay and the measurements are of the image as given.")


def liver_evidence(liver_probs: np.ndarray, cfg: QualityConfig = QualityConfig()) -> int:
    """liver_probs: (H, W) float32 liver probabilities in [0, 1] at the model's input size ->
    pixels above ``cfg.unsure_band``'s top less pixels within the band (quality.unsure_counts; may
    be negative)."""
    p = np.asarray(liver_probs)
    return int(np.count_nonzero(p >= cfg.unsure_band[1])) - unsure_counts(p, cfg)[1]


def evidence_ratio(given: int, other: int, cfg: QualityConfig = QualityConfig()) -> float | None:
    """Evidence of a liver (:func:`liver_evidence`, summed over the slices checked) as given and
    read another way -> how many times surer the other reading is (a large number where the image
    as given shows none), or None when the other reading finds too little liver to judge."""
    if other < cfg.min_orientation_evidence_px:
        return None
    return other / max(given, 1)


def reads_better(ratio: float | None, other_unsure: float | None, cfg: QualityConfig = QualityConfig()) -> bool:
    """:func:`evidence_ratio`, and the other reading's unsure pixels per pixel it calls liver
    (quality.unsure_fraction) -> whether the other reading is far surer than the image as given,
    and as sure as CT reads (an image with no anatomy may find more another way, but a haze too)."""
    if ratio is None or ratio <= cfg.max_orientation_ratio:
        return False
    return other_unsure is None or other_unsure <= cfg.max_orientation_unsure_fraction


def orientation_warning(reading: Reading, ratio: float, is_hu: bool, subject: str = "This image looks") -> str:
    """The sentence for the user where ``reading`` reads ``ratio`` times surer than the image as
    given (:func:`reads_better`). ``subject``: what it is said of ("2 of 12 images (a.png, b.png) look")."""
    times = "far more" if ratio >= 10 else f"{ratio:.1f} times as"
    how = reading.found_in[0 if subject.endswith("looks") else 1] + (f" ({reading.note})" if reading.note else "")
    fix = ("The file's orientation (the NIfTI header's affine, or DICOM's ImageOrientationPatient) may be "
           "wrong: check the masks, and the scan in a viewer, and fix the header or segment the original DICOM."
           if is_hu else "It may have been saved by a script that ignores the scan's orientation, or turned or "
           "flipped in an editor: check the masks, export the slices as the viewer shows them (or turn them "
           "back) and segment again." + (f" {reading.tip}" if reading.tip else ""))
    ask = (f" To have the model read it so, segment again with the app's 'Read the image' option set to "
           f"{reading.name} (CLI: --read-as {reading.name}).")
    situs = (" If the patient's organs are indeed mirrored (situs inversus), that is the way to segment it."
             if reading.mirrored else "")
    return (f"{subject} mirrored or turned: the model finds a liver {times} surely {how}. Viewers show "
            "axial CT with the patient's right on the image's left and the front at the top, and the model "
            f"learned it so; read otherwise, it may paint the spleen or the stomach as liver. {fix}{ask}{situs}")


def best_reading(given: int, others: np.ndarray,
                 cfg: QualityConfig = QualityConfig()) -> tuple[float | None, Reading | None]:
    """given: evidence as given; others: (len(READINGS), 3) int per reading: evidence, pixels
    called liver and unsure ones (quality.unsure_counts), each summed over the slices checked ->
    (the largest :func:`evidence_ratio`, or None; the reading that :func:`reads_better` with the
    largest ratio, or None)."""
    best_ratio, best, top = None, None, None
    for reading, (evidence, liver_px, unsure_px) in zip(READINGS, others):
        ratio = evidence_ratio(int(given), int(evidence), cfg)
        if ratio is not None and (top is None or ratio > top):
            top = ratio
        if reads_better(ratio, unsure_fraction(int(liver_px), int(unsure_px), cfg), cfg) and (
                best_ratio is None or ratio > best_ratio):
            best_ratio, best = ratio, reading
    return top, best


def orientation_images_warnings(found: dict[int, tuple[float, Reading]], checked: int, names: list[str],
                                is_hu: bool, named: int = 5) -> list[str]:
    """Separate images (not one series): {image index: (ratio, the reading far surer)} of the
    images that read better another way, of ``checked`` images; (Z,) names -> one warning per
    reading, naming its images. One mirrored image among many would be lost in a pooled figure."""
    out = []
    for reading in READINGS:
        ks = [k for k, (_, r) in found.items() if r is reading]
        if not ks:
            continue
        more = f" and {len(ks) - named} more" if len(ks) > named else ""
        subject = (f"{len(ks)} of {checked} images ({', '.join(names[k] for k in ks[:named])}{more}) "
                   f"look{'s' if len(ks) == 1 else ''}")
        out.append(orientation_warning(reading, max(found[k][0] for k in ks), is_hu, subject))
    return out


MIRROR_INDEX = next(i for i, r in enumerate(READINGS) if r.mirrored)  # the mirror reading's place in READINGS


def big_liver(liver_px: np.ndarray, input_px: int, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """(Z,) pixels called liver per slice (quality.unsure_counts), of ``input_px`` at the model's
    input -> (Z,) bool: the slices where at least ``cfg.symmetric_liver_fraction`` is called liver,
    where a CT slice reads far less surely mirrored (the liver lies on one side)."""
    return np.asarray(liver_px) >= cfg.symmetric_liver_fraction * input_px


def mirror_symmetric(given: int, mirrored: int, cfg: QualityConfig = QualityConfig()) -> float | None:
    """Evidence of a liver (:func:`liver_evidence`, summed over slices with a :func:`big_liver`) as
    given and read mirrored -> their ratio where it is about 1 (between ``cfg.min_symmetric_ratio``
    and its inverse: the image reads alike both ways, so has no anatomy for the model to go by),
    else None. None too where the model is not sure of a liver as given (too little evidence)."""
    if given < cfg.min_orientation_evidence_px:
        return None
    ratio = mirrored / given
    return ratio if cfg.min_symmetric_ratio <= ratio <= 1 / cfg.min_symmetric_ratio else None


def symmetric_warning(liver_share: float, ratio: float, subject: str = "This does not look like a CT slice",
                      several: bool = False) -> str:
    """The sentence for the user where the model calls ``liver_share`` (0 to 1) of an image liver
    and reads it about as surely mirrored (:func:`mirror_symmetric`). ``subject``: what it is said
    of ("2 of 12 images (a.png, b.png) do not look like CT slices"); ``several``: of several images
    (the share and ratio are then the largest share's)."""
    it = ("up to {:.0f}% of them liver and finds a liver as surely in their mirror images" if several
          else "{:.0f}% of it liver and finds a liver as surely in its mirror image")
    return (f"{subject}: the model calls {it.format(100 * liver_share)} ({ratio:.2f} times the evidence). "
            "A liver lies on the patient's right, so a CT slice read mirrored gave at most half the evidence "
            "in testing where the model called that much liver; an image that reads alike both ways has no "
            "anatomy for it to go by (noise, a texture or a pattern?). The masks and measurements are unlikely "
            "to mean anything. Give a CT slice exported from a viewer, or the DICOM/NIfTI.")


def symmetric_images_warning(found: dict[int, tuple[float, float]], checked: int, names: list[str],
                             named: int = 5) -> str | None:
    """Separate images: {image index: (liver share, mirror ratio)} of the images that read alike
    mirrored, of ``checked`` images -> one warning naming them, or None."""
    if not found:
        return None
    ks = list(found)
    more = f" and {len(ks) - named} more" if len(ks) > named else ""
    subject = (f"{len(ks)} of {checked} images ({', '.join(names[k] for k in ks[:named])}{more}) "
               + ("does not look like a CT slice" if len(ks) == 1 else "do not look like CT slices"))
    share, ratio = max(found.values())
    return symmetric_warning(share, ratio, subject, several=len(ks) > 1)
