"""Whether a stack of 8-bit images is one series' consecutive slices or a set of separate images.

A .zip of PNG/JPEG files may hold a series exported slice by slice, or images of several patients
or levels zipped for one upload. Consecutive CT slices look alike; separate images do not. Measured
as the Pearson correlation of neighbouring images shrunk to 64 x 64 (median over the stack), on
the four HU volumes' liver slices rendered at W150/L30, W400/L40 as JPEG q75 and W2000/L0: every
slice 0.97 to 0.999, every 2nd 0.92 to 0.996, every 3rd (LiTS 117, whose slices are already twice
the original spacing: 6 mm or more) 0.87 to 0.99; images of two different patients (400 pairs of
MSD slices) 0.24 to 0.77, median 0.64.
"""
from __future__ import annotations

import numpy as np

from .preprocessing import SERIES_MIN_SIMILARITY, resize_image, to_grayscale

THUMB_SIDE = 64  # images are compared at this size: cheap, and blind to noise and JPEG artefacts


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) image -> (THUMB_SIDE * THUMB_SIDE,) float32, mean 0 (for correlations)."""
    t = resize_image(to_grayscale(pixels), THUMB_SIDE, THUMB_SIDE).ravel()
    return t - t.mean()


def neighbour_similarity(thumbs: list[np.ndarray]) -> float | None:
    """Median Pearson correlation of consecutive thumbnails (see :func:`thumbnail`), in [-1, 1];
    None for fewer than 2 images."""
    if len(thumbs) < 2:
        return None
    r = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)) for a, b in zip(thumbs, thumbs[1:])]
    return float(np.median(r))


def separate_images(similarity: float | None) -> bool:
    """Whether a stack whose neighbours correlate ``similarity`` (None: no stack) holds separate
    images rather than one series' consecutive slices."""
    return similarity is not None and similarity < SERIES_MIN_SIMILARITY


def separate_images_warning(similarity: float | None, n: int) -> str | None:
    """The warning for a stack whose images are not one series' consecutive slices, else None."""
    if not separate_images(similarity):
        return None
    return (f"The {n} images do not look like consecutive slices of one series (neighbouring images "
            f"correlate {similarity:.2f}; consecutive CT slices {SERIES_MIN_SIMILARITY:g} or more), so each was "
            "segmented and measured on its own: its own display window, a 2D clean-up, and no volume or 3D "
            "lesions (they would add up images of different levels or patients). The figures are per image.")
