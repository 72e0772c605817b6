"""Which plane a DICOM slice lies in, and coronal or sagittal series resliced to axial.

The model reads axial slices shown anterior up with the patient's right on the image left (see
hepatoscan.preprocessing.SLICE_ORIENTATION). Studies also hold coronal and sagittal reformats;
fed as they are, the model would look for the liver in a view it never learned. A coronal or
sagittal series lies on the patient's axes, so reslicing it to axial is a transpose and flips:
no interpolation, every voxel kept.

Directions are in DICOM's patient frame (LPS: +x patient left, +y posterior, +z head).
"""
from __future__ import annotations

import numpy as np

# A slice whose normal lies within about 37 degrees of an axis is in that axis's plane: axial
# slices of a gantry tilted up to 30 degrees stay axial.
PLANE_MIN_COSINE = 0.8
PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}  # by the patient axis the slice normal runs along


def slice_axes(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(row direction, column direction, slice normal) of a DICOM slice as unit (3,) vectors in
    LPS, from ImageOrientationPatient; None without it. The row direction is where the column
    index grows, the column direction where the row index grows. The normal points along the
    positive patient axis it lies nearest (head, posterior or patient left), whichever way the
    rows and columns run, so slices ordered along it run feet to head in an axial series
    (feet-first scans, whose rows run toward the patient's right, included)."""
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return None
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    if normal[int(np.argmax(np.abs(normal)))] < 0:
        normal = -normal
    return row, col, normal


def _axis_of(direction: np.ndarray) -> int | None:
    """The patient axis (0, 1, 2) a direction runs along within PLANE_MIN_COSINE, else None."""
    k = int(np.argmax(np.abs(direction)))
    return k if abs(direction[k]) >= PLANE_MIN_COSINE * np.linalg.norm(direction) else None


def plane(ds) -> str | None:
    """"axial", "coronal", "sagittal" or "oblique" for a DICOM slice; None without orientation."""
    axes = slice_axes(ds)
    if axes is None:
        return None
    k = _axis_of(axes[2])
    return "oblique" if k is None else PLANES[k]


def on_patient_axes(ds) -> bool:
    """Whether a slice's rows, columns and normal each run along a patient axis (within
    PLANE_MIN_COSINE), so that a series of it reslices by transposing and flipping."""
    axes = slice_axes(ds)
    if axes is None:
        return False
    along = [_axis_of(v) for v in axes]
    return None not in along and len(set(along)) == 3


def _dominant(direction: np.ndarray) -> tuple[int, int]:
    """(patient axis 0/1/2, sign +1/-1) that a direction vector runs along."""
    k = int(np.argmax(np.abs(direction)))
    return k, 1 if direction[k] > 0 else -1


def reslice_to_axial(pixels: np.ndarray, first, last, pixel_spacing_mm: tuple[float, float] | None,
                     slice_spacing_mm: float | None) -> tuple[np.ndarray, tuple | None, list[float] | None]:
    """A coronal or sagittal series -> the same voxels as axial slices in display order.

    pixels: (N, H, W) slices as stored (rows along the column direction, columns along the row
    direction), ordered along the slice normal (ascending ImagePositionPatient . normal); first,
    last: the headers of the first and last slice. -> ((Z, Y, X) copy of ``pixels``, feet to
    head, anterior to posterior, patient right to left; spacing (z, y, x) in mm or None; the LPS
    position in mm of voxel [0, 0, 0] or None)."""
    row, col, normal = slice_axes(first)
    along = [_dominant(normal), _dominant(col), _dominant(row)]  # array axes 0, 1, 2
    order = [next(a for a, (k, _) in enumerate(along) if k == target) for target in (2, 1, 0)]
    out = pixels.transpose(order)
    flips = tuple(slice(None, None, -1) if along[a][1] < 0 else slice(None) for a in order)
    out = np.ascontiguousarray(out[flips])  # slices are read one by one downstream: keep them contiguous
    spacing = None
    if pixel_spacing_mm is not None and slice_spacing_mm:  # a spacing with a hole would land in-plane
        per_axis = (slice_spacing_mm, pixel_spacing_mm[0], pixel_spacing_mm[1])
        spacing = tuple(per_axis[a] for a in order)
    origin = None
    ipp_first, ipp_last = getattr(first, "ImagePositionPatient", None), getattr(last, "ImagePositionPatient", None)
    if ipp_first is not None and ipp_last is not None and pixel_spacing_mm is not None:
        # The stored voxel that becomes [0, 0, 0]: index 0 of every axis that is not flipped, the
        # last index of every axis that is.
        n, h, w = pixels.shape
        ipp = np.array(ipp_last if along[0][1] < 0 else ipp_first, float)
        r0 = (h - 1) if along[1][1] < 0 else 0
        c0 = (w - 1) if along[2][1] < 0 else 0
        origin = [float(v) for v in ipp + r0 * pixel_spacing_mm[0] * col + c0 * pixel_spacing_mm[1] * row]
    return out, spacing, origin


def axial_display_origin(ds, shape_hw: tuple[int, int], pixel_spacing_mm: tuple[float, float] | None) -> list[float] | None:
    """The LPS position in mm of an axial slice's display pixel [0, 0] (anterior, patient right):
    of the slice's four corners as stored, the one furthest right and forward. None without
    ImagePositionPatient, orientation or spacing. (ImagePositionPatient is the stored first pixel,
    which display flips move: feet-first scans store the patient's left first.)"""
    axes, ipp = slice_axes(ds), getattr(ds, "ImagePositionPatient", None)
    if axes is None or ipp is None or pixel_spacing_mm is None:
        return None
    row, col, _ = axes
    h, w = shape_hw
    corners = [np.array(ipp, float) + r * pixel_spacing_mm[0] * col + c * pixel_spacing_mm[1] * row
               for r in (0, h - 1) for c in (0, w - 1)]
    return [float(v) for v in min(corners, key=lambda p: p[0] + p[1])]
