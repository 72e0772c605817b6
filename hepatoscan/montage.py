"""Montages: several CT slices laid side by side in one 8-bit image (a viewer's key-image layout or
a figure), split into the slices they hold, so that each is segmented and measured on its own.
Read as one picture, 2 x 2 CHAOS slices scored liver Dice 0.50; split, each tile scores as the
slice alone (tests/test_quality.py)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .preprocessing import body_floor, montage_grid, read_panel, to_grayscale
from .scan import Note, Scan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Montage:
    """Where the slices of a montage lie in its image.

    grid: (rows, columns) of equal tiles; panel: (y0, y1, x0, x1), end-exclusive, of the image
    region they fill (the whole image, or the part inside a viewer's surround)."""

    grid: tuple[int, int]
    panel: tuple[int, int, int, int]

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(H, W) px of each tile: the panel cut into equal parts (a remainder of under one tile's
        row or column of pixels at the bottom or right is left out)."""
        (rows, cols), (y0, y1, x0, x1) = self.grid, self.panel
        return (y1 - y0) // rows, (x1 - x0) // cols

    def tiles(self) -> list[tuple[int, int, int, int]]:
        """(y0, y1, x0, x1) of each tile in the image, row by row."""
        (rows, cols), (y0, _, x0, _) = self.grid, self.panel
        th, tw = self.tile_shape
        return [(y0 + i * th, y0 + (i + 1) * th, x0 + j * tw, x0 + (j + 1) * tw)
                for i in range(rows) for j in range(cols)]

    def cut(self, image: np.ndarray) -> np.ndarray:
        """(1, H, W) array of the montage's image (its pixels, or a reference's labels) -> (N, h, w),
        its tiles row by row."""
        return np.stack([image[0, y0:y1, x0:x1] for y0, y1, x0, x1 in self.tiles()])

    def tile_names(self, stem: str) -> list[str]:
        """A name for each tile, row by row, as its label PNG is written: "<stem>_r1c2.png"."""
        rows, cols = self.grid
        return [f"{stem}_r{i + 1}c{j + 1}.png" for i in range(rows) for j in range(cols)]


# A text strip across the top or bottom of a montage (a print layout's patient line): at most this
# share of the image's height, and of each of its rows, above the body's floor; air below or above it.
STRIP_MAX_HEIGHT = 0.1
STRIP_MAX_ROW_FILL = 0.3


def _text_strip(rows_filled: np.ndarray) -> list[int]:
    """(H,) share of each row that is body, from the image's edge inward -> where a text strip at
    that edge may end, most likely first: its lettering centred in its bar (as much air after it as
    before it), halfway through the air after it, right after it; [] where there is no such strip.
    Where the bar ends is not seen (bar and tile are both black), so each is tried."""
    limit = int(STRIP_MAX_HEIGHT * len(rows_filled))
    start = int(np.argmax(rows_filled > 0)) if rows_filled.any() else limit
    end = start
    while end < limit and rows_filled[end] > 0:
        if rows_filled[end] > STRIP_MAX_ROW_FILL:
            return []
        end += 1
    if not start < end < limit or rows_filled[end] > 0:
        return []
    air = int(np.argmax(rows_filled[end:] > 0)) if rows_filled[end:].any() else 0
    return list(dict.fromkeys(c for c in (end + min(start, air), end + air // 2, end) if c < len(rows_filled)))


def find_montage(scan: Scan) -> Montage | None:
    """The montage a single 8-bit image holds (preprocessing.montage_grid, read inside a viewer's
    surround and, where the image is shown inverted, inverted back, as the predictor reads it; where
    a text strip runs across its top or bottom, also without it), or None: one slice, HU input, or
    a stack (a series' slices are no montage; a stack of separate images is warned of by the
    predictor instead)."""
    if scan.is_hu or scan.n_slices != 1:
        return None
    (y0, y1, x0, x1), _, pixels, estimate = read_panel(to_grayscale(scan.pixels[0]), scan.jpeg)
    grid = montage_grid(pixels, estimate)
    if grid is not None:
        return Montage(grid, (y0, y1, x0, x1))
    rows_filled = (pixels > body_floor(False, estimate)).mean(axis=1)
    tops, bottoms = _text_strip(rows_filled) or [0], _text_strip(rows_filled[::-1]) or [0]
    for cut_top, cut_bottom in ((t, b) for t in tops for b in bottoms if t or b):
        grid = montage_grid(pixels[cut_top:len(pixels) - cut_bottom], estimate)
        if grid is not None:
            return Montage(grid, (y0 + cut_top, y1 - cut_bottom, x0, x1))
    return None


def montage_note(montage: Montage, names: list[str]) -> Note:
    """What was done with a montage, for the user (a Note: nothing is wrong with the input)."""
    rows, cols = montage.grid
    n = rows * cols
    th, tw = montage.tile_shape
    return Note(f"The image holds {n} CT slices side by side ({rows} x {cols}: a montage or key-image layout). "
                f"The model reads one slice at a time, so each was cut out ({tw} x {th} px), segmented and "
                f"measured on its own: images 0 to {n - 1}, row by row ({names[0]} to {names[-1]}). "
                "Areas and lesions are per image; there is no volume.")


def split_montage(scan: Scan, montage: Montage) -> Scan:
    """A single 8-bit image that holds ``montage`` -> a stack of its tiles, row by row: (N, h, w)
    float32 grey levels in [0, 255], separate images (Scan.images_separate) named by row and column
    (``slice_files``), with the image's spacing, metadata and warnings and a note that says so."""
    names = montage.tile_names(scan.name)
    pixels = montage.cut(scan.pixels).astype(np.float32)
    metadata = {**scan.metadata, "slice_files": names,
                "montage": {"grid": list(montage.grid), "tiles_yyxx": [list(t) for t in montage.tiles()]}}
    log.info("%s: a %d x %d montage, split into %d images", scan.name, *montage.grid, len(names))
    return Scan(pixels, False, scan.spacing_mm, scan.source_format, scan.name, metadata,
                [*scan.warnings, montage_note(montage, names)])


def split_if_montage(scan: Scan) -> tuple[Scan, Montage | None]:
    """``scan`` split into its slices where it is a single 8-bit image that holds a montage
    (:func:`find_montage`, :func:`split_montage`), with the montage; else ``scan`` and None (a single
    8-bit image is marked checked, ``metadata["montage"] = None``, so the predictor does not look
    again)."""
    montage = find_montage(scan)
    if montage is not None:
        return split_montage(scan, montage), montage
    if not scan.is_hu and scan.n_slices == 1:
        scan.metadata["montage"] = None
    return scan, None
