"""Montages: several CT slices laid side by side in one 8-bit image (a viewer's key-image layout or
a figure), split into the slices they hold, so that each is segmented and measured on its own.
Read as one picture, 2 x 2 CHAOS slices scored liver Dice 0.50; split, each tile scores as the
slice alone (tests/test_quality.py)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .preprocessing import content_box, estimate_display_window, looks_inverted, montage_grid, to_grayscale
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

    def tile_names(self, stem: str) -> list[str]:
        """A name for each tile, row by row, as its label PNG is written: "<stem>_r1c2.png"."""
        rows, cols = self.grid
        return [f"{stem}_r{i + 1}c{j + 1}.png" for i in range(rows) for j in range(cols)]


def find_montage(scan: Scan) -> Montage | None:
    """The montage a single 8-bit image holds (preprocessing.montage_grid, read inside a viewer's
    surround and, where the image is shown inverted, inverted back, as the predictor reads it), or
    None: one slice, HU input, or a stack (a series' slices are no montage; a stack of separate
    images is warned of by the predictor instead)."""
    if scan.is_hu or scan.n_slices != 1:
        return None
    grey = to_grayscale(scan.pixels[0])
    h, w = grey.shape
    panel = content_box(grey) or (0, h, 0, w)
    pixels = grey[panel[0]:panel[1], panel[2]:panel[3]]
    if looks_inverted(pixels):
        pixels = 255.0 - pixels
    grid = montage_grid(pixels, estimate_display_window(pixels, scan.jpeg))
    return None if grid is None else Montage(grid, panel)


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
    pixels = np.stack([scan.pixels[0, y0:y1, x0:x1] for y0, y1, x0, x1 in montage.tiles()]).astype(np.float32)
    metadata = {**scan.metadata, "slice_files": names,
                "montage": {"grid": list(montage.grid), "tiles_yyxx": [list(t) for t in montage.tiles()]}}
    log.info("%s: a %d x %d montage, split into %d images", scan.name, *montage.grid, len(names))
    return Scan(pixels, False, scan.spacing_mm, scan.source_format, scan.name, metadata,
                [*scan.warnings, montage_note(montage, names)])


def split_labels(labels: np.ndarray, montage: Montage) -> np.ndarray:
    """(1, H, W) labels of the montage's image (a reference segmentation) -> (N, h, w), tile by
    tile as :func:`split_montage` cuts the image."""
    return np.stack([labels[0, y0:y1, x0:x1] for y0, y1, x0, x1 in montage.tiles()])


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
