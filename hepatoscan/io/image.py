"""2D image files (PNG, JPEG, BMP, TIFF, WebP) -> grey display images, or CT numbers (HU) where a
16-bit or float file holds them."""
from __future__ import annotations

import io
import struct
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import LoadLimits
from ..errors import InputError, InputTooLargeError, UnsupportedFormatError
from ..marks import read_colour
from ..scan import Note

FORMATS = {"PNG": "png", "JPEG": "jpeg", "BMP": "bmp", "TIFF": "tiff", "MPO": "jpeg", "WEBP": "webp", "GIF": "gif"}
# Lossy WebP spreads black as JPEG does, and is read alike (Scan.jpeg). LiTS 117 exported at W350/L50
# as WebP q75, liver / tumor Dice: read as lossless 0.926 / 0.645, as JPEG 0.932 / 0.670 (PNG 0.931 /
# 0.671); IRCAD p01 +0.002; CHAOS 0.947 -> 0.945; the same at W1000/L0 and W2000/L0 either way.
LOSSY_WEBP = "webp-lossy"
EXIF_ORIENTATION = 0x0112  # 1 upright; 2 to 8 mirrored and/or turned, as a camera or phone editor writes
ORIENTATION_WORDS = {2: "mirrored left-right", 3: "turned 180 degrees", 4: "flipped upside down",
                     5: "mirrored and turned 90 degrees", 6: "turned 90 degrees clockwise",
                     7: "mirrored and turned 90 degrees", 8: "turned 90 degrees counter-clockwise"}
SUPPORTED = "PNG, JPEG, BMP, TIFF, WebP or GIF"
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16S", "I", "F")  # 16-bit, 32-bit integer and float images

# 16-bit and float image files may hold CT numbers, not display grey levels: research pipelines
# save slices as HU (signed or float TIFF), as HU + 1024 (CT's stored values without the rescale
# intercept) or as HU + 32768 (DeepLesion's PNGs). Such a file is read as HU, so it takes the
# model's own window instead of a window estimate from stretched grey levels (LiTS 117 saved as
# 16-bit PNG slices of HU + 1024, liver / tumor Dice: read as display grey 0.923 / 0.609, read as HU
# 0.933 / 0.677, the HU path's figures). It is HU + offset when, with the offset taken off, no
# value lies above CT's range (but a few: metal), anything below it is one padding value, and air
# and soft tissue, which every abdominal CT slice holds, make up most of the rest.
HU_OFFSETS = (0, 1024, 32768)  # stored value = HU + offset, the conventions met in files
HU_AIR = (-1100.0, -900.0)  # air, outside the body and in the bowel
HU_SOFT = (-150.0, 250.0)  # fat, muscle, organs, an enhanced liver
HU_TOP = 3100.0  # above this lies only metal
MAX_ABOVE_TOP = 0.02  # share of the non-padding pixels allowed above HU_TOP
MIN_AIR, MIN_SOFT, MIN_AIR_AND_SOFT = 0.005, 0.2, 0.4  # shares of the non-padding pixels


class ImageFile(NamedTuple):
    """An image file's pixels. pixels: (H, W) float32, grey levels in [0, 255], or HU where
    ``hu_offset`` is not None (the offset the file's values carried, already taken off)."""
    pixels: np.ndarray
    format: str  # "png", "jpeg", ... (FORMATS)
    warnings: list[str]
    hu_offset: int | None = None


def ct_number_offset(values: np.ndarray) -> int | None:
    """(H, W) values of a 16-bit or float image -> the offset (HU_OFFSETS) at which they read as a
    CT slice in HU, or None where they look like display grey levels at no offset."""
    a = np.asarray(values, np.float32)[::2, ::2]
    a = a[np.isfinite(a)]
    best, best_share = None, MIN_AIR_AND_SOFT
    for offset in HU_OFFSETS:
        hu = a - offset
        inside = hu[hu >= HU_AIR[0]]
        padding = hu[hu < HU_AIR[0]]
        if inside.size == 0 or (padding.size and padding.min() != padding.max()):
            continue  # below air, only one padding value may lie
        if np.count_nonzero(inside > HU_TOP) > MAX_ABOVE_TOP * inside.size:
            continue
        air = np.count_nonzero(inside <= HU_AIR[1]) / inside.size
        soft = np.count_nonzero((inside >= HU_SOFT[0]) & (inside <= HU_SOFT[1])) / inside.size
        if air >= MIN_AIR and soft >= MIN_SOFT and air + soft >= best_share:
            best, best_share = offset, air + soft
    return best


def hu_note(offset: int) -> Note:
    """What the user is told of an image file read as CT numbers."""
    stored = "HU" if offset == 0 else f"HU + {offset}"
    return Note(f"The image holds CT numbers, not display grey levels: read as {stored}, through the model's "
                "own window (no display window to estimate). If it is a display image, export it as 8-bit.")


def read_image(data: bytes, name: str, limits: LoadLimits, hu_offset: int | None | str = "auto") -> ImageFile:
    """Image bytes -> ImageFile. ``hu_offset``: "auto" decides from the image whether a 16-bit or
    float image holds CT numbers (ct_number_offset); an offset (or None) reads it that way, as
    every image of a stack is read the way its middle one was (io.stack)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or ""
            w, h = img.size
            if w * h > limits.max_pixels_per_slice:
                raise InputTooLargeError(
                    f"{name}: the image declares {w} x {h} = {w * h:,} pixels, over the limit of "
                    f"{limits.max_pixels_per_slice:,}. A CT slice is usually 512 x 512; export it at "
                    "that size (this also guards against decompression bombs).")
            if fmt not in FORMATS:
                raise UnsupportedFormatError(
                    f"{name}: {fmt or 'this'} images are not supported; use {SUPPORTED}, DICOM, or NIfTI.")
            if getattr(img, "n_frames", 1) > 1 and fmt == "TIFF":  # given alone, io.tiff reads it as a series
                raise UnsupportedFormatError(
                    f"{name}: a multi-page TIFF ({img.n_frames} pages) among other images. Give it on its "
                    "own: its pages are read as one series.")
            if getattr(img, "n_frames", 1) > 1:  # given alone, io.animation reads it as a series
                raise UnsupportedFormatError(
                    f"{name}: an animation of {img.n_frames} frames among other images. Give it on its own: "
                    "its frames are read as one series.")
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputTooLargeError(f"{name}: refused as a possible decompression bomb ({e}).") from e
    except UnidentifiedImageError as e:
        raise UnsupportedFormatError(
            f"{name}: not a readable image. Give a {SUPPORTED} slice, a DICOM file, a .zip "
            "of a DICOM series or of one series' PNG/JPEG slices, or a volume: NIfTI (.nii, .nii.gz), NRRD (.nrrd) or MetaImage (.mha).") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: the image is truncated or corrupt ({e}). Export it again.") from e
    img, turned = _upright(img)
    fmt = LOSSY_WEBP if fmt == "WEBP" and webp_is_lossy(data) else FORMATS[fmt]
    if img.mode in WIDE_MODES:
        wide = _wide_image(np.asarray(img, np.float32), fmt, hu_offset)
        return wide._replace(warnings=turned + wide.warnings)
    if hu_offset not in ("auto", None):
        raise InputError(f"{name}: an 8-bit image among images that hold CT numbers (16-bit or float). "
                         "A stack must hold one series' slices exported one way; export them all alike.")
    grey, rgb = _to_grey(img, name)
    if rgb is None:
        return ImageFile(grey, fmt, turned)
    grey, warning = read_colour(grey, rgb)
    return ImageFile(grey, fmt, turned + ([warning] if warning else []))


def _upright(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """An image -> (the image as viewers show it, with its EXIF orientation applied; [a note] when
    it was turned or mirrored, else []). A phone's editor or a camera may store the pixels sideways
    with a tag saying how to show them; read as stored, the liver would lie where the model does not
    look for it. An unreadable EXIF block is ignored: the pixels are kept as stored."""
    try:
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, struct.error):
        return img, []
    if orientation not in ORIENTATION_WORDS:
        return img, []
    return ImageOps.exif_transpose(img), [Note(
        f"The file's EXIF orientation tag says the image is shown {ORIENTATION_WORDS[orientation]}; it was read "
        "that way, as image viewers show it, and the masks are in that orientation.")]


def webp_is_lossy(data: bytes) -> bool:
    """WebP file bytes -> True when its image is lossy-coded (a "VP8 " chunk), False when lossless
    ("VP8L") or when no image chunk is found. The RIFF chunks are walked: fourcc, little-endian
    size, payload padded to an even length."""
    pos = 12  # "RIFF", size, "WEBP"
    while pos + 8 <= len(data):
        fourcc = data[pos:pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc == b"VP8 "
        pos += 8 + size + (size & 1)
    return False


def _wide_image(values: np.ndarray, fmt: str, hu_offset: int | None | str) -> ImageFile:
    """(H, W) values of a 16-bit, 32-bit or float image -> HU (their offset taken off) where they hold
    CT numbers, else grey levels stretched from their own range."""
    offset = ct_number_offset(values) if hu_offset == "auto" else hu_offset
    if offset is None:
        return ImageFile(stretch_to_grey(values), fmt, [])
    return ImageFile(values - np.float32(offset), fmt, [hu_note(offset)], offset)


def stretch_to_grey(values: np.ndarray) -> np.ndarray:
    """Display values of any range (16-bit or float exports, 12-bit DICOM) -> float32 grey levels
    in [0, 255], stretched from their own range; the window is estimated later anyway."""
    a = np.asarray(values, np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


def _to_grey(img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any 8-bit Pillow mode -> ((H, W) float32 in [0, 255], the (H, W, 3) uint8 RGB it came from,
    or None for a grey image)."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode == "L":
        return np.asarray(img, np.float32), None
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), np.float32), np.asarray(img)
