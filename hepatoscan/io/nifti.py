"""NIfTI (.nii, .nii.gz) volumes -> (Z, H, W) arrays shown the radiological way.

Memory: the voxels are decompressed once, straight into their final array (no copy of the
decompressed file, no float32 copy of integer data); the display orientation is a view of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

INT16_RANGE = (np.iinfo(np.int16).min, np.iinfo(np.int16).max)


@dataclass(frozen=True)
class NiftiGeometry:
    """Where a NIfTI volume's voxels lie: the 4x4 affine of its RAS-canonical orientation, so that
    masks in display axes can be written back with :func:`from_display_axes`."""

    affine: np.ndarray


def to_display_axes(data_xyz: np.ndarray) -> np.ndarray:
    """RAS-canonical (X, Y, Z) array -> (Z, H, W) view: anterior up, patient right on the image
    left, Z increasing toward the head. No copy is made. Inverse: :func:`from_display_axes`."""
    return np.asarray(data_xyz).transpose(2, 1, 0)[:, ::-1, ::-1]


def from_display_axes(data_zyx: np.ndarray) -> np.ndarray:
    """(Z, H, W) display array -> RAS-canonical (X, Y, Z) view (no copy; nibabel writes views)."""
    return np.asarray(data_zyx)[:, ::-1, ::-1].transpose(2, 1, 0)


def display_affine(spacing_mm, origin_mm=None) -> np.ndarray:
    """The 4x4 RAS affine of a volume's display axes stored as (x, y, z) (a (Z, H, W) array
    transposed: i -> patient left, j -> posterior, k -> head, LPS), from its (z, y, x) spacing in mm
    (1 mm where unknown) and the LPS position of display voxel (0, 0, 0) (a DICOM series'
    ``origin_mm``; 0 where unknown). Where a volume has no NIfTI geometry, its masks are written so."""
    sz, sy, sx = (s or 1.0 for s in (spacing_mm or (1.0, 1.0, 1.0)))
    affine = np.diag([-sx, -sy, sz, 1.0])
    if origin_mm:
        affine[:3, 3] = [-origin_mm[0], -origin_mm[1], origin_mm[2]]
    return affine


def _compact(display: np.ndarray) -> np.ndarray:
    """Float voxels -> int16 (rounded to 1 HU) when they fit, slice by slice: half the memory of
    float32 and far below what the model resolves (its window is 400 HU over 256 levels)."""
    if display.dtype.kind in "iub":
        return display
    lo, hi = display.min(), display.max()  # NaN propagates: such volumes stay float for the caller
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < INT16_RANGE[0] or hi > INT16_RANGE[1] or hi - lo <= 255:
        # NaN/inf are handled by the caller; 0..255 volumes are display grey levels: keep them exact.
        return np.asarray(display, np.float32)
    out = np.empty(display.shape, np.int16)
    for z in range(display.shape[0]):
        np.rint(display[z], out=out[z], casting="unsafe")
    return out


# What to do where a NIfTI's axes had to be guessed (no orientation stated, or a degenerate one).
GUESSED_AXES_ADVICE = ("If the overlay shows the spine at the top, or the liver on the image's right, the masks "
                       "are poor: save the volume with its orientation (as it came from the DICOM) and try again, "
                       "or have it read upside-down or mirrored (the app's Read the image, the CLI's --read-as).")
# Where each format keeps the orientation matrix, as the degenerate-matrix warning names it.
ORIENTATION_MATRIX = {"nifti": "The NIfTI's orientation matrix (sform/qform) is",
                      "nrrd": "The NRRD's space directions are", "metaimage": "The MetaImage's TransformMatrix is"}


def degenerate_affine_warning(fmt: str = "nifti") -> str:
    return (f"{ORIENTATION_MATRIX[fmt]} degenerate: it maps the three voxel axes onto fewer than three "
            "directions (a broken converter?), so the axes are guessed, as for a file that states none. "
            + GUESSED_AXES_ADVICE)


def oriented(img, fmt: str = "nifti"):
    """A nibabel image -> (an image whose affine gives an orientation, [warnings]). A degenerate
    affine (all zeros, or two voxel axes along one direction), which nibabel cannot reorient by,
    is replaced by the one it takes for a file that states none: the voxel sizes (pixdim; 1 mm
    where absent), the first axis toward the patient's right. The voxels stay unread. ``fmt``: the
    file's format ("nifti", "nrrd", "metaimage"), which the warning names."""
    from .imports import nibabel

    nib = nibabel()
    if not np.isnan(nib.io_orientation(img.affine)).any():
        return img, []
    zooms = [z if np.isfinite(z) and z > 0 else 1.0 for z in img.header.get_zooms()[:3]]
    affine = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    return type(img)(img.dataobj, affine, img.header), [degenerate_affine_warning(fmt)]


def read_nifti(img) -> tuple[np.ndarray, tuple[float, float, float], NiftiGeometry]:
    """A nibabel image -> ((Z, H, W) voxel values, spacing (z, y, x) mm, geometry).

    The values are the stored integers (int16 for most CT) or, for float files, int16 HU rounded
    to 1 HU where they fit, float32 otherwise. The array may be a strided view: index slices.
    """
    from .imports import nibabel

    nib = nibabel()
    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if len(img.shape) != 3:
        raise InputError(
            f"NIfTI has {len(img.shape)} dimensions {tuple(img.shape)}; HepatoScan reads 3D CT volumes. "
            "Export a single 3D volume (one time point / one channel) and try again.")
    canonical = nib.as_closest_canonical(img)  # flips/transposes are views of the one array
    data = np.asanyarray(canonical.dataobj)  # stored dtype (often int16), scaled if the header says so
    zooms = canonical.header.get_zooms()[:3]
    spacing_zyx = (float(zooms[2]), float(zooms[1]), float(zooms[0]))
    display = _compact(to_display_axes(data))
    return display, spacing_zyx, NiftiGeometry(np.array(canonical.affine))


def slice_sources(img) -> list[dict] | None:
    """A nibabel image -> (Z,) where each display slice (Z toward the head, as :func:`read_nifti`
    gives them) lies in the file: {"file_slice": k, "file_axis": "K"}, k the file's own voxel
    index from 0 along its axis I, J or K (Scan.slice_source). None where that index is Z itself
    (the file's K axis runs from feet to head, as most CT NIfTIs store it)."""
    from .imports import nibabel

    orientation = nibabel().io_orientation(img.affine)  # per file axis: (canonical axis, +1 or -1)
    axis = int(np.flatnonzero(orientation[:, 0] == 2)[0])  # the file axis that runs feet-head
    flipped = orientation[axis, 1] < 0
    if axis == 2 and not flipped:
        return None
    n = int(img.shape[axis])
    return [{"file_slice": n - 1 - z if flipped else z, "file_axis": "IJK"[axis]} for z in range(n)]
