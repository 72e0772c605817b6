"""Runtime settings as frozen dataclasses. Model-specific values live in the model card."""
from __future__ import annotations

from dataclasses import dataclass

# Image files read as slices (io.image, io.stack): the one list the loader, the CLI and the app's
# file picker take their suffixes from.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
NIFTI_SUFFIXES = (".nii", ".nii.gz")  # NIfTI volumes, by name (io also knows them by their header)
# 3D Slicer's NRRD and ITK's MetaImage, single-file volumes (io also knows them by their header)
ITK_SUFFIXES = (".nrrd", ".mha")
# Their headers that keep the voxels in another file (.raw): read with that file beside them
ITK_HEADER_SUFFIXES = (".nhdr", ".mhd")
DATA_FILE_SUFFIXES = (".raw", ".zraw", ".raw.gz")  # such a header's voxels: read with it, never alone


@dataclass(frozen=True)
class LoadLimits:
    """Limits on what one input may be; exceeding one gives an InputTooLargeError."""

    max_bytes: int = 1024 * 1024 * 1024  # 1 GiB per file or archive
    max_pixels_per_slice: int = 4096 * 4096  # also guards against decompression bombs
    max_slices: int = 2000  # slices per volume
    max_voxels: int = 2000 * 512 * 512  # the whole input (0.5 GB as 8-bit; its two masks as much again)
    max_zip_entries: int = 4000  # files inside one .zip
    max_zip_uncompressed_bytes: int = 4 * 1024 * 1024 * 1024  # zip bombs
    min_side_px: int = 32  # smaller images are degenerate


@dataclass(frozen=True)
class PostprocessConfig:
    """How probability maps become masks (thresholds come from the model card)."""

    liver_keep_fraction_2d: float = 0.25  # in one slice a lobe may be cut off: keep pieces >= 25% of the largest
    tumor_margin_mm: float = 3.0  # tumor is kept inside the liver dilated by this much
    tumor_margin_px: int = 2  # the same where spacing is unknown
    min_lesion_diameter_mm: float = 3.0  # specks below a disc of this diameter are dropped
    min_lesion_px: int = 8  # the same where spacing is unknown
    # in a volume of known spacing, a lesion at least flat_lesion_min_diameter_mm across and thinner
    # across slices than this share of that diameter is dropped (a vessel seen along its length, a
    # partial-volume rim); tumors are roughly round: 0.29 was the flattest of 30 matched lesions
    min_lesion_thickness_ratio: float = 0.2
    # smaller lesions are left alone: one-slice specks below 10 mm touched small expert lesions
    flat_lesion_min_diameter_mm: float = 10.0


@dataclass(frozen=True)
class QualityConfig:
    """When an input is too soft, or too clipped, for the model (hepatoscan.quality)."""

    # Blur effect (0 sharp .. 1 blurred) of the model's input above which the user is warned.
    # Measured with model 1.5.0 on held-out volumes exported at W400/L40: up to 0.53 liver Dice was
    # 0.92 or more in every case (LiTS 117 as is 0.46, CHAOS shrunk to a quarter 0.50); from 0.66 on
    # it was 0.87 down to 0.21 (LiTS 117 blurred by 1 px 0.68: 0.81; half size 0.73: 0.71).
    soft_blur_effect: float = 0.6
    every_nth_slice: int = 8  # volumes: slices sampled for the medians (the measures cost about 2 ms a slice)
    # 8-bit inputs: share of the non-black pixels that are white (clipped at the window's top) above
    # which the user is warned. Narrow liver windows clip an enhanced liver to white, where the model
    # cannot tell it from vessels, kidneys and bone. Measured on the held-out volumes (white share:
    # median over their liver slices; liver Dice LiTS 117 / CHAOS, model 1.5.1 then 1.6.0, HU paths
    # 0.929 / 0.940 then 0.932 / 0.942): W100/L30 0.64 to 0.69 (0.856 / 0.916, 0.905 / 0.921),
    # W150/L30 0.50 (0.878 / 0.927, 0.901 / 0.933; LiTS tumor 0.507, 0.530 against 0.657, 0.656);
    # W150/L60 0.25 to 0.36 and W200/L40 0.21 to 0.30 (1.6.0: within 0.01 of HU); W250 and wider
    # 0.12 or less. The 639 real 8-bit slices of the data reach 0.24 at most.
    max_white_fraction: float = 0.4
    white_grey: int = 245  # "white": JPEG ringing pulls a clipped plateau down to 246..252
    black_grey: int = 3  # "black", not counted: air, and the fat that narrow windows clip
    # Colour images (viewer screenshots with coloured overlays, annotations or a colour map) are read
    # as grey, which changes what the model sees: the user is warned when more than this share of
    # the pixels is coloured, their R, G and B differing by more than colour_chroma grey levels.
    # Grey exports, JPEG included (q30 to q95), have none; the app's own overlay of a slice has 18%.
    max_colour_fraction: float = 0.01
    colour_chroma: int = 30
    # Above this coloured share the image may be no CT at all (a photo, a drawing): the warning says
    # so. Colour photos measured 0.66 to 0.97 (5 of the 6 at hand), but the app's own overlays of the
    # four sample slices 0.18 to 0.62 (as much as their liver fills), so the warning names both.
    mostly_colour_fraction: float = 0.5
    # Thin coloured marks (a viewer's measurement lines, ROI outlines, arrows, coloured lettering) are
    # filled in from the grey around them (hepatoscan.marks), not warned of: at most this share of
    # the image coloured, and at most marks_max_core_share of it farther than marks_core_px from any
    # grey pixel. Measured on lines, circles, lettering and arrowheads drawn 1 to 4 px wide over 28
    # CHAOS and IRCAD slices (every 8th liver slice): 0.009 to 0.017 of their colour is such core as
    # PNG, 0.05 to 0.16 as JPEG (q50 to q75: its colour is smeared at half resolution); the app's own
    # overlays of a slice and its panel, 0.49 to 0.86 (filled areas are nearly all core).
    marks_max_fraction: float = 0.05
    marks_core_px: int = 3
    marks_max_core_share: float = 0.3
    marks_pad_px: int = 1  # each mark widened so before filling: the rim a JPEG's chroma blur leaves
    # Lettering around the body (hepatoscan.marks.lettering): glyphs are bright (lettering_min_grey
    # or more) and small (within lettering_max_side of the image's shorter side: 31 px of 512); an
    # area above lettering_floor_grey (the body's 8-bit floor, above JPEG's ringing) is lettering
    # where all but lettering_other_share of it is glyphs and their rims (lettering_rim_px:
    # antialiasing; in a JPEG lettering_jpeg_rim_px: its ringing, which joins glyphs into words and
    # lines and reached past 3 px around 16 px lettering at q50 to q85), it spans at most lettering_max_block of the image either way,
    # and it lies farther than lettering_body_gap_px from everything else and is not enclosed by it;
    # with fewer than lettering_min_specks glyphs in all, none is (stray bits of a table or a cable).
    lettering_min_grey: int = 160
    lettering_max_side: float = 0.06
    lettering_max_flatness: float = 4.0  # glyphs no wider than this times their height (a table's bits are flat)
    lettering_floor_grey: int = 12
    lettering_rim_px: int = 3
    lettering_jpeg_rim_px: int = 6
    lettering_other_share: float = 0.1
    lettering_max_block: float = 0.4
    lettering_body_gap_px: int = 24
    lettering_min_specks: int = 5
    # A page, a chart or a drawing, not CT: at least page_white_fraction of the segmented
    # region white (white_grey and above) and under page_max_dark_fraction dark (page_dark_grey and
    # below, which JPEG's spread black reaches). CT keeps air or fat dark in every soft-tissue
    # window: benchmarks/not_ct_check.py read every slice of the four HU volumes with the 7 grid
    # windows, their gamma, JPEG, blur and half-size variants, W80/L40, W100/L30, W100/L60, a lung
    # (W1500/L-600) and a bone (W2000/L500) window, and the 639 real 8-bit slices: the white share
    # reached 0.64 (LiTS 117 at W100/L30, its fat black) and, where under 5% was dark, 0.571: LiTS
    # 117's cropped cube in the lung window, which clips soft tissue to white and leaves no air
    # black (16 of its slices passed 0.55, the bound until 2026-12-05). The pages, charts and
    # diagrams at hand are 0.66 to 0.97 white (one logo 0.58).
    page_white_fraction: float = 0.65
    page_max_dark_fraction: float = 0.05
    page_dark_grey: int = 10
    # The model unsure of its liver: of the pixels it calls liver (probability above 0.5, at its
    # input size), the share it gives between unsure_band's probabilities, over every slice. Above
    # max_unsure_fraction the user is warned, when at least min_liver_px_to_judge pixels are called
    # liver (fewer: no judgement). benchmarks/not_ct_check.py, model 1.7.7, every 6th slice of the
    # four HU volumes with the grid's windows and variants, three narrower liver windows, a lung
    # (W1500/L-600) and a bone (W2000/L500) window, and of the 639 real 8-bit slices, each read as a
    # single image: 14 of 1,132 judged slices pass 0.5 (8 in the lung window, 2 blurred by 2 px, 2 at
    # W2000/L0 and 2 at W150/L30 or W100/L30: slices where the outline is poor or the liver small),
    # none of the 93 real 8-bit ones (max 0.36); whole renders read as stacks reach 0.42 (lung
    # window), 0.21 in any other. Images that are not CT: with this warning 54 of 145 read as grey
    # get one of the not-CT warnings (39 without), 72 of 145 as given (61).
    unsure_band: tuple[float, float] = (0.25, 0.75)
    max_unsure_fraction: float = 0.5
    min_liver_px_to_judge: int = 1500  # of the 256 x 256 input: 2.3%
    # Mirrored or turned images (hepatoscan.orientation): the model learned axial slices as viewers
    # show them (the patient's right on the image's left, the front at the top) and uses where the
    # liver lies; fed a slice mirrored left-right it paints the spleen or the stomach (liver Dice
    # 0.35 to 0.42 on the held-out volumes). On up to orientation_check_slices slices spread over
    # the input it also reads its own input mirrored, and with rows and columns swapped and reversed
    # (a slice saved straight from a RAS NIfTI array), and the user is warned when its evidence of a
    # liver read either way (pixels above the unsure band's top less those within the band, summed
    # over those slices) is more than max_orientation_ratio times the evidence as given, at least
    # min_orientation_evidence_px, and as sure as CT reads (max_orientation_unsure_fraction: CT
    # slices holding over 10% liver read under 0.16 unsure pixels per liver pixel in 95% of cases,
    # 0.32 at most; LiTS 117's slice cut into shuffled tiles, no anatomy, 0.33 to 1.5).
    # benchmarks/orientation_check.py, model 1.7.7 (the README has the table): as given, 0 of 16
    # whole renders of the four HU volumes and 5 of 999 single slices are warned; mirrored, 16 and
    # 93% of the slices holding over 10% liver; swapped, 16 and 97%; turned by 90 degrees, 10 and 51%.
    # The bound was 1.5 at first: 5 of 999 as given, 84% mirrored.
    orientation_check_slices: int = 16  # each costs two more runs of the model (about 11 ms each on 2 cores)
    max_orientation_ratio: float = 1.2
    min_orientation_evidence_px: int = 4000  # of the 256 x 256 input: 6%
    max_orientation_unsure_fraction: float = 0.25
    # No anatomy (noise, a texture, a pattern): a liver lies on one side, so the model reads a CT
    # slice mirrored far less surely, most of all where it calls much of the slice liver. Where it
    # calls at least symmetric_liver_fraction of its input liver on at least half of the slices
    # checked, and its evidence of a liver read mirrored (pooled over those slices) is between
    # min_symmetric_ratio and 1 / min_symmetric_ratio of the evidence as given, the user is told it
    # does not look like CT. benchmarks/orientation_check.py, model 1.7.7, 999 single CT slices: of
    # the 74 where the model called over 30% liver, the mirror read at most 0.49 of the evidence as
    # given (0.66 and 1.07 on slices at 20 to 30%), and none of the 999, as given or in the five
    # other orientations, nor any whole render, is warned; uniform, Gaussian, dark and blurred noise
    # (sigma 1 to 4 px) read 86 to 98% liver, 0.93 to 1.01 as surely mirrored, with no other warning.
    # Not said where another reading is far surer (9 CT slices turned by 180 degrees read alike
    # mirrored, but are told they look turned).
    symmetric_liver_fraction: float = 0.3
    min_symmetric_ratio: float = 0.8
    # A slice whose body filled so little of the image that the model read it zoomed by this factor
    # or more (preprocessing.body_box: the body cropped to fill the card's body_fill) is said in a
    # note: a screenshot with a wide black margin, a viewer zoomed out. The four HU volumes at hand
    # read at 1.0 to 1.09 (CHAOS and IRCAD p07 up to 1.09, IRCAD p01 1.02, LiTS 117 1.0); in a field
    # of view 1.5 times as wide, at about 1.35 (LiTS 117, whose cube overfills its frame) to 1.65.
    # Not said for 8-bit images whose window is not read firmly from a fat mode: there fat is black
    # too, and the body found is what lies inside it (62 of the 639 real 8-bit slices, exports
    # that fill their frame, read at 1.25 to 1.52 so).
    zoom_note_min: float = 1.25


@dataclass(frozen=True)
class FollowUpConfig:
    """How an earlier study is compared with a later one (hepatoscan.followup)."""

    match_mm: float = 15.0  # a later lesion is an earlier one's within this plus half the larger diameter
    max_targets: int = 2  # RECIST 1.1: at most two target lesions per organ
    partial_response_fraction: float = 0.30  # sum of diameters at least 30% smaller: partial response
    progression_fraction: float = 0.20  # at least 20% larger ...
    progression_min_mm: float = 5.0  # ... and at least 5 mm larger: progressive disease
    max_liver_change_fraction: float = 0.25  # liver volumes further apart: a scan may not cover the liver
    align_search_mm: float = 15.0  # shifts along z tried, at least (more where the livers' lengths differ more)
    align_step_mm: float = 2.5  # ... in steps of
    align_rounds: int = 3  # rounds of moving the later lesions onto the earlier ones (followup.align)
