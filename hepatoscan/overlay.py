"""Pictures a reader can trust at a glance: liver green, tumor red (translucent fill + contour) on
the windowed CT, lesion numbers matching the report's lesion table; and a 4-panel view."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .morphology import boundary
from .preprocessing import window_hu

LIVER_RGB = (40, 200, 90)
TUMOR_RGB = (235, 50, 50)
# A reference segmentation's outlines (hepatoscan.agreement), drawn over HepatoScan's masks.
REFERENCE_LIVER_RGB = (255, 215, 0)  # yellow
REFERENCE_TUMOR_RGB = (40, 160, 255)  # blue
DISPLAY_WINDOW_HU = (-160.0, 240.0)  # W400/L40 abdominal view for HU input
FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans-Bold.ttf"
# Opacity of a mask's inside in a viewer that draws the masks over the picture itself (the app's
# Gradio AnnotatedImage, which shows each mask's colour at this opacity x its own 0.85): the CT and
# the lesion numbers show through, as in overlay(); the edge is drawn at full opacity. With solid
# masks a 512-pixel slice's lesion numbers were all but hidden under the tumor's red.
MASK_LAYER_FILL = 0.45


def display_image(pixels: np.ndarray, is_hu: bool) -> np.ndarray:
    """(H, W) HU or grey -> (H, W) uint8 for display (HU: abdominal window; grey: as exported)."""
    if is_hu:
        return np.rint(window_hu(pixels, DISPLAY_WINDOW_HU) * 255).astype(np.uint8)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.truetype(str(FONT_PATH), size)
    except OSError:
        return ImageFont.load_default()


def overlay(gray: np.ndarray, liver: np.ndarray, tumor: np.ndarray, lesion_centroids=None,
            alpha: float = 0.35, reference: np.ndarray | None = None) -> np.ndarray:
    """gray (H, W) uint8; liver/tumor (H, W) {0, 1}; lesion_centroids [(id, (y, x))]; reference
    (H, W) uint8 labels in {0, 1, 2} or None -> (H, W, 3) uint8 RGB with translucent fills, solid
    contours, the reference's outlines (yellow liver, blue tumor) and lesion numbers."""
    rgb = np.repeat(gray[..., None], 3, -1).astype(np.float32)
    liver_only = liver.astype(bool) & ~tumor.astype(bool)
    for mask, colour in ((liver_only, LIVER_RGB), (tumor.astype(bool), TUMOR_RGB)):
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.array(colour, np.float32)
    for mask, colour in ((liver.astype(bool), LIVER_RGB), (tumor.astype(bool), TUMOR_RGB)):
        rgb[_edge(mask)] = colour
    if reference is not None:
        for mask, colour in ((reference >= 1, REFERENCE_LIVER_RGB), (reference == 2, REFERENCE_TUMOR_RGB)):
            rgb[_edge(mask)] = colour
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    if lesion_centroids:
        draw = ImageDraw.Draw(img)
        size = max(10, min(gray.shape) // 28)
        font = _font(size)
        for lid, (y, x) in lesion_centroids:
            draw.text((x + size * 0.6, y - size * 1.2), str(lid), fill=(255, 255, 0), font=font,
                      stroke_width=max(1, size // 8), stroke_fill=(0, 0, 0))
    return np.asarray(img)


def _edge(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: the mask's contour, 1 pixel thick per 256 pixels of the image's
    shorter side."""
    edge = boundary(mask)
    for _ in range(max(1, round(min(mask.shape) / 256)) - 1):
        edge = edge | (boundary(mask & ~edge) if (mask & ~edge).any() else edge)
    return edge


def mask_layers(liver: np.ndarray, tumor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """liver (incl. tumor), tumor: (H, W) {0, 1} -> (liver layer, tumor layer), each (H, W) float32
    in [0, 1], the opacity of that mask's colour for a viewer that draws masks itself:
    MASK_LAYER_FILL inside (the liver's layer outside the tumor only, so the tumor is tinted once),
    1 on the mask's contour (as thick as overlay()'s), 0 elsewhere."""
    liver, tumor = liver.astype(bool), tumor.astype(bool)
    layers = []
    for mask, fill in ((liver, liver & ~tumor), (tumor, tumor)):
        layer = np.where(fill, np.float32(MASK_LAYER_FILL), np.float32(0.0))
        layer[_edge(mask)] = 1.0
        layers.append(layer)
    return layers[0], layers[1]


def reference_layers(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """reference: (H, W) uint8 labels in {0, 1, 2} -> (liver outline, tumor outline), each (H, W)
    float32 in {0, 1}, as thick as overlay()'s contours, for a viewer that draws masks itself."""
    return tuple(_edge(mask).astype(np.float32) for mask in (reference >= 1, reference == 2))


def numbered(gray: np.ndarray, lesion_centroids) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8: the grey image with lesion numbers only (a base for
    viewers that draw the masks themselves)."""
    empty = np.zeros(gray.shape, np.uint8)
    return overlay(gray, empty, empty, lesion_centroids, alpha=0.0)


def mask_image(mask: np.ndarray, colour) -> np.ndarray:
    """(H, W) {0, 1} -> (H, W, 3) uint8: the mask in colour on black."""
    out = np.zeros(mask.shape + (3,), np.uint8)
    out[mask.astype(bool)] = colour
    return out


def panel(gray: np.ndarray, liver: np.ndarray, tumor: np.ndarray, over: np.ndarray,
          tile_px: int = 384) -> np.ndarray:
    """Side by side: original, liver mask, tumor mask, overlay, each captioned -> (h, 4w, 3) uint8."""
    tiles = [np.repeat(gray[..., None], 3, -1), mask_image(liver, LIVER_RGB), mask_image(tumor, TUMOR_RGB), over]
    captions = ["Original", "Liver mask", "Tumor mask", "Overlay"]
    h, w = gray.shape
    scale = tile_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    bar = max(18, tile_px // 16)
    canvas = Image.new("RGB", (4 * size[0] + 3 * 4, size[1] + bar), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(int(bar * 0.6))
    for i, (t, cap) in enumerate(zip(tiles, captions)):
        x0 = i * (size[0] + 4)
        canvas.paste(Image.fromarray(t).resize(size, Image.NEAREST if i in (1, 2) else Image.BILINEAR), (x0, bar))
        draw.text((x0 + 4, bar * 0.15), cap, fill=(30, 30, 30), font=font)
    return np.asarray(canvas)


def slice_views(seg, z: int, lesion_centroids=None, reference: np.ndarray | None = None) -> dict:
    """The pictures of slice ``z`` of a Segmentation: {"original", "numbered", "liver", "tumor",
    "liver_layer", "tumor_layer" (mask_layers), "overlay", "panel"}; with ``reference``, the
    slice's (H, W) reference labels, the overlay and panel show its outlines, and
    "reference_liver_layer", "reference_tumor_layer" (reference_layers) are added."""
    scan = seg.scan
    h, w = scan.image_size(z)  # the image alone, where a stack's images differ in size
    gray = display_image(scan.pixels[z][:h, :w], scan.is_hu)
    liver, tumor = seg.liver[z][:h, :w], seg.tumor[z][:h, :w]
    ref = None if reference is None else np.asarray(reference)[:h, :w]
    over = overlay(gray, liver, tumor, lesion_centroids, reference=ref)
    liver_layer, tumor_layer = mask_layers(liver, tumor)
    views = {"original": gray, "numbered": numbered(gray, lesion_centroids),
             "liver_layer": liver_layer, "tumor_layer": tumor_layer,
             "liver": (liver * 255).astype(np.uint8),
             "tumor": (tumor * 255).astype(np.uint8), "overlay": over,
             "panel": panel(gray, liver, tumor, over)}
    if ref is not None:
        views["reference_liver_layer"], views["reference_tumor_layer"] = reference_layers(ref)
    return views


def write_png(rgb: np.ndarray, path) -> None:
    """Save an (H, W) or (H, W, 3) uint8 picture as PNG."""
    Image.fromarray(rgb).save(path, format="PNG")
