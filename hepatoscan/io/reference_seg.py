"""A DICOM Segmentation (SEG) as the reference segmentation of the DICOM series it refers to.

Its frames are placed on the series' slices by the SOPInstanceUIDs they refer to (highdicom) and
turned to the display view as the slices are. The liver and tumor segments are found by their coded
property type (SNOMED CT Liver; Neoplasm and kin) or their label, or given by number
(``given``: the liver's, and the tumor's). Needs highdicom (app and full profiles, the ``dicom``
extra), as writing a SEG does.
"""
from __future__ import annotations

import io

import numpy as np

from ..errors import InputError, UnsupportedFormatError
from ..scan import Note, Scan
from .dicom import _to_display

LIVER_CODES = {"10200004"}  # SNOMED CT: Liver
TUMOR_CODES = {"108369006", "86049000", "14799000", "52988006", "4147007"}  # neoplasm, malignant, metastatic, lesion, mass
TUMOR_WORDS = ("tumor", "tumour", "lesion", "neoplasm", "metasta", "carcinoma", "hcc", "mass")


def _described(seg, number: int) -> tuple[str, str]:
    """(label, coded property type value) of segment ``number``."""
    d = seg.get_segment_description(number)
    return str(getattr(d, "segment_label", "") or ""), str(d.segmented_property_type.value)


def _choose_segments(seg, given: tuple[int, int | None] | None, name: str) -> tuple[int, int | None, str]:
    """-> (the liver's segment number, the tumor's or None, a note saying which were read)."""
    numbers = list(seg.segment_numbers)
    listed = ", ".join(f"{n} '{_described(seg, n)[0]}'" for n in numbers)
    if given is not None:
        missing = [n for n in given if n is not None and n not in numbers]
        if missing:
            raise InputError(f"{name}: the SEG has no segment {missing[0]}; its segments are {listed}. Give the liver's "
                             "segment number (and the tumor's after a comma).")
        liver, tumor = given
    else:
        kinds = {n: _described(seg, n) for n in numbers}
        tumor_like = [n for n, (label, code) in kinds.items()
                      if code in TUMOR_CODES or any(w in label.lower() for w in TUMOR_WORDS)]
        liver_like = [n for n, (label, code) in kinds.items()
                      if n not in tumor_like and (code in LIVER_CODES or "liver" in label.lower())]
        if not liver_like:
            raise InputError(f"{name}: no segment of the SEG is the liver (its segments are {listed}). Give the "
                             "liver's segment number (and the tumor's after a comma) in Label values, or "
                             "--reference-labels in the CLI.")
        liver, tumor = liver_like[0], (tumor_like[0] if tumor_like else None)
    what = f"segment {liver} '{_described(seg, liver)[0]}' as the liver"
    what += f", segment {tumor} '{_described(seg, tumor)[0]}' as tumor" if tumor is not None else " (no tumor segment)"
    return liver, tumor, f"The DICOM SEG was read with {what}."


def seg_labels(data: bytes, name: str, scan: Scan,
               given: tuple[int, int | None] | None) -> tuple[np.ndarray, list[str]]:
    """DICOM SEG bytes -> ((Z, H, W) uint8 labels in {0, 1, 2} on ``scan``'s slices, [notes]).
    ``scan`` must be the DICOM series the SEG refers to (its slices' headers are kept)."""
    from ..dicom_seg import source_headers

    try:
        import highdicom as hd
    except ImportError as e:
        raise UnsupportedFormatError(f"{name}: reading a DICOM SEG needs highdicom (pip install hepatoscan[dicom]; "
                                     "the app's profile has it). Or give the reference as a NIfTI label volume.") from e
    headers = source_headers(scan)
    if headers is None:
        raise InputError(f"{name}: a DICOM SEG marks the slices of the DICOM series it was made on: give it with "
                         "that series (its folder or .zip, an axial series of single-frame files). With a NIfTI or "
                         "image input, give the reference as a NIfTI label volume or a label PNG.")
    try:
        seg = hd.seg.segread(io.BytesIO(data))
    except (AttributeError, KeyError, ValueError, TypeError) as e:
        raise UnsupportedFormatError(f"{name}: a DICOM file that is not a readable Segmentation (SEG) object ({e}). "
                                     "An RT structure set is not read: convert it to a NIfTI label volume.") from e
    liver, tumor, note = _choose_segments(seg, given, name)
    uids = [str(h.SOPInstanceUID) for h in headers]
    referenced = {str(u[2]) for u in seg.get_source_image_uids()}
    covered = [u for u in uids if u in referenced]
    if not covered:
        raise InputError(f"{name}: the SEG refers to none of this series' {len(uids)} slices: it was made on another "
                         "series (another phase, a reformat) or study. Give the series it refers to.")
    segments = [liver] + ([tumor] if tumor is not None else [])
    frames = seg.get_pixels_by_source_instance(covered, segment_numbers=segments,
                                               assert_missing_frames_are_empty=True)  # (n, rows, cols, segments)
    labels = np.zeros(scan.pixels.shape, np.uint8)
    index = {u: k for k, u in enumerate(covered)}
    for z, (uid, header) in enumerate(zip(uids, headers)):
        if uid not in index:
            continue
        frame = frames[index[uid]]
        labels[z][_to_display(frame[..., 0] > 0, header)] = 1
        if tumor is not None:
            labels[z][_to_display(frame[..., 1] > 0, header)] = 2
    notes = [Note(note)]
    if len(covered) < len(uids):
        notes.append(f"The SEG refers to {len(covered)} of the series' {len(uids)} slices; the others count as "
                     "having no liver in the reference.")
    return labels, notes
