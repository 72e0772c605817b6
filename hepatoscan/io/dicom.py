"""DICOM: one file, or a series (folder or .zip) ordered by ImagePositionPatient. A multi-frame
file (Enhanced CT: a whole series in one object) is read as the series of its frames
(dicom_frames).

Pixel data that pydicom decodes with the core install works: uncompressed (Implicit/Explicit VR
Little Endian, Big Endian, Deflated), RLE Lossless and JPEG 2000 (through Pillow). JPEG Lossless
(the usual compression of CT in PACS exports), JPEG-LS and 12-bit JPEG need GDCM, which pydicom
uses when it is installed: ``pip install hepatoscan[dicom]`` (python-gdcm, BSD licence); the app's
profile (requirements.txt) includes it.
"""
from __future__ import annotations

import io
import logging
import struct
import warnings
from typing import Callable

import numpy as np

from ..config import LoadLimits
from ..errors import InputError, UnsupportedFormatError
from ..marks import colour_message, read_colour
from ..wording import agree, count
from .dicom_frames import frame_count, split_frames
from .dicom_geometry import axial_display_origin, on_patient_axes, plane, reslice_to_axial, slice_axes
from .image import ct_number_offset, hu_note, stretch_to_grey

log = logging.getLogger(__name__)

META_FIELDS = {"Modality": "modality", "StudyDate": "study_date", "PatientName": "patient_name",
               "PatientID": "patient_id", "PatientAge": "patient_age", "PatientSex": "patient_sex",
               "ReferringPhysicianName": "referring_physician", "StudyDescription": "study_description",
               "SeriesDescription": "series_description", "Manufacturer": "manufacturer"}


CT_NUMBER_MODALITIES = ("CT", "OT", "")  # whose unrescaled values may be read as CT numbers
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # SOP class root: screenshots, scans of film, ...


def is_dicom(data: bytes) -> bool:
    """A DICOM file: the 128-byte preamble and "DICM" (a Part 10 file), or a bare data set (below)."""
    return _part10(data) or _bare_dataset(data)


def _part10(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _bare_dataset(data: bytes) -> bool:
    """A DICOM data set written without the preamble and "DICM" (older exports, some research
    archives): it opens with a little-endian tag of group 0002 (file meta) or 0008 (identifying),
    which no image, archive or NIfTI format does (their first bytes are a signature or, for NIfTI,
    the header size 348)."""
    if len(data) < 8:
        return False
    group, element = struct.unpack("<HH", data[:4])
    return group in (0x0002, 0x0008) and element < 0x0100


def parse(data: bytes, name: str, stop_before_pixels: bool = False):
    """Bytes -> pydicom Dataset (only the header with ``stop_before_pixels``), or InputError."""
    from .imports import pydicom as import_pydicom

    pydicom = import_pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():  # pydicom also logs what it warns of (a truncated file, say)
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(io.BytesIO(data), force=not _part10(data), stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError, OSError) as e:
        raise InputError(f"{name}: not a valid DICOM file ({e}). Export the study again as DICOM.") from e
    if len(ds) == 0 and _part10(data):  # pydicom gives up on a file cut off inside its pixel data
        raise InputError(f"{name}: the DICOM file is truncated or corrupt: none of its elements could be read. "
                         "Copy or export it again.")
    if getattr(ds, "buffer", None) is not None:
        ds.buffer = None  # every element is read already; keeping the file's bytes would double the memory
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):  # a bare data set: say how it was encoded
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = getattr(ds, "original_encoding", (True, True))
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def _rescale(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored values -> HU. int16 where slope and intercept are whole numbers and the result fits
    (nearly all CT: slope 1, intercept -1024), which is half the memory of float32; else float32."""
    if arr.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer() and arr.size:
        ends = [int(arr.min()) * int(slope) + int(intercept), int(arr.max()) * int(slope) + int(intercept)]
        if min(ends) >= np.iinfo(np.int16).min and max(ends) <= np.iinfo(np.int16).max:
            return (arr.astype(np.int32) * int(slope) + int(intercept)).astype(np.int16)
    return arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _decode(ds, name: str) -> np.ndarray:
    """The stored pixel values of a dataset (all its frames), or a clear error when pydicom has no
    decoder for its transfer syntax."""
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError) as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        if getattr(ts, "is_compressed", True) is False:  # nothing to decode: the bytes are wrong
            raise InputError(f"{name}: the pixel data cannot be read ({e}): the file is truncated or "
                             "corrupt. Export or copy it again.") from e
        raise UnsupportedFormatError(
            f"{name}: cannot decode the pixel data (transfer syntax {getattr(ts, 'name', ts)}): {e}. "
            "Uncompressed, RLE and JPEG 2000 DICOM work in every install; for JPEG Lossless, JPEG-LS "
            "and 12-bit JPEG install GDCM ('pip install hepatoscan[dicom]', or 'pip install python-gdcm'; "
            "the app's requirements.txt has it), or export the series uncompressed.") from e


def is_multiframe(data: bytes, name: str) -> bool:
    """Whether a DICOM file holds several frames (an Enhanced CT series in one file)."""
    return frame_count(parse(data, name, stop_before_pixels=True)) > 1


def _frames_as_files(data: bytes, name: str) -> list[tuple[str, Callable[[], bytes]]]:
    """A multi-frame DICOM file -> (name, reader) pairs of one single-frame file per frame."""
    ds = parse(data, name)
    frames = _decode(ds, name)
    del ds.PixelData  # decoded: the encoded copy is not needed again
    if frames.ndim == 2 or (frames.ndim == 3 and int(getattr(ds, "SamplesPerPixel", 1) or 1) > 1):
        frames = frames[None]
    return split_frames(ds, frames, name)


def _pixels_hu(ds, name: str) -> np.ndarray:
    """Dataset -> (H, W) HU (RescaleSlope/Intercept applied): int16 where exact, else float32."""
    if "PixelData" not in ds:
        raise InputError(f"{name}: the DICOM file holds no image (no PixelData): is it a DICOMDIR, "
                         "a report or a structured-report object? Give the image files of the series.")
    if frame_count(ds) > 1:  # read_series splits these into frames first
        raise UnsupportedFormatError(f"{name}: a multi-frame DICOM reached the single-frame reader; "
                                     "please report this file to the HepatoScan team.")
    arr = _decode(ds, name)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _colour_to_grey(arr)
    if arr.ndim != 2:
        raise UnsupportedFormatError(f"{name}: DICOM pixel array has shape {arr.shape}; expected one 2D slice.")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return _to_display(_rescale(arr, slope, intercept), ds)


def _display_ops(ds) -> tuple[bool, bool, bool] | None:
    """How a stored axial slice becomes the display view (anterior up, the patient's right on the
    image left; DICOM LPS: row direction +x = patient left, column direction +y = posterior):
    (transpose, then flip columns, then flip rows); None for other planes (a series is resliced
    whole) or without ImageOrientationPatient."""
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6 or plane(ds) != "axial":
        return None
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    transpose = bool(abs(row[1]) > abs(row[0]) and abs(col[0]) > abs(col[1]))  # rows run along y
    if transpose:
        row, col = col, row
    return transpose, bool(row[0] < 0), bool(col[1] < 0)


def _to_display(arr: np.ndarray, ds) -> np.ndarray:
    """A stored axial slice (H, W) -> its display view (_display_ops); other planes unchanged."""
    ops = _display_ops(ds)
    if ops is None:
        return arr
    transpose, flip_columns, flip_rows = ops
    arr = arr.T if transpose else arr
    arr = arr[:, ::-1] if flip_columns else arr
    arr = arr[::-1, :] if flip_rows else arr
    return np.ascontiguousarray(arr)


def to_stored(display: np.ndarray, ds) -> np.ndarray:
    """A display-view slice (H, W) (a mask) -> the stored orientation of the slice ``ds`` describes:
    the inverse of _to_display."""
    ops = _display_ops(ds)
    if ops is None:
        return display
    transpose, flip_columns, flip_rows = ops
    a = display[::-1, :] if flip_rows else display
    a = a[:, ::-1] if flip_columns else a
    return np.ascontiguousarray(a.T if transpose else a)


# Lossy JPEG transfer syntaxes (baseline 8-bit, extended 12-bit): a display image stored so carries
# JPEG's spread black like a .jpg file (preprocessing.JPEG_BLACK_GREY).
LOSSY_JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


def metadata(ds) -> dict:
    out = {}
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts in LOSSY_JPEG_SYNTAXES:
        out["lossy_jpeg"] = "yes"
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
    """True when the stored values are HU (after the rescale): CT image objects, and any grey
    image that states a rescale. Colour images, 8-bit ones (256 values cannot hold CT's range;
    converters such as GDCM add an identity rescale to screenshots), and secondary captures with no
    rescale (a viewer's screenshot saved as DICOM, which keeps Modality CT), hold display grey
    levels instead."""
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) > 1 or int(getattr(ds, "BitsStored", 16) or 16) <= 8:
        return False
    if "RescaleIntercept" in ds:
        return True
    if str(getattr(ds, "SOPClassUID", "")).startswith(SECONDARY_CAPTURE):
        return False
    return getattr(ds, "Modality", "CT") == "CT"


def _ct_numbers(pixels: np.ndarray, ds) -> int | None:
    """Stored values of a grey image that states no rescale, whose values read as a CT slice at an
    offset (as a 16-bit PNG's: air and soft tissue where HU + 0, 1024 or 32768 puts them) -> the
    offset where it is news: any offset for an object not read as HU (a secondary capture, say), a
    non-zero one for a CT object that lost its RescaleIntercept. None otherwise (a stated rescale,
    8-bit, colour or MONOCHROME1 images, display images, other modalities: an MR's arbitrary values
    can look like HU + 1024). pixels: (Z, H, W); the middle slice decides."""
    if ("RescaleIntercept" in ds or str(getattr(ds, "Modality", "") or "").upper() not in CT_NUMBER_MODALITIES
            or int(getattr(ds, "SamplesPerPixel", 1) or 1) > 1
            or int(getattr(ds, "BitsStored", 16) or 16) <= 8
            or str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1"):
        return None
    offset = ct_number_offset(pixels[len(pixels) // 2])
    return None if offset is None or (offset == 0 and _is_hu(ds)) else offset


def _display_levels(pixels: np.ndarray, ds) -> np.ndarray:
    """Stored values of a display image -> float32 grey levels in [0, 255]: 8-bit values as they
    are, wider ones (12- or 16-bit) stretched from their range, as 16-bit PNGs are; MONOCHROME1
    (0 is white) inverted."""
    a = pixels.astype(np.float32)
    if not (a.min() >= 0 and a.max() <= 255):
        a = stretch_to_grey(a)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        a = 255.0 - a
    return a


def _colour_to_grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3 or 4) colour pixels of a DICOM screenshot -> (H, W) float32 grey, its thin coloured
    marks filled in where it is 8-bit, as for PNG/JPG screenshots (marks.read_colour)."""
    rgb = np.asarray(rgb)[..., :3]
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return read_colour(grey, rgb)[0] if rgb.dtype == np.uint8 else grey


def _colour_warnings(ds) -> list[str]:
    """A colour DICOM (read as grey) -> what the user is told of its colour, as for PNG/JPG
    screenshots (marks.colour_message)."""
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) < 3:
        return []
    rgb = np.asarray(ds.pixel_array)
    warning = colour_message(rgb[..., :3]) if rgb.ndim == 3 else None
    return [warning] if warning else []


# DICOM objects that sit beside a CT series but hold no CT image: segmentations (HepatoScan's SEG
# too), structure sets, RT plans and doses, structured reports, presentation states, key objects,
# registrations, encapsulated documents.
DERIVED_MODALITIES = ("SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC")


def derived_object(ds) -> bool:
    """Whether a DICOM header is one of those (DERIVED_MODALITIES), or a 1-bit (binary mask) image."""
    return (str(getattr(ds, "Modality", "") or "").upper() in DERIVED_MODALITIES
            or int(getattr(ds, "BitsAllocated", 8) or 8) == 1)


def read_single(data: bytes, name: str) -> dict:
    """One DICOM file -> dict(pixels (1, H, W), is_hu, spacing_mm, metadata, warnings)."""
    ds = parse(data, name)
    if derived_object(ds):
        raise InputError(f"{name}: a DICOM {getattr(ds, 'Modality', '') or 'mask'} object (a segmentation, structure "
                         "set or report), not a CT image. Give the CT series it belongs to.")
    is_hu = _is_hu(ds)
    pixels = _pixels_hu(ds, name)[None]
    ps = _pixel_spacing(ds)
    thickness = getattr(ds, "SliceThickness", None)
    spacing = (float(thickness) if thickness else None, *ps) if ps else None
    notes, offset = [], _ct_numbers(pixels, ds)
    if offset is not None:
        pixels, is_hu, notes = _rescale(pixels, 1, -offset), True, [hu_note(offset)]
    elif not is_hu:
        pixels = _display_levels(pixels, ds)
    return {"pixels": pixels, "is_hu": is_hu, "spacing_mm": spacing, "metadata": metadata(ds),
            "warnings": notes + _modality_warnings(ds) + _plane_warnings(ds) + ([] if is_hu else _colour_warnings(ds))}


def _modality_warnings(ds) -> list[str]:
    modality = getattr(ds, "Modality", None)
    if modality and modality != "CT":
        return [f"Modality is {modality}, not CT: the model was trained on CT only, so treat the "
                "result with extra caution."]
    return []


def _plane_warnings(ds) -> list[str]:
    """One slice that is not axial: the model reads axial slices only."""
    p = plane(ds)
    if p in (None, "axial"):
        return []
    return [f"This is a {p} slice, but the model reads axial slices (anterior up): its result is "
            "unreliable. Give the axial slice or the axial series (a coronal or sagittal series whose "
            "rows and columns run along the body's axes is resliced to axial)."]


def _series_label(members: list) -> str:
    """One series of a study, for a warning: "series 3 'Portal venous' (axial, 120 slices)"."""
    ds = members[0][1]
    number = getattr(ds, "SeriesNumber", None)
    description = str(getattr(ds, "SeriesDescription", "") or "").strip()
    name = "series" + (f" {number}" if number not in (None, "") else "") + (f" '{description}'" if description else "")
    return f"{name} ({plane(ds) or 'unknown plane'}, {count(len(members), 'slice')})"


MAX_SERIES_LISTED = 8  # a warning names at most this many of a study's other series


def _choose_series(by_series: dict[str, list]) -> tuple[list, list[str]]:
    """Of several series, the axial one with the most slices (reformats and scouts are not what
    the model reads), else the largest; -> (its (file, header) pairs, a warning naming it and the
    others, so that a user who wanted another phase knows which to give)."""
    def rank(item):
        _, members = item
        return plane(members[0][1]) in (None, "axial"), len(members)

    ranked = sorted(by_series.items(), key=rank, reverse=True)
    chosen = ranked[0][1]
    others = [_series_label(members) for _, members in ranked[1:MAX_SERIES_LISTED + 1]]
    if len(ranked) - 1 > MAX_SERIES_LISTED:
        others.append(f"{len(ranked) - 1 - MAX_SERIES_LISTED} more")
    kind = "axial " if plane(chosen[0][1]) == "axial" else ""
    warnings = [f"{len(by_series)} series found; the largest {kind}one was used: {_series_label(chosen)}. "
                f"Also there: {'; '.join(others)}. To segment another (another contrast phase, say), "
                "name it (its number or a word of its description) in the app's Series field or with the "
                "CLI's --series, or give that series' files alone."]
    return chosen, warnings + _mixed_patients_warning([members[0][1] for members in by_series.values()])


def _mixed_patients_warning(headers: list) -> list[str]:
    """One header per series -> a warning where they come from more than one patient (PatientID) or
    study (StudyInstanceUID): the series used may not be the patient the user means."""
    for attribute, what in (("PatientID", "patients"), ("StudyInstanceUID", "studies")):
        values = {str(getattr(ds, attribute, "") or "").strip() for ds in headers} - {""}
        if len(values) > 1:
            return [f"The files come from {len(values)} {what} ({attribute} differs between series): check that "
                    "the series used is the one you mean, or give one patient's study at a time."]
    return []


def _named_series(by_series: dict[str, list], wanted: str, name: str) -> list:
    """The series a user asked for: SeriesNumber or SeriesInstanceUID equal to ``wanted``, else the
    one whose SeriesDescription contains it (any case); an InputError naming the study's series
    when none or several match."""
    def header(members):
        return members[0][1]

    exact = [m for uid, m in by_series.items()
             if wanted in (uid, str(getattr(header(m), "SeriesNumber", "") or ""))]
    found = exact or [m for m in by_series.values()
                      if wanted.lower() in str(getattr(header(m), "SeriesDescription", "") or "").lower()]
    if len(found) == 1:
        return found[0]
    listed = "; ".join(_series_label(m) for m in by_series.values())
    what = "no series" if not found else f"{len(found)} series"
    raise InputError(f"{name}: {what} match '{wanted}'. The study holds: {listed}. Give a series number, "
                     "a SeriesInstanceUID or a word of one description only.")


def _without_localizers(datasets: list) -> tuple[list, int]:
    """A series' (file, header) pairs without localizer (scout) images, which some scanners store in
    the axial series itself: ImageType LOCALIZER, or a plane other than most of the series'.
    -> (the rest, how many were dropped); all of them if nothing else would remain."""
    planes = [plane(ds) for _, ds in datasets]
    common = max(set(planes), key=lambda p: (planes.count(p), p == "axial"))  # ties: axial
    keep = [(f, ds) for (f, ds), p in zip(datasets, planes)
            if p == common and "LOCALIZER" not in [str(t).upper() for t in (getattr(ds, "ImageType", None) or [])]]
    return (keep, len(datasets) - len(keep)) if keep else (datasets, 0)


def _slice_position(ds) -> float | None:
    """Where a slice lies along its series' normal (dicom_geometry.slice_axes: toward the head in
    an axial series), in mm; None without ImagePositionPatient."""
    ipp = getattr(ds, "ImagePositionPatient", None)
    if ipp is None:
        return None
    axes = slice_axes(ds)
    if axes is not None:
        return float(np.dot(axes[2], np.array(ipp, float)))
    return float(ipp[2])


def _slice_source(fname: str, ds, frame: bool) -> dict:
    """Where a slice lies in its series, as a DICOM viewer numbers it (Scan.slice_source): its
    InstanceNumber (for a frame of a multi-frame file, "<file>#k", the frame number k instead) and
    its z in the patient's coordinates (ImagePositionPatient[2], mm), each where known."""
    out = {}
    if frame:
        out["frame"] = int(fname.rsplit("#", 1)[1])
    else:
        try:
            out["instance_number"] = int(ds.InstanceNumber)
        except (AttributeError, TypeError, ValueError):  # absent, empty or not a number
            pass
    ipp = getattr(ds, "ImagePositionPatient", None)
    if ipp is not None and len(ipp) == 3:
        out["z_mm"] = round(float(ipp[2]), 2)
    return out


# Two slices closer than this along the normal share a position; spacing steps above GAP_FACTOR
# times the series' median step are gaps (slices missing).
SAME_POSITION_MM = 0.01
GAP_FACTOR = 1.5


def _one_per_position(datasets: list) -> tuple[list, list[str]]:
    """Ordered (file, header) pairs -> the first at each position, and a warning where any were
    dropped: the same image twice (a study exported twice into one folder), or two images at one
    position (a repeated acquisition), which would count twice in every volume."""
    kept, same_image, same_place, last, seen = [], 0, 0, None, set()
    for f, ds in datasets:
        position, uid = _slice_position(ds), str(getattr(ds, "SOPInstanceUID", "") or "")
        if last is not None and abs(position - last) < SAME_POSITION_MM:
            same_image += (uid, position) in seen
            same_place += (uid, position) not in seen
            continue
        kept.append((f, ds))
        seen.add((uid, position))
        last = position
    warnings = []
    if same_image:
        warnings.append(f"{count(same_image, 'file')} repeated an image already read (the same SOP instance "
                        f"at the same position) and {agree(same_image, 'was', 'were')} read once.")
    if same_place:
        warnings.append(f"{count(same_place, 'image')} lay at the position of another image of the series "
                        "(a repeated acquisition?); the first at each position was kept. If that is the "
                        "wrong one, give the images of one acquisition alone.")
    return kept, warnings


def _gap_warnings(positions: list[float]) -> list[str]:
    """Sorted slice positions (mm) -> a warning where slices are missing: a step over GAP_FACTOR
    times the median. Volumes then weight each slice by the slab it stands for (Scan.slab_mm)."""
    steps = np.diff(positions)
    if len(steps) < 2:
        return []
    dz = float(np.median(steps))
    gaps = steps[steps > GAP_FACTOR * dz]
    if dz <= 0 or not len(gaps):
        return []
    missing = int(round(float(np.sum(gaps)) / dz - len(gaps)))
    return [f"The series has {count(len(gaps), 'gap')} (the largest {float(gaps.max()):.1f} mm, where slices lie "
            f"{dz:.3g} mm apart): about {count(missing, 'slice')} missing. Volumes in mL count each slice for half "
            "the way to its neighbours, so the slices beside a gap stand in for the missing ones (an estimate); "
            "border distances and the NIfTI masks assume even spacing. Give the complete series for exact results."]


def _stack_slices(headers: list, readers: dict, name: str) -> tuple[np.ndarray, list, list[str]]:
    """Ordered (file name, header) pairs -> ((Z, H, W) HU, the pairs read, messages of the files
    that could not be: truncated or corrupt, left out so that one bad file does not cost the
    series). Each file is read and decoded again, one at a time, straight into one array: the
    encoded series is never all in memory. Every file unreadable: the first one's error."""
    out, kept, failed, errors = None, [], [], []
    for f, header in headers:
        try:
            s = _pixels_hu(parse(readers[f](), f), f)
        except InputError as e:  # truncated or corrupt; an undecodable syntax stops the load
            failed.append(f)
            errors.append(e)
            continue
        if out is None:
            out = np.empty((len(headers), *s.shape), s.dtype)
        if s.shape != out.shape[1:]:
            raise InputError(f"{name}: the series mixes slice sizes ({out.shape[2]} x {out.shape[1]} and "
                             f"{s.shape[1]} x {s.shape[0]} in '{f}'); give one series whose slices all "
                             "have the same size.")
        if s.dtype.kind == "f" and out.dtype.kind != "f":  # slices are int16 or float32
            out = out.astype(np.float32)
        out[len(kept)] = s
        kept.append((f, header))
    if not kept:
        raise errors[0]
    messages = []
    if failed:
        listed = ", ".join(f"'{f}'" for f in failed[:3]) + (", ..." if len(failed) > 3 else "")
        reason = str(errors[0]).removeprefix(f"{failed[0]}: ").split(". ")[0].rstrip(".")  # without its advice
        messages.append(f"{count(len(failed), 'slice')} could not be read and {agree(len(failed), 'was', 'were')} "
                        f"left out ({listed}: {reason}); copy or export the series again for all of it.")
    return out[:len(kept)], kept, messages


def read_series(files: list[tuple[str, Callable[[], bytes]]], name: str, limits: LoadLimits,
                series: str | None = None) -> dict:
    """Several DICOM files of one series, or multi-frame files (each read as one file per frame)
    -> dict like :func:`read_single`, pixels (Z, H, W), Z ordered from feet to head by
    ImagePositionPatient (InstanceNumber, or frame order, as a fallback).

    files: (name, reader) pairs. Headers are read first (to choose, order and check the slices),
    then the pixels one file at a time, so memory holds the volume and one file, not the series."""
    datasets, skipped, derived, readers, frame_names = [], [], [], dict(files), set()
    for fname, read in files:
        data = read()  # a file that cannot be read stops the load with its own message
        try:
            header = parse(data, fname, stop_before_pixels=True)
        except InputError:
            skipped.append(fname)
            continue
        if derived_object(header):  # a segmentation (ours too) or a report beside the series
            derived.append(fname)
            continue
        if frame_count(header) > 1 and "Rows" in header:  # Enhanced CT: a series in one file
            frames = _frames_as_files(data, fname)
            readers.update(frames)
            frame_names.update(f for f, _ in frames)
            datasets += [(f, parse(read_frame(), f, stop_before_pixels=True)) for f, read_frame in frames]
        else:
            datasets.append((fname, header))
    # Image objects carry Rows; DICOMDIR, reports and structured reports do not.
    skipped += [f for f, ds in datasets if "Rows" not in ds]
    datasets = [(f, ds) for f, ds in datasets if "Rows" in ds]
    if not datasets and derived:
        raise InputError(f"{name}: {count(len(derived), 'DICOM object')} of segmentations, structures or reports, "
                         "but no CT image. Give the CT series they belong to.")
    if not datasets:
        raise InputError(f"{name}: no DICOM or PNG/JPEG images found among {len(files)} files. Give a "
                         "folder or .zip holding the .dcm files of one CT series, or one series' PNG/JPEG slices.")
    warnings = []
    by_series: dict[str, list] = {}
    for f, ds in datasets:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "unknown")), []).append((f, ds))
    if series:
        datasets = _named_series(by_series, series, name)
    elif len(by_series) > 1:
        datasets, warnings = _choose_series(by_series)
    datasets, localizers = _without_localizers(datasets)
    if localizers:
        warnings.append(f"{count(localizers, 'localizer (scout) image')} in the series "
                        f"{agree(localizers, 'was', 'were')} left out.")
    if len(datasets) > limits.max_slices:
        from ..errors import InputTooLargeError

        raise InputTooLargeError(f"{name}: {len(datasets)} slices, over the limit of {limits.max_slices}.")
    positions = [_slice_position(ds) for _, ds in datasets]
    placed = all(p is not None for p in positions)
    if placed:
        order = np.argsort(positions, kind="stable")
    else:
        order = np.argsort([int(getattr(ds, "InstanceNumber", 0) or 0) for _, ds in datasets], kind="stable")
        warnings.append("ImagePositionPatient missing: slices ordered by InstanceNumber.")
    datasets = [datasets[i] for i in order]
    if placed:
        datasets, repeated = _one_per_position(datasets)
        warnings += repeated
    pixels, datasets, unreadable = _stack_slices(datasets, readers, name)
    warnings += unreadable
    gappy = False
    if placed:  # of the slices read, in order
        positions = [_slice_position(ds) for _, ds in datasets]
        gaps = _gap_warnings(positions)
        warnings, gappy = warnings + gaps, bool(gaps)
    first = datasets[0][1]
    ps = _pixel_spacing(first)
    if placed and len(positions) > 1:
        dz = float(np.median(np.diff(positions)))
    else:
        dz = float(getattr(first, "SpacingBetweenSlices", 0) or getattr(first, "SliceThickness", 0) or 0) or None
    spacing = (dz, *ps) if ps else None
    origin = (axial_display_origin(first, pixels.shape[1:], ps)
              or [float(v) for v in getattr(first, "ImagePositionPatient", [0, 0, 0])])
    series_plane = plane(first)
    sources = [_slice_source(f, ds, f in frame_names) for f, ds in datasets]
    if series_plane in ("coronal", "sagittal") and len(datasets) > 1 and on_patient_axes(first):
        sources = None  # an axial slice of a resliced series is no file or frame of it
        pixels, spacing, origin = reslice_to_axial(pixels, first, datasets[-1][1], ps, dz)
        gappy = False  # the gaps now lie along an in-plane axis
        warnings.append(f"A {series_plane} series: resliced to {pixels.shape[0]} axial slices, as the model "
                        "reads them (no interpolation).")
    elif series_plane not in (None, "axial"):
        warnings += _plane_warnings(first)
    if skipped:
        warnings.append(f"{count(len(skipped), 'non-DICOM or non-image file')} ignored.")
    if derived:
        warnings.append(f"{count(len(derived), 'segmentation, structure-set or report object')} ignored (no CT "
                        f"image in {agree(len(derived), 'it', 'them')}).")
    # The headers of the slices as shown, for writing masks back as DICOM (hepatoscan.dicom_seg):
    # single-frame axial files only (a frame of a multi-frame file, or a resliced slice, is no
    # image of its own to refer to).
    headers = ([ds for _, ds in datasets] if _display_ops(first) is not None and len(datasets) == pixels.shape[0]
               and not any(f in frame_names for f, _ in datasets) else None)
    is_hu = _is_hu(first)
    offset = _ct_numbers(pixels, first)
    if offset is not None:
        pixels, is_hu = _rescale(pixels, 1, -offset), True
        warnings.insert(0, hu_note(offset))
    elif not is_hu:
        pixels = _display_levels(pixels, first)
        first_file = datasets[0][0]
        warnings += _colour_warnings(parse(readers[first_file](), first_file))
    about = metadata(first) | ({"slice_sources": sources} if sources and any(sources) else {})
    return {"pixels": pixels, "is_hu": is_hu, "spacing_mm": spacing, "metadata": about,
            "warnings": _modality_warnings(first) + warnings, "origin_mm": origin, "source_headers": headers,
            "slice_positions_mm": positions if gappy else None}
