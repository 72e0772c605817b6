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

from .backend import load_interpreter_class
from .config import PostprocessConfig
from .errors import ModelError
from .model_card import ModelCard, find_card
from .postprocess import clean_masks
from .preprocessing import WindowEstimate, prepare_slice, resize_prob
from .scan import Scan

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

    liver, tumor: (Z, H, W) uint8 in {0, 1}; liver includes tumor.
    window_estimates: per slice, the display window estimated for 8-bit inputs (None for HU).
    """

    scan: Scan
    liver: np.ndarray
    tumor: np.ndarray
    window_estimates: list[WindowEstimate | None]
    timings_ms: dict = field(default_factory=dict)

    def window_summary(self) -> str | None:
        """A sentence on how 8-bit input was standardised, or None for HU input."""
        ests = [e for e in self.window_estimates if e is not None]
        if not ests:
            return None
        if len(ests) == 1:
            return f"8-bit image: display window {ests[0].describe()}, mapped to the model's window."
        widths = [e.width_hu for e in ests]
        return (f"8-bit images: display windows estimated per slice (width {min(widths):.0f} to "
                f"{max(widths):.0f} HU), mapped to the model's window.")


class Predictor:
    """Loads a model folder (card + .tflite) and segments slices or whole scans."""

    def __init__(self, card: ModelCard, num_threads: int = 2, batch_size: int = 4,
                 postprocess: PostprocessConfig = PostprocessConfig(), verify: bool = True):
        if verify:
            card.verify()
        interpreter_cls, self.backend = load_interpreter_class()
        self.card = card
        self.postprocess = postprocess
        self.num_threads = num_threads
        self._interpreter_cls = interpreter_cls
        # Two interpreters of one model: batch 1 (single slices, leftovers) and, for volumes,
        # batch_size slices at once. A lone slice is never padded to a full batch.
        self.interpreter = self._new_interpreter()
        self._read_io_details()
        self._batched = None
        self.batch_size = self._try_batch(batch_size)
        log.info("loaded %s %s (%s) with %s, %d threads, batch %d", card.name, card.version,
                 card.quantization, self.backend, num_threads, self.batch_size)

    @classmethod
    def from_model_dir(cls, model_dir: str | Path = DEFAULT_MODEL_DIR, name: str | None = None,
                       **kwargs) -> "Predictor":
        return cls(find_card(model_dir, name), **kwargs)

    def _read_io_details(self):
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        _, h, w, c = inp["shape"]
        spec = self.card.input_spec
        if (h, w, c) != (spec.height, spec.width, 1) or out["shape"][-1] != len(self.card.outputs):
            raise ModelError(f"{self.card.model_path.name} takes {h}x{w}x{c} and gives {out['shape'][-1]} "
                             f"channels, but its card says {spec.height}x{spec.width}x1 and "
                             f"{len(self.card.outputs)}: the card does not belong to this model.")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = inp["dtype"], out["dtype"]
        self._in_quant = inp["quantization"]  # (scale, zero_point); (0.0, 0) when float
        self._out_quant = out["quantization"]

    def _new_interpreter(self):
        try:
            it = self._interpreter_cls(model_path=str(self.card.model_path), num_threads=self.num_threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load {self.card.model_path.name} with {self.backend}: {e}") from e
        return it

    def _try_batch(self, batch_size: int) -> int:
        spec = self.card.input_spec
        if batch_size <= 1:
            return 1
        try:
            it = self._new_interpreter()
            it.resize_tensor_input(self._in_index, [batch_size, spec.height, spec.width, 1])
            it.allocate_tensors()
        except (ValueError, RuntimeError):
            log.info("model does not take batches; running one slice at a time")
            return 1
        self._batched = it
        return batch_size

    @property
    def input_scale_zero_point(self) -> tuple[float, int]:
        return float(self._in_quant[0]), int(self._in_quant[1])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._in_dtype == np.float32:
            return x.astype(np.float32)
        scale, zp = self._in_quant
        info = np.iinfo(self._in_dtype)
        return np.clip(np.rint(x / scale + zp), info.min, info.max).astype(self._in_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._out_dtype == np.float32:
            return y.astype(np.float32)
        scale, zp = self._out_quant
        return (y.astype(np.float32) - zp) * scale

    def predict_probs(self, x: np.ndarray) -> np.ndarray:
        """x: (N, H, W) float32 in [0, 1] at the model's input size -> (N, H, W, 2) float32 in [0, 1]."""
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        out = np.empty((n, x.shape[1], x.shape[2], 2), np.float32)
        i = 0
        while i < n:
            full = self._batched is not None and n - i >= self.batch_size
            it, k = (self._batched, self.batch_size) if full else (self.interpreter, 1)
            it.set_tensor(self._in_index, self._quantize(x[i:i + k, ..., None]))
            it.invoke()
            out[i:i + k] = self._dequantize(it.get_tensor(self._out_index))
            i += k
        return out

    def segment(self, scan: Scan, progress: Callable[[float, str], None] | None = None) -> Segmentation:
        """Segment every slice of ``scan``; masks come back at its resolution and orientation."""
        t0 = time.perf_counter()
        spec = self.card.input_spec
        z, h, w = scan.pixels.shape
        liver_raw = np.zeros((z, h, w), bool)
        tumor_raw = np.zeros((z, h, w), bool)
        estimates: list[WindowEstimate | None] = []
        t_liver, t_tumor = self.card.thresholds["liver"], self.card.thresholds["tumor"]
        step = max(self.batch_size, 8)
        for start in range(0, z, step):
            stop = min(z, start + step)
            batch = []
            for k in range(start, stop):
                x, est = prepare_slice(scan.pixels[k], scan.is_hu, spec)
                batch.append(x)
                estimates.append(est)
            probs = self.predict_probs(np.stack(batch))
            for j, k in enumerate(range(start, stop)):
                liver_raw[k] = resize_prob(probs[j, ..., 0], h, w) > t_liver
                tumor_raw[k] = resize_prob(probs[j, ..., 1], h, w) > t_tumor
            if progress:
                progress(stop / z, f"segmented slice {stop} of {z}")
        t1 = time.perf_counter()
        liver, tumor = clean_masks(liver_raw, tumor_raw, scan.spacing_mm, self.postprocess)
        t2 = time.perf_counter()
        return Segmentation(scan, liver, tumor, estimates,
                            {"inference_ms": 1000 * (t1 - t0), "postprocess_ms": 1000 * (t2 - t1)})
