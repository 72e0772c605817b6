"""NRRD (3D Slicer) and MetaImage (ITK) volumes: read as the same CT saved as NIfTI is, voxel for
voxel and in the same place, checked against SimpleITK, which writes them (an implementation of its
own); single-file only, with errors that say what to give instead."""
from __future__ import annotations

import bz2
import io
import zipfile

import numpy as np
import pytest

from conftest import SAMPLES
from hepatoscan.config import LoadLimits
from hepatoscan.errors import InputError, InputTooLargeError, UnsupportedFormatError
from hepatoscan.io import load_scan

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (full profile) writes the NRRD and MetaImage files")


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    """The LiTS 117 sample given anisotropic voxels (0.8 x 0.7 x 2.5 mm), a far-off origin and axes
    turned 12 degrees about the patient's long axis (an oblique reconstruction), and the same image
    saved as NIfTI by SimpleITK: (image, path of its .nii.gz)."""
    img = sitk.ReadImage(str(SAMPLES / "lits117_volume.nii.gz"))
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin((-120.5, 33.0, -410.25))
    a = np.deg2rad(12)
    img.SetDirection((np.cos(a), -np.sin(a), 0, np.sin(a), np.cos(a), 0, 0, 0, 1))
    path = tmp_path_factory.mktemp("itk") / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    return img, path


@pytest.mark.parametrize("orient", ["LPS", "RAS", "PIL", "SRA"])
@pytest.mark.parametrize("ext,compressed", [(".nrrd", True), (".nrrd", False), (".mha", True), (".mha", False)])
def test_a_volume_reads_as_its_nifti(ct, tmp_path, orient, ext, compressed):
    """Every axis order and direction SimpleITK writes (the axes permuted and flipped into LPS, RAS,
    PIL and SRA voxel order), raw and compressed: the same display voxels, spacing and RAS affine as
    the NIfTI of the same image, and where the file stores its slices otherwise, their file index."""
    img, nii = ct
    path = tmp_path / f"ct{ext}"
    sitk.WriteImage(sitk.DICOMOrient(img, orient), str(path), useCompression=compressed)
    scan, reference = load_scan(path), load_scan(nii)
    assert scan.source_format == ("nrrd" if ext == ".nrrd" else "metaimage") and scan.is_hu
    assert np.array_equal(np.asarray(scan.pixels), np.asarray(reference.pixels))
    assert np.allclose(scan.spacing_mm, reference.spacing_mm) and np.allclose(scan.spacing_mm, (2.5, 0.7, 0.8))
    assert np.allclose(scan.geometry.affine, reference.geometry.affine, atol=1e-4)
    assert scan.warnings == []
    sources = scan.metadata.get("slice_sources")
    assert (sources is None) == (orient in ("LPS", "RAS"))  # slices stored feet to head along the file's K


def test_masks_of_a_nrrd_lie_where_those_of_its_nifti_do(predictor, ct, tmp_path):
    """Segmented from a .nrrd, the masks are the NIfTI's and are written as NIfTI in the volume's
    place (3D Slicer opens them over it); a reference given as a .nrrd labelmap, or as a .mha, is
    compared as its NIfTI is."""
    from hepatoscan.pipeline import analyze, write_outputs

    img, nii = ct
    labels = sitk.ReadImage(str(SAMPLES / "lits117_segmentation.nii.gz"))
    labels.CopyInformation(img)
    ref_nii, ref_nrrd, ref_mha = tmp_path / "seg.nii.gz", tmp_path / "seg.nrrd", tmp_path / "seg.mha"
    for path in (ref_nii, ref_nrrd):
        sitk.WriteImage(labels, str(path), useCompression=True)
    sitk.WriteImage(sitk.DICOMOrient(labels, "PIL"), str(ref_mha), useCompression=True)
    volume = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.DICOMOrient(img, "PIL"), str(volume), useCompression=True)
    from_nrrd = analyze(predictor, volume, reference=ref_nrrd)
    from_nifti = analyze(predictor, nii, reference=ref_nii)
    assert np.array_equal(from_nrrd.segmentation.liver, from_nifti.segmentation.liver)
    assert np.array_equal(from_nrrd.segmentation.tumor, from_nifti.segmentation.tumor)
    assert from_nrrd.agreement.liver.dice == from_nifti.agreement.liver.dice > 0.9
    assert analyze(predictor, volume, reference=ref_mha).agreement.liver.dice == from_nifti.agreement.liver.dice
    written = sitk.ReadImage(str(write_outputs(from_nrrd, tmp_path / "out")["labels_nifti"]))
    assert np.allclose(written.GetSpacing(), (0.8, 0.7, 2.5), atol=1e-4)
    # the liver where the expert's lies (within two 2.5 mm slices: the model's top and bottom slices differ)
    assert np.allclose(_centre_mm(written), _centre_mm(labels), atol=5.0)


def _centre_mm(labels) -> np.ndarray:
    """The liver's centre (label >= 1) in an image's physical (LPS) space, mm."""
    zyx = np.argwhere(sitk.GetArrayViewFromImage(labels) >= 1).mean(axis=0)
    return np.array(labels.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in zyx[::-1])))


def _nrrd(fields: dict[str, str], payload: bytes) -> bytes:
    head = "NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n"
    return head.encode() + payload


def test_nrrd_fields_written_by_hand(tmp_path):
    """A NRRD in RAS space with big-endian voxels, one bzip2-compressed and one with only spacings
    (no patient space: the axes are guessed, with a warning that says so) reads as the NIfTI of the
    same voxels and affine; a zip holding the one .nrrd reads as the file."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, size=(40, 36, 12)).astype(np.int16)  # (I, J, K)
    affine = np.array([[0.9, 0, 0, -20.0], [0, 0.9, 0, 15.0], [0, 0, 3.0, 100.0], [0, 0, 0, 1]])
    nifti = nib.Nifti1Image(hu, affine)
    buf = io.BytesIO(nib.Nifti1Image.to_bytes(nifti))
    expected = load_scan(buf.getvalue(), "ct.nii")
    fields = {"type": "short", "dimension": "3", "sizes": "40 36 12", "space": "right-anterior-superior",
              "space directions": "(0.9,0,0) (0,0.9,0) (0,0,3)", "space origin": "(-20,15,100)"}
    raw_big = hu.astype(">i2").tobytes(order="F")
    for extra, payload in (({"endian": "big", "encoding": "raw"}, raw_big),
                           ({"endian": "little", "encoding": "bzip2"}, bz2.compress(hu.astype("<i2").tobytes(order="F")))):
        scan = load_scan(_nrrd({**fields, **extra}, payload), "ct.nrrd")
        assert np.array_equal(np.asarray(scan.pixels), np.asarray(expected.pixels))
        assert np.allclose(scan.geometry.affine, expected.geometry.affine) and scan.warnings == []
    bare = {"type": "int16", "dimension": "3", "sizes": "40 36 12", "spacings": "0.9 0.9 3", "encoding": "raw"}
    guessed = load_scan(_nrrd(bare, hu.tobytes(order="F")), "bare.nrrd")
    assert np.allclose(guessed.spacing_mm, (3.0, 0.9, 0.9))
    assert len(guessed.warnings) == 1 and "states no patient space" in guessed.warnings[0]
    with zipfile.ZipFile(tmp_path / "ct.zip", "w") as zf:
        zf.writestr("export/ct.nrrd", _nrrd({**fields, "endian": "big", "encoding": "raw"}, raw_big))
    assert np.array_equal(np.asarray(load_scan(tmp_path / "ct.zip").pixels), np.asarray(expected.pixels))


@pytest.mark.parametrize("data,name,error,words", [
    (_nrrd({"type": "short", "dimension": "3", "sizes": "4 4 4", "encoding": "raw", "data file": "ct.raw"}, b""),
     "ct.nhdr", UnsupportedFormatError, "keeps its voxels in another file (ct.raw)"),
    (b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = ct.raw\n",
     "ct.mhd", UnsupportedFormatError, "single-file volume"),
    (_nrrd({"type": "short", "dimension": "4", "sizes": "3 4 4 4", "encoding": "raw"}, bytes(384)),
     "vectors.nrrd", UnsupportedFormatError, "a 4D volume (3, 4, 4, 4)"),
    (_nrrd({"type": "short", "dimension": "3", "sizes": "40 40 10", "encoding": "raw"}, bytes(100)),
     "cut.nrrd", InputError, "truncated (100 bytes for 16,000 voxels"),
    (_nrrd({"type": "short", "dimension": "3", "sizes": "40 40 10", "encoding": "gzip"}, b"not gzip at all"),
     "bad.nrrd", InputError, "compressed voxel data are corrupt"),
    (_nrrd({"type": "block", "dimension": "3", "sizes": "4 4 4", "encoding": "raw"}, bytes(64)),
     "odd.nrrd", UnsupportedFormatError, "voxel type 'block'"),
    (b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementNumberOfChannels = 3\nElementType = MET_UCHAR\n"
     b"ElementDataFile = LOCAL\n" + bytes(192), "rgb.mha", UnsupportedFormatError, "several channels"),
    (b"NRRD0004\ntype: short\n", "nohead.nrrd", InputError, "header does not end"),
    (b"ObjectType = Image\nNDims = 3\nDimSize = -10 10 10\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
     + bytes(10), "negative.mha", InputError, "sizes as -10 10 10: every size must be 1 or more"),
    (_nrrd({"type": "short", "dimension": "3", "sizes": "0 4 4", "encoding": "raw"}, b""),
     "empty.nrrd", InputError, "sizes as 0 4 4"),
])
def test_bad_volumes_say_what_to_give(data, name, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_scan(data, name)


def test_a_volume_over_the_limits_is_refused_before_it_is_decompressed():
    """The header's size is checked before the voxels are inflated (a small file can unpack to GB)."""
    import gzip

    bomb = _nrrd({"type": "short", "dimension": "3", "sizes": "512 512 3000", "encoding": "gzip"},
                 gzip.compress(bytes(1_000_000)))
    with pytest.raises(InputTooLargeError, match="exceeds the limits"):
        load_scan(bomb, "bomb.nrrd", LoadLimits())


def test_a_degenerate_space_is_guessed_with_a_warning_that_names_the_field():
    """Space directions that map two voxel axes onto one direction (a broken converter) are read as
    a volume that states none, and the warning names the NRRD's field, not a NIfTI's."""
    fields = {"type": "short", "dimension": "3", "sizes": "40 40 6", "space": "left-posterior-superior",
              "space directions": "(0.8,0,0) (0.8,0,0) (0,0,2)", "encoding": "raw"}
    scan = load_scan(_nrrd(fields, np.random.default_rng(1).integers(-1000, 300, 9600).astype("<i2").tobytes()), "broken.nrrd")
    assert scan.pixels.shape == (6, 40, 40)
    assert any(w.startswith("The NRRD's space directions are degenerate") for w in scan.warnings), scan.warnings


def _slicer(img, segments: list[tuple[str, int, int]]):
    """SimpleITK image -> the same with 3D Slicer's segment fields (name, layer, label value)."""
    for n, (name, layer, value) in enumerate(segments):
        img.SetMetaData(f"Segment{n}_Name", name)
        img.SetMetaData(f"Segment{n}_Layer", str(layer))
        img.SetMetaData(f"Segment{n}_LabelValue", str(value))
    return img


def test_a_slicer_segmentation_is_read_by_its_segment_names(predictor, tmp_path):
    """A 3D Slicer segmentation (.seg.nrrd) as the reference: saved cropped to its segments (here the
    sample's 128^3 labels inside a CT padded around them), in one layer with other segments beside
    liver and tumor or in two overlapping layers (liver with its tumor, tumor), it is compared as the
    full-size NIfTI labels are; segments named otherwise are refused with their names, and read by
    the label values given."""
    from hepatoscan.pipeline import analyze

    pad_lo, pad_hi = (16, 0, 4), (0, 8, 6)
    ct = sitk.ConstantPad(sitk.ReadImage(str(SAMPLES / "lits117_volume.nii.gz")), pad_lo, pad_hi, -1000)
    labels = sitk.ReadImage(str(SAMPLES / "lits117_segmentation.nii.gz"), sitk.sitkUInt8)
    volume, full = tmp_path / "ct.nrrd", tmp_path / "labels.nii.gz"
    sitk.WriteImage(ct, str(volume), useCompression=True)
    sitk.WriteImage(sitk.ConstantPad(labels, pad_lo, pad_hi, 0), str(full), useCompression=True)
    expected = analyze(predictor, volume, reference=full).agreement
    assert expected.liver.dice > 0.9 and expected.tumor.dice > 0.5

    one_layer = sitk.GetArrayFromImage(labels)
    one_layer[:3][one_layer[:3] == 0] = 3  # a vessel's voxels, another segment
    flat = sitk.GetImageFromArray(one_layer)
    flat.CopyInformation(labels)
    layered = sitk.Compose(sitk.Cast(labels >= 1, sitk.sitkUInt8), sitk.Cast(labels == 2, sitk.sitkUInt8))
    cases = {"flat.seg.nrrd": _slicer(flat, [("Liver", 0, 1), ("Tumor 1", 0, 2), ("Portal vein", 0, 3)]),
             "layers.seg.nrrd": _slicer(layered, [("liver", 0, 1), ("Liver tumor", 1, 1)])}
    for name, seg in cases.items():
        sitk.WriteImage(seg, str(tmp_path / name), useCompression=True)
        result = analyze(predictor, volume, reference=tmp_path / name).agreement
        assert (result.liver, result.tumor) == (expected.liver, expected.tumor), name
        notes = " ".join(result.notes)
        assert "3D Slicer segmentation" in notes and "placed where its header puts it" in notes, notes
    assert "'Portal vein') as background" in " ".join(analyze(predictor, volume, reference=tmp_path / "flat.seg.nrrd").agreement.notes)

    unnamed = sitk.GetImageFromArray(sitk.GetArrayFromImage(labels))
    unnamed.CopyInformation(labels)
    sitk.WriteImage(_slicer(unnamed, [("Segment_1", 0, 1), ("Segment_2", 0, 2)]), str(tmp_path / "unnamed.seg.nrrd"))
    with pytest.raises(InputError, match=r"segments \('Segment_1' \(1\), 'Segment_2' \(2\)\) name no liver"):
        analyze(predictor, volume, reference=tmp_path / "unnamed.seg.nrrd")
    given = analyze(predictor, volume, reference=tmp_path / "unnamed.seg.nrrd", reference_values=(1, 2)).agreement
    assert (given.liver, given.tumor) == (expected.liver, expected.tumor)


def test_masks_are_written_as_a_slicer_segmentation_that_reads_back(predictor, ct, tmp_path):
    """A volume's masks are also written as a 3D Slicer segmentation (segmentation.seg.nrrd):
    SimpleITK reads it in the place and with the voxels of labels.nii.gz, its segments are named
    'Liver' and 'Liver tumor', and given back as the reference it agrees with the masks exactly."""
    from hepatoscan.pipeline import analyze, write_outputs

    _, nii = ct
    result = analyze(predictor, nii)
    paths = write_outputs(result, tmp_path / "out")
    seg, labels = sitk.ReadImage(str(paths["slicer_seg"])), sitk.ReadImage(str(paths["labels_nifti"]))
    assert seg.GetSize() == labels.GetSize()
    assert np.allclose(seg.GetOrigin(), labels.GetOrigin(), atol=1e-4)
    assert np.allclose(seg.GetDirection(), labels.GetDirection(), atol=1e-6)
    assert np.allclose(seg.GetSpacing(), labels.GetSpacing())
    assert np.array_equal(sitk.GetArrayViewFromImage(seg), sitk.GetArrayViewFromImage(labels))
    assert (seg.GetMetaData("Segment0_Name"), seg.GetMetaData("Segment1_Name")) == ("Liver", "Liver tumor")
    again = analyze(predictor, nii, reference=paths["slicer_seg"]).agreement
    assert again.liver.dice == 1.0 and again.tumor.dice == 1.0
    assert "'Liver' read as liver, 'Liver tumor' as tumor" in " ".join(again.notes)


@pytest.mark.parametrize("header,compressed,data_suffix", [(".mhd", False, ".raw"), (".mhd", True, ".zraw"),
                                                           (".nhdr", False, ".raw"), (".nhdr", True, ".raw.gz")])
def test_a_header_with_its_voxels_beside_it(ct, tmp_path, header, compressed, data_suffix):
    """A .mhd or .nhdr header with its voxels in a file beside it (SLIVER07's liver CTs are .mhd +
    .raw) reads as the NIfTI does: by its path, as a folder, and zipped; given alone (one upload),
    it says to give both."""
    img, nii = ct
    folder = tmp_path / "case"
    folder.mkdir()
    sitk.WriteImage(img, str(folder / f"ct{header}"), useCompression=compressed)
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"ct{header}", f"ct{data_suffix}"])
    expected = np.asarray(load_scan(nii).pixels)
    by_path, as_folder = load_scan(folder / f"ct{header}"), load_scan(folder)
    for scan in (by_path, as_folder):
        assert np.array_equal(np.asarray(scan.pixels), expected) and scan.warnings == []
        assert scan.name == "ct"
    with zipfile.ZipFile(tmp_path / "case.zip", "w") as zf:
        for p in folder.iterdir():
            zf.write(p, f"export/{p.name}")
    zipped = load_scan(tmp_path / "case.zip")
    assert np.array_equal(np.asarray(zipped.pixels), expected) and zipped.warnings == []
    with pytest.raises(UnsupportedFormatError, match="Give both files together"):
        load_scan((folder / f"ct{header}").read_bytes(), f"ct{header}")
    (folder / f"ct{data_suffix}").unlink()
    with pytest.raises(InputError, match=f"its voxels are in ct{data_suffix.replace('.', '[.]')}, which is not beside it"):
        load_scan(folder / f"ct{header}")


def test_a_sliver07_style_dataset_is_compared_pair_by_pair(ct, tmp_path):
    """`hepatoscan compare --images --references` on a dataset laid out as SLIVER07's (liver-orig001.mhd
    + .raw, liver-seg001.mhd + .raw, 0/1 liver masks): the .raw files are no entries, the pair is
    found by name and compared."""
    import csv

    from test_agreement import run_compare

    img, _ = ct
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    sitk.WriteImage(img, str(images / "liver-orig001.mhd"))
    liver = sitk.Cast(sitk.ReadImage(str(SAMPLES / "lits117_segmentation.nii.gz")) >= 1, sitk.sitkUInt8)
    liver.CopyInformation(img)
    sitk.WriteImage(liver, str(labels / "liver-seg001.mhd"))
    r = run_compare("--images", images, "--references", labels, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "agreement.csv").open()))
    assert rows[0]["input"].endswith("liver-orig001.mhd") and rows[0]["reference"].endswith("liver-seg001.mhd")
    assert float(rows[0]["liver_dice"]) > 0.9 and len(rows) == 3


@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_a_2d_slice_reads_as_that_slice_of_its_volume(ct, tmp_path, ext):
    """One axial slice saved as a 2D NRRD or MetaImage (as SimpleITK or 3D Slicer save a slice)
    reads as a one-slice volume holding that slice of the volume, in HU, with its pixel spacing."""
    img, nii = ct
    k = 80
    sitk.WriteImage(img[:, :, k], str(tmp_path / f"slice{ext}"))
    scan = load_scan(tmp_path / f"slice{ext}")
    volume = load_scan(nii)
    assert scan.pixels.shape == (1, *volume.pixels.shape[1:]) and scan.is_hu
    assert np.array_equal(np.asarray(scan.pixels[0]), np.asarray(volume.pixels[k]))
    assert np.allclose(scan.spacing_mm[1:], volume.spacing_mm[1:])


@pytest.mark.parametrize("where", ["/etc/hostname", "../secret.raw", "..\\secret.raw", "C:/data/ct.raw"])
def test_a_header_cannot_name_a_file_outside_its_folder(tmp_path, where):
    """A header uploaded to the app is read from the server's disk: one naming a file elsewhere (an
    absolute path, "..", a drive) is refused, so no other file of the server is read as voxels."""
    (tmp_path / "secret.raw").write_bytes(bytes(2 * 64 * 64 * 4))
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "ct.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 64 64 4\nElementType = MET_SHORT\n"
                                   f"ElementDataFile = {where}\n")
    with pytest.raises(InputError, match="outside the header's folder, which is not read"):
        load_scan(folder / "ct.mhd")


def test_a_cropped_slicer_segmentation_of_a_dicom_series_is_placed(predictor, tmp_path):
    """A Slicer segmentation made on a DICOM series and saved cropped to its segments is placed on
    the series' slices by its coordinates (SimpleITK reads the series' geometry independently), and
    compares as the full-size labels do; the series is feet first and stores the patient's right first."""
    from test_dicom_seg import _feet_first_series

    from hepatoscan.io.nifti import read_nifti
    from hepatoscan.pipeline import analyze

    import nibabel as nib

    hu = np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[40:90]
    labels = np.rint(read_nifti(nib.load(str(SAMPLES / "lits117_segmentation.nii.gz")))[0]).astype(np.uint8)[40:90]
    series = tmp_path / "series"
    series.mkdir()
    _feet_first_series(series, hu)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    geometry = sitk.DICOMOrient(reader.Execute(), "LPS")  # voxels in the display's order: x left, y back, z up
    full = sitk.GetImageFromArray(labels)
    full.CopyInformation(geometry)
    zs, ys, xs = (np.nonzero(labels.any(axis=a))[0] for a in ((1, 2), (0, 2), (0, 1)))
    lo = [int(xs[0]), int(ys[0]), int(zs[0])]
    cropped = sitk.RegionOfInterest(full, [int(xs[-1]) + 1 - lo[0], int(ys[-1]) + 1 - lo[1], int(zs[-1]) + 1 - lo[2]], lo)
    assert cropped.GetSize() != full.GetSize()
    sitk.WriteImage(_slicer(cropped, [("Liver", 0, 1), ("Tumor", 0, 2)]), str(tmp_path / "seg.seg.nrrd"))
    sitk.WriteImage(full, str(tmp_path / "full.nrrd"))
    placed = analyze(predictor, series, reference=tmp_path / "seg.seg.nrrd").agreement
    whole = analyze(predictor, series, reference=tmp_path / "full.nrrd").agreement
    assert (placed.liver, placed.tumor) == (whole.liver, whole.tumor) and whole.liver.dice > 0.9
    assert "placed where its header puts it" in " ".join(placed.notes)
