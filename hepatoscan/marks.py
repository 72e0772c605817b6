"""Coloured marks on a CT screenshot (a viewer's measurement lines, ROI outlines, arrows and
coloured lettering) filled in from the grey around them before the model reads the image.

CT is grey, so a pixel whose red, green and blue differ is no CT: it is something drawn over it.
Read as grey, a yellow measurement line across the liver is a bright stripe the model takes for a
vessel's or the liver's edge (2 px lines, 60 px circles and coloured lettering over the liver of
held-out CHAOS slices: liver Dice 0.938 -> 0.914; filled in, 0.937). Thin marks hide little of
the CT under them, so each is filled from its edges inward with the mean of the grey pixels
around it. Thick or wide colour (a filled overlay, such as HepatoScan's own, or a colour map)
hides the CT itself: it is left, and the user is warned (quality.colour_warning).

Lettering: grey or white marks cannot be told from the CT by colour, but a viewer's lettering (the
patient's name, the window, the slice position in the corners) lies in the air around the body, in
small bright specks no CT structure makes there: each glyph is a component of its own, no larger
than a letter, outside the body's outline. Read as is, it moves the display-window estimate (the
histogram gains its bright and antialiased pixels) and the model reads it: 4 blocks of 22 px
white lettering in the corners of IRCAD p01 slices cost liver Dice 0.960 -> 0.944, blacked out
0.960. Such specks are set to the grey around them (:func:`clear_lettering`). Marks over the body
itself stay.
"""
from __future__ import annotations

import numpy as np

from .config import QualityConfig
from .morphology import Components, dilate, fill_holes_2d
from .quality import coloured, colour_warning
from .scan import Note, Scan


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


MARKS_NOTE = Note("Coloured marks drawn over the image (a viewer's measurement lines, outlines, arrows or lettering) "
                  "were filled in from the grey around them before segmenting, so that the model does not read "
                  "them as anatomy; the masks under them are the model's guess from that fill. Grey or white marks "
                  "cannot be told from the CT and stay: export without annotations if you can.")


def read_colour(grey: np.ndarray, rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> tuple[np.ndarray, str | None]:
    """(H, W) float32 grey levels of a colour image and its (H, W, 3) uint8 RGB -> (the grey image
    with its thin coloured marks filled in, each widened by ``cfg.marks_pad_px`` first for the rim a
    JPEG's chroma blur leaves; what the user is told: :func:`colour_message`)."""
    marks = coloured(rgb, cfg)
    if are_thin(marks, cfg):
        grey = fill_in(grey, dilate(marks, cfg.marks_pad_px))
    return grey, _message(marks, cfg)


def colour_message(rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> str | None:
    """(H, W, 3) uint8 RGB of a colour image -> MARKS_NOTE where its colour is thin marks (filled in
    by :func:`read_colour`), the colour warning (quality.colour_warning) where it is more, else None."""
    return _message(coloured(rgb, cfg), cfg)


def _message(marks: np.ndarray, cfg: QualityConfig) -> str | None:
    return MARKS_NOTE if are_thin(marks, cfg) else colour_warning(float(marks.mean()) if marks.size else 0.0, cfg)


LETTERING_NOTE = Note("Small bright marks in the air around the body (a viewer's lettering: name, window, slice "
                      "position; or bits of the table) were set to the grey around them before segmenting, so "
                      "that they do not sway the window estimate or the model.")


def lettering(grey: np.ndarray, jpeg: bool = False, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """(H, W) grey levels of an 8-bit image -> (H, W) bool: the lettering around the body.

    Glyphs: connected areas of ``cfg.lettering_min_grey`` or more no more than
    ``cfg.lettering_max_side`` of the image's shorter side (and 16 px) high and wide, and no more
    than ``cfg.lettering_max_flatness`` times as wide as high. Lettering: a connected area above
    ``cfg.lettering_floor_grey`` (a glyph, or a word or lines that antialiasing or a JPEG's ringing
    joins) that is glyphs and their rims (``cfg.lettering_rim_px``; ``cfg.lettering_jpeg_rim_px``
    where ``jpeg``: its ringing reaches farther) all but ``cfg.lettering_other_share`` of it, no
    more than ``cfg.lettering_max_block`` of the image either way (a table's line is longer; an arm
    is mostly not its bone), lying outside the body: farther than ``cfg.lettering_body_gap_px``
    from everything else above the floor (the table's edge included: lettering near it stays) and
    not enclosed by it (the body's fragments, a narrow window's organs apart in black fat and its
    dotted skin, joined across such gaps and filled; a speck in bowel gas or the lungs lies
    inside, and stays); with at least ``cfg.lettering_min_specks`` glyphs in all (fewer are stray
    bits of the table or a cable)."""
    g = np.asarray(grey, np.float32)
    h, w = g.shape
    none = np.zeros((h, w), bool)
    cores = Components.of(g >= cfg.lettering_min_grey)
    if cores.n < cfg.lettering_min_specks:
        return none
    bounds = cores.bounds()
    sides = bounds[:, :, 1] - bounds[:, :, 0] + 1
    glyph = (sides <= max(16, int(cfg.lettering_max_side * min(h, w)))).all(axis=1)
    glyph &= sides[:, 1] <= cfg.lettering_max_flatness * sides[:, 0]  # a flat bit of a table's line is no glyph
    glyph[0] = False
    if np.count_nonzero(glyph) < cfg.lettering_min_specks:
        return none
    core_labels = cores.labels()
    rims = dilate(glyph[core_labels], cfg.lettering_jpeg_rim_px if jpeg else cfg.lettering_rim_px)
    areas = Components.of(g > cfg.lettering_floor_grey)
    labels = areas.labels().ravel()
    total = areas.sizes()
    other = np.bincount(labels, weights=~rims.ravel(), minlength=areas.n + 1)
    bounds = areas.bounds()
    extent = bounds[:, :, 1] - bounds[:, :, 0] + 1
    block = (other <= cfg.lettering_other_share * total) & (extent <= cfg.lettering_max_block * np.array([h, w])).all(axis=1)
    block[0] = False
    blocks = block[labels].reshape(h, w)
    body = (labels > 0).reshape(h, w) & ~blocks  # everything else, dim fragments of skin and fat included
    if not body.any() or not blocks.any():
        return none
    step = max(1, max(h, w) // 128)  # the body's outline needs no more than 128 cells across
    hh, ww = -(-h // step), -(-w // step)
    cells = np.pad(body, ((0, hh * step - h), (0, ww * step - w))).reshape(hh, step, ww, step).any(axis=(1, 3))
    around = fill_holes_2d(dilate(cells, -(-cfg.lettering_body_gap_px // step)))
    cy, cx = np.rint(areas.centroids()).astype(np.int64).T
    block &= ~around[cy // step, cx // step]
    found = block[labels].reshape(h, w)
    n_glyphs = np.count_nonzero(np.bincount(core_labels[found & glyph[core_labels]], minlength=cores.n + 1)[1:])
    return found if n_glyphs >= cfg.lettering_min_specks else none


def _clear(scan: Scan, k: int, cfg: QualityConfig) -> bool:
    """Set the lettering of image k of an 8-bit scan to the median grey just around it -> whether it held any."""
    hk, wk = scan.image_size(k)
    specks = lettering(scan.pixels[k, :hk, :wk], scan.jpeg, cfg)
    if not specks.any():
        return False
    if not scan.pixels.flags.writeable:
        scan.pixels = scan.pixels.copy()
    image = scan.pixels[k, :hk, :wk]
    ring = dilate(specks, 1) & ~specks
    image[specks] = np.median(image[ring]) if ring.any() else 0
    return True


def clear_lettering(scan: Scan, cfg: QualityConfig = QualityConfig()) -> Scan:
    """An 8-bit scan -> the same scan with the lettering around each image's body (:func:`lettering`)
    set to the median grey of the pixels just around it, with a note; HU scans, and images without
    lettering, unchanged. A long series is read whole only where its sample (Scan.series_sample:
    a viewer prints its lettering on every slice alike) holds lettering."""
    if scan.is_hu:
        return scan
    sample = scan.series_sample()
    first = [_clear(scan, k, cfg) for k in sample or []]
    if sample and not any(first):
        return scan
    rest = [_clear(scan, k, cfg) for k in range(scan.n_slices) if k not in (sample or [])]
    if any(first) or any(rest):
        scan.warnings.append(LETTERING_NOTE)
    return scan
