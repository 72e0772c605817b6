"""Imports of nibabel and pydicom that keep pydicom (and GDCM) out of NIfTI-only processes.

nibabel imports pydicom as soon as it is imported, to read the DICOM extensions some NIfTI
headers carry, which HepatoScan never reads; and pydicom imports GDCM (python-gdcm, in the app
and ``dicom`` profiles) as soon as it is imported. Together they held 33 MB of every process that
read or wrote NIfTI (measured after loading the model and the LiTS 117 sample: 131 MB resident,
98 MB with pydicom left out). nibabel treats pydicom as optional, so :func:`nibabel` hides it
while nibabel loads; a DICOM input later imports pydicom as usual, GDCM with it. nibabel then
records pydicom as missing for the rest of the process: only its readers of DICOM extensions in
NIfTI headers are affected.

pydicom also imports requests (with urllib3, ssl and certifi: 13.6 MB resident), only to download
its own test files, and falls back to urllib where requests is missing. :func:`pydicom` hides
requests while pydicom loads (unless something imported it before): the peak of segmenting a
150-slice 512 x 512 DICOM series fell from 308.5 to 304.7 MB (benchmarks/run_all.py). A later
``import requests`` elsewhere imports it as usual.

Both imports take one lock: while pydicom (or requests) is hidden, another thread's import of it
would fail.
"""
from __future__ import annotations

import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def _import_hiding(module: str, hidden: str) -> None:
    """Import ``module`` (if not loaded) with ``hidden`` (if not loaded) seen as missing, as an
    optional dependency it does without; ``hidden`` is importable again afterwards. Hold _LOCK."""
    if module in sys.modules or hidden in sys.modules:
        return
    sys.modules[hidden] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        __import__(module)
    finally:
        if sys.modules.get(hidden, ...) is None:
            del sys.modules[hidden]


def nibabel() -> ModuleType:
    """The nibabel module, imported without pydicom unless pydicom is loaded already."""
    with _LOCK:
        _import_hiding("nibabel", "pydicom")  # nibabel's optional_package: missing
        import nibabel as nib

        return nib


def pydicom() -> ModuleType:
    """The pydicom module (GDCM comes with it where installed), imported without requests unless
    requests is loaded already; waits for a nibabel import."""
    with _LOCK:
        _import_hiding("pydicom", "requests")
        import pydicom as dcm

        return dcm
