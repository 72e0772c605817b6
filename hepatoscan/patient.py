"""Who a report is about: the details a user types, and those a DICOM header carries.

A report of a DICOM study names its patient from the header where the user typed nothing, so that a
printed report cannot lose its patient; a typed name or ID that is not the header's is said, as a
report filed under the wrong patient is the error to catch. No fpdf2 here: the CLI and the app use
this without making a PDF.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

# (PatientInfo field, its label in the report, the Scan.metadata key a DICOM header fills it from)
FIELDS = (("name", "Name", "patient_name"), ("patient_id", "Patient ID", "patient_id"),
          ("age", "Age", "patient_age"), ("sex", "Sex", "patient_sex"), ("study_date", "Study date", "study_date"),
          ("referring_physician", "Referring physician", "referring_physician"), ("notes", "Notes", None))
CHECKED = ("name", "patient_id")  # typed values compared with the header's
AGE_UNITS = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}
SEXES = {"M": "male", "F": "female", "O": "other"}


@dataclass(frozen=True)
class PatientInfo:
    """Optional patient block; every field is free text shown as typed."""

    name: str = ""
    patient_id: str = ""
    age: str = ""
    sex: str = ""
    study_date: str = ""
    referring_physician: str = ""
    notes: str = ""

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) of each field given, in the report's order."""
        return [(label, str(getattr(self, f)).strip()) for f, label, _ in FIELDS if str(getattr(self, f) or "").strip()]


def person_name(value: str) -> str:
    """A DICOM person name ("Family^Given^Middle^Prefix^Suffix", its first of up to three
    "="-separated representations) -> "Family, Given Middle"; other text as it is."""
    first = next((g for g in str(value).split("=") if g.strip("^ ")), "")
    parts = [p.strip() for p in first.split("^")]
    if len(parts) == 1:
        return parts[0]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    return ", ".join(p for p in (family, given) if p)


def age_text(value: str) -> str:
    """A DICOM age string ("063Y", "005M") -> "63 years", "5 months"; other text as it is."""
    m = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", str(value))
    return f"{int(m.group(1))} {AGE_UNITS[m.group(2)]}" if m else str(value).strip()


def date_text(value: str) -> str:
    """A DICOM date ("20240131") -> "2024-01-31"; other text as it is."""
    m = re.fullmatch(r"\s*(\d{4})(\d{2})(\d{2})\s*", str(value))
    return "-".join(m.groups()) if m else str(value).strip()


def header_patient(metadata: dict) -> PatientInfo:
    """Scan.metadata (a DICOM header's patient_name, patient_id, ...) -> PatientInfo, formatted
    for reading (names "Family, Given", ages "63 years", sex "male", dates "2024-01-31")."""
    format_as = {"name": person_name, "referring_physician": person_name, "age": age_text,
                 "sex": lambda v: SEXES.get(str(v).strip().upper(), str(v).strip()), "study_date": date_text}
    values = {f: format_as.get(f, str)(metadata[key]).strip() for f, _, key in FIELDS
              if key and str(metadata.get(key) or "").strip()}
    return PatientInfo(**values)


def _same(typed: str, header: str) -> bool:
    """Whether a typed name or ID is the header's, ignoring case, punctuation and word order
    ("Jürgen Müller" is "Müller, Jürgen")."""
    def words(text):
        return sorted(re.findall(r"\w+", text.casefold()))
    return words(typed) == words(header)


def with_header(patient: PatientInfo | None, metadata: dict) -> tuple[PatientInfo, list[str], list[str]]:
    """The typed details completed from a DICOM header -> (the merged PatientInfo, the labels of
    the fields taken from the header, warnings where a typed name or ID is not the header's).
    Typed values always stand; an input without a header (PNG, NIfTI) changes nothing."""
    typed = patient or PatientInfo()
    header = header_patient(metadata)
    taken = {f.name: getattr(header, f.name) for f in fields(PatientInfo)
             if getattr(header, f.name) and not str(getattr(typed, f.name) or "").strip()}
    labels = [label for f, label, _ in FIELDS if f in taken]
    warnings = [mismatch_warning(label, getattr(typed, f), getattr(header, f)) for f, label, _ in FIELDS
                if f in CHECKED and str(getattr(typed, f) or "").strip() and getattr(header, f)
                and not _same(getattr(typed, f), getattr(header, f))]
    return replace(typed, **taken), labels, warnings


def mismatch_warning(label: str, typed: str, header: str) -> str:
    """The warning for a typed patient detail that is not the DICOM header's."""
    what = "name" if label == "Name" else label
    return (f"The {what} typed ({typed.strip()}) is not the one in the DICOM header ({header}): check that "
            "this is the right patient's study, or correct the typed details.")
