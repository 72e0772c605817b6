"""A4 PDF report (fpdf2) with embedded Unicode fonts. Patient text is data, never markup."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from fpdf.image_parsing import SETTINGS as IMAGE_SETTINGS
from PIL import Image

from . import __version__
from .patient import PatientInfo, with_header
from .scan import message_label, source_label
from .tables import fmt_value as _fmt
from .tables import diameter_cells, lesion_cells, match_cell, match_header
from .wording import count

log = logging.getLogger(__name__)

FONT_DIR = Path(__file__).resolve().parent / "fonts"
DISCLAIMER = ("HepatoScan is a research tool, not a medical device. Its masks and measurements "
              "have not been cleared for clinical use and must be checked by a qualified reader; do "
              "not base diagnosis or treatment on them.")


CJK_RANGES = ((0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F),
              (0xFF00, 0xFFEF), (0x20000, 0x2FA1F))


# Scripts whose letters change shape with context or run right to left: Hebrew, Arabic (with
# presentation forms), Syriac, Thaana, Indic, Thai, Lao, Tibetan, Myanmar, Khmer.
SHAPING_RANGES = ((0x0590, 0x08FF), (0x0900, 0x0DFF), (0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF),
                  (0xFB1D, 0xFDFF), (0xFE70, 0xFEFF))


# The scripts most names are written in: Latin with its extensions (and combining accents),
# Greek, Cyrillic, punctuation, super- and subscripts, currency, letter-like and number forms,
# arrows, maths and geometric shapes. DejaVuSans-Core.ttf and DejaVuSans-Bold-Core.ttf are DejaVu
# cut to these (about 2,600 of its 6,253 glyphs; scripts/subset_fonts.py makes them), which fpdf2
# parses and subsets in a third of the time: with the image level below, the sample PNG's report
# took 130 to 139 ms instead of 295 (benchmarks/run_all.py). The full fonts load only when a text
# has a character outside these ranges (Hebrew, Arabic, Armenian, Georgian, ...).
CORE_FONT_RANGES = ((0x0000, 0x036F), (0x0370, 0x03FF), (0x0400, 0x052F), (0x1E00, 0x1FFF), (0x2000, 0x209F),
                    (0x20A0, 0x20CF), (0x2100, 0x218F), (0x2190, 0x22FF), (0x25A0, 0x25FF))
# zlib level of the images embedded in the PDF: level 3 packs the 1548 x 408 overlay panel of a
# slice in 16 ms to 326 kB, fpdf2's default (6) in 32 ms to 338 kB.
IMAGE_COMPRESSION_LEVEL = 3
PICTURE_WIDTH_MM = 180  # a panel across the page
# A grid's first column (image file or lesion names) widens to its longest text up to this share of
# the page; longer names wrap inside it.
FIRST_COLUMN_MAX = 0.4


def _in(ch: str, ranges) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in ranges)


def _any_in(texts, ranges) -> bool:
    return any(_in(ch, ranges) for t in texts for ch in str(t))


def needs_cjk_font(texts) -> bool:
    """True when any text has Chinese, Japanese or Korean characters (which DejaVu lacks)."""
    return _any_in(texts, CJK_RANGES)


def needs_full_font(texts) -> bool:
    """True when any text has a character that the core cut of DejaVu lacks (CJK aside: the
    fallback font draws those)."""
    return any(not _in(ch, CORE_FONT_RANGES) and not _in(ch, CJK_RANGES) for t in texts for ch in str(t))


def needs_text_shaping(texts) -> bool:
    """True when any text is in a script that needs shaping (e.g. Arabic joining, right to left)."""
    return _any_in(texts, SHAPING_RANGES)


class _Report(FPDF):
    def __init__(self, cjk: bool, shaping: bool, full_font: bool = True):
        super().__init__(format="A4")
        cut = "" if full_font else "-Core"
        self.add_font("DejaVu", "", str(FONT_DIR / f"DejaVuSans{cut}.ttf"))
        self.add_font("DejaVu", "B", str(FONT_DIR / f"DejaVuSans-Bold{cut}.ttf"))
        if cjk:  # parsing this 3.4 MB font costs ~0.4 s: only when the text needs it
            self.add_font("DroidFallback", "", str(FONT_DIR / "DroidSansFallback.ttf"))
            self.set_fallback_fonts(["DroidFallback"], exact_match=False)
        if shaping:  # Arabic joining, right-to-left runs (uharfbuzz); ~0.15 s, so only when needed
            try:
                self.set_text_shaping(True)
            except (ImportError, ModuleNotFoundError):
                log.info("uharfbuzz missing: Arabic and other complex scripts print unshaped")
        self.set_auto_page_break(True, margin=18)
        self.set_margins(15, 15, 15)
        self.set_title("HepatoScan report")
        self.set_creator(f"HepatoScan {__version__}")

    def header(self):
        self.set_font("DejaVu", "B", 14)
        self.set_text_color(20, 60, 110)
        self.cell(0, 8, "HepatoScan: liver and liver-tumor segmentation report",
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(20, 60, 110)
        self.line(15, self.get_y(), 195, self.get_y())
        self.ln(2)
        self.set_text_color(0, 0, 0)

    def footer(self):
        self.set_y(-14)
        self.set_font("DejaVu", "", 7)
        self.set_text_color(110, 110, 110)
        self.multi_cell(0, 3.2, f"Page {self.page_no()}. {DISCLAIMER}")

    def section(self, title: str, keep_mm: float = 12):
        """A shaded heading, on a new page unless ``keep_mm`` of what follows fits under it (no
        heading left alone at the foot of a page)."""
        self.ensure_space(2 + 7 + 1 + keep_mm)
        self.ln(2)
        self.set_font("DejaVu", "B", 11)
        self.set_fill_color(232, 238, 246)
        self.cell(0, 7, title, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", "", 9)
        self.ln(1)

    def kv_table(self, rows: list[tuple[str, str]], col1: float = 50):
        self.set_font("DejaVu", "", 9)
        for key, value in rows:
            self.set_font("DejaVu", "B", 9)
            self.cell(col1, 5.5, key)
            self.set_font("DejaVu", "", 9)
            self.multi_cell(0, 5.5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def grid(self, header: list[str], rows: list[list[str]], line_mm: float = 5.0):
        """A table across the page, its bold shaded header repeated after a page break. The first
        column (names: an image file, a lesion) is as wide as its longest text, up to
        FIRST_COLUMN_MAX of the page; the others share the rest equally. Drawn cell by cell (19 ms
        for a volume's 40 lesions): fpdf2's table(), which lays out every cell as wrapping text,
        took 90 ms and draws the same page. Texts still too wide for their column go through
        table(), in the same column widths."""
        widths = self._column_widths(header, rows)
        if not self._fits(header, rows, widths):
            self._wrapped_grid(header, rows, line_mm, widths)
            return

        def heading():
            self.set_font("DejaVu", "B", 8)
            self.set_fill_color(232, 238, 246)
            for h, w in zip(header, widths):
                self.cell(w, line_mm, h, border=1, align="C", fill=True)
            self.ln(line_mm)
            self.set_font("DejaVu", "", 8)

        heading()
        for row in rows:
            if self.get_y() + line_mm > self.page_break_trigger:
                self.add_page()
                heading()
            for v, w in zip(row, widths):
                self.cell(w, line_mm, v, border=1, align="C")
            self.ln(line_mm)

    def _text_mm(self, text: str, bold: bool = False) -> float:
        """Width of ``text`` in the grid's 8 pt font, cell margins included."""
        self.set_font("DejaVu", "B" if bold else "", 8)
        return self.get_string_width(text) + 2 * self.c_margin

    def _column_widths(self, header: list[str], rows: list[list[str]]) -> list[float]:
        """-> mm per column: equal columns, or a first column widened to its longest text; where a
        text does not fit so, each column as wide as its longest text and the rest of the page
        shared out, if that fits on the page; else so with the headings on two lines
        (:meth:`_heading_mm`); else the values wrap too (:meth:`_word_widths`)."""
        n = len(header)
        if n == 1:
            return [self.epw]
        equal = self.epw / n
        first = max([self._text_mm(header[0], bold=True)] + [self._text_mm(r[0]) for r in rows]) + 1.0
        first = min(max(first, equal), FIRST_COLUMN_MAX * self.epw)
        widths = [first] + [(self.epw - first) / (n - 1)] * (n - 1)
        if self._fits(header, rows, widths):
            return widths
        values = [max([self._text_mm(r[i]) for r in rows], default=0.0) for i in range(n)]
        for heading in (lambda h: self._text_mm(h, bold=True), self._heading_mm):  # one line, else two
            need = [max(heading(h), v) + 2.0 for h, v in zip(header, values)]
            if sum(need) <= self.epw:
                return [w + (self.epw - sum(need)) / n for w in need]
        return self._word_widths(header, rows, need) or widths

    def _heading_mm(self, text: str) -> float:
        """The narrowest width that holds a column's heading on at most two lines (split between
        words), so that a long heading over short values ("RECIST measurable" over "yes") wraps
        rather than take room from a column whose values need it."""
        words = text.split()
        splits = [(" ".join(words[:k]), " ".join(words[k:])) for k in range(1, len(words))]
        return min([self._text_mm(text, bold=True)] +
                   [max(self._text_mm(a, bold=True), self._text_mm(b, bold=True)) for a, b in splits])

    def _word_widths(self, header: list[str], rows: list[list[str]], need: list[float]) -> list[float] | None:
        """Columns for texts that must wrap: each at least as wide as its longest word (so that
        "Perpendicular" never breaks inside); then, of the rest of the page, the columns that lack
        least of ``need`` (their one-line widths) get it whole, so that as few columns as may wrap,
        and the last share the remainder in proportion to what they lack. None where even the
        words do not fit."""
        def words_mm(text: str, bold: bool = False) -> float:
            return max((self._text_mm(word, bold) for word in text.split()), default=0.0)

        widths = [max([words_mm(header[i], bold=True)] + [words_mm(r[i]) for r in rows]) + 1.0
                  for i in range(len(header))]
        spare = self.epw - sum(widths)
        if spare < 0:
            return None
        lacking = sorted((i for i in range(len(header)) if need[i] > widths[i]), key=lambda i: need[i] - widths[i])
        while lacking and need[lacking[0]] - widths[lacking[0]] <= spare:
            i = lacking.pop(0)
            spare -= need[i] - widths[i]
            widths[i] = need[i]
        total = sum(need[i] - widths[i] for i in lacking)
        for i in lacking:
            widths[i] += spare * (need[i] - widths[i]) / total
        if not lacking:  # every column on one line after all: the room left shared equally
            widths = [w + spare / len(widths) for w in widths]
        return widths

    def _fits(self, header: list[str], rows: list[list[str]], widths: list[float]) -> bool:
        return (all(self._text_mm(h, bold=True) <= w for h, w in zip(header, widths))
                and all(self._text_mm(v) <= w for r in rows for v, w in zip(r, widths)))

    def _wrapped_grid(self, header: list[str], rows: list[list[str]], line_mm: float, widths: list[float]):
        heading = FontFace(emphasis="BOLD", fill_color=(232, 238, 246))
        self.set_font("DejaVu", "", 8)
        with self.table(headings_style=heading, line_height=line_mm, text_align="CENTER",
                        first_row_as_headings=True, col_widths=tuple(widths)) as table:
            r = table.row()
            for h in header:
                r.cell(h)
            for row in rows:
                r = table.row()
                for v in row:
                    r.cell(v)

    def ensure_space(self, height_mm: float):
        """A new page unless ``height_mm`` fits above the footer."""
        if self.get_y() + height_mm > self.h - 20:
            self.add_page()

    def pictures_side_by_side(self, pictures: list[tuple[np.ndarray, str]], width_mm: float):
        """Pictures (RGB, caption) in a row, each ``width_mm`` wide, captions above, on one page."""
        height_mm = max(width_mm * rgb.shape[0] / rgb.shape[1] for rgb, _ in pictures)
        self.ensure_space(height_mm + 7)
        top = self.get_y()
        self.set_font("DejaVu", "B", 9)
        for k, (rgb, caption) in enumerate(pictures):
            x = self.l_margin + k * (width_mm + 4)
            self.set_xy(x, top + 1)
            self.cell(width_mm, 5, caption)
            self.image(Image.fromarray(rgb), x=x, y=top + 6, w=width_mm, h=width_mm * rgb.shape[0] / rgb.shape[1])
        self.set_font("DejaVu", "", 9)
        self.set_xy(self.l_margin, top + 7 + height_mm)

    def picture(self, rgb: np.ndarray, width_mm: float = PICTURE_WIDTH_MM, caption: str | None = None):
        """The picture across the page, with its caption above it on the same page."""
        h, w = rgb.shape[:2]
        height_mm = width_mm * h / w
        self.ensure_space(height_mm + (5 if caption else 0))
        if caption:
            self.set_font("DejaVu", "B", 9)
            self.cell(0, 5, caption, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_font("DejaVu", "", 9)
        self.image(Image.fromarray(rgb), x=15, w=width_mm, h=height_mm)
        self.ln(1)


def _numbering(result) -> str:
    """How a volume's slices are numbered in this report, and what the brackets after a slice
    number say (Result.slice_source)."""
    scan = result.scan
    if scan.metadata.get("slice_files"):
        return f"0 to {scan.n_slices - 1} in file-name order; each file's name in brackets"
    said = f"0 (feet) to {scan.n_slices - 1} (head)"
    sources = [scan.slice_source(z) for z in (0, scan.n_slices - 1)]
    if not all(sources):
        return said
    if "file_slice" in sources[0]:
        return said + "; in brackets, the slice as the NIfTI file numbers it (from 0)"
    return (f"{said}. In brackets, the series' own image number and z: slice 0 is {source_label(sources[0])}; "
            f"slice {scan.n_slices - 1} is {source_label(sources[1])}.")


def _separate_images_tables(pdf: _Report, result, mm: bool, max_rows: int = 60):
    """Separate images (not one series): totals and a row per image."""
    m = result.measurements
    pdf.kv_table([("Images", f"{len(m.slices)}, not one series: each segmented and measured on its own"),
                  ("With liver / tumor", f"{m.images_with('liver')} / {m.images_with('tumor')}"),
                  ("Lesions (all images)", str(m.lesions_in_images()))])
    pdf.grid(["Image", "Liver area", "Tumor area", "Tumor burden", "Lesions"],
             [[result.slice_file(s.slice_index) or str(s.slice_index),
               _fmt(s.liver_area_mm2, " mm²") if mm else f"{s.liver_area_px:,} px",
               _fmt(s.tumor_area_mm2, " mm²") if mm else f"{s.tumor_area_px:,} px",
               f"{s.tumor_burden_pct:.2f} %", str(s.lesion_count)]
              for s in m.slices[:max_rows]])
    if len(m.slices) > max_rows:
        pdf.multi_cell(0, 5, f"... and {len(m.slices) - max_rows} more images: see measurements.json.",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _separate_image_lesions(pdf: _Report, result, mm: bool):
    """Separate images: every image's 2D lesions (the first 40), named by their image."""
    m = result.measurements
    lesions = [(s.slice_index, l) for s in m.slices for l in s.lesions]
    if lesions:
        pdf.section("Lesions per image" + (f": the first 40 of {len(lesions)}" if len(lesions) > 40 else ""))
        pdf.grid(["Lesion", "Area", "Longest diameter", "Perpendicular", "RECIST measurable"],
                 [[f"{result.slice_file(z) or z} #{l.lesion_id}", *lesion_cells(l, mm)] for z, l in lesions[:40]])


def _agreement_section(pdf: _Report, agreement) -> None:
    """Agreement with the reference segmentation the user gave (hepatoscan.agreement)."""
    pdf.section("Agreement with the reference segmentation")
    pdf.multi_cell(0, 5, agreement.describe(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.grid(["", "Reference", "HepatoScan", "Agreement"], [list(r) for r in agreement.rows()])
    for note in agreement.notes:
        pdf.multi_cell(0, 5, f"{message_label(note)}: {note}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.multi_cell(0, 5, "Dice: 2 |A and B| / (|A| + |B|), the liver including tumor. Border distances: from "
                         "each border voxel of one segmentation to the nearest of the other's, both ways: their "
                         "mean (ASSD), 95th percentile (HD95) and maximum (Hausdorff). A reference lesion is found "
                         "when its Dice with one of HepatoScan's lesions exceeds 0.5 (as LiTS counts them). The "
                         "overlays below outline the reference: liver yellow, tumor blue.",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _target_pictures(pdf: _Report, result, width_mm: float = 75.0) -> None:
    """Each target lesion's largest slice in the earlier study beside its pair's in this one."""
    pictures = result.follow_up_pictures()
    for k in range(0, len(pictures), 2):
        pdf.pictures_side_by_side(pictures[k:k + 2], width_mm)


def _follow_up_section(pdf: _Report, result, follow_up) -> None:
    """Change since an earlier study of the patient (hepatoscan.followup)."""
    pdf.section("Change since the earlier study")
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(0, 5, follow_up.response_text(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    for header, rows in follow_up.tables():
        pdf.ln(1)
        pdf.grid(header, rows)
    if follow_up.new_lesions:
        pdf.multi_cell(0, 5, "Possible new lesions: " + follow_up.new_lesions_text(), new_x=XPos.LMARGIN,
                       new_y=YPos.NEXT)
    for note in follow_up.notes:
        pdf.multi_cell(0, 5, f"{message_label(note)}: {note}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _target_pictures(pdf, result)


def build_report(result, patient: PatientInfo | None = None) -> bytes:
    """A :class:`hepatoscan.pipeline.Result` -> PDF bytes."""
    scan, m, card = result.segmentation.scan, result.measurements, result.card
    user_text = [v for _, v in (patient.rows() if patient else [])] + [scan.name]
    user_text += [result.agreement.reference_name] if result.agreement else []
    user_text += [result.follow_up.baseline_name] if result.follow_up else []
    user_text += [str(v) for k, v in scan.metadata.items() if k != "slice_sources"]  # names; not the numbers
    own_text = [*result.warnings, *m.notes, *(result.agreement.notes if result.agreement else ()),
                *(result.follow_up.notes if result.follow_up else ()), result.segmentation.window_summary() or "",
                card.validation_summary() or "", card.name]  # ours, but from files and messages
    pdf = _Report(cjk=needs_cjk_font(user_text), shaping=needs_text_shaping(user_text),
                  full_font=needs_full_font(user_text + own_text))
    IMAGE_SETTINGS.compression_level = IMAGE_COMPRESSION_LEVEL  # a module setting of fpdf2, read per image
    pdf.add_page()
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(0, 5, f"Generated {result.timestamp}  ·  HepatoScan {__version__}",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    patient, from_header, mismatches = with_header(patient, scan.metadata)
    rows = patient.rows()
    if from_header:
        rows.append(("From the DICOM header", ", ".join(from_header)))
    rows += [("Warning", w) for w in mismatches]
    if rows:
        pdf.section("Patient")
        pdf.kv_table(rows)

    pdf.section("Input")
    spacing = (" x ".join("?" if s is None else f"{s:.3g}" for s in scan.spacing_mm) + " mm (z, y, x)"
               if scan.spacing_mm else "unknown: measurements in pixels only")
    info = [("File", f"{scan.name} ({scan.source_format})"),
            ("Size", f"{count(scan.n_slices, 'image' if m.separate_images else 'slice')} of " + (
                "different sizes" if scan.sizes_differ else f"{scan.pixels.shape[2]} x {scan.pixels.shape[1]} px")),
            ("Spacing", spacing),
            ("Intensity", "Hounsfield units" if scan.is_hu else "8-bit display image")]
    if scan.is_volume and not m.separate_images:
        info.append(("Slice numbers", _numbering(result)))
    if result.segmentation.window_summary():
        info.append(("Window", result.segmentation.window_summary()))
    for k in ("modality", "study_description", "manufacturer"):  # the study date is the patient block's
        if scan.metadata.get(k):
            info.append((k.replace("_", " ").capitalize(), scan.metadata[k]))
    for w in result.warnings:
        info.append((message_label(w), w))
    pdf.kv_table(info)

    pdf.section("Measurements")
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(0, 5, result.findings(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    mm = m.units == "mm"
    if m.separate_images:
        _separate_images_tables(pdf, result, mm)
    elif m.volume is not None:
        v = m.volume
        pdf.kv_table([
            ("Liver volume", _fmt(v.liver_volume_ml, " mL") if v.liver_volume_ml is not None else f"{v.liver_voxels:,} voxels"),
            ("Tumor volume", _fmt(v.tumor_volume_ml, " mL", 2) if v.tumor_volume_ml is not None else f"{v.tumor_voxels:,} voxels"),
            ("Tumor burden", f"{v.tumor_burden_pct:.2f} % of liver volume"),
            ("Lesions (3D)", str(v.lesion_count)),
            ("Largest tumor on slice", "n/a" if v.largest_tumor_slice is None
             else result.slice_number(v.largest_tumor_slice, short=False))])
    else:
        s = m.slices[0]
        pdf.kv_table([
            ("Liver area", f"{_fmt(s.liver_area_mm2, ' mm²')} ({s.liver_area_px:,} px)" if mm else f"{s.liver_area_px:,} px"),
            ("Tumor area", f"{_fmt(s.tumor_area_mm2, ' mm²')} ({s.tumor_area_px:,} px)" if mm else f"{s.tumor_area_px:,} px"),
            ("Tumor burden", f"{s.tumor_burden_pct:.2f} % of liver area"),
            ("Lesions", str(s.lesion_count)),
            ("Mean HU liver / tumor", f"{_fmt(s.liver_mean_hu)} / {_fmt(s.tumor_mean_hu)}")])
    for note in m.notes:
        pdf.multi_cell(0, 5, "Note: " + note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if result.follow_up is not None:  # the change is what a follow-up is read for: before the lesion table
        _follow_up_section(pdf, result, result.follow_up)

    if m.separate_images:
        _separate_image_lesions(pdf, result, mm)
    elif m.volume is not None and m.volume.lesions:
        shown = min(40, len(m.volume.lesions))
        pdf.section("Lesions (3D)" + (f": the {shown} largest of {len(m.volume.lesions)}" if shown < len(m.volume.lesions) else ""))
        extra = match_header(result)
        header = ["#", "Volume", "Largest on slice", "Longest diameter", "Perpendicular", "RECIST measurable",
                  "Mean HU"] + extra
        pdf.grid(header, [[str(l.lesion_id), _fmt(l.volume_ml, " mL", 2) if l.volume_ml is not None else f"{l.voxels} vox",
                           result.slice_number(l.largest_slice), *diameter_cells(l, mm),
                           _fmt(l.mean_hu), *match_cell(result, l.lesion_id)] for l in m.volume.lesions[:40]])
    elif m.volume is None and m.slices[0].lesions:
        n = len(m.slices[0].lesions)
        extra = match_header(result)
        pdf.section("Lesions" + (f": the 40 largest of {n}" if n > 40 else ""))
        pdf.grid(["#", "Area", "Longest diameter", "Perpendicular", "RECIST measurable", "Mean HU"] + extra,
                 [[str(l.lesion_id), *lesion_cells(l, mm), _fmt(l.mean_hu), *match_cell(result, l.lesion_id)]
                  for l in m.slices[0].lesions[:40]])

    if result.agreement is not None:
        _agreement_section(pdf, result.agreement)

    panels = [(z, result.views(z)["panel"]) for z in result.key_slices[:3]]
    first_mm = 0.0  # the first panel and its caption stay with the heading
    if panels:
        first_mm = PICTURE_WIDTH_MM * panels[0][1].shape[0] / panels[0][1].shape[1] + (5 if scan.is_volume else 0)
    pdf.section("Images" if not scan.is_volume or m.separate_images else "Key slices", keep_mm=first_mm)
    for z, panel in panels:
        pdf.picture(panel, caption=result.slice_name(z) if scan.is_volume else None)

    pdf.section("Model")
    pdf.kv_table([("Model", f"{card.name} {card.version} ({card.quantization})"),
                  ("sha256", card.sha256),
                  ("Runtime", f"{result.backend}, input {card.input_spec.height} x {card.input_spec.width}, "
                              f"window {card.input_spec.window_hu[0]:g} to {card.input_spec.window_hu[1]:g} HU"),
                  ("Validation", card.validation_summary() or "see the model card"),
                  ("Processing time", f"{result.elapsed_ms:.0f} ms")])
    pdf.section("Disclaimer")
    pdf.multi_cell(0, 5, DISCLAIMER, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
