"""One error family for the whole runtime. Every message says what is wrong and what to do."""


class HepatoScanError(Exception):
    """Base class of every error HepatoScan raises on purpose."""


class InputError(HepatoScanError):
    """The input file or array cannot be used (empty, corrupt, wrong kind, too large...)."""


class UnsupportedFormatError(InputError):
    """The file is of a kind HepatoScan does not read."""


class InputTooLargeError(InputError):
    """The input exceeds a configured size limit (bytes, pixels or slices)."""


class ModelError(HepatoScanError):
    """The model folder, its card or the .tflite file is missing, inconsistent or corrupt."""


class BackendError(HepatoScanError):
    """No TFLite interpreter (LiteRT or tflite-runtime) is installed."""
