"""One call from an input to everything a user gets: masks, measurements, pictures, report."""
from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image

from .agreement import Agreement, compare
from .config import LoadLimits
from .errors import HepatoScanError, InputError
from .followup import FollowUp, Study, compare_studies, study_of
from .io import load_scan
from .measure import Measurements, measure
from .model_card import ModelCard
from .marks import clear_lettering
from .montage import split_if_montage
from .orientation import reading_named
from .overlay import slice_views
from .predictor import Predictor, Segmentation
from .scan import message_label, source_label
from .wording import count

if TYPE_CHECKING:  # fpdf2 is imported only when a PDF is made: ~20 MB less for the CLI without --pdf
    from .patient import PatientInfo

log = logging.getLogger(__name__)

VOLUME_FORMATS = ("nifti", "nrrd", "metaimage")  # Scan.source_format of files that are volumes, even of one slice


def _findings(has_liver: bool, liver: str, has_tumor: bool, tumor: str, where: str) -> str:
    """The result's first sentence: "Liver ...; tumor ...", "Liver ...; no tumor found." or, where
    the model found no liver at all, a sentence that says so (not "Liver 0 px; tumor 0 px")."""
    if not has_liver:
        return f"No liver found in this {where}."
    return f"{liver}; {tumor}." if has_tumor else f"{liver}; no tumor found."


@dataclass
class Result:
    segmentation: Segmentation
    measurements: Measurements
    card: ModelCard
    backend: str
    elapsed_ms: float
    timestamp: str
    agreement: Agreement | None = None  # with a reference segmentation, where one was given
    reference_labels: np.ndarray | None = None  # its (Z, H, W) uint8 labels in {0, 1, 2}, for its outlines
    follow_up: FollowUp | None = None  # against an earlier study of the patient, where one was given
    follow_up_problem: str | None = None  # why an earlier study given could not be compared (a warning)
    _views: dict = field(default_factory=dict, repr=False)
    _basis: tuple = field(default=(), repr=False)  # (follow_up_basis(),) once made

    @property
    def scan(self):
        return self.segmentation.scan

    @property
    def warnings(self) -> list[str]:
        """What the user should know: of the input (loading) and of the result (a soft or a white-clipped image)."""
        problem = [self.follow_up_problem] if self.follow_up_problem else []
        return self.scan.warnings + self.segmentation.warnings + problem

    @property
    def key_slices(self) -> list[int]:
        """Slices to show: the 2D input's one slice, a volume's key slices (largest tumor first), or of
        separate images those with the most tumor, then the most liver."""
        m = self.measurements
        if m.separate_images:
            return [s.slice_index for s in sorted(m.slices, key=lambda s: (-s.tumor_area_px, -s.liver_area_px))]
        v = m.volume
        if v is None:
            return [0]
        first = [v.largest_tumor_slice] if v.largest_tumor_slice is not None else []
        return first + [z for z in v.key_slices if z not in first] or [self.scan.n_slices // 2]

    @property
    def default_slice(self) -> int:
        return self.key_slices[0]

    def lesion_centroids(self, z: int) -> list[tuple[int, tuple[float, float]]]:
        s = self.measurements.slice(z)
        return [(l.lesion_id, l.centroid_yx) for l in s.lesions] if s is not None else []

    def views(self, z: int) -> dict:
        """Pictures of slice z (cached): original, liver, tumor, overlay, panel."""
        if z not in self._views:
            reference = None if self.reference_labels is None else self.reference_labels[z]
            self._views[z] = slice_views(self.segmentation, z, self.lesion_centroids(z), reference)
        return self._views[z]

    def follow_up_pictures(self) -> list[tuple[np.ndarray, str]]:
        """With an earlier study compared: each target lesion's largest slice there and its pair's
        here, (H, W, 3) uint8 overlays with a caption each, in pairs (earlier, now: a white picture
        where no lesion was found for it now, its caption saying why); [] otherwise."""
        out = []
        f = self.follow_up
        lesions = {l.lesion_id: l for l in self.measurements.volume.lesions} if f is not None else {}
        for t in f.targets if f is not None else ():
            if t.baseline_id not in f.target_pictures:
                continue
            out.append((f.target_pictures[t.baseline_id], f"Earlier: lesion {t.baseline_id}, slice {t.baseline_slice_label}"))
            now = lesions.get(t.follow_up_ids[0]) if t.follow_up_ids else None
            caption = (f"Now: lesion {now.lesion_id}, slice {self.slice_number(now.largest_slice)}" if now is not None
                       else f"Now: lesion {t.baseline_id} " + ("not found" if t.in_scan else "beyond this scan"))
            out.append((self.views(now.largest_slice)["overlay"] if now is not None
                        else np.full_like(f.target_pictures[t.baseline_id], 255), caption))
        return out

    def keep_arrays_in(self, folder: str | Path) -> None:
        """Move this result's full-size arrays (the scan's pixels, the liver and tumor masks) to .npy
        files in ``folder``, memory-mapped read-only from there, for a caller that keeps results for a
        while (the app keeps each session's for its slider). In memory, a 512 x 512 x 150 CT holds
        about 170 to 181 MB per result (20 to 31 MB once moved; benchmarks/run_all.py); mapped, pages
        are read when a slice is shown and the system may drop them again. In place: the one attribute holding them is swapped only once the files
        are written, so the result can be read (shown) meanwhile from another thread. ``folder``
        must outlive the result."""
        folder = Path(folder)
        seg, scan = self.segmentation, self.scan

        def mapped(name: str, a: np.ndarray) -> np.ndarray:
            path = folder / f"{name}.npy"
            np.save(path, a)  # a strided view (a NIfTI's axes) is written in C order
            return np.load(path, mmap_mode="r")

        scan = replace(scan, pixels=mapped("pixels", scan.pixels))
        if self.reference_labels is not None:
            self.reference_labels = mapped("reference", self.reference_labels)
        self.segmentation = replace(seg, scan=scan, liver=mapped("liver", seg.liver),
                                    tumor=mapped("tumor", seg.tumor))

    def summary(self) -> dict:
        """A compact, JSON-able summary (what the API and CLI print)."""
        m, scan = self.measurements, self.scan
        out = {"input": scan.name, "format": scan.source_format, "slices": scan.n_slices,
               "units": m.units, "spacing_mm": scan.spacing_mm, "warnings": self.warnings,
               "window": self.segmentation.window_summary(), "blur_effect": self.segmentation.blur_effect,
               "white_fraction": self.segmentation.white_fraction,
               "unsure_fraction": self.segmentation.unsure_fraction,
               "orientation_ratio": self.segmentation.orientation_ratio, "read_as": self.segmentation.read_as,
               "model": f"{self.card.name} {self.card.version}", "backend": self.backend,
               "elapsed_ms": round(self.elapsed_ms, 1)}
        if m.separate_images:
            out.update(separate_images=True, images_with_liver=m.images_with("liver"),
                       images_with_tumor=m.images_with("tumor"),
                       lesion_count=m.lesions_in_images())
        elif m.volume is not None:
            v = m.volume
            out.update(liver_volume_ml=v.liver_volume_ml, tumor_volume_ml=v.tumor_volume_ml,
                       liver_voxels=v.liver_voxels, tumor_voxels=v.tumor_voxels,
                       tumor_burden_pct=v.tumor_burden_pct, lesion_count=v.lesion_count,
                       largest_tumor_slice=v.largest_tumor_slice)
        else:
            s = m.slices[0]
            out.update(liver_area_px=s.liver_area_px, liver_area_mm2=s.liver_area_mm2,
                       tumor_area_px=s.tumor_area_px, tumor_area_mm2=s.tumor_area_mm2,
                       tumor_burden_pct=s.tumor_burden_pct, lesion_count=s.lesion_count)
        return out

    def slice_file(self, z: int) -> str | None:
        """The name of the image file slice z came from (a stack of image files), else None."""
        files = self.scan.metadata.get("slice_files")
        return files[z] if files else None

    def slice_source(self, z: int, short: bool = False) -> str | None:
        """Where a reader finds slice z in the source, where it numbers its slices otherwise than
        HepatoScan (from 0, feet to head): the image file's name (a stack of image files), "image 37,
        z 91.0 mm" (a DICOM series; ``short``: "image 37"), "file slice 40" (a NIfTI stored head to
        feet); None where the index is the source's own."""
        source = self.scan.slice_source(z)
        return self.slice_file(z) or (source_label(source, short) if source else None)

    def slice_name(self, z: int) -> str:
        """"Slice z" ("Image z" of separate images), with where the source has it: "Slice 59
        (IM91.png)", "Slice 91 (image 37, z 91.0 mm)"."""
        label = f"Image {z}" if self.measurements.separate_images else f"Slice {z}"
        source = self.slice_source(z)
        return f"{label} ({source})" if source else label

    def slice_number(self, z: int, short: bool = True) -> str:
        """Slice z for a table cell: "91", or with where the source has it, "91 (image 37)"
        (not ``short``: "91 (image 37, z 91.0 mm)")."""
        source = self.slice_source(z, short)
        return f"{z} ({source})" if source else str(z)

    def document(self) -> dict:
        """Summary and every measurement, as measurements.json and the API return them; the slices
        of a stack of image files carry their file's name, and the slices and lesions of a source
        that numbers its slices otherwise (Scan.slice_source) where they lie in it."""
        measurements = self.measurements.to_dict()
        if self.scan.metadata.get("slice_files"):
            for s in measurements["slices"]:
                s["file"] = self.slice_file(s["slice_index"])
        if self.scan.metadata.get("slice_sources"):
            for s in measurements["slices"]:
                s["source"] = self.scan.slice_source(s["slice_index"])
            for l in (measurements.get("volume") or {}).get("lesions", []):
                l["largest_slice_source"] = self.scan.slice_source(l["largest_slice"])
        document = {"summary": self.summary(), "shown_slice": self.default_slice, "measurements": measurements}
        if self.agreement is not None:
            document["agreement"] = self.agreement.to_dict()
        if self.follow_up is not None:
            document["follow_up"] = self.follow_up.to_dict()
        basis = self.follow_up_basis()
        if basis is not None:
            document["follow_up_basis"] = basis
        return document

    def follow_up_basis(self) -> dict | None:
        """What a later study needs to be compared with this one from its measurements.json alone
        (followup.Study.basis): a volume's lesions placed in its liver; None for what cannot be
        followed up (an image, no spacing, no liver). Made once."""
        if not self._basis:
            try:
                self._basis = (study_of(self, "This study", pictures=False).basis(),)
            except HepatoScanError:
                self._basis = (None,)
        return self._basis[0]

    def describe(self, warnings: bool = True) -> str:
        """The result in a few plain sentences (with the warnings at the end unless ``warnings`` is
        False, for a caller that shows them on their own)."""
        s = self.summary()
        text = self.findings()
        if s["units"] == "px":
            text += " Pixel units only: the pixel spacing is unknown."
        if s["window"]:
            text += " " + s["window"]
        for w in s["warnings"] if warnings else ():
            text += f" {message_label(w)}: {w}"
        return text

    def findings(self) -> str:
        """What was found, in a sentence or two: liver and tumor size and the lesion count, or that
        no tumor (or no liver) was found; the start of :meth:`describe` and the PDF's findings line."""
        s = self.summary()
        if self.measurements.separate_images:
            text = (f"{s['slices']} separate images: liver in {s['images_with_liver']}, tumor in "
                    f"{s['images_with_tumor']}, {count(s['lesion_count'], 'lesion')} in all; the figures are per image.")
        elif self.measurements.volume is not None:
            liver = (f"{s['liver_volume_ml']:,.0f} mL" if s["liver_volume_ml"] is not None
                     else f"{s['liver_voxels']:,} voxels")
            tumor = f"{s['tumor_volume_ml']:.1f} mL" if s["tumor_volume_ml"] is not None else f"{s['tumor_voxels']:,} voxels"
            text = f"Volume of {count(s['slices'], 'slice')}. " + _findings(
                s["liver_voxels"] > 0, f"Liver {liver}", s["tumor_voxels"] > 0,
                f"tumor {tumor} in {count(s['lesion_count'], 'lesion')}, {s['tumor_burden_pct']:.1f}% of the liver",
                "volume")
        else:
            if s["units"] == "mm":
                liver, tumor = f"{s['liver_area_mm2']:,.0f} mm²", f"{s['tumor_area_mm2']:,.0f} mm²"
            else:
                liver, tumor = f"{s['liver_area_px']:,} px", f"{s['tumor_area_px']:,} px"
            text = _findings(s["liver_area_px"] > 0, f"Liver {liver}", s["tumor_area_px"] > 0,
                             f"tumor {tumor} in {count(s['lesion_count'], 'lesion')}, "
                             f"{s['tumor_burden_pct']:.1f}% of the liver area", "image")
        return text

    def report_pdf(self, patient: PatientInfo | None = None) -> bytes:
        from .report import build_report

        return build_report(self, patient)


def now_stamp() -> str:
    """Local time with its zone, as reports print it."""
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def analyze(predictor: Predictor, source, filename: str | None = None,
            pixel_spacing_mm: float | None = None, limits: LoadLimits = LoadLimits(),
            progress: Callable[[float, str], None] | None = None,
            slice_spacing_mm: float | None = None, series: str | None = None,
            reference: str | Path | None = None,
            reference_values: tuple[int, int | None] | None = None, read_as: str | None = None,
            earlier: str | Path | list | None = None) -> Result:
    """Load, segment and measure one input (path, folder or bytes). ``pixel_spacing_mm`` (in-plane)
    and ``slice_spacing_mm`` (between slices) are for PNG/JPG input, which carries neither;
    ``series`` chooses one series of a DICOM study (io.load_scan); ``reference``, a reference
    segmentation of the input (io.reference), is read before the model runs (a bad one fails
    fast) and compared with the masks: Result.agreement; ``reference_values``, the liver's (and
    tumor's) values where it is a multi-organ label map (io.reference.parse_label_values);
    ``read_as``, "mirrored", "swapped" or "upside-down": the model reads the slices that way; its masks are
    turned back (hepatoscan.orientation.reading_named; an unknown name fails before loading);
    ``earlier``, an earlier study of the same patient (or a list of them, oldest first: the first is
    the baseline, the others give the nadir): segmented first (with the same spacing where it has
    none, and read the same way) and compared, Result.follow_up (:func:`earlier_study`,
    :func:`attach_follow_up`). An 8-bit image that holds several slices side by side (a montage),
    alone or among others, is split into them, each segmented and measured as a separate image
    (hepatoscan.montage); a viewer's lettering around the body of 8-bit images is cleared first
    (marks.clear_lettering)."""
    from .io.reference import read_reference

    t0 = time.perf_counter()
    reading = reading_named(read_as) if read_as else None
    before = None if earlier is None else [earlier_study(
        predictor, e, pixel_spacing_mm=pixel_spacing_mm, slice_spacing_mm=slice_spacing_mm, read_as=read_as,
        limits=limits, progress=progress and (lambda f, msg: progress(f, f"earlier study: {msg}")))
        for e in (earlier if isinstance(earlier, (list, tuple)) else [earlier])
    ]  # first, so that their arrays are freed before this study's are made
    scan = load_scan(source, filename, limits, series)
    if pixel_spacing_mm:
        scan.with_pixel_spacing(pixel_spacing_mm)
    if slice_spacing_mm:
        scan.with_slice_spacing(slice_spacing_mm)
    ref = read_reference(reference, scan, reference_values) if reference is not None else None
    scan, split = split_if_montage(scan)
    if split is not None and ref is not None:
        ref = replace(ref, labels=split.apply(ref.labels))
    scan = clear_lettering(scan)
    seg = predictor.segment(scan, progress, reading)
    m = measure(seg)
    agreement = None if ref is None else compare(seg.liver, seg.tumor, ref.labels, scan.spacing_mm, ref.name,
                                                 ref.notes, seg.separate_images, scan.slab_mm)
    result = Result(seg, m, predictor.card, predictor.backend, 1000 * (time.perf_counter() - t0), now_stamp(),
                    agreement, None if ref is None else ref.labels)
    return result if before is None else attach_follow_up(result, before)


def earlier_study(predictor: Predictor, earlier: str | Path, **options) -> Study | str:
    """Segment ``earlier`` (an earlier study of a patient, a volume; ``options`` as :func:`analyze`
    takes them) and reduce it to what a follow-up needs (followup.Study: its arrays are freed) ->
    that, or why it cannot be followed up (a warning for the later study's result, which is kept)."""
    try:
        if str(earlier).lower().endswith(".json"):  # an earlier HepatoScan measurements.json: no CT needed
            return _study_from_json(Path(earlier))
        return study_of(analyze(predictor, earlier, filename=Path(str(earlier)).name, **options), "The earlier study")
    except HepatoScanError as e:
        log.warning("earlier study %s not compared: %s", earlier, e)
        return f"Not compared with the earlier study: {e}"


def _study_from_json(path: Path) -> Study:
    """An earlier study's measurements.json -> followup.Study; InputError where it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path.name} could not be read as JSON ({e}): give the earlier study's measurements.json "
                         "as HepatoScan wrote it, or its CT.") from e
    return Study.from_document(document, path.name)


def attach_follow_up(result: Result, before: list) -> Result:
    """Compare ``result`` with :func:`earlier_study` results (Result.follow_up: the oldest is the
    baseline; ordered by their study dates where every one has one, else as given), or say why not
    (Result.follow_up_problem, one of its warnings: the first study that failed)."""
    problem = next((b for b in before if isinstance(b, str)), None)
    if problem is not None:
        result.follow_up_problem = problem
        return result
    if all(b.study_date for b in before):  # dated (DICOM, or measurements.json of DICOM): oldest first
        before = sorted(before, key=lambda b: b.study_date)
    try:
        result.follow_up = compare_studies(before[0], study_of(result, "This study"), between=before[1:])
    except HepatoScanError as e:
        result.follow_up_problem = f"Not compared with the earlier study: {e}"
    return result


def _to_nifti(mask_zyx: np.ndarray, scan):
    """(Z, H, W) uint8 mask -> NIfTI image in the input's geometry. The voxels are passed to
    nibabel as a view (no full-size copy); it writes them slab by slab."""
    from .io.imports import nibabel
    from .io.nifti import display_affine, from_display_axes

    nib = nibabel()
    mask = np.asarray(mask_zyx, np.uint8)  # no copy when already uint8
    if scan.geometry is not None and hasattr(scan.geometry, "affine"):
        # The input's own RAS-canonical geometry: undo the display flips as a view.
        img = nib.Nifti1Image(from_display_axes(mask), scan.geometry.affine)
        img.set_data_dtype(np.uint8)
        return img
    # Display axes stored as (x, y, z): i -> patient left, j -> posterior, k -> head (LPS).
    origin = (scan.geometry or {}).get("origin_mm") if isinstance(scan.geometry, dict) else None
    img = nib.Nifti1Image(mask.transpose(2, 1, 0), display_affine(scan.spacing_mm, origin))
    img.set_data_dtype(np.uint8)
    return img


def label_volume(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    """liver, tumor: (..., H, W) uint8 in {0, 1} -> the same shape uint8: 0 background, 1 liver,
    2 tumor (the convention of LiTS and of most datasets)."""
    labels = np.zeros(liver.shape, np.uint8)
    h, w = liver.shape[-2:]
    # Slice by slice, so no full-size temporary is made beside the result.
    for out, l, t in zip(labels.reshape(-1, h, w), liver.reshape(-1, h, w), tumor.reshape(-1, h, w)):
        out[l > 0] = 1
        out[t > 0] = 2
    return labels


def _write_slice_masks(seg, slice_files: list[str], folder: Path) -> Path:
    """A stack of image files gets a label PNG per file, named after it: (H, W) uint8, 0 background,
    1 liver, 2 tumor (the convention of LiTS and of most datasets)."""
    folder.mkdir(exist_ok=True)
    used: set[str] = set()
    for z, name in enumerate(slice_files):
        stem = Path(name).stem
        while stem in used:  # the same file name in two folders of a zip
            stem += "_"
        used.add(stem)
        h, w = seg.scan.image_size(z)  # each file's own size, where a stack's images differ
        Image.fromarray(label_volume(seg.liver[z][:h, :w], seg.tumor[z][:h, :w])).save(folder / f"{stem}.png")
    return folder


def _write_slicer_seg(labels, path: Path) -> Path:
    """The labels (a NIfTI image in the input's geometry) as a 3D Slicer segmentation: segments
    "Liver" (1) and "Liver tumor" (2) in the overlay's colours, ready to correct in the Segment Editor."""
    from .io.itk_formats import write_slicer_segmentation
    from .overlay import LIVER_RGB, TUMOR_RGB

    write_slicer_segmentation(np.asanyarray(labels.dataobj), labels.affine, path,
                              [("Liver", 1, LIVER_RGB), ("Liver tumor", 2, TUMOR_RGB)])
    return path


def _write_seg(result: Result, path: Path) -> Path | None:
    """The masks as a DICOM SEG beside the other outputs, for an axial DICOM series with highdicom
    installed; None (logged) otherwise, or when highdicom refuses the series' headers: the other
    outputs do not depend on it."""
    from .dicom_seg import highdicom_available, missing_uids, source_headers, write_dicom_seg

    headers = source_headers(result.scan)
    if headers is None:
        return None
    missing = missing_uids(headers)
    if missing:
        log.warning("no DICOM SEG for %s: its slices lack %s, which a SEG must refer to (removed by an "
                    "anonymiser or converter?); the NIfTI masks and the other outputs are written",
                    result.scan.name, " and ".join(missing))
        return None
    if not highdicom_available():
        log.info("no DICOM SEG for %s: highdicom is not installed (pip install hepatoscan[dicom])", result.scan.name)
        return None
    try:
        return write_dicom_seg(result, path)
    except (ValueError, TypeError, AttributeError, KeyError) as e:  # headers highdicom cannot use
        log.warning("no DICOM SEG for %s: its headers do not allow one (%s); the NIfTI masks and the "
                    "other outputs are written", result.scan.name, e)
        return None


def write_outputs(result: Result, out_dir: str | Path, pdf: bool = False,
                  patient: PatientInfo | None = None) -> dict:
    """Write masks, overlay, measurements (and the PDF) into ``out_dir``; -> {kind: path}."""
    from .io.imports import nibabel

    nib = nibabel()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seg, z = result.segmentation, result.default_slice
    paths = {}
    views = result.views(z)
    for key, fname in (("liver", "liver_mask.png"), ("tumor", "tumor_mask.png"), ("overlay", "overlay.png"),
                       ("panel", "panel.png")):
        Image.fromarray(views[key]).save(out_dir / fname)
        paths[key] = out_dir / fname
    (out_dir / "measurements.json").write_text(json.dumps(result.document(), indent=1, default=str))
    paths["measurements"] = out_dir / "measurements.json"
    # A NIfTI (NRRD, MetaImage) input gets NIfTI masks even of one slice; separate images get masks/ only.
    if (result.scan.is_volume or result.scan.source_format in VOLUME_FORMATS) and not result.measurements.separate_images:
        for key, mask in (("liver_nifti", seg.liver), ("tumor_nifti", seg.tumor)):
            path = out_dir / f"{key.split('_')[0]}_mask.nii.gz"
            nib.save(_to_nifti(mask, result.scan), str(path))
            paths[key] = path
        paths["labels_nifti"] = out_dir / "labels.nii.gz"
        labels = _to_nifti(label_volume(seg.liver, seg.tumor), result.scan)
        nib.save(labels, str(paths["labels_nifti"]))
        paths["slicer_seg"] = _write_slicer_seg(labels, out_dir / "segmentation.seg.nrrd")
        labels = None  # its 0/1/2 volume (39 MB at 512 x 512 x 150) is not kept while the PDF is made
    seg_path = _write_seg(result, out_dir / "segmentation.dcm")
    if seg_path is not None:
        paths["dicom_seg"] = seg_path
    if result.scan.metadata.get("slice_files"):
        paths["slice_masks"] = _write_slice_masks(seg, result.scan.metadata["slice_files"], out_dir / "masks")
    if pdf:
        (out_dir / "report.pdf").write_bytes(result.report_pdf(patient))
        paths["pdf"] = out_dir / "report.pdf"
    return paths


def write_archive(result: Result, zip_path: str | Path) -> Path:
    """What ``write_outputs`` writes without the PDF (masks: NIfTI in the input's geometry for a
    volume, and a 3D Slicer segmentation of them, a label PNG per file for a stack of images, 0/255 PNGs of the shown slice; overlay,
    panel, measurements.json), zipped into one folder named after the input -> ``zip_path``."""
    zip_path = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="hepatoscan_outputs_") as tmp:
        write_outputs(result, tmp)
        # Compressed files (.nii.gz, .png, .seg.nrrd) are stored; JSON is deflated.
        with zipfile.ZipFile(zip_path, "w") as archive:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    method = zipfile.ZIP_DEFLATED if path.suffix == ".json" else zipfile.ZIP_STORED
                    archive.write(path, f"{result.scan.name}/{path.relative_to(tmp).as_posix()}",
                                  compress_type=method)
    return zip_path
