"""Loaders on every supported format, and a catalogue of bad inputs with their clear errors."""
from __future__ import annotations

import gzip
import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hepatoscan.config import LoadLimits
from hepatoscan.errors import InputError, InputTooLargeError, UnsupportedFormatError
from hepatoscan.io import load_scan
from hepatoscan.scan import Scan


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _ct_like(h=96, w=96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 3) ** 2, 150, 20).astype(np.uint8)
    img[h // 3: h // 2, w // 3: w // 2] = 220
    return img


def _dicom_bytes(hu: np.ndarray, z_mm: float, instance: int, series_uid: str = "1.2.3.4", modality="CT",
                 frames: int | None = None) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality = modality
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDate = "20240131"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0.0, 0.0, z_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.8]
    ds.SliceThickness = 2.5
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    stored = (hu + 1024).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if frames:
        ds.NumberOfFrames = frames
        stored = np.stack([stored] * frames)
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ---------------------------------------------------------------- formats that load

@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16"])
def test_png_modes_become_grey(mode):
    grey = _ct_like()
    if mode == "I;16":
        img = Image.fromarray(grey.astype(np.uint16) * 200)
    elif mode == "P":
        img = Image.fromarray(grey).convert("P")
    else:
        img = Image.fromarray(grey).convert(mode)
    scan = load_scan(_png_bytes(img), "slice.png")
    assert scan.pixels.shape == (1, 96, 96) and not scan.is_hu and scan.spacing_mm is None
    assert scan.source_format == "png"
    # The grey structure survives every mode (16-bit is stretched to 0..255).
    assert np.corrcoef(scan.pixels[0].ravel(), grey.ravel())[0, 1] > 0.99


# 16-bit and float files of CT numbers: CT's stored values (HU + 1024), DeepLesion's PNGs (HU + 32768),
# signed and float TIFFs of HU.
CT_NUMBER_FILES = [
    (lambda hu: (hu.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16), 1024, "PNG", "ct.png"),
    (lambda hu: (hu.astype(np.int32) + 32768).astype(np.uint16), 32768, "PNG", "ct.png"),
    (lambda hu: hu.astype(np.int32), 0, "TIFF", "ct.tif"),
    (lambda hu: hu.astype(np.float32), 0, "TIFF", "ct.tif"),
]


@pytest.mark.parametrize("stored,offset,fmt,name", CT_NUMBER_FILES)
def test_a_16_bit_or_float_image_of_ct_numbers_reads_as_hu(sample_volume, stored, offset, fmt, name):
    _, hu, _ = sample_volume
    for z in (20, 64, 100):  # lower abdomen, mid-liver, liver dome of LiTS 117
        values = stored(hu[z])  # HU + 1024 clips the few values under -1024 HU, as CT's stored values do
        scan = load_scan(_png_bytes(Image.fromarray(values), fmt), name)
        assert scan.is_hu and np.array_equal(scan.pixels[0], values.astype(np.float32) - offset)
        assert np.abs(scan.pixels[0] - hu[z]).mean() < 0.1
        said = "read as HU" + (f" + {offset}" if offset else ",")
        assert sum(said in w for w in scan.warnings) == 1, scan.warnings


@pytest.mark.parametrize("window", [(150, 30), (400, 40), (2000, 0)])
@pytest.mark.parametrize("top", [65535, 4095])
def test_a_16_bit_display_export_still_reads_as_display_grey(sample_volume, window, top):
    """A display window exported at 16 or 12 bits holds grey levels, not CT numbers: stretched to
    0..255 and read through the window estimate, as before."""
    _, hu, _ = sample_volume
    width, level = window
    shown = np.clip((hu[64] - (level - width / 2)) / width, 0, 1)
    scan = load_scan(_png_bytes(Image.fromarray(np.round(shown * top).astype(np.uint16))), "display.png")
    assert not scan.is_hu and not any("CT numbers" in w for w in scan.warnings)
    assert np.abs(scan.pixels[0] - shown * 255).max() < 0.5


def test_a_stack_of_ct_number_images_with_an_8_bit_one_is_refused_with_the_fix(sample_volume):
    _, hu, _ = sample_volume
    files = {f"s{k}.png": _png_bytes(Image.fromarray((hu[60 + k].astype(np.int32) + 1024).astype(np.uint16)))
             for k in range(3)}
    files["s3.png"] = _png_bytes(Image.fromarray(np.full(hu[63].shape, 90, np.uint8)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(InputError, match="s3.png: an 8-bit image among images that hold CT numbers.*export them all alike"):
        load_scan(buf.getvalue(), "series.zip")


@pytest.mark.parametrize("fmt,name", [("JPEG", "a.jpg"), ("BMP", "a.bmp"), ("TIFF", "a.tif")])
def test_other_image_formats(fmt, name):
    scan = load_scan(_png_bytes(Image.fromarray(_ct_like()), fmt), name)
    assert scan.pixels.shape == (1, 96, 96)
    assert scan.source_format in ("jpeg", "bmp", "tiff")


def test_single_dicom_gives_hu_spacing_and_metadata():
    hu = np.full((64, 64), 40, np.int16)
    hu[:10] = -1000
    scan = load_scan(_dicom_bytes(hu, 10.0, 1), "slice.dcm")
    assert scan.is_hu and scan.source_format == "dicom"
    assert scan.pixels[0, 0, 0] == -1000 and scan.pixels[0, 40, 40] == 40
    assert scan.spacing_mm == (2.5, 0.7, 0.8)
    assert scan.metadata["patient_name"] == "Müller^Jürgen" and scan.metadata["modality"] == "CT"


def _series(n=5):
    slices = []
    for k in range(n):
        hu = np.full((48, 48), k * 10, np.int16)
        slices.append((f"IM{(k * 7) % n:04d}.dcm", _dicom_bytes(hu, 100.0 + 2.0 * k, n - k)))
    return slices


def test_dicom_series_folder_is_ordered_by_position(tmp_path):
    for name, data in _series():
        (tmp_path / name).write_bytes(data)
    scan = load_scan(tmp_path)
    assert scan.source_format == "dicom-series" and scan.pixels.shape == (5, 48, 48)
    np.testing.assert_array_equal(scan.pixels[:, 0, 0], [0, 10, 20, 30, 40])  # feet to head
    assert scan.spacing_mm == (2.0, 0.7, 0.8)


def test_feet_first_series_runs_feet_to_head_and_shows_the_standard_way():
    """Feet-first scans store rows toward the patient's right (ImageOrientationPatient -1 0 0 0 1 0),
    so the slice normal points to the feet: the volume still runs feet to head, each slice shown
    anterior up with the patient's right on the image left."""
    import pydicom

    files = []
    for k in range(5):
        hu = np.full((48, 48), k * 10, np.int16)
        hu[:8, :4] = 500 + k  # a marker: anterior, patient right
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(hu[:, ::-1].copy(), 100.0 + 2.0 * k, 5 - k)))
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
        buf = io.BytesIO()
        ds.save_as(buf)
        files.append((f"IM{k}.dcm", buf.getvalue()))
    scan = load_scan(_zip_files(files[::-1]), "ffs.zip")
    np.testing.assert_array_equal(scan.pixels[:, 20, 20], [0, 10, 20, 30, 40])  # feet to head
    np.testing.assert_array_equal(scan.pixels[:, 0, 0], [500, 501, 502, 503, 504])  # marker top left
    assert scan.spacing_mm == (2.0, 0.7, 0.8)
    # The display's top left pixel lies at the patient's right: the stored first pixel is the
    # patient's left (x 0), the right edge 47 columns of 0.8 mm toward the right (x -37.6).
    assert scan.geometry["origin_mm"] == pytest.approx([-37.6, 0.0, 100.0])


def test_localizer_inside_the_series_is_left_out():
    """Some scanners store the scout in the axial series itself: it is left out, with a warning,
    instead of stopping the load on its other size and plane."""
    import pydicom

    files = _series()
    ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(np.zeros((64, 40), np.int16), 0.0, 99)))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    buf = io.BytesIO()
    ds.save_as(buf)
    scan = load_scan(_zip_files(files + [("scout.dcm", buf.getvalue())]), "with_scout.zip")
    assert scan.pixels.shape == (5, 48, 48)
    np.testing.assert_array_equal(scan.pixels[:, 0, 0], [0, 10, 20, 30, 40])
    assert any("1 localizer (scout) image in the series was left out" in w for w in scan.warnings)


def test_dicom_series_zip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in _series():
            z.writestr(f"series/{name}", data)
        z.writestr("series/README.txt", "not dicom")
    scan = load_scan(buf.getvalue(), "study.zip")
    assert scan.pixels.shape == (5, 48, 48) and scan.name == "study"
    assert any("non-DICOM" in w for w in scan.warnings)


def test_non_ct_dicom_is_segmented_with_a_warning():
    scan = load_scan(_dicom_bytes(np.zeros((64, 64), np.int16) + np.arange(64), 0.0, 1, modality="MR"), "mr.dcm")
    assert any("not CT" in w for w in scan.warnings)


def test_nifti_gz_orientation_and_spacing(tmp_path, sample_volume):
    path, hu, _ = sample_volume
    scan = load_scan(path)
    assert scan.source_format == "nifti" and scan.is_hu and scan.pixels.shape == (128, 128, 128)
    # Anterior up: the spine (bone, > 200 HU) is in the lower half of a mid slice.
    bone_rows = np.nonzero((scan.pixels[64] > 300).any(1))[0]
    assert bone_rows.mean() > 64
    # The same volume as uncompressed bytes.
    raw = gzip.decompress(path.read_bytes())
    again = load_scan(raw, "vol.nii")
    np.testing.assert_array_equal(again.pixels, scan.pixels)


# ---------------------------------------------------------------- bad inputs

def _nifti_bytes(data: np.ndarray) -> bytes:
    return nib.Nifti1Image(data, np.eye(4)).to_bytes()


def _lits_series(hu: np.ndarray, keep=None, z_mm: float = 2.0) -> dict:
    """{file name: DICOM bytes} of LiTS 117 slices (HU clipped at -1024, as stored), one series,
    slice k at k * z_mm; ``keep`` limits the slices given."""
    return {f"IM{k:04d}.dcm": _dicom_bytes(np.maximum(hu[k], -1024), z_mm * k, k + 1)
            for k in (range(len(hu)) if keep is None else keep)}


def test_a_series_exported_twice_is_read_once_and_repeats_at_one_position_are_dropped(predictor, sample_volume):
    """A study exported twice into one folder held every slice twice: its volume came out doubled,
    with no spacing (the median step was 0). The repeats are read once, with a warning, and the
    volume is that of the series given once; two different images at one position keep the first."""
    from hepatoscan.measure import measure

    _, hu, _ = sample_volume
    once = _lits_series(hu[40:72])
    twice = {**once, **{f"copy/{k}": v for k, v in once.items()}}
    reference, scan = load_scan(_zip(once), "once.zip"), load_scan(_zip(twice), "twice.zip")
    assert np.array_equal(scan.pixels, reference.pixels) and scan.spacing_mm == reference.spacing_mm
    assert any("32 files repeated an image already read" in w for w in scan.warnings)
    volume = measure(predictor.segment(scan)).volume
    assert volume.liver_volume_ml == measure(predictor.segment(reference)).volume.liver_volume_ml > 0
    other = dict(once)
    other["IM9999.dcm"] = _dicom_bytes(np.maximum(hu[60], -1024), 2.0 * 10, 99)  # a second image at slice 10's place
    scan = load_scan(_zip(other), "repeat.zip")
    assert np.array_equal(scan.pixels, reference.pixels)  # IM0010 comes first and is kept
    assert any("1 image lay at the position of another image" in w for w in scan.warnings)


def _bare(data: bytes) -> bytes:
    """A DICOM file's data set written without the preamble, "DICM" and file meta (implicit VR
    little endian), as older exports and some research archives hold them."""
    import pydicom
    from pydicom.filebase import DicomFileLike

    buf = DicomFileLike(io.BytesIO())
    buf.is_little_endian, buf.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buf, pydicom.dcmread(io.BytesIO(data)))
    return buf.parent.getvalue()


def test_dicom_without_preamble_reads_as_its_part10_file(sample_volume):
    """Bare data sets (no preamble, no "DICM") were "not a readable image"; a file and a series of
    them read as their Part 10 files do, whatever their names."""
    _, hu, _ = sample_volume
    slices = _lits_series(hu[40:48])
    reference = load_scan(_zip(slices), "part10.zip")
    bare = {name.removesuffix(".dcm"): _bare(data) for name, data in slices.items()}
    assert bare["IM0003"][128:132] != b"DICM"
    one = load_scan(bare["IM0003"], "IM0003")
    assert one.is_hu and np.array_equal(one.pixels[0], reference.pixels[3])
    series = load_scan(_zip(bare), "bare.zip")
    assert np.array_equal(series.pixels, reference.pixels) and series.spacing_mm == reference.spacing_mm


def test_a_series_with_missing_slices_says_so(sample_volume):
    """Slices missing inside a series (an interrupted transfer) make every volume too small; the
    load says how many are missing and where the largest gap is; a complete series says nothing."""
    _, hu, _ = sample_volume
    complete = load_scan(_zip(_lits_series(hu[40:72])), "complete.zip")
    assert not any("gap" in w for w in complete.warnings)
    scan = load_scan(_zip(_lits_series(hu[40:72], keep=[k for k in range(32) if not 10 <= k < 16])), "gap.zip")
    assert scan.pixels.shape[0] == 26 and scan.spacing_mm[0] == pytest.approx(2.0)
    assert any("1 gap (the largest 14.0 mm, where slices lie 2 mm apart): about 6 slices missing" in w
               for w in scan.warnings)


def test_volumes_of_a_series_with_missing_slices_bridge_the_gaps(predictor, sample_volume):
    """A series missing 6 of 32 slices gave volumes a fifth too small (the slices present, each
    the usual step thick). Each slice now stands for half the way to its neighbours, so its liver
    and tumor volumes come within a few percent of the complete series', where counting the slices
    present falls short by over 15%; lesion volumes (and the lesions' numbering by them) and the
    comparison's sizes bridge the gaps alike, while a complete series reads as before."""
    from hepatoscan.agreement import compare
    from hepatoscan.measure import measure
    from hepatoscan.scan import slab_thickness_mm

    assert np.array_equal(slab_thickness_mm([0, 2, 4, 6], 2.0), [2, 2, 2, 2])
    assert np.array_equal(slab_thickness_mm([0, 2, 10, 12], 2.0), [2, 5, 5, 2])  # the 8 mm gap split
    _, hu, labels = sample_volume
    complete = load_scan(_zip(_lits_series(hu[40:72])), "complete.zip")
    assert complete.slab_mm is None
    keep = [k for k in range(32) if not 10 <= k < 16]
    gappy = load_scan(_zip(_lits_series(hu[40:72], keep=keep)), "gap.zip")
    assert gappy.slab_mm is not None and gappy.slab_mm.sum() == pytest.approx(32 * 2.0)
    full = measure(predictor.segment(complete)).volume
    seg = predictor.segment(gappy)
    part = measure(seg).volume
    voxel_ml = np.prod(gappy.spacing_mm) / 1000.0
    for got, whole, voxels in ((part.liver_volume_ml, full.liver_volume_ml, part.liver_voxels),
                               (part.tumor_volume_ml, full.tumor_volume_ml, part.tumor_voxels)):
        assert abs(got - whole) < 0.04 * whole and voxels * voxel_ml < 0.85 * whole, (got, whole)
    assert sum(l.volume_ml for l in part.lesions) == pytest.approx(part.tumor_volume_ml, abs=0.01 * len(part.lesions))
    volumes = [l.volume_ml for l in part.lesions]  # numbered by the volume shown, not by voxels present
    assert volumes == sorted(volumes, reverse=True)
    reference = np.rint(labels[40:72][keep]).astype(np.uint8)
    agree = compare(seg.liver, seg.tumor, reference, gappy.spacing_mm, "expert", slab_mm=gappy.slab_mm)
    assert agree.size_of("liver", "hepatoscan") == pytest.approx(part.liver_volume_ml, abs=0.05)
    assert agree.size_of("tumor", "hepatoscan") == pytest.approx(part.tumor_volume_ml, abs=0.005)
    plain = compare(seg.liver, seg.tumor, reference, gappy.spacing_mm, "expert")
    assert plain.size_of("liver", "reference") < 0.85 * agree.size_of("liver", "reference")
    assert agree.liver_dice == plain.liver_dice  # Dice counts voxels either way


def test_a_truncated_slice_is_left_out_of_its_series(sample_volume):
    """One file of a series cut off (an interrupted copy) failed the whole series with "no
    PixelData: is it a DICOMDIR?". Now the series is read without it, with a warning naming it and
    the gap it leaves; the file alone says it is truncated; a series of nothing but such files
    still fails with that message."""
    import pydicom
    from pydicom.uid import RLELossless

    _, hu, _ = sample_volume
    slices = {}
    for name, data in _lits_series(hu[40:56]).items():  # RLE, as a PACS may send it
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.compress(RLELossless)
        buf = io.BytesIO()
        ds.save_as(buf)
        slices[name] = buf.getvalue()
    whole = load_scan(_zip(slices), "whole.zip")
    cut = dict(slices, **{"IM0007.dcm": slices["IM0007.dcm"][: len(slices["IM0007.dcm"]) // 2]})
    scan = load_scan(_zip(cut), "cut.zip")
    assert scan.pixels.shape[0] == 15 and np.array_equal(scan.pixels, np.delete(whole.pixels, 7, axis=0))
    assert any(w.startswith("1 slice could not be read and was left out ('IM0007.dcm': the DICOM file is "
                            "truncated or corrupt") for w in scan.warnings), scan.warnings
    assert any("1 gap" in w for w in scan.warnings)
    with pytest.raises(InputError, match="IM0007.dcm: the DICOM file is truncated or corrupt"):
        load_scan(cut["IM0007.dcm"], "IM0007.dcm")
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_scan(_zip({k: v[: len(v) // 2] for k, v in slices.items()}), "all_cut.zip")


def test_an_archive_of_nifti_volumes(sample_volume):
    """A .zip holding one NIfTI volume (and a note) is read as the volume, the note ignored with a
    warning; a .zip of two volumes is refused with what to do, not 'no DICOM images found'."""
    path, _, _ = sample_volume
    data = path.read_bytes()
    scan = load_scan(_zip({"case/ct.nii.gz": data, "case/README.txt": b"LiTS 117"}), "case.zip")
    assert np.array_equal(scan.pixels, load_scan(path).pixels) and scan.is_hu
    assert any("1 other file beside the volume was ignored" in w for w in scan.warnings)
    with pytest.raises(InputError, match=r"2 volumes \('a.nii.gz', 'b.nii.gz'\); one input is one study"):
        load_scan(_zip({"a.nii.gz": data, "b.nii.gz": data}), "two.zip")


def _zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _bomb_png() -> bytes:
    """A tiny PNG that declares a 30000 x 30000 image."""
    return _png_bytes(Image.new("L", (30000, 30000)), compress_level=9)


BAD_INPUTS = {
    "empty file": (b"", "empty.png", InputError, "empty"),
    "text file": (b"hello, this is not an image", "notes.txt", UnsupportedFormatError, "not a readable image"),
    "truncated png": (_png_bytes(Image.fromarray(_ct_like()))[:200], "cut.png", InputError, "truncated or corrupt"),
    "animation among images": (None, "shared.zip", UnsupportedFormatError, "an animation of 2 frames among other images"),
    "decompression bomb": (None, "bomb.png", InputTooLargeError, "decompression bomb"),
    "tiny image": (_png_bytes(Image.new("L", (20, 20), 3)), "tiny.png", InputError, "at least 32"),
    "blank image": (_png_bytes(Image.new("L", (64, 64), 0)), "blank.png", InputError, "blank"),
    "4D nifti": (_nifti_bytes(np.zeros((40, 40, 10, 3), np.int16)), "dyn.nii", UnsupportedFormatError, "4D"),
    "zero-filled nifti": (_nifti_bytes(np.zeros((40, 40, 10), np.int16)), "zero.nii", InputError, "same value"),
    "label map nifti": (_nifti_bytes(np.repeat(np.arange(3, dtype=np.uint8), 40 * 40 * 4).reshape(40, 40, 12)),
                        "segmentation.nii", InputError, "segmentation.nii: the volume holds only the values 0, 1, 2"),
    "NaN nifti": (_nifti_bytes(np.full((40, 40, 10), np.nan, np.float32)), "nan.nii", InputError, "NaN"),
    "corrupt nifti": (b"\x00" * 400, "broken.nii", InputError, "NIfTI"),
    "corrupt zip": (b"PK\x03\x04" + b"\x00" * 50, "broken.zip", InputError, "corrupt"),
    "zip with ..": (_zip({"../../etc/evil.dcm": b"x"}), "evil.zip", InputError, "unsafe path"),
    "zip with absolute path": (_zip({"/etc/evil.dcm": b"x"}), "abs.zip", InputError, "unsafe path"),
    "nested zip": (_zip({"inner.zip": b"PK\x03\x04"}), "nested.zip", UnsupportedFormatError, "another archive"),
    "zip without dicom": (_zip({"a.txt": b"x", "b.txt": b"y"}), "text.zip", InputError, "no DICOM or PNG/JPEG images"),
    "zip of one non-image": (_zip({"notes.txt": b"hello"}), "one.zip", UnsupportedFormatError, "one.zip: notes.txt: not a readable image"),
    "dicom without pixels": (None, "sr.dcm", InputError, "no image"),
    "dicom with truncated pixels": (None, "cut.dcm", InputError, "truncated or corrupt"),
    "rar archive": (b"Rar!\x1a\x07\x00" + b"\x00" * 100, "study.rar", UnsupportedFormatError, "only .zip"),
}


def _materialise(kind: str, data):
    if kind == "animation among images":
        frames = [Image.fromarray(_ct_like()), Image.fromarray(255 - _ct_like())]
        buf = io.BytesIO()
        frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:])
        return _zip({"anim.webp": buf.getvalue(), "slice.png": _png_bytes(frames[0])})
    if kind == "decompression bomb":
        return _bomb_png()
    if kind == "dicom with truncated pixels":
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(np.zeros((32, 32), np.int16) + np.arange(32), 0, 1)))
        ds.PixelData = ds.PixelData[:1000]
        buf = io.BytesIO()
        ds.save_as(buf)
        return buf.getvalue()
    if kind == "dicom without pixels":
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(np.zeros((32, 32), np.int16), 0, 1)))
        del ds.PixelData
        buf = io.BytesIO()
        ds.save_as(buf)
        return buf.getvalue()
    return data


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_gives_a_clear_error(kind):
    data, name, error, words = BAD_INPUTS[kind]
    with pytest.raises(error) as info:
        load_scan(_materialise(kind, data), name)
    message = str(info.value)
    assert words.lower() in message.lower(), message
    assert name.split(".")[0] in message or "upload" in message.lower() or "export" in message.lower()


def test_too_many_slices_and_bytes_are_limited(tmp_path):
    data = _nifti_bytes((np.arange(40 * 40 * 12).reshape(40, 40, 12) % 300).astype(np.int16))
    with pytest.raises(InputTooLargeError, match="slices"):
        load_scan(data, "long.nii", LoadLimits(max_slices=10))
    with pytest.raises(InputTooLargeError, match="MB"):
        load_scan(data, "big.nii", LoadLimits(max_bytes=1000))
    with pytest.raises(InputTooLargeError, match="files in the archive"):
        load_scan(_zip({f"{i}.dcm": b"x" for i in range(20)}), "many.zip", LoadLimits(max_zip_entries=10))


def test_missing_path_says_so(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_scan(tmp_path / "nope.png")


def test_dicom_with_flipped_orientation_is_shown_the_standard_way():
    from io import BytesIO

    import pydicom

    hu = np.zeros((40, 40), np.int16)
    hu[:10, :5] = 500  # a marker at the top left: anterior, patient right
    standard = load_scan(_dicom_bytes(hu, 0.0, 1), "a.dcm").pixels[0]
    ds = pydicom.dcmread(BytesIO(_dicom_bytes(hu[::-1, ::-1].copy(), 0.0, 1)))
    ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]  # rows toward patient right, columns anterior
    buf = BytesIO()
    ds.save_as(buf)
    flipped = load_scan(buf.getvalue(), "b.dcm").pixels[0]
    np.testing.assert_array_equal(flipped, standard)


def _reformat_series(volume: np.ndarray, plane: str, spacing=(2.5, 0.7, 0.8), origin=(-50.0, -20.0, 100.0),
                     uid="9.9.9") -> list[tuple[str, bytes]]:
    """(Z, Y, X) display-order HU (feet to head, anterior to posterior, patient right to left) ->
    one coronal or sagittal DICOM series of it, as a scanner's reformat is stored: rows run from
    head to feet; coronal columns run right to left, sagittal ones anterior to posterior."""
    import pydicom

    dz, dy, dx = spacing
    x0, y0, z0 = origin
    top = z0 + (volume.shape[0] - 1) * dz
    if plane == "coronal":  # normal +y: slices anterior to posterior
        iop, ps = [1, 0, 0, 0, 0, -1], [dz, dx]
        slices = [(volume[::-1, j, :], [x0, y0 + j * dy, top]) for j in range(volume.shape[1])]
    else:  # sagittal, normal -x: slices from the patient's left to right
        iop, ps = [0, 1, 0, 0, 0, -1], [dz, dy]
        slices = [(volume[::-1, :, i], [x0 + i * dx, y0, top]) for i in range(volume.shape[2])]
    out = []
    for k, (img, ipp) in enumerate(slices):
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(np.ascontiguousarray(img), 0.0, k + 1, series_uid=uid)))
        ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = iop, ipp, ps
        buf = io.BytesIO()
        ds.save_as(buf)
        out.append((f"{plane}/IM{k:04d}.dcm", buf.getvalue()))
    return out


def _zip_files(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_coronal_and_sagittal_series_are_resliced_to_axial(sample_volume, plane):
    """A reformat series holds the same voxels as the axial volume: resliced, the scan equals the
    volume voxel for voxel, with the spacing and origin of its axes and a warning that says so."""
    _, hu, _ = sample_volume
    volume = np.maximum(hu[30:70, 10:110, 20:100], -1024).astype(np.int16)  # (40, 100, 80); -1024: stored unsigned
    scan = load_scan(_zip_files(_reformat_series(volume, plane)), f"{plane}.zip")
    np.testing.assert_array_equal(scan.pixels, volume)
    assert scan.spacing_mm == pytest.approx((2.5, 0.7, 0.8))
    assert scan.geometry["origin_mm"] == pytest.approx([-50.0, -20.0, 100.0])
    assert any(f"{plane} series: resliced to 40 axial slices" in w for w in scan.warnings)
    # Masks written as NIfTI lie where the voxels do: display voxel (z, y, x) at LPS origin +
    # (x * 0.8, y * 0.7, z * 2.5), i.e. RAS (50 - 0.8 x, 20 - 0.7 y, 100 + 2.5 z).
    from hepatoscan.pipeline import _to_nifti

    affine = _to_nifti(np.zeros(volume.shape, np.uint8), scan).affine
    np.testing.assert_allclose(affine @ [79, 99, 39, 1], [50 - 0.8 * 79, 20 - 0.7 * 99, 100 + 2.5 * 39, 1])


def test_study_with_reformats_uses_its_axial_series(sample_volume):
    """A study zip with a small axial series and a larger coronal reformat: the axial one is read."""
    _, hu, _ = sample_volume
    hu = np.maximum(hu, -1024).astype(np.int16)  # the helper stores HU + 1024 unsigned
    axial = [(f"axial/IM{k}.dcm", _dicom_bytes(hu[50 + k].astype(np.int16), 2.5 * k, k + 1, series_uid="1.1"))
             for k in range(6)]
    coronal = _reformat_series(hu[40:80].astype(np.int16), "coronal", uid="2.2")  # 128 slices
    scan = load_scan(_zip_files(axial + coronal), "study.zip")
    np.testing.assert_array_equal(scan.pixels, hu[50:56])
    assert any("the largest axial one was used: series (axial, 6 slices). Also there: series (coronal, 128 slices)"
               in w for w in scan.warnings), scan.warnings


def test_a_zip_of_two_patients_says_so(sample_volume):
    """Two series of one patient (two phases) read as before; two series of two patients (PatientID,
    or else StudyInstanceUID, differs) add a warning to check which one was used."""
    import pydicom

    _, hu, _ = sample_volume
    hu = np.maximum(hu, -1024).astype(np.int16)

    def series(uid, first, n, patient, study):
        files = []
        for k in range(n):
            ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(hu[first + k], 2.5 * k, k + 1, series_uid=uid)))
            ds.PatientID, ds.StudyInstanceUID = patient, study
            buf = io.BytesIO()
            ds.save_as(buf)
            files.append((f"{uid}/IM{k}.dcm", buf.getvalue()))
        return files

    same = load_scan(_zip_files(series("1.1", 50, 6, "P1", "9.1") + series("1.2", 60, 4, "P1", "9.1")), "one.zip")
    assert np.array_equal(same.pixels, hu[50:56]) and not any("come from" in w for w in same.warnings)
    two = load_scan(_zip_files(series("1.1", 50, 6, "P1", "9.1") + series("1.2", 60, 4, "P2", "9.2")), "two.zip")
    assert any("The files come from 2 patients (PatientID differs" in w for w in two.warnings)
    studies = load_scan(_zip_files(series("1.1", 50, 6, "", "9.1") + series("1.2", 60, 4, "", "9.2")), "s.zip")
    assert any("The files come from 2 studies (StudyInstanceUID differs" in w for w in studies.warnings)


def test_rotated_coronal_series_is_segmented_as_given_with_a_warning(sample_volume):
    """A coronal series turned 45 degrees in its plane cannot be resliced by flips: it is read as
    given, with the warning, instead of failing."""
    import pydicom

    _, hu, _ = sample_volume
    files = []
    for name, data in _reformat_series(np.maximum(hu[40:80], -1024).astype(np.int16), "coronal")[:6]:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.ImageOrientationPatient = [0.7071, 0, 0.7071, 0.7071, 0, -0.7071]
        buf = io.BytesIO()
        ds.save_as(buf)
        files.append((name, buf.getvalue()))
    scan = load_scan(_zip_files(files), "rotated.zip")
    assert scan.pixels.shape == (6, 40, 128)
    assert any("coronal slice, but the model reads axial slices" in w for w in scan.warnings)


def test_one_coronal_slice_is_segmented_with_a_warning(sample_volume):
    _, hu, _ = sample_volume
    name, data = _reformat_series(hu[40:80].astype(np.int16), "coronal")[50]
    scan = load_scan(data, "coronal.dcm")
    assert scan.pixels.shape == (1, 40, 128)
    assert any("coronal slice, but the model reads axial slices" in w for w in scan.warnings)


# ---------------------------------------------------------------- memory-lean storage

def test_nifti_stored_as_unsigned_hu_plus_1024_is_shifted_back(sample_volume):
    """HU + 1024 stored unsigned without scl_inter (no value negative, air near 0), or HU + 32768
    (air near 31744), reads as the HU volume, with a warning; values normalised to 0..1 read as grey levels x 255."""
    path, hu, _ = sample_volume
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.int32)
    unsigned = nib.Nifti1Image((np.maximum(data, -1024) + 1024).astype(np.uint16), img.affine)
    scan = load_scan(unsigned.to_bytes(), "unsigned.nii")
    assert scan.is_hu and scan.pixels.dtype == np.int16
    np.testing.assert_array_equal(scan.pixels, np.maximum(hu, -1024))
    assert any("HU + 1024" in w for w in scan.warnings)
    shifted = nib.Nifti1Image((data + 32768).astype(np.uint16), img.affine)  # int16 stored as uint16
    scan = load_scan(shifted.to_bytes(), "shifted.nii")
    assert scan.is_hu and scan.pixels.dtype == np.int16
    np.testing.assert_array_equal(scan.pixels, hu)
    assert any("HU + 32768" in w for w in scan.warnings)
    window = np.clip((data.astype(np.float32) + 160) / 400, 0, 1)
    normalised = load_scan(nib.Nifti1Image(window, img.affine).to_bytes(), "norm.nii")
    assert not normalised.is_hu and normalised.pixels.max() == pytest.approx(255.0)
    assert any("0..1" in w for w in normalised.warnings)


@pytest.mark.parametrize("how", ["HU / 1000", "-1..1", "z-scored"])
def test_a_normalised_nifti_is_read_as_grey_levels_and_still_segmented(predictor, sample_volume, how):
    """A volume normalised for some other network (negative values, a range of a few units) was
    read as HU, all of it near 0 HU: no liver. It is read as grey levels stretched to 0..255, with a
    warning, and segmented through the 8-bit path about as well as the HU volume (LiTS 117: liver
    0.932, tumor 0.674 against 0.933 / 0.677)."""
    from conftest import dice

    path, hu, labels = sample_volume
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    body = data[data > -500]
    values = {"HU / 1000": data / 1000, "-1..1": 2 * (data - data.min()) / np.ptp(data) - 1,
              "z-scored": (data - body.mean()) / body.std()}[how]
    scan = load_scan(nib.Nifti1Image(values, img.affine).to_bytes(), "normalised.nii")
    assert not scan.is_hu and scan.pixels.min() == 0 and scan.pixels.max() == pytest.approx(255.0)
    assert any("looks normalised" in w and "Give the volume in HU" in w for w in scan.warnings)
    seg = predictor.segment(scan)
    reference = predictor.segment(load_scan(path))
    assert dice(seg.liver, labels >= 1) >= dice(reference.liver, labels >= 1) - 0.01
    assert dice(seg.tumor, labels == 2) >= dice(reference.tumor, labels == 2) - 0.03


def test_nifti2_reads_quietly_and_a_nifti_without_orientation_says_so(sample_volume, caplog):
    """A NIfTI-2 file reads as its NIfTI-1 twin without nibabel's "sizeof_hdr should be 348" and
    "data code 0 not supported" in the log (it was tried as NIfTI-1 first); a file whose qform and
    sform codes are both 0 states no orientation, and is read with a warning (LiTS 117 so saved
    shows upside down), while the sample (sform code 2) is not."""
    import logging

    path, _, _ = sample_volume
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    reference = load_scan(path)
    assert not any("orientation" in w for w in reference.warnings)
    with caplog.at_level(logging.INFO):
        two = load_scan(nib.Nifti2Image(data, img.affine).to_bytes(), "two.nii")
    assert np.array_equal(two.pixels, reference.pixels)
    assert not [r for r in caplog.records if "sizeof_hdr" in r.getMessage() or "data code" in r.getMessage()]
    bare = nib.Nifti1Image(data, None)
    assert int(bare.header["qform_code"]) == int(bare.header["sform_code"]) == 0
    scan = load_scan(bare.to_bytes(), "bare.nii")
    assert any("states no orientation (qform and sform codes are 0)" in w for w in scan.warnings)


@pytest.mark.parametrize("rows", [np.zeros((3, 4)), [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 1.0, 0, 0]]],
                         ids=["all zeros", "two axes along one direction"])
def test_a_nifti_with_a_degenerate_orientation_reads_as_one_without_any(sample_volume, rows, tmp_path):
    """A NIfTI whose sform maps its voxel axes onto fewer than three directions (a broken converter)
    stopped nibabel's reorientation: an internal error in the app and the CLI. It now reads as a file
    that states no orientation does, voxel for voxel, with its own warning; and as the reference of
    that image too."""
    from hepatoscan.io.reference import read_reference

    path, _, _ = sample_volume
    data = np.asarray(nib.load(str(path)).dataobj)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header.set_zooms((0.8, 0.8, 2.0))
    header["qform_code"], header["sform_code"] = 0, 2
    header["srow_x"], header["srow_y"], header["srow_z"] = rows
    nib.save(nib.Nifti1Image(data, None, header), tmp_path / "broken.nii.gz")
    scan = load_scan(tmp_path / "broken.nii.gz")
    header["sform_code"] = 0
    guessed = load_scan(nib.Nifti1Image(data, None, header).to_bytes(), "bare.nii")
    np.testing.assert_array_equal(scan.pixels, guessed.pixels)
    assert scan.spacing_mm == pytest.approx((2.0, 0.8, 0.8))
    assert any("orientation matrix (sform/qform) is degenerate" in w for w in scan.warnings)
    assert not any("states no orientation" in w for w in scan.warnings)
    segmentation = np.asarray(nib.load(str(path).replace("volume", "segmentation")).dataobj)
    for name, code in (("broken_labels.nii.gz", 2), ("bare_labels.nii.gz", 0)):
        header["sform_code"] = code
        nib.save(nib.Nifti1Image(segmentation.astype(data.dtype), None, header), tmp_path / name)
    labels = read_reference(tmp_path / "broken_labels.nii.gz", scan).labels
    assert set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_array_equal(labels, read_reference(tmp_path / "bare_labels.nii.gz", guessed).labels)


def test_int16_nifti_stays_int16_and_matches_nibabel(sample_volume):
    path, _, _ = sample_volume
    scan = load_scan(path)
    assert scan.pixels.dtype == np.int16  # not widened to float32: half the memory
    ref = nib.as_closest_canonical(nib.load(str(path))).get_fdata()
    np.testing.assert_array_equal(scan.pixels, ref.transpose(2, 1, 0)[:, ::-1, ::-1])


def test_float_hu_nifti_is_held_as_int16_rounded_to_1_hu():
    hu = np.linspace(-1000.4, 900.6, 40 * 40 * 6, dtype=np.float32).reshape(40, 40, 6)
    scan = load_scan(_nifti_bytes(hu), "float.nii")
    assert scan.is_hu and scan.pixels.dtype == np.int16
    np.testing.assert_allclose(scan.pixels, np.rint(hu).transpose(2, 1, 0)[:, ::-1, ::-1], atol=0)


def test_float_nifti_with_some_nan_is_filled_not_rounded():
    hu = np.linspace(-900, 900, 40 * 40 * 6, dtype=np.float32).reshape(40, 40, 6)
    hu[0, 0, :] = np.nan
    scan = load_scan(_nifti_bytes(hu), "holes.nii")
    assert np.isfinite(scan.pixels).all() and any("NaN" in w for w in scan.warnings)


def test_truncated_nifti_gz_is_a_clear_error(sample_volume):
    path, _, _ = sample_volume
    data = path.read_bytes()
    with pytest.raises(InputError, match="truncated or corrupt|not a valid NIfTI"):
        load_scan(data[: len(data) // 2], "cut.nii.gz")


def test_dicom_series_is_int16_when_rescale_is_integral_else_float(tmp_path):
    for name, data in _series():
        (tmp_path / name).write_bytes(data)
    assert load_scan(tmp_path).pixels.dtype == np.int16
    import pydicom

    hu = np.full((48, 48), 40, np.int16)
    hu[:, :10] = -1000
    ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(hu, 0.0, 1)))
    ds.RescaleSlope = 0.5
    buf = io.BytesIO()
    ds.save_as(buf)
    scan = load_scan(buf.getvalue(), "half.dcm")
    assert scan.pixels.dtype == np.float32 and scan.pixels[0, 0, -1] == pytest.approx(0.5 * 1064 - 1024)


def test_dicom_series_with_a_report_object_skips_it(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for name, data in _series():
        (tmp_path / name).write_bytes(data)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no pixels
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    sr.Modality, sr.SeriesInstanceUID = "SR", "1.2.3.4"
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    (tmp_path / "report.dcm").write_bytes(buf.getvalue())
    scan = load_scan(tmp_path)
    assert scan.pixels.shape == (5, 48, 48) and any("ignored" in w for w in scan.warnings)


def test_webp_lossless_reads_as_png_and_lossy_as_jpeg(predictor):
    """A WebP slice (what browsers and Gradio save): lossless gives the PNG's pixels and masks;
    lossy (with or without alpha, whose extended layout puts other chunks first) is read as a JPEG
    is, its black spread by the compression; an animated one is refused (BAD_INPUTS)."""
    from conftest import SAMPLES
    from hepatoscan.io.image import webp_is_lossy
    from hepatoscan.pipeline import analyze

    png = load_scan(SAMPLES / "lits117_z080_w350.png")
    grey = Image.open(SAMPLES / "lits117_z080_w350.png")
    lossless = _png_bytes(grey, "WEBP", lossless=True)
    scan = load_scan(lossless, "slice.webp")
    assert scan.source_format == "webp" and not scan.jpeg and not webp_is_lossy(lossless)
    assert np.array_equal(scan.pixels, png.pixels)
    with_alpha = grey.convert("RGBA")
    alpha = np.full((grey.height, grey.width), 255, np.uint8)
    alpha[:, :8] = 0  # a transparent strip: Pillow keeps the alpha, so the file is extended (VP8X)
    with_alpha.putalpha(Image.fromarray(alpha))
    for image in (grey, with_alpha):
        lossy = _png_bytes(image, "WEBP", quality=75)
        scan = load_scan(lossy, "slice.webp")
        assert webp_is_lossy(lossy) and scan.source_format == "webp-lossy" and scan.jpeg
    assert lossy[12:16] == b"VP8X"  # the alpha file's layout
    a, b = analyze(predictor, SAMPLES / "lits117_z080_w350.png"), analyze(predictor, lossless, filename="s.webp")
    assert np.array_equal(a.segmentation.liver, b.segmentation.liver)
    assert np.array_equal(a.segmentation.tumor, b.segmentation.tumor)
    assert not webp_is_lossy(b"RIFF\x04\x00\x00\x00WEBP")  # no image chunk


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_exif_orientation_is_applied_as_viewers_show_the_image(predictor, fmt):
    """A phone editor or camera stores the pixels sideways with an EXIF tag saying how to show them
    (6: turn 90 degrees clockwise). The image is read as viewers show it, with a note, and segments
    as the upright slice does; an image without the tag is read as stored, with no note."""
    from conftest import SAMPLES, dice
    from hepatoscan.pipeline import analyze

    upright = Image.open(SAMPLES / "lits117_z080_w350.png").crop((0, 0, 128, 100))  # not square
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = _png_bytes(upright.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes(),
                        **({"quality": 95} if fmt != "PNG" else {}))
    scan = load_scan(stored, "phone." + fmt.lower())
    assert scan.pixels.shape == (1, 100, 128)
    notes = [w for w in scan.warnings if "EXIF orientation" in w]
    assert len(notes) == 1 and "turned 90 degrees clockwise" in notes[0]
    plain = analyze(predictor, _png_bytes(upright), filename="upright.png")
    turned = analyze(predictor, stored, filename="phone." + fmt.lower())
    assert dice(turned.segmentation.liver[0], plain.segmentation.liver[0]) > 0.95
    assert notes[0] in turned.warnings
    assert not [w for w in load_scan(_png_bytes(upright, fmt), "plain." + fmt.lower()).warnings if "EXIF" in w]


def test_a_zip_of_lossy_webp_slices_reads_as_jpeg_and_segments_as_png(predictor, sample_volume):
    """LiTS 117 exported at W350/L50 as WebP q75 slices in a zip: read the JPEG way (black spread
    by the compression), liver Dice 0.932, as the PNG export's 0.931; read as lossless it lost 0.005
    of liver and 0.025 of tumor (measured: 0.926 / 0.645)."""
    from conftest import dice
    from hepatoscan.preprocessing import render_8bit
    from hepatoscan.scan import Scan

    _, hu, labels = sample_volume
    zipped = _zip({f"IM{k:03d}.webp": _png_bytes(Image.fromarray(render_8bit(s, (-125, 225))), "WEBP", quality=75)
                   for k, s in enumerate(hu)})
    scan = load_scan(zipped, "series.zip")
    assert scan.source_format == "webp-lossy-stack" and scan.jpeg and scan.n_slices == hu.shape[0]
    as_lossless = Scan(scan.pixels, False, None, "webp-stack", "series.zip")
    liver, tumor = labels >= 1, labels == 2
    read = predictor.segment(scan)
    other = predictor.segment(as_lossless)
    d, d_other = dice(read.liver, liver), dice(other.liver, liver)
    assert d >= 0.93 and d >= d_other + 0.003, (d, d_other)
    assert dice(read.tumor, tumor) >= dice(other.tumor, tumor) + 0.01


def test_colour_images_are_read_as_grey_with_a_warning(predictor):
    """A viewer screenshot with coloured overlays: read as grey, and the user is told; grey exports,
    as PNG or as RGB JPEG, are not warned about."""
    from conftest import SAMPLES
    from hepatoscan.pipeline import analyze

    grey = Image.open(SAMPLES / "lits117_z080_w350.png").convert("RGB")
    plain = analyze(predictor, _png_bytes(grey, "JPEG", quality=50), filename="export.jpg")
    assert not [w for w in plain.warnings if "colour" in w]

    overlay = plain.views(0)["overlay"]  # the app's own liver/tumor overlay of that slice
    coloured = load_scan(_png_bytes(Image.fromarray(overlay)), "screenshot.png")
    assert coloured.pixels.shape == (1, *overlay.shape[:2])
    warnings = [w for w in coloured.warnings if "in colour" in w]
    assert len(warnings) == 1 and "greyscale export" in warnings[0]
    assert 5 <= int(warnings[0].split("%")[0]) <= 60
    result = analyze(predictor, _png_bytes(Image.fromarray(overlay)), filename="screenshot.png")
    assert warnings[0] in result.warnings and warnings[0] in result.describe()
    # Thin coloured marks (a measurement line and its lettering) are filled in instead, alike in a
    # PNG and in a screenshot saved as DICOM (hepatoscan.marks; tests/test_marks.py).
    from PIL import ImageDraw

    from hepatoscan.marks import MARKS_NOTE
    marked = grey.copy()
    ImageDraw.Draw(marked).line([(30, 60), (100, 70)], fill=(255, 255, 0), width=2)
    ImageDraw.Draw(marked).text((30, 75), "41 mm", fill=(255, 255, 0))
    as_png = load_scan(_png_bytes(marked), "marked.png")
    as_dicom = load_scan(_secondary_capture_bytes(np.asarray(marked)), "marked.dcm")
    assert MARKS_NOTE in as_png.warnings and MARKS_NOTE in as_dicom.warnings
    assert np.abs(as_png.pixels - as_dicom.pixels).max() <= 1  # Pillow rounds its luma, the DICOM reader does not
    truth, as_grey = np.asarray(grey.convert("L"), np.float32), np.asarray(marked.convert("L"), np.float32)
    drawn = truth != as_grey
    assert np.abs(as_png.pixels[0] - truth)[drawn].mean() < 0.5 * np.abs(as_grey - truth)[drawn].mean()


def _secondary_capture_bytes(pixels: np.ndarray, modality: str = "CT") -> bytes:
    """A screenshot saved as DICOM by a viewer: Secondary Capture, 8-bit grey or RGB display levels,
    no rescale to HU, the modality of the study it was taken from."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.SOPClassUID = modality, SecondaryCaptureImageStorage
    ds.SOPInstanceUID, ds.SeriesInstanceUID = meta.MediaStorageSOPInstanceUID, generate_uid()
    a = np.ascontiguousarray(pixels, np.uint8)
    ds.Rows, ds.Columns = a.shape[:2]
    rgb = a.ndim == 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3, "RGB") if rgb else (1, "MONOCHROME2")
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = a.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_secondary_capture_dicom_is_a_display_image_not_hu(predictor):
    """A CT viewer's screenshot saved as DICOM keeps Modality CT but holds display grey levels: it
    goes through the 8-bit path (window estimate) and segments like the PNG it was made from."""
    from conftest import SAMPLES
    from hepatoscan.pipeline import analyze

    png = SAMPLES / "lits117_z080_w350.png"
    grey = np.asarray(Image.open(png).convert("L"))
    reference = analyze(predictor, png)
    for pixels in (grey, np.stack([grey] * 3, -1)):
        scan = load_scan(_secondary_capture_bytes(pixels), "capture.dcm")
        assert not scan.is_hu and scan.pixels.shape == (1, *grey.shape)
        result = analyze(predictor, _secondary_capture_bytes(pixels), filename="capture.dcm")
        assert result.segmentation.window_estimates[0] is not None
        a, b = result.segmentation.liver[0].astype(bool), reference.segmentation.liver[0].astype(bool)
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.99
        assert not [w for w in result.warnings if "colour" in w]
    overlay = reference.views(0)["overlay"]
    coloured = load_scan(_secondary_capture_bytes(overlay), "overlay.dcm")
    assert not coloured.is_hu and [w for w in coloured.warnings if "in colour" in w]


def test_dicom_display_values_wider_than_8_bit_are_stretched():
    """An MR slice with no rescale (12-bit display values): grey levels in [0, 255], in order."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(_ct_like().astype(np.int16) * 3, 0.0, 1, modality="MR")))
    del ds.RescaleIntercept, ds.RescaleSlope
    buf = io.BytesIO()
    ds.save_as(buf)
    scan = load_scan(buf.getvalue(), "mr.dcm")
    stored = ds.pixel_array.astype(np.float32)
    assert not scan.is_hu and [w for w in scan.warnings if "Modality is MR" in w]
    assert scan.pixels.min() == 0 and scan.pixels.max() == 255
    assert np.allclose(scan.pixels[0], (stored - stored.min()) * 255 / (stored.max() - stored.min()), atol=1e-3)


def _without_rescale(data: bytes, secondary_capture: bool = False, modality: str = "CT") -> bytes:
    """A DICOM file of ``_dicom_bytes`` (HU + 1024 stored, intercept -1024) that lost its rescale: as
    a converter or anonymiser may leave a CT, or a secondary capture keeping the CT numbers."""
    import pydicom
    from pydicom.uid import SecondaryCaptureImageStorage

    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.Modality = modality
    if secondary_capture:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("secondary_capture", [False, True])
def test_dicom_without_its_rescale_is_read_as_ct_numbers(predictor, sample_volume, tmp_path, secondary_capture):
    """A LiTS 117 slice stored as HU + 1024 whose RescaleIntercept was lost (a CT object, or a
    secondary capture keeping the CT numbers): it was read as HU with air at 0 (CT) or stretched to
    display grey (capture). Now the values are read as HU + 1024, with a note, and the masks are
    those of the HU slice; a series does the same; an MR slice with such values stays display grey."""
    _, hu, _ = sample_volume
    hu = np.maximum(hu, -1024)  # as stored at HU + 1024 in 16 unsigned bits
    reference = predictor.segment(Scan(hu[64:65].astype(np.float32), True, None, "nifti", "hu"))
    scan = load_scan(_without_rescale(_dicom_bytes(hu[64], 0.0, 1), secondary_capture), "slice.dcm")
    assert scan.is_hu and np.array_equal(scan.pixels[0], hu[64])
    assert any("CT numbers" in w and "HU + 1024" in w for w in scan.warnings)
    assert np.array_equal(predictor.segment(scan).liver, reference.liver)
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(60, 68):
        (folder / f"IM{k}").write_bytes(_without_rescale(_dicom_bytes(hu[k], 2.0 * k, k), secondary_capture))
    series = load_scan(folder)
    assert series.is_hu and series.pixels.shape[0] == 8 and np.array_equal(series.pixels, hu[60:68])
    assert any("HU + 1024" in w for w in series.warnings)
    mr = load_scan(_without_rescale(_dicom_bytes(hu[64], 0.0, 1), secondary_capture, modality="MR"), "mr.dcm")
    assert not mr.is_hu


def test_monochrome1_display_dicom_is_inverted(predictor):
    """MONOCHROME1 (0 shows white): the grey levels are turned round, so the image reads as the
    MONOCHROME2 capture it shows."""
    import pydicom

    from conftest import SAMPLES

    grey = np.asarray(Image.open(SAMPLES / "lits117_z080_w350.png").convert("L"))
    ds = pydicom.dcmread(io.BytesIO(_secondary_capture_bytes(255 - grey)))
    ds.PhotometricInterpretation = "MONOCHROME1"
    buf = io.BytesIO()
    ds.save_as(buf)
    scan = load_scan(buf.getvalue(), "mono1.dcm")
    assert not scan.is_hu and np.array_equal(scan.pixels[0], grey.astype(np.float32))


def _transcode(gdcm, src, dst, syntax: str) -> None:
    """Compress a DICOM file with GDCM into ``syntax`` (a gdcm.TransferSyntax name)."""
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLosslessProcess14", "JPEGLSLossless",
                                    "JPEG2000Lossless", "RLELossless"])
def test_compressed_dicom_series_decodes_to_the_same_hu(tmp_path, syntax):
    """PACS exports compress CT, most often as JPEG Lossless: eight slices of the LiTS 117 sample, as
    12-bit CT, transcoded by GDCM, load to the same HU and spacing as the uncompressed series."""
    gdcm = pytest.importorskip("gdcm", reason="python-gdcm (app and full profiles; `make test` installs it) "
                                              "decodes JPEG Lossless and JPEG-LS")
    import pydicom

    from conftest import SAMPLES

    hu = np.clip(np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[56:64], -1024, 3071)
    plain, packed = tmp_path / "plain", tmp_path / syntax
    plain.mkdir()
    packed.mkdir()
    for k, s in enumerate(hu):
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(s.astype(np.int16), 2.0 * k, k + 1)))
        ds.BitsStored, ds.HighBit = 12, 11  # as CT stores it
        ds.save_as(plain / f"IM{k}.dcm")
        _transcode(gdcm, plain / f"IM{k}.dcm", packed / f"IM{k}.dcm", syntax)
    assert pydicom.dcmread(packed / "IM0.dcm").file_meta.TransferSyntaxUID.is_compressed
    reference, scan = load_scan(plain), load_scan(packed)
    assert scan.pixels.dtype == np.int16 and scan.spacing_mm == reference.spacing_mm == (2.0, 0.7, 0.8)
    np.testing.assert_array_equal(scan.pixels, reference.pixels)
    np.testing.assert_array_equal(scan.pixels, hu)


def _enhanced_ct(hu: np.ndarray, spacing_mm=(1.0, 1.0, 1.0), head_first: bool = True) -> bytes:
    """(Z, H, W) HU, feet to head, shown anterior up -> one Enhanced CT file (all slices as frames):
    spacing, orientation and rescale in the shared functional group, each frame's position in its
    own; frames stored head to feet unless ``head_first`` is False."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid

    def item(**kw):
        d = Dataset()
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = EnhancedCTImageStorage, ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = EnhancedCTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.SeriesInstanceUID, ds.PatientName, ds.ImageType = generate_uid(), "Enhanced^CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    order = list(range(len(hu)))[::-1] if head_first else list(range(len(hu)))
    dz, dy, dx = spacing_mm
    ds.SharedFunctionalGroupsSequence = [item(
        PixelMeasuresSequence=[item(PixelSpacing=[dy, dx], SliceThickness=dz)],
        PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
        PixelValueTransformationSequence=[item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")])]
    ds.PerFrameFunctionalGroupsSequence = [item(
        PlanePositionSequence=[item(ImagePositionPatient=[0.0, 0.0, 100.0 + dz * z])],
        FrameContentSequence=[item(InStackPositionNumber=z + 1)]) for z in order]
    stored = (np.clip(hu, -1024, 3071) + 1024).astype(np.uint16)[order]
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = len(hu), stored.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_enhanced_ct_file_is_read_as_its_series_and_segments_as_the_nifti(predictor, sample_volume, tmp_path):
    """An Enhanced CT file (the whole series as frames, geometry in functional groups, stored head
    to feet) loads feet to head with its spacing and origin, alone and zipped with a DICOMDIR-like
    file, and segments to the same masks as the NIfTI it was made from."""
    from hepatoscan.pipeline import analyze

    path, hu, _ = sample_volume
    data = _enhanced_ct(hu)
    scan = load_scan(data, "enhanced.dcm")
    assert scan.source_format == "dicom-series" and scan.pixels.shape == hu.shape
    np.testing.assert_array_equal(scan.pixels, np.clip(hu, -1024, 3071))
    assert scan.spacing_mm == (1.0, 1.0, 1.0) and scan.geometry["origin_mm"][2] == 100.0
    zipped = load_scan(_zip({"study/IM1": data, "study/DICOMDIR": b"DICM-but-not-really"}), "study.zip")
    np.testing.assert_array_equal(zipped.pixels, scan.pixels)
    (tmp_path / "enhanced.dcm").write_bytes(data)
    from_dicom, from_nifti = analyze(predictor, tmp_path / "enhanced.dcm"), analyze(predictor, path)
    np.testing.assert_array_equal(from_dicom.segmentation.liver, from_nifti.segmentation.liver)
    np.testing.assert_array_equal(from_dicom.segmentation.tumor, from_nifti.segmentation.tumor)
    assert from_dicom.measurements.volume.liver_volume_ml == from_nifti.measurements.volume.liver_volume_ml


def test_compressed_enhanced_ct_and_legacy_multiframe_load(sample_volume, tmp_path):
    """A JPEG Lossless Enhanced CT file decodes to the same HU; a legacy multi-frame file (no
    per-frame positions) loads its frames in stored order, with the spacing it states and a warning."""
    gdcm = pytest.importorskip("gdcm", reason="python-gdcm (app and full profiles) decodes JPEG Lossless")
    hu = sample_volume[1][40:48]
    (tmp_path / "plain.dcm").write_bytes(_enhanced_ct(hu, head_first=False))
    _transcode(gdcm, tmp_path / "plain.dcm", tmp_path / "packed.dcm", "JPEGLosslessProcess14_1")
    np.testing.assert_array_equal(load_scan(tmp_path / "packed.dcm").pixels, np.clip(hu, -1024, 3071))

    legacy = load_scan(_dicom_bytes(np.zeros((32, 32), np.int16) + np.arange(32), 0, 1, frames=3), "mf.dcm")
    assert legacy.pixels.shape == (3, 32, 32) and legacy.spacing_mm == (2.5, 0.7, 0.8)
    assert any("ImagePositionPatient missing" in w for w in legacy.warnings)


def test_enhanced_ct_frames_keep_their_own_rescale_and_position():
    """Per-frame values stay with their frame: a rescale given per frame applies to that frame only,
    and frames without a position (here the last two) order the series by frame, with a warning."""
    import pydicom
    from pydicom.dataset import Dataset

    hu = np.zeros((4, 40, 40), np.int16) + np.arange(40, dtype=np.int16)
    ds = pydicom.dcmread(io.BytesIO(_enhanced_ct(hu, head_first=False)))
    del ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        rescale = Dataset()
        rescale.RescaleSlope, rescale.RescaleIntercept = 1, -1024 + 100 * k
        group.PixelValueTransformationSequence = [rescale]
        if k >= 2:
            del group.PlanePositionSequence
    buf = io.BytesIO()
    ds.save_as(buf)
    scan = load_scan(buf.getvalue(), "per_frame.dcm")
    np.testing.assert_array_equal(scan.pixels, hu + 100 * np.arange(4, dtype=np.int16)[:, None, None])
    assert any("ImagePositionPatient missing" in w for w in scan.warnings)
    assert scan.spacing_mm == (1.0, 1.0, 1.0)  # from the thickness: positions do not all say


def _study_zip(phases: list[tuple[int, str, np.ndarray]]) -> bytes:
    """(SeriesNumber, SeriesDescription, (Z, H, W) HU) per series -> a zip of the study, one folder a
    series (SeriesInstanceUID 1.2.<number>), slices 1 mm apart."""
    import pydicom

    files = []
    for number, description, hu in phases:
        for k, s in enumerate(hu):
            ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(s, 1.0 * k, k + 1, series_uid=f"1.2.{number}")))
            ds.SeriesNumber, ds.SeriesDescription = number, description
            buf = io.BytesIO()
            ds.save_as(buf)
            files.append((f"s{number}/IM{k}.dcm", buf.getvalue()))
    return _zip_files(files)


def test_multiphase_study_names_the_series_it_used_and_the_others():
    """A liver study with three contrast phases: the largest axial series is read, and the warning
    names it and the other two by number and description, so the user can give another alone."""
    study = _study_zip([(n, d, np.zeros((z, 40, 40), np.int16) + (10 * n + np.arange(z, dtype=np.int16))[:, None, None])
                        for n, d, z in ((2, "Arterial", 6), (3, "Portal venous", 8), (4, "Delayed", 5))])
    scan = load_scan(study, "liver_study.zip")
    np.testing.assert_array_equal(scan.pixels[:, 0, 0], 30 + np.arange(8))
    warning = next(w for w in scan.warnings if "3 series found" in w)
    assert "was used: series 3 'Portal venous' (axial, 8 slices)" in warning
    assert "series 2 'Arterial' (axial, 6 slices); series 4 'Delayed' (axial, 5 slices)" in warning
    assert "Series field or with the CLI's --series" in warning
    # Another phase, by number, by UID or by a word of its description; a miss lists the series.
    for which in ("2", "1.2.2", "ARTERIAL"):
        chosen = load_scan(study, "liver_study.zip", series=which)
        np.testing.assert_array_equal(chosen.pixels[:, 0, 0], 20 + np.arange(6))
        assert not any("series found" in w for w in chosen.warnings)
    with pytest.raises(InputError, match="no series match 'hepatobiliary'. The study holds: series 2 'Arterial'"):
        load_scan(study, "liver_study.zip", series="hepatobiliary")


NIFTI_THEN_DICOM = """
import sys
import numpy as np
from hepatoscan.io import load_scan
from hepatoscan.pipeline import analyze, write_outputs
from hepatoscan.predictor import Predictor
result = analyze(Predictor.from_model_dir(), "samples/lits117_volume.nii.gz")
write_outputs(result, sys.argv[1])
print("AFTER NIFTI:", sorted(m for m in ("pydicom", "gdcm") if m in sys.modules))
series = load_scan(sys.argv[2])
np.save(sys.argv[3], np.asarray(series.pixels))
print("AFTER DICOM:", sorted(m for m in ("pydicom", "gdcm", "requests") if m in sys.modules))
import requests  # hidden only while pydicom loaded
print("THEN:", requests.__name__)
"""


def test_nifti_leaves_pydicom_unloaded_and_dicom_still_decodes_afterwards(tmp_path):
    """nibabel imports pydicom, and pydicom GDCM, as soon as they are imported (33 MB of a NIfTI-only
    process): reading and writing NIfTI leaves both out (hepatoscan.io.imports), and a compressed
    DICOM series read afterwards in the same process still decodes, GDCM and all, without the
    requests that pydicom would import (13.6 MB), which is importable afterwards."""
    import subprocess
    import sys

    from conftest import ROOT, SAMPLES

    gdcm = pytest.importorskip("gdcm", reason="python-gdcm (app and full profiles) decodes JPEG Lossless")
    import pydicom

    hu = np.clip(np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[60:63], -1024, 3071)
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.mkdir()
    packed.mkdir()
    for k, s in enumerate(hu):
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(s.astype(np.int16), 2.0 * k, k + 1)))
        ds.BitsStored, ds.HighBit = 12, 11
        ds.save_as(plain / f"IM{k}.dcm")
        _transcode(gdcm, plain / f"IM{k}.dcm", packed / f"IM{k}.dcm", "JPEGLosslessProcess14_1")
    r = subprocess.run([sys.executable, "-c", NIFTI_THEN_DICOM, str(tmp_path / "out"), str(packed),
                        str(tmp_path / "hu.npy")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "AFTER NIFTI: []" in r.stdout
    assert "AFTER DICOM: ['gdcm', 'pydicom']" in r.stdout and "THEN: requests" in r.stdout
    assert (tmp_path / "out").is_dir() and any(p.name.endswith(".nii.gz") for p in (tmp_path / "out").iterdir())
    np.testing.assert_array_equal(np.load(tmp_path / "hu.npy"), hu)


def test_a_volume_over_the_voxel_limit_is_refused_with_the_fix():
    from conftest import SAMPLES

    with pytest.raises(InputTooLargeError, match=r"128 x 128 x 128 = 2,097,152 voxels, over the limit of 1,000,000\. "
                                                 r"Give a smaller part of the study"):
        load_scan(SAMPLES / "lits117_volume.nii.gz", limits=LoadLimits(max_voxels=1_000_000))
