"""Where each slice lies in its source: a report's slice numbers (from 0, feet to head) carry the
DICOM series' own image numbers and z, a multi-frame file's frame numbers, or a NIfTI's own slice
index, so that a reader finds the slice in a viewer."""
import subprocess

import numpy as np
import pytest

from hepatoscan.io import load_scan
from hepatoscan.pipeline import analyze
from hepatoscan.scan import source_label
from hepatoscan.tables import lesion_rows, slice_rows
from test_io import _dicom_bytes, _enhanced_ct, _reformat_series, _zip_files
from test_report import _tool


def _head_first_series(hu: np.ndarray, z0_mm: float = -300.0) -> list[tuple[str, bytes]]:
    """(Z, H, W) HU, feet to head -> DICOM files numbered as scanners number a head-first axial
    series: image 1 at the head, z rising toward the head from ``z0_mm``."""
    n = len(hu)
    return [(f"IM{n - z:04d}.dcm", _dicom_bytes(hu[z], z0_mm + 1.0 * z, instance=n - z)) for z in range(n)]


def test_a_dicom_series_slice_is_named_by_its_image_number_and_z():
    hu = np.stack([np.full((32, 32), 10 * z, np.int16) for z in range(6)])
    scan = load_scan(_zip_files(_head_first_series(hu)[::-1]), "series.zip")
    np.testing.assert_array_equal(scan.pixels[:, 0, 0], hu[:, 0, 0])  # feet to head
    assert [scan.slice_source(z) for z in range(6)] == [
        {"instance_number": 6 - z, "z_mm": -300.0 + z} for z in range(6)]
    assert source_label(scan.slice_source(0)) == "image 6, z -300.0 mm"
    assert source_label(scan.slice_source(0), short=True) == "image 6"


def test_a_series_without_instance_numbers_is_named_by_z():
    import io

    import pydicom

    files = []
    for name, data in _head_first_series(np.arange(3 * 32 * 32, dtype=np.int16).reshape(3, 32, 32), z0_mm=12.5):
        ds = pydicom.dcmread(io.BytesIO(data))
        del ds.InstanceNumber
        buf = io.BytesIO()
        ds.save_as(buf)
        files.append((name, buf.getvalue()))
    scan = load_scan(_zip_files(files), "series.zip")
    assert [source_label(scan.slice_source(z)) for z in range(3)] == ["z 12.5 mm", "z 13.5 mm", "z 14.5 mm"]


def test_an_enhanced_ct_slice_is_named_by_its_frame(sample_volume):
    """Frames stored head to feet: frame 1 is the head's slice."""
    _, hu, _ = sample_volume
    scan = load_scan(_enhanced_ct(hu[40:50]), "enhanced.dcm")
    assert [scan.slice_source(z) for z in range(10)] == [{"frame": 10 - z, "z_mm": 100.0 + z} for z in range(10)]
    assert source_label(scan.slice_source(9), short=True) == "frame 1"


def test_a_resliced_series_has_no_source_slices(sample_volume):
    """An axial slice made from a coronal series is no image of it: nothing to name."""
    _, hu, _ = sample_volume
    volume = np.maximum(hu[30:40, 10:110, 20:100], -1024).astype(np.int16)
    scan = load_scan(_zip_files(_reformat_series(volume, "coronal")), "coronal.zip")
    assert scan.slice_source(0) is None and "slice_sources" not in scan.metadata


def test_a_nifti_stored_head_to_feet_names_the_files_own_slice(sample_volume, tmp_path):
    import nibabel as nib

    path, hu, _ = sample_volume
    img = nib.load(str(path))
    assert load_scan(path).slice_source(0) is None  # stored feet to head: its index is HepatoScan's
    data = np.asarray(img.dataobj)
    flip = np.diag([1.0, 1.0, -1.0, 1.0])
    flip[2, 3] = data.shape[2] - 1  # file slice k lies where slice n-1-k of the original does
    nib.save(nib.Nifti1Image(data[:, :, ::-1], img.affine @ flip), tmp_path / "reversed.nii.gz")
    scan = load_scan(tmp_path / "reversed.nii.gz")
    np.testing.assert_array_equal(scan.pixels, hu)
    n = len(hu)
    assert [scan.slice_source(z) for z in (0, 80, n - 1)] == [
        {"file_slice": n - 1, "file_axis": "K"}, {"file_slice": n - 81, "file_axis": "K"},
        {"file_slice": 0, "file_axis": "K"}]
    assert source_label(scan.slice_source(80)) == f"file slice {n - 81}"
    # The file's own slice k holds the voxels the scan shows as slice z (turned for display).
    stored = np.asarray(nib.load(tmp_path / "reversed.nii.gz").dataobj)
    for z in (0, 80, n - 1):
        k = scan.slice_source(z)["file_slice"]
        np.testing.assert_array_equal(np.sort(stored[:, :, k], axis=None), np.sort(scan.pixels[z], axis=None))
        assert not np.array_equal(np.sort(stored[:, :, k + (1 if k < n - 1 else -1)], axis=None),
                                  np.sort(scan.pixels[z], axis=None))


def test_a_nifti_stored_along_another_axis_names_that_axis(sample_volume, tmp_path):
    """Slices along the file's first axis (I), feet to head."""
    import nibabel as nib

    path, hu, _ = sample_volume
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).transpose(2, 0, 1), img.affine[:, [2, 0, 1, 3]]),
             tmp_path / "k_first.nii.gz")
    scan = load_scan(tmp_path / "k_first.nii.gz")
    np.testing.assert_array_equal(scan.pixels, hu)
    assert scan.slice_source(80) == {"file_slice": 80, "file_axis": "I"}
    assert source_label(scan.slice_source(80)) == "file slice 80 (axis I)"


@pytest.fixture(scope="module")
def series_result(predictor, sample_volume, tmp_path_factory):
    """LiTS 117 as a head-first DICOM series (image 1 at the head), segmented."""
    _, hu, _ = sample_volume
    folder = tmp_path_factory.mktemp("series")
    for name, data in _head_first_series(hu):
        (folder / name).write_bytes(data)
    return analyze(predictor, folder), len(hu)


def test_a_series_result_names_each_slice_and_lesion_as_the_series_does(series_result):
    result, n = series_result
    doc = result.document()
    lesions = doc["measurements"]["volume"]["lesions"]
    assert len(lesions) > 10
    for lesion in lesions:
        z = lesion["largest_slice"]
        assert lesion["largest_slice_source"] == {"instance_number": n - z, "z_mm": -300.0 + z}
    for s in doc["measurements"]["slices"]:
        assert s["source"]["instance_number"] == n - s["slice_index"]
    z = result.default_slice
    assert result.slice_name(z) == f"Slice {z} (image {n - z}, z {-300.0 + z:.1f} mm)"
    assert [f"Slice {z}: in the series", f"image {n - z}, z {-300.0 + z:.1f} mm"] in slice_rows(result, z)
    headers, rows = lesion_rows(result, z)
    column = headers.index("Largest on slice")
    assert [r[column] for r in rows] == [f"{l['largest_slice']} (image {n - l['largest_slice']})" for l in lesions]


def test_the_report_of_a_series_gives_its_image_numbers(series_result, tmp_path):
    result, n = series_result
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(result.report_pdf())
    text = " ".join(subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    z, first = result.measurements.volume.largest_tumor_slice, result.measurements.volume.lesions[0]
    assert f"0 (feet) to {n - 1} (head)" in text and f"slice 0 is image {n}, z -300.0 mm" in text
    assert f"{z} (image {n - z}, z {-300.0 + z:.1f} mm)" in text  # the largest tumor's slice
    assert f"{first.largest_slice} (image {n - first.largest_slice})" in text  # the lesion table
    for k in result.key_slices[:3]:  # the key slices' captions
        assert f"Slice {k} (image {n - k}, z {-300.0 + k:.1f} mm)" in text
