"""Coloured marks on a CT screenshot (a viewer's measurement lines, ROI outlines, arrows and
coloured lettering) filled in from the grey around them before the model reads the image.

CT is grey, so a pixel whose red, green and blue differ is no CT: it is something drawn over it.
Read as grey, a yellow measurement line across the liver is a bright stripe the model takes for a
vessel's or the liver's edge (2 px lines, 60 px circles and coloured lettering over the liver of
held-out CHAOS slices: liver Dice 0.938 -> 0.914; filled in, 0.937). Thin marks hide little of
the CT under them, so each is filled from its edges inward with the mean of the grey pixels
around it. Thick or wide colour (a filled overlay,
such as HepatoScan's own, or a colour map) hides the CT itself: it is left, and the user is warned
(quality.colour_warning). Grey or white marks cannot be told from the CT and stay.
"""
from __future__ import annotations

import numpy as np

from .config import QualityConfig
from .morphology import dilate
from .quality import colour_fraction, colour_warning
from .scan import Note


def coloured(rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool: pixels whose R, G and B differ by more than
    ``cfg.colour_chroma`` grey levels (quality.colour_fraction counts the same pixels)."""
    a = np.asarray(rgb)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    chroma = np.maximum(np.maximum(r, g), b).astype(np.int16) - np.minimum(np.minimum(r, g), b)
    return chroma > cfg.colour_chroma


def are_thin(marks: np.ndarray, cfg: QualityConfig = QualityConfig()) -> bool:
    """(H, W) bool coloured pixels -> whether they are thin marks that can be filled in: at most
    ``cfg.marks_max_fraction`` of the image, and at most ``cfg.marks_max_core_share`` of them farther
    than ``cfg.marks_core_px`` from any grey pixel (a stroke's core; a filled overlay is all core)."""
    n = int(np.count_nonzero(marks))
    if n == 0 or n > cfg.marks_max_fraction * marks.size:
        return False
    core = ~dilate(~marks, cfg.marks_core_px)
    return np.count_nonzero(core) <= cfg.marks_max_core_share * n


def _neighbour_sums(values: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 values and bool known -> (sum of the known values among each pixel's 8
    neighbours, how many of them are known), both (H, W) float32."""
    v = np.pad(np.where(known, values, 0.0).astype(np.float32), 1)
    k = np.pad(known.astype(np.float32), 1)
    h, w = values.shape
    total, count = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                total += v[dy:dy + h, dx:dx + w]
                count += k[dy:dy + h, dx:dx + w]
    return total, count


def fill_in(grey: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """(H, W) float32 grey levels and (H, W) bool marks -> (H, W) float32, the marks filled from
    their edges inward, ring by ring: each mark pixel next to a known (unmarked, or already filled)
    pixel takes the mean of its known neighbours; other pixels unchanged. Worked inside the marks'
    bounding box, one pixel wider."""
    out = np.asarray(grey, np.float32).copy()
    ys, xs = np.nonzero(marks)
    if not len(ys):
        return out
    y0, y1, x0, x1 = max(ys.min() - 1, 0), ys.max() + 2, max(xs.min() - 1, 0), xs.max() + 2
    box, todo = out[y0:y1, x0:x1], marks[y0:y1, x0:x1].copy()
    known = ~todo
    if not known.any():  # the whole image marked: nothing to fill from
        return out
    while todo.any():
        total, count = _neighbour_sums(box, known)
        ring = todo & (count > 0)
        box[ring] = total[ring] / count[ring]
        known |= ring
        todo &= ~ring
    return out


def remove_marks(grey: np.ndarray, rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> tuple[np.ndarray, float]:
    """(H, W) float32 grey levels of a colour image and its (H, W, 3) uint8 RGB -> (the grey image
    with its thin coloured marks filled in, the share of the image filled: 0.0 where there are
    none, or where the colour is not thin marks and is left as it is)."""
    marks = coloured(rgb, cfg)
    if not are_thin(marks, cfg):
        return grey, 0.0
    marks = dilate(marks, cfg.marks_pad_px)  # the rim a JPEG's chroma blur leaves
    return fill_in(grey, marks), float(np.count_nonzero(marks)) / marks.size


MARKS_NOTE = Note("Coloured marks drawn over the image (a viewer's measurement lines, outlines, arrows or lettering) "
                  "were filled in from the grey around them before segmenting, so that the model does not read "
                  "them as anatomy; the masks under them are the model's guess from that fill. Grey or white marks "
                  "cannot be told from the CT and stay: export without annotations if you can.")


def read_colour(grey: np.ndarray, rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> tuple[np.ndarray, str | None]:
    """(H, W) float32 grey levels of a colour image and its (H, W, 3) uint8 RGB -> (the grey image,
    its thin coloured marks filled in; what the user is told: MARKS_NOTE where marks were filled,
    the colour warning (quality.colour_warning) where the colour is more than thin marks, else None)."""
    grey, filled = remove_marks(grey, rgb, cfg)
    return grey, MARKS_NOTE if filled else colour_warning(colour_fraction(rgb, cfg), cfg)
