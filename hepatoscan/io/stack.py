"""A stack of 2D image files (one series' slices exported as PNG/JPEG/BMP/TIFF/WebP) -> one 8-bit volume.

Image files carry no slice position, so the stack keeps the files' natural name order
(``slice_2.png`` before ``slice_10.png``), as viewers number exported slices. Where the images lie
in several folders (a study exported a series per folder), the largest folder is the series, as
the largest series is of a DICOM study.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Callable

import numpy as np

from ..config import IMAGE_SUFFIXES, LoadLimits
from ..errors import HepatoScanError, InputTooLargeError
from .image import read_image
from .nifti import INT16_RANGE


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def natural_key(name: str) -> list:
    """Sort key that orders the digit runs of a name by value: img_2 < img_10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", PurePosixPath(name).as_posix()) if part]


def largest_folder(files: list[tuple[str, Callable[[], bytes]]]) -> tuple[list[tuple[str, Callable[[], bytes]]],
                                                                          str | None]:
    """Image files of several folders (a study with a series per folder) -> the files of the folder
    holding the most, and a warning naming the choice (None when there is one folder)."""
    folders: dict[str, list] = {}
    for f in files:
        folders.setdefault(str(PurePosixPath(f[0]).parent), []).append(f)
    if len(folders) == 1:
        return files, None
    folder, chosen = max(folders.items(), key=lambda kv: len(kv[1]))
    return chosen, (f"Images in {len(folders)} folders; the largest ('{folder}', {len(chosen)} images) was used "
                    "as the series. Give one series' folder at a time to choose another.")


def read_image_stack(files: list[tuple[str, Callable[[], bytes]]], name: str, limits: LoadLimits) -> dict:
    """(name, reader) pairs of image files -> {"pixels": (Z, H, W) grey levels in [0, 255], uint8
    (float32 where a slice has fractional levels), or float32 HU where the images hold CT numbers
    ("is_hu"), in natural name order; "files": the names in that order; "format": e.g. "png-stack";
    "warnings": [...]; "image_sizes": (H, W) per image where they differ, else None}.

    One series' slices share one size, and are read one at a time into the stack. Images of
    different sizes are separate images (screenshots, other patients): each is placed at the top
    left of a canvas of the largest height and width, black around it (:func:`on_canvas`), and its
    own size is kept, so the runtime segments and shows each image alone."""
    if len(files) > limits.max_slices:
        raise InputTooLargeError(f"{name}: {len(files)} images, over the limit of {limits.max_slices} slices. "
                                 "Give one series at a time.")
    files, folder_warning = largest_folder(files)
    files = sorted(files, key=lambda f: natural_key(f[0]))
    pixels, formats, warnings, sizes = None, set(), [folder_warning] if folder_warning else [], []
    hu_offset = _stack_hu_offset(files, name, limits)
    for z, (fname, read) in enumerate(files):
        try:
            values, fmt, slice_warnings, _ = read_image(read(), fname, limits, hu_offset)
        except HepatoScanError as e:  # say which archive or folder the bad image is in
            raise type(e)(f"{name}: {e}") from e
        sizes.append(values.shape)
        _check_canvas(len(files), sizes, fname, name, limits)
        if pixels is None:
            # 8-bit grey levels are held as uint8 (a quarter of float32: 39 MB for 150 slices of
            # 512 x 512) and HU as int16, rounded to 1 HU, as NIfTI and DICOM volumes are; the stack
            # turns float32 at the first slice that does not fit (16-bit or colour exports stretched
            # to [0, 255], HU beyond int16). Zeros: the black around smaller images (on_canvas).
            pixels = np.zeros((len(files), *values.shape), np.uint8 if hu_offset is None else np.int16)
        elif values.shape[0] > pixels.shape[1] or values.shape[1] > pixels.shape[2]:
            pixels = on_canvas(pixels, values.shape)
        if not _fits(values, pixels.dtype):
            pixels = pixels.astype(np.float32)
        h, w = values.shape
        pixels[z, :h, :w] = np.rint(values) if pixels.dtype == np.int16 else values
        formats.add(fmt)
        warnings += [w for w in slice_warnings if w not in warnings]
    fmt = formats.pop() if len(formats) == 1 else "image"
    mixed = len(set(sizes)) > 1
    return {"pixels": pixels, "files": [f for f, _ in files], "format": f"{fmt}-stack", "warnings": warnings,
            "is_hu": hu_offset is not None, "image_sizes": sizes if mixed else None}


def _check_canvas(n: int, sizes: list[tuple[int, int]], fname: str, name: str, limits: LoadLimits) -> None:
    """InputTooLargeError where ``n`` images on a canvas of the largest height and width of the
    ``sizes`` read so far would pass ``limits.max_voxels``: one large screenshot among many small
    images would make every image its size."""
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    if n * h * w <= limits.max_voxels:
        return
    if len(set(sizes)) == 1:
        raise InputTooLargeError(f"{name}: {n} images of {w} x {h} pixels, {n * h * w:,} in all, over the limit of "
                                 f"{limits.max_voxels:,}. Give fewer or smaller images at a time.")
    raise InputTooLargeError(
        f"{name}: the images differ in size, and {n} of them on one canvas of {w} x {h} pixels (the largest, "
        f"such as {fname}) would take {n * h * w:,}, over the limit of {limits.max_voxels:,}. Segment the "
        "largest images on their own, or export the images at one size.")


def on_canvas(pixels: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """(Z, H, W) stack -> (Z, max(H, h), max(W, w)) of its dtype, each slice at the top left, zeros
    (black) around it: room for an image of ``shape_hw`` = (h, w) that is larger either way."""
    z, h, w = pixels.shape
    out = np.zeros((z, max(h, shape_hw[0]), max(w, shape_hw[1])), pixels.dtype)
    out[:, :h, :w] = pixels
    return out


def _fits(values: np.ndarray, dtype) -> bool:
    """Whether a slice's values keep their meaning in the stack's dtype: uint8 holds whole grey levels,
    int16 HU rounded to 1 HU within its range; float32 holds anything."""
    if dtype == np.uint8:
        return np.array_equal(values, np.rint(values))
    if dtype == np.int16:
        lo, hi = float(values.min()), float(values.max())  # NaN compares False: float32
        return INT16_RANGE[0] <= lo and hi <= INT16_RANGE[1]
    return True


def _stack_hu_offset(files: list[tuple[str, Callable[[], bytes]]], name: str, limits: LoadLimits) -> int | None:
    """Whether a stack's images hold CT numbers, and at which offset (image.ct_number_offset), as its
    middle image reads: a series is exported one way, and its ends (neck, pelvis) are the least
    typical slices. Every image is then read that way."""
    fname, read = files[len(files) // 2]
    try:
        return read_image(read(), fname, limits).hu_offset
    except HepatoScanError as e:
        raise type(e)(f"{name}: {e}") from e
