"""Imports of nibabel and pydicom that keep pydicom (and GDCM) out of NIfTI-only processes.

nibabel imports pydicom as soon as it is imported, to read the DICOM extensions some NIfTI
headers carry, which HepatoScan never reads; and pydicom imports GDCM (python-gdcm, in the app
and ``dicom`` profiles) as soon as it is imported. Together they held 33 MB of every process that
read or wrote NIfTI (measured after loading the model and the LiTS 117 sample: 131 MB resident,
98 MB with pydicom left out). nibabel treats pydicom as optional, so :func:`nibabel` hides it
while nibabel loads; a DICOM input later imports pydicom as usual, GDCM with it. nibabel then
records pydicom as missing for the rest of the process: only its readers of DICOM extensions in
NIfTI headers are affected.

Both imports take one lock: while pydicom is hidden, another thread's import of it would fail.
"""
from __future__ import annotations

import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def nibabel() -> ModuleType:
    """The nibabel module, imported without pydicom unless pydicom is loaded already."""
    with _LOCK:
        if "nibabel" not in sys.modules and "pydicom" not in sys.modules:
            sys.modules["pydicom"] = None  # type: ignore[assignment]  # nibabel's optional_package: missing
            try:
                import nibabel as nib  # noqa: F401
            finally:
                if sys.modules.get("pydicom", ...) is None:
                    del sys.modules["pydicom"]
        import nibabel as nib

        return nib


def pydicom() -> ModuleType:
    """The pydicom module (GDCM comes with it where installed); waits for a nibabel import."""
    with _LOCK:
        import pydicom as dcm

        return dcm
