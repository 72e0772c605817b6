"""``load_scan``: any supported input -> :class:`hepatoscan.scan.Scan`, with clear errors.

Supported: PNG, JPEG, BMP, TIFF, WebP, GIF (8/16-bit, RGB(A), palette -> grey); an animated GIF,
WebP or PNG (a cine loop) as the series of its frames; one DICOM file (a
multi-frame one, such as Enhanced CT, is a series); a DICOM series as a folder or a .zip; a stack
of image slices (one series exported as PNG/JPEG/...) as a folder or a .zip, or as the pages of one
multi-page TIFF (an ImageJ stack: its voxel size is read); NIfTI .nii / .nii.gz (3D); NRRD
(.nrrd, 3D Slicer's) and MetaImage (.mha, ITK's) volumes or 2D slices, read as NIfTI is (a .mhd or
.nhdr header with its voxel file beside it).
"""
from __future__ import annotations

import gzip
import io
import logging
import zipfile
import zlib
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from ..config import DATA_FILE_SUFFIXES, IMAGE_SUFFIXES, ITK_HEADER_SUFFIXES, ITK_SUFFIXES, NIFTI_SUFFIXES, LoadLimits
from ..errors import InputError, InputTooLargeError, UnsupportedFormatError
from ..scan import Note, Scan
from ..wording import agree, count
from . import dicom
from .image import read_image
from .itk_formats import is_metaimage, is_nrrd, read_metaimage, read_nrrd
from .nifti import GUESSED_AXES_ADVICE, oriented, read_nifti, slice_sources
from .stack import is_image_name, read_image_stack
from .animation import animation_frames, animation_kind, frame_count
from .tiff import imagej_spacing_mm, tiff_page_count, tiff_pages

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".bz2", ".xz")


def _stem(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name or "input"
    for suffix in NIFTI_SUFFIXES + ITK_SUFFIXES + ITK_HEADER_SUFFIXES + (".dcm", ".zip") + IMAGE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or "input"
    return base.rsplit(".", 1)[0] if "." in base[1:] else base


def _is_nifti(data: bytes, name: str) -> bool:
    lower = name.lower()
    if lower.endswith(NIFTI_SUFFIXES):
        return True
    return len(data) > 348 and data[344:348] in (b"n+1\x00", b"n+2\x00")


def _read_path(path: Path, limits: LoadLimits) -> bytes:
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputTooLargeError(f"{path.name}: {size / 1e6:.0f} MB is over the limit of "
                                 f"{limits.max_bytes / 1e6:.0f} MB.")
    return path.read_bytes()


def load_scan(source: str | Path | bytes, filename: str | None = None,
              limits: LoadLimits = LoadLimits(), series: str | None = None) -> Scan:
    """Load a file, folder (DICOM series) or bytes (give ``filename`` for its extension).
    ``series`` chooses one series of a DICOM study (its SeriesNumber, SeriesInstanceUID, or a word of
    its SeriesDescription, such as "portal"); by default the largest axial one is read."""
    if isinstance(source, (bytes, bytearray)):
        name = filename or "upload"
        return _from_bytes(bytes(source), name, limits, series)
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder. Check the path and try again.")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if len(files) > limits.max_zip_entries:
            raise InputTooLargeError(f"{path.name}: {len(files)} files, over the limit of {limits.max_zip_entries}.")
        if not files:
            raise InputError(f"{path}: the folder is empty. Give a folder holding one DICOM series, or one series' slices as PNG or JPEG files.")
        total = sum(p.stat().st_size for p in files)
        if total > limits.max_bytes:
            raise InputTooLargeError(f"{path.name}: {total / 1e6:.0f} MB, over the limit of {limits.max_bytes / 1e6:.0f} MB.")
        return _series_scan([(str(p.relative_to(path)), _file_reader(p)) for p in files], path.name, limits, series)
    return _from_bytes(_read_path(path, limits), filename or path.name, limits, series, _beside(path, limits))


def _beside(path: Path, limits: LoadLimits) -> Callable[[str], bytes]:
    """The data file a detached header (.mhd, .nhdr) names, read from the header's folder (and only
    from there: a header cannot make the server read another of its files)."""
    def read(name: str) -> bytes:
        found = path.parent / _data_file_name(path.name, name)
        if not found.is_file():
            raise _missing_data_file(path.name, name)
        return _read_path(found, limits)
    return read


def _data_file_name(header: str, name: str) -> str:
    """The relative path a header gives its voxel file, or InputError where it points outside the
    header's folder (absolute, "..", a drive), which is refused."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ".." in parts or ":" in name:
        raise InputError(f"{header}: its voxel file is named '{name}', outside the header's folder, which is not "
                         "read. Save the volume as one file (.nrrd, .mha or .nii.gz), or with its voxel file beside it.")
    return "/".join(parts)


def _missing_data_file(header: str, name: str) -> InputError:
    return InputError(f"{header}: its voxels are in {name}, which is not beside it. Give both files together: in "
                      "one folder (CLI), chosen at once (app), or in one .zip.")


def _from_bytes(data: bytes, name: str, limits: LoadLimits, series: str | None = None,
                data_file: Callable[[str], bytes] | None = None) -> Scan:
    """One file's bytes -> Scan; ``data_file``: where a detached volume header (.mhd, .nhdr) finds the
    file its voxels are in (None: none can be had, as for one uploaded file)."""
    if not data:
        raise InputError(f"{name}: the file is empty (0 bytes). Export or copy it again.")
    if len(data) > limits.max_bytes:
        raise InputTooLargeError(f"{name}: {len(data) / 1e6:.0f} MB is over the limit of "
                                 f"{limits.max_bytes / 1e6:.0f} MB.")
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
        return _series_scan(_unzip(data, name, limits), name, limits, series)
    if _is_nifti(data, name):
        return _nifti_scan(data, name, limits)
    if is_nrrd(data, name):
        return _volume_scan(read_nrrd(data, name, partial(_check_volume_size, name=name, limits=limits), data_file),
                            name, "nrrd", limits)
    if is_metaimage(data, name):
        return _volume_scan(read_metaimage(data, name, partial(_check_volume_size, name=name, limits=limits),
                                           data_file), name, "metaimage", limits)
    if dicom.is_dicom(data) or name.lower().endswith(".dcm"):
        if dicom.is_multiframe(data, name):  # an Enhanced CT series in one file (or a SEG): read as a series
            return _dicom_series_scan([(name, lambda: data)], name, limits, series)
        d = dicom.read_single(data, name)
        return _checked(Scan(d["pixels"], d["is_hu"], d["spacing_mm"], "dicom", _stem(name),
                             d["metadata"], d["warnings"]), limits)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        raise UnsupportedFormatError(f"{name}: only .zip archives are read; repack the DICOM series as .zip.")
    n_pages = tiff_page_count(data)
    if n_pages > 1:
        return _tiff_pages_scan(data, name, limits, n_pages)
    n_frames = frame_count(data)
    if n_frames > 1:
        return _animation_scan(data, name, limits, n_frames)
    image = read_image(data, name, limits)
    return _checked(Scan(image.pixels[None].astype(np.float32), image.hu_offset is not None, None, image.format,
                         _stem(name), warnings=image.warnings), limits)


def _file_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise InputError(f"{path.name}: cannot be read ({e}). Check the file's permissions.") from e
    return read


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return zf.read(info)
        except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError, zlib.error) as e:
            raise InputError(f"{name}: cannot read '{info.filename}' from the archive ({e}). "
                             "Create it again.") from e
    return read


def _unzip(data: bytes, name: str, limits: LoadLimits) -> list[tuple[str, Callable[[], bytes]]]:
    """A .zip -> (entry name, reader) for each file, after the safety checks; entries are
    decompressed one at a time when read."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise InputError(f"{name}: the .zip is corrupt or truncated ({e}). Create it again.") from e
    if len(infos) > limits.max_zip_entries:
        raise InputTooLargeError(f"{name}: {len(infos)} files in the archive, over the limit of "
                                 f"{limits.max_zip_entries}. Zip one series at a time.")
    total = sum(i.file_size for i in infos)
    if total > limits.max_zip_uncompressed_bytes:
        raise InputTooLargeError(f"{name}: the archive unpacks to {total / 1e9:.1f} GB, over the limit "
                                 f"of {limits.max_zip_uncompressed_bytes / 1e9:.1f} GB.")
    files = []
    for info in infos:
        entry = info.filename.replace("\\", "/")
        if entry.startswith("/") or ".." in PurePosixPath(entry).parts or (len(entry) > 1 and entry[1] == ":"):
            raise InputError(f"{name}: unsafe path '{info.filename}' in the archive (absolute or '..'). "
                             "Zip the series folder itself, with relative paths.")
        base = PurePosixPath(entry).name
        if base.startswith(".") or entry.startswith("__MACOSX/"):
            continue
        if base.lower().endswith(ARCHIVE_SUFFIXES) and not base.lower().endswith((".nii.gz", ".raw.gz")):
            raise UnsupportedFormatError(f"{name}: the archive contains another archive ('{entry}'). "
                                         "Nested archives are not read: unpack it and zip the files themselves "
                                         "(DICOM or image slices).")
        files.append((entry, _zip_reader(zf, info, name)))
    if not files:
        raise InputError(f"{name}: the archive holds no files. Zip the .dcm files of one series, or its "
                         "PNG/JPEG slices.")
    return files


def _series_scan(files: list[tuple[str, Callable[[], bytes]]], name: str, limits: LoadLimits,
                 series: str | None = None) -> Scan:
    if len(files) == 1:
        data = files[0][1]()
        if not dicom.is_dicom(data):
            try:
                return _from_bytes(data, files[0][0], limits, series)
            except InputError as e:  # say which archive or folder the one file came from
                raise type(e)(f"{name}: {e}") from e
        files = [(files[0][0], lambda: data)]
    images = [f for f in files if is_image_name(f[0])]
    if len(images) > 1 and not any(dicom.is_dicom(read()) for f, read in files if not is_image_name(f)):
        return _image_stack_scan(images, len(files) - len(images), name, limits)
    volumes = [f for f in files if f[0].lower().endswith(NIFTI_SUFFIXES + ITK_SUFFIXES + ITK_HEADER_SUFFIXES)]
    named = {f for f, _ in volumes}  # nor a header's voxel file (read with it), which may be hundreds of MB
    if volumes and not images and not any(dicom.is_dicom(read()) for f, read in files
                                          if f not in named and not f.lower().endswith(DATA_FILE_SUFFIXES)):
        return _volume_in_archive(volumes, len(files) - len(volumes), name, limits, files)
    return _dicom_series_scan(files, name, limits, series)



def _entry_beside(header: str, files: list[tuple[str, Callable[[], bytes]]], served: set[str]) -> Callable[[str], bytes]:
    """The data file a detached header (an entry of a zip or folder) names, from the entries beside
    it; the entries read are added to ``served``."""
    readers = dict(files)
    folder = PurePosixPath(header).parent

    def read(name: str) -> bytes:
        entry = (folder / _data_file_name(PurePosixPath(header).name, name)).as_posix()
        if entry not in readers:
            raise _missing_data_file(PurePosixPath(header).name, name)
        served.add(entry)
        return readers[entry]()
    return read


def _volume_in_archive(volumes: list[tuple[str, Callable[[], bytes]]], n_other: int, name: str,
                       limits: LoadLimits, files: list[tuple[str, Callable[[], bytes]]]) -> Scan:
    """A folder or .zip whose images are NIfTI (NRRD, MetaImage) volumes: the one volume, read as if
    given alone (the other files ignored, with a warning); several are refused, as one input is one study."""
    if len(volumes) > 1:
        listed = ", ".join(f"'{PurePosixPath(f).name}'" for f, _ in volumes[:4]) + (", ..." if len(volumes) > 4 else "")
        raise InputError(f"{name}: {count(len(volumes), 'volume')} ({listed}); one input is one study. Give "
                         "each volume on its own (the CLI takes several files, or a folder of them, at once).")
    entry, read = volumes[0]
    served: set[str] = set()
    try:
        scan = _from_bytes(read(), entry, limits, None, _entry_beside(entry, files, served))
    except InputError as e:  # say which archive or folder the volume came from
        raise type(e)(f"{name}: {e}") from e
    n_other -= len(served)
    if n_other:
        scan.warnings.append(f"{count(n_other, 'other file')} beside the volume {agree(n_other, 'was', 'were')} "
                             "ignored.")
    return scan


def _dicom_series_scan(files: list[tuple[str, Callable[[], bytes]]], name: str, limits: LoadLimits,
                       series: str | None = None) -> Scan:
    d = dicom.read_series(files, name, limits, series)
    fmt = "dicom-series" if d["pixels"].shape[0] > 1 else "dicom"
    return _checked(Scan(d["pixels"], d["is_hu"], d["spacing_mm"], fmt, _stem(name), d["metadata"],
                         d["warnings"], geometry={"origin_mm": d.get("origin_mm"),
                                                  "source_headers": d.get("source_headers"),
                                                  "slice_positions_mm": d.get("slice_positions_mm")}), limits)


def _image_stack_scan(images: list[tuple[str, Callable[[], bytes]]], n_ignored: int, name: str,
                      limits: LoadLimits) -> Scan:
    """PNG/JPEG/... slices of one series -> one Scan of grey levels, or of HU where 16-bit or float
    slices hold CT numbers (no spacing: image files carry none)."""
    d = read_image_stack(images, name, limits)
    warnings = d["warnings"]
    if n_ignored:
        what = agree(n_ignored, "is not an image was", "are not images were")
        warnings.append(f"{count(n_ignored, 'file')} that {what} ignored.")
    log.info("%s: %d image slices read as one stack, in file-name order", name, len(images))
    return _checked(Scan(d["pixels"], d["is_hu"], None, d["format"], _stem(name), _stack_metadata(d),
                         warnings=warnings + _sizes_note(d)), limits)


def _stack_metadata(d: dict) -> dict:
    """read_image_stack's result -> the Scan's metadata: its files, and each image's size where they differ."""
    return {"slice_files": d["files"], **({"image_sizes": d["image_sizes"]} if d["image_sizes"] else {})}


def _sizes_note(d: dict) -> list[str]:
    """[a Note that the images differ in size, so are separate images], or [] where they do not."""
    sizes = d["image_sizes"]
    if not sizes:
        return []
    small, large = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
    return [Note(f"The {len(sizes)} images differ in size ({small[1]} x {small[0]} to {large[1]} x {large[0]} px), "
                 "so they are separate images, not one series' slices: each was segmented, measured and is "
                 "shown at its own size, and there is no volume.")]


PLAUSIBLE_PIXEL_MM = (0.05, 50.0)  # in-plane pixel size of CT; a microscope's stack is far finer


def _tiff_pages_scan(data: bytes, name: str, limits: LoadLimits, n_pages: int) -> Scan:
    """A multi-page TIFF -> one Scan of its pages, read as one series' slices (io.stack: CT numbers
    or display grey, one window for the series), in page order, with the voxel size an ImageJ stack
    gives (io.tiff.imagej_spacing_mm) where it is plausible for CT."""
    d = read_image_stack(tiff_pages(data, _stem(name), n_pages), name, limits)
    warnings = d["warnings"]
    spacing = imagej_spacing_mm(data)
    if spacing is not None and not all(PLAUSIBLE_PIXEL_MM[0] <= v <= PLAUSIBLE_PIXEL_MM[1] for v in spacing[1:]):
        warnings.append(f"The file's ImageJ pixel size ({spacing[1]:.3g} x {spacing[2]:.3g} mm) is not plausible "
                        "for CT and was ignored: give the pixel spacing if you know it.")
        spacing = None
    log.info("%s: %d TIFF pages read as one stack, in page order", name, n_pages)
    if d["image_sizes"]:
        spacing = None  # one voxel size for pages of different sizes: not a series
    return _checked(Scan(d["pixels"], d["is_hu"], spacing, d["format"], _stem(name), _stack_metadata(d),
                         warnings=warnings + _sizes_note(d)), limits)


def _animation_scan(data: bytes, name: str, limits: LoadLimits, n_frames: int) -> Scan:
    """An animated GIF, WebP or PNG -> one Scan of its frames, read as one series' slices (io.stack:
    one window for the series), in frame order, with no spacing and a note that says so. An
    animation that plays the series forth and back (its second half the first reversed) keeps the
    first half."""
    if n_frames > limits.max_slices:
        raise InputTooLargeError(f"{name}: {n_frames} frames, over the limit of {limits.max_slices} slices. "
                                 "Give one series at a time.")
    kind, fmt = animation_kind(data)
    d = read_image_stack(animation_frames(data, _stem(name)), name, limits)
    log.info("%s: %d frames of an animated %s read as one stack, in frame order", name, n_frames, kind)
    kept = _one_way(d["pixels"])
    if kept < n_frames:
        d["pixels"], d["files"] = d["pixels"][:kept], d["files"][:kept]
        d["image_sizes"] = d["image_sizes"][:kept] if d["image_sizes"] else None
        note = Note(f"An animated {kind} of {n_frames} frames (a cine loop) that plays the series forth and back: "
                    f"its first {kept} frames were read as one series' slices, in frame order, the rest being "
                    "the same slices again.")
    else:
        note = Note(f"An animated {kind} of {n_frames} frames (a cine loop or a scroll through a series): its "
                    "frames were read as one series' slices, in frame order.")
    return _checked(Scan(d["pixels"], d["is_hu"], None, f"{fmt}-stack", _stem(name), _stack_metadata(d),
                         warnings=[note, *d["warnings"], *_sizes_note(d)]), limits)


ONE_WAY_MAX_GREY_DIFF = 2.0  # mean |difference| of frames taken for the same slice (a lossy WebP's recoding)


def _one_way(frames: np.ndarray) -> int:
    """(N, H, W) frames of an animation -> how many to keep: the first half (and its turning frame)
    where the rest is the first half reversed (a forth-and-back loop), else all N."""
    n = len(frames)
    half = n // 2
    if n < 3:
        return n
    for i in range(half):
        if np.abs(frames[i].astype(np.float32) - frames[n - 1 - i]).mean() > ONE_WAY_MAX_GREY_DIFF:
            return n
    return n - half


class _ChunkedGzip(io.RawIOBase):
    """A gzip stream whose ``readinto`` decompresses in chunks straight into the caller's buffer.
    (``GzipFile.readinto`` reads the whole request into a temporary bytes object first, which
    doubles the memory needed to read a volume.)"""

    CHUNK = 1 << 20

    def __init__(self, data: bytes):
        super().__init__()
        self._gz = gzip.GzipFile(fileobj=io.BytesIO(data))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._gz.seek(offset, whence)

    def tell(self) -> int:
        return self._gz.tell()

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view):
            n = self._gz.readinto(view[done:done + self.CHUNK])
            if not n:
                break
            done += n
        return done


def _nifti_header_size(data: bytes) -> int | None:
    """sizeof_hdr of a .nii or .nii.gz: 348 for NIfTI-1, 540 for NIfTI-2 (either byte order)."""
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:4096], 4) if data[:2] == b"\x1f\x8b" else data[:4]
    except zlib.error:
        return None
    if len(head) < 4:
        return None
    little, big = int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")
    return little if little in (348, 540) else big if big in (348, 540) else None


def _open_nifti(data: bytes, name: str):
    """Bytes of a .nii or .nii.gz -> nibabel image whose voxels are read lazily from the stream,
    so the decompressed file is never held in memory beside the voxel array."""
    from .imports import nibabel

    nib = nibabel()
    errors = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
              nib.wrapstruct.WrapStructError, ValueError, TypeError, EOFError, OSError, zlib.error)
    classes = (nib.Nifti2Image, nib.Nifti1Image) if _nifti_header_size(data) == 540 else (nib.Nifti1Image, nib.Nifti2Image)
    for cls in classes:  # the header's own version first: no "sizeof_hdr should be 348" noise for NIfTI-2
        stream = _ChunkedGzip(data) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)
        holder = nib.FileHolder(fileobj=stream)
        try:
            return cls.from_file_map({"header": holder, "image": holder})
        except errors:
            continue
    raise InputError(f"{name}: not a valid NIfTI file (corrupt, truncated or another format). "
                     "Export the volume again as .nii or .nii.gz.")


def _check_volume_size(shape: tuple[int, ...], itemsize: int, name: str, limits: LoadLimits) -> None:
    """A volume's (I, J, K) voxel counts (K across slices) and bytes a voxel, before its voxels are
    read -> InputTooLargeError where they pass the limits."""
    n_vox = int(np.prod(shape[:3]))
    if shape[2] > limits.max_slices or shape[0] * shape[1] > limits.max_pixels_per_slice:
        raise InputTooLargeError(f"{name}: volume {tuple(shape[:3])} exceeds the limits "
                                 f"({limits.max_slices} slices, {limits.max_pixels_per_slice:,} pixels a slice).")
    if n_vox * itemsize > limits.max_bytes:
        raise InputTooLargeError(f"{name}: unpacks to {n_vox * itemsize / 1e6:.0f} MB, "
                                 f"over the limit of {limits.max_bytes / 1e6:.0f} MB.")


def _nifti_scan(data: bytes, name: str, limits: LoadLimits) -> Scan:
    img = _open_nifti(data, name)
    shape = img.shape
    if len(shape) >= 4 and any(s > 1 for s in shape[3:]):
        raise UnsupportedFormatError(f"{name}: a {len(shape)}D NIfTI {tuple(shape)}; HepatoScan reads one "
                                     "3D CT volume. Save a single 3D volume and try again.")
    if len(shape) < 3:
        raise InputError(f"{name}: NIfTI of shape {tuple(shape)} is not a 3D volume.")
    _check_volume_size(shape, img.get_data_dtype().itemsize, name, limits)
    return _volume_scan(img, name, "nifti", limits)


def _volume_scan(img, name: str, fmt: str, limits: LoadLimits) -> Scan:
    """A 3D nibabel image (a NIfTI, or a NRRD or MetaImage volume given its RAS affine) -> Scan,
    shown the radiological way; ``fmt`` names the file's format."""
    n_vox = int(np.prod(img.shape[:3]))
    img, unoriented = oriented(img, fmt)
    try:
        pixels, spacing, geometry = read_nifti(img)
    except (EOFError, ValueError, OSError, TypeError, zlib.error) as e:
        raise InputError(f"{name}: the NIfTI data are truncated or corrupt ({e}); {n_vox:,} voxels "
                         "were declared. Export it again.") from e
    if pixels.dtype.kind == "f" and all(np.isnan(s).all() for s in pixels):
        raise InputError(f"{name}: every value is NaN; the file holds no image.")
    try:
        pixels, is_hu, warnings = _nifti_intensities(pixels)
    except InputError as e:
        raise InputError(f"{name}: {e}") from e
    sources = slice_sources(img)
    scan = Scan(pixels, is_hu, spacing, fmt, _stem(name), {"slice_sources": sources} if sources else {},
                warnings=warnings + (unoriented or _orientation_warning(img, fmt)), geometry=geometry)
    return _checked(scan, limits)


def _orientation_warning(img, fmt: str = "nifti") -> list[str]:
    """A NIfTI whose qform and sform codes are both 0 states no orientation: nibabel then takes its
    axes as left-anterior-superior ones, which holds for some files and not others (LiTS 117 so
    saved is shown upside down: liver 512 mL instead of 638). A NRRD without a patient space (only
    ``spacings``) is read the same way (itk_formats)."""
    header = img.header
    if int(header["qform_code"]) or int(header["sform_code"]):
        return []
    if fmt == "nrrd":
        return ["The NRRD states no patient space (no 'space' and 'space directions' fields), so its axes are "
                "guessed. " + GUESSED_AXES_ADVICE]
    return ["The NIfTI states no orientation (qform and sform codes are 0), so its axes are guessed. "
            + GUESSED_AXES_ADVICE]


# CT in HU puts air at about -1000. A volume with no negative value whose darkest voxels lie near 0
# is most likely HU + 1024 stored unsigned without its rescale intercept (scl_inter).
UNSIGNED_HU_OFFSET = 1024
UNSIGNED_AIR_MAX = 200  # its 0.5th percentile (air) lies within this of offset - 1024
# The offsets recognised: HU + 1024 (the usual DICOM intercept), and HU + 32768 (int16 stored as
# uint16 by shifting its sign bit, as some converters do), where air lies near 31744.
UNSIGNED_HU_OFFSETS = (UNSIGNED_HU_OFFSET, 32768)
# A volume of a few small whole numbers (0 background, 1 liver, 2 tumor...) is a label map.
LABEL_MAP_MAX_VALUE = 20
LABEL_MAP_MAX_VALUES = 8
# A CT in HU spans at least fat (-100) to soft tissue (+50) even cropped to the liver; a volume with
# negative values and a range this narrow was normalised (scaled to -1..1, or z-scored: about -2..+6).
NORMALISED_MAX_RANGE = 20.0


def _slicewise(pixels: np.ndarray, dtype, fn) -> np.ndarray:
    """``fn`` applied to each slice of (Z, H, W) ``pixels`` into a new array of ``dtype``: no
    whole-volume temporary."""
    out = np.empty(pixels.shape, dtype)
    for k in range(len(pixels)):
        out[k] = fn(pixels[k])
    return out


def _nifti_intensities(pixels: np.ndarray) -> tuple[np.ndarray, bool, list[str]]:
    """(Z, H, W) NIfTI values -> (pixels, is_hu, warnings): HU as they are; 0..255 as display grey
    levels; 0..1 (normalised) as grey levels x 255; a narrow range with negative values (normalised:
    -1..1, z-scored) stretched to grey levels 0..255; HU + 1024 (or + 32768) stored unsigned shifted back to HU;
    a label map refused."""
    lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
    if lo < 0 and hi - lo <= NORMALISED_MAX_RANGE and pixels.dtype.kind == "f":
        # Black from the air's level (0.5th percentile) down: air and a scanner's padding below it
        # (HU -1024 outside the field of view, a few grey levels up from the lowest value) are one
        # black, as in any export, not a grey frame read as a viewer's panel.
        black = max(lo, float(np.nanpercentile(pixels[::4, ::8, ::8], 0.5)))
        scale = 255.0 / (hi - black)
        return _slicewise(pixels, np.float32, lambda s: np.clip((s - black) * scale, 0, 255)), False, [
            f"Values lie in {lo:.3g} to {hi:.3g}, far too narrow a range for HU (air is about -1000, bone "
            "above +300): the volume looks normalised, so it is read as display grey levels stretched to "
            "0..255, and the window is estimated from each slice. Give the volume in HU for the model's own "
            "window."]
    if lo < 0 or hi <= lo:
        return pixels, True, []
    if hi <= LABEL_MAP_MAX_VALUE:
        values = np.unique(pixels[::2, ::4, ::4])
        if len(values) <= LABEL_MAP_MAX_VALUES and np.all(values == np.round(values)):
            listed = ", ".join(f"{v:g}" for v in values)
            raise InputError(f"the volume holds only the values {listed}: it looks like a segmentation (a label "
                             "map), not a CT. Give the CT volume itself (in HU).")
    if hi <= 1.0 and pixels.dtype.kind == "f":
        return _slicewise(pixels, np.float32, lambda s: s * 255.0), False, ["Values lie in 0..1 (a normalised volume), so they are read as display grey levels "
                            "scaled to 0..255, not HU; the window is estimated from each slice. Give the volume "
                            "in HU for the model's own window."]
    if hi <= 255:
        return pixels, False, ["Values lie in 0..255, so the volume is read as display grey levels, not HU; "
                               "the window is estimated from each slice."]
    sample = pixels[::4, ::8, ::8]
    air = float(np.nanpercentile(sample, 0.5))
    for offset in UNSIGNED_HU_OFFSETS:
        if abs(air - (offset - UNSIGNED_HU_OFFSET)) < UNSIGNED_AIR_MAX and hi - offset <= 32767:
            dtype = np.int16 if pixels.dtype.kind in "iu" else np.float32
            return _slicewise(pixels, dtype, lambda s: s.astype(np.float32) - offset), True, [
                f"No value is negative ({lo:g} to {hi:g}), but CT in HU puts air at about -1000: read as HU + "
                f"{offset} stored without its rescale intercept, and shifted back. If the volume is something "
                "else, save it in HU."]
    return pixels, True, [f"No value is negative ({lo:g} to {hi:g}), but CT in HU puts air at about -1000: the "
                          "values are read as HU; check that the volume is a CT in HU."]


def _checked(scan: Scan, limits: LoadLimits) -> Scan:
    """Shared validation of every loaded scan."""
    z, h, w = scan.pixels.shape
    if min(h, w) < limits.min_side_px:
        raise InputError(f"{scan.name}: the image is {w} x {h} pixels; at least {limits.min_side_px} "
                         "are needed on each side. Give the full-size slice.")
    if h * w > limits.max_pixels_per_slice:
        raise InputTooLargeError(f"{scan.name}: {w} x {h} pixels a slice, over the limit of "
                                 f"{limits.max_pixels_per_slice:,}.")
    if z > limits.max_slices:
        raise InputTooLargeError(f"{scan.name}: {z} slices, over the limit of {limits.max_slices}.")
    if z * h * w > limits.max_voxels:
        raise InputTooLargeError(f"{scan.name}: {z} x {w} x {h} = {z * h * w:,} voxels, over the limit of "
                                 f"{limits.max_voxels:,}. Give a smaller part of the study (fewer slices).")
    pixels = scan.pixels
    if pixels.dtype.kind == "f" and not (np.isfinite(pixels.min()) and np.isfinite(pixels.max())):
        nan = ~np.isfinite(pixels)
        if nan.all():
            raise InputError(f"{scan.name}: every value is NaN or infinite; the file holds no image.")
        fill = -1024.0 if scan.is_hu else 0.0
        scan.pixels = pixels = np.where(nan, fill, pixels).astype(np.float32)
        scan.warnings.append(f"{int(nan.sum()):,} NaN/infinite values were replaced by {fill:g}.")
    if float(pixels.max()) == float(pixels.min()):
        raise InputError(f"{scan.name}: every pixel has the same value ({float(pixels.min()):g}): "
                         "the image is blank. Check the export.")
    if pixels.dtype.kind not in "iu" and pixels.dtype != np.float32:
        scan.pixels = pixels.astype(np.float32)  # integers stay as stored: int16 HU is half of float32
    return scan
