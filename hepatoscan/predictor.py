"""Segment scans with the shipped TFLite U-Net (LiteRT), nnU-Net style:

    predictor = Predictor.from_model_dir("models/")
    result = predictor.segment(load_scan("ct.nii.gz"))
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import PostprocessConfig, QualityConfig
from .errors import ModelError
from .model_card import ModelCard, find_card
from .postprocess import clean_masks, clean_separate_slices, flat_lesions_note
from .preprocessing import (STACK_OUTLIER_RATIO, WindowEstimate, below_window, body_box, montage_grid, pad_to_square,
                            prepare_slice, read_panel, resize_image, share_stack_window, to_grayscale)
from .orientation import (MIRROR_INDEX, READINGS, Reading, best_reading, big_liver, liver_evidence, mirror_symmetric,
                          orientation_images_warnings, orientation_warning, read_as_note, symmetric_images_warning,
                          symmetric_warning)
from .quality import (blur_effect, body_zoom, clipping_warning, flat_image_warning, image_names, inverted_note,
                      montage_warning, page_shares, page_warning, unsure_counts, unsure_fraction, unsure_images_warning, unsure_warning,
                      softness_warning, surround_note, white_fraction, zoom_note)
from .scan import Scan
from .series import neighbour_similarity, separate_images, separate_images_warning, thumbnail
from .tflite_model import TFLiteModel

log = logging.getLogger(__name__)

def _default_model_dir() -> Path:
    """HEPATOSCAN_MODEL_DIR, else the repository's models/, else the copy pip installed."""
    import os
    import sys

    env = os.environ.get("HEPATOSCAN_MODEL_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent / "models"
    installed = Path(sys.prefix) / "share" / "hepatoscan" / "models"
    return repo if repo.is_dir() or not installed.is_dir() else installed


DEFAULT_MODEL_DIR = _default_model_dir()


@dataclass
class Segmentation:
    """Masks at the scan's own resolution and orientation.

    liver, tumor: (Z, H, W) uint8 in {0, 1}; liver includes tumor. Where a stack's images differ in
    size, each image's masks are [z, :h, :w] of its Scan.image_size, 0 on the canvas around it.
    window_estimates: per slice, the display window estimated for 8-bit inputs (None for HU).
    blur_effect: median blur effect of the model's input over the sampled slices, 0 sharp .. 1
    blurred (hepatoscan.quality); unsure_fraction: over every slice, the model's unsure pixels per
    pixel it calls liver (hepatoscan.quality.unsure_fraction; None: too little liver to judge);
    orientation_ratio: how many times surer of a liver the model is when it reads the slices
    checked mirrored, or with rows and columns swapped, than as given (hepatoscan.orientation; the
    larger of the two; None: too little liver either way to judge; for separate images, the
    largest of theirs);
    read_as: the reading the model was asked to read the slices by (orientation.ASKABLE), or None:
    as given (the masks are the scan's either way);
    white_fraction: for 8-bit input, the median share of the sampled slices' non-black pixels that
    are clipped to white, in [0, 1] (None for HU);
    warnings: what the user should know of the result (an image that does not look like CT or
    whose liver the model is unsure of, one that looks mirrored or turned, a soft or a white-clipped one);
    separate_images: a stack of 8-bit images that are not one series' consecutive slices
    (hepatoscan.series): each was segmented on its own, and is measured on its own.
    """

    scan: Scan
    liver: np.ndarray
    tumor: np.ndarray
    window_estimates: list[WindowEstimate | None]
    timings_ms: dict = field(default_factory=dict)
    blur_effect: float | None = None
    white_fraction: float | None = None
    unsure_fraction: float | None = None
    orientation_ratio: float | None = None
    read_as: str | None = None
    warnings: list[str] = field(default_factory=list)
    separate_images: bool = False

    def window_summary(self) -> str | None:
        """A sentence on how 8-bit input was standardised, or None for HU input."""
        ests = [e for e in self.window_estimates if e is not None]
        if not ests:
            return None
        if len(ests) == 1:
            text = f"8-bit image: display window {ests[0].describe()}, mapped to the model's window."
            return f"{text} {ests[0].caveat()}".rstrip()
        widths = [e.width_hu for e in ests]
        unit = "image" if self.separate_images else "slice"
        text = (f"8-bit images: display windows estimated per {unit} (width {min(widths):.0f} to "
                f"{max(widths):.0f} HU), mapped to the model's window.")
        shared = sum(e.stack_median for e in ests)
        if shared:
            text += (f" {shared} of {len(ests)} slices read more than {STACK_OUTLIER_RATIO:g}x off the stack's median window "
                     "and took it instead (one series is exported with one window).")
        clipped = sum(e.fat_clipped for e in ests)
        if clipped:
            text += (f" On {clipped} of {len(ests)} {unit}s fat lies at the black end (narrow windows clip it), "
                     "so the estimate is rough there.")
        return text


class Predictor:
    """Loads a model folder (card + .tflite) and segments slices or whole scans.

    batch_size: slices per interpreter call. 1 (the default) holds a single interpreter; on 2 cores
    it segments a 128-slice volume as fast as 4 (2.43 vs 2.40 s) with about 50 MB less memory.
    stack_window: in a stack of 8-bit slices, a slice whose window reads far off the stack's
    median takes the median (preprocessing.share_stack_window); False reads every slice on its own,
    as if each were uploaded alone.
    """

    def __init__(self, card: ModelCard, num_threads: int = 2, batch_size: int = 1,
                 postprocess: PostprocessConfig = PostprocessConfig(), verify: bool = True,
                 quality: QualityConfig = QualityConfig(), stack_window: bool = True):
        if verify:
            card.verify()
        self.card = card
        self.postprocess, self.quality = postprocess, quality
        self.stack_window = stack_window
        self.model = TFLiteModel(card.model_path, num_threads=num_threads, batch_size=batch_size)
        spec, m = card.input_spec, self.model
        if (m.height, m.width, m.channels) != (spec.height, spec.width, 1) or m.n_outputs != len(card.outputs):
            raise ModelError(f"{card.model_path.name} takes {m.height}x{m.width}x{m.channels} and gives "
                             f"{m.n_outputs} channels, but its card says {spec.height}x{spec.width}x1 and "
                             f"{len(card.outputs)}: the card does not belong to this model.")
        log.info("loaded %s %s (%s) with %s, %d threads, batch %d", card.name, card.version,
                 card.quantization, self.backend, num_threads, self.batch_size)

    @classmethod
    def from_model_dir(cls, model_dir: str | Path = DEFAULT_MODEL_DIR, name: str | None = None,
                       **kwargs) -> "Predictor":
        return cls(find_card(model_dir, name), **kwargs)

    @property
    def backend(self) -> str:
        return self.model.backend

    @property
    def batch_size(self) -> int:
        return self.model.batch_size

    @property
    def input_scale_zero_point(self) -> tuple[float, int]:
        return self.model.input_scale_zero_point

    def predict_probs(self, x: np.ndarray) -> np.ndarray:
        """x: (N, H, W) float32 in [0, 1] at the model's input size -> (N, H, W, 2) float32 in [0, 1]."""
        return self.model.predict_probs(x)

    def slice_probs(self, pixels: np.ndarray, is_hu: bool) -> np.ndarray:
        """One slice as the card alone describes its reading: (H, W) HU, or 8-bit grey levels read
        with their own window estimate -> (H, W, 2) float32 probabilities (liver, tumor) in [0, 1] at
        the slice's size: padded to a square, prepared, predicted, resized back and cropped. No
        viewer-panel crop, stack window, masks or post-processing (those are :meth:`segment`'s)."""
        h, w = pixels.shape[:2]
        square, (top, left) = pad_to_square(to_grayscale(pixels))
        x, _ = prepare_slice(square, is_hu, self.card.input_spec)
        probs = self.predict_probs(x[None])[0]
        side = square.shape[0]
        return np.stack([resize_image(probs[..., c], side, side)[top:top + h, left:left + w]
                         for c in range(probs.shape[-1])], axis=-1)

    def _read_windows(self, scan: Scan) -> tuple[list[tuple[int, int, int, int]], list[WindowEstimate | None],
                                                 float | None, list[bool]]:
        """Per slice: the (y0, y1, x0, x1) box segmented (8-bit input: without a viewer's panel or
        padding) and, for 8-bit input, the display window read from the box's histogram, shared
        across a stack where a slice reads far off (``stack_window``) if the stack looks like one
        series; for a stack of 8-bit images, how alike neighbouring images are
        (series.neighbour_similarity; None otherwise); and per slice whether the box looks like CT
        shown inverted (preprocessing.looks_inverted; its grey levels are then read inverted back)."""
        if scan.is_hu and not scan.sizes_differ:
            _, h, w = scan.pixels.shape
            return [(0, h, 0, w)] * scan.n_slices, [None] * scan.n_slices, None, [False] * scan.n_slices
        boxes, estimates, thumbs, inverted = [], [], [], []
        for k in range(scan.n_slices):
            h, w = scan.image_size(k)  # images of different sizes: each alone, not its canvas
            pixels = to_grayscale(scan.pixels[k][:h, :w])
            box, shown_inverted, _, estimate = ((0, h, 0, w), False, None, None) if scan.is_hu else read_panel(
                pixels, scan.jpeg)
            boxes.append(box)
            inverted.append(shown_inverted)
            estimates.append(estimate)
            if scan.is_volume and not scan.images_separate:
                thumbs.append(thumbnail(pixels))
        similarity = neighbour_similarity(thumbs)
        if self.stack_window and scan.is_volume and not (scan.images_separate or separate_images(similarity)):
            estimates = share_stack_window(estimates)
        return boxes, estimates, similarity, inverted

    @staticmethod
    def _panel(scan: Scan, k: int, box: tuple[int, int, int, int], inverted: bool) -> np.ndarray:
        """Slice ``k`` inside ``box`` (y0, y1, x0, x1) as grey levels (HU for CT), inverted back
        (255 - grey) where it was found shown inverted."""
        y0, y1, x0, x1 = box
        pixels = to_grayscale(scan.pixels[k][y0:y1, x0:x1])
        return 255.0 - pixels if inverted else pixels

    def _body_boxes(self, scan: Scan, panels: list[tuple[int, int, int, int]],
                    estimates: list[WindowEstimate | None], inverted: list[bool]) -> list[tuple[int, int, int, int]]:
        """Per slice, the (y0, y1, x0, x1) box the model reads: inside its panel (``panels``, from
        :meth:`_read_windows`, with its window ``estimates`` and whether it is ``inverted``), the body
        cropped to fill the card's ``body_fill`` of the square (preprocessing.body_box), or the panel
        where the body fills that."""
        fill = self.card.input_spec.body_fill
        boxes = []
        for k, (y0, y1, x0, x1) in enumerate(panels):
            box = body_box(self._panel(scan, k, panels[k], inverted[k]), scan.is_hu, fill, estimates[k])
            boxes.append((y0, y1, x0, x1) if box is None else (y0 + box[0], y0 + box[1], x0 + box[2], x0 + box[3]))
        return boxes

    def segment(self, scan: Scan, progress: Callable[[float, str], None] | None = None,
                read_as: Reading | None = None) -> Segmentation:
        """Segment every slice of ``scan``; masks come back at its resolution and orientation.
        ``read_as``: the model reads each slice that way instead (hepatoscan.orientation: a mirrored
        patient or image) and its outputs are turned back, so the masks are still the scan's; the
        orientation check then takes that reading as the image as given."""
        t0 = time.perf_counter()
        spec = self.card.input_spec
        z, h, w = scan.pixels.shape
        # The two masks are the only full-size arrays made here; they are cleaned in place.
        liver_raw = np.zeros((z, h, w), bool)
        tumor_raw = np.zeros((z, h, w), bool)
        blur_effects: list[float] = []  # of every quality.every_nth_slice-th slice
        white_fractions: list[float] = []  # the same slices, 8-bit input only
        page: list[tuple[float, float]] = []  # the same slices: (white, dark) shares of all pixels
        liver_px, unsure_px = np.zeros(z, np.int64), np.zeros(z, np.int64)  # per slice (quality.unsure_counts)
        # per slice checked: liver evidence as given, and per other reading (orientation.READINGS)
        # its evidence and unsure_counts
        given_evidence, other_evidence = np.zeros(z, np.int64), np.zeros((z, len(READINGS), 3), np.int64)
        t_liver, t_tumor = self.card.thresholds["liver"], self.card.thresholds["tumor"]
        panels, estimates, similarity, inverted = self._read_windows(scan)
        boxes = self._body_boxes(scan, panels, estimates, inverted)
        separate = scan.images_separate or separate_images(similarity)  # images of different sizes, a montage's tiles
        checked = self._orientation_checked(z, separate)
        whole = [(0, ih, 0, iw) for ih, iw in map(scan.image_size, range(z))]  # each image's own extent
        cropped = [(y1 - y0, x1 - x0) for (y0, y1, x0, x1), extent in zip(panels, whole) if (y0, y1, x0, x1) != extent]
        # Said only where black is air: where fat is black too (a narrow window, or no fat mode read),
        # the body found is what lies inside the fat, and an export that fills its frame reads zoomed.
        zooms = [zoom for zoom, est in zip(map(body_zoom, panels, boxes), estimates)
                 if zoom > 1.0 and (est is None or est.firm)]
        # single images, not a series' slices; a single image hepatoscan.montage has checked (and split) is not again
        grids = ([] if scan.is_hu or not (z == 1 or separate) or "montage" in scan.metadata else
                 [montage_grid(self._panel(scan, k, panels[k], inverted[k]), estimates[k]) for k in range(z)])
        # Slices prepared and predicted together: their inputs, outputs and full-size maps are the
        # run's transient memory (8 at a time put a 512 x 512 series 10 MB higher, at no gain in speed).
        step = max(self.batch_size, 4)
        for start in range(0, z, step):
            stop = min(z, start + step)
            batch, offsets, outside = [], [], []  # outside: (H, W) pixels no mask may hold
            for k in range(start, stop):
                pixels = self._panel(scan, k, boxes[k], inverted[k])
                if not scan.is_hu and k % self.quality.every_nth_slice == 0:
                    white_fractions.append(white_fraction(pixels, self.quality))
                    page.append(page_shares(pixels, self.quality))
                square, offset = pad_to_square(pixels)
                x, _ = prepare_slice(square, scan.is_hu, spec, estimates[k])
                batch.append(x if read_as is None else np.ascontiguousarray(read_as.turn(x)))
                outside.append(below_window(pixels, scan.is_hu, spec))
                offsets.append((*offset, square.shape[0]))
                if k % self.quality.every_nth_slice == 0:
                    blur_effects.append(blur_effect(x))
            ks = checked[start:stop].nonzero()[0] + start
            others = [r.turn(batch[k - start]) for k in ks for r in READINGS]
            probs = self.predict_probs(np.stack(batch + others))
            for i, p in enumerate(probs[stop - start:, ..., 0]):
                other_evidence[ks[i // len(READINGS)], i % len(READINGS)] = (
                    liver_evidence(p, self.quality), *unsure_counts(p, self.quality))
            for j, k in enumerate(range(start, stop)):
                liver_px[k], unsure_px[k] = unsure_counts(probs[j, ..., 0], self.quality)
                if checked[k]:
                    given_evidence[k] = liver_evidence(probs[j, ..., 0], self.quality)
                (y0, y1, x0, x1), (top, left, side) = boxes[k], offsets[j]
                for channel, raw, threshold in ((0, liver_raw, t_liver), (1, tumor_raw, t_tumor)):
                    p = probs[j, ..., channel]
                    p = p if read_as is None else np.ascontiguousarray(read_as.turn(p))  # back to the scan's
                    p = resize_image(p, side, side)[top:top + y1 - y0, left:left + x1 - x0]
                    raw[k, y0:y1, x0:x1] = (p > threshold) & ~outside[j]
            if progress:
                progress(stop / z, f"segmented slice {stop} of {z}")
        # The last batch's inputs, outputs and resized maps are done with: let them go before the clean-up.
        batch = outside = others = probs = p = pixels = square = x = None
        t1 = time.perf_counter()
        clean = clean_separate_slices if separate else clean_masks
        cleaning = {}
        liver, tumor = clean(liver_raw, tumor_raw, scan.spacing_mm, self.postprocess, cleaning, scan.slab_mm)
        t2 = time.perf_counter()
        blur = round(float(np.median(blur_effects)), 3) if blur_effects else None
        white = round(float(np.median(white_fractions)), 3) if white_fractions else None
        flat = flat_image_warning(sum(e.flat for e in estimates if e is not None), 0 if scan.is_hu else z)
        turned, turned_ratio, read_better = self._orientation_warnings(given_evidence, other_evidence, checked,
                                                                       separate, scan)
        # not CT as a whole: the other warnings' advice would be wrong. Separate images that read
        # alike mirrored are named, and the other images keep their warnings.
        alike = self._symmetric_warning(given_evidence, other_evidence, liver_px, checked, read_better, separate, scan)
        not_ct = page_warning(*(np.median(page, axis=0) if page else (None, None)), self.quality) or (
            None if separate else alike)
        clipped = None if not_ct else clipping_warning(white, self.quality)  # white paper is no clipped liver
        unsure = unsure_fraction(int(liver_px.sum()), int(unsure_px.sum()), self.quality)
        unsure_note = None if not_ct else (unsure_images_warning(liver_px, unsure_px, scan, self.quality) if separate
                                           else unsure_warning(unsure, self.quality))
        turned = [] if not_ct else turned
        flat_lesions = flat_lesions_note(cleaning.get("flat_lesions_dropped", 0),
                                         self.postprocess.min_lesion_thickness_ratio,
                                         self.postprocess.flat_lesion_min_diameter_mm)
        asked = read_as_note(read_as) if read_as is not None else None
        warnings = [w for w in (asked, montage_warning(grids, z), not_ct or alike, *turned, unsure_note,
                                separate_images_warning(similarity, z),
                                flat, surround_note(cropped, z), inverted_note(sum(inverted), z),
                                zoom_note(zooms, z, scan.is_hu, self.quality),
                                softness_warning(blur, self.quality), clipped,
                                flat_lesions) if w]
        return Segmentation(scan, liver, tumor, estimates,
                            {"inference_ms": 1000 * (t1 - t0), "postprocess_ms": 1000 * (t2 - t1)},
                            blur_effect=blur, white_fraction=white,
                            unsure_fraction=None if unsure is None else round(unsure, 3),
                            orientation_ratio=None if turned_ratio is None else round(turned_ratio, 3),
                            read_as=None if read_as is None else read_as.name,
                            warnings=warnings,
                            separate_images=separate)

    def _orientation_checked(self, z: int, separate: bool) -> np.ndarray:
        """(Z,) bool: the slices also read other ways (hepatoscan.orientation): every separate image,
        else up to ``quality.orientation_check_slices`` spread evenly over the scan."""
        checked = np.zeros(z, bool)
        n = z if separate else min(z, self.quality.orientation_check_slices)
        if n:
            checked[np.linspace(0, z - 1, n).round().astype(int)] = True
        return checked

    def _symmetric_warning(self, given: np.ndarray, others: np.ndarray, liver_px: np.ndarray, checked: np.ndarray,
                           read_better: np.ndarray, separate: bool, scan: Scan) -> str | None:
        """(Z,) liver evidence as given, (Z, readings, 3) of the other readings, (Z,) pixels called
        liver, (Z,) the slices checked and those of them that read far surer another way
        (_orientation_warnings) -> the warning that the input reads alike mirrored (no anatomy:
        noise, a texture), or None. A scan is judged on the slices checked with a big liver
        (orientation.big_liver), pooled, when they are at least half of those checked; separate
        images one by one. Not said of what reads far surer another way (an image turned by 180
        degrees reads alike mirrored too, but the orientation warning tells what is wrong)."""
        input_px = self.card.input_spec.height * self.card.input_spec.width
        big = checked & ~read_better & big_liver(liver_px, input_px, self.quality)
        mirrored = others[:, MIRROR_INDEX, 0]
        if not separate:
            if not big.any() or 2 * big.sum() < checked.sum():
                return None
            ratio = mirror_symmetric(int(given[big].sum()), int(mirrored[big].sum()), self.quality)
            share = liver_px[big].sum() / (big.sum() * input_px)
            subject = "This does not look like a CT slice" if scan.n_slices == 1 else "This does not look like CT"
            return None if ratio is None else symmetric_warning(float(share), ratio, subject)
        found = {}
        for k in np.flatnonzero(big):
            ratio = mirror_symmetric(int(given[k]), int(mirrored[k]), self.quality)
            if ratio is not None:
                found[int(k)] = (float(liver_px[k] / input_px), ratio)
        return symmetric_images_warning(found, int(checked.sum()), image_names(scan))

    def _orientation_warnings(self, given: np.ndarray, others: np.ndarray, checked: np.ndarray, separate: bool,
                              scan: Scan) -> tuple[list[str], float | None, np.ndarray]:
        """(Z,) liver evidence as given and (Z, readings, 3) of the other readings (evidence,
        unsure_counts) -> (warnings that the input looks mirrored or turned, the largest evidence
        ratio, (Z,) bool: the slices found to read far surer another way). A scan is judged on the
        sums over the slices checked (all of them found, or none); separate images one by one."""
        if not separate:
            ratio, reading = best_reading(int(given[checked].sum()), others[checked].sum(axis=0), self.quality)
            warnings = [orientation_warning(reading, ratio, scan.is_hu)] if reading else []
            return warnings, ratio, checked & bool(reading)
        found, ratios = {}, []
        for k in np.flatnonzero(checked):
            ratio, reading = best_reading(int(given[k]), others[k], self.quality)
            ratios += [] if ratio is None else [ratio]
            if reading:
                found[int(k)] = (ratio, reading)
        warnings = orientation_images_warnings(found, int(checked.sum()), image_names(scan), scan.is_hu)
        read_better = np.zeros_like(checked)
        read_better[list(found)] = True
        return warnings, max(ratios, default=None), read_better
