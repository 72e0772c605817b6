"""Which TFLite interpreter is available: LiteRT first, tflite-runtime as a fallback."""
from __future__ import annotations

import logging

from .errors import BackendError

log = logging.getLogger(__name__)


def load_interpreter_class():
    """-> (Interpreter class, backend name). Never imports TensorFlow."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        log.warning("LiteRT (ai-edge-litert) is not installed; using the older tflite-runtime")
        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    raise BackendError("no TFLite interpreter found: install LiteRT with 'pip install ai-edge-litert' "
                       "(or 'pip install tflite-runtime' where LiteRT has no wheel).")
