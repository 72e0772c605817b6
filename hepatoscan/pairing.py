"""Images and their reference segmentations paired by name, as datasets lay them out.

    images/liver_012_0000.nii.gz   labels/liver_012.nii.gz        (nnU-Net, MSD)
    images/volume-12.nii           labels/segmentation-12.nii     (LiTS)
    images/case7.png               labels/case7_mask.png
    images/patient3/ (DICOM)       labels/patient3.nii.gz
    images/liver-orig001.mhd       labels/liver-seg001.mhd        (SLIVER07; their .raw beside them)

A name's key is its stem in lower case, split at "-", "_", "." and spaces and where letters meet
digits ("orig001": "orig", "001"), without the words that say what a file is (volume, image, ct,
orig, segmentation, label, mask, gt, ...) and without nnU-Net's channel suffix (0000); an image and
a reference with one key are a pair. The voxel files of detached headers (.raw) are no entries.
"""
from __future__ import annotations

import re
from pathlib import Path

from .config import DATA_FILE_SUFFIXES

ROLE_WORDS = {"volume", "vol", "image", "images", "img", "ct", "scan", "orig", "original", "segmentation",
              "segmentations", "seg", "label", "labels", "mask", "masks", "gt", "groundtruth", "reference", "ref",
              "0000"}


def name_key(name: str) -> str:
    """A file or folder name -> its pairing key: "volume-12.nii" and "segmentation-12.nii" -> "12",
    "liver_012_0000.nii.gz" and "liver_012.nii.gz" -> "liver_012". The stem is the loader's (io._stem)."""
    from .io import _stem

    words = [w for w in re.split(r"[-_. ]+|(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", _stem(name).lower()) if w]
    kept = [w for w in words if w not in ROLE_WORDS]
    return "_".join(kept or words)


def _entries(folder: Path) -> list[Path]:
    """The inputs a folder holds: its files (not hidden, not a header's voxel file) and its subfolders
    (a DICOM series each)."""
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and not p.name.lower().endswith(DATA_FILE_SUFFIXES))


def pair_by_name(images: Path, references: Path) -> tuple[list[tuple[Path, Path]], list[Path], list[str]]:
    """-> ([(image, reference)] in the images' name order, images without a reference, [the keys
    met twice, which pair nothing]). Each folder's entries are keyed by :func:`name_key`."""
    def keyed(folder: Path) -> tuple[dict, set]:
        out, twice = {}, set()
        for p in _entries(folder):
            k = name_key(p.name)
            if k in out:
                twice.add(k)
            out[k] = p
        return out, twice

    image_keys, twice_i = keyed(images)
    ref_keys, twice_r = keyed(references)
    twice = twice_i | twice_r
    pairs = [(p, ref_keys[k]) for k, p in sorted(image_keys.items(), key=lambda kv: kv[1].name)
             if k in ref_keys and k not in twice]
    unmatched = [p for k, p in sorted(image_keys.items(), key=lambda kv: kv[1].name)
                 if k not in ref_keys or k in twice]
    return pairs, unmatched, sorted(twice)
