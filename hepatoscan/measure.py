"""Measurements in real units (mm, mm2, mL) when spacing is known; in pixels otherwise, never invented.

Lesion diameters follow RECIST 1.1: the longest in-plane diameter and the longest diameter
perpendicular to it; lesions under 10 mm are flagged as non-measurable (in a volume whose slices
lie more than 5 mm apart, under twice the slice spacing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .morphology import Components, as_bool

RECIST_MIN_MM = 10.0
RECIST_THIN_SLICE_MM = 5.0  # above this slice spacing, a measurable lesion is at least twice the spacing


def recist_min_mm(slice_spacing_mm: float | None) -> float:
    """The smallest measurable longest diameter (RECIST 1.1) in a volume of this slice spacing: 10 mm,
    or twice the spacing where the slices lie more than 5 mm apart (None: one image, 10 mm)."""
    if slice_spacing_mm and slice_spacing_mm > RECIST_THIN_SLICE_MM:
        return max(RECIST_MIN_MM, 2.0 * float(slice_spacing_mm))
    return RECIST_MIN_MM


@dataclass
class Lesion:
    """One lesion in one slice. ``*_mm*`` fields are None when spacing is unknown."""

    lesion_id: int
    slice_index: int
    area_px: int
    area_mm2: float | None
    longest_diameter_px: float
    longest_diameter_mm: float | None
    short_axis_px: float
    short_axis_mm: float | None
    measurable: bool | None  # RECIST: longest diameter >= 10 mm; None without spacing
    mean_hu: float | None
    centroid_yx: tuple[float, float]


@dataclass
class SliceMeasurements:
    slice_index: int
    liver_area_px: int
    liver_area_mm2: float | None
    tumor_area_px: int
    tumor_area_mm2: float | None
    tumor_burden_pct: float  # tumor / liver area, %
    lesion_count: int
    liver_mean_hu: float | None
    tumor_mean_hu: float | None
    lesions: list[Lesion] = field(default_factory=list)


@dataclass
class Lesion3D:
    lesion_id: int
    voxels: int
    volume_ml: float | None
    largest_slice: int
    largest_area_mm2: float | None
    longest_diameter_mm: float | None  # on its largest slice
    longest_diameter_px: float
    mean_hu: float | None
    short_axis_mm: float | None = None  # perpendicular to the longest diameter, on the same slice
    short_axis_px: float = 0.0
    measurable: bool | None = None  # RECIST: longest diameter >= recist_min_mm(slice spacing); None without spacing
    centroid_zyx: tuple[float, float, float] | None = None  # mean voxel index (slice, row, column)
    bounds_zyx: tuple[tuple[int, int], ...] | None = None  # lowest and highest voxel index per axis, included


@dataclass
class VolumeMeasurements:
    liver_volume_ml: float | None
    tumor_volume_ml: float | None
    liver_voxels: int
    tumor_voxels: int
    tumor_burden_pct: float  # tumor / liver volume, %
    lesion_count: int
    largest_tumor_slice: int | None
    key_slices: list[int]
    lesions: list[Lesion3D] = field(default_factory=list)


@dataclass
class Measurements:
    units: str  # "mm" when spacing is known, else "px"
    spacing_mm: tuple | None
    slices: list[SliceMeasurements]  # every slice with liver (a 2D input: its one slice; separate images: each)
    volume: VolumeMeasurements | None  # volumes only (not separate images)
    notes: list[str] = field(default_factory=list)
    separate_images: bool = False  # a stack of unrelated images: each measured on its own, no volume

    def slice(self, z: int) -> SliceMeasurements | None:
        """The measurements of slice (or image) z; None where a volume's slice holds no liver."""
        return next((s for s in self.slices if s.slice_index == z), None)

    def images_with(self, what: str) -> int:
        """Separate images: how many hold ``what`` ("liver" or "tumor")."""
        return sum(getattr(s, f"{what}_area_px") > 0 for s in self.slices)

    def lesions_in_images(self) -> int:
        """Separate images: their 2D lesions, counted image by image."""
        return sum(s.lesion_count for s in self.slices)

    def to_dict(self) -> dict:
        return asdict(self)


def _hull(points: np.ndarray) -> np.ndarray:
    """(N, 2) points -> their convex hull vertices (Andrew's monotone chain)."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    seq = pts.tolist()
    lower, upper = half(seq), half(reversed(seq))
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _hull_pixels(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> hull vertices (row, col) of the pixel centres: the row-wise extremes suffice."""
    rows = np.nonzero(mask.any(1))[0]
    sub = mask[rows]
    left = sub.argmax(1)
    right = mask.shape[1] - 1 - sub[:, ::-1].argmax(1)
    pts = np.concatenate([np.stack([rows, left], 1), np.stack([rows, right], 1)])
    return _hull(pts)


def lesion_diameters(mask: np.ndarray, sy: float, sx: float) -> tuple[float, float]:
    """(H, W) bool of one lesion -> (longest diameter, longest extent perpendicular to it) in the
    units of (sy, sx). Distances run between pixel centres plus one pixel, so a disc of radius r
    pixels measures 2r. Computed on the convex hull, where the extremes lie."""
    pts = _hull_pixels(mask) * np.array([sy, sx])
    if len(pts) < 2:
        return float((sy + sx) / 2), float((sy + sx) / 2)
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    axis = pts[j] - pts[i]
    length = float(np.sqrt(d2[i, j]))
    unit = axis / length
    perp = np.array([-unit[1], unit[0]])
    proj = pts @ perp
    step_long = float(np.hypot(unit[0] * sy, unit[1] * sx))
    step_short = float(np.hypot(perp[0] * sy, perp[1] * sx))
    return length + step_long, float(proj.max() - proj.min()) + step_short


def lesions_by_size(tumor: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) or (Z, H, W) bool -> (integer lesion ids, n): components numbered 1..n by decreasing size."""
    comps = Components.of(tumor).renumbered_by_size()
    return comps.labels(), comps.n


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 1) if values.size else None


def measure_slice(liver: np.ndarray, tumor: np.ndarray, slice_index: int = 0,
                  pixel_spacing_mm: tuple[float, float] | None = None, hu: np.ndarray | None = None,
                  lesion_labels: np.ndarray | None = None) -> SliceMeasurements:
    """liver, tumor: (H, W) uint8 in {0, 1}. hu: (H, W) HU or None.
    lesion_labels: (H, W) int ids to use (a volume's 3D lesion ids); default: 2D components
    numbered by decreasing area."""
    liver, tumor = liver.astype(bool), tumor.astype(bool)
    px_mm2 = pixel_spacing_mm[0] * pixel_spacing_mm[1] if pixel_spacing_mm else None
    sy, sx = pixel_spacing_mm if pixel_spacing_mm else (1.0, 1.0)
    if lesion_labels is None:
        lesion_labels, _ = lesions_by_size(tumor)
    lesions = []
    for lid in np.unique(lesion_labels[tumor]):
        m = lesion_labels == lid
        long_px, short_px = lesion_diameters(m, 1.0, 1.0)
        long_mm, short_mm = lesion_diameters(m, sy, sx) if pixel_spacing_mm else (None, None)
        ys, xs = np.nonzero(m)
        lesions.append(Lesion(
            lesion_id=int(lid), slice_index=slice_index, area_px=int(m.sum()),
            area_mm2=round(float(m.sum() * px_mm2), 1) if px_mm2 else None,
            longest_diameter_px=round(long_px, 1),
            longest_diameter_mm=round(long_mm, 1) if long_mm is not None else None,
            short_axis_px=round(short_px, 1),
            short_axis_mm=round(short_mm, 1) if short_mm is not None else None,
            measurable=(long_mm >= RECIST_MIN_MM) if long_mm is not None else None,
            mean_hu=_mean(hu[m]) if hu is not None else None,
            centroid_yx=(round(float(ys.mean()), 1), round(float(xs.mean()), 1))))
    lesions.sort(key=lambda l: l.lesion_id)
    liver_px, tumor_px = int(liver.sum()), int(tumor.sum())
    return SliceMeasurements(
        slice_index=slice_index, liver_area_px=liver_px,
        liver_area_mm2=round(liver_px * px_mm2, 1) if px_mm2 else None,
        tumor_area_px=tumor_px, tumor_area_mm2=round(tumor_px * px_mm2, 1) if px_mm2 else None,
        tumor_burden_pct=round(100.0 * tumor_px / liver_px, 2) if liver_px else 0.0,
        lesion_count=len(lesions),
        liver_mean_hu=_mean(hu[liver & ~tumor]) if hu is not None else None,
        tumor_mean_hu=_mean(hu[tumor]) if hu is not None else None, lesions=lesions)


def _run_sums(comps: Components, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` (Z, H, W) over each run of ``comps``, slice by slice (float64 per run)."""
    out = np.zeros(comps.line.size, np.float64)
    for z in np.unique(comps.run_slice):
        sl, rows = comps.slice_runs(int(z))
        csum = np.zeros((comps.shape[-2], comps.shape[-1] + 1), np.float64)
        np.cumsum(values[z], axis=1, dtype=np.float64, out=csum[:, 1:])
        out[sl] = csum[rows, comps.end[sl]] - csum[rows, comps.start[sl]]
    return out


def measure_volume(liver: np.ndarray, tumor: np.ndarray, spacing_mm, hu: np.ndarray | None = None,
                   slab_mm: np.ndarray | None = None):
    """liver, tumor: (Z, H, W) uint8 in {0, 1}; spacing_mm (z, y, x) or None; hu (Z, H, W) or None;
    slab_mm: (Z,) mm each slice stands for where the slices are unevenly spaced (Scan.slab_mm: a
    series with gaps), so that volumes in mL bridge the gaps; None: spacing_mm[0] for every slice.
    -> (VolumeMeasurements, :class:`Components` of the 3D lesions numbered by decreasing volume;
    ``.slice_labels(z)`` gives a slice's lesion ids).

    Lesions are measured from their runs, slice by slice: no full-size label volume is made."""
    liver, tumor = as_bool(liver), as_bool(tumor)
    known = spacing_mm is not None and spacing_mm[0]
    voxel_ml = spacing_mm[0] * spacing_mm[1] * spacing_mm[2] / 1000.0 if known else None
    # voxels weighted by their slice's slab over the usual step: what the mL figures count
    slice_weight = np.asarray(slab_mm, np.float64) / spacing_mm[0] if known and slab_mm is not None else None
    comps = Components.of(tumor).renumbered_by_size(slice_weight)
    n = comps.n
    sy, sx = (spacing_mm[1], spacing_mm[2]) if spacing_mm else (1.0, 1.0)
    sizes = comps.sizes()
    weighted = sizes if slice_weight is None else comps.weighted_sizes(slice_weight)
    largest_z, largest_area = comps.largest_slices()
    hu_sums = np.bincount(comps.comp, weights=_run_sums(comps, hu), minlength=n + 1) if hu is not None and n else None
    centroids, bounds = comps.centroids(), comps.bounds()
    lesions = []
    for lid in range(1, n + 1):
        z = int(largest_z[lid])
        m = comps.slice_labels(z) == lid
        long_u, short_u = lesion_diameters(m, sy, sx)
        long_px, short_px = lesion_diameters(m, 1.0, 1.0)
        voxels = int(sizes[lid])
        lesions.append(Lesion3D(
            lesion_id=lid, voxels=voxels,
            volume_ml=round(float(weighted[lid] * voxel_ml), 2) if voxel_ml else None, largest_slice=z,
            largest_area_mm2=round(float(largest_area[lid] * sy * sx), 1) if spacing_mm else None,
            longest_diameter_mm=round(long_u, 1) if spacing_mm else None,
            longest_diameter_px=round(long_px, 1),
            mean_hu=round(float(hu_sums[lid] / voxels), 1) if hu_sums is not None else None,
            short_axis_mm=round(short_u, 1) if spacing_mm else None, short_axis_px=round(short_px, 1),
            measurable=round(long_u, 1) >= recist_min_mm(spacing_mm[0]) if spacing_mm else None,
            centroid_zyx=tuple(round(float(c), 2) for c in centroids[lid]),
            bounds_zyx=tuple((int(lo), int(hi)) for lo, hi in bounds[lid])))
    tumor_per_slice = tumor.sum((1, 2))
    liver_per_slice = liver.sum((1, 2))
    largest_tumor = int(np.argmax(tumor_per_slice)) if tumor_per_slice.any() else None
    key = sorted({s for s in [largest_tumor, int(np.argmax(liver_per_slice)) if liver_per_slice.any() else None]
                  if s is not None} | {l.largest_slice for l in lesions[:4]})
    lv, tv = int(liver_per_slice.sum()), int(tumor_per_slice.sum())
    lw, tw = ((lv, tv) if slice_weight is None else
              (float(liver_per_slice @ slice_weight), float(tumor_per_slice @ slice_weight)))
    return VolumeMeasurements(
        liver_volume_ml=round(lw * voxel_ml, 1) if voxel_ml else None,
        tumor_volume_ml=round(tw * voxel_ml, 2) if voxel_ml else None,
        liver_voxels=lv, tumor_voxels=tv, tumor_burden_pct=round(100.0 * tw / lw, 2) if lw else 0.0,
        lesion_count=n, largest_tumor_slice=largest_tumor, key_slices=key, lesions=lesions), comps


def measure(seg) -> Measurements:
    """A :class:`hepatoscan.predictor.Segmentation` -> :class:`Measurements`."""
    scan = seg.scan
    spacing = scan.spacing_mm
    pixel_spacing = scan.pixel_spacing_mm
    hu = scan.pixels if scan.is_hu else None
    notes = []
    if pixel_spacing is None:
        notes.append("Pixel spacing unknown: areas and diameters are in pixels only. Give the pixel "
                     "spacing in mm to get physical units.")
    volume, lesion_ids = None, None
    separate = seg.separate_images
    if separate:
        notes.append("Separate images, not one series: each is measured on its own (areas and 2D lesions); "
                     "no volume is reported.")
    elif scan.is_volume:
        volume, lesion_ids = measure_volume(seg.liver, seg.tumor, spacing, hu, scan.slab_mm)
        if spacing is not None and not spacing[0]:
            notes.append("Slice spacing unknown: volumes are not reported in mL.")
    slices = []
    for z in range(scan.n_slices):
        if scan.is_volume and not separate and not seg.liver[z].any():
            continue
        slices.append(measure_slice(seg.liver[z], seg.tumor[z], z, pixel_spacing,
                                    hu[z] if hu is not None else None,
                                    lesion_ids.slice_labels(z) if lesion_ids is not None else None))
    return Measurements(units="mm" if pixel_spacing else "px", spacing_mm=spacing, slices=slices,
                        volume=volume, notes=notes, separate_images=separate)
