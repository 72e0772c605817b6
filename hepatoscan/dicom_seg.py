"""The masks of a DICOM series as a DICOM Segmentation object (SEG), which PACS viewers (OHIF,
3D Slicer, Horos, ...) show over the study it refers to.

One binary SEG with two segments: 1 liver (tumor included, as the masks), 2 liver tumor, coded
with SNOMED CT, each frame referring to its source slice. Made with highdicom (MIT), which is in the
app's profile and the ``dicom`` extra; without it no SEG is written (the other outputs are).
Only an axial series of single-frame files has a slice to refer to for each mask slice: a NIfTI,
PNG/JPEG, a resliced coronal or sagittal series, or a multi-frame file gets none.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np

from . import __version__
from .io.dicom import to_stored

log = logging.getLogger(__name__)

SEG_SERIES_NUMBER = 9901  # after the scanner's series, where viewers list derived objects
# Patient and study attributes a SEG copies from its source (DICOM type 2: present, may be empty).
# Anonymised exports often drop them; the SEG then carries them empty.
TYPE2_SOURCE_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                           "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")


def source_headers(scan) -> list | None:
    """The headers of the slices a SEG of ``scan`` refers to, in Z order, or None when it has none."""
    geometry = scan.geometry if isinstance(scan.geometry, dict) else {}
    headers = geometry.get("source_headers")
    return headers if headers and len(headers) == scan.n_slices else None


# What a SEG must refer to in each source slice (DICOM type 1): without them it can name no study,
# series or image. Anonymisers and converters that rewrite files sometimes drop them.
REQUIRED_SOURCE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def missing_uids(headers: list) -> list[str]:
    """The REQUIRED_SOURCE_UIDS that some of ``headers`` lack (or hold empty)."""
    return [k for k in REQUIRED_SOURCE_UIDS if any(not str(getattr(h, k, "") or "").strip() for h in headers)]


def highdicom_available() -> bool:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        return False
    return True


def _complete(header):
    """A copy of a source header with the type 2 attributes the SEG copies present (empty if absent)."""
    h = copy.copy(header)
    for keyword in TYPE2_SOURCE_ATTRIBUTES:
        if keyword not in h:
            setattr(h, keyword, "")
    return h


def _segments(model_name: str, model_version: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name=model_name, version=model_version,
                                                   family=codes.cid7162.ArtificialIntelligence)
    automatic = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    return [hd.seg.SegmentDescription(segment_number=1, segment_label="Liver",
                                      segmented_property_category=codes.SCT.Organ,
                                      segmented_property_type=codes.SCT.Liver,
                                      algorithm_type=automatic, algorithm_identification=algorithm),
            hd.seg.SegmentDescription(segment_number=2, segment_label="Liver tumor",
                                      segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                      segmented_property_type=codes.SCT.Neoplasm,
                                      algorithm_type=automatic, algorithm_identification=algorithm)]


def write_dicom_seg(result, path: str | Path) -> Path:
    """The liver and tumor masks of ``result`` (a DICOM series with source_headers) -> a DICOM SEG
    file at ``path``. Frames are stored in each source slice's own orientation."""
    import highdicom as hd

    headers = source_headers(result.scan)
    if headers is None:
        raise ValueError("write_dicom_seg needs an axial DICOM series of single-frame files")
    seg = result.segmentation
    # (frames, rows, columns, segments) bool, each slice back in its file's stored orientation
    masks = np.stack([np.stack([to_stored(seg.liver[z], h), to_stored(seg.tumor[z], h)], axis=-1)
                      for z, h in enumerate(headers)]).astype(bool)
    card = result.card
    obj = hd.seg.Segmentation(
        source_images=[_complete(h) for h in headers], pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segments(card.name, card.version),
        series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="HepatoScan", manufacturer_model_name=f"{card.name} {card.version}",
        software_versions=__version__, device_serial_number="none",
        series_description="HepatoScan liver and tumor (research use)")
    path = Path(path)
    obj.save_as(path)
    return path
