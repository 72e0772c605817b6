"""2D image files (PNG, JPEG, BMP, TIFF) -> grey display images."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import LoadLimits
from ..errors import InputError, InputTooLargeError, UnsupportedFormatError
from ..quality import colour_fraction, colour_warning

FORMATS = {"PNG": "png", "JPEG": "jpeg", "BMP": "bmp", "TIFF": "tiff", "MPO": "jpeg"}


def read_image(data: bytes, name: str, limits: LoadLimits) -> tuple[np.ndarray, str, list[str]]:
    """Image bytes -> ((H, W) float32 grey levels in [0, 255], format name, warnings)."""
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
                    f"{name}: {fmt or 'this'} images are not supported; use PNG, JPEG, BMP or TIFF, "
                    "DICOM, or NIfTI.")
            if getattr(img, "n_frames", 1) > 1:
                raise UnsupportedFormatError(
                    f"{name}: the file holds {img.n_frames} frames (an animation or multi-page TIFF). "
                    "Export one slice per file, or give the study as DICOM or NIfTI.")
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputTooLargeError(f"{name}: refused as a possible decompression bomb ({e}).") from e
    except UnidentifiedImageError as e:
        raise UnsupportedFormatError(
            f"{name}: not a readable image. Give a PNG, JPEG, BMP or TIFF slice, a DICOM file, a .zip "
            "of a DICOM series or of one series' PNG/JPEG slices, or a NIfTI volume (.nii, .nii.gz).") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: the image is truncated or corrupt ({e}). Export it again.") from e
    grey, rgb = _to_grey(img, name)
    warning = colour_warning(colour_fraction(rgb)) if rgb is not None else None
    return grey, FORMATS[fmt], [warning] if warning else []


def stretch_to_grey(values: np.ndarray) -> np.ndarray:
    """Display values of any range (16-bit or float exports, 12-bit DICOM) -> float32 grey levels
    in [0, 255], stretched from their own range; the window is estimated later anyway."""
    a = np.asarray(values, np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


def _to_grey(img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> ((H, W) float32 in [0, 255], the (H, W, 3) uint8 RGB it came from, or
    None for a grey image)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return stretch_to_grey(np.asarray(img, np.float32)), None
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
