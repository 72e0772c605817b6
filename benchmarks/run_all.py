"""Speed, size and memory figures of HepatoScan on this machine. Prints a table; --json writes it.

    python benchmarks/run_all.py [--json out/benchmarks.json] [--skip-keras] [--skip-app] [--peak-rss-only]

Targets (from the issues) are printed beside each figure; nothing here asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from scripts.fetch_samples import write_stack  # noqa: E402  (one writer of PNG-stack zips)

SAMPLES = ROOT / "samples"
PNG = SAMPLES / "lits117_z080_w350.png"
VOLUME = SAMPLES / "lits117_volume.nii.gz"
PNG_STACK = SAMPLES / "lits117_w350_slices.zip"  # 64 PNG slices of one series


def timed(fn, repeat: int = 10, warmup: int = 1) -> float:
    """Median wall time of fn() in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def model_figures(skip_keras: bool) -> dict:
    from hepatoscan.predictor import Predictor

    p = Predictor.from_model_dir(batch_size=1)
    x = np.random.default_rng(0).random((1, 256, 256), dtype=np.float32)
    out = {"model": p.card.name, "model_bytes": p.card.model_path.stat().st_size,
           "litert_ms_per_slice_2_threads": round(timed(lambda: p.predict_probs(x), 30, 3), 1)}
    keras_path = ROOT / "models" / "source" / "hepatoscan_unet.keras"
    if not skip_keras and keras_path.exists():
        import keras

        model = keras.saving.load_model(keras_path, compile=False)
        xk = x[..., None]
        out["keras_float32_ms_per_slice"] = round(timed(lambda: model(xk, training=False), 10, 2), 1)
        out["speedup_vs_keras"] = round(out["keras_float32_ms_per_slice"] / out["litert_ms_per_slice_2_threads"], 1)
    return out


def import_and_load_s() -> float:
    code = ("import time; t=time.perf_counter(); import hepatoscan.pipeline; "
            "from hepatoscan.predictor import Predictor; Predictor.from_model_dir(); "
            "print(time.perf_counter()-t)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return round(float(r.stdout.strip().splitlines()[-1]), 2)


def pipeline_figures() -> dict:
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    p = Predictor.from_model_dir()

    def png_end_to_end():
        r = analyze(p, PNG)
        r.views(0)
        return r

    result = png_end_to_end()
    out = {"png_end_to_end_ms": round(timed(png_end_to_end, 20), 1),
           "pdf_ms": round(timed(lambda: result.report_pdf(), 5), 1)}
    t = time.perf_counter()
    analyze(p, VOLUME)
    out["volume_128_slices_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    analyze(p, PNG_STACK)
    out["png_stack_64_slices_s"] = round(time.perf_counter() - t, 2)
    return out


PEAK_RSS_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from hepatoscan.pipeline import analyze, write_outputs
from hepatoscan.predictor import Predictor
p = Predictor.from_model_dir()
r = analyze(p, {path!r}, reference={reference!r} or None, earlier={earlier!r} or None)
if {outputs!r}:
    write_outputs(r, {outputs!r}, pdf=True)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child of this (large,
# Keras-holding) benchmark process would report the parent's size.
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(r.scan.pixels.shape, hwm_kb / 1024)
"""


KEPT_RSS_SCRIPT = """
import gc, sys, tempfile, time
sys.path.insert(0, {root!r})
from hepatoscan.pipeline import analyze
from hepatoscan.predictor import Predictor
def rss_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
import nibabel, pydicom  # imported before the base: their import (GDCM's, where installed) is not the result
p = Predictor.from_model_dir()
gc.collect()
base = rss_mb()
r = analyze(p, {path!r})
gc.collect()
held = rss_mb() - base
t = time.perf_counter()
r.keep_arrays_in(tempfile.mkdtemp())
moved_s = time.perf_counter() - t
gc.collect()
print(round(held, 1), round(rss_mb() - base, 1), round(moved_s, 2))
"""


def _kept_result_mb(path: Path) -> dict:
    """Memory a result kept for the app's slider holds (RSS over the loaded model), in memory and
    once its arrays are moved to disk (Result.keep_arrays_in), and how long the move takes."""
    r = subprocess.run([sys.executable, "-c", KEPT_RSS_SCRIPT.format(root=str(ROOT), path=str(path))],
                       capture_output=True, text=True, check=True)
    held, kept, moved_s = (float(v) for v in r.stdout.split())
    return {"kept_result_512x512x150_in_memory_mb": held, "kept_result_512x512x150_on_disk_mb": kept,
            "keep_arrays_on_disk_512x512x150_s": moved_s}


def _write_dicom_series(hu_zyx: np.ndarray, folder: Path) -> None:
    """(Z, H, W) HU -> one uncompressed CT DICOM file per slice (slope 1, intercept -1024)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series, study, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    for z, hu in enumerate(hu_zyx):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = CTImageStorage, ExplicitVRLittleEndian
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Modality, ds.SOPClassUID, ds.SOPInstanceUID = "CT", CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.InstanceNumber = series, z + 1
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study, frame_of_reference
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 1.5 * z], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.5
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        stored = (np.clip(hu, -1024, 3000) + 1024).astype(np.uint16)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM{z:04d}.dcm", enforce_file_format=True)


def _peak_rss(path: Path, outputs: Path | None = None, reference: Path | None = None,
              earlier: Path | None = None) -> tuple[str, float]:
    r = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT.format(
        root=str(ROOT), path=str(path), outputs=str(outputs) if outputs else "",
        reference=str(reference) if reference else "", earlier=str(earlier) if earlier else "")],
        capture_output=True, text=True, check=True)
    shape, rss = r.stdout.strip().rsplit(" ", 1)
    return shape, round(float(rss), 1)


def _dicom_seg_s(series: Path) -> dict:
    """Seconds to write the DICOM SEG of a segmented 512 x 512 x 150 series (highdicom); {} without it."""
    from hepatoscan.dicom_seg import highdicom_available, write_dicom_seg
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    if not highdicom_available():
        return {}
    result = analyze(Predictor.from_model_dir(), series)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_dicom_seg(result, Path(tmp) / "seg.dcm")
        return {"dicom_seg_512x512x150_s": round(time.perf_counter() - t, 2)}


def _compare_s(nifti: Path, labels: Path) -> dict:
    """Seconds to read a 512 x 512 x 150 reference segmentation and compare a result with it
    (Dice, border distances, lesion detection), beyond segmenting."""
    from hepatoscan.agreement import compare
    from hepatoscan.io.reference import read_reference
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    result = analyze(Predictor.from_model_dir(), nifti)
    seg = result.segmentation
    t = time.perf_counter()
    ref = read_reference(labels, seg.scan)
    compare(seg.liver, seg.tumor, ref.labels, seg.scan.spacing_mm, ref.name)
    return {"compare_512x512x150_s": round(time.perf_counter() - t, 2)}


def _follow_up_s(nifti: Path) -> dict:
    """Seconds to segment a 512 x 512 x 150 volume with an earlier study (itself) and compare,
    against segmenting it alone."""
    from hepatoscan.pipeline import analyze
    from hepatoscan.predictor import Predictor

    predictor = Predictor.from_model_dir()
    t = time.perf_counter()
    analyze(predictor, nifti)
    alone = time.perf_counter() - t
    t = time.perf_counter()
    analyze(predictor, nifti, earlier=nifti)
    return {"segment_512x512x150_s": round(alone, 2), "follow_up_512x512x150_s": round(time.perf_counter() - t, 2)}


def peak_rss_mb() -> dict:
    """Peak RSS of one process segmenting a 512 x 512 x 150 volume (the LiTS sample, upsampled):
    as .nii.gz, as a gzip .nrrd, as a DICOM series folder, as zips of 8-bit and of 16-bit (HU + 1024) PNG slices, and
    as .nii.gz with every CLI output and the PDF."""
    import nibabel as nib

    from hepatoscan.io import load_scan
    from hepatoscan.io.itk_formats import write_nrrd
    from hepatoscan.io.reference import read_reference

    scan = load_scan(VOLUME)
    hu = np.asarray(scan.pixels)  # (128, 128, 128)
    labels = read_reference(ROOT / "samples" / "lits117_segmentation.nii.gz", scan).labels

    def upsampled(a):
        a = np.repeat(np.repeat(a, 4, axis=1), 4, axis=2)
        return np.concatenate([a, a[:22]])  # (150, 512, 512)

    big = upsampled(hu)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nifti, series, reference = tmp / "big.nii.gz", tmp / "series", tmp / "big_labels.nii.gz"
        affine = np.diag([-0.7, -0.7, 1.5, 1])
        nib.save(nib.Nifti1Image(big.astype(np.int16).transpose(2, 1, 0), affine), str(nifti))
        nib.save(nib.Nifti1Image(upsampled(labels).transpose(2, 1, 0), affine), str(reference))
        series.mkdir()
        _write_dicom_series(big, series)
        nrrd = tmp / "big.nrrd"  # the same voxels in the same place, as 3D Slicer saves a volume
        write_nrrd(big.astype(np.int16).transpose(2, 1, 0), affine, nrrd)
        stack = tmp / "pngs.zip"
        write_stack(big, stack, range(len(big)), (-160.0, 240.0), folder="")
        stack_hu = tmp / "pngs16.zip"
        write_stack(big, stack_hu, range(len(big)), None, folder="")
        del big, hu
        out = {"peak_rss_512x512x150_mb": _peak_rss(nifti)[1],
               "peak_rss_512x512x150_nrrd_mb": _peak_rss(nrrd)[1],
               "peak_rss_512x512x150_dicom_series_mb": _peak_rss(series)[1],
               "peak_rss_512x512x150_png_stack_mb": _peak_rss(stack)[1],
               "peak_rss_512x512x150_png16_hu_stack_mb": _peak_rss(stack_hu)[1],
               "peak_rss_512x512x150_with_outputs_and_pdf_mb": _peak_rss(nifti, tmp / "out")[1],
               "peak_rss_512x512x150_compared_with_reference_mb": _peak_rss(nifti, reference=reference)[1],
               "peak_rss_512x512x150_follow_up_mb": _peak_rss(nifti, earlier=nifti)[1],
               **_follow_up_s(nifti),
               **_compare_s(nifti, reference),
               **_kept_result_mb(nifti), **_dicom_seg_s(series)}
    return out


def app_figures() -> dict:
    import app

    handlers = app.HepatoScanApp(app.PredictorPool(ROOT / "models", 1), app.RequestFiles())
    args = [0, "Jürgen Müller", "", "", "", "", "", ""]
    out = {"app_png_request_ms": round(timed(lambda: handlers.segment_api(str(PNG), *args), 10), 1)}
    t = time.perf_counter()
    handlers.segment_api(str(VOLUME), *args)
    out["app_volume_request_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()  # the page's request: views, PDF and the masks .zip too
    handlers.segment_ui(str(VOLUME), 0, 0, *[""] * 7, progress=None)
    out["app_page_volume_request_s"] = round(time.perf_counter() - t, 2)
    handlers.close()
    return out


TARGETS = {
    "model_bytes": "<= 2,000,000", "litert_ms_per_slice_2_threads": "<= 20", "speedup_vs_keras": ">= 3",
    "import_and_load_s": "<= 1.5", "png_end_to_end_ms": "<= 60", "pdf_ms": "<= 500",
    "volume_128_slices_s": "<= 4", "peak_rss_512x512x150_mb": "<= 300",
    "peak_rss_512x512x150_dicom_series_mb": "<= 300", "peak_rss_512x512x150_nrrd_mb": "<= 300", "peak_rss_512x512x150_png_stack_mb": "<= 300",
    "peak_rss_512x512x150_png16_hu_stack_mb": "<= 300",
    "app_png_request_ms": "<= 300", "app_volume_request_s": "<= 6", "app_page_volume_request_s": "<= 6",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-keras", action="store_true")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--peak-rss-only", action="store_true",
                    help="only the peak-RSS figures: runs in the core install (no TensorFlow, no Gradio)")
    a = ap.parse_args(argv)
    figures = {"cpu_count": os.cpu_count()}
    if not a.peak_rss_only:
        figures.update(model_figures(a.skip_keras))
        figures["import_and_load_s"] = import_and_load_s()
        figures.update(pipeline_figures())
    figures.update(peak_rss_mb())
    if not (a.skip_app or a.peak_rss_only):
        figures.update(app_figures())
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v!s:>14}  {('target ' + TARGETS[k]) if k in TARGETS else ''}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
