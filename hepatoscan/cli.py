"""Command line: segment files, folders and zips in a batch.

    hepatoscan segment INPUT... --out DIR [--pdf] [--patient-name NAME] [--pixel-spacing MM] [--stack [--slice-spacing MM]] [--threads N]
    hepatoscan segment STUDY --earlier EARLIER_STUDY --out DIR [--pdf]   (a follow-up: change, RECIST 1.1)

Writes DIR/<input stem>/{liver_mask.png, tumor_mask.png, overlay.png, panel.png,
measurements.json[, report.pdf][, liver_mask.nii.gz, tumor_mask.nii.gz, labels.nii.gz, segmentation.seg.nrrd]
[, segmentation.dcm]
[, masks/]} and DIR/summary.csv: NIfTI masks (labels.nii.gz: 0 background, 1 liver, 2 tumor; the same as a
3D Slicer segmentation, segmentation.seg.nrrd) for volumes
and NIfTI inputs; for an axial DICOM series also segmentation.dcm, a DICOM SEG (segments 1 liver, 2 liver
tumor) that PACS viewers show over the study (needs highdicom: pip install hepatoscan[dicom]);
masks/<file>.png (0/1/2) for a stack of images.
A bad input is reported (stderr and summary.csv) and the batch goes on; the exit code is 1
when any input failed.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .config import IMAGE_SUFFIXES, ITK_HEADER_SUFFIXES, ITK_SUFFIXES, NIFTI_SUFFIXES
from .errors import HepatoScanError
from .followup import RESPONSES
from .logs import configure as configure_logging
from .orientation import ASKABLE
from .patient import PatientInfo, with_header

log = logging.getLogger("hepatoscan")

INPUT_SUFFIXES = IMAGE_SUFFIXES + NIFTI_SUFFIXES + ITK_SUFFIXES + ITK_HEADER_SUFFIXES + (".zip", ".dcm")
COMPARE_DOC = """Compare HepatoScan's masks with reference segmentations (an expert's), the LiTS way.

    hepatoscan compare IMAGE REFERENCE [IMAGE REFERENCE ...] --out DIR [--pdf] [--pixel-spacing MM]
        [--reference-labels LIVER[,TUMOR]]
    hepatoscan compare --images imagesTr --references labelsTr --out DIR   # a dataset, paired by name

Each IMAGE (any input of `segment`; a folder is one study) is segmented and compared with its
REFERENCE: a NIfTI, NRRD or MetaImage label volume for a volume (NIfTI, NRRD, MetaImage, DICOM
series, stack of slices; a 3D Slicer .seg.nrrd is read by its segments' names), a DICOM SEG
of a DICOM series, a label PNG for an image, or a folder or .zip of label PNGs named as a stack's
slices. Labels: 0 background,
1 liver, 2 tumor (a mask of 0 and one value: the liver alone; a multi-organ map, with
--reference-labels giving its liver's value, and its tumor's). Writes what `segment` writes
(measurements.json gains "agreement", the PDF a section) and DIR/agreement.csv: per pair, liver
and tumor Dice, VOE and RVD, the border (surface) distances (mean, 95th percentile, maximum; in
mm, or px where the spacing is unknown), both sizes, lesions found (Dice > 0.5 with one of
HepatoScan's, as LiTS counts them); then the mean Dice per case and the global Dice (every case's voxels pooled).
"""


def _is_dicom_file(path: Path) -> bool:
    from .io.dicom import is_dicom

    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as f:
            return is_dicom(f.read(132))
    except OSError:
        return False


def expand_inputs(paths: list[str], stack: bool = False) -> list[Path]:
    """Folders of DICOM files stay one input (a series); other folders give one input per file,
    or, with ``stack``, one input: one series' slices exported as images. A folder with no file to
    read stays one input, so that the batch reports it (with the loader's reason) instead of
    dropping it unsaid."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if stack or any(_is_dicom_file(f) for f in files[:50]) or any(f.is_dir() for f in p.iterdir()):
                out.append(p)
            else:
                found = [f for f in files if f.name.lower().endswith(INPUT_SUFFIXES)]
                out += found or [p]  # a folder with nothing to read stays, to be reported with why
        else:
            out.append(p)
    return out


def looks_like_a_series(images: list[Path], first: int = 8) -> bool:
    """Whether the first ``first`` images (natural name order) look like consecutive slices of one
    series (hepatoscan.series), so that a folder given without --stack may deserve it."""
    from .config import LoadLimits
    from .io.image import read_image
    from .io.stack import natural_key
    from .series import neighbour_similarity, separate_images, thumbnail

    thumbs, sizes = [], set()
    for path in sorted(images, key=lambda p: natural_key(p.name))[:first]:
        try:
            grey = read_image(path.read_bytes(), path.name, LoadLimits())[0]
        except (HepatoScanError, OSError):
            return False  # a bad file is reported when it is segmented
        sizes.add(grey.shape)
        thumbs.append(thumbnail(grey))
    if len(thumbs) < 3 or len(sizes) > 1:
        return False
    return not separate_images(neighbour_similarity(thumbs))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz",) + INPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class _Progress:
    """A one-line progress bar on stderr (only when it is a terminal, else sparse log lines)."""

    def __init__(self, label: str):
        self.label, self.tty, self.last = label, sys.stderr.isatty(), -1

    def __call__(self, fraction: float, message: str = ""):
        pct = int(100 * fraction)
        if self.tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:3d}% {message[:40]:<40}")
            sys.stderr.flush()
            if pct >= 100:
                sys.stderr.write("\n")
        elif pct // 25 != self.last // 25:
            log.info("%s: %d%% %s", self.label, pct, message)
        self.last = pct


def _unique_dir(out: Path, stem: str, used: set) -> Path:
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name)
    return out / name


def _totals(summary: dict) -> dict:
    """summary.csv's liver, tumor and units columns for one result's summary."""
    s = summary
    if s.get("separate_images"):
        return {"liver": "", "tumor": "", "units": "per image (see measurements.json)"}
    if "liver_voxels" in s:  # a volume
        if s["liver_volume_ml"] is None:
            return {"liver": s["liver_voxels"], "tumor": s["tumor_voxels"], "units": "voxels"}
        return {"liver": s["liver_volume_ml"], "tumor": s["tumor_volume_ml"], "units": "mL"}
    if s["units"] == "mm":
        return {"liver": s["liver_area_mm2"], "tumor": s["tumor_area_mm2"], "units": "mm2"}
    return {"liver": s["liver_area_px"], "tumor": s["tumor_area_px"], "units": "px"}


def _lesion_columns(result) -> dict:
    """summary.csv's tumor burden (% of the liver's volume, or of its area in an image) and the
    longest lesion's longest diameter in mm (blank without spacing or lesions); both blank for
    separate images, which have a figure each (measurements.json)."""
    m = result.measurements
    if m.separate_images:
        return {}
    lesions = m.volume.lesions if m.volume is not None else m.slices[0].lesions if m.slices else []
    diameters = [l.longest_diameter_mm for l in lesions if l.longest_diameter_mm is not None]
    return {"tumor_burden_pct": result.summary()["tumor_burden_pct"],
            "longest_diameter_mm": max(diameters) if diameters else ""}


def _prepare(args):
    """(Predictor, PatientInfo, the output folder, made) of the options shared by segment and
    compare; None (logged) where they do not go together or the model cannot be loaded."""
    from .predictor import DEFAULT_MODEL_DIR, Predictor

    if args.slice_spacing and not args.pixel_spacing:
        log.error("--slice-spacing needs --pixel-spacing too: a volume in mL needs the in-plane pixel size")
        return None

    try:
        predictor = Predictor.from_model_dir(args.model or DEFAULT_MODEL_DIR, num_threads=args.threads)
    except HepatoScanError as e:
        log.error("%s", e)
        return None
    log.info("model %s %s on %s (%d threads)", predictor.card.name, predictor.card.version,
             predictor.backend, args.threads)
    patient = PatientInfo(name=args.patient_name or "", patient_id=args.patient_id or "",
                          age=args.patient_age or "", sex=args.patient_sex or "",
                          study_date=args.study_date or "", referring_physician=args.referring_physician or "",
                          notes=args.notes or "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return predictor, patient, out


def segment_command(args) -> int:
    missing = [e for e in args.earlier or () if not Path(e).exists()]
    if args.earlier and (len(args.inputs) != 1 or missing):
        log.error("--earlier compares one study with earlier ones: give one input (a DICOM series' folder or .zip, a "
                  "NIfTI) and earlier studies that exist" + (f" ({missing[0]} does not)" if missing else ""))
        return 2
    prepared = _prepare(args)
    if prepared is None:
        return 2
    predictor, patient, out = prepared
    inputs = expand_inputs(args.inputs, stack=args.stack)
    if not inputs:
        log.error("no inputs found in %s", args.inputs)
        return 2
    with tempfile.TemporaryDirectory(prefix="hepatoscan_") as scratch:
        inputs, shown = _listed_files_as_one(inputs, args.stack, Path(scratch))
        return _segment_inputs(args, predictor, patient, out, inputs, shown)


def _listed_files_as_one(inputs: list[Path], stack: bool, scratch: Path) -> tuple[list[Path], dict]:
    """With --stack, the image and DICOM files listed one by one (a shell glob of a series) become
    one input, a folder of links to them in ``scratch`` named for their folder; without it, a hint
    when several DICOM files were so listed. -> (inputs, {input: how summary.csv names it})."""
    files = [p for p in inputs if p.is_file()]
    dicom = {p for p in files if _is_dicom_file(p)}
    listed = [p for p in files if p.name.lower().endswith(IMAGE_SUFFIXES) or p in dicom]
    if not stack:
        if len(dicom) >= 3:
            log.info("%d DICOM files were given one by one, so each is one slice; to segment them as one series "
                     "(a volume), give their folder or add --stack", len(dicom))
        return inputs, {}
    if len(listed) < 2:
        return inputs, {}
    from .io.gather import gather_files

    parents = {p.parent.resolve() for p in listed}
    name = parents.pop().name if len(parents) == 1 else ""  # named for their folder, as a folder input is
    folder = gather_files(listed, scratch / (name or "stack"))
    first = inputs.index(listed[0])
    rest = [p for p in inputs if p not in listed]
    return rest[:first] + [folder] + rest[first:], {folder: f"{len(listed)} files ({listed[0]} ... {listed[-1]})"}


def _compare_pairs(args) -> list[tuple[Path, Path]] | None:
    """The (image, reference) pairs of the command line: listed, and/or paired by name from
    --images and --references (hepatoscan.pairing); None (logged) where they cannot be made."""
    from .pairing import pair_by_name
    from .wording import agree, count

    if len(args.pairs) % 2:
        log.error("give pairs: IMAGE REFERENCE [IMAGE REFERENCE ...] (%d paths were given; the last has no "
                  "reference)", len(args.pairs))
        return None
    pairs = [(Path(a), Path(b)) for a, b in zip(args.pairs[0::2], args.pairs[1::2])]
    if bool(args.images) != bool(args.references):
        log.error("--images and --references go together: the folder of images and the folder of their reference "
                  "segmentations, paired by name")
        return None
    if args.images:
        folders = [Path(args.images), Path(args.references)]
        missing = [f for f in folders if not f.is_dir()]
        if missing:
            log.error("%s: no such folder", missing[0])
            return None
        found, unmatched, twice = pair_by_name(*folders)
        for name in twice:
            log.warning("two entries of one folder pair as %r: neither is compared; rename one", name)
        if unmatched:
            log.warning("%s no reference of its name in %s (such as %s): not compared",
                        f"{count(len(unmatched), 'image')} {agree(len(unmatched), 'has', 'have')}", folders[1],
                        ", ".join(p.name for p in unmatched[:3]))
        log.info("%d images paired with their references by name", len(found))
        pairs += found
    if not pairs:
        log.error("nothing to compare: give IMAGE REFERENCE pairs, or --images DIR --references DIR whose entries "
                  "share names (liver_012_0000.nii.gz and liver_012.nii.gz, volume-12.nii and segmentation-12.nii)")
        return None
    return pairs


def compare_command(args) -> int:
    """Segment each IMAGE of the IMAGE REFERENCE pairs, compare, write agreement.csv too."""
    pairs = _compare_pairs(args)
    if pairs is None:
        return 2
    from .io.reference import parse_label_values

    try:
        args.reference_values = parse_label_values(args.reference_labels)
    except HepatoScanError as e:
        log.error("--reference-labels: %s", e)
        return 2
    prepared = _prepare(args)
    if prepared is None:
        return 2
    predictor, patient, out = prepared
    return _segment_inputs(args, predictor, patient, out, [a for a, _ in pairs], {}, [b for _, b in pairs])


def _segment_inputs(args, predictor, patient, out: Path, inputs: list[Path], shown: dict,
                    references: list[Path] | None = None) -> int:
    """Segment each input, write its outputs and summary.csv (with ``references``, each input's
    reference segmentation in the same order, compare and write agreement.csv too); -> the exit
    code (1 if any failed)."""
    from .config import LoadLimits
    from .pipeline import analyze, write_outputs

    compared = []  # (input, reference, Agreement or the error's message)
    if not args.stack:
        for folder in (Path(p) for p in args.inputs if Path(p).is_dir() and Path(p) not in inputs):
            if looks_like_a_series(sorted(f for f in inputs if f.parent == folder)):
                log.info("%s: its images look like consecutive slices of one series; add --stack to segment "
                         "them as one study (one window, 3D clean-up, volumes)", folder)
    rows, used, failed = [], set(), 0
    for i, path in enumerate(inputs, 1):
        label = f"[{i}/{len(inputs)}] {path.name}"
        t0 = time.perf_counter()
        row = {"input": shown.get(path, str(path)), "status": "ok", "message": "", "patient_id": "",
               "study_date": "", "output_dir": "", "slices": "",
               "liver": "", "tumor": "", "units": "", "lesion_count": "", "tumor_burden_pct": "",
               "longest_diameter_mm": "", "response": "", "seconds": ""}
        try:
            result = analyze(predictor, path, pixel_spacing_mm=args.pixel_spacing,
                             limits=LoadLimits(), progress=_Progress(label), slice_spacing_mm=args.slice_spacing,
                             series=args.series, reference=references[i - 1] if references else None,
                             reference_values=getattr(args, "reference_values", None), read_as=args.read_as,
                             earlier=getattr(args, "earlier", None))
            target = _unique_dir(out, _stem(path), used)
            write_outputs(result, target, patient=patient)
            pdf_failed = args.pdf and not _write_pdf(result, target / "report.pdf", patient, label)
            s = result.summary()
            who, _, mismatches = with_header(patient, result.scan.metadata)
            for w in mismatches:
                log.warning("%s: %s", label, w)
            row.update(patient_id=who.patient_id, study_date=who.study_date, output_dir=str(target),
                       slices=s["slices"], lesion_count=s["lesion_count"],
                       message=" ".join(result.warnings + mismatches + (
                           ["the PDF report could not be written (see the log); the other outputs are complete."]
                           if pdf_failed else [])),
                       **_totals(s), **_lesion_columns(result))
            log.info("%s: %s", label, result.describe())
            if result.follow_up is not None:
                row["response"] = RESPONSES.get(result.follow_up.response, "")
                log.info("%s: %s", label, result.follow_up.describe())
            if result.agreement is not None:
                compared.append((path, references[i - 1], result.agreement))
                log.info("%s: %s", label, result.agreement.describe())
        except HepatoScanError as e:
            failed += 1
            row.update(status="error", message=str(e))
            log.error("%s: %s", label, str(e).removeprefix(f"{path.name}: "))  # the label names the file
        except Exception as e:  # an internal bug must not cost the rest of the batch
            failed += 1
            row.update(status="error", message=f"internal error ({type(e).__name__}: {e}); please report it")
            log.exception("%s: internal error", label)
        row["seconds"] = f"{time.perf_counter() - t0:.2f}"
        rows.append(row)
        if references and row["status"] == "error":
            compared.append((path, references[i - 1], row["message"]))
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("%d of %d inputs done, %d failed; summary in %s", len(rows) - failed, len(rows), failed,
             out / "summary.csv")
    if references:
        write_agreement_csv(compared, out / "agreement.csv")
    return 1 if failed else 0


AGREEMENT_COLUMNS = ["input", "reference", "status", "message", "liver_dice", "tumor_dice", "liver_voe", "liver_rvd",
                     "tumor_voe", "tumor_rvd", "liver_assd", "liver_hd95", "liver_hausdorff", "tumor_assd",
                     "tumor_hd95", "tumor_hausdorff", "distance_unit", "unit",
                     "liver_reference", "liver_hepatoscan", "tumor_reference", "tumor_hepatoscan",
                     "reference_lesions", "hepatoscan_lesions", "lesions_detected", "lesion_recall",
                     "lesion_precision", "reference_lesions_10mm", "lesions_10mm_detected"]


LESION_COLUMNS = {"reference_lesions": "reference_lesions", "hepatoscan_lesions": "hepatoscan_lesions",
                  "lesions_detected": "detected", "lesion_recall": "recall", "lesion_precision": "precision",
                  "reference_lesions_10mm": "reference_lesions_10mm", "lesions_10mm_detected": "detected_10mm"}


def _agreement_row(path: Path, reference: Path, a) -> dict:
    """One agreement.csv row: an Agreement's figures, or an error's message."""
    row = dict.fromkeys(AGREEMENT_COLUMNS, "")
    row.update(input=str(path), reference=str(reference))
    if isinstance(a, str):
        row.update(status="error", message=a)
        return row
    d = a.to_dict()
    lesions = d["lesions"]
    row.update(status="ok", message=" ".join(d["notes"]),
               **{k: _cell(d[k]) for k in ("liver_dice", "tumor_dice", "liver_voe", "liver_rvd", "tumor_voe",
                                           "tumor_rvd", "unit", "liver_reference", "liver_hepatoscan",
                                           "tumor_reference", "tumor_hepatoscan")},
               **{column: _cell(lesions[key]) for column, key in LESION_COLUMNS.items()})
    for part in ("liver", "tumor"):
        s = d[f"{part}_surface_distance"]
        if s is not None:
            row.update({f"{part}_assd": s["assd"], f"{part}_hd95": s["hd95"], f"{part}_hausdorff": s["maximum"],
                        "distance_unit": s["unit"]})
    return row


def _cell(value) -> str:
    return "" if value is None else str(value)


def write_agreement_csv(compared: list, path: Path) -> None:
    """agreement.csv: a row per pair, then the mean of the cases' Dice and the global Dice (every
    case's voxels pooled; LiTS reports both), over the pairs that were compared."""
    from .agreement import Overlap

    rows = [_agreement_row(*c) for c in compared]
    done = [a for _, _, a in compared if not isinstance(a, str)]
    if done:
        def mean(values):
            values = [v for v in values if v is not None]
            return _cell(round(sum(values) / len(values), 4) if values else None)

        liver = sum((a.liver for a in done), Overlap(0, 0, 0))
        tumor = sum((a.tumor for a in done if a.marks_tumor), Overlap(0, 0, 0))
        distances = {}
        units = {a.liver_surface.unit for a in done if a.liver_surface is not None}
        if len(units) == 1:  # a mean of distances in one unit only (mm, or px where no case has a spacing)
            for part in ("liver", "tumor"):
                found = [getattr(a, f"{part}_surface") for a in done]
                distances.update({f"{part}_assd": mean(s.assd for s in found if s is not None),
                                  f"{part}_hd95": mean(s.hd95 for s in found if s is not None)})
            distances["distance_unit"] = units.pop()
        rows.append({**dict.fromkeys(AGREEMENT_COLUMNS, ""), "input": f"mean of {len(done)} cases",
                     "status": "ok", "liver_dice": mean(a.liver_dice for a in done),
                     "tumor_dice": mean(a.tumor_dice for a in done), **distances,
                     "message": "tumor Dice over the cases whose reference marks tumor"
                                + ("; tumor distances over those where both mark tumor" if distances else "")})
        rows.append({**dict.fromkeys(AGREEMENT_COLUMNS, ""), "input": f"global over {len(done)} cases",
                     "status": "ok", "liver_dice": _cell(None if liver.dice is None else round(liver.dice, 4)),
                     "tumor_dice": _cell(None if tumor.reference == 0 else round(tumor.dice, 4)),
                     "message": "every case's voxels pooled"})
        log.info("liver Dice: mean %s, global %s; tumor Dice: mean %s, global %s (%d cases); in %s",
                 rows[-2]["liver_dice"], rows[-1]["liver_dice"], rows[-2]["tumor_dice"] or "-",
                 rows[-1]["tumor_dice"] or "-", len(done), path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=AGREEMENT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _write_pdf(result, path: Path, patient, label: str) -> bool:
    """The report of ``result`` into ``path``; False (logged) where it cannot be made, so that the
    masks and measurements already written still count as the input's result."""
    try:
        path.write_bytes(result.report_pdf(patient))
        return True
    except Exception:  # a full disk or a bug in the report must not turn a done input into a failure
        log.exception("%s: the PDF report could not be written", label)
        return False


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hepatoscan", description="Liver and liver-tumor segmentation of CT.",
                                epilog="hepatoscan INPUT... --out DIR is short for hepatoscan segment INPUT... --out DIR; "
                                       "hepatoscan segment --help lists its options.")
    p.add_argument("--version", action="version", version=f"hepatoscan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="segment images, DICOM files/series/zips and NIfTI, NRRD and MetaImage volumes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("inputs", nargs="+", help="files, folders (a DICOM series, or many images) or zips")
    _add_common(s)
    s.add_argument("--stack", action="store_true",
                   help="a folder of PNG/JPG files, or the image or DICOM files listed (a shell glob of one "
                        "series), is one series' slices: one study, one report, one display window shared by "
                        "its slices (default: each file on its own; a .zip of images is always one stack)")
    s.add_argument("--earlier", metavar="STUDY", action="append",
                   help="an earlier study of the same patient (a DICOM series, its folder or .zip, a NIfTI, or the "
                        "measurements.json HepatoScan wrote for it): the "
                        "one input is compared with it (volumes, lesions paired, RECIST 1.1 reading of the target "
                        "lesions) in measurements.json (follow_up), the PDF and summary.csv (response); given "
                        "several times (oldest first), the first is the baseline and the others give the nadir that "
                        "progression is measured from")
    c = sub.add_parser("compare", help="compare HepatoScan's masks with reference segmentations (Dice, lesions)",
                       description=COMPARE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("pairs", nargs="*", metavar="IMAGE REFERENCE",
                   help="an input and its reference segmentation, as many pairs as wanted")
    c.add_argument("--images", metavar="DIR", help="a folder of inputs (files, or a folder per DICOM series) ...")
    c.add_argument("--references", metavar="DIR",
                   help="... and a folder of their reference segmentations, paired by name: liver_012_0000.nii.gz "
                        "with liver_012.nii.gz, volume-12.nii with segmentation-12.nii, case7.png with case7_mask.png")
    c.add_argument("--reference-labels", metavar="LIVER[,TUMOR]",
                   help="the liver's value (and the tumor's) in the references, for multi-organ label maps (e.g. 6, "
                        "or 1,2), or a DICOM SEG's segment numbers; default: 0/1/2, 0 and one value (the liver "
                        "alone), 0 and two values; a SEG's segments by their codes or labels")
    _add_common(c)
    c.set_defaults(stack=True)  # a folder is one study: its reference is one label volume or one set of masks
    return p


def _add_common(s) -> None:
    """The options segment and compare share."""
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--pdf", action="store_true", help="also write report.pdf for each input")
    s.add_argument("--pixel-spacing", type=float, metavar="MM", help="in-plane pixel size for PNG/JPG inputs")
    s.add_argument("--slice-spacing", type=float, metavar="MM",
                   help="distance between slices for a stack of PNG/JPG slices (with --pixel-spacing: volumes in mL)")
    s.add_argument("--series", metavar="WHICH",
                   help="of a DICOM study with several series (contrast phases, reformats), the one to segment: "
                        "its series number, SeriesInstanceUID or a word of its description (e.g. portal); "
                        "default: the largest axial series, named in a warning with the others")
    names = [r.name for r in ASKABLE]
    s.add_argument("--read-as", choices=names, metavar="{" + ",".join(names) + "}",
                   help="have the model read every slice mirrored left-right (a patient with situs inversus, an "
                        "image saved mirrored), with rows and columns swapped (slices saved straight from a RAS "
                        "NIfTI array) or upside down (a volume shown with the spine at the top, as a NIfTI stating "
                        "no orientation may be); the masks are turned back to the input's own orientation. "
                        "Default: as given")
    s.add_argument("--threads", type=int, default=2, help="interpreter threads (default 2)")
    s.add_argument("--model", help="model folder (default: the shipped models/)")
    for flag in ("patient-name", "patient-id", "patient-age", "patient-sex", "study-date",
                 "referring-physician", "notes"):
        s.add_argument(f"--{flag}", help=f"{flag.replace('-', ' ')} for the PDF report")
    s.add_argument("-q", "--quiet", action="store_true", help="only errors")


COMMANDS = ("segment", "compare")


def with_default_command(argv: list[str]) -> list[str]:
    """``hepatoscan FILE ...`` means ``hepatoscan segment FILE ...`` (input first, as in
    TotalSegmentator); a command, help or --version is left as given."""
    if argv and argv[0] not in (*COMMANDS, "-h", "--help", "--version"):
        return ["segment", *argv]
    return argv


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # nothing to do: say what can be done
        build_parser().print_help()
        return 2
    args = build_parser().parse_args(with_default_command(argv))
    configure_logging(logging.ERROR if getattr(args, "quiet", False) else logging.INFO,
                      "%(levelname)s %(message)s", stream=sys.stderr)
    if args.command == "segment":
        return segment_command(args)
    if args.command == "compare":
        return compare_command(args)
    return 2
