"""The in-memory form of one input: a slice or a volume, with what a report needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class Note(str):
    """A message of what was done with the input, where nothing is wrong (such as "read as HU + 1024"):
    carried with the warnings, but shown as "Note", not "Warning"."""


def slab_thickness_mm(positions_mm, step_mm: float) -> np.ndarray:
    """Sorted slice positions (Z,) in mm along the slices' normal, and the series' usual step ->
    (Z,) float64 mm: the thickness each slice stands for, half the way to each neighbour (the usual
    step beyond the two ends). The step itself for an evenly spaced series; across a gap each
    neighbour covers half of it, as if the missing slices were like the ones beside them."""
    steps = np.diff(np.asarray(positions_mm, np.float64))
    return (np.concatenate([[step_mm], steps]) + np.concatenate([steps, [step_mm]])) / 2.0


def source_label(source: dict, short: bool = False) -> str:
    """Where a slice lies in its source, as a reader finds it there (:meth:`Scan.slice_source`):
    "image 37, z 91.0 mm" (a DICOM file's InstanceNumber, and its position along the patient's
    z axis, ImagePositionPatient[2]), "frame 12, z ..." (a frame of a multi-frame file),
    "file slice 40" (a NIfTI's own voxel index, from 0, along its K axis; "file slice 40
    (axis I)" along another). ``short``: the number alone, for a table cell ("image 37")."""
    if "file_slice" in source:
        axis = source.get("file_axis", "K")
        return f"file slice {source['file_slice']}" + ("" if axis == "K" else f" (axis {axis})")
    parts = [f"{key} {source[field]}" for field, key in (("instance_number", "image"), ("frame", "frame"))
             if field in source]
    if "z_mm" in source and not (short and parts):
        parts.append(f"z {source['z_mm']:.1f} mm")
    return ", ".join(parts)


def message_label(message: str) -> str:
    """"Note" for a Note, "Warning" for any other message."""
    return "Note" if isinstance(message, Note) else "Warning"


# Looking at a long series (montage pages, a viewer's lettering: ~4 to 6 ms a 512 x 512 slice) starts
# with a few slices, since an export treats every slice alike: Scan.series_sample.
SERIES_SAMPLE_ABOVE = 32
SERIES_SAMPLED = 3


@dataclass
class Scan:
    """One loaded input.

    pixels: (Z, H, W), Z = 1 for a 2D image. HU when ``is_hu`` (int16 as CT stores them, rounded
        to 1 HU for float files, float32 only where int16 cannot hold them); otherwise grey levels
        of a display image in [0, 255] (float32; uint8 for a stack of 8-bit image files). It may be
        a strided view of the file's voxels: read it slice by slice (``pixels[z]``) and do not
        assume C order. Axis order: Z toward the head (a stack of image files: file-name order,
        whose direction is unknown), H toward the patient's back (anterior up), W toward the
        patient's left (patient right on the image left).
    spacing_mm: (z, y, x) in mm, or None when unknown (PNG/JPG). z may be None for one slice.
    """

    pixels: np.ndarray
    is_hu: bool
    spacing_mm: tuple[float | None, float, float] | None
    source_format: str  # "png", "jpeg", "bmp", "tiff", "webp", "webp-lossy", "dicom", "dicom-series", "nifti", "array"
    name: str  # file stem, used for output folders
    # modality, study_date, patient_* ... when known; slice_files (a stack of image files); image_sizes
    # ((H, W) of each image of a stack whose images differ in size: each lies at the top left of
    # pixels, black around it; Scan.image_size); lossy_jpeg (a DICOM display image stored as JPEG,
    # read as one: Scan.jpeg); montage (a single image split into the slices it holds:
    # {"grid": [rows, cols], "tiles_yyxx": [[y0, y1, x0, x1], ...]}; None where a single image was
    # checked and holds one slice: hepatoscan.montage); slice_sources (where each slice lies in a source that numbers its
    # slices otherwise than Z: Scan.slice_source)
    metadata: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # For writing masks in the input's geometry: NiftiGeometry (NIfTI), or for DICOM {"origin_mm": ...,
    # "source_headers": the slices' headers without pixels, in Z order, for an axial series of
    # single-frame files, else None; "slice_positions_mm": the slices' positions in Z order where
    # slices are missing (gaps), else None}
    geometry: object | None = None

    @property
    def n_slices(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def jpeg(self) -> bool:
        """Whether the pixels come from JPEG or lossy WebP files (one, or a stack) or JPEG-compressed
        DICOM display images, whose black is spread by the compression (preprocessing.JPEG_BLACK_GREY)."""
        return (self.source_format.removesuffix("-stack") in ("jpeg", "webp-lossy")
                or (not self.is_hu and "lossy_jpeg" in self.metadata))

    @property
    def is_volume(self) -> bool:
        return self.n_slices > 1

    @property
    def sizes_differ(self) -> bool:
        """Whether the images of this stack differ in size (separate images: Scan.image_size)."""
        return bool(self.metadata.get("image_sizes"))

    @property
    def images_separate(self) -> bool:
        """Whether the loader knows this stack's images are separate, not one series' slices: they
        differ in size, or are the tiles of a montage (hepatoscan.montage). Stacks of one size may
        still be found separate by how little their neighbours look alike (the predictor's)."""
        return self.sizes_differ or bool(self.metadata.get("montage"))

    def series_sample(self) -> list[int] | None:
        """Where to look first for what an export puts on every slice of a series alike (montage
        pages, a viewer's lettering): in a stack of over SERIES_SAMPLE_ABOVE images of one size, its
        first, middle and last slice (SERIES_SAMPLED); None where every image is to be looked at
        (fewer images, or images that differ in size: separate images, each its own)."""
        n = self.n_slices
        if n <= SERIES_SAMPLE_ABOVE or self.sizes_differ:
            return None
        return sorted({int(k) for k in np.linspace(0, n - 1, SERIES_SAMPLED).round()})

    def image_size(self, z: int) -> tuple[int, int]:
        """(H, W) of image ``z`` itself: pixels[z, :H, :W] (the rest is the canvas of a stack whose
        images differ in size); the whole slice otherwise."""
        sizes = self.metadata.get("image_sizes")
        return tuple(sizes[z]) if sizes else tuple(self.pixels.shape[1:])

    def slice_source(self, z: int) -> dict | None:
        """Where slice z lies in its source, where the source numbers its slices otherwise than this
        scan's Z (feet to head, from 0): {"instance_number": 37, "z_mm": 91.0} for a file of a DICOM
        series, {"frame": 12, "z_mm": ...} for a frame of a multi-frame file, {"file_slice": 40,
        "file_axis": "K"} for a NIfTI stored head to feet or along another axis
        (:func:`source_label` words it). None where not known or no different (a NIfTI stored feet
        to head, a stack of image files: its file name, a resliced series)."""
        sources = self.metadata.get("slice_sources")
        return sources[z] if sources and sources[z] else None

    @property
    def slab_mm(self) -> np.ndarray | None:
        """(Z,) float64 mm each slice stands for (:func:`slab_thickness_mm`) where the slices are
        not evenly spaced (a DICOM series with slices missing); None where every slice stands for
        spacing_mm[0]."""
        geometry = self.geometry if isinstance(self.geometry, dict) else {}
        positions = geometry.get("slice_positions_mm")
        if positions is None or self.spacing_mm is None or not self.spacing_mm[0] or len(positions) != self.n_slices:
            return None
        return slab_thickness_mm(positions, self.spacing_mm[0])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """(row, column) spacing in mm, or None."""
        return None if self.spacing_mm is None else (self.spacing_mm[1], self.spacing_mm[2])

    def with_pixel_spacing(self, pixel_spacing_mm: float | tuple[float, float] | None) -> "Scan":
        """Return this scan with a user-given in-plane spacing (for PNG/JPG, which carry none). A file
        with its own (DICOM, NIfTI) keeps it, with a warning: a spacing typed for one upload, or given
        to a whole CLI batch, must not rescale a study that knows its own."""
        if pixel_spacing_mm is None:
            return self
        sy, sx = (pixel_spacing_mm, pixel_spacing_mm) if np.isscalar(pixel_spacing_mm) else pixel_spacing_mm
        from .errors import InputError

        if not (0 < float(sy) < 50 and 0 < float(sx) < 50):
            raise InputError(f"pixel spacing {pixel_spacing_mm} mm is not plausible for CT; give the "
                             "in-plane pixel size in millimetres, typically 0.5 to 1.0")
        if self.pixel_spacing_mm is not None:
            own = " x ".join(f"{v:g}" for v in self.pixel_spacing_mm)
            self.warnings.append(f"The given pixel spacing ({pixel_spacing_mm} mm) was ignored: the file's own "
                                 f"({own} mm) is used.")
            return self
        z = self.spacing_mm[0] if self.spacing_mm else None
        self.spacing_mm = (z, float(sy), float(sx))
        return self

    def with_slice_spacing(self, slice_spacing_mm: float | None) -> "Scan":
        """Return this scan with a user-given distance between slices (for a stack of PNG/JPG slices,
        which carry none); volumes in mL need it and the in-plane spacing. One image is returned
        as it is; a volume with its own slice spacing keeps it, with a warning."""
        if slice_spacing_mm is None:
            return self
        from .errors import InputError

        if not 0 < float(slice_spacing_mm) <= 20:
            raise InputError(f"slice spacing {slice_spacing_mm} mm is not plausible for CT; give the distance "
                             "between slice centres in millimetres, typically 0.6 to 5")
        if not self.is_volume:
            return self  # one image has no slices to space
        if self.spacing_mm is not None and self.spacing_mm[0]:
            self.warnings.append(f"The given slice spacing ({slice_spacing_mm} mm) was ignored: the file's own "
                                 f"({self.spacing_mm[0]:g} mm) is used.")
            return self
        if self.pixel_spacing_mm is None:
            raise InputError("a slice spacing without the in-plane pixel size cannot give volumes in mL; "
                             "give the pixel spacing too (the app's Pixel spacing field, or --pixel-spacing MM)")
        self.spacing_mm = (float(slice_spacing_mm), *self.pixel_spacing_mm)
        return self
