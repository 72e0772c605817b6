"""Synthetic liver tumors pasted into tumor-free liver (after Hu et al., CVPR 2023,
"Label-Free Liver Tumor Segmentation").

A lesion is an irregular ellipse (radius modulated by low-frequency noise), textured with smooth
noise, hypo- or hyper-attenuating relative to the surrounding liver, with a soft edge. Sizes run
from a few mm to several cm.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _irregular_ellipse(rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float,
                       ry: float, rx: float) -> np.ndarray:
    """-> (H, W) float32 in [0, 1]: a soft-edged irregular blob."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    ang = np.arctan2(v, u)
    bumps = sum(rng.uniform(0, 0.15) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)) for k in range(2, 6))
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / (1.0 + bumps)
    edge = rng.uniform(0.05, 0.25)  # soft edge width, as a fraction of the radius
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def paste_tumor(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                pixel_mm: float, units_per_hu: float, max_lesions: int = 3):
    """Paste 1..max_lesions synthetic tumors into the liver of one slice.

    image: (H, W) float32, HU (units_per_hu=1) or display grey (grey levels per HU).
    label: (H, W) uint8 in {0, 1, 2}. pixel_mm: in-plane pixel size.
    Returns (image, label with 2 on the lesions, (H, W) bool region whose tumor label is known:
    the lesions and a ring of liver around them), or None when the liver is too small.
    """
    liver = label == 1
    if liver.sum() < 400:
        return None
    img, lab = image.astype(np.float32).copy(), label.copy()
    known = np.zeros(label.shape, bool)
    liver_mean = float(np.median(img[liver]))
    ys, xs = np.nonzero(ndi.binary_erosion(liver, iterations=3) if liver.sum() > 2000 else liver)
    if len(ys) == 0:
        return None
    for _ in range(rng.integers(1, max_lesions + 1)):
        i = rng.integers(len(ys))
        diameter_mm = float(np.exp(rng.uniform(np.log(5.0), np.log(60.0))))
        r_px = max(2.0, diameter_mm / 2.0 / pixel_mm)
        aspect = rng.uniform(0.6, 1.0)
        blob = _irregular_ellipse(rng, label.shape, ys[i], xs[i], r_px * aspect, r_px)
        blob *= liver  # lesions stay inside the liver
        if blob.sum() < 6:
            continue
        hypo = rng.random() < 0.8
        delta_hu = -rng.uniform(15, 90) if hypo else rng.uniform(15, 60)
        texture = ndi.gaussian_filter(rng.standard_normal(label.shape).astype(np.float32),
                                      max(1.0, r_px / 6)) * rng.uniform(5, 20) * 4
        target = liver_mean + (delta_hu + texture) * units_per_hu
        img = img * (1.0 - blob) + target * blob
        lesion = blob > 0.5
        lab[lesion] = 2
        known |= ndi.binary_dilation(lesion, iterations=int(max(3, r_px)))
    if not (lab == 2).any():
        return None
    return img, lab, known
