"""Change since an earlier study of the same patient: volumes, lesions and a RECIST 1.1 reading.

Two CT studies of one patient taken weeks apart do not share a grid: the patient lies elsewhere on
the table and the scans cover different lengths. HepatoScan's volumes share their axes, though
(slices from the feet toward the head, the front at the top, the patient's right on the image's
left), so each lesion is placed relative to its liver's centre, in mm. Where a scan cuts the liver
(at the dome), its centre moves, so the later lesions are then moved along z onto the earlier ones
(:func:`align`: the shift that pairs the most measurable lesions, refined to their median offset).
A lesion of the later study is then taken for the same lesion as the earlier study's nearest one
within ``FollowUpConfig.match_mm`` plus half the larger of their longest diameters (a growing
lesion's centre moves). Several later lesions given one earlier lesion are its fragments, and
their diameters are summed, as RECIST 1.1 sums a split lesion's; a later lesion whose extent (its
voxels' bounding box) also holds the centre of an earlier lesion left unpaired (lesions grown
together, or segmented as one) is said where a target lesion is one of them, as such a join
changes the sum. Lesions beyond the other scan's slices are not compared: a later one is not
called new, and a target the later scan does not hold whole makes the response not evaluable.

RECIST 1.1, target lesions only: at most two measurable liver lesions (longest diameter at least
10 mm, or twice a thick slice spacing: measure.recist_min_mm), the largest at baseline. Their sum
of longest diameters at follow-up against baseline gives complete response (all gone), partial
response (at least 30% smaller), progressive disease (at least 20% and 5 mm larger) or stable
disease. Progression is measured here against the baseline given (RECIST's nadir is the smallest
sum on study, which needs every study since). A measurable later lesion with no earlier lesion
near it is a possible new lesion: a reader must confirm it before it means progression.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .config import FollowUpConfig
from .errors import InputError
from .measure import RECIST_MIN_MM, Lesion3D, VolumeMeasurements
from .patient import header_patient
from .scan import Note
from .tables import fmt_value
from .wording import agree, count

RESPONSES = {"CR": "complete response", "PR": "partial response", "SD": "stable disease",
             "PD": "progressive disease", "NE": "not evaluable"}


@dataclass(frozen=True)
class TargetLesion:
    """A baseline target lesion and what became of it."""

    baseline_id: int  # its number in the earlier study's lesion table
    baseline_slice: int  # the earlier study's slice where it is largest
    baseline_slice_label: str  # that slice as the earlier study numbers it ("88 (image 40)")
    baseline_diameter_mm: float
    follow_up_ids: tuple[int, ...]  # the later study's lesions taken for it (several: its fragments)
    follow_up_diameter_mm: float  # their longest diameters summed; 0 where none was found
    in_scan: bool = True  # False: it lies beyond the later scan's slices (the response is then not evaluable)


@dataclass(frozen=True)
class FollowUp:
    """The later study (this result) against an earlier one of the same patient."""

    baseline_name: str
    baseline_date: str  # from the DICOM header; "" where unknown
    follow_up_date: str
    liver_volume_ml: tuple[float, float]  # (baseline, follow-up)
    tumor_volume_ml: tuple[float, float]
    tumor_burden_pct: tuple[float, float]
    lesion_count: tuple[int, int]
    measurable_count: tuple[int, int]
    targets: list[TargetLesion]
    sum_of_diameters_mm: tuple[float, float] | None  # of the targets; None without a target
    response: str | None  # "CR", "PR", "SD", "PD", "NE" (RESPONSES); None without a target
    new_lesions: list[dict]  # possible new lesions: {"lesion_id", "largest_slice", "largest_slice_label", "longest_diameter_mm"}
    matches: dict[int, int]  # later lesion id -> earlier lesion id, for every later lesion matched
    notes: list[str] = field(default_factory=list)
    joins: dict[int, list[int]] = field(default_factory=dict)  # later lesion id -> earlier ids it covers (a target's)
    beyond_earlier: list[int] = field(default_factory=list)  # later lesions beyond the earlier scan's slices
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the lesions' shift beyond the livers' centres (align)
    # the targets' sum of diameters in each study, oldest first, this one last: {"name", "date", "sum_mm"};
    # sum_mm None where a study did not hold the targets whole (not evaluable); [] with one earlier study
    history: list[dict] = field(default_factory=list)
    nadir_mm: float | None = None  # the smallest sum before this study, where it is not the baseline's
    # earlier target lesion id -> (H, W, 3) uint8 overlay of its largest slice, for the report; not in to_dict
    target_pictures: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def change_pct(self) -> float | None:
        """The targets' sum of diameters, change from baseline in %; None without a target."""
        if not self.sum_of_diameters_mm:
            return None
        before, after = self.sum_of_diameters_mm
        return 100.0 * (after - before) / before

    def response_text(self) -> str:
        """The RECIST reading in words, with its conditions."""
        if self.response is None:
            return ("No measurable lesion in the earlier study, so no target lesion: the RECIST 1.1 response by "
                    "target lesions does not apply." + self._new_lesions_sentence())
        before, after = self.sum_of_diameters_mm
        if self.response == "NE":
            gone = [str(t.baseline_id) for t in self.targets if not t.in_scan]
            return (f"Target lesions (RECIST 1.1): not evaluable: {agree(len(gone), 'target lesion', 'target lesions')} "
                    f"{' and '.join(gone)} of the earlier study {agree(len(gone), 'lies', 'lie')} beyond this scan's "
                    "slices, whole or in part. Give a scan that covers the whole liver.")
        text = (f"Target lesions (RECIST 1.1): {RESPONSES[self.response]}; sum of longest diameters "
                f"{before:.1f} mm -> {after:.1f} mm ({self.change_pct:+.0f}%).")
        if self.nadir_mm is not None:
            text += (f" Progression is measured from the smallest sum before this study, {self.nadir_mm:.1f} mm "
                     f"({after - self.nadir_mm:+.1f} mm).")
        text += self._new_lesions_sentence()
        for later, earlier in self.joins.items():
            text += (f" Lesion {later} covers the earlier lesions {' and '.join(map(str, earlier))}: check in both "
                     "studies whether they grew together before reading the change.")
        return text

    def _new_lesions_sentence(self) -> str:
        """" 2 possible new lesions (...): progressive disease if a reader confirms it.", or ""."""
        if not self.new_lesions:
            return ""
        return (f" {count(len(self.new_lesions), 'possible new lesion')} (no lesion there before): progressive "
                "disease if a reader confirms it.")

    def describe(self) -> str:
        """The comparison in two or three sentences."""
        (tb, tf), (nb, nf) = self.tumor_volume_ml, self.lesion_count
        when = f" of {self.baseline_date}" if self.baseline_date else ""
        change = f" ({100.0 * (tf - tb) / tb:+.0f}%)" if tb else ""
        return (f"Against the earlier study{when} ({self.baseline_name}): tumor {tb:.1f} -> {tf:.1f} mL{change}, "
                f"{count(nb, 'lesion')} -> {nf}. {self.response_text()}")

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(what, earlier, this study, change) rows for a table."""
        def change(before, after, unit, digits=1):
            diff = after - before
            pct = f" ({100.0 * diff / before:+.0f}%)" if before else ""
            return f"{diff:+,.{digits}f}{unit}{pct}"

        (lb, lf), (tb, tf), (bb, bf) = self.liver_volume_ml, self.tumor_volume_ml, self.tumor_burden_pct
        rows = [("Study date", self.baseline_date or "-", self.follow_up_date or "-", "")] if (
            self.baseline_date or self.follow_up_date) else []
        rows += [("Liver volume", f"{lb:,.1f} mL", f"{lf:,.1f} mL", change(lb, lf, " mL")),
                ("Tumor volume", f"{tb:,.2f} mL", f"{tf:,.2f} mL", change(tb, tf, " mL", 2)),
                ("Tumor burden", f"{bb:.2f} %", f"{bf:.2f} %", f"{bf - bb:+.2f} points"),
                ("Lesions (3D)", str(self.lesion_count[0]), str(self.lesion_count[1]),
                 f"{self.lesion_count[1] - self.lesion_count[0]:+d}"),
                ("Measurable lesions", str(self.measurable_count[0]), str(self.measurable_count[1]),
                 f"{self.measurable_count[1] - self.measurable_count[0]:+d}")]
        if self.sum_of_diameters_mm and self.response == "NE":
            rows.append(("Sum of target diameters", f"{self.sum_of_diameters_mm[0]:.1f} mm", "not evaluable", ""))
        elif self.sum_of_diameters_mm:
            before, after = self.sum_of_diameters_mm
            rows.append(("Sum of target diameters", f"{before:.1f} mm", f"{after:.1f} mm",
                         f"{after - before:+.1f} mm ({self.change_pct:+.0f}%)"))
        rows.append(("Possible new lesions", "", str(len(self.new_lesions)), ""))
        return rows

    def tables(self) -> list[tuple[list[str], list[list[str]]]]:
        """The comparison's tables, (header, rows) each, for the page and the PDF alike: both studies
        side by side (:meth:`rows`), the target lesions (:meth:`target_rows`, where any) and the
        target sums study by study (:meth:`history_rows`, where studies lie between)."""
        out = [(["", f"Earlier study ({self.baseline_name})", "This study", "Change"], [list(r) for r in self.rows()])]
        if self.targets:
            out.append((["Target lesion, earlier (slice)", "Longest diameter", "This study's lesion", "Longest diameter"],
                        self.target_rows()))
        if self.history:
            out.append((["Study", "Date", "Sum of target diameters"], self.history_rows()))
        return out

    def history_rows(self) -> list[list[str]]:
        """With studies between: one row per study, oldest first: name, date, sum of target diameters."""
        last = len(self.history) - 1
        return [[h["name"] + (" (this study)" if k == last else " (baseline)" if k == 0 else ""), h["date"] or "-",
                 "not evaluable" if h["sum_mm"] is None else f"{h['sum_mm']:.1f} mm"]
                for k, h in enumerate(self.history)]

    def target_rows(self) -> list[list[str]]:
        """One row per target lesion: earlier lesion (slice), its diameter, the later lesions, theirs."""
        return [[f"{t.baseline_id} (slice {t.baseline_slice_label})", fmt_value(t.baseline_diameter_mm, " mm"),
                 ", ".join(str(i) for i in t.follow_up_ids) or ("not found" if t.in_scan else "beyond this scan"),
                 fmt_value(t.follow_up_diameter_mm, " mm") if t.in_scan else "-"] for t in self.targets]

    def new_lesions_text(self) -> str:
        """The possible new lesions in a line ("lesion 7 (14.2 mm, slice 60); ..."); "" where none."""
        return "; ".join(f"lesion {n['lesion_id']} ({n['longest_diameter_mm']:.1f} mm, slice {n['largest_slice_label']})"
                         for n in self.new_lesions)

    def describe_lesion(self, lesion_id: int) -> str:
        """This study's lesion ``lesion_id`` against the earlier study, for a table cell: "lesion 3"
        ("lesion 1 (target)"), "possible new lesion" (measurable, nothing there before) or "none
        there before" (too small to call new)."""
        if lesion_id in self.matches:
            before = self.matches[lesion_id]
            return f"lesion {before}" + (" (target)" if any(t.baseline_id == before for t in self.targets) else "")
        if any(n["lesion_id"] == lesion_id for n in self.new_lesions):
            return "possible new lesion"
        if lesion_id in self.beyond_earlier:
            return "beyond the earlier scan"
        return "none there before"

    def to_dict(self) -> dict:
        out = asdict(replace(self, target_pictures={}))
        out.pop("target_pictures")
        out.update(change_pct=None if self.change_pct is None else round(self.change_pct, 1),
                   response_text=self.response_text(),
                   matches={str(k): v for k, v in self.matches.items()})
        return out


@dataclass(frozen=True)
class Study:
    """What a follow-up needs of one segmented volume, without its arrays (an earlier study is
    reduced to this before the later one is segmented, so that the two never share memory)."""

    name: str
    study_date: str  # from the DICOM header, formatted; "" where unknown
    patient_id: str  # from the DICOM header; "" where unknown
    volume: VolumeMeasurements
    places_mm: np.ndarray  # (N, 3) float64 each lesion's centre relative to the liver's (lesion_places_mm)
    boxes_mm: np.ndarray  # (N, 3, 2) float64 each lesion's extent relative to the liver's centre
    z_range_mm: tuple[float, float]  # the scan's slices' extent along z, relative to the liver's centre
    liver_length_mm: float  # the liver's length along z (shorter where the scan cuts it)
    slice_labels: dict[int, str]  # each lesion's largest slice as the study numbers it ("88 (image 40)")
    warnings: list[str]  # the study's warnings (not its notes)
    target_pictures: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # candidate targets' overlays
    model: str = ""  # the model that segmented it ("hepatoscan-unet-int8 1.7.7")

    def basis(self) -> dict:
        """What measurements.json keeps of it (``follow_up_basis``), so that a later study can be
        compared with the earlier one's measurements.json instead of its CT (:meth:`from_document`).
        No patient identifiers: the study date only."""
        return {"places_mm": np.round(self.places_mm, 2).tolist(), "boxes_mm": np.round(self.boxes_mm, 2).tolist(),
                "z_range_mm": [round(float(v), 2) for v in self.z_range_mm],
                "liver_length_mm": round(self.liver_length_mm, 2), "study_date": self.study_date,
                "slice_labels": {str(z): label for z, label in self.slice_labels.items()}}

    @classmethod
    def from_document(cls, document: dict, name: str) -> "Study":
        """A HepatoScan measurements.json (Result.document) of a volume -> the Study it was made
        from, without pictures or warnings; InputError (naming ``name``) where it holds no
        ``follow_up_basis`` (an image, or written before HepatoScan kept one)."""
        basis = document.get("follow_up_basis") if isinstance(document, dict) else None
        if not basis:
            raise InputError(f"{name} is not the measurements.json of a volume segmented by this HepatoScan: it holds "
                             "no follow-up basis (it is of an image, of another tool, or from a version before "
                             "follow-ups). Give the earlier study's CT (DICOM series or NIfTI) instead.")
        try:
            v = dict(document["measurements"]["volume"])
            known = {f.name for f in fields(Lesion3D)}
            v["lesions"] = [Lesion3D(**{k: l[k] for k in l if k in known}) for l in v["lesions"]]
            n = len(v["lesions"])
            return cls(document["summary"]["input"], basis["study_date"], "", VolumeMeasurements(**v),
                       np.asarray(basis["places_mm"], np.float64).reshape(n, 3),
                       np.asarray(basis["boxes_mm"], np.float64).reshape(n, 3, 2), tuple(basis["z_range_mm"]),
                       float(basis["liver_length_mm"]), {int(z): label for z, label in basis["slice_labels"].items()},
                       [], {}, document["summary"].get("model", ""))
        except (KeyError, TypeError, ValueError) as e:  # edited by hand, or cut short
            raise InputError(f"{name} is a damaged HepatoScan measurements.json ({type(e).__name__}: {e}): give "
                             "the file as HepatoScan wrote it, or the earlier study's CT.") from e


def recist_response(before_mm: float, after_mm: float, cfg: FollowUpConfig = FollowUpConfig(),
                    nadir_mm: float | None = None) -> str:
    """The targets' sum of longest diameters at baseline (> 0) and at follow-up, in mm, and the
    smallest sum on study before this one (``nadir_mm``; None: the baseline's) -> "CR", "PR", "SD"
    or "PD" by RECIST 1.1's target-lesion rules: response against the baseline, progression against
    the nadir (any regrowth after all targets had gone)."""
    nadir = before_mm if nadir_mm is None else nadir_mm
    if nadir <= 0 < after_mm:
        return "PD"
    if after_mm <= 0:
        return "CR"
    if after_mm - nadir >= max(cfg.progression_fraction * nadir, cfg.progression_min_mm):
        return "PD"
    if (after_mm - before_mm) / before_mm <= -cfg.partial_response_fraction:
        return "PR"
    return "SD"


def liver_frame(liver: np.ndarray, spacing_mm) -> tuple[np.ndarray, float]:
    """liver: (Z, H, W) uint8 in {0, 1}; spacing_mm (z, y, x) -> ((3,) float64 its centre in mm from
    voxel (0, 0, 0), each axis from the mask's sums over the other two; its length along z in mm,
    from the lowest slice holding liver to the highest, both whole)."""
    centre, length = [], 0.0
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = np.asarray(liver, np.uint8).sum(axis=other, dtype=np.int64)
        centre.append(float(counts @ np.arange(counts.size)) / max(int(counts.sum()), 1) * spacing_mm[axis])
        if axis == 0 and counts.any():
            held = np.flatnonzero(counts)
            length = float(held[-1] - held[0] + 1) * spacing_mm[0]
    return np.array(centre), length


def lesion_places_mm(result) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """A volume's Result -> ((N, 3) float64 each 3D lesion's centre, (N, 3, 2) float64 the lowest
    and highest edge of its voxels along each axis, (lowest, highest) edge of the scan's slices
    along z), in mm relative to the liver's centre (z toward the head, y toward the back, x toward
    the patient's left), lesions in lesion-table order; and the liver's length along z in mm."""
    v, spacing = result.measurements.volume, np.asarray(result.scan.spacing_mm, np.float64)
    liver, length = liver_frame(result.segmentation.liver, spacing)
    z_range = (-0.5 * spacing[0] - liver[0], (result.scan.n_slices - 0.5) * spacing[0] - liver[0])
    if not v.lesions:
        return np.zeros((0, 3)), np.zeros((0, 3, 2)), z_range, length
    centres = np.array([l.centroid_zyx for l in v.lesions], np.float64) * spacing - liver
    edges = (np.array([l.bounds_zyx for l in v.lesions], np.float64) + [-0.5, 0.5]) * spacing[:, None]
    return centres, edges - liver[:, None], z_range, length


def within_reach(before_mm: np.ndarray, before_diam: np.ndarray, after_mm: np.ndarray, after_diam: np.ndarray,
                 cfg: FollowUpConfig = FollowUpConfig()) -> np.ndarray:
    """Lesion centres relative to the liver, (N, 3) earlier and (M, 3) later, in mm, and their (N,)
    and (M,) longest diameters in mm -> (M, N) float64 distances between their centres in mm where
    within ``cfg.match_mm`` plus half the larger diameter (a growing lesion's centre moves), else inf."""
    dist = np.linalg.norm(after_mm[:, None, :] - before_mm[None, :, :], axis=2)
    reach = cfg.match_mm + 0.5 * np.maximum(after_diam[:, None], before_diam[None, :])
    return np.where(dist <= reach, dist, np.inf)


def match_lesions(reach: np.ndarray) -> np.ndarray:
    """(M, N) :func:`within_reach` distances -> (M,) int: for each later lesion the index of the
    earlier lesion it is taken for (the nearest within reach), or -1. Several later lesions may take
    one earlier lesion: its fragments."""
    out = np.full(reach.shape[0], -1, np.int64)
    if not reach.size:
        return out
    nearest = np.argmin(reach, axis=1)
    found = np.isfinite(reach[np.arange(reach.shape[0]), nearest])
    out[found] = nearest[found]
    return out


def _mutual(b: np.ndarray, b_diam: np.ndarray, a: np.ndarray, a_diam: np.ndarray,
            cfg: FollowUpConfig) -> list[tuple[int, int, float]]:
    """(later index, earlier index, distance in mm) of the lesions that are each other's nearest
    within reach (:func:`within_reach`)."""
    reach = within_reach(b, b_diam, a, a_diam, cfg)
    paired = match_lesions(reach)
    nearest_later = np.argmin(reach, axis=0)
    return [(j, int(i), float(reach[j, i])) for j, i in enumerate(paired) if i >= 0 and nearest_later[i] == j]


def align(before_mm: np.ndarray, before_diam: np.ndarray, after_mm: np.ndarray, after_diam: np.ndarray,
          search_mm: float, cfg: FollowUpConfig = FollowUpConfig()) -> np.ndarray:
    """Lesion centres relative to the liver, (N, 3) earlier and (M, 3) later, in mm, their longest
    diameters, and how far along z the livers' centres may mislead (their lengths' difference: a
    scan cut at the dome moves its liver's centre) -> (3,) float64 the shift in mm to take from
    the later centres so that the lesions meet. Of the shifts along z within ``search_mm`` (steps
    of ``cfg.align_step_mm``), the one that pairs the most measurable lesions each other's nearest
    (then the nearest, then the smallest shift), refined to those pairs' median offset over
    ``cfg.align_rounds`` rounds; 0 where no measurable lesions pair."""
    big_b, big_a = before_diam >= RECIST_MIN_MM, after_diam >= RECIST_MIN_MM
    if not big_b.any() or not big_a.any():
        return np.zeros(3)
    b, bd, a, ad = before_mm[big_b], before_diam[big_b], after_mm[big_a], after_diam[big_a]
    steps = np.arange(-search_mm, search_mm + 1e-6, cfg.align_step_mm)
    best, best_score = np.zeros(3), (0, 0.0)
    for dz in sorted(steps, key=abs):
        shift = np.array([dz, 0.0, 0.0])
        pairs = _mutual(b, bd, a - shift, ad, cfg)
        score = (len(pairs), -sum(d for _, _, d in pairs))
        if score > best_score:
            best, best_score = shift, score
    shift = best
    for _ in range(cfg.align_rounds):
        pairs = _mutual(b, bd, a - shift, ad, cfg)
        if not pairs:
            break
        moved = np.median([a[j] - b[i] for j, i, _ in pairs], axis=0)
        if np.allclose(moved, shift, atol=0.5):
            return moved
        shift = moved
    return shift


def joined(paired: np.ndarray, before_mm: np.ndarray, after_box_mm: np.ndarray) -> dict[int, list[int]]:
    """(M,) :func:`match_lesions`, the (N, 3) earlier lesions' centres and the (M, 3, 2) later
    lesions' extents (lesion_places_mm) -> {later lesion index: the earlier lesions it covers, its
    own pair first} for each later lesion whose extent holds the centre of an earlier lesion that no
    later lesion took: lesions grown together, or segmented as one."""
    orphans = sorted(set(range(len(before_mm))) - set(paired[paired >= 0].tolist()))
    out = {}
    for j in np.flatnonzero(paired >= 0):
        low, high = after_box_mm[j, :, 0], after_box_mm[j, :, 1]
        inside = [i for i in orphans if np.all((low <= before_mm[i]) & (before_mm[i] <= high))]
        if inside:
            out[int(j)] = [int(paired[j]), *inside]
    return out


def volume_of(result, which: str):
    """The volume measurements of a study that can be followed up (``which``: "The earlier study",
    "This study"); InputError otherwise."""
    m, scan = result.measurements, result.scan
    if m.volume is None or m.separate_images:
        raise InputError(f"{which} ({scan.name}) is not a volume: a follow-up compares two CT volumes "
                         "(a DICOM series, a NIfTI, a .zip of one series' slices). Give both studies as volumes.")
    if scan.spacing_mm is None or not scan.spacing_mm[0] or m.volume.liver_volume_ml is None:
        raise InputError(f"{which} ({scan.name}) has no slice and pixel spacing, so its lesions have no "
                         "size in mm to compare: give its pixel and slice spacing (PNG/JPG slices), or the "
                         "DICOM/NIfTI, which carry them.")
    if not m.volume.liver_voxels:
        raise InputError(f"{which} ({scan.name}) shows no liver, so there is nothing to follow up: "
                         "check that it is an abdominal CT and that it is the study meant.")
    return m.volume


def study_of(result, which: str, cfg: FollowUpConfig = FollowUpConfig(), pictures: bool = True) -> Study:
    """A volume's :class:`hepatoscan.pipeline.Result` -> :class:`Study` (``which``, how errors name
    it: "The earlier study", "This study"), with the overlays of its target lesions' largest slices
    where ``pictures``; InputError where it cannot be followed up (volume_of)."""
    volume = volume_of(result, which)
    header = header_patient(result.scan.metadata)
    places, boxes, z_range, length = lesion_places_mm(result)
    shown = {l.lesion_id: result.views(l.largest_slice)["overlay"] for l in target_lesions(volume, cfg)} if pictures else {}
    return Study(result.scan.name, header.study_date, header.patient_id, volume, places, boxes, z_range, length,
                 {l.largest_slice: result.slice_number(l.largest_slice) for l in volume.lesions},
                 [w for w in result.warnings if not isinstance(w, Note)], shown,
                 f"{result.card.name} {result.card.version}")


def target_lesions(volume: VolumeMeasurements, cfg: FollowUpConfig = FollowUpConfig()) -> list:
    """A study's RECIST 1.1 target lesions: its measurable lesions, the longest first, at most
    ``cfg.max_targets`` (two per organ)."""
    return sorted((l for l in volume.lesions if l.measurable), key=lambda l: -l.longest_diameter_mm)[:cfg.max_targets]


def _study_notes(before: Study, after: Study) -> list[str]:
    """Warnings where the two studies may not be of one patient, or are given the wrong way round."""
    notes = []
    if before.patient_id and after.patient_id and before.patient_id != after.patient_id:
        notes.append(f"The two studies name different patients in their DICOM headers (patient ID "
                     f"{before.patient_id} and {after.patient_id}): a follow-up compares two studies of one "
                     "patient; check that the earlier study is this patient's.")
    if before.model and after.model and before.model != after.model:
        notes.append(f"The earlier study was segmented by {before.model}, this one by {after.model}: part of a "
                     "change may come from the model. Segment the earlier CT again for a like-for-like comparison.")
    if before.study_date and after.study_date and before.study_date > after.study_date:
        notes.append(f"The earlier study is dated {before.study_date}, after this one ({after.study_date}): "
                     "were they given the wrong way round? Give the older study as the earlier one.")
    return notes


def _targets(baseline: Study, vf: VolumeMeasurements, matches: dict[int, int], outside: np.ndarray,
             cfg: FollowUpConfig) -> list[TargetLesion]:
    """The earlier study's target lesions (target_lesions), each with the later lesions paired with
    it (``matches``: later id -> earlier id) and whether the later scan holds it whole (not
    ``outside``: (N,) bool over the earlier lesions)."""
    index_of = {l.lesion_id: i for i, l in enumerate(baseline.volume.lesions)}
    targets = []
    for lesion in target_lesions(baseline.volume, cfg):
        parts = [l for l in vf.lesions if matches.get(l.lesion_id) == lesion.lesion_id]
        targets.append(TargetLesion(lesion.lesion_id, lesion.largest_slice, baseline.slice_labels[lesion.largest_slice],
                                    lesion.longest_diameter_mm, tuple(l.lesion_id for l in parts),
                                    round(sum(l.longest_diameter_mm for l in parts), 1),
                                    in_scan=not outside[index_of[lesion.lesion_id]]))
    return targets


def _history(baseline: Study, between: list, follow_up: Study, sums, cfg: FollowUpConfig):
    """-> (the targets' sum of diameters in each study, oldest first ([] without studies between);
    the smallest sum before this study where it is below the baseline's, else None)."""
    if not between or not sums:
        return [], None
    rows = [{"name": baseline.name, "date": baseline.study_date, "sum_mm": sums[0]}]
    for study in between:
        f = compare_studies(baseline, study, cfg)
        rows.append({"name": study.name, "date": study.study_date,
                     "sum_mm": None if f.response == "NE" else f.sum_of_diameters_mm[1]})
    rows.append({"name": follow_up.name, "date": follow_up.study_date, "sum_mm": sums[1]})
    nadir = min(r["sum_mm"] for r in rows[:-1] if r["sum_mm"] is not None)
    return rows, (nadir if nadir < sums[0] else None)


def _join_note(later, earlier: list) -> str:
    """The warning where a later lesion (Lesion3D) covers several earlier ones, a target first."""
    return (f"This study's lesion {later.lesion_id} ({later.longest_diameter_mm:.1f} mm) lies where the earlier study "
            f"had lesions {', '.join(str(l.lesion_id) for l in earlier)} "
            f"({', '.join(f'{l.longest_diameter_mm:.1f}' for l in earlier)} mm): they may have grown together, or be "
            "segmented as one here. RECIST 1.1 then gives the joined lesion's diameter to one target and 0 to the "
            "others, as here; check both studies before reading a change from it.")


def compare_studies(baseline, follow_up, cfg: FollowUpConfig = FollowUpConfig(), between=()) -> FollowUp:
    """An earlier study and a later one of the same patient, each a :class:`Study` or a volume's
    :class:`hepatoscan.pipeline.Result` -> :class:`FollowUp` (the earlier study's warnings among
    its notes, "Earlier study: ..."); InputError where a Result is not a volume with spacing and a
    liver (volume_of). ``between``: the studies taken between them (Study), oldest first: their
    target sums give the history and the nadir that progression is measured from (RECIST 1.1)."""
    if not isinstance(baseline, Study):
        baseline = study_of(baseline, "The earlier study")
    if not isinstance(follow_up, Study):
        follow_up = study_of(follow_up, "This study")
    vb, vf = baseline.volume, follow_up.volume
    diam = lambda v: np.array([l.longest_diameter_mm for l in v.lesions], np.float64)  # noqa: E731
    search = max(cfg.align_search_mm, abs(baseline.liver_length_mm - follow_up.liver_length_mm))
    shift = align(baseline.places_mm, diam(vb), follow_up.places_mm, diam(vf), search, cfg)
    before_mm, after_mm = baseline.places_mm, follow_up.places_mm - shift
    after_boxes = follow_up.boxes_mm - shift[:, None]
    # A later lesion centred beyond the earlier scan's slices is not paired, and one that is not paired
    # is new only where the earlier scan holds it whole; a target not held whole by the later scan is
    # not evaluable.
    low, high = baseline.z_range_mm
    centred_beyond = (after_mm[:, 0] < low) | (after_mm[:, 0] > high)
    partly_beyond = (after_boxes[:, 0, 0] < low) | (after_boxes[:, 0, 1] > high)
    low, high = np.asarray(follow_up.z_range_mm) - shift[0]
    outside = (baseline.boxes_mm[:, 0, 0] < low) | (baseline.boxes_mm[:, 0, 1] > high)
    reach = within_reach(before_mm, diam(vb), after_mm, diam(vf), cfg)
    reach[centred_beyond] = np.inf
    assigned = match_lesions(reach)
    matches = {vf.lesions[j].lesion_id: vb.lesions[i].lesion_id for j, i in enumerate(assigned) if i >= 0}
    beyond = partly_beyond & (assigned < 0)

    measurable = [l for l in vb.lesions if l.measurable]
    targets = _targets(baseline, vf, matches, outside, cfg)
    sums = None
    if targets:
        sums = (round(sum(t.baseline_diameter_mm for t in targets), 1),
                round(sum(t.follow_up_diameter_mm for t in targets), 1))
    history, nadir = _history(baseline, list(between), follow_up, sums, cfg)
    new = [{"lesion_id": l.lesion_id, "largest_slice": l.largest_slice,
            "largest_slice_label": follow_up.slice_labels[l.largest_slice], "longest_diameter_mm": l.longest_diameter_mm}
           for j, l in enumerate(vf.lesions) if l.measurable and l.lesion_id not in matches and not beyond[j]]

    notes = [f"Earlier study: {w}" for w in baseline.warnings] + _study_notes(baseline, follow_up)
    dated = [st for st in (baseline, *between, follow_up) if st.study_date]
    if between and any(a.study_date > b.study_date for a, b in zip(dated, dated[1:])):
        notes.append("The earlier studies are not given oldest first (" + ", ".join(
            f"{st.name} {st.study_date}" for st in dated) + "): give them in the order they were taken.")
    target_ids, joins = {t.baseline_id for t in targets}, {}
    for j, covered in joined(assigned, before_mm, after_boxes).items():
        if vb.lesions[covered[0]].lesion_id in target_ids:
            joins[vf.lesions[j].lesion_id] = [vb.lesions[i].lesion_id for i in covered]
            notes.append(_join_note(vf.lesions[j], [vb.lesions[i] for i in covered]))
    if beyond.any():
        ids = [str(l.lesion_id) for j, l in enumerate(vf.lesions) if beyond[j]]
        notes.append(f"{count(len(ids), 'lesion')} of this study ({', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}) "
                     "lie beyond the earlier scan's slices, whole or in part: not counted as new.")
    liver_change = abs(vf.liver_volume_ml - vb.liver_volume_ml) / max(vb.liver_volume_ml, 1e-6)
    if liver_change > cfg.max_liver_change_fraction:
        notes.append(f"The liver's volume differs by {100 * liver_change:.0f}% between the studies: one may not "
                     "cover the whole liver (or the liver was resected); check the pairs in both studies.")
    notes.append(Note("Lesions are paired by their place relative to the liver's centre (moved along the body's "
                 "axis where the scans cover the liver differently), not by registration: check "
                 "that each target lesion is the same lesion in both studies. Target lesions are chosen "
                 "automatically (the largest measurable, at most two, as RECIST 1.1 allows per organ), and "
                 "non-target lesions are not assessed."))
    return FollowUp(
        baseline_name=baseline.name, baseline_date=baseline.study_date, follow_up_date=follow_up.study_date,
        liver_volume_ml=(vb.liver_volume_ml, vf.liver_volume_ml),
        tumor_volume_ml=(vb.tumor_volume_ml, vf.tumor_volume_ml),
        tumor_burden_pct=(vb.tumor_burden_pct, vf.tumor_burden_pct),
        lesion_count=(vb.lesion_count, vf.lesion_count),
        measurable_count=(len(measurable), sum(bool(l.measurable) for l in vf.lesions)),
        targets=targets, sum_of_diameters_mm=sums,
        response=None if not sums else "NE" if not all(t.in_scan for t in targets) else recist_response(
            *sums, cfg, nadir),
        history=history, nadir_mm=nadir,
        new_lesions=new, matches=matches, notes=notes, joins=joins,
        beyond_earlier=[l.lesion_id for j, l in enumerate(vf.lesions) if beyond[j]],
        target_pictures=baseline.target_pictures,
        shift_mm=tuple(round(float(v), 1) for v in shift))
