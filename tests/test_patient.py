"""The report's patient: typed details, completed from a DICOM header, and a typed name or ID that
is not the header's said in the PDF, the app, the API's JSON and the CLI."""
import csv
import io
import subprocess

import numpy as np

from hepatoscan.patient import PatientInfo, age_text, date_text, header_patient, person_name, with_header
from hepatoscan.pipeline import analyze
from conftest import SAMPLES
from test_cli import run_cli
from test_io import _dicom_bytes
from test_report import _tool


def test_dicom_values_are_written_for_reading():
    assert person_name("Müller^Jürgen") == "Müller, Jürgen"
    assert person_name("Yamada^Tarou^^Dr=山田^太郎") == "Yamada, Tarou"
    assert person_name("Doe^John^Paul") == "Doe, John Paul"
    assert person_name("ANON-0042") == "ANON-0042"
    assert [age_text(a) for a in ("063Y", "005M", "010W", "003D", "about 60")] == [
        "63 years", "5 months", "10 weeks", "3 days", "about 60"]
    assert date_text("20240131") == "2024-01-31" and date_text("31.01.2024") == "31.01.2024"
    header = header_patient({"patient_name": "Müller^Jürgen", "patient_id": "12345", "patient_age": "063Y",
                             "patient_sex": "F", "study_date": "20240131", "modality": "CT"})
    assert header == PatientInfo(name="Müller, Jürgen", patient_id="12345", age="63 years", sex="female",
                                 study_date="2024-01-31")


HEADER = {"patient_name": "Müller^Jürgen", "patient_id": "12345", "patient_sex": "M", "study_date": "20240131"}


def test_the_header_fills_what_was_not_typed_and_typed_details_stand():
    merged, taken, warnings = with_header(PatientInfo(age="63", notes="follow-up"), HEADER)
    assert merged == PatientInfo(name="Müller, Jürgen", patient_id="12345", age="63", sex="male",
                                 study_date="2024-01-31", notes="follow-up")
    assert taken == ["Name", "Patient ID", "Sex", "Study date"] and warnings == []
    merged, taken, warnings = with_header(PatientInfo(sex="female", study_date="2024-02-01"), HEADER)
    assert (merged.sex, merged.study_date) == ("female", "2024-02-01") and "Sex" not in taken
    assert with_header(None, {}) == (PatientInfo(), [], [])  # PNG, NIfTI: no header


def test_a_typed_name_or_id_that_is_not_the_headers_is_said():
    # The same person typed another way: no warning.
    assert with_header(PatientInfo(name="jürgen müller", patient_id=" 12345 "), HEADER)[2] == []
    _, _, warnings = with_header(PatientInfo(name="Anna Schmidt", patient_id="P-001"), HEADER)
    assert warnings == [
        "The name typed (Anna Schmidt) is not the one in the DICOM header (Müller, Jürgen): check that this is "
        "the right patient's study, or correct the typed details.",
        "The Patient ID typed (P-001) is not the one in the DICOM header (12345): check that this is the right "
        "patient's study, or correct the typed details."]


def _series(folder, hu, patient_id="12345"):
    import pydicom

    folder.mkdir()
    for k, s in enumerate(hu):
        ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(s.astype(np.int16), 1.0 * k, k + 1)))
        ds.PatientID, ds.PatientSex, ds.PatientAge = patient_id, "M", "063Y"
        ds.save_as(folder / f"IM{k:03d}.dcm")
    return folder


def _pdf_text(result, patient, tmp_path) -> str:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(result.report_pdf(patient))
    out = subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def test_the_report_of_a_dicom_study_names_its_patient_from_the_header(predictor, sample_volume, tmp_path):
    _, hu, _ = sample_volume
    result = analyze(predictor, _series(tmp_path / "series", np.maximum(hu[56:64], -1024)))
    text = _pdf_text(result, None, tmp_path)
    assert "Patient Name Müller, Jürgen Patient ID 12345 Age 63 years Sex male Study date 2024-01-31" in text
    assert "From the DICOM header Name, Patient ID, Age, Sex, Study date" in text
    assert "Warning" not in text.split("Input")[0]
    text = _pdf_text(result, PatientInfo(name="Anna Schmidt", notes="second opinion"), tmp_path)
    assert "Name Anna Schmidt Patient ID 12345" in text and "Notes second opinion" in text
    assert "Warning The name typed (Anna Schmidt) is not the one in the DICOM header (Müller, Jürgen)" in text
    # A PNG has no header: no patient block unless one is typed.
    png = analyze(predictor, tmp_path / "series" / "IM000.dcm")  # one DICOM file: its header still counts
    assert "Müller, Jürgen" in _pdf_text(png, None, tmp_path)


def test_a_header_name_in_another_script_is_printed_in_its_own_letters(predictor, sample_volume, tmp_path):
    """A Japanese name in the header (no typed details): the report loads the fonts it needs."""
    import pydicom

    _, hu, _ = sample_volume
    folder = _series(tmp_path / "series", np.maximum(hu[60:62], -1024))
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.SpecificCharacterSet, ds.PatientName = "ISO_IR 192", "山田^太郎"
        ds.save_as(f)
    text = _pdf_text(analyze(predictor, folder), None, tmp_path)
    assert "Name 山田, 太郎" in text


def test_the_cli_says_when_the_typed_patient_is_not_the_headers(tmp_path, sample_volume):
    _, hu, _ = sample_volume
    series = _series(tmp_path / "series", np.maximum(hu[56:60], -1024))
    r = run_cli(series, "--out", tmp_path / "out", "--patient-id", "P-001", "--pdf")
    assert r.returncode == 0, r.stderr
    assert "The Patient ID typed (P-001) is not the one in the DICOM header (12345)" in r.stderr
    row = next(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert "The Patient ID typed (P-001) is not the one in the DICOM header (12345)" in row["message"]
    assert (row["patient_id"], row["study_date"]) == ("P-001", "2024-01-31")  # as typed, else the header's
    r = run_cli(series, "--out", tmp_path / "same", "--patient-id", "12345")
    assert "DICOM header" not in r.stderr
    r = run_cli(series, SAMPLES / "lits117_z064_w350.png", "--out", tmp_path / "batch")
    rows = list(csv.DictReader(open(tmp_path / "batch" / "summary.csv")))
    assert [(row["patient_id"], row["study_date"]) for row in rows] == [("12345", "2024-01-31"), ("", "")]
