"""The PDF report: valid, its text holds the measurements and a Unicode patient, and it renders."""
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
