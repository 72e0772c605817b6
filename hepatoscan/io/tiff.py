"""A multi-page TIFF (an ImageJ / Fiji stack, a scanner's or a script's export of a series) -> its
pages as a stack of images, read as one series' slices (io.stack), with the voxel spacing ImageJ
writes where it says its unit."""
from __future__ import annotations

import io
from typing import Callable

from PIL import Image, UnidentifiedImageError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
UNIT_MM = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "micron": 1e-3, "um": 1e-3, "\u00b5m": 1e-3,
           "cm": 10.0, "centimeter": 10.0, "centimetre": 10.0}


def tiff_page_count(data: bytes) -> int:
    """TIFF bytes -> how many pages it holds; 0 when the bytes are no readable TIFF."""
    if data[:4] not in TIFF_MAGIC:
        return 0
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(getattr(img, "n_frames", 1))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 0


def tiff_pages(data: bytes, stem: str, n_pages: int) -> list[tuple[str, Callable[[], bytes]]]:
    """A multi-page TIFF -> (name, reader) per page, named ``<stem>_p0001.tif`` ... in page order;
    each reader gives that page alone as a one-page TIFF (decoded when read, one page at a time)."""
    def reader(k: int) -> Callable[[], bytes]:
        def read() -> bytes:
            with Image.open(io.BytesIO(data)) as img:
                img.seek(k)
                page = img.copy()
            buf = io.BytesIO()
            page.save(buf, format="TIFF")
            return buf.getvalue()
        return read

    width = max(4, len(str(n_pages)))
    return [(f"{stem}_p{k + 1:0{width}d}.tif", reader(k)) for k in range(n_pages)]


def imagej_spacing_mm(data: bytes) -> tuple[float | None, float, float] | None:
    """An ImageJ TIFF's voxel size -> (z, y, x) in mm (z None when it gives no slice spacing), or
    None where the file does not say its unit in a length ImageJ writes (its description's
    ``unit=``; XResolution and YResolution are then pixels per that unit). Other TIFFs' resolution
    tags are mostly a screen's 72 dpi, not the pixel size, and are not read."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            tags = img.tag_v2
            description = str(tags.get(270, ""))
            x_res, y_res = tags.get(282), tags.get(283)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, AttributeError):
        return None
    if not description.startswith("ImageJ="):
        return None
    fields = dict(line.split("=", 1) for line in description.splitlines() if "=" in line)
    scale = UNIT_MM.get(fields.get("unit", "").strip().lower())
    try:
        x_res, y_res = float(x_res), float(y_res)
    except (TypeError, ValueError):
        return None
    if scale is None or x_res <= 0 or y_res <= 0:
        return None
    try:
        z = float(fields["spacing"]) * scale if "spacing" in fields else None
    except ValueError:
        z = None
    return (z if z and z > 0 else None, scale / y_res, scale / x_res)
