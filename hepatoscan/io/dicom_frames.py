"""Multi-frame DICOM (Enhanced CT, and legacy multi-frame files) as the series of single-frame
files it stands for, so one code path orders, checks and reslices both.

An Enhanced CT file holds a whole series in one object. Each frame's geometry and rescale sit in
functional groups (DICOM PS3.3 C.7.6.16): the per-frame group of that frame, else the shared
group, else the file's top level. Each frame becomes a small uncompressed single-frame dataset
carrying those values at the top level, where the single-frame reader finds them.
"""
from __future__ import annotations

import copy
import io
from typing import Callable

import numpy as np

# (functional group sequence, attributes taken from its first item), as the series reader uses them
FRAME_GROUPS = (
    ("PlanePositionSequence", ("ImagePositionPatient",)),
    ("PlaneOrientationSequence", ("ImageOrientationPatient",)),
    ("PixelMeasuresSequence", ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices")),
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
    ("CTImageFrameTypeSequence", ("FrameType",)),
)
# Top-level elements a frame does not inherit: the pixels and the per-file framing, and the
# position, which at the top level (legacy files) is the first frame's.
NOT_INHERITED = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "NumberOfFrames",
                 "FrameIncrementPointer", "PerFrameFunctionalGroupsSequence",
                 "SharedFunctionalGroupsSequence", "ImagePositionPatient")


def frame_count(ds) -> int:
    """NumberOfFrames of a dataset (1 when absent or empty)."""
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def _first_item(groups, sequence: str):
    """The first item of ``sequence`` inside one functional-groups item, or None."""
    seq = getattr(groups, sequence, None) if groups is not None else None
    return seq[0] if seq else None


def frame_attributes(ds, k: int) -> dict:
    """The geometry, rescale and frame type of frame ``k`` (0-based) of a multi-frame dataset:
    from its per-frame group, else the shared group, else the top level (not the position, which
    at the top level is the first frame's)."""
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None) or []
    shared = getattr(ds, "SharedFunctionalGroupsSequence", None) or []
    own, common = (per_frame[k] if k < len(per_frame) else None), (shared[0] if shared else None)
    out = {}
    for sequence, names in FRAME_GROUPS:
        items = [i for i in (_first_item(own, sequence), _first_item(common, sequence)) if i is not None]
        for name in names:
            value = next((getattr(i, name) for i in items if name in i), None)
            if value is None and name in ds and name not in NOT_INHERITED:
                value = getattr(ds, name)
            if value is not None:
                out[name] = value
    if "FrameType" in out:
        out["ImageType"] = out.pop("FrameType")
    return out


def split_frames(ds, frames: np.ndarray, name: str) -> list[tuple[str, Callable[[], bytes]]]:
    """A multi-frame dataset and its decoded frames (F, H, W) or (F, H, W, 3) -> (name, reader)
    pairs of single-frame DICOM files, one per frame ("<name>#<k>", k from 1), as a series
    folder or .zip gives them. Each file is made when it is read, so the frames' bytes are never
    all in memory twice."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    top = [element for element in ds if element.keyword not in NOT_INHERITED]
    colour = frames.ndim == 4

    def read(k: int) -> bytes:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = getattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2.1")
        meta.MediaStorageSOPInstanceUID = f"2.25.{k + 1}"  # a valid UID; these files never leave memory
        out = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        for element in top:  # copies: a frame's values must not reach the other frames
            out.add(copy.copy(element))
        for key, value in frame_attributes(ds, k).items():
            setattr(out, key, value)
        out.InstanceNumber = k + 1  # the order when frames carry no position
        if colour:  # decoded frames are interleaved RGB whatever the file's colour model
            out.PhotometricInterpretation, out.PlanarConfiguration = "RGB", 0
        out.PixelData = np.ascontiguousarray(frames[k]).tobytes()
        buf = io.BytesIO()
        out.save_as(buf, enforce_file_format=True)
        return buf.getvalue()

    return [(f"{name}#{k + 1}", lambda k=k: read(k)) for k in range(len(frames))]
