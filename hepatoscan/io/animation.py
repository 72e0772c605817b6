"""An animated GIF, WebP or PNG (a viewer's cine loop, a scroll through a series saved to share in a
message or a slide) -> its frames as a stack of images, read as one series' slices (io.stack), in
frame order. Each frame is the picture as shown at that point of the animation (Pillow lays a
frame that updates part of the picture over the ones before it)."""
from __future__ import annotations

import io
import struct
import warnings
from typing import Callable

from PIL import Image, ImageSequence, UnidentifiedImageError

from .image import LOSSY_WEBP

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_animation_format(data: bytes) -> bool:
    """Whether the bytes are a GIF, a WebP or a PNG: the formats that may hold an animation."""
    return data[:6] in (b"GIF87a", b"GIF89a") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[:8] == PNG_MAGIC


def is_animated(data: bytes) -> bool:
    """Whether GIF, WebP or PNG bytes say they hold an animation, from their headers alone (nothing
    decoded): a PNG's acTL chunk before its image data, a WebP's animation flag, a GIF's second image."""
    if data[:8] == PNG_MAGIC:
        actl = data.find(b"acTL")
        return 0 < actl < max(data.find(b"IDAT"), 0)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)
    return data[:6] in (b"GIF87a", b"GIF89a")


def frame_count(data: bytes) -> int:
    """GIF, WebP or PNG bytes -> how many frames they hold (1 for a still image); 0 for other bytes
    or an unreadable or over-large file (the single-image reader then says what is wrong)."""
    if not is_animation_format(data) or not is_animated(data):
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return int(getattr(img, "n_frames", 1))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        return 0


def animation_kind(data: bytes) -> tuple[str, str]:
    """Animation bytes -> (its format's name for the user, "GIF", "WebP" or "PNG"; the Scan's
    source format of its frames: "gif", "png", "webp" or, lossy-coded, "webp-lossy", read as a
    JPEG is)."""
    if data[:3] == b"GIF":
        return "GIF", "gif"
    if data[:8] == PNG_MAGIC:
        return "PNG", "png"
    return "WebP", LOSSY_WEBP if animated_webp_is_lossy(data) else "webp"


def animated_webp_is_lossy(data: bytes) -> bool:
    """Animated WebP bytes -> whether its frames are lossy-coded: a "VP8 " chunk inside its first
    frame (ANMF: 16 bytes of frame header, then the frame's own chunks)."""
    pos = 12
    while pos + 8 <= len(data):
        fourcc, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if fourcc == b"ANMF":
            inner, end = pos + 8 + 16, pos + 8 + size
            while inner + 8 <= end:
                kind, length = data[inner:inner + 4], struct.unpack_from("<I", data, inner + 4)[0]
                if kind in (b"VP8 ", b"VP8L"):
                    return kind == b"VP8 "
                inner += 8 + length + (length & 1)
            return False
        pos += 8 + size + (size & 1)
    return False


def animation_frames(data: bytes, stem: str) -> list[tuple[str, Callable[[], bytes]]]:
    """An animation -> (name, reader) per frame, named ``<stem>_f0001.png`` ... in frame order, each
    frame saved as a PNG (lossless: its pixels as decoded). The frames are decoded in one pass (a GIF
    frame is built on the ones before it, so each cannot be decoded alone)."""
    frames = []
    with Image.open(io.BytesIO(data)) as img:
        for frame in ImageSequence.Iterator(img):
            buf = io.BytesIO()
            frame.convert("RGBA" if frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info else "RGB"
                          ).save(buf, format="PNG", compress_level=1)
            frames.append(buf.getvalue())
    width = max(4, len(str(len(frames))))
    return [(f"{stem}_f{k + 1:0{width}d}.png", (lambda b=b: b)) for k, b in enumerate(frames)]
