"""DICOM: one file, or a series (folder or .zip) ordered by ImagePositionPatient.

Pixel data that pydicom decodes on its own works: uncompressed (Implicit/Explicit VR Little
Endian, Big Endian, Deflated) and RLE Lossless. JPEG, JPEG-LS and JPEG 2000 need the optional
``pylibjpeg`` plugins (``pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg``).
"""
from __future__ import annotations

import io
import logging

import numpy as np

from ..config import LoadLimits
from ..errors import InputError, UnsupportedFormatError

log = logging.getLogger(__name__)

META_FIELDS = {"Modality": "modality", "StudyDate": "study_date", "PatientName": "patient_name",
               "PatientID": "patient_id", "PatientAge": "patient_age", "PatientSex": "patient_sex",
               "ReferringPhysicianName": "referring_physician", "StudyDescription": "study_description",
               "SeriesDescription": "series_description", "Manufacturer": "manufacturer"}


def is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def parse(data: bytes, name: str):
    """Bytes -> pydicom Dataset, or InputError with a clear message."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), force=not is_dicom(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError, OSError) as e:
        raise InputError(f"{name}: not a valid DICOM file ({e}). Export the study again as DICOM.") from e


def _pixels_hu(ds, name: str) -> np.ndarray:
    """Dataset -> (H, W) float32 HU (RescaleSlope/Intercept applied)."""
    if "PixelData" not in ds:
        raise InputError(f"{name}: the DICOM file holds no image (no PixelData): is it a DICOMDIR, "
                         "a report or a structured-report object? Upload the image files of the series.")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise UnsupportedFormatError(
            f"{name}: multi-frame DICOM ({frames} frames) is not supported. Export the series as "
            "one file per slice (classic CT image storage), or as NIfTI.")
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError) as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise UnsupportedFormatError(
            f"{name}: cannot decode the pixel data (transfer syntax {getattr(ts, 'name', ts)}): {e}. "
            "Uncompressed and RLE DICOM work out of the box; for JPEG / JPEG 2000 install "
            "'pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg', or export uncompressed.") from e
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if arr.ndim != 2:
        raise UnsupportedFormatError(f"{name}: DICOM pixel array has shape {arr.shape}; expected one 2D slice.")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return _to_display(arr.astype(np.float32) * slope + intercept, ds)


def _to_display(arr: np.ndarray, ds) -> np.ndarray:
    """Flip an axial slice so that it shows anterior up and the patient's right on the image left
    (DICOM LPS: row direction +x = patient left, column direction +y = posterior)."""
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return arr
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    if abs(row[1]) > abs(row[0]) and abs(col[0]) > abs(col[1]):  # rows run along y: transpose
        arr, row, col = arr.T, col, row
    if row[0] < 0:
        arr = arr[:, ::-1]
    if col[1] < 0:
        arr = arr[::-1, :]
    return np.ascontiguousarray(arr)


def metadata(ds) -> dict:
    out = {}
    for tag, key in META_FIELDS.items():
        value = getattr(ds, tag, None)
        if value not in (None, ""):
            out[key] = str(value)
    return out


def _pixel_spacing(ds) -> tuple[float, float] | None:
    ps = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    if ps is None or len(ps) < 2:
        return None
    return float(ps[0]), float(ps[1])


def _is_hu(ds) -> bool:
    return getattr(ds, "Modality", "CT") == "CT" or "RescaleIntercept" in ds


def read_single(data: bytes, name: str) -> dict:
    """One DICOM file -> dict(pixels (1, H, W), is_hu, spacing_mm, metadata, warnings)."""
    ds = parse(data, name)
    hu = _pixels_hu(ds, name)
    ps = _pixel_spacing(ds)
    thickness = getattr(ds, "SliceThickness", None)
    spacing = (float(thickness) if thickness else None, *ps) if ps else None
    return {"pixels": hu[None], "is_hu": _is_hu(ds), "spacing_mm": spacing, "metadata": metadata(ds),
            "warnings": _modality_warnings(ds)}


def _modality_warnings(ds) -> list[str]:
    modality = getattr(ds, "Modality", None)
    if modality and modality != "CT":
        return [f"Modality is {modality}, not CT: the model was trained on CT only, so treat the "
                "result with extra caution."]
    return []


def _slice_position(ds) -> float | None:
    ipp, iop = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None)
    if ipp is None:
        return None
    if iop is not None and len(iop) == 6:
        normal = np.cross(np.array(iop[:3], float), np.array(iop[3:], float))
        return float(np.dot(normal, np.array(ipp, float)))
    return float(ipp[2])


def read_series(files: list[tuple[str, bytes]], name: str, limits: LoadLimits) -> dict:
    """Several DICOM files of one series -> dict like :func:`read_single`, pixels (Z, H, W),
    Z ordered from feet to head by ImagePositionPatient (InstanceNumber as a fallback)."""
    datasets, skipped = [], []
    for fname, data in files:
        try:
            datasets.append((fname, parse(data, fname)))
        except InputError:
            skipped.append(fname)
    skipped += [f for f, ds in datasets if "PixelData" not in ds]
    datasets = [(f, ds) for f, ds in datasets if "PixelData" in ds]
    if not datasets:
        raise InputError(f"{name}: no DICOM images found among {len(files)} files. Upload a folder "
                         "or .zip holding the .dcm files of one CT series.")
    warnings = []
    by_series: dict[str, list] = {}
    for f, ds in datasets:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "unknown")), []).append((f, ds))
    if len(by_series) > 1:
        uid, chosen = max(by_series.items(), key=lambda kv: len(kv[1]))
        warnings.append(f"{len(by_series)} series found; the largest ({len(chosen)} slices) was used. "
                        "Upload one series at a time to choose another.")
        datasets = chosen
    if len(datasets) > limits.max_slices:
        from ..errors import InputTooLargeError

        raise InputTooLargeError(f"{name}: {len(datasets)} slices, over the limit of {limits.max_slices}.")
    positions = [_slice_position(ds) for _, ds in datasets]
    if all(p is not None for p in positions):
        order = np.argsort(positions, kind="stable")
    else:
        order = np.argsort([int(getattr(ds, "InstanceNumber", 0) or 0) for _, ds in datasets], kind="stable")
        warnings.append("ImagePositionPatient missing: slices ordered by InstanceNumber.")
    datasets = [datasets[i] for i in order]
    slices = [_pixels_hu(ds, f) for f, ds in datasets]
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise InputError(f"{name}: the series mixes slice sizes {sorted(shapes)}; upload one series "
                         "whose slices all have the same size.")
    first = datasets[0][1]
    ps = _pixel_spacing(first)
    if all(p is not None for p in positions) and len(positions) > 1:
        dz = float(np.median(np.diff(np.sort(positions))))
    else:
        dz = float(getattr(first, "SpacingBetweenSlices", 0) or getattr(first, "SliceThickness", 0) or 0) or None
    if skipped:
        warnings.append(f"{len(skipped)} non-DICOM or non-image file(s) ignored.")
    return {"pixels": np.stack(slices), "is_hu": _is_hu(first),
            "spacing_mm": (dz, *ps) if ps else None, "metadata": metadata(first),
            "warnings": _modality_warnings(first) + warnings,
            "origin_mm": [float(v) for v in getattr(first, "ImagePositionPatient", [0, 0, 0])]}
