"""A reference segmentation (an expert's masks) -> labels in a scan's own axes, for comparison.

Read: a NIfTI label volume (or a NRRD or MetaImage one: 3D Slicer's labelmap .nrrd, .mha; for a
NIfTI, NRRD, MetaImage, DICOM or image-stack scan of the same grid), a label
image (PNG, TIFF, BMP; for one image), a folder or .zip of label images named after a stack's
slices (``IM1.png`` or ``IM1_mask.png`` for ``IM1.png``), or a DICOM SEG of the DICOM series
(io.reference_seg). Values: 0 background, 1 liver, 2 tumor
(LiTS); 0 and one other value (a liver mask, 0/255); or 0 and two others (0/128/255: the lower is
liver, the higher tumor), with a note saying how they were read.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import IMAGE_SUFFIXES, LoadLimits
from ..errors import InputError, UnsupportedFormatError
from ..scan import Note, Scan
from .dicom import is_dicom
from .image import _upright
from .itk_formats import Segment, is_metaimage, is_nrrd, read_metaimage, read_slicer_segmentation
from .nifti import NiftiGeometry, display_affine, oriented, read_nifti

MASK_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels", "_seg", "_segmentation", "_gt")  # IM1.png <- IM1_mask.png
WHAT = ("A reference segmentation is a label mask at the image's own size: 0 background, 1 liver, 2 tumor "
        "(or 0 and one value for the liver alone), saved as NIfTI for a volume or as PNG for an image (or a DICOM "
        "SEG of a DICOM series).")


@dataclass(frozen=True)
class Reference:
    """labels: (Z, H, W) uint8 in {0, 1, 2} in the scan's axes (0 background, 1 liver, 2 tumor);
    name: the reference's file name; notes: how it was read (label values, geometry)."""

    labels: np.ndarray
    name: str
    notes: tuple[str, ...] = ()


def read_reference(path: str | Path, scan: Scan, given: tuple[int, int | None] | None = None) -> Reference:
    """The reference segmentation at ``path`` for ``scan``, checked to match its grid; ``given``:
    the liver's (and tumor's) values of a multi-organ label map (parse_label_values). InputError
    (saying what to give instead, and that it is of the reference) where it cannot be read or does
    not match."""
    try:
        return _read(Path(path), scan, given)
    except InputError as e:
        raise type(e)(f"Reference {e}") from e


def _read(path: Path, scan: Scan, given: tuple[int, int | None] | None) -> Reference:
    if not path.exists():
        raise InputError(f"{path}: no such reference file or folder. Check the path and try again.")
    name = path.name
    if path.is_dir() or name.lower().endswith(".zip"):
        return _slice_masks(path, scan, given)
    from . import _beside, _is_nifti, _read_path

    data = _read_path(path, LoadLimits())
    beside = _beside(path, LoadLimits())  # a detached header's voxels (.mhd + .raw)
    if _is_nifti(data, name):
        labels, notes = _nifti_labels(data, name, scan)
    elif is_nrrd(data, name):
        voxels, img, segments = read_slicer_segmentation(data, name, lambda shape, _: _check_voxels(shape, scan, name),
                                                         beside)
        notes = []
        if segments:  # a 3D Slicer segmentation: liver and tumor read from its segments' names
            labels, notes = segment_labels(voxels, segments, name, given)
            img, given = type(img)(labels, img.affine, img.header), None
        elif voxels.ndim == 4:
            raise InputError(f"{name}: a NRRD of {voxels.shape[3]} layers without segments; a reference is one 3D "
                             f"label volume. {WHAT}")
        labels, placed = _volume_labels(img, name, scan)
        notes += placed
    elif is_metaimage(data, name):
        labels, notes = _volume_labels(read_metaimage(data, name, lambda shape, _: _check_voxels(shape, scan, name),
                                                      beside), name, scan)
    elif is_dicom(data[:132]):
        from .reference_seg import seg_labels

        labels, notes = seg_labels(data, name, scan, given)  # on the series' own slices
        return Reference(labels, name, tuple(notes))
    else:
        pages = _image_pages(data, name, scan.pixels.shape[1:])
        labels = np.stack(pages) if len(pages) > 1 else pages[0][None]
        notes = []
    labels, value_notes = label_values(labels, name, given)
    _check_shape(labels.shape, scan.pixels.shape, name)
    return Reference(labels, name, tuple(notes + value_notes))


def parse_label_values(text: str | None) -> tuple[int, int | None] | None:
    """"6" (the liver's value in a multi-organ label map), "6, 7" (the liver's and the tumor's) or
    blank (the reference's own convention, read automatically) -> (liver, tumor or None) or None."""
    parts = [p for p in (text or "").replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        return None
    if len(parts) > 2 or not all(p.isdigit() for p in parts) or len(set(parts)) < len(parts) or "0" in parts:
        raise InputError(f"label values {text!r}: give the liver's value in the reference, and the tumor's after a "
                         "comma if it marks tumor, as whole numbers other than 0 (background): for example 6, or 1, 2.")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else None


def _given_labels(values: np.ndarray, present: np.ndarray, given: tuple[int, int | None],
                  name: str) -> tuple[np.ndarray, list[str]]:
    """Labels read with the values the user gave (a multi-organ map): the liver's (and the
    tumor's, within the liver) -> (Z, H, W) uint8 in {0, 1, 2}, [a note]."""
    liver_value, tumor_value = given
    if liver_value not in present:
        shown = ", ".join(str(v) for v in present[:12]) + (" ..." if present.size > 12 else "")
        raise InputError(f"{name}: no voxel has the liver's value {liver_value}; its values are {shown}. "
                         "Give the value its liver carries in this label map.")
    labels = _relabel(values, liver_value, tumor_value)
    others = [v for v in present.tolist() if v not in (0, liver_value, tumor_value)]
    tumor = f", {tumor_value} tumor" if tumor_value is not None else " (no tumor value given: tumor not compared)"
    return labels, [Note(f"The reference was read with the values given: {liver_value} liver{tumor}"
                         + (f"; {len(others)} other labels (other organs) as background." if others else "."))]


def label_values(values: np.ndarray, name: str,
                 given: tuple[int, int | None] | None = None) -> tuple[np.ndarray, list[str]]:
    """(Z, H, W) label values -> ((Z, H, W) uint8 in {0, 1, 2}, [a note on how they were read]).
    ``given``: (liver, tumor or None), the values of a multi-organ map (parse_label_values); by
    default the conventions of the module docstring. InputError where they are not a label mask
    (in-between values of a smoothed or JPEG mask)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise InputError(f"{name}: holds fractional values (a probability map or a resampled mask). {WHAT}")
    if values.dtype.kind not in "uib" and values.dtype.kind != "f":
        raise InputError(f"{name}: holds {values.dtype} values. {WHAT}")
    present = _present_values(values)
    if present.size and (present[0] < 0 or present[-1] > 65535):
        raise InputError(f"{name}: holds values from {present[0]:g} to {present[-1]:g}, not labels. {WHAT}")
    present = present.astype(np.int64)
    if given is not None:
        return _given_labels(values, present, given, name)
    if set(present.tolist()) <= {0, 1, 2}:
        return values.astype(np.uint8), []
    shown = ", ".join(str(v) for v in present[:8]) + (" ..." if present.size > 8 else "")
    if present[0] != 0 or present.size > 3:
        raise InputError(f"{name}: holds {present.size} values ({shown}), not 0 and up to two labels. "
                         f"A mask saved as JPEG, resized or smoothed has in-between values. {WHAT} For a "
                         "multi-organ label map, give the liver's value (and the tumor's): the app's Label values "
                         "field, or --reference-labels 6 in the CLI.")
    if present.size == 2:
        return _relabel(values, present[1], None), [
            Note(f"The reference holds 0 and {present[1]}: read as the liver alone (no tumor marked).")]
    return _relabel(values, present[1], present[2]), [Note(f"The reference holds 0, {present[1]} and {present[2]}: read as 0 background, "
                         f"{present[1]} liver, {present[2]} tumor.")]


def _relabel(values: np.ndarray, liver_value: int, tumor_value: int | None) -> np.ndarray:
    """(Z, H, W) values -> (Z, H, W) uint8: 1 where ``liver_value``, 2 where ``tumor_value``, else 0;
    slice by slice (no full-size temporaries)."""
    labels = np.zeros(values.shape, np.uint8)
    for out, plane in zip(labels.reshape(-1, *values.shape[-2:]), values.reshape(-1, *values.shape[-2:])):
        out[plane == liver_value] = 1
        if tumor_value is not None:
            out[plane == tumor_value] = 2
    return labels


def _present_values(values: np.ndarray) -> np.ndarray:
    """The distinct values of (Z, H, W) ``values``, sorted. Unsigned 8/16-bit ones by a histogram
    built slice by slice (far faster than np.unique, and bincount's int64 copy of a whole
    512 x 512 x 150 volume would take 300 MB)."""
    if values.dtype.kind in "ub" and values.dtype.itemsize <= 2:
        counts = np.zeros(2 ** (8 * values.dtype.itemsize), np.int64)
        for plane in values.reshape(-1, *values.shape[-2:]):
            counts += np.bincount(plane.ravel(), minlength=counts.size)
        return np.flatnonzero(counts)
    return np.unique(values)


def _check_shape(shape: tuple[int, ...], image_shape: tuple[int, ...], name: str) -> None:
    """InputError where the reference's (Z, H, W) ``shape`` is not the image's."""
    if tuple(shape) != tuple(image_shape):
        def size(s):
            return f"{s[2]} x {s[1]}" + (f" x {s[0]} slices" if s[0] > 1 else "")
        raise InputError(f"{name}: the reference is {size(shape)} but the image is {size(image_shape)}. "
                         "Give the reference segmentation saved with this image, on its grid.")


def _check_voxels(shape_ijk: tuple[int, int, int], scan: Scan, name: str) -> None:
    """A reference volume's (I, J, K) size, before its voxels are decompressed -> InputError where
    it holds more voxels than the image (a reference may cover part of it: :func:`_volume_labels`)."""
    if np.prod(shape_ijk, dtype=np.int64) > np.prod(scan.pixels.shape, dtype=np.int64):
        _check_shape(tuple(shape_ijk)[::-1], scan.pixels.shape, name)


# Words of a 3D Slicer segment's name that make it the liver's or a tumor's (lower case; a tumor's
# first: "Liver tumor" is a tumor). Other segments (vessels, other organs) are background.
TUMOR_WORDS = ("tumor", "tumour", "lesion", "metast", "hcc", "cancer", "carcinoma", "mass", "nodule")
LIVER_WORDS = ("liver",)


def _segment_role(segment: Segment, given: tuple[int, int | None] | None) -> str | None:
    """"tumor", "liver" or None (background) for one segment: by the values the user gave, where
    given, else by its name."""
    if given is not None:
        return "liver" if segment.value == given[0] else "tumor" if segment.value == given[1] else None
    words = segment.name.lower()
    return "tumor" if any(w in words for w in TUMOR_WORDS) else "liver" if any(w in words for w in LIVER_WORDS) else None


def segment_labels(voxels: np.ndarray, segments: list[Segment], name: str,
                   given: tuple[int, int | None] | None = None) -> tuple[np.ndarray, list[str]]:
    """A 3D Slicer segmentation's (I, J, K) voxels, or (I, J, K, L) layers, and its segments ->
    ((I, J, K) uint8 in {0, 1, 2}: 1 where a liver segment is, 2 where a tumor segment is, [a note
    naming the segments read]). The segments are told apart by their names (TUMOR_WORDS,
    LIVER_WORDS) or, where ``given``, by their label values. InputError where no liver is found."""
    layer = (lambda k: voxels[..., k]) if voxels.ndim == 4 else (lambda k: voxels)
    roles = {s: _segment_role(s, given) for s in segments}
    if "liver" not in roles.values():
        listed = ", ".join(f"'{s.name}' ({s.value})" for s in segments[:8]) + (", ..." if len(segments) > 8 else "")
        raise InputError(f"{name}: a 3D Slicer segmentation whose segments ({listed}) name no liver. Name the liver's "
                         "segment 'Liver' (and each tumor's 'Tumor') in Slicer's Segment Editor and save it again, or "
                         "give the liver's label value (and the tumor's): the app's Label values, the CLI's "
                         "--reference-labels.")
    labels = np.zeros(voxels.shape[:3], np.uint8)
    for role, value in (("liver", 1), ("tumor", 2)):  # tumor last: within the liver it is tumor
        for s in (s for s, r in roles.items() if r == role):
            labels[layer(s.layer) == s.value] = value
    named = {r: ", ".join(f"'{s.name}'" for s, role in roles.items() if role == r) for r in ("liver", "tumor")}
    others = [s for s, r in roles.items() if r is None]
    text = (f"The reference is a 3D Slicer segmentation: {named['liver']} read as liver"
            + (f", {named['tumor']} as tumor" if named["tumor"] else " (no tumor segment: tumor not compared)")
            + (f"; {len(others)} other segment{'s' if len(others) > 1 else ''} ("
               + ", ".join(f"'{s.name}'" for s in others[:4]) + ("..." if len(others) > 4 else "")
               + ") as background." if others else "."))
    return labels, [Note(text)]


def _nifti_labels(data: bytes, name: str, scan: Scan) -> tuple[np.ndarray, list[str]]:
    """NIfTI bytes -> ((Z, H, W) values in the display axes every NIfTI is read in, [notes])."""
    from . import _open_nifti

    img = _open_nifti(data, name)
    if len(img.shape) < 3 or (len(img.shape) > 3 and any(s > 1 for s in img.shape[3:])):
        raise InputError(f"{name}: a NIfTI of shape {tuple(img.shape)}; a reference is one 3D label volume.")
    return _volume_labels(img, name, scan)


def _volume_labels(img, name: str, scan: Scan) -> tuple[np.ndarray, list[str]]:
    """A 3D nibabel image (a NIfTI, or a NRRD or MetaImage given its RAS affine) -> ((Z, H, W)
    values in the display axes every volume is read in, [notes]). A reference of another size that
    lies on the image's voxel grid (the same axes and voxel size, shifted by whole voxels, as 3D
    Slicer saves a segmentation cropped to its segments) is placed where its header says, with
    background around it."""
    from .imports import nibabel

    img, _ = oriented(img)  # read as the image's own degenerate header is (io.nifti.oriented)
    canonical = nibabel().as_closest_canonical(img)  # the header's, before any voxel is read
    x, y, z = canonical.shape[:3]
    shift = None if (z, y, x) == scan.pixels.shape else _grid_shift(canonical.affine, (x, y, z), scan)
    if shift is None:
        _check_shape((z, y, x), scan.pixels.shape, name)  # also bounds what is decompressed to the image's own size
    values, _, geometry = read_nifti(img)
    notes = []
    if shift is not None:
        values = _placed(np.asarray(values), shift, scan.pixels.shape)
        zs, ys, xs = scan.pixels.shape
        notes.append(Note(f"The reference covers {x} x {y} x {z} of the image's {xs} x {ys} x {zs} voxels (saved cropped "
                          "to its segments): it was placed where its header puts it, background around it."))
    elif isinstance(scan.geometry, NiftiGeometry) and values.shape == scan.pixels.shape and not np.allclose(
            geometry.affine, scan.geometry.affine, atol=0.05):
        notes.append("The reference's header places its voxels elsewhere than the image's (another affine); "
                     "they were compared voxel by voxel. Check that it belongs to this image.")
    return np.asarray(values), notes


def _grid_shift(affine: np.ndarray, shape_xyz: tuple[int, int, int], scan: Scan) -> tuple[int, int, int] | None:
    """A reference's RAS-canonical affine and (X, Y, Z) size -> the whole-voxel shift (x, y, z)
    of its first voxel in the image's RAS-canonical voxel grid (:func:`_canonical_affine`), where it
    lies on that grid (the same axes and voxel size, within 1%; a shift within 0.05 voxel of whole)
    and inside it; else None."""
    image_affine = _canonical_affine(scan)
    if image_affine is None:
        return None
    to_image = np.linalg.solve(image_affine, affine)  # reference voxel -> image voxel
    shift = to_image[:3, 3]
    if not np.allclose(to_image[:3, :3], np.eye(3), atol=0.01) or not np.allclose(shift, np.round(shift), atol=0.05):
        return None
    shift = tuple(int(v) for v in np.round(shift))
    z, y, x = scan.pixels.shape
    inside = all(0 <= s and s + n <= size for s, n, size in zip(shift, shape_xyz, (x, y, z)))
    return shift if inside else None


def _canonical_affine(scan: Scan) -> np.ndarray | None:
    """The 4x4 RAS affine of a scan's voxels in RAS-canonical order (io.nifti.from_display_axes of
    its display axes): a NIfTI's (NRRD's, MetaImage's) own; for a DICOM series, that of its display
    axes (io.nifti.display_affine, as its masks' NIfTI is written) with rows and columns reversed;
    None where its origin or spacing is unknown."""
    if isinstance(scan.geometry, NiftiGeometry):
        return scan.geometry.affine
    origin = scan.geometry.get("origin_mm") if isinstance(scan.geometry, dict) else None
    if origin is None or scan.spacing_mm is None or not all(scan.spacing_mm):
        return None
    _, h, w = scan.pixels.shape
    reverse = np.array([[-1.0, 0, 0, w - 1], [0, -1.0, 0, h - 1], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    return display_affine(scan.spacing_mm, origin) @ reverse  # canonical (x, y, z) = stored (w-1-x, h-1-y, z)


def _placed(values_zyx: np.ndarray, shift_xyz: tuple[int, int, int], shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """(z, h, w) display-axes values of a reference that covers part of the image, its first
    canonical voxel at ``shift_xyz`` of the image's -> (Z, H, W) values, 0 around it. Display rows
    and columns run against the canonical y and x axes (io.nifti.to_display_axes)."""
    out = np.zeros(shape_zyx, values_zyx.dtype)
    z, h, w = values_zyx.shape
    sx, sy, sz = shift_xyz
    _, height, width = shape_zyx
    out[sz:sz + z, height - sy - h:height - sy, width - sx - w:width - sx] = values_zyx
    return out


def _image_pages(data: bytes, name: str, shape_hw: tuple[int, int]) -> list[np.ndarray]:
    """A label image (or a multi-page TIFF) of the image's size ``shape_hw`` -> its pages as
    (H, W) arrays, EXIF orientation applied as the image loader applies it (io.image._upright).
    The size is checked from the header, before any pixel is decoded."""
    try:
        img = Image.open(io.BytesIO(data))
        if tuple(sorted(img.size)) != tuple(sorted(shape_hw)):  # either way round: EXIF may turn it
            _check_shape((1, img.size[1], img.size[0]), (1, *shape_hw), name)
        pages = []
        for k in range(getattr(img, "n_frames", 1)):
            img.seek(k)
            page = _upright(img)[0] if k == 0 else img.copy()
            pages.append(_grey_labels(page, name))
        return pages
    except UnidentifiedImageError as e:
        raise UnsupportedFormatError(f"{name}: not a readable reference. {WHAT}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: the reference image is truncated or corrupt ({e}).") from e


def _grey_labels(img: Image.Image, name: str) -> np.ndarray:
    """One image's label values: a palette image's indices, a grey image's levels, or an RGB
    image's one channel where its three are equal."""
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise InputError(f"{name}: a colour image (an overlay?), not a label mask. {WHAT}")
        return rgb[..., 0]
    if img.mode == "LA":
        return np.asarray(img)[..., 0]
    return np.asarray(img)


def _slice_masks(path: Path, scan: Scan, given: tuple[int, int | None] | None) -> Reference:
    """A folder or .zip of label images, one per slice file of a stack scan, matched by name."""
    files = scan.metadata.get("slice_files")
    if not files:
        instead = ("one NIfTI label volume (or a DICOM SEG of a DICOM series)" if scan.is_volume
                   else "one label image (PNG) of the image's size")
        raise InputError(f"{path.name}: a folder or .zip of masks goes with a stack of image slices; for this input "
                         f"give the reference as {instead}.")
    masks = _mask_files(path)
    pages, missing = [], []
    for k, file in enumerate(files):
        stem = PurePosixPath(file).name.rsplit(".", 1)[0]
        key = next((stem + s for s in MASK_SUFFIXES if stem + s in masks), None)
        if key is None:
            missing.append(PurePosixPath(file).name)
            continue
        found = _image_pages(masks[key](), key, scan.image_size(k))[0]
        if scan.sizes_differ and found.shape == scan.image_size(k):  # onto the image's canvas, as the image
            found = np.pad(found, [(0, n - m) for n, m in zip(scan.pixels.shape[1:], found.shape)])
        pages.append(found)
    if missing:
        raise InputError(f"{path.name}: no mask for {len(missing)} of the {len(files)} slices (such as "
                         f"{', '.join(missing[:3])}). Name each mask as its slice (IM1.png or IM1_mask.png for IM1.png).")
    shapes = {p.shape for p in pages}
    if len(shapes) > 1:
        raise InputError(f"{path.name}: the masks differ in size ({', '.join(map(str, sorted(shapes)))}). {WHAT}")
    labels, notes = label_values(np.stack(pages), path.name, given)
    _check_shape(labels.shape, scan.pixels.shape, path.name)
    return Reference(labels, path.name, tuple(notes))


def _mask_files(path: Path) -> dict:
    """{file stem: a function returning its bytes} of the image files of a folder or .zip, read
    with the loader's readers (io._unzip: its limits and path checks; entries read when asked)."""
    from . import _file_reader, _read_path, _unzip

    limits = LoadLimits()
    if path.is_dir():
        entries = [(p.name, _file_reader(p)) for p in sorted(path.rglob("*"))
                   if p.is_file() and not p.name.startswith(".")]
    else:
        entries = _unzip(_read_path(path, limits), path.name, limits)
    return {PurePosixPath(n).name.rsplit(".", 1)[0]: read for n, read in entries
            if n.lower().endswith(IMAGE_SUFFIXES)}
