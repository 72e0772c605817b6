"""Masks of a DICOM series written back as a DICOM SEG that refers to each source slice."""
from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import SAMPLES
from hepatoscan.io import load_scan
from hepatoscan.pipeline import analyze, write_outputs
from test_io import _dicom_bytes

STUDY_UID, FRAME_OF_REFERENCE_UID = "1.2.826.0.1.3680043.8.498.101", "1.2.826.0.1.3680043.8.498.102"


def _feet_first_series(folder, hu: np.ndarray) -> list[str]:
    """(Z, H, W) HU shown the standard way -> a feet-first series in ``folder`` (rows stored toward the
    patient's right, ImageOrientationPatient -1 0 0 0 1 0), files in shuffled order; -> the
    SOPInstanceUIDs, feet to head."""
    import pydicom

    hu = np.maximum(hu, -1024).astype(np.int16)  # _dicom_bytes stores HU + 1024 unsigned
    uids = []
    for k in np.random.default_rng(0).permutation(len(hu)):
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(hu[k][:, ::-1].copy(), 2.0 * k, int(k) + 1)))
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = STUDY_UID, FRAME_OF_REFERENCE_UID
        ds.save_as(folder / f"IM{k:03d}.dcm")
    for k in range(len(hu)):
        uids.append(str(pydicom.dcmread(folder / f"IM{k:03d}.dcm", stop_before_pixels=True).SOPInstanceUID))
    return uids


def test_dicom_series_gets_a_seg_whose_frames_match_its_slices(predictor, tmp_path):
    """Each SEG frame refers to its source slice and holds that slice's masks in the file's own
    stored orientation (here flipped left-right from the display); the segments are coded."""
    hd = pytest.importorskip("highdicom", reason="highdicom (app and full profiles; `make test` installs it) writes SEG")
    hu = np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[48:80]
    series = tmp_path / "series"
    series.mkdir()
    uids = _feet_first_series(series, hu)
    result = analyze(predictor, series)
    seg = result.segmentation
    assert seg.tumor.any() and seg.liver.any()
    paths = write_outputs(result, tmp_path / "out")
    obj = hd.seg.segread(paths["dicom_seg"])
    assert obj.StudyInstanceUID == STUDY_UID and obj.FrameOfReferenceUID == FRAME_OF_REFERENCE_UID
    assert [s.SegmentLabel for s in obj.SegmentSequence] == ["Liver", "Liver tumor"]
    assert obj.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Liver"
    stored = obj.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], assert_missing_frames_are_empty=True)
    assert stored.shape == (len(hu), *hu.shape[1:], 2)
    np.testing.assert_array_equal(stored[..., 0], seg.liver[:, :, ::-1])  # stored rows run toward the right
    np.testing.assert_array_equal(stored[..., 1], seg.tumor[:, :, ::-1])


def test_non_dicom_inputs_and_seriesless_headers_get_no_seg(predictor, tmp_path, caplog):
    """A NIfTI gets NIfTI masks but no SEG; a series without a StudyInstanceUID (nothing for a SEG to
    refer to) gets every other output, and the log says what it lacks (not highdicom's exception)."""
    import logging

    nifti = write_outputs(analyze(predictor, SAMPLES / "lits117_volume.nii.gz"), tmp_path / "nifti")
    assert "dicom_seg" not in nifti and "labels_nifti" in nifti
    series = tmp_path / "series"
    series.mkdir()
    for k in range(4):
        (series / f"IM{k}.dcm").write_bytes(_dicom_bytes(np.zeros((48, 48), np.int16) + np.arange(48) * k, 2.0 * k, k + 1))
    with caplog.at_level(logging.WARNING):
        out = write_outputs(analyze(predictor, series), tmp_path / "series_out")
    assert "dicom_seg" not in out and "labels_nifti" in out and not (tmp_path / "series_out" / "segmentation.dcm").exists()
    said = [r.getMessage() for r in caplog.records if "no DICOM SEG" in r.getMessage()]
    assert said == ["no DICOM SEG for series: its slices lack StudyInstanceUID, which a SEG must refer to (removed by "
                    "an anonymiser or converter?); the NIfTI masks and the other outputs are written"]


@pytest.mark.parametrize("iop", [[1, 0, 0, 0, 1, 0], [-1, 0, 0, 0, 1, 0], [1, 0, 0, 0, -1, 0], [-1, 0, 0, 0, -1, 0],
                                 [0, 1, 0, 1, 0, 0], [0, -1, 0, 1, 0, 0], [0, 1, 0, -1, 0, 0], [0, -1, 0, -1, 0, 0]])
def test_masks_go_back_to_each_axial_orientation_as_stored(iop):
    """to_stored inverts the display view for every axial way of storing rows and columns (the
    eight flips and transposes), so a SEG frame lies on its source pixels."""
    from pydicom.dataset import Dataset

    from hepatoscan.io.dicom import _to_display, to_stored

    ds = Dataset()
    ds.ImageOrientationPatient = iop
    stored = np.arange(6 * 9).reshape(6, 9)
    display = _to_display(stored, ds)
    assert display.shape == ((9, 6) if iop[1] else (6, 9))
    np.testing.assert_array_equal(to_stored(display, ds), stored)


def test_a_jpeg_compressed_dicom_screenshot_is_read_as_a_jpeg(predictor, sample_volume, tmp_path):
    """A viewer's screenshot saved as a secondary-capture DICOM with JPEG baseline compression holds
    a JPEG's spread black: its window is read as a .jpg's; stored uncompressed, as a PNG's."""
    gdcm = pytest.importorskip("gdcm", reason="python-gdcm (app and full profiles) writes the JPEG baseline file")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    from hepatoscan.preprocessing import estimate_display_window, render_8bit
    from test_io import _transcode

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = SecondaryCaptureImageStorage, ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    grey = render_8bit(sample_volume[1][64], (-125, 225)).astype(np.uint8)
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = grey.tobytes()
    ds.save_as(tmp_path / "plain.dcm", enforce_file_format=True)
    _transcode(gdcm, tmp_path / "plain.dcm", tmp_path / "packed.dcm", "JPEGBaselineProcess1")
    plain, packed = load_scan(tmp_path / "plain.dcm"), load_scan(tmp_path / "packed.dcm")
    assert not plain.is_hu and not packed.is_hu and packed.jpeg and not plain.jpeg
    assert predictor.segment(packed).window_estimates[0] == estimate_display_window(np.asarray(packed.pixels[0]), jpeg=True)
    assert predictor.segment(plain).window_estimates[0] == estimate_display_window(grey)


def test_a_seg_beside_its_series_is_left_out_and_alone_is_refused(predictor, tmp_path):
    """A study folder that holds the series and its SEG (HepatoScan's own, uploaded again) reads the
    series, with a warning; the SEG alone is refused with the fix, not read as CT."""
    pytest.importorskip("highdicom", reason="highdicom (app and full profiles) writes the SEG")
    import shutil

    from hepatoscan.errors import InputError

    series = tmp_path / "study"
    series.mkdir()
    hu = np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[48:64]
    _feet_first_series(series, hu)
    seg = write_outputs(analyze(predictor, series), tmp_path / "out")["dicom_seg"]
    shutil.copy(seg, series / "SEG.dcm")
    scan = load_scan(series)
    assert scan.pixels.shape == hu.shape and np.array_equal(scan.pixels, np.maximum(hu, -1024))
    assert any("1 segmentation, structure-set or report object ignored (no CT image in it)" in w for w in scan.warnings)
    with pytest.raises(InputError, match="no CT image. Give the CT series"):
        load_scan(seg)


def test_cli_writes_the_seg_without_highdicoms_chatter(tmp_path):
    """highdicom logs a line at INFO for each attribute module it copies (a dozen a series); the CLI
    keeps its log to HepatoScan's own progress and warnings (hepatoscan.logs)."""
    pytest.importorskip("highdicom", reason="highdicom (app and full profiles) writes SEG")
    from test_cli import run_cli

    series = tmp_path / "series"
    series.mkdir()
    _feet_first_series(series, np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[60:66])
    r = run_cli(series, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "series" / "segmentation.dcm").is_file()
    assert "segmented slice 6 of 6" in r.stderr  # HepatoScan's own INFO lines are still there
    assert "copy attributes of module" not in r.stderr and "highdicom" not in r.stderr, r.stderr
