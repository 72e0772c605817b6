"""Pseudo tumor labels for sources whose tumors exist but were never labelled (MSD, CURVAS).

The shared MSD slices come from LiTS patients, many with tumors, but their masks mark tumor as
liver, so the tumor channel could only learn real tumors from one HU volume (IRCAD p01) plus
synthetic ones. A teacher (a shipped model, run through the runtime on each slice as given: the
8-bit path a user's export takes) marks tumor inside the expert liver mask. Only confident
pixels are taught: tumor where the teacher's probability is above ``band[1]``, no tumor below
``band[0]`` or outside the liver (tumor lies inside the liver by definition), and nothing in
between. Optionally (``clean_max_px``), a patient in whose liver the teacher is confident of at
most that many tumor pixels over all its slices is taken as tumor-free, and its whole liver is
taught as tumor-free: positives alone, over two rounds, taught the model that more of a liver is
tumor (false lesions on the healthy CHAOS liver 9 -> 16), while negatives everywhere taught it to
pass over the tumors the teacher misses. Training then renders these slices with narrow, clipping
and wide windows, blur and JPEG, so the student learns to find, in every window, the tumors the
teacher finds in the export's own.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepatoscan.predictor import Predictor

log = logging.getLogger(__name__)

UNKNOWN = 255  # value of a pixel whose tumor label is not taught


@dataclass(frozen=True)
class PseudoLabelConfig:
    model_dir: str  # the teacher: a model folder with its card (e.g. "models")
    band: tuple[float, float]  # (low, high): teacher probabilities between these are not taught
    # A patient with at most this many confident tumor pixels (above band[1]) in its liver is taken
    # as tumor-free and its whole liver taught as none; None takes no patient as tumor-free.
    clean_max_px: int | None = None


def teacher_tumor_probs(predictor: Predictor, images: np.ndarray, is_hu: bool) -> np.ndarray:
    """images: (Z, H, W) HU or grey levels -> (Z, H, W) float32 tumor probability in [0, 1], each
    slice read as the runtime reads it (Predictor.slice_probs)."""
    out = np.empty(images.shape, np.float32)
    for z, img in enumerate(images):
        out[z] = predictor.slice_probs(img, is_hu)[..., 1]
    return out


def pseudo_tumor_labels(probs: np.ndarray, labels: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """probs: (Z, H, W) float32 teacher tumor probability; labels: (Z, H, W) uint8 in {0, 1, 2}
    (liver includes tumor) -> (Z, H, W) uint8: 1 tumor, 0 no tumor, UNKNOWN not taught."""
    liver = labels >= 1
    out = np.zeros(labels.shape, np.uint8)
    out[liver & (probs > band[1])] = 1
    out[liver & (probs >= band[0]) & (probs <= band[1])] = UNKNOWN
    return out


def is_tumor_free(probs: np.ndarray, labels: np.ndarray, band: tuple[float, float],
                  clean_max_px: int | None) -> bool:
    """probs: (Z, H, W) float32 teacher tumor probability of one patient; labels: (Z, H, W) uint8
    in {0, 1, 2} -> whether the teacher is confident of at most ``clean_max_px`` tumor pixels in the
    patient's liver (False when ``clean_max_px`` is None or the patient shows no liver)."""
    liver = labels >= 1
    if clean_max_px is None or not liver.any():
        return False
    return int((liver & (probs > band[1])).sum()) <= clean_max_px


def attach_pseudo_labels(cases: list, cfg: PseudoLabelConfig) -> dict:
    """Give every loaded case without tumor labels (``LoadedCase``) its ``pseudo_tumor`` array, in
    place; -> a summary for the run's log and config."""
    predictor = Predictor.from_model_dir(Path(cfg.model_dir))
    slices = tumor_slices = taught_px = liver_px = 0
    tumor_free = 0
    for lc in cases:
        if lc.case.tumor_labeled:
            continue
        probs = teacher_tumor_probs(predictor, lc.images, lc.case.kind == "hu")
        if is_tumor_free(probs, lc.labels, cfg.band, cfg.clean_max_px):
            lc.pseudo_tumor = np.zeros(lc.labels.shape, np.uint8)  # every pixel taught: no tumor
            tumor_free += 1
        else:
            lc.pseudo_tumor = pseudo_tumor_labels(probs, lc.labels, cfg.band)
        liver = lc.labels >= 1
        slices += len(lc.images)
        tumor_slices += int(((lc.pseudo_tumor == 1).sum((1, 2)) > 20).sum())
        taught_px += int((liver & (lc.pseudo_tumor != UNKNOWN)).sum())
        liver_px += int(liver.sum())
    summary = {"teacher": f"{predictor.card.name} {predictor.card.version}", "band": list(cfg.band),
               "slices": slices, "slices_with_tumor": tumor_slices,
               "liver_pixels_taught": round(taught_px / max(1, liver_px), 3)}
    if cfg.clean_max_px is not None:
        summary.update(clean_max_px=cfg.clean_max_px, tumor_free_patients=tumor_free)
    log.info("pseudo tumor labels: %s", summary)
    return summary
