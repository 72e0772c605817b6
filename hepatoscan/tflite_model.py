"""One .tflite segmentation model in LiteRT (or tflite-runtime), the way the runtime runs it.

Input shape, dtype and int8 scale/zero-point are read from the interpreter. Two interpreters of
the same model: batch 1 (single slices, leftovers) and ``batch_size`` slices at once for volumes,
so a lone slice is never padded to a full batch. Used by :class:`hepatoscan.predictor.Predictor`
and by ``convert`` to check quantized models exactly as they will be served.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .backend import load_interpreter_class
from .errors import ModelError

log = logging.getLogger(__name__)


class TFLiteModel:
    def __init__(self, model_path: str | Path | None = None, model_content: bytes | None = None,
                 num_threads: int = 2, batch_size: int = 4):
        if (model_path is None) == (model_content is None):
            raise ValueError("give exactly one of model_path and model_content")
        self._cls, self.backend = load_interpreter_class()
        self._source = {"model_path": str(model_path)} if model_path is not None else {"model_content": model_content}
        self._label = Path(model_path).name if model_path is not None else "model"
        self.num_threads = num_threads
        self.interpreter = self._new_interpreter()
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        _, self.height, self.width, self.channels = (int(v) for v in inp["shape"])
        self.n_outputs = int(out["shape"][-1])
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = inp["dtype"], out["dtype"]
        self._in_quant = inp["quantization"]  # (scale, zero_point); (0.0, 0) when float
        self._out_quant = out["quantization"]
        self._batched = None
        self.batch_size = self._try_batch(batch_size)

    def _new_interpreter(self):
        try:
            it = self._cls(num_threads=self.num_threads, **self._source)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load {self._label} with {self.backend}: {e}") from e
        return it

    def _try_batch(self, batch_size: int) -> int:
        if batch_size <= 1:
            return 1
        try:
            it = self._new_interpreter()
            it.resize_tensor_input(self._in_index, [batch_size, self.height, self.width, self.channels])
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
        """x: (N, H, W) float32 in [0, 1] at the model's input size -> (N, H, W, C) float32 outputs."""
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        out = np.empty((n, x.shape[1], x.shape[2], self.n_outputs), np.float32)
        i = 0
        while i < n:
            full = self._batched is not None and n - i >= self.batch_size
            it, k = (self._batched, self.batch_size) if full else (self.interpreter, 1)
            it.set_tensor(self._in_index, self._quantize(x[i:i + k, ..., None]))
            it.invoke()
            out[i:i + k] = self._dequantize(it.get_tensor(self._out_index))
            i += k
        return out
