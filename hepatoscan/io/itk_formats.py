"""NRRD (.nrrd, 3D Slicer's volume format) and MetaImage (.mha, ITK's and grand-challenge.org's)
volumes -> a nibabel image with a RAS affine, read from then on exactly as a NIfTI is.

A header that keeps its voxels in another file (.mhd + .raw, as SLIVER07 ships its liver CTs; .nhdr
+ .raw) is read where that file can be had (``data_file``: given together, in a folder or a zip),
and refused with what to give otherwise.
Both formats place voxels in LPS coordinates (NRRD says so in its ``space`` field) and store the
first axis fastest.
"""
from __future__ import annotations

import bz2
import gzip
import re
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError, UnsupportedFormatError

NRRD_MAGIC = b"NRRD000"
# MetaImage headers open with one of these keys (ITK writes ObjectType first; others NDims).
METAIMAGE_FIRST_KEYS = (b"ObjectType", b"NDims", b"Comment", b"ObjectSubType")
MAX_HEADER_BYTES = 64 * 1024  # a header longer than this is no header

# NRRD type names (its spec lists the C spellings) -> NumPy dtype kind and size.
_NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4", "double": "f8",
}
_MET_TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
              "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8",
              "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
# NRRD spaces -> the sign of each axis that turns them into RAS (None: no patient orientation).
_NRRD_SPACES = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
}
LPS_TO_RAS = (-1, -1, 1)


def is_nrrd(data: bytes, name: str) -> bool:
    """Whether ``data`` is a NRRD: a .nrrd/.nhdr name, or its magic."""
    return name.lower().endswith((".nrrd", ".nhdr")) or data[:7] == NRRD_MAGIC


def is_metaimage(data: bytes, name: str) -> bool:
    """Whether ``data`` is a MetaImage: a .mha/.mhd name, or a header that opens as one."""
    return name.lower().endswith((".mha", ".mhd")) or data.lstrip()[:14].startswith(METAIMAGE_FIRST_KEYS)


def _nibabel_image(voxels_ijk: np.ndarray, affine_ras: np.ndarray | None, zooms: tuple[float, float, float]):
    """(I, J, K) voxels and their RAS affine (None: unknown, sform and qform codes 0, as a NIfTI that
    states none) -> nibabel.Nifti1Image."""
    from .imports import nibabel

    nib = nibabel()
    img = nib.Nifti1Image(voxels_ijk, None if affine_ras is None else affine_ras)
    if affine_ras is None:
        img.header.set_zooms(zooms)
        img.set_sform(None, code=0)
        img.set_qform(None, code=0)
    else:
        img.set_sform(affine_ras, code=1)
        img.set_qform(affine_ras, code=1)
    return img


def _affine(columns: np.ndarray, origin: np.ndarray, to_ras: tuple[int, int, int]) -> np.ndarray:
    """(3, 3) axis vectors as columns (direction x spacing, mm) and the first voxel's centre, in a
    space whose axes ``to_ras`` signs turn into RAS -> 4x4 RAS affine."""
    affine = np.eye(4)
    affine[:3, :3] = columns
    affine[:3, 3] = origin
    return np.diag([*to_ras, 1.0]) @ affine


def _voxels(payload: bytes, dtype: np.dtype, sizes: list[int], name: str) -> np.ndarray:
    """Decoded bytes -> array of ``sizes``, axes in the header's order ((I, J, K); first axis fastest,
    as both formats store it)."""
    n = int(np.prod(sizes))
    if len(payload) < n * dtype.itemsize:
        raise InputError(f"{name}: the voxel data are truncated ({len(payload):,} bytes for {n:,} voxels of "
                         f"{dtype.itemsize} bytes). Save the volume again.")
    flat = np.frombuffer(payload, dtype, count=n)
    return flat.reshape(sizes[::-1]).transpose(*range(len(sizes) - 1, -1, -1)).astype(dtype.newbyteorder("="), copy=False)


def _decompress(body: bytes, kind: str, name: str) -> bytes:
    try:
        if kind in ("gzip", "gz"):
            return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else zlib.decompress(body)
        if kind in ("bzip2", "bz2"):
            return bz2.decompress(body)
        if kind == "zlib":
            return zlib.decompress(body)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise InputError(f"{name}: the compressed voxel data are corrupt or truncated ({e}). Save the volume "
                         "again.") from e
    return body


def _volume_sizes(sizes: list[int], name: str) -> list[int]:
    """A header's sizes -> the three of a 3D volume (trailing single sizes dropped; a 2D image, one
    slice, gains a third of 1), or an error."""
    sizes = list(sizes)
    while len(sizes) > 3 and sizes[-1] == 1:
        sizes.pop()
    if len(sizes) == 2:
        sizes.append(1)
    if sizes and min(sizes) < 1:
        raise InputError(f"{name}: the header gives the volume's sizes as {' '.join(map(str, sizes))}: every size must "
                         "be 1 or more. The file is damaged or was written wrongly; save the volume again.")
    if len(sizes) != 3:
        raise UnsupportedFormatError(f"{name}: a {len(sizes)}D volume {tuple(sizes)}; HepatoScan reads one 3D CT "
                                     "volume. Save a single 3D volume (one time point, one channel) and try again.")
    return sizes


DataFile = Callable[[str], bytes]  # the name a header gives its voxels' file -> its bytes (InputError if absent)


def _detached(name: str, what: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{name}: the header keeps its voxels in another file ({what}). Give both files together (the app: choose "
        "both at once; or a .zip or folder holding both), or a single-file volume: .nrrd, .mha (SimpleITK: "
        "WriteImage(image, 'ct.mha')) or NIfTI (.nii.gz).")


def _data_file_bytes(name: str, what: str, data_file: DataFile | None) -> bytes:
    """The bytes of the file a header names for its voxels, or the error that says what to give."""
    if data_file is None:
        raise _detached(name, what)
    if what.upper().startswith("LIST") or "%" in what:
        raise UnsupportedFormatError(f"{name}: the header spreads its voxels over several files ({what}); "
                                     "save the volume as one file (.nrrd, .mha or .nii.gz).")
    return data_file(what)


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan", text, re.I)]


SizeCheck = Callable[[tuple[int, int, int], int], None]  # (I, J, K) voxels, bytes a voxel -> raises if too large


def _nrrd_header(data: bytes, name: str) -> tuple[dict[str, str], dict[str, str], int]:
    """A NRRD's header -> (its fields, lower-cased keys; its key/value pairs, ``key:=value``, as
    3D Slicer writes a segmentation's segments; the offset of the voxel data)."""
    end = data.find(b"\n\n", 0, MAX_HEADER_BYTES)
    crlf = data.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
    if end < 0 and crlf < 0:
        if len(data) < MAX_HEADER_BYTES and re.search(rb"^data ?file:", data, re.I | re.M):
            end, crlf = len(data), -1  # a detached header (.nhdr) may end with the file itself
        else:
            raise InputError(f"{name}: the NRRD header does not end (no blank line). The file is not a NRRD volume "
                             "or is damaged: save it again.")
    end, skip = (crlf, 4) if crlf >= 0 and (end < 0 or crlf < end) else (end, 2)
    fields: dict[str, str] = {}
    pairs: dict[str, str] = {}
    for line in data[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#"):
            continue
        if ":=" in line:
            key, value = line.split(":=", 1)
            pairs[key.strip()] = value.strip()
        elif ": " in line:
            key, value = line.split(": ", 1)
            fields[key.strip().lower()] = value.strip()
    return fields, pairs, end + skip


def _nrrd_voxels(data: bytes, name: str, check: SizeCheck, layered: bool, data_file: DataFile | None = None):
    """A NRRD -> ((I, J, K) voxels, or (I, J, K, L) where ``layered`` and a first, non-spatial axis
    lists L layers (3D Slicer's segmentation of overlapping segments), their RAS affine or None
    (no patient space), the voxel sizes where it is None, the key/value pairs)."""
    fields, pairs, offset = _nrrd_header(data, name)
    detached = fields.get("data file") or fields.get("datafile")
    if detached and data_file is None:
        raise _detached(name, detached)
    kind = _NRRD_TYPES.get(fields.get("type", "").lower())
    if kind is None:
        raise UnsupportedFormatError(f"{name}: NRRD voxel type '{fields.get('type')}' is not read; save the volume "
                                     "with integer or float voxels (short, for CT).")
    encoding = fields.get("encoding", "raw").lower()
    if encoding not in ("raw", "gzip", "gz", "bzip2", "bz2"):
        raise UnsupportedFormatError(f"{name}: NRRD encoding '{encoding}' is not read; save the volume with raw "
                                     "or gzip encoding (3D Slicer's default).")
    sizes = [int(v) for v in fields.get("sizes", "").split()]
    directions = re.findall(r"\(([^)]*)\)|none", fields.get("space directions", ""))
    layers = 1
    if layered and len(sizes) == 4 and len(directions) == 4 and not directions[0]:
        layers, sizes, directions = sizes[0], sizes[1:], directions[1:]
    sizes = _volume_sizes(sizes, name)
    dtype = np.dtype(kind).newbyteorder(">" if fields.get("endian", "little").lower() == "big" else "<")
    check(tuple(sizes), dtype.itemsize * layers)
    body = _data_file_bytes(name, detached, data_file) if detached else data[offset:]
    voxels = _voxels(_decompress(body, encoding, name), dtype, [layers, *sizes] if layers > 1 else sizes, name)
    if layers > 1:  # (L, I, J, K) as stored, the layer fastest -> (I, J, K, L)
        voxels = np.moveaxis(voxels, 0, -1)
    to_ras = _NRRD_SPACES.get(fields.get("space", "").lower())
    if to_ras is None and "space" not in fields and "space dimension" in fields:
        to_ras = LPS_TO_RAS  # no named space: ITK, which writes 2D images so, reads it as its own (LPS)
    vectors = [_numbers(d) for d in directions if d]
    if len(vectors) == 2 and all(len(v) == 2 for v in vectors):  # a 2D image in a 2D space: the x-y plane
        vectors = [[*vectors[0], 0.0], [*vectors[1], 0.0]]
    if len(vectors) == 2 and all(len(v) == 3 for v in vectors):  # one slice in 3D space: 1 mm along its normal
        normal = np.cross(vectors[0], vectors[1])
        vectors.append(list(normal / (np.linalg.norm(normal) or 1.0)))
    if to_ras is None or len(vectors) != 3 or any(len(v) != 3 for v in vectors):
        spacings = _numbers(fields.get("spacings", ""))[-3:]
        zooms = tuple(abs(s) if np.isfinite(s) and s else 1.0 for s in (spacings + [1.0] * 3)[:3])
        return voxels, None, zooms, pairs
    columns = np.array(vectors, np.float64).T
    origin = np.array((_numbers(fields.get("space origin", "")) + [0.0] * 3)[:3])
    return voxels, _affine(columns, origin, to_ras), (1.0, 1.0, 1.0), pairs


def read_nrrd(data: bytes, name: str, check: SizeCheck, data_file: DataFile | None = None):
    """Bytes of a .nrrd -> nibabel.Nifti1Image (RAS affine from ``space``, ``space directions`` and
    ``space origin``; a file with only ``spacings`` states no orientation). ``check`` is given the
    volume's size before its voxels are decompressed. InputError or UnsupportedFormatError saying
    what to give instead. ``data_file``: where a detached header's voxels are read from."""
    voxels, affine, zooms, _ = _nrrd_voxels(data, name, check, layered=False, data_file=data_file)
    return _nibabel_image(voxels, affine, zooms)


@dataclass(frozen=True)
class Segment:
    """One segment of a 3D Slicer segmentation (.seg.nrrd): its name, and the value its voxels hold
    in its layer."""

    name: str
    layer: int
    value: int


def slicer_segments(pairs: dict[str, str], layers: int) -> list[Segment]:
    """A .seg.nrrd's key/value pairs -> its segments, in order (``SegmentN_Name``, ``_Layer``,
    ``_LabelValue``; files of Slicer before 4.11 have neither of the last two: segment N is 1 in
    layer N where there is a layer per segment, else value N + 1)."""
    ids = sorted({int(m.group(1)) for k in pairs if (m := re.match(r"Segment(\d+)_", k))})
    segments = []
    for n in ids:
        one_per_layer = layers > 1 and layers == len(ids)
        layer = int(pairs.get(f"Segment{n}_Layer", n if one_per_layer else 0))
        value = int(pairs.get(f"Segment{n}_LabelValue", 1 if one_per_layer else n + 1))
        segments.append(Segment(pairs.get(f"Segment{n}_Name", f"Segment_{n + 1}"), layer, value))
    return segments


def read_slicer_segmentation(data: bytes, name: str, check: SizeCheck, data_file: DataFile | None = None):
    """Bytes of a NRRD, maybe a 3D Slicer segmentation (.seg.nrrd: segments in one or more layers,
    as ``key:=value`` pairs) -> ((I, J, K) voxels or (I, J, K, L) layers, a nibabel.Nifti1Image
    of layer 0 that carries the geometry, the segments: [] for a plain labelmap)."""
    voxels, affine, zooms, pairs = _nrrd_voxels(data, name, check, layered=True, data_file=data_file)
    layers = voxels.shape[3] if voxels.ndim == 4 else 1
    first = voxels[..., 0] if voxels.ndim == 4 else voxels
    return voxels, _nibabel_image(np.ascontiguousarray(first), affine, zooms), slicer_segments(pairs, layers)


def read_metaimage(data: bytes, name: str, check: SizeCheck, data_file: DataFile | None = None):
    """Bytes of a .mha -> nibabel.Nifti1Image (RAS affine from ``TransformMatrix``, whose rows are
    the axes' directions, ``ElementSpacing`` and ``Offset``, all in ITK's LPS space). ``check`` as
    :func:`read_nrrd`, ``data_file`` too."""
    fields: dict[str, str] = {}
    pos = 0
    while True:
        end = data.find(b"\n", pos, MAX_HEADER_BYTES)
        if end < 0:
            raise InputError(f"{name}: the MetaImage header does not end with ElementDataFile. The file is not a "
                             "MetaImage volume or is damaged: save it again.")
        line = data[pos:end].decode("latin-1").strip()
        pos = end + 1
        if "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            fields[key.lower()] = value
            if key.lower() == "elementdatafile":
                break
    where = fields["elementdatafile"]
    local = where.upper() == "LOCAL"
    if not local and data_file is None:
        raise _detached(name, where)
    kind = _MET_TYPES.get(fields.get("elementtype", "").upper())
    if kind is None:
        raise UnsupportedFormatError(f"{name}: MetaImage element type '{fields.get('elementtype')}' is not read; "
                                     "save the volume with integer or float voxels (MET_SHORT, for CT).")
    if int(_numbers(fields.get("elementnumberofchannels", "1"))[0]) != 1:
        raise UnsupportedFormatError(f"{name}: a volume of several channels per voxel; HepatoScan reads one CT "
                                     "value per voxel. Save a single-channel volume.")
    sizes = _volume_sizes([int(v) for v in _numbers(fields.get("dimsize", ""))], name)
    msb = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "False")).lower() == "true"
    dtype = np.dtype(kind).newbyteorder(">" if msb else "<")
    check(tuple(sizes), dtype.itemsize)
    body = data[pos:] if local else _data_file_bytes(name, where, data_file)
    body = _decompress(body, "zlib", name) if fields.get("compresseddata", "").lower() == "true" else body
    voxels = _voxels(body, dtype, sizes, name)
    spacing = (_numbers(fields.get("elementspacing", fields.get("elementsize", ""))) + [1.0] * 3)[:3]
    matrix = _numbers(fields.get("transformmatrix", fields.get("rotation", fields.get("orientation", ""))))
    rows = np.eye(3)
    if len(matrix) in (4, 9):  # a 2D image's 2 x 2 directions stay in the patient's x-y plane
        n = int(round(len(matrix) ** 0.5))
        rows[:n, :n] = np.reshape(matrix, (n, n))
    origin = np.array((_numbers(fields.get("offset", fields.get("position", fields.get("origin", "")))) + [0.0] * 3)[:3])
    return _nibabel_image(voxels, _affine(rows.T * np.array(spacing), origin, LPS_TO_RAS), (1.0, 1.0, 1.0))


# NumPy dtypes -> the NRRD type written for them
_NRRD_WRITE_TYPES = {"u1": "uint8", "i1": "int8", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
                     "f4": "float", "f8": "double"}


def write_nrrd(voxels_ijk: np.ndarray, affine_ras: np.ndarray, path, pairs: list[str] = ()) -> None:
    """(I, J, K) voxels and their RAS affine -> a gzip NRRD in LPS space, as 3D Slicer saves a
    volume, with ``pairs`` ("key:=value" lines) in its header. Written slab by slab along K (no
    compressed copy of the whole volume is held)."""
    import gzip as gz

    dtype = np.dtype(voxels_ijk.dtype).newbyteorder("<")
    lps = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(affine_ras, np.float64)[:3]
    vectors = " ".join("(" + ",".join(f"{v:.10g}" for v in lps[:, k]) + ")" for k in range(3))
    x, y, z = voxels_ijk.shape
    header = ["NRRD0004", f"type: {_NRRD_WRITE_TYPES[dtype.str[1:]]}", "dimension: 3",
              "space: left-posterior-superior", f"sizes: {x} {y} {z}", f"space directions: {vectors}",
              "kinds: domain domain domain", "endian: little", "encoding: gzip",
              "space origin: (" + ",".join(f"{v:.10g}" for v in lps[:, 3]) + ")", *pairs]
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n\n").encode())
        with gz.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0) as out:
            for k in range(z):  # NRRD's first axis fastest: slab k is voxels[:, :, k] in Fortran order
                out.write(np.asarray(voxels_ijk[:, :, k], dtype).tobytes(order="F"))


def write_slicer_segmentation(labels_ijk: np.ndarray, affine_ras: np.ndarray, path,
                              segments: list[tuple[str, int, tuple[int, int, int]]]) -> None:
    """(I, J, K) uint8 labels, their RAS affine and, per segment, (name, label value, RGB colour
    0-255) -> a 3D Slicer segmentation (.seg.nrrd, :func:`write_nrrd`): one layer, with the fields
    Slicer reads segments from, so it opens in the Segment Editor named and coloured, over the volume."""
    x, y, z = labels_ijk.shape
    pairs = ["Segmentation_ContainedRepresentationNames:=Binary labelmap|",
             "Segmentation_MasterRepresentation:=Binary labelmap",
             "Segmentation_SourceRepresentation:=Binary labelmap",
             "Segmentation_ReferenceImageExtentOffset:=0 0 0"]
    extent = f"0 {x - 1} 0 {y - 1} 0 {z - 1}"
    for n, (name, value, rgb) in enumerate(segments):
        pairs += [f"Segment{n}_Color:=" + " ".join(f"{c / 255:.4g}" for c in rgb),
                  f"Segment{n}_ColorAutoGenerated:=0", f"Segment{n}_Extent:={extent}",
                  f"Segment{n}_ID:=Segment_{n + 1}", f"Segment{n}_LabelValue:={value}", f"Segment{n}_Layer:=0",
                  f"Segment{n}_Name:={name}", f"Segment{n}_NameAutoGenerated:=0", f"Segment{n}_Tags:=|"]
    write_nrrd(np.asarray(labels_ijk, np.uint8), affine_ras, path, pairs)
