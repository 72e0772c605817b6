"""An image mirrored left-right, or with its rows and columns swapped (a slice saved straight from a
NIfTI array), is said to look so; CT as viewers show it is not (hepatoscan.orientation)."""
import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import dice
from hepatoscan.config import QualityConfig
from hepatoscan.errors import InputError
from hepatoscan.orientation import (ASKABLE, READINGS, UPSIDE_DOWN, best_reading, big_liver, evidence_ratio,
                                    liver_evidence, mirror_symmetric, orientation_images_warnings, orientation_warning,
                                    read_as_note, reading_named, reads_better, symmetric_images_warning,
                                    symmetric_warning)
from hepatoscan.pipeline import analyze
from hepatoscan.predictor import Predictor
from hepatoscan.preprocessing import render_8bit

LOOKS = "looks mirrored or turned: the model finds a liver"
MIRRORED = "surely in its mirror image (left and right swapped)"
SWAPPED = "surely with its rows and columns swapped (turned by a quarter and mirrored, as a slice saved straight"
MIRROR, SWAP = READINGS
ALIKE = "finds a liver as surely in"  # reads alike mirrored: no anatomy, not CT


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _samples_one_flipped(sample_pngs, more: dict[str, bytes] | None = None) -> bytes:
    """A zip of the four sample exports, lits117_z064_w350 mirrored as flipped.png, and ``more``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, _ in sample_pngs:
            if path.stem == "lits117_z064_w350":
                z.writestr("flipped.png", _png(np.asarray(Image.open(path).convert("L"))[:, ::-1]))
            else:
                z.write(path, path.name)
        for name, data in (more or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _said(result, what: str) -> list[str]:
    return [w for w in result.warnings if what in w]


def test_evidence_counts_sure_liver_less_the_unsure():
    p = np.zeros((256, 256), np.float32)
    p[:100, :100] = 0.95  # a crisp liver of 10,000 px
    p[100:120, :100] = 0.5  # 2,000 px unsure along it
    p[200:, 200:] = 0.2  # below the band: neither
    assert liver_evidence(p) == 10_000 - 2_000
    assert liver_evidence(np.full((256, 256), 0.5, np.float32)) == -256 * 256  # a haze: none


def test_readings_turn_the_input_back_and_forth():
    x = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(MIRROR.turn(x), x[:, ::-1])
    # what data[:, :, k] of a RAS NIfTI gives, against the runtime's view (README "Slice orientation")
    assert np.array_equal(SWAP.turn(x).T[::-1, ::-1], x)
    assert np.array_equal(UPSIDE_DOWN.turn(x), x[::-1])
    for r in ASKABLE:
        assert np.array_equal(r.turn(r.turn(x)), x), r.name


def test_ratio_and_warning_bounds():
    cfg = QualityConfig()
    assert evidence_ratio(50_000, cfg.min_orientation_evidence_px - 1) is None  # too little to judge
    assert evidence_ratio(10_000, 30_000) == 3.0 and evidence_ratio(-500, 8_000) == 8_000.0
    assert not reads_better(None, 0.1) and not reads_better(cfg.max_orientation_ratio, 0.1)
    assert reads_better(3.0, 0.1) and not reads_better(3.0, cfg.max_orientation_unsure_fraction + 0.01)
    png, nifti = orientation_warning(MIRROR, 3.0, False), orientation_warning(MIRROR, 40.0, True)
    assert png.startswith("This image " + LOOKS) and "3.0 times as " + MIRRORED in png
    assert "saved by a script" in png and "segment again" in png and "situs inversus" in png
    assert "far more surely" in nifti and "affine" in nifti and "fix the header" in nifti
    swapped = orientation_warning(SWAP, 12.0, False)
    assert SWAPPED in swapped and "situs" not in swapped and "data[:, :, k].T[::-1, ::-1]" in swapped
    assert "T[::-1" not in orientation_warning(SWAP, 12.0, True) and "T[::-1" not in png  # HU: fix the header
    # evidence as given 10,000; mirrored 30,000 but a haze; swapped 14,000 and sure
    ratio, reading = best_reading(10_000, np.array([[30_000, 40_000, 12_000], [14_000, 15_000, 1_000]]))
    assert ratio == 3.0 and reading is SWAP
    assert best_reading(10_000, np.array([[3_000, 4_000, 100], [0, 0, 0]])) == (None, None)


def test_separate_images_are_named_per_reading():
    names = ["a.png", "b.png", "c.png"]
    one = orientation_images_warnings({1: (13.3, MIRROR)}, 3, names, False)
    assert len(one) == 1 and one[0].startswith("1 of 3 images (b.png) " + LOOKS)
    assert "far more " + MIRRORED in one[0]
    two = orientation_images_warnings({0: (2.0, MIRROR), 1: (13.3, MIRROR), 2: (5.0, SWAP)}, 3, names, False)
    assert two[0].startswith("2 of 3 images (a.png, b.png) look mirrored") and "in their mirror images" in two[0]
    assert two[1].startswith("1 of 3 images (c.png) looks mirrored or turned") and len(two) == 2
    assert "with its rows and columns swapped" in two[1]
    assert orientation_images_warnings({}, 3, names, False) == []


def test_sample_slices_as_given_are_not_warned_and_mirrored_are(predictor, sample_pngs):
    """The four shipped LiTS 117 exports (W350, W400 and W1500, liver 2 to 40% of the slice) as
    viewers show them, then mirrored left-right and turned by 180 degrees."""
    for path, _ in sample_pngs:
        g = np.asarray(Image.open(path).convert("L"))
        given = analyze(predictor, path)
        assert not _said(given, LOOKS), path.name
        for name, img in (("mirrored", g[:, ::-1]), ("turned", g[::-1, ::-1])):
            r = analyze(predictor, _png(img), f"{name}.png")
            assert r.segmentation.orientation_ratio > 10 and len(_said(r, LOOKS)) == 1, (path.name, name)
            assert r.summary()["orientation_ratio"] == r.segmentation.orientation_ratio
        assert _said(analyze(predictor, _png(g[:, ::-1]), "m.png"), MIRRORED), path.name


def test_slices_saved_straight_from_the_nifti_array_are_warned(predictor, sample_volume):
    """The LiTS 117 sample's slices as a script saves them from the canonical NIfTI array, with no
    regard for orientation (data[:, :, k], windowed W400/L40): each is said to have its rows and
    columns swapped; the runtime's own view of the same slice is not."""
    path, hu, _ = sample_volume
    data = np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)
    for k in (40, 64, 80):
        r = analyze(predictor, _png(render_8bit(data[:, :, k], (-160, 240))), f"slice_{k}.png")
        assert len(_said(r, SWAPPED)) == 1 and not _said(r, MIRRORED), k
        assert not _said(analyze(predictor, _png(render_8bit(hu[k], (-160, 240))), "view.png"), LOOKS)


def test_nifti_with_a_mirrored_header_is_warned(predictor, sample_volume, tmp_path):
    """The LiTS 117 volume as shipped, and with its x axis reversed in the data but not in the
    affine (a header that gives the wrong orientation): only the second is warned, naming the header."""
    path, _, _ = sample_volume
    given = analyze(predictor, path)
    assert given.segmentation.orientation_ratio < 0.3 and not _said(given, LOOKS)
    img = nib.load(str(path))
    bad = tmp_path / "mirrored.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[::-1].copy(), img.affine, img.header), str(bad))
    r = analyze(predictor, bad)
    assert r.segmentation.orientation_ratio > 5
    assert len(_said(r, MIRRORED)) == 1 and "affine" in _said(r, MIRRORED)[0]
    few = Predictor(predictor.card, quality=QualityConfig(orientation_check_slices=3))  # most batches check none
    assert len(_said(analyze(few, bad), MIRRORED)) == 1 and not _said(analyze(few, path), LOOKS)


def test_one_mirrored_image_among_separate_images_is_named(predictor, sample_pngs):
    """A zip of the four sample exports, one of them mirrored: each image is judged on its own."""
    r = analyze(predictor, _samples_one_flipped(sample_pngs), "mixed.zip")
    assert r.segmentation.separate_images
    said = _said(r, LOOKS)
    assert len(said) == 1 and said[0].startswith("1 of 4 images (flipped.png) " + LOOKS)


def test_held_out_volume_mirrored_or_swapped_is_warned(predictor, data_dir):
    """CHAOS CT set 3 (held out) in HU and as a stack of W400/L40 slices: as given ratio under 0.5;
    mirrored and swapped, each said (benchmarks/orientation_check.py)."""
    from hepatoscan.scan import Scan
    from training.data import discover_cases

    case = next((c for c in discover_cases(str(data_dir)) if c.patient == "chaos_ct_set3"), None)
    if case is None:
        pytest.skip("CHAOS CT set 3 is not in the shared data")
    hu, _ = case.load()
    w400 = np.stack([render_8bit(s, (-160, 240)) for s in hu])
    for pixels, is_hu, kind in ((hu, True, "nifti"), (w400, False, "png-stack")):
        spacing = (1.0, 1.0, 1.0) if is_hu else None

        def seg(p):
            return predictor.segment(Scan(np.ascontiguousarray(p), is_hu, spacing, kind, "chaos"))

        given = seg(pixels)
        assert given.orientation_ratio < 0.5 and not _said(given, LOOKS), kind
        assert _said(seg(pixels[:, :, ::-1]), MIRRORED), kind
        assert _said(seg(pixels.transpose(0, 2, 1)[:, ::-1, ::-1]), SWAPPED), kind


def test_reading_alike_mirrored_bounds_and_wording():
    cfg = QualityConfig()
    big = big_liver(np.array([0, 19_660, 19_661, 60_000]), 256 * 256)  # 30% of the input is 19,660.8 px
    assert big.tolist() == [False, False, True, True]
    assert mirror_symmetric(cfg.min_orientation_evidence_px - 1, 3_000) is None  # too little sure liver
    assert mirror_symmetric(40_000, 40_000 * cfg.min_symmetric_ratio - 1) is None  # CT: at most 0.49
    assert mirror_symmetric(40_000, 38_000) == 0.95 and mirror_symmetric(40_000, 48_000) == 1.2
    assert mirror_symmetric(40_000, 40_000 / cfg.min_symmetric_ratio + 1) is None  # far surer: mirrored
    one = symmetric_warning(0.88, 1.05)
    assert one.startswith("This does not look like a CT slice: the model calls 88% of it liver and " + ALIKE)
    assert "(1.05 times the evidence)" in one and "noise, a texture" in one and "DICOM/NIfTI" in one
    names = ["a.png", "b.png", "c.png"]
    assert symmetric_images_warning({}, 3, names) is None
    assert symmetric_images_warning({2: (0.9, 1.0)}, 3, names).startswith(
        "1 of 3 images (c.png) does not look like a CT slice: the model calls 90% of it liver")
    two = symmetric_images_warning({0: (0.5, 0.9), 2: (0.9, 1.0)}, 3, names)
    assert two.startswith("2 of 3 images (a.png, c.png) do not look like CT slices: the model calls up to 90%")
    assert "their mirror images (1.00 times" in two


def _noise_images(rng) -> dict[str, np.ndarray]:
    """(512, 512) uint8 images with no anatomy, each of which the model calls mostly liver."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(rng.random((512, 512)), 2)
    return {"uniform": rng.random((512, 512)) * 255, "gaussian": np.clip(rng.normal(128, 40, (512, 512)), 0, 255),
            "dark": rng.random((512, 512)) * 80,
            "blurred": (smooth - smooth.min()) / np.ptp(smooth) * 255}


def test_noise_reads_alike_mirrored_and_is_said_not_to_be_ct(predictor):
    """Noise has no anatomy, yet the model calls most of it liver, and is sure of it (no unsure
    warning); read mirrored, it finds as much: said not to look like CT, with no orientation warning."""
    for name, img in _noise_images(np.random.default_rng(5)).items():
        r = analyze(predictor, _png(img), "noise.png")
        said = _said(r, ALIKE)
        assert len(said) == 1 and said[0].startswith("This does not look like a CT slice"), name
        assert r.segmentation.liver.mean() > 0.5, name  # the model's "liver": why it must be said
        assert not _said(r, LOOKS) and not _said(r, "The model is unsure"), name


def test_ct_with_a_big_liver_does_not_read_alike_mirrored(predictor, sample_pngs, sample_volume):
    """The LiTS 117 sample (cropped to the liver, so the model calls up to 60% of a slice liver) as
    slices, as a volume in HU and as a W400/L40 stack: judged (the liver is big) and not warned."""
    big = 0
    for path, _ in sample_pngs:
        r = analyze(predictor, path)
        big += r.segmentation.liver.mean() >= QualityConfig().symmetric_liver_fraction
        assert not _said(r, ALIKE), path.name
    assert big >= 1  # at least one sample is judged
    path, hu, _ = sample_volume
    assert not _said(analyze(predictor, path), ALIKE)
    stack = np.stack([render_8bit(s, (-160, 240)) for s in hu])
    from hepatoscan.scan import Scan
    assert not _said(predictor.segment(Scan(stack, False, None, "png-stack", "lits117")), ALIKE)


def test_noise_volume_and_noise_among_images_are_said(predictor, sample_pngs, tmp_path):
    """A NIfTI of noise in HU is said not to look like CT; among the sample exports in a zip of
    separate images, one noise image is named, and a mirrored one keeps its own warning."""
    rng = np.random.default_rng(6)
    noise = tmp_path / "noise.nii.gz"
    nib.save(nib.Nifti1Image(rng.uniform(-100, 200, (256, 256, 24)).astype(np.float32), np.eye(4)), str(noise))
    said = _said(analyze(predictor, noise), ALIKE)
    assert len(said) == 1 and said[0].startswith("This does not look like CT: the model calls")
    static = _png(rng.random((128, 128)) * 255)  # the samples' size
    r = analyze(predictor, _samples_one_flipped(sample_pngs, {"static.png": static}), "mixed.zip")
    said = _said(r, ALIKE)
    assert r.segmentation.separate_images and len(said) == 1
    assert said[0].startswith("1 of 5 images (static.png) does not look like a CT slice"), said
    assert _said(r, LOOKS)[0].startswith("1 of 5 images (flipped.png) " + LOOKS)


def test_reading_by_name_and_its_note():
    assert reading_named("mirrored") is MIRROR and reading_named("swapped") is SWAP
    assert reading_named("upside-down") is UPSIDE_DOWN
    with pytest.raises(InputError, match="cannot read the image as 'upside down': give one of mirrored, swapped, "
                                         "upside-down"):
        reading_named("upside down")
    note = read_as_note(MIRROR)
    assert note.startswith("Read mirrored (left and right swapped), as asked (for a patient with situs inversus")
    assert "masks were turned back" in note and "of the image as given" in note
    assert "data[:, :, k]" in read_as_note(SWAP)
    # the orientation warning tells how to read an image so
    said = orientation_warning(MIRROR, 3.0, False)
    assert "'Read the image' option set to mirrored (CLI: --read-as mirrored)" in said


def test_an_image_read_the_way_it_was_saved_gives_the_masks_of_the_image(predictor, sample_pngs, sample_volume):
    """A mirrored sample slice read mirrored, and a slice saved straight from the canonical NIfTI
    array read swapped, give the masks of the slice as viewers show it, in the image as given, and
    no orientation warning; a Note says how it was read."""
    path, _ = sample_pngs[1]
    g = np.asarray(Image.open(path).convert("L"))
    given = analyze(predictor, path).segmentation
    r = analyze(predictor, _png(g[:, ::-1]), "flipped.png", read_as="mirrored")
    assert dice(r.segmentation.liver[0][:, ::-1], given.liver[0]) > 0.99
    assert dice(r.segmentation.tumor[0][:, ::-1], given.tumor[0]) > 0.95
    assert not _said(r, LOOKS) and r.warnings[0].startswith("Read mirrored") and r.summary()["read_as"] == "mirrored"
    assert analyze(predictor, path).summary()["read_as"] is None
    vol, hu, _ = sample_volume
    data = np.asanyarray(nib.as_closest_canonical(nib.load(str(vol))).dataobj)
    view = analyze(predictor, _png(render_8bit(hu[64], (-160, 240))), "view.png").segmentation
    saved = analyze(predictor, _png(render_8bit(data[:, :, 64], (-160, 240))), "slice_64.png", read_as="swapped")
    assert dice(saved.segmentation.liver[0].T[::-1, ::-1], view.liver[0]) > 0.99 and not _said(saved, LOOKS)
    with pytest.raises(InputError):  # before anything is loaded
        analyze(predictor, "no such file.png", read_as="sideways")


def test_a_nifti_without_orientation_shown_upside_down_reads_right_upside_down(predictor, sample_volume, tmp_path):
    """LiTS 117 saved without its orientation (qform and sform codes 0) is shown with the spine at
    the top, and the model finds only part of its liver (Dice 0.83 when measured). Read upside-down
    it gives, slice for slice, the sample's own masks turned upside down, and the warning names the
    option."""
    path, _, labels = sample_volume
    bare = tmp_path / "bare.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(nib.load(str(path)).dataobj), None), bare)
    given, asked = analyze(predictor, bare), analyze(predictor, bare, read_as="upside-down")
    sample = analyze(predictor, path).segmentation
    np.testing.assert_array_equal(given.scan.pixels, np.asarray(sample.scan.pixels)[:, ::-1])  # the spine on top
    assert dice(given.segmentation.liver[:, ::-1] > 0, labels >= 1) < 0.88
    np.testing.assert_array_equal(asked.segmentation.liver[:, ::-1], sample.liver)
    np.testing.assert_array_equal(asked.segmentation.tumor[:, ::-1], sample.tumor)
    assert asked.summary()["read_as"] == "upside-down" and any(w.startswith("Read upside down") for w in asked.warnings)
    assert any("have it read upside-down or mirrored" in w for w in given.warnings)
