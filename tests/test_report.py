"""The PDF report: valid, its text holds the measurements and a Unicode patient, and it renders."""
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from hepatoscan.pipeline import analyze
from hepatoscan.report import PatientInfo

PATIENT = PatientInfo(name="Jürgen Müller 王伟 محمد", patient_id="P-001<script>", age="63", sex="male",
                      study_date="2024-01-31", referring_physician="Dr. Ōsaka", notes="**not markdown** <b>x</b>")


def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (poppler-utils) is not installed; make test installs it")
    return path


@pytest.fixture(scope="module")
def png_result(predictor):
    return analyze(predictor, SAMPLES / "lits117_z080_w350.png", pixel_spacing_mm=0.8)


def test_pdf_text_holds_measurements_and_unicode_patient(png_result, tmp_path):
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(png_result.report_pdf(PATIENT))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run([_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    s = png_result.measurements.slices[0]
    assert "Jürgen Müller" in text and "王伟" in text
    assert "P-001<script>" in text and "**not markdown** <b>x</b>" in text  # data, not markup
    from hepatoscan.tables import fmt_value

    assert f"{fmt_value(s.liver_area_mm2, ' mm²')}" in text and f"{s.lesion_count}" in text
    assert png_result.card.sha256 in text
    assert "not a medical device" in text
    # The card's held-out figures in words, not as raw JSON keys.
    liver = png_result.card.raw["metrics"]["summary"]["liver_dice_per_case_mean"]
    assert f"liver Dice {liver:.2f}" in " ".join(text.split())
    assert "liver_dice_per_case_mean" not in text


def test_pdf_page_renders_with_overlay_colours(png_result, tmp_path):
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(png_result.report_pdf(PATIENT))
    subprocess.run([_tool("pdftoppm"), "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    page = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")).astype(int)
    assert page.shape[0] > page.shape[1]  # A4 portrait
    r, g, b = page[..., 0], page[..., 1], page[..., 2]
    assert ((g > 150) & (r < 120) & (b < 140)).sum() > 30  # liver green
    assert ((r > 180) & (g < 100) & (b < 100)).sum() > 30  # tumor red
    assert (page.sum(-1) < 200).mean() > 0.01  # text and images, not a blank page


def test_volume_report_has_key_slices_and_volumes(predictor, tmp_path):
    result = analyze(predictor, SAMPLES / "lits117_volume.nii.gz")
    pdf = tmp_path / "v.pdf"
    pdf.write_bytes(result.report_pdf())
    text = subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Liver volume" in text and "mL" in text and "Key slices" in text
    assert f"Slice {result.default_slice}" in text


def test_core_fonts_are_dejavu_cut_to_the_core_ranges():
    """The shipped core cuts hold exactly DejaVu's glyphs in CORE_FONT_RANGES (regenerate them with
    scripts/subset_fonts.py when the ranges change)."""
    from fontTools import ttLib

    from hepatoscan.report import CORE_FONT_RANGES, FONT_DIR

    def in_core(u):
        return any(lo <= u <= hi for lo, hi in CORE_FONT_RANGES)

    for name in ("DejaVuSans", "DejaVuSans-Bold"):
        full = ttLib.TTFont(FONT_DIR / f"{name}.ttf", lazy=True).getBestCmap()
        core = ttLib.TTFont(FONT_DIR / f"{name}-Core.ttf", lazy=True).getBestCmap()
        assert set(core) == {u for u in full if in_core(u)}
        assert len(core) < len(full) / 2


def test_which_texts_need_the_full_font():
    from hepatoscan.report import needs_full_font

    assert not needs_full_font(["Jürgen Müller", "Ωμέγα Жуков Łódź Nguyễn", "12.5 mm² · ≥ 3 → ok", "王伟"])
    for text in ("محمد", "שרה", "Գևորգ", "ქართ"):
        assert needs_full_font(["Jürgen", text]), text


def test_latin_report_uses_the_core_font_and_shows_everything(png_result, tmp_path, monkeypatch):
    from hepatoscan import report
    from hepatoscan.report import CORE_FONT_RANGES

    chosen = []
    init = report._Report.__init__

    def spy(self, cjk, shaping, full_font=True):
        chosen.append(full_font)
        init(self, cjk, shaping, full_font)

    monkeypatch.setattr(report._Report, "__init__", spy)
    pdf = tmp_path / "latin.pdf"
    pdf.write_bytes(png_result.report_pdf(PatientInfo(name="Ωμέγα Жуков Łódź Nguyễn", notes="≥ 3 mm")))
    armenian = tmp_path / "armenian.pdf"
    armenian.write_bytes(png_result.report_pdf(PatientInfo(name="Գևորգ Müller")))
    assert chosen == [False, True]
    text = subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Ωμέγα Жуков Łódź Nguyễn" in text and "≥ 3 mm" in text
    assert "Measurements" in text and png_result.card.sha256 in text
    assert all(ch.isspace() or any(lo <= ord(ch) <= hi for lo, hi in CORE_FONT_RANGES) for ch in text)
    text = subprocess.run([_tool("pdftotext"), str(armenian), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Գևորգ Müller" in text


def test_lesion_table_repeats_its_header_across_pages_and_wraps_long_texts(predictor, tmp_path):
    from hepatoscan.report import _Report

    result = analyze(predictor, SAMPLES / "lits117_volume.nii.gz")
    assert len(result.measurements.volume.lesions) >= 40  # the table of 40 runs onto page 2
    pdf = tmp_path / "v.pdf"
    pdf.write_bytes(result.report_pdf())
    pages = [subprocess.run([_tool("pdftotext"), "-f", str(n), "-l", str(n), str(pdf), "-"], capture_output=True,
                            text=True, check=True).stdout for n in (1, 2)]
    assert all("Longest diameter" in p for p in pages)
    lesion40 = result.measurements.volume.lesions[39]
    assert f"{lesion40.largest_slice}" in pages[1]

    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    long_text = "a value far too long to fit in one narrow column " * 3
    doc.grid(["#", "A", "B"], [["1", long_text, "x"]])
    out = tmp_path / "g.pdf"
    out.write_bytes(bytes(doc.output()))
    lines = subprocess.run([_tool("pdftotext"), "-layout", str(out), "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert sum(line.count("far too long") for line in lines) == 3  # nothing cut off
    # wrapped inside its column, which takes the room the short ones leave (no word broken)
    assert len([line for line in lines if "far too long" in line or "narrow column" in line]) >= 2
    assert all(word in " ".join(lines).split() for word in ("narrow", "column"))


def test_stack_report_names_each_key_slice_file(predictor, tmp_path):
    """A zip of one series' PNG slices: the key slices are captioned with their file names."""
    result = analyze(predictor, SAMPLES / "lits117_w350_slices.zip")
    pdf = tmp_path / "s.pdf"
    pdf.write_bytes(result.report_pdf())
    text = subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    z = result.default_slice
    assert f"Slice {z} (lits117_w350/IM{32 + z}.png)" in text and "png-stack" in text


def test_grid_widens_its_name_column_so_file_names_stay_on_one_line(tmp_path):
    """A table of separate images names each lesion by its file: the first column takes the width of
    the longest name (the file names of the samples), so every row is one line, as pdftotext shows."""
    from hepatoscan.report import _Report

    names = [f"{p.name} #{k}" for p in sorted(SAMPLES.glob("lits117_z*_w*.png")) if "_mask" not in p.name
             for k in (1, 12)]
    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    doc.grid(["Lesion", "Area", "Longest diameter", "Perpendicular", "RECIST measurable"],
             [[n, "1,400 px", "68.1 px", "37.7 px", "needs spacing"] for n in names])
    out = tmp_path / "g.pdf"
    out.write_bytes(bytes(doc.output()))
    lines = subprocess.run([_tool("pdftotext"), "-layout", str(out), "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for n in names:  # the whole name, and the row's last cell, on one line
        assert any(n in line and line.rstrip().endswith("needs spacing") for line in lines), n


def test_grid_gives_a_wide_last_column_room_instead_of_wrapping(tmp_path):
    """The lesion table with a reference's column ("matches (Dice 0.82)"): wider than a sixth of
    the page, so the columns take their texts' widths and every row stays on one line."""
    from hepatoscan.report import _Report

    header = ["#", "Volume", "Largest on slice", "Longest diameter", "Mean HU", "Reference lesion"]
    rows = [[str(i), "29.96 mL", "88", "49.3 mm", "69.0", f"overlaps (Dice 0.{i:02d})"] for i in range(1, 30)]
    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    assert not doc._fits(header, rows, [doc.epw / len(header)] * len(header))  # equal columns would wrap
    doc.grid(header, rows)
    out = tmp_path / "g.pdf"
    out.write_bytes(bytes(doc.output()))
    lines = subprocess.run([_tool("pdftotext"), "-layout", str(out), "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for i in range(1, 30):
        assert any(line.rstrip().endswith(f"overlaps (Dice 0.{i:02d})") for line in lines), i
    assert any("Longest diameter" in line and "Reference lesion" in line for line in lines)  # one header line


def test_a_grid_that_must_wrap_breaks_no_word(tmp_path):
    """A volume's lesion table with a reference's column: eight columns whose texts do not fit on
    one line each. They wrap between words: "Perpendicular" came out as "Perpendicul" / "ar"."""
    from hepatoscan.report import _Report

    header = ["#", "Volume", "Largest on slice", "Longest diameter", "Perpendicular", "RECIST measurable",
              "Mean HU", "Reference lesion"]
    rows = [[str(i), "9.58 mL", f"{i} (image {200 - i})", "42.9 mm", "25.9 mm", "yes", "79.1",
             "overlaps (Dice 0.20; another lesion matches it better)"] for i in range(1, 6)]
    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    doc.grid(header, rows)
    out = tmp_path / "g.pdf"
    out.write_bytes(bytes(doc.output()))
    words = subprocess.run([_tool("pdftotext"), str(out), "-"], capture_output=True, text=True,
                           check=True).stdout.split()
    for word in ("Perpendicular", "measurable", "diameter", "Reference", "another", "better)"):
        assert word in words, word


def test_notes_are_labelled_notes_and_warnings_warnings(predictor, sample_volume, tmp_path):
    """A 16-bit slice of CT numbers read as HU, and a soft (enlarged) one: the first message says
    what was done and is a "Note" in the sentence, the PDF and the app; the second says what may be
    wrong and stays a "Warning"."""
    import io

    _, hu, _ = sample_volume
    buf = io.BytesIO()
    small = Image.fromarray((hu[80].astype(np.int32) + 1024).astype(np.uint16)).resize((64, 64))
    small.resize((256, 256), Image.BILINEAR).save(buf, format="PNG")  # enlarged from a thumbnail: soft
    result = analyze(predictor, buf.getvalue(), filename="slice80.png")
    note = next(w for w in result.warnings if "CT numbers" in w)
    soft = next(w for w in result.warnings if "soft" in w)
    text = result.describe()
    assert f"Note: {note}" in text and f"Warning: {soft}" in text and f"Warning: {note}" not in text
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(result.report_pdf())
    words = " ".join(subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True,
                                    check=True).stdout.split())
    assert "Note The image holds CT numbers" in words and "Warning The image is soft" in words


def test_counts_and_verbs_agree_with_one_and_many():
    from hepatoscan.wording import agree, count

    assert count(1, "lesion") == "1 lesion" and count(0, "lesion") == "0 lesions"
    assert count(1234, "slice") == "1,234 slices" and count(2, "analysis", "analyses") == "2 analyses"
    assert agree(1, "was", "were") == "was" and agree(0, "was", "were") == "were"


def test_sentence_says_no_tumor_and_no_liver_in_words(predictor, data_dir, sample_pngs, tmp_path):
    """CHAOS CT set 3 (no tumor) exported at W400/L40: a slice through the liver reads "no tumor
    found", one beside the liver (no liver in the expert mask) "No liver found", not "Liver 0 mm²;
    tumor 0 mm² in 0 lesion(s)", in the app's sentence and at the head of the PDF's measurements; a
    LiTS 117 slice with tumors counts its lesions in words, and so does the CHAOS volume."""
    import io

    import nibabel as nib

    from hepatoscan.io.nifti import read_nifti
    from hepatoscan.preprocessing import render_8bit

    folder = data_dir / "volumes" / "chaos_ct_set3"
    hu = read_nifti(nib.load(str(folder / "volume.nii.gz")))[0]
    labels = np.rint(read_nifti(nib.load(str(folder / "segmentation.nii.gz")))[0])
    liver_px = (labels >= 1).sum(axis=(1, 2))

    def sentence(k):
        buf = io.BytesIO()
        Image.fromarray(render_8bit(hu[k], (-160, 240))).save(buf, format="PNG")
        return analyze(predictor, buf.getvalue(), filename=f"slice{k}.png", pixel_spacing_mm=0.73).describe()

    through = int(np.argmax(liver_px))
    below = [k for k in range(len(liver_px)) if liver_px[k] == 0]
    assert below, "CHAOS set 3 has slices without liver"
    assert re.match(r"Liver [\d,]+ mm²; no tumor found\. ", sentence(through))
    far = max(below, key=lambda k: abs(k - through))
    assert sentence(far).startswith("No liver found in this image. ")
    buf = io.BytesIO()
    Image.fromarray(render_8bit(hu[far], (-160, 240))).save(buf, format="PNG")
    pdf = tmp_path / "none.pdf"
    pdf.write_bytes(analyze(predictor, buf.getvalue(), filename="chest.png").report_pdf())
    words = " ".join(subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True,
                                    check=True).stdout.split())
    assert "Measurements No liver found in this image. Liver area 0 px" in words
    png, _ = sample_pngs[0]
    assert re.match(r"Liver [\d,]+ mm²; tumor [\d,]+ mm² in \d+ lesions?, ", analyze(
        predictor, png.read_bytes(), filename=png.name, pixel_spacing_mm=0.8).describe())
    volume = analyze(predictor, (folder / "volume.nii.gz").read_bytes(), filename="volume.nii.gz").describe()
    assert re.match(r"Volume of \d+ slices\. Liver [\d,]+ mL; (no tumor found|tumor [\d.]+ mL in \d+ lesions?, )", volume)
    assert "(s)" not in volume


def test_a_heading_is_never_left_alone_at_the_foot_of_a_page(tmp_path, sample_pngs):
    """A page filled to just above its footer: the next heading goes to the next page with the
    panel it introduces, and a heading that fits with a few lines stays put."""
    from hepatoscan.report import _Report

    def pages_of(doc):
        out = tmp_path / "h.pdf"
        out.write_bytes(bytes(doc.output()))
        n = int(next(line.split()[-1] for line in subprocess.run(
            [_tool("pdfinfo"), str(out)], capture_output=True, text=True, check=True).stdout.splitlines()
            if line.startswith("Pages:")))
        return [subprocess.run([_tool("pdftotext"), "-f", str(k), "-l", str(k), str(out), "-"],
                               capture_output=True, text=True, check=True).stdout for k in range(1, n + 1)]

    panel = np.asarray(Image.open(sample_pngs[0][0]).convert("RGB").resize((600, 200)))
    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    k = 0
    while doc.get_y() < doc.h - 20 - 25:  # fill until a heading fits but the panel does not
        doc.kv_table([(f"row {k}", "value")])
        k += 1
    doc.section("Key slices")
    doc.picture(panel, caption="Slice 7")
    pages = pages_of(doc)
    assert len(pages) == 2 and "Key slices" not in pages[0] and "Key slices" in pages[1] and "Slice 7" in pages[1]

    doc = _Report(cjk=False, shaping=False, full_font=False)
    doc.add_page()
    doc.section("Model")
    doc.kv_table([("Model", "hepatoscan")])
    assert len(pages_of(doc)) == 1
