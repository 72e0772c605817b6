"""Montages: several CT slices laid side by side in one 8-bit image (a viewer's key-image layout or
a figure), split into the slices they hold, so that each is segmented and measured on its own.
Read as one picture, 2 x 2 CHAOS slices scored liver Dice 0.50; split, each tile scores as the
slice alone (tests/test_quality.py)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from .preprocessing import body_floor, montage_grid, read_panel, to_grayscale, viewport_grid
from .quality import viewport_warning
from .scan import Note, Scan
from .wording import agree

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


def montage_in(image: np.ndarray, jpeg: bool) -> Montage | None:
    """(H, W) grey levels of one 8-bit image -> the montage it holds (preprocessing.montage_grid,
    read inside a viewer's surround and, where the image is shown inverted, inverted back, as the
    predictor reads it; where a text strip runs across its top or bottom, also without it), or None."""
    (y0, y1, x0, x1), _, pixels, estimate = read_panel(to_grayscale(image), jpeg)
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


def _image(scan: Scan, k: int) -> np.ndarray:
    """Image k of ``scan`` alone: (h, w), without the canvas of a stack whose images differ in size."""
    h, w = scan.image_size(k)
    return scan.pixels[k, :h, :w]


def find_montages(scan: Scan) -> tuple[dict[int, Montage], bool]:
    """The montages the images of an 8-bit scan hold -> ({image index: Montage}, whether every image
    was checked). HU input holds none (a volume's slices). A long series is checked by its sample
    (Scan.series_sample: a series exported as montage pages holds them throughout), and image by
    image where the sample holds a montage; a montage the sample misses among separate images is
    still warned of by the predictor (quality.montage_warning)."""
    if scan.is_hu:
        return {}, True
    sample = scan.series_sample()
    found = {k: m for k in (sample or range(scan.n_slices)) if (m := montage_in(_image(scan, k), scan.jpeg)) is not None}
    if sample and not found:
        return {}, False
    if sample:
        found |= {k: m for k in range(scan.n_slices)
                  if k not in found and (m := montage_in(_image(scan, k), scan.jpeg)) is not None}
    return found, True


@dataclass(frozen=True)
class Split:
    """How the images of a scan are cut into the slices they hold: each output image is a region of
    one input image, a montage's tile or the whole image, in input order and row by row within a
    montage.

    parts: (input image index, (y0, y1, x0, x1) end-exclusive) of each output image; names: its file
    name; montages: (input image index, input image name, Montage) of each image split."""

    parts: tuple[tuple[int, tuple[int, int, int, int]], ...]
    names: tuple[str, ...]
    montages: tuple[tuple[int, str, Montage], ...]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(h, w) of each output image."""
        return [(y1 - y0, x1 - x0) for _, (y0, y1, x0, x1) in self.parts]

    def apply(self, stack: np.ndarray) -> np.ndarray:
        """(Z, H, W) array of the input's images (its pixels, or a reference's labels, on the input's
        canvas) -> (N, h, w) of its dtype, the output images in order, each at the top left of a canvas
        of the largest h and w, zeros around it (as io.stack places images that differ in size)."""
        sizes = self.sizes
        out = np.zeros((len(sizes), max(h for h, _ in sizes), max(w for _, w in sizes)), stack.dtype)
        for i, (k, (y0, y1, x0, x1)) in enumerate(self.parts):
            out[i, :y1 - y0, :x1 - x0] = stack[k, y0:y1, x0:x1]
        return out


def _file_names(scan: Scan) -> list[str]:
    """The file name of each image of ``scan``: a stack's files, or "<name>.png" for one image."""
    return list(scan.metadata.get("slice_files") or [f"{scan.name}.png"] * scan.n_slices)


def tile_name(name: str, row: int, col: int) -> str:
    """A montage tile's file name: "sub/a.jpg", row 1, column 2 -> "sub/a_r1c2.png" (its label PNG's)."""
    return f"{PurePosixPath(name).with_suffix('')}_r{row + 1}c{col + 1}.png"


def plan_split(scan: Scan, montages: dict[int, Montage]) -> Split:
    """The images of ``scan`` and the montages some hold -> the :class:`Split` that cuts each montage
    into its tiles and keeps every other image whole."""
    files, parts, names = _file_names(scan), [], []
    for k in range(scan.n_slices):
        montage = montages.get(k)
        if montage is None:
            h, w = scan.image_size(k)
            parts.append((k, (0, h, 0, w)))
            names.append(files[k])
            continue
        cols = montage.grid[1]
        for t, tile in enumerate(montage.tiles()):
            parts.append((k, tile))
            names.append(tile_name(files[k], t // cols, t % cols))
    return Split(tuple(parts), tuple(names), tuple((k, files[k], m) for k, m in sorted(montages.items())))


def montage_note(split: Split, n_images: int) -> Note:
    """What was done with the montages, for the user (a Note: nothing is wrong with the input)."""
    names = split.names
    if n_images == 1:
        (_, _, montage), = split.montages
        rows, cols = montage.grid
        th, tw = montage.tile_shape
        return Note(f"The image holds {rows * cols} CT slices side by side ({rows} x {cols}: a montage or key-image "
                    f"layout). The model reads one slice at a time, so each was cut out ({tw} x {th} px), segmented "
                    f"and measured on its own: images 0 to {len(names) - 1}, row by row ({names[0]} to {names[-1]}). "
                    "Areas and lesions are per image; there is no volume.")
    split_images = len(split.montages)
    grids = "; ".join(f"{name}: {m.grid[0]} x {m.grid[1]}" for _, name, m in split.montages[:4])
    more = f"; and {split_images - 4} more" if split_images > 4 else ""
    first_tile = names[[k for k, _ in split.parts].index(split.montages[0][0])]
    return Note(f"{split_images} of the {n_images} images {agree(split_images, 'holds', 'hold')} several CT slices "
                f"side by side (montages or key-image layouts: {grids}{more}). The model reads one slice at a time, "
                "so each slice was cut out, segmented and measured on its own, named after its image by row and "
                f"column (such as {first_tile}): {len(names)} images in all, numbered 0 to {len(names) - 1}. "
                "Areas and lesions are per image; there is no volume.")


def split_scan(scan: Scan, split: Split) -> Scan:
    """An 8-bit scan and a :class:`Split` of it -> a stack of the split's images, separate images
    (Scan.images_separate) named after their files (``slice_files``; image_sizes where they differ),
    of the scan's dtype, with its spacing, metadata and warnings and a note that says what was split."""
    sizes = split.sizes
    metadata = {k: v for k, v in scan.metadata.items() if k != "image_sizes"}
    metadata |= {"slice_files": list(split.names),
                 "montage": [{"image": name, "grid": list(m.grid), "tiles_yyxx": [list(t) for t in m.tiles()]}
                             for _, name, m in split.montages],
                 **({"image_sizes": sizes} if len(set(sizes)) > 1 else {})}
    for _, name, m in split.montages:
        log.info("%s: a %d x %d montage, split into %d images", name, *m.grid, m.grid[0] * m.grid[1])
    return Scan(split.apply(scan.pixels), False, scan.spacing_mm, scan.source_format, scan.name, metadata,
                [*scan.warnings, montage_note(split, scan.n_slices)])


def split_if_montage(scan: Scan) -> tuple[Scan, Split | None]:
    """``scan`` with every montage among its 8-bit images cut into its slices (:func:`find_montages`,
    :func:`plan_split`, :func:`split_scan`), with the :class:`Split` (for a reference's labels);
    else ``scan`` and None. An 8-bit scan whose every image was checked and found to hold one slice
    is marked so (``metadata["montage"] = None``): the predictor does not look again. A single image
    that holds a viewer's layout of unlike views (preprocessing.viewport_grid) gets a warning."""
    montages, checked_all = find_montages(scan)
    if montages:
        split = plan_split(scan, montages)
        return split_scan(scan, split), split
    if not scan.is_hu and checked_all:
        scan.metadata["montage"] = None
    if not scan.is_hu and scan.n_slices == 1:
        _, _, pixels, estimate = read_panel(to_grayscale(scan.pixels[0]), scan.jpeg)
        grid = viewport_grid(pixels, estimate)
        if grid is not None:
            scan.warnings.append(viewport_warning(grid))
    return scan, None
