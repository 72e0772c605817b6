"""Agreement of HepatoScan's masks with a reference segmentation (an expert's), the LiTS way.

Dice of the liver (tumor included) and of the tumor, the sizes both give, surface distances
(ASSD, HD95, Hausdorff: hepatoscan.surface) and lesion-wise detection: a reference lesion (a 3D
connected component, face connectivity) is detected when its Dice with one of HepatoScan's lesions
exceeds 0.5, as in LiTS. ``training.evaluate`` scores the
model with these same functions, so a user's comparison and the model card's figures agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .measure import lesion_diameters
from .morphology import Components, as_bool
from .surface import SurfaceDistance, bounding_box, surface_distance
from .wording import count

DETECTION_DICE = 0.5  # a reference lesion is detected by a lesion of Dice above this (LiTS)
LARGE_LESION_MM = 10.0  # lesions of at least this longest diameter are counted apart


@dataclass(frozen=True)
class Overlap:
    """Voxel counts of one structure: in the reference, in HepatoScan's mask, and in both."""

    reference: int
    hepatoscan: int
    both: int

    @property
    def dice(self) -> float | None:
        """2 |A and B| / (|A| + |B|) in [0, 1]; None where both masks are empty (undefined)."""
        total = self.reference + self.hepatoscan
        return None if total == 0 else 2 * self.both / total

    @property
    def volume_overlap_error(self) -> float | None:
        """VOE = 1 - |A and B| / |A or B| in [0, 1] (LiTS); None where both masks are empty."""
        union = self.reference + self.hepatoscan - self.both
        return None if union == 0 else 1 - self.both / union

    @property
    def relative_volume_difference(self) -> float | None:
        """RVD = (|B| - |A|) / |A|, signed (LiTS; A the reference): +0.04 is 4% too large; None
        where the reference is empty."""
        return None if self.reference == 0 else (self.hepatoscan - self.reference) / self.reference

    def __add__(self, other: "Overlap") -> "Overlap":
        """Pooled counts (LiTS's global Dice pools every case's voxels)."""
        return Overlap(self.reference + other.reference, self.hepatoscan + other.hepatoscan, self.both + other.both)


def overlap(reference: np.ndarray, hepatoscan: np.ndarray) -> Overlap:
    """reference, hepatoscan: (Z, H, W) or (H, W) masks of one shape, nonzero = inside -> Overlap.
    Counted slice by slice, so a volume needs no full-size temporary."""
    ref, ours = np.asarray(reference), np.asarray(hepatoscan)
    if ref.shape != ours.shape:
        raise ValueError(f"mask shapes differ: {ref.shape} and {ours.shape}")
    n_ref = n_ours = n_both = 0
    for r, o in zip(ref.reshape(-1, *ref.shape[-2:]), ours.reshape(-1, *ours.shape[-2:])):
        r, o = r != 0, o != 0
        n_ref += int(np.count_nonzero(r))
        n_ours += int(np.count_nonzero(o))
        n_both += int(np.count_nonzero(r & o))
    return Overlap(n_ref, n_ours, n_both)


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice of two masks of one shape, in [0, 1]; None where both are empty."""
    return overlap(a, b).dice


@dataclass(frozen=True)
class LesionDetection:
    """Lesion-wise counts of one case (3D components of the tumor masks)."""

    reference_lesions: int
    hepatoscan_lesions: int
    detected: int  # reference lesions with a HepatoScan lesion of Dice > DETECTION_DICE
    matched: int  # HepatoScan lesions that so detect a reference lesion
    reference_lesions_10mm: int | None  # of longest diameter >= 10 mm on their largest slice; None: spacing unknown
    detected_10mm: int | None
    matched_ids: tuple[int, ...] = ()  # HepatoScan's lesions that match, numbered as measure numbers them
    best_dice: tuple[float, ...] = ()  # per HepatoScan lesion (id 1 first): its highest Dice with a reference lesion

    def describe_lesion(self, lesion_id: int) -> str:
        """How HepatoScan's lesion ``lesion_id`` stands against the reference: "matches (Dice 0.78)"
        (it finds a reference lesion), "overlaps (Dice 0.31)" (it touches one but does not find it:
        below Dice 0.5, a lesion split or merged differently; or above, where another of HepatoScan's
        lesions has a higher Dice with that reference lesion, which LiTS counts once), or "none" (no
        reference tumor there)."""
        d = self.best_dice[lesion_id - 1] if 0 < lesion_id <= len(self.best_dice) else 0.0
        shown = f"Dice {d:.2f}" if d >= 0.005 else "Dice < 0.01"
        if lesion_id in self.matched_ids:
            return f"matches ({shown})"
        if d > DETECTION_DICE:  # above the bar, but its reference lesion took a lesion of higher Dice
            return f"overlaps ({shown}; another lesion matches it better)"
        return f"overlaps ({shown})" if d > 0 else "none"

    @property
    def recall(self) -> float | None:
        return self.detected / self.reference_lesions if self.reference_lesions else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.hepatoscan_lesions if self.hepatoscan_lesions else None

    @property
    def recall_10mm(self) -> float | None:
        return self.detected_10mm / self.reference_lesions_10mm if self.reference_lesions_10mm else None


def _pair_overlaps(ref: Components, ours: Components) -> tuple[np.ndarray, np.ndarray]:
    """Voxels shared by each (reference, HepatoScan) pair of lesions that touch -> (pair keys
    g * (ours.n + 1) + p, their voxel counts), sorted by key. Slice by slice, from the runs: no
    full-size label volume is made."""
    keys, counts = [], []
    for z in np.intersect1d(ref.run_slice, ours.run_slice):
        r, o = ref.slice_labels(int(z)), ours.slice_labels(int(z))
        both = (r > 0) & (o > 0)
        k, c = np.unique(r[both].astype(np.int64) * (ours.n + 1) + o[both], return_counts=True)
        keys.append(k)
        counts.append(c)
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    return k, np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)


def lesion_detection(reference_tumor: np.ndarray, hepatoscan_tumor: np.ndarray,
                     pixel_spacing_mm: tuple[float, float] | None,
                     slice_weight: np.ndarray | None = None) -> LesionDetection:
    """reference_tumor, hepatoscan_tumor: (Z, H, W) or (H, W) bool (or uint8 in {0, 1}) ->
    LesionDetection. HepatoScan's lesions are numbered by decreasing size, as hepatoscan.measure
    numbers them (a volume's 3D lesions; one slice's 2D lesions). Each reference lesion takes the
    HepatoScan lesion of highest Dice with it (ties: the larger); ``pixel_spacing_mm`` (row,
    column) sizes lesions for the 10 mm count (None: not counted); ``slice_weight`` (Z,): as
    hepatoscan.measure weights a series with gaps, for the numbering only. Memory: runs, slice by
    slice (a 512 x 512 x 150 volume needs no full-size label volume)."""
    ref, ours = as_bool(reference_tumor), as_bool(hepatoscan_tumor)
    if ref.ndim == 2:
        ref, ours = ref[None], ours[None]
    rc, oc = Components.of(ref), Components.of(ours).renumbered_by_size(slice_weight)
    n_ref, n_ours = rc.n, oc.n
    ref_size, our_size = rc.sizes(), oc.sizes()
    pairs, shared = _pair_overlaps(rc, oc)
    best = {}  # reference lesion -> (Dice, HepatoScan lesion)
    ours_best = np.zeros(n_ours)
    for pair, c in zip(pairs.tolist(), shared.tolist()):  # ascending: per reference lesion, ours ascending
        g, p = divmod(pair, n_ours + 1)
        d = 2 * c / (ref_size[g] + our_size[p])
        ours_best[p - 1] = max(ours_best[p - 1], d)
        if d > best.get(g, (0.0, None))[0]:
            best[g] = (d, p)
    hits = {g: p for g, (d, p) in best.items() if d > DETECTION_DICE}
    big = big_hit = None
    if pixel_spacing_mm is not None:
        sy, sx = pixel_spacing_mm
        big = big_hit = 0
        largest_z, _ = rc.largest_slices()
        for g in range(1, n_ref + 1):
            if lesion_diameters(rc.slice_labels(int(largest_z[g])) == g, sy, sx)[0] >= LARGE_LESION_MM:
                big += 1
                big_hit += g in hits
    matched = tuple(sorted(set(hits.values())))
    return LesionDetection(n_ref, n_ours, len(hits), len(matched), big, big_hit, matched,
                           tuple(round(float(d), 4) for d in ours_best))


@dataclass(frozen=True)
class Agreement:
    """How HepatoScan's masks of one input agree with a reference segmentation of it.

    liver, tumor: voxel counts (the liver includes the tumor, as both label conventions have it);
    unit_size, unit: what one voxel measures ("mL", "mm²") or 1.0 and "voxels"/"px" where the
    spacing is unknown; liver_surface, tumor_surface: the border distances (hepatoscan.surface:
    ASSD, HD95, Hausdorff, in mm or px), None where either mask is empty.
    """

    reference_name: str
    liver: Overlap
    tumor: Overlap
    lesions: LesionDetection
    unit_size: float
    unit: str
    notes: tuple[str, ...] = ()
    liver_surface: SurfaceDistance | None = None  # None: either liver mask is empty
    tumor_surface: SurfaceDistance | None = None  # None: either tumor mask is empty
    # Where the slices are unevenly spaced (a series with gaps): the voxel counts weighted by
    # their slices' slabs over the usual step, as the measurements' mL count them ("liver_reference",
    # "liver_hepatoscan", "tumor_reference", "tumor_hepatoscan"); None: the plain counts
    weighted_voxels: dict[str, float] | None = None

    @property
    def marks_tumor(self) -> bool:
        """Whether the reference marks any tumor; where it marks none, tumor Dice is undefined (a
        liver without tumor, or a reference of the liver alone)."""
        return self.tumor.reference > 0

    @property
    def liver_dice(self) -> float | None:
        return self.liver.dice

    @property
    def tumor_dice(self) -> float | None:
        return self.tumor.dice if self.marks_tumor else None

    def size(self, voxels: int) -> float:
        """A voxel count in this agreement's unit."""
        return voxels * self.unit_size

    def size_of(self, structure: str, side: str) -> float:
        """The size of "liver" or "tumor" in the "reference" or "hepatoscan" mask, in this
        agreement's unit (bridging a series' gaps as the measurements do)."""
        voxels = getattr(getattr(self, structure), side)
        return self.size((self.weighted_voxels or {}).get(f"{structure}_{side}", voxels))

    def _amount(self, structure: str, side: str) -> str:
        size = self.size_of(structure, side)
        if self.unit == "mL":
            return f"{size:,.1f} mL"
        if self.unit == "mm²":
            return f"{size:,.0f} mm²"
        return f"{round(size):,} {self.unit}"

    def describe(self) -> str:
        """The agreement in a few sentences, as the app, CLI and PDF say it."""
        text = (f"Against the reference {self.reference_name}: liver Dice {_fmt(self.liver_dice)} (reference "
                f"{self._amount('liver', 'reference')}, HepatoScan {self._amount('liver', 'hepatoscan')}).")
        if self.liver_surface is not None:
            s = self.liver_surface
            text += (f" The liver borders lie {s.assd:.1f} {s.unit} apart on average, 95% of them within "
                     f"{s.hd95:.1f} {s.unit} (at most {s.maximum:.1f} {s.unit}).")
        if self.marks_tumor:
            d = self.lesions
            text += (f" Tumor Dice {_fmt(self.tumor_dice)} (reference {self._amount('tumor', 'reference')}, HepatoScan "
                     f"{self._amount('tumor', 'hepatoscan')}). Lesions: {d.detected} of the reference's "
                     f"{d.reference_lesions} found; {d.matched} of HepatoScan's {d.hepatoscan_lesions} match one.")
        elif self.tumor.hepatoscan:
            text += (f" The reference marks no tumor, so tumor Dice is undefined; HepatoScan marks "
                     f"{self._amount('tumor', 'hepatoscan')} in {count(self.lesions.hepatoscan_lesions, 'lesion')}.")
        else:
            text += " Neither marks any tumor."
        return text

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(quantity, reference, HepatoScan, agreement) rows for a table."""
        rows = [("Liver", self._amount("liver", "reference"), self._amount("liver", "hepatoscan"),
                 f"Dice {_fmt(self.liver_dice)}"),
                ("Tumor", self._amount("tumor", "reference"), self._amount("tumor", "hepatoscan"),
                 f"Dice {_fmt(self.tumor_dice)}" if self.marks_tumor else "reference marks no tumor")]
        for name, s in (("Liver border distance", self.liver_surface), ("Tumor border distance", self.tumor_surface)):
            if s is not None:
                rows.append((name, "", "", s.describe()))
        d = self.lesions
        found = f"{d.detected} found" if d.reference_lesions else "-"
        rows.append(("Lesions", str(d.reference_lesions), str(d.hepatoscan_lesions), found))
        if d.reference_lesions_10mm:
            rows.append(("Lesions >= 10 mm", str(d.reference_lesions_10mm), "", f"{d.detected_10mm} found"))
        return rows

    def to_dict(self) -> dict:
        """JSON-able: Dice, the sizes in the unit, the voxel counts and the lesion counts."""
        return {"reference": self.reference_name, "liver_dice": _round(self.liver_dice),
                "tumor_dice": _round(self.tumor_dice), "reference_marks_tumor": self.marks_tumor,
                "unit": self.unit,
                "liver_reference": round(self.size_of("liver", "reference"), 3),
                "liver_hepatoscan": round(self.size_of("liver", "hepatoscan"), 3),
                "tumor_reference": round(self.size_of("tumor", "reference"), 3),
                "tumor_hepatoscan": round(self.size_of("tumor", "hepatoscan"), 3),
                "liver_voe": _round(self.liver.volume_overlap_error), "liver_rvd": _round(self.liver.relative_volume_difference),
                "tumor_voe": _round(self.tumor.volume_overlap_error) if self.marks_tumor else None,
                "tumor_rvd": _round(self.tumor.relative_volume_difference) if self.marks_tumor else None,
                "liver_surface_distance": None if self.liver_surface is None else self.liver_surface.to_dict(),
                "tumor_surface_distance": None if self.tumor_surface is None else self.tumor_surface.to_dict(),
                "voxels": {"liver": asdict(self.liver), "tumor": asdict(self.tumor)},
                "lesions": {**asdict(self.lesions), "recall": _round(self.lesions.recall),
                            "precision": _round(self.lesions.precision),
                            "recall_10mm": _round(self.lesions.recall_10mm)},
                "notes": list(self.notes)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def slice_dice(liver: np.ndarray, tumor: np.ndarray, reference: np.ndarray) -> tuple[float | None, float | None]:
    """One slice's (liver Dice, tumor Dice) against its reference labels; each (H, W), the masks
    in {0, 1} and the labels in {0, 1, 2}; None where both are empty there."""
    return dice(reference >= 1, liver), dice(reference == 2, tumor)


def voxel_unit(spacing_mm, is_volume: bool) -> tuple[float, str]:
    """(unit size, unit) of one voxel: mL where a volume's three spacings are known, mm² for one
    image of known pixel spacing, else (1, "voxels") or (1, "px")."""
    if spacing_mm is not None and spacing_mm[1] and spacing_mm[2]:
        if is_volume and spacing_mm[0]:
            return spacing_mm[0] * spacing_mm[1] * spacing_mm[2] / 1000.0, "mL"
        if not is_volume:
            return spacing_mm[1] * spacing_mm[2], "mm²"
    return 1.0, "voxels" if is_volume else "px"


def _per_image(reference_tumor: np.ndarray, hepatoscan_tumor: np.ndarray, pixel_spacing_mm) -> LesionDetection:
    """Lesion detection of separate images (not one series): each image's 2D lesions on their own,
    the counts summed; no lesion ids (they are per image)."""
    parts = [lesion_detection(r, o, pixel_spacing_mm) for r, o in zip(reference_tumor, hepatoscan_tumor)]
    total = [sum(getattr(p, f) for p in parts) for f in ("reference_lesions", "hepatoscan_lesions", "detected", "matched")]
    big = None if pixel_spacing_mm is None else sum(p.reference_lesions_10mm for p in parts)
    big_hit = None if pixel_spacing_mm is None else sum(p.detected_10mm for p in parts)
    return LesionDetection(*total, big, big_hit)


def compare(liver: np.ndarray, tumor: np.ndarray, reference_labels: np.ndarray, spacing_mm,
            reference_name: str, notes: tuple[str, ...] = (), separate_images: bool = False,
            slab_mm: np.ndarray | None = None) -> Agreement:
    """HepatoScan's masks against a reference.

    liver, tumor: (Z, H, W) uint8 in {0, 1}, liver including tumor; reference_labels: (Z, H, W)
    uint8 in {0, 1, 2} (0 background, 1 liver, 2 tumor) in the same axes; spacing_mm: (z, y, x)
    or None (any of them may be None); separate_images: the Z images are not one series' slices
    (hepatoscan.series), so lesions are 2D, image by image, and border distances in-plane.
    Border distances are found on the box holding both livers (hepatoscan.surface.bounding_box).
    slab_mm: (Z,) mm each slice stands for where the slices are unevenly spaced (Scan.slab_mm):
    the sizes in mL then bridge the gaps as the measurements do; Dice and distances count voxels.
    """
    if reference_labels.shape != liver.shape:
        raise ValueError(f"reference {reference_labels.shape} and masks {liver.shape} differ in shape")
    ref_tumor = reference_labels == 2
    is_volume = liver.shape[0] > 1 and not separate_images
    unit_size, unit = voxel_unit(spacing_mm, is_volume)
    pixel_spacing = (spacing_mm[1], spacing_mm[2]) if spacing_mm is not None and spacing_mm[1] else None
    tumor_overlap = overlap(ref_tumor, tumor)
    box = bounding_box(reference_labels, liver)
    liver_surface = tumor_surface = None
    if box is not None:
        liver_surface = surface_distance(reference_labels[box], liver[box], spacing_mm,  # nonzero: liver
                                         separate_images)
        if tumor_overlap.reference and tumor_overlap.hepatoscan:
            tumor_surface = surface_distance(ref_tumor[box], tumor[box], spacing_mm, separate_images)
    weight = weighted = None
    if slab_mm is not None and is_volume and unit == "mL":
        weight = np.asarray(slab_mm, np.float64) / spacing_mm[0]
        weighted = {f"{structure}_{side}": float(np.count_nonzero(mask, axis=(1, 2)) @ weight)
                    for structure, side, mask in (("liver", "reference", reference_labels),
                                                  ("liver", "hepatoscan", liver), ("tumor", "reference", ref_tumor),
                                                  ("tumor", "hepatoscan", tumor))}
    lesions = (_per_image(ref_tumor, tumor, pixel_spacing) if separate_images
               else lesion_detection(ref_tumor, tumor, pixel_spacing, weight))
    return Agreement(reference_name, overlap(reference_labels, liver), tumor_overlap, lesions,
                     unit_size, unit, tuple(notes), liver_surface, tumor_surface, weighted)
