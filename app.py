"""HepatoScan web app: a thin Gradio Blocks interface over the hepatoscan library.

    python app.py [--host 127.0.0.1] [--port 7860] [--model models/] [--share]

Environment: HEPATOSCAN_HOST, HEPATOSCAN_PORT, HEPATOSCAN_MODEL_DIR, HEPATOSCAN_SHARE=1.
API (stable): POST /gradio_api/call/segment, or gradio_client's predict(api_name="/segment");
/segment_series adds the slice spacing, /segment_masks also returns the masks as a .zip, /compare
compares with a reference segmentation (Dice, lesions found), /segment_study chooses the series and
the reading, /follow_up compares with an earlier study of the patient (RECIST 1.1).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _limit_malloc_arenas(n: int = 2) -> None:
    """Cap glibc malloc arenas: with one arena per worker thread, RSS drifted by +-25 MB per 50
    requests (measured); with 2 it stays flat. Linux/glibc only; a no-op elsewhere."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    if libc_name and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL(libc_name).mallopt(-8, n)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass


_limit_malloc_arenas()

import gradio as gr  # noqa: E402

from hepatoscan import __version__  # noqa: E402
from hepatoscan.errors import HepatoScanError  # noqa: E402
from hepatoscan.io.gather import gather_files  # noqa: E402
from hepatoscan.io.reference import parse_label_values  # noqa: E402
from hepatoscan.logs import configure as configure_logging  # noqa: E402
from hepatoscan.orientation import ASKABLE  # noqa: E402
from hepatoscan.pipeline import Result, analyze, write_archive  # noqa: E402
from hepatoscan.predictor import DEFAULT_MODEL_DIR, Predictor  # noqa: E402
from hepatoscan.patient import PatientInfo, header_patient, with_header  # noqa: E402
from hepatoscan.scan import message_label  # noqa: E402
from hepatoscan.tables import MEASUREMENT_HEADERS, lesion_rows, slice_rows  # noqa: E402
from hepatoscan.overlay import write_png  # noqa: E402

log = logging.getLogger("hepatoscan.app")

ROOT = Path(__file__).resolve().parent
SAMPLES = ROOT / "samples"
CONCURRENCY = 2  # requests segmented at once; each has its own interpreter
MAX_UPLOAD = "512mb"
# No file_types filter on the uploads: Gradio refuses a file whose name is not in the list, and most
# DICOM files have no extension (IM0001, 1.2.840...) or a vendor's (.IMA). The loader says what
# it cannot read, and what to give instead.
REQUEST_FILES_TTL_S = 15 * 60  # per-request folders older than this are removed
AS_GIVEN = "as given"
READ_AS = [AS_GIVEN, *(r.name for r in ASKABLE)]  # the "Read the image" choices (hepatoscan.orientation)
COLORS = {"Liver": "#28c85a", "Tumor": "#eb3232", "Reference liver": "#ffd700", "Reference tumor": "#28a0ff"}
CSS = """
#title h1 {margin-bottom: 0.1em}
#subtitle {color: var(--body-text-color-subdued); margin-top: 0}
#disclaimer {font-size: 0.85em; color: var(--body-text-color-subdued)}
#formats, #formats p, #reference_help, #reference_help p, #earlier_help, #earlier_help p {font-size: 0.85em;
  color: var(--body-text-color-subdued)}
#summary table {display: block; overflow-x: auto; max-width: 100%; border: none}
#summary th, #summary td {word-break: normal; overflow-wrap: normal; hyphens: none}
"""


class PredictorPool:
    """One interpreter per concurrent request (TFLite interpreters are not thread-safe)."""

    def __init__(self, model_dir: Path, size: int):
        self._pool: queue.Queue = queue.Queue()
        for _ in range(size):
            self._pool.put(Predictor.from_model_dir(model_dir))
        self.card = self._pool.queue[0].card
        self.backend = self._pool.queue[0].backend

    @contextmanager
    def get(self):
        predictor = self._pool.get()
        try:
            yield predictor
        finally:
            self._pool.put(predictor)


class RequestFiles:
    """A private folder per request under one root; stale folders are removed as new ones come."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="hepatoscan_app_"))

    def new(self) -> Path:
        now = time.time()
        for d in self.root.iterdir():
            if now - d.stat().st_mtime > REQUEST_FILES_TTL_S:
                shutil.rmtree(d, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _patient(name, pid, age, sex, date, physician, notes) -> PatientInfo:
    return PatientInfo(name=name or "", patient_id=pid or "", age=str(age or ""), sex=sex or "",
                       study_date=date or "", referring_physician=physician or "", notes=notes or "")


def _file_path(file) -> str:
    return file if isinstance(file, str) else getattr(file, "name", None) or file["path"]


def _input_path(files, folder: Path) -> str:
    """The upload (one file, or a list of them: the files of a DICOM series or one series' image
    slices chosen together) -> one path for the library: the file itself, or a folder in ``folder``
    named for them ("upload_78_files", the name results and downloads carry) holding links to all
    of them under their own names (a name met twice gets a number)."""
    paths = [_file_path(f) for f in (files if isinstance(files, (list, tuple)) else [files]) if f]
    if not paths:
        raise gr.Error("No file uploaded. Choose a CT image (PNG/JPG), a DICOM file or all the files of a "
                       "DICOM series, a .zip of a series or of one series' PNG/JPG slices, or a volume (NIfTI, NRRD, MetaImage), "
                       "then press Segment.")
    if len(paths) == 1:
        return paths[0]
    return str(gather_files(paths, folder / f"upload_{len(paths)}_files"))


def markdown_table(header: list[str], rows) -> list[str]:
    """A table's lines in Markdown: the header, its rule, a line per row (cells as text)."""
    return ([f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
            + [f"| {' | '.join(row)} |" for row in rows])


def agreement_markdown(agreement) -> str:
    """The agreement with a reference segmentation as Markdown: its sentence and a table."""
    lines = ["### Agreement with the reference", agreement.describe(), "",
             *markdown_table(["", "Reference", "HepatoScan", "Agreement"], agreement.rows())]
    lines += [f"\n**{message_label(n)}:** {n}" for n in agreement.notes]
    return "\n".join(lines)


def follow_up_markdown(follow_up) -> str:
    """The change since an earlier study as Markdown: the RECIST reading, its tables
    (FollowUp.tables, as the PDF's), possible new lesions and the notes."""
    lines = ["### Change since the earlier study", f"**{follow_up.response_text()}**"]
    for header, rows in follow_up.tables():
        lines += ["", *markdown_table(header, rows)]
    if follow_up.new_lesions:
        lines.append("\n**Possible new lesions:** " + follow_up.new_lesions_text())
    lines += [f"\n**{message_label(n)}:** {n}" for n in follow_up.notes]
    return "\n".join(lines)


class HepatoScanApp:
    """The handlers behind the page and the API; each turns library errors into gr.Error."""

    def __init__(self, pool: PredictorPool, files: RequestFiles):
        self.pool, self.files = pool, files
        # Writes the arrays of the results sessions keep to disk after each page response, one at a time.
        self.keeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hepatoscan-keep")

    def close(self) -> None:
        """Finish the pending moves to disk, then remove every request's folder (at shutdown)."""
        self.keeper.shutdown(wait=True)
        self.files.cleanup()

    def run(self, file, spacing, patient: PatientInfo, progress=None, slice_spacing=None, series: str = "",
            reference=None, reference_labels: str = "", read_as: str = AS_GIVEN,
            earlier=None) -> tuple[Result, Path, Path | None]:
        """Segment and measure the upload (and compare it with ``reference``, a reference
        segmentation, where one is given; the model reading it ``read_as``, one of READ_AS; and with
        ``earlier``, an earlier study of the patient, its file or files, where given) ->
        (result, the request's folder, its PDF report there, or None where the PDF failed: logged,
        and the result is kept rather than lost for it)."""
        folder = self.files.new()
        path = _input_path(file, folder)
        earlier_path = None
        if earlier:
            paths = [_file_path(f) for f in (earlier if isinstance(earlier, (list, tuple)) else [earlier]) if f]
            if len(paths) > 1 and all(p.lower().endswith(".json") for p in paths):
                earlier_path = paths  # several studies' measurements.json (ordered by their dates where known)
            else:
                earlier_path = _input_path(earlier, folder / "earlier")  # one study: a file, or a series' files
        report = (lambda f, msg: progress(f, desc=msg)) if progress is not None else None
        try:
            with self.pool.get() as predictor:
                result = analyze(predictor, path, filename=Path(path).name,
                                 pixel_spacing_mm=float(spacing) if spacing else None, progress=report,
                                 slice_spacing_mm=float(slice_spacing) if slice_spacing else None,
                                 series=(series or "").strip() or None,
                                 reference=_file_path(reference) if reference else None,
                                 reference_values=parse_label_values(reference_labels) if reference else None,
                                 read_as=None if (read_as or "").strip() in ("", AS_GIVEN) else read_as.strip(),
                                 earlier=earlier_path)
        except HepatoScanError as e:
            raise gr.Error(str(e)) from e
        except Exception as e:  # a bug must never show a traceback or stop the app
            log.exception("internal error on %s", path)
            raise gr.Error(f"Internal error ({type(e).__name__}). The app is still running; "
                           "please report this file to the HepatoScan team.") from e
        pdf = folder / f"hepatoscan_{result.scan.name}.pdf"
        try:
            pdf.write_bytes(result.report_pdf(patient))
        except Exception:  # a full disk or a bug in the report must not discard the segmentation
            log.exception("could not write the PDF report of %s", path)
            pdf = None
        return result, folder, pdf

    @staticmethod
    def views_for(result: Result, z: int):
        v = result.views(z)
        layers = [(v["liver_layer"], "Liver"), (v["tumor_layer"], "Tumor")]
        if "reference_liver_layer" in v:  # a reference segmentation's outlines
            layers += [(v["reference_liver_layer"], "Reference liver"), (v["reference_tumor_layer"], "Reference tumor")]
        annotated = (v["numbered"], layers)
        headers, rows = lesion_rows(result, z)
        return (annotated, v["original"], v["liver"], v["tumor"],
                gr.Dataframe(value=slice_rows(result, z), headers=MEASUREMENT_HEADERS),
                gr.Dataframe(value=rows or [["-"] * len(headers)], headers=headers))

    def segment_ui(self, file, spacing, slice_spacing, name, pid, age, sex, date, physician, notes, series="",
                   reference=None, reference_labels="", read_as=AS_GIVEN, earlier=None, progress=gr.Progress()):
        patient = _patient(name, pid, age, sex, date, physician, notes)
        result, folder, pdf = self.run(file, spacing, patient, progress, slice_spacing, series, reference,
                                       reference_labels, read_as, earlier)
        z = result.default_slice
        n = result.scan.n_slices
        kind = "Image" if result.measurements.separate_images else "Slice"
        order = ("" if result.measurements.separate_images else "file-name order; "
                 if result.slice_file(0) else "0 at the feet; ")
        slider = gr.Slider(minimum=0, maximum=max(1, n - 1), value=z, step=1, visible=n > 1,
                           label=f"{kind} ({order}opens on the largest tumor; {n} {kind.lower()}s)")
        header = header_patient(result.scan.metadata).rows()  # whose study this is, as the file says
        summary = "### Result\n" + ("**Patient (DICOM header):** " + " · ".join(f"{k} {v}" for k, v in header)
                                     + "\n\n" if header else "") + result.describe(warnings=False)
        summary += "".join(f"\n\n**{message_label(w)}:** {w}" for w in result.warnings)
        summary += "".join(f"\n\n**Warning:** {w}" for w in with_header(patient, result.scan.metadata)[2])
        if result.follow_up is not None:
            summary += "\n\n" + follow_up_markdown(result.follow_up)
        if result.agreement is not None:
            summary += "\n\n" + agreement_markdown(result.agreement)
        archive = self.archive(result, folder)
        if archive is None:
            summary += ("\n\n**Warning:** the masks could not be written for download (see the app's log); "
                        "the result shown and the PDF are complete.")
        if pdf is None:
            summary += ("\n\n**Warning:** the PDF report could not be made (see the app's log); the result "
                        "shown and the masks download are complete.")
        data = result.summary()
        if result.agreement is not None:
            data["agreement"] = result.agreement.to_dict()
        if result.follow_up is not None:
            data["follow_up"] = result.follow_up.to_dict()
        pictures = result.follow_up_pictures()
        outputs = (*self.views_for(result, z), summary, None if pdf is None else str(pdf), data,
                   slider, result, None if archive is None else str(archive),
                   gr.Gallery(value=[(rgb, caption) for rgb, caption in pictures], visible=bool(pictures), format="png"))
        self.keeper.submit(self.keep_on_disk, result, folder)
        return outputs

    @staticmethod
    def keep_on_disk(result: Result, folder: Path) -> None:
        """Move the arrays of a result the session keeps (for its slider) to ``folder``, memory-mapped
        (Result.keep_arrays_in); run after the response, on self.keeper. If that fails the result
        stays in memory (logged)."""
        try:
            result.keep_arrays_in(folder)
        except Exception:  # a full disk or a bug here costs memory, never the result
            log.exception("could not keep the arrays of %s on disk; they stay in memory", result.scan.name)

    @staticmethod
    def archive(result: Result, folder: Path) -> Path | None:
        """The masks (NIfTI for a volume, a label PNG per file of a stack), overlay and
        measurements.json zipped for download into ``folder``; None (logged) if that fails, so the
        result shown is not lost for it."""
        path = folder / f"hepatoscan_{result.scan.name}_masks.zip"
        try:
            return write_archive(result, path)
        except Exception:  # a full disk or a bug here must not discard the segmentation
            log.exception("could not write %s", path)
            return None

    def show_slice(self, result: Result | None, z):
        if result is None:
            raise gr.Error("Segment a volume first.")
        return self.views_for(result, int(z))

    def segment_api(self, file, pixel_spacing_mm, patient_name, patient_id, patient_age, patient_sex,
                    study_date, referring_physician, notes):
        """Segment one CT input; returns (measurements JSON, PDF report, overlay PNG)."""
        return self.segment_series_api(file, pixel_spacing_mm, 0, patient_name, patient_id, patient_age,
                                       patient_sex, study_date, referring_physician, notes)

    def segment_series_api(self, file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                           patient_sex, study_date, referring_physician, notes):
        """As segment_api, plus the spacing between slices in mm, for a .zip of one series' PNG/JPG
        slices (which carry none): volumes then come in mL."""
        return self._api_outputs(file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                                 patient_sex, study_date, referring_physician, notes)[:3]

    def segment_masks_api(self, file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                          patient_sex, study_date, referring_physician, notes):
        """As segment_series_api, plus the masks and measurements as a .zip (the UI's download)."""
        return self._api_outputs(file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                                 patient_sex, study_date, referring_physician, notes, masks=True)

    def segment_study_api(self, file, pixel_spacing_mm, slice_spacing_mm, series, read_as, patient_name, patient_id,
                          patient_age, patient_sex, study_date, referring_physician, notes):
        """As segment_masks_api, with the series of a DICOM study to read (its number or a word of its
        description, as the page's Series field; "" for the largest axial series) and how the model
        reads the image (READ_AS, as the page's option: "mirrored", "swapped", "upside-down"; "" or
        "as given")."""
        return self._api_outputs(file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                                 patient_sex, study_date, referring_physician, notes, masks=True, series=series,
                                 read_as=read_as)

    def follow_up_api(self, file, earlier, pixel_spacing_mm, slice_spacing_mm, series, read_as, patient_name,
                      patient_id, patient_age, patient_sex, study_date, referring_physician, notes):
        """As segment_study_api, compared with ``earlier``, an earlier study of the same patient (a
        volume: a DICOM series or its .zip, a NIfTI, a .zip of one series' slices; or the
        measurements.json HepatoScan wrote for it): the JSON gains
        "follow_up" (volumes, lesions paired with the earlier study's, the RECIST 1.1 reading of the
        target lesions), the PDF a section. An earlier study that cannot be compared is a warning;
        the segmentation is kept."""
        if not earlier:
            raise gr.Error("No earlier study given: give the patient's earlier CT (a DICOM series as a .zip, or a "
                           "NIfTI), or call /segment_study without one.")
        return self._api_outputs(file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                                 patient_sex, study_date, referring_physician, notes, masks=True, series=series,
                                 read_as=read_as, earlier=earlier)

    def compare_api(self, file, reference, reference_labels, pixel_spacing_mm, slice_spacing_mm, patient_name,
                    patient_id, patient_age, patient_sex, study_date, referring_physician, notes):
        """As segment_series_api, compared with ``reference``, a reference segmentation of the input
        (a NIfTI label volume, a label PNG, or a .zip of a stack's label PNGs; ``reference_labels``,
        "" or the liver's value and the tumor's of a multi-organ map, "6" or "1, 2"): the JSON
        gains "agreement" (Dice, sizes, lesions found), the PDF a section."""
        if not reference:
            raise gr.Error("No reference segmentation given: give the expert's label mask (0 background, 1 liver, "
                           "2 tumor) of the same image, or call /segment_series without one.")
        return self._api_outputs(file, pixel_spacing_mm, slice_spacing_mm, patient_name, patient_id, patient_age,
                                 patient_sex, study_date, referring_physician, notes, reference=reference,
                                 reference_labels=reference_labels)[:3]

    def _api_outputs(self, file, pixel_spacing_mm, slice_spacing_mm, *patient, masks: bool = False,
                     reference=None, reference_labels: str = "", series: str = "", read_as: str = AS_GIVEN,
                     earlier=None) -> tuple:
        """(measurements JSON, PDF path, overlay PNG path, masks .zip path or None)."""
        result, folder, pdf = self.run(file, pixel_spacing_mm, _patient(*patient), slice_spacing=slice_spacing_mm,
                                       series=series, reference=reference, reference_labels=reference_labels,
                                       read_as=read_as, earlier=earlier)
        overlay = folder / "overlay.png"
        write_png(result.views(result.default_slice)["overlay"], overlay)
        archive = None
        if masks:
            archive = self.archive(result, folder)
            if archive is None:
                raise gr.Error("The masks could not be written (see the app's log); try again, or use "
                               "/segment_series for the measurements, PDF and overlay alone.")
        document = json.loads(json.dumps(result.document(), default=str))
        document["patient_warnings"] = with_header(_patient(*patient), result.scan.metadata)[2]
        return document, None if pdf is None else str(pdf), str(overlay), None if archive is None else str(archive)


def build_app(handlers: HepatoScanApp) -> gr.Blocks:
    card, pool = handlers.pool.card, handlers.pool
    with gr.Blocks(title="HepatoScan", delete_cache=(600, 1800)) as demo:
        gr.Markdown("# HepatoScan", elem_id="title")
        gr.Markdown("Liver and liver-tumor segmentation of CT, with measurements in real units and a PDF "
                    "report, running on this computer.", elem_id="subtitle")
        state = gr.State(None, time_to_live=REQUEST_FILES_TTL_S)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300) as left_column:
                upload = gr.File(label="CT image or study", file_count="multiple", type="filepath", elem_id="upload",
                                 height=260)  # a long series scrolls inside the box
                gr.Markdown("PNG/JPG/WebP/GIF, DICOM, NIfTI, NRRD, MetaImage (.mha), a multi-page TIFF or a cine loop (animated GIF), or a .zip of a DICOM series or of one "
                            "series' PNG/JPG slices; or choose all the files of one series at once.",
                            elem_id="formats")
                with gr.Row():
                    spacing = gr.Number(label="Pixel spacing (mm)", info="PNG/JPG only; 0 if unknown (pixels)",
                                        value=0, minimum=0, maximum=50, elem_id="spacing")
                    slice_spacing = gr.Number(label="Slice spacing (mm)", info="PNG/JPG slices; 0 if unknown (voxels)",
                                              value=0, minimum=0, maximum=50, elem_id="slice_spacing")
                series = gr.Textbox(label="Series (DICOM study)", elem_id="series", max_lines=1,
                                    info="Of several series: a number, or a word of its description",
                                    placeholder="e.g. portal; blank: the largest axial")
                read_as = gr.Radio(READ_AS, value=AS_GIVEN, label="Read the image", elem_id="read_as",
                                   info="mirrored: a patient with situs inversus, or an image saved mirrored; "
                                        "swapped: slices saved straight from a NIfTI array; upside-down: the spine at "
                                        "the top. Masks are of the image as uploaded.")
                with gr.Accordion("Patient information (optional, printed on the PDF)", open=False):
                    with gr.Row():
                        name = gr.Textbox(label="Name")
                        pid = gr.Textbox(label="Patient ID")
                    with gr.Row():
                        age = gr.Textbox(label="Age")
                        sex = gr.Dropdown(["", "female", "male", "other"], label="Sex", value="")
                    with gr.Row():
                        date = gr.Textbox(label="Study date")
                        physician = gr.Textbox(label="Referring physician")
                    notes = gr.Textbox(label="Notes", lines=2)
                with gr.Accordion("Compare with a reference segmentation (optional)", open=False) as compare_box:
                    reference = gr.File(label="Reference segmentation", type="filepath", elem_id="reference",
                                        height=120)
                    reference_labels = gr.Textbox(label="Label values (multi-organ maps)", max_lines=1,
                                                  elem_id="reference_labels", placeholder="e.g. 6, or 1, 2; blank: automatic",
                                                  info="The liver's value (or SEG segment number), and the tumor's after a comma")
                    gr.Markdown("An expert's label mask of the same image: NIfTI, NRRD or MetaImage for a volume (a "
                                "3D Slicer .seg.nrrd is read by its segments' names), a DICOM SEG for a DICOM series, PNG "
                                "for an image, a .zip of PNGs named as a stack's slices. 0 background, "
                                "1 liver, 2 tumor (or 0 and one value for the liver alone). Gives Dice, border "
                                "distances and lesions found, in the result and the PDF.", elem_id="reference_help")
                with gr.Accordion("Compare with an earlier study (follow-up, optional)", open=False):
                    earlier = gr.File(label="Earlier study of this patient", file_count="multiple", type="filepath",
                                      elem_id="earlier", height=120)
                    gr.Markdown("The patient's earlier CT, as a volume (a DICOM series or its .zip, a NIfTI, a .zip of "
                                "one series' slices), or its measurements.json from HepatoScan (several: the oldest is the "
                                "baseline, the smallest sum since then the nadir). Gives the change in liver and tumor volume, pairs each lesion "
                                "with the earlier study's, and reads the target lesions by RECIST 1.1, in the result "
                                "and the PDF.", elem_id="earlier_help")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
                examples = [[[str(p)], None] for p in sorted(SAMPLES.glob("lits117_z*_w*.png")) if "_mask" not in p.name][:3]
                examples.append([[str(SAMPLES / "lits117_volume.nii.gz")], None])
                examples.append([[str(SAMPLES / "lits117_w350_slices.zip")], None])  # 64 PNG slices of one series
                # The volume again, compared with its expert segmentation.
                examples.append([[str(SAMPLES / "lits117_volume.nii.gz")], str(SAMPLES / "lits117_segmentation.nii.gz")])
            with gr.Column(scale=3, min_width=320):
                summary = gr.Markdown("### Result\nUpload a CT image or study and press **Segment**, or "
                                      "click an example.", elem_id="summary")
                overlay = gr.AnnotatedImage(label="Overlay: liver green, tumor red (click a label to highlight)",
                                            color_map=COLORS, format="png", elem_id="overlay")
                slider = gr.Slider(0, 1, step=1, visible=False, label="Slice", elem_id="slice")
                with gr.Row():
                    original = gr.Image(label="Original", format="png", interactive=False)
                    liver = gr.Image(label="Liver mask", format="png", interactive=False)
                    tumor = gr.Image(label="Tumor mask", format="png", interactive=False)
                targets = gr.Gallery(label="Target lesions: the earlier study's largest slice beside now's", columns=2,
                                     format="png", visible=False, elem_id="targets", height=720)
                measurements = gr.Dataframe(headers=MEASUREMENT_HEADERS, label="Measurements", interactive=False)
                lesions = gr.Dataframe(label="Lesions", interactive=False)
                with gr.Row():
                    pdf = gr.File(label="PDF report", elem_id="pdf")
                    archive = gr.File(label="Masks and measurements (.zip)", elem_id="masks")
                with gr.Accordion("Measurements as JSON", open=False):
                    data = gr.JSON()
        gr.Markdown(f"Model: {card.name} {card.version} ({card.quantization}), {pool.backend}. "
                    f"HepatoScan {__version__}. A research tool, not a medical device: check every result.",
                    elem_id="disclaimer")
        patient_inputs = [name, pid, age, sex, date, physician, notes]
        ui_outputs = [overlay, original, liver, tumor, measurements, lesions, summary, pdf, data, slider, state,
                      archive, targets]
        with left_column:
            gr.Examples(examples, inputs=[upload, reference], outputs=ui_outputs,
                        fn=lambda f, ref: handlers.segment_ui(f, 0, 0, *[""] * 7, "", ref), run_on_click=True,
                        cache_examples=False, label="Examples: LiTS case 117 (click to run)")
        button.click(handlers.segment_ui, [upload, spacing, slice_spacing, *patient_inputs, series, reference,
                                           reference_labels, read_as, earlier], ui_outputs,
                     concurrency_limit=CONCURRENCY, api_visibility="private")
        # A reference set by an example (or left from an earlier comparison) is shown, not hidden in a closed box.
        reference.change(lambda r: gr.Accordion(open=True) if r else gr.Accordion(), reference, compare_box,
                         api_visibility="private", queue=False)
        slider.release(handlers.show_slice, [state, slider], ui_outputs[:6], api_visibility="private")
        api_out = [gr.JSON(visible=False), gr.File(visible=False), gr.File(visible=False)]
        api_button = gr.Button(visible=False)
        api_file = gr.File(label="CT image or study", type="filepath", visible=False)  # the API takes one file
        api_button.click(handlers.segment_api, [api_file, spacing, *patient_inputs], api_out, api_name="segment",
                         concurrency_limit=CONCURRENCY)
        api_button.click(handlers.segment_series_api, [api_file, spacing, slice_spacing, *patient_inputs], api_out,
                         api_name="segment_series", concurrency_limit=CONCURRENCY)
        api_button.click(handlers.segment_masks_api, [api_file, spacing, slice_spacing, *patient_inputs],
                         [*api_out, gr.File(visible=False)], api_name="segment_masks", concurrency_limit=CONCURRENCY)
        api_reference = gr.File(label="Reference segmentation", type="filepath", visible=False)
        api_button.click(handlers.compare_api, [api_file, api_reference, reference_labels, spacing, slice_spacing,
                                                *patient_inputs],
                         api_out, api_name="compare", concurrency_limit=CONCURRENCY)
        # Added after the others, so that their places (fn_index) stay as they were.
        api_series = gr.Textbox(label="Series (DICOM study)", visible=False)
        api_read_as = gr.Textbox(label="Read the image", visible=False)  # "", or READ_AS: a clear error otherwise
        api_button.click(handlers.segment_study_api, [api_file, spacing, slice_spacing, api_series, api_read_as,
                                                      *patient_inputs],
                         [*api_out, gr.File(visible=False)], api_name="segment_study", concurrency_limit=CONCURRENCY)
        api_earlier = gr.File(label="Earlier study", type="filepath", visible=False)
        api_button.click(handlers.follow_up_api, [api_file, api_earlier, spacing, slice_spacing, api_series, api_read_as,
                                                  *patient_inputs],
                         [*api_out, gr.File(visible=False)], api_name="follow_up", concurrency_limit=CONCURRENCY)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


def main(argv=None):
    p = argparse.ArgumentParser(description="HepatoScan web app")
    p.add_argument("--host", default=os.environ.get("HEPATOSCAN_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("HEPATOSCAN_PORT", "7860")))
    p.add_argument("--model", default=os.environ.get("HEPATOSCAN_MODEL_DIR", str(DEFAULT_MODEL_DIR)))
    p.add_argument("--share", action="store_true", default=os.environ.get("HEPATOSCAN_SHARE") == "1",
                   help="create a public gradio.live link (off unless asked)")
    a = p.parse_args(argv)
    configure_logging(logging.INFO, "%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        pool = PredictorPool(Path(a.model), CONCURRENCY)
    except HepatoScanError as e:
        log.error("%s", e)
        raise SystemExit(2) from e
    handlers = HepatoScanApp(pool, RequestFiles())
    demo = build_app(handlers)
    log.info("HepatoScan app (pid %d) on http://%s:%d", os.getpid(), a.host, a.port)
    try:
        demo.launch(server_name=a.host, server_port=a.port, share=a.share, max_file_size=MAX_UPLOAD,
                    theme=gr.themes.Soft(primary_hue="blue"), css=CSS, show_error=True)
    finally:
        handlers.close()


if __name__ == "__main__":
    main()
