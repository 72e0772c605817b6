"""How sharp an image is where the model sees it, how much of it is clipped to white, and a
warning when either makes the result unreliable.

The model loses liver on blurred images and on small images enlarged for display (thumbnails,
screenshots): sharpness is measured on the model's own input, after the resize to its input size,
so a sharp 512 x 512 slice and the same slice shrunk to 128 and enlarged back score apart.

Measure: the blur effect of Crete-Roffet et al. (SPIE 2007, "The blur effect: perception and
estimation with a new no-reference perceptual blur metric"): blur the image again with a box
filter and see how much of its neighbour-to-neighbour variation that removes. A sharp image loses
most of it (a value near 0); an image that was already soft loses little (near 1).

Clipping: a narrow display window (a liver window such as W150/L30) turns an enhanced liver into a
white plateau, the same white as vessels, kidneys and bone, and the model leaves large parts of it
out. The share of the body's (non-black) pixels that are white is read off the 8-bit image itself.

Colour: a screenshot with coloured overlays or a colour map is read as grey; the share of its
coloured pixels is read off the file's RGB before that (thin coloured marks, a viewer's annotations,
are filled in instead: hepatoscan.marks).

Not CT: a page, a chart or a drawing is mostly white with almost nothing black, which a
CT image in a soft-tissue window never is (air and fat stay dark; a lung window, which clips soft
tissue white, comes nearer, so the bound leaves room); a mostly coloured image may be a photo.
Both are said, since the model finds "liver" in anything it is given.

Model unsure: on CT the model is sure of what it calls liver but along its outline; on an image
without the anatomy it learned (a photo, a diagram, some lung-window or heavily blurred slices)
the liver it finds is a haze of middling probabilities. The unsure pixels per pixel called liver,
counted at the model's input over every slice, are said when they pass a bound.
"""
from __future__ import annotations

import numpy as np

from .config import QualityConfig
from .scan import Note

BOX_PX = 9  # the re-blur's box filter size, as in the paper


def _variation(a: np.ndarray, axis: int) -> tuple[float, float]:
    """(H, W) float32 -> (sum of |neighbour differences| along ``axis``, the part of it that a
    BOX_PX box blur along ``axis`` removes). Two neighbouring box means differ by (the pixel that
    enters - the one that leaves) / BOX_PX, so the blurred image itself is never made."""
    d = np.abs(np.diff(a, axis=axis))
    pad_width = [(0, 0), (0, 0)]
    pad_width[axis] = (BOX_PX // 2, BOX_PX // 2)
    pad = np.pad(a, pad_width, mode="edge")
    n = pad.shape[axis]
    enters = np.take(pad, np.arange(BOX_PX, n), axis=axis)
    leaves = np.take(pad, np.arange(0, n - BOX_PX), axis=axis)
    lost = d - np.abs(enters - leaves) * (1.0 / BOX_PX)
    return float(d.sum()), float(np.maximum(lost, 0.0, out=lost).sum())


def blur_effect(x: np.ndarray) -> float:
    """x: (H, W) float32 model input in [0, 1] -> blur effect in [0, 1] (0 sharp, 1 fully blurred),
    the larger of the row and the column values. A flat image scores 0 (nothing to judge)."""
    a = np.asarray(x, np.float32)
    out = 0.0
    for axis in (0, 1):
        total, lost = _variation(a, axis)
        if total > 1e-6:
            out = max(out, (total - lost) / total)
    return out


def softness_warning(blur: float | None, cfg: QualityConfig = QualityConfig()) -> str | None:
    """The blur effect of an input (the median over its sampled slices) -> a sentence for the
    user, or None when it is sharp enough (or unknown)."""
    if blur is None or blur <= cfg.soft_blur_effect:
        return None
    return (f"The image is soft where the model sees it (blur effect {blur:.2f}; above "
            f"{cfg.soft_blur_effect:.2f} liver outlines were less reliable in testing): it looks blurred "
            "or enlarged from a smaller image. Use a full-resolution export, or the DICOM/NIfTI, if you have one.")


def white_fraction(gray: np.ndarray, cfg: QualityConfig = QualityConfig()) -> float:
    """gray: (H, W) 8-bit display grey levels in [0, 255] (uint8 or float), before standardisation
    -> share in [0, 1] of its non-black pixels (above ``cfg.black_grey``) that are white (at or
    above ``cfg.white_grey``). 0 for an image with no non-black pixel."""
    g = np.asarray(gray)
    body = int(np.count_nonzero(g > cfg.black_grey))
    return int(np.count_nonzero(g >= cfg.white_grey)) / body if body else 0.0


def clipping_warning(fraction: float | None, cfg: QualityConfig = QualityConfig()) -> str | None:
    """The white fraction of an 8-bit input (the median over its sampled slices) -> a sentence for
    the user, or None when little is clipped (or for HU input, where ``fraction`` is None)."""
    if fraction is None or fraction <= cfg.max_white_fraction:
        return None
    return (f"{100 * fraction:.0f}% of the body is clipped to white (above {100 * cfg.max_white_fraction:.0f}% "
            "the liver was under-segmented in testing), as in a narrow liver window such as W150/L30 or a lung "
            "window: a liver that bright looks like vessels and bone to the model, so parts of it and of its "
            "tumors may be left out. Export with a soft-tissue window (W350/L50 or W400/L40), or use the "
            "DICOM/NIfTI, if you can.")


def coloured(rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool: pixels whose R, G and B differ by more than
    ``cfg.colour_chroma`` grey levels (none in a grey image)."""
    a = np.asarray(rgb)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    chroma = np.maximum(np.maximum(r, g), b).astype(np.int16) - np.minimum(np.minimum(r, g), b)
    return chroma > cfg.colour_chroma


def colour_fraction(rgb: np.ndarray, cfg: QualityConfig = QualityConfig()) -> float:
    """rgb: (H, W, 3) uint8 -> share in [0, 1] of its :func:`coloured` pixels (0 for a grey image)."""
    marks = coloured(rgb, cfg)
    return float(np.count_nonzero(marks)) / marks.size if marks.size else 0.0


def colour_warning(fraction: float, cfg: QualityConfig = QualityConfig()) -> str | None:
    """The coloured share of an image -> a sentence for the user, or None for a grey image."""
    if fraction <= cfg.max_colour_fraction:
        return None
    if fraction > cfg.mostly_colour_fraction:
        return (f"{100 * fraction:.0f}% of the image is in colour. If it is a photo or a drawing, it is "
                "not a CT slice and the masks mean nothing; if it is a CT slice under a colour overlay or "
                "colour map, it was read as grey, which changes what the model sees: use a plain greyscale "
                "export of the slice, or the DICOM/NIfTI.")
    return (f"{100 * fraction:.0f}% of the image is in colour (overlays, annotations or a colour map?). "
            "It was read as grey, which changes what the model sees: use a plain greyscale export of "
            "the slice, or the DICOM/NIfTI, if you can.")


def page_shares(gray: np.ndarray, cfg: QualityConfig = QualityConfig()) -> tuple[float, float]:
    """gray: (H, W) 8-bit display grey levels in [0, 255] (uint8 or float) -> (white share, dark
    share), each in [0, 1] of all its pixels: at or above ``cfg.white_grey``, at or below
    ``cfg.page_dark_grey``. (0, 0) for an empty array."""
    g = np.asarray(gray)
    if not g.size:
        return 0.0, 0.0
    return (int(np.count_nonzero(g >= cfg.white_grey)) / g.size,
            int(np.count_nonzero(g <= cfg.page_dark_grey)) / g.size)


def looks_like_page(white_share: float, dark_share: float, cfg: QualityConfig = QualityConfig()) -> bool:
    """Mostly white with almost nothing dark: a page, a chart or a drawing. CT keeps air
    or fat black in soft-tissue windows, and stays under the white bound in lung windows (the
    measurements are in QualityConfig)."""
    return white_share >= cfg.page_white_fraction and dark_share < cfg.page_max_dark_fraction


def page_warning(white_share: float | None, dark_share: float | None,
                 cfg: QualityConfig = QualityConfig()) -> str | None:
    """The white and dark shares of an 8-bit input (medians over its sampled slices; None for HU
    input) -> a sentence for the user, or None when the input could be CT."""
    if white_share is None or dark_share is None or not looks_like_page(white_share, dark_share, cfg):
        return None
    return (f"This does not look like a CT slice: {100 * white_share:.0f}% of it is white and almost "
            "nothing is black (a page, a chart or a drawing?), while a CT image keeps air and "
            "fat dark in any display window. The masks and measurements are unlikely to mean anything. "
            "Give a CT slice exported from a viewer, or the DICOM/NIfTI.")


def flat_image_warning(flat_slices: int, slices: int) -> str | None:
    """How many of an 8-bit input's slices held (almost) no grey levels between black and white
    (WindowEstimate.flat) -> a sentence for the user, or None when at most half of them did."""
    if slices == 0 or 2 * flat_slices <= slices:
        return None
    which = "The image holds" if slices == 1 else f"{flat_slices} of the {slices} slices hold"
    return (f"{which} almost no grey levels between black and white (a mask, a drawing or a blank "
            "export?): it does not look like a CT slice, and no display window could be read from it. "
            "Give a CT slice exported from a viewer, or the DICOM/NIfTI.")


def surround_note(cropped: list[tuple[int, int]], slices: int) -> str | None:
    """The (H, W) regions segmented on the 8-bit slices found inside a uniform surround (a panel,
    a page: preprocessing.content_box) -> a sentence for the user, or None when none was."""
    if not cropped:
        return None
    h, w = cropped[0]
    where = "The image sits" if slices == 1 else f"On {len(cropped)} of the {slices} slices the image sits"
    size = f"the {w} x {h} px region holding it" if slices == 1 else "the region holding it"
    return (f"{where} inside a uniform surround (a viewer's panel, a page or padding?): only {size} was "
            "segmented. Check that it is the whole CT image, or crop the screenshot to it.")


def body_zoom(panel: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> float:
    """How much the model's view of a slice was enlarged by cropping it to its body: the longer
    side of its ``panel`` (the image, or the region inside a viewer's surround) over the longer side
    of the ``box`` read, both (y0, y1, x0, x1). 1.0 where the body filled the image."""
    return max(panel[1] - panel[0], panel[3] - panel[2]) / max(box[1] - box[0], box[3] - box[2])


def montage_warning(grids: list[tuple[int, int] | None], slices: int) -> str | None:
    """Per image, the grid of slices laid side by side in it (preprocessing.montage_grid; None for one
    slice) -> a warning for the user, or None when no image is a montage. A single image that is one
    is split by hepatoscan.montage before the model runs (pipeline.analyze), as are montages among
    other images; this warns of those its sample of a long stack missed (montage.find_montages) and
    of images segmented without that step."""
    found = [g for g in grids if g]
    if not found:
        return None
    rows, cols = found[0]
    where = "This image looks" if slices == 1 else f"{len(found)} of the {slices} images look"
    return (f"{where} like {rows * cols} CT slices side by side ({rows} x {cols}: a montage or key-image layout). "
            "The model reads one slice at a time, so this result is unreliable: give each slice as an image "
            "of its own (several at once in a .zip, measured image by image).")


def viewport_warning(grid: tuple[int, int]) -> str:
    """A viewer's layout of unlike views in one image (preprocessing.viewport_grid) -> a warning."""
    rows, cols = grid
    return (f"The image looks like a viewer's layout of {rows * cols} viewports ({rows} x {cols}) showing different "
            "views (axial, coronal or sagittal planes, or unlike slices). The model reads one axial CT slice at a "
            "time, so this result is unreliable: crop or export the axial viewport alone and segment it. (Several "
            "axial slices of one patient side by side are split and read one by one.)")


def inverted_note(inverted: int, slices: int) -> Note | None:
    """How many of ``slices`` were read inverted back (preprocessing.looks_inverted) -> a note for the
    user, or None when none was."""
    if not inverted:
        return None
    where = "The image looks" if slices == 1 else f"{inverted} of the {slices} slices look"
    return Note(f"{where} like CT shown inverted (white around the body, where CT's air is black): the model "
                "read the grey levels inverted back. If it is not an inverted CT image, the masks are wrong: "
                "export the CT without the viewer's invert.")


def zoom_note(zooms: list[float], slices: int, is_hu: bool = False,
              cfg: QualityConfig = QualityConfig()) -> Note | None:
    """The zoom factors (:func:`body_zoom`, those above 1) of the slices cropped to their body ->
    a note for the user where one reached ``cfg.zoom_note_min``, else None. ``is_hu``: CT numbers
    (a DICOM or NIfTI, whose wide margin is a wide field of view), else an 8-bit image."""
    big = [zoom for zoom in zooms if zoom >= cfg.zoom_note_min]
    if not big:
        return None
    where = "The body fills" if slices == 1 else f"On {len(big)} of the {slices} slices the body fills"
    why = "a slim patient in a wide field of view?" if is_hu else "a margin around it, or a viewer zoomed out"
    up_to = "" if slices == 1 else "up to "
    return Note(f"{where} only part of the image ({why}): the model read it cropped to the body, {up_to}"
                f"{max(big):.1f} times enlarged, as it reads CT whose body fills the field of view. The masks "
                "and measurements are of the image as given.")


def unsure_counts(liver_probs: np.ndarray, cfg: QualityConfig = QualityConfig()) -> tuple[int, int]:
    """liver_probs: (..., H, W) float32 liver probabilities in [0, 1] at the model's input size ->
    (pixels called liver (above 0.5), pixels within ``cfg.unsure_band``, whether called liver or
    not). Summed over slices, they give :func:`unsure_fraction`."""
    p = np.asarray(liver_probs)
    lo, hi = cfg.unsure_band
    return int(np.count_nonzero(p > 0.5)), int(np.count_nonzero((p > lo) & (p < hi)))


def unsure_fraction(liver_px: int, unsure_px: int, cfg: QualityConfig = QualityConfig()) -> float | None:
    """-> unsure pixels per pixel called liver (may exceed 1: the band's lower half lies outside
    what is called liver), or None when too little is called liver to judge."""
    if liver_px < cfg.min_liver_px_to_judge:
        return None
    return unsure_px / liver_px


def unsure_warning(fraction: float | None, cfg: QualityConfig = QualityConfig(), where: str = "") -> str | None:
    """The :func:`unsure_fraction` of an input -> a sentence for the user, or None when the model is
    sure enough of its liver (or too little was called liver to judge). ``where``: which of
    separate images it is said of (" on 2 of 12 images (a.png, b.png)")."""
    if fraction is None or fraction <= cfg.max_unsure_fraction:
        return None
    lo, hi = cfg.unsure_band
    return (f"The model is unsure of the liver it found{where}: {'up to ' if where else ''}"
            f"{100 * fraction:.0f} unsure pixels (probability {lo:g} to "
            f"{hi:g}) for every 100 it calls liver, where CT in a soft-tissue window typically gives 5 to 20; above "
            f"{100 * cfg.max_unsure_fraction:.0f} in testing were lung windows, heavy blur and images that are not CT. "
            "If this is not an axial CT slice of the abdomen, the masks mean nothing; otherwise check the outline "
            "against the image, and use a soft-tissue window export (W350/L50 or W400/L40) or the "
            "DICOM/NIfTI if you can.")


def unsure_images_warning(liver_px: np.ndarray, unsure_px: np.ndarray, scan,
                          cfg: QualityConfig = QualityConfig(), named: int = 5) -> str | None:
    """Separate images (not one series): (Z,) per-image :func:`unsure_counts` -> the warning naming
    the images the model is unsure of (the first ``named`` of them), or None. One photo among many
    CT images would be lost in a pooled figure."""
    fractions = [unsure_fraction(int(l), int(u), cfg) for l, u in zip(liver_px, unsure_px)]
    unsure = [k for k, f in enumerate(fractions) if f is not None and f > cfg.max_unsure_fraction]
    if not unsure:
        return None
    names = [image_names(scan)[k] for k in unsure[:named]]
    more = f" and {len(unsure) - named} more" if len(unsure) > named else ""
    where = f" on {len(unsure)} of {len(fractions)} images ({', '.join(names)}{more})"
    return unsure_warning(max(fractions[k] for k in unsure), cfg, where)


def image_names(scan) -> list[str]:
    """(Z,) the file name of each image of a stack (``slice_files``), "image K" where none is known."""
    files = scan.metadata.get("slice_files") or []
    return [files[k] if k < len(files) else f"image {k}" for k in range(scan.n_slices)]
