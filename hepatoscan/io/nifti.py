"""NIfTI (.nii, .nii.gz) volumes -> (Z, H, W) arrays shown the radiological way."""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def to_display_axes(data_xyz: np.ndarray) -> np.ndarray:
    """RAS-canonical (X, Y, Z) array -> (Z, H, W): anterior up, patient right on the image left,
    Z increasing toward the head. Inverse: :func:`from_display_axes`."""
    return np.ascontiguousarray(np.asarray(data_xyz).transpose(2, 1, 0)[:, ::-1, ::-1])


def from_display_axes(data_zyx: np.ndarray) -> np.ndarray:
    """(Z, H, W) display array -> RAS-canonical (X, Y, Z) array."""
    return np.ascontiguousarray(np.asarray(data_zyx)[:, ::-1, ::-1].transpose(2, 1, 0))


def read_nifti(img) -> tuple[np.ndarray, tuple[float, float, float], "object"]:
    """A nibabel image -> ((Z, H, W) float32 values, spacing (z, y, x) mm, canonical image).

    The canonical image is kept so masks can be written back with the input's geometry.
    """
    import nibabel as nib

    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if len(img.shape) != 3:
        raise InputError(
            f"NIfTI has {len(img.shape)} dimensions {tuple(img.shape)}; HepatoScan reads 3D CT volumes. "
            "Export a single 3D volume (one time point / one channel) and try again.")
    canonical = nib.as_closest_canonical(img)
    data = np.asanyarray(canonical.dataobj)  # stored dtype (often int16), scaled if the header says so
    zooms = canonical.header.get_zooms()[:3]
    spacing_zyx = (float(zooms[2]), float(zooms[1]), float(zooms[0]))
    # One float32 copy, made directly in display order (no intermediate float copy).
    display = np.asarray(data).transpose(2, 1, 0)[:, ::-1, ::-1].astype(np.float32, order="C")
    return display, spacing_zyx, canonical
