"""Measurement and lesion tables as rows of strings, for the app and other front ends."""
from __future__ import annotations

import numpy as np

from .agreement import slice_dice


def fmt_value(x, unit: str = "", digits: int = 1) -> str:
    """A measurement as text: 'n/a' for None, yes/no, thousands separators, a unit."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:,.{digits}f}{unit}"
    return f"{x:,}{unit}" if isinstance(x, int) else f"{x}{unit}"


MEASUREMENT_HEADERS = ["Measurement", "Value"]
LESION_HEADERS = ["Lesion", "Area", "Longest diameter", "Perpendicular", "RECIST measurable", "Mean HU"]
LESION3D_HEADERS = ["Lesion", "Volume", "Largest on slice", "Longest diameter", "Perpendicular", "RECIST measurable",
                    "Mean HU"]
REFERENCE_HEADER = "Reference lesion"  # with a reference segmentation: "matches (Dice 0.78)", "overlaps (...)", "none"
EARLIER_HEADER = "Earlier study"  # with an earlier study: "lesion 3 (target)", "possible new lesion", ...


def slice_rows(result, z: int) -> list[list[str]]:
    """Rows for slice z (and, for a volume or separate images, the totals first)."""
    m = result.measurements
    rows = []
    if m.separate_images:
        rows += [["Images (separate, each measured on its own)", fmt_value(len(m.slices))],
                 ["Images with liver / tumor", f"{m.images_with('liver')} / {m.images_with('tumor')}"],
                 ["Lesions (all images)", fmt_value(m.lesions_in_images())]]
    elif m.volume is not None:
        v = m.volume
        rows += [["Liver volume", fmt_value(v.liver_volume_ml, " mL") if v.liver_volume_ml is not None else fmt_value(v.liver_voxels, " voxels")],
                 ["Tumor volume", fmt_value(v.tumor_volume_ml, " mL", 2) if v.tumor_volume_ml is not None else fmt_value(v.tumor_voxels, " voxels")],
                 ["Tumor burden (volume)", fmt_value(v.tumor_burden_pct, " %", 2)],
                 ["Lesions (3D)", fmt_value(v.lesion_count)]]
    s = m.slice(z)
    prefix = f"Image {z}: " if m.separate_images else f"Slice {z}: " if m.volume is not None else ""
    file, source = result.slice_file(z), result.slice_source(z)
    if file:  # a stack of image files: which file this slice is
        rows.append([prefix + "file", file])
    elif source:  # where the source (a DICOM series, a NIfTI stored head to feet) has this slice
        where = "in the file" if "file_slice" in result.scan.slice_source(z) else "in the series"
        rows.append([prefix + where, source])
    if s is None:
        return rows + [[prefix + "liver", "none found on this slice"]] + reference_rows(result, z, prefix)
    mm = m.units == "mm"
    rows += [[prefix + "liver area", f"{fmt_value(s.liver_area_mm2, ' mm²')} ({fmt_value(s.liver_area_px, ' px')})" if mm else fmt_value(s.liver_area_px, " px")],
             [prefix + "tumor area", f"{fmt_value(s.tumor_area_mm2, ' mm²')} ({fmt_value(s.tumor_area_px, ' px')})" if mm else fmt_value(s.tumor_area_px, " px")],
             [prefix + "tumor burden", fmt_value(s.tumor_burden_pct, " %", 2)],
             [prefix + "lesions", fmt_value(s.lesion_count)]]
    if s.liver_mean_hu is not None:
        rows.append([prefix + "mean HU liver / tumor", f"{fmt_value(s.liver_mean_hu)} / {fmt_value(s.tumor_mean_hu)}"])
    return rows + reference_rows(result, z, prefix)


def reference_rows(result, z: int, prefix: str) -> list[list[str]]:
    """Slice z's Dice against the reference segmentation, where one was given."""
    if result.reference_labels is None:
        return []
    seg = result.segmentation
    liver, tumor = slice_dice(seg.liver[z], seg.tumor[z], np.asarray(result.reference_labels[z]))
    undefined = "undefined (neither marks any)"
    return [[prefix + "liver Dice vs reference", undefined if liver is None else f"{liver:.3f}"],
            [prefix + "tumor Dice vs reference", undefined if tumor is None else f"{tumor:.3f}"]]


def match_header(result) -> list[str]:
    """The lesion tables' match columns: [REFERENCE_HEADER] where a reference segmentation was given
    (and the lesions are one input's, not separate images'), [EARLIER_HEADER] where an earlier
    study was compared (Result.follow_up), both, or []."""
    reference = result.agreement is not None and not result.measurements.separate_images
    return [REFERENCE_HEADER] * reference + [EARLIER_HEADER] * (result.follow_up is not None)


def match_cell(result, lesion_id: int) -> list[str]:
    """The cells of :func:`match_header`'s columns for HepatoScan's lesion ``lesion_id``: how it
    stands against the reference's lesions (matches, overlaps or none:
    LesionDetection.describe_lesion) and which earlier lesion it is (FollowUp.describe_lesion)."""
    header = match_header(result)
    cells = [result.agreement.lesions.describe_lesion(lesion_id)] if REFERENCE_HEADER in header else []
    return cells + ([result.follow_up.describe_lesion(lesion_id)] if EARLIER_HEADER in header else [])


def diameter_cells(lesion, mm: bool) -> list[str]:
    """A lesion's longest diameter and perpendicular (a 3D lesion's on its largest slice) and its
    RECIST measurability, in mm where the spacing is known (``mm``), else in pixels."""
    l = lesion
    return [fmt_value(l.longest_diameter_mm, " mm") if mm else fmt_value(l.longest_diameter_px, " px"),
            fmt_value(l.short_axis_mm, " mm") if mm else fmt_value(l.short_axis_px, " px"),
            fmt_value(l.measurable) if mm else "needs spacing"]


def lesion_cells(lesion, mm: bool) -> list[str]:
    """A 2D lesion's area, longest diameter, perpendicular and RECIST measurability, in mm where
    the spacing is known (``mm``), else in pixels."""
    l = lesion
    return [fmt_value(l.area_mm2, " mm²") if mm else fmt_value(l.area_px, " px"), *diameter_cells(l, mm)]


def lesion_rows(result, z: int) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): a volume's 3D lesions, or the lesions of a 2D input (of separate images:
    image z's); with a reference segmentation, a last column says whether each matches one of
    its lesions (Dice > 0.5, hepatoscan.agreement)."""
    m = result.measurements
    extra = match_header(result)
    if m.volume is not None:
        mm = m.units == "mm"
        return LESION3D_HEADERS + extra, [[str(l.lesion_id),
                                           fmt_value(l.volume_ml, " mL", 2) if l.volume_ml is not None else fmt_value(l.voxels, " voxels"),
                                           result.slice_number(l.largest_slice), *diameter_cells(l, mm),
                                           fmt_value(l.mean_hu), *match_cell(result, l.lesion_id)] for l in m.volume.lesions]
    s = m.slice(z) if m.separate_images else m.slices[0]
    if s is None:
        return LESION_HEADERS, []
    mm = m.units == "mm"
    return LESION_HEADERS + extra, [[str(l.lesion_id), *lesion_cells(l, mm), fmt_value(l.mean_hu),
                                     *match_cell(result, l.lesion_id)] for l in s.lesions]
