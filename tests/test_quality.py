"""Soft images (blurred, or small and enlarged) are measured where the model sees them, and images
clipped to white by a narrow window are measured on their grey levels; the user is warned of both.
Sharp, well-windowed ones, the shipped samples among them, get no warning. Pages and drawings
(mostly white, nothing black) and mostly coloured images are said not to look like CT, and an image
where the model is unsure of the liver it finds (no anatomy to go by) says so."""
import io
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from conftest import SAMPLES, dice
from training.evaluate import in_frame
from hepatoscan.config import QualityConfig
from hepatoscan.pipeline import analyze
from hepatoscan.preprocessing import render_8bit
from hepatoscan.quality import (blur_effect, clipping_warning, colour_warning, looks_like_page, page_shares,
                                page_warning, softness_warning, unsure_counts, unsure_fraction, unsure_warning,
                                white_fraction)
from hepatoscan.scan import Scan, message_label

SAMPLE = SAMPLES / "lits117_z080_w350.png"


def _synthetic_ct(seed=0) -> np.ndarray:
    """(256, 256) float32 in [0, 1]: a body disc with an organ, a few vessels and grainy noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    img = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 110 ** 2, 0.45, 0.0)
    img = np.where((yy - 120) ** 2 / 60 ** 2 + (xx - 100) ** 2 / 45 ** 2 < 1, 0.6, img)
    for cy, cx in rng.integers(60, 190, (6, 2)):
        img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < 36, 0.9, img)
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1).astype(np.float32)


def _blurred(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (edges repeated)."""
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    rows = np.apply_along_axis(lambda v: np.convolve(np.pad(v, r, mode="edge"), k, "valid"), 1, x)
    return np.apply_along_axis(lambda v: np.convolve(np.pad(v, r, mode="edge"), k, "valid"), 0, rows).astype(np.float32)


def test_blur_effect_rises_with_blur_and_with_enlargement():
    x = _synthetic_ct()
    values = [blur_effect(x)] + [blur_effect(_blurred(x, s)) for s in (0.7, 1.5, 3.0)]
    assert values == sorted(values) and values[0] < 0.4 and values[-1] > 0.8
    small = Image.fromarray(x, "F").resize((64, 64), Image.BILINEAR).resize((256, 256), Image.BILINEAR)
    assert blur_effect(np.asarray(small, np.float32)) > QualityConfig().soft_blur_effect
    assert blur_effect(np.zeros((64, 64), np.float32)) == 0.0  # nothing to judge


def test_softness_warning_names_the_value_and_what_to_do():
    assert softness_warning(0.45) is None and softness_warning(None) is None
    text = softness_warning(0.7)
    assert "0.70" in text and "above 0.60" in text and "full-resolution" in text
    assert softness_warning(0.7, QualityConfig(soft_blur_effect=0.75)) is None


def test_sharp_samples_and_volume_get_no_warning(predictor, sample_pngs):
    for path, _ in sample_pngs:
        r = analyze(predictor, path)
        assert r.warnings == [] and r.segmentation.blur_effect < 0.55, path.name
    vol = analyze(predictor, SAMPLES / "lits117_volume.nii.gz")
    # a note of what post-processing did (flat marks not counted) is no warning of the image
    assert [message_label(w) for w in vol.warnings] == ["Note"] and vol.segmentation.blur_effect < 0.55


def test_blurred_and_thumbnail_exports_are_warned_and_lose_liver(predictor):
    """The warning is there because the model does worse on such images: the blurred sample
    loses liver against the sharp one, measured against the expert mask."""
    gt = np.asarray(Image.open(SAMPLE.with_name(SAMPLE.stem + "_mask.png"))) >= 1
    sharp = analyze(predictor, SAMPLE)
    im = Image.open(SAMPLE)
    for name, soft in [("blurred", im.filter(ImageFilter.GaussianBlur(2))),
                       ("thumbnail", im.resize((48, 48), Image.BILINEAR).resize(im.size, Image.BILINEAR))]:
        r = analyze(predictor, _png(soft), filename=f"{name}.png")
        assert len(r.warnings) == 1 and "soft" in r.warnings[0], name
        s = r.summary()
        assert s["warnings"] == r.warnings and s["blur_effect"] > 0.6
        assert "Warning: The image is soft" in r.describe()
        assert dice(r.segmentation.liver[0], gt) < dice(sharp.segmentation.liver[0], gt), name


def test_pdf_carries_the_softness_warning(predictor, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; make test installs it")
    r = analyze(predictor, _png(Image.open(SAMPLE).filter(ImageFilter.GaussianBlur(2))), filename="soft.png")
    pdf = tmp_path / "soft.pdf"
    pdf.write_bytes(r.report_pdf())
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "The image is soft where the model sees it" in text


def test_white_fraction_is_the_white_share_of_the_non_black_pixels():
    img = np.zeros((40, 50), np.uint8)  # 2000 pixels: 1000 black (air, clipped fat) are not counted
    img[:20] = 120  # 1000 grey
    img[:6] = 255  # of which 300 clipped white
    assert white_fraction(img) == pytest.approx(0.3)
    img[:6, :25] = 248  # JPEG ringing pulls part of a clipped plateau below 255: still white
    assert white_fraction(img) == pytest.approx(0.3)
    img[:6] = 240  # bright but not clipped
    assert white_fraction(img) == 0.0
    assert white_fraction(np.zeros((8, 8), np.uint8)) == 0.0  # nothing to judge
    assert white_fraction(img.astype(np.float32), QualityConfig(white_grey=240)) == pytest.approx(0.3)


def test_clipping_warning_names_the_share_and_what_to_do():
    assert clipping_warning(None) is None and clipping_warning(0.3) is None
    text = clipping_warning(0.54)
    assert "54%" in text and "above 40%" in text and "W400/L40" in text
    assert clipping_warning(0.54, QualityConfig(max_white_fraction=0.6)) is None


def test_narrow_window_export_is_warned_and_loses_liver(predictor, sample_volume):
    """Only the narrow liver window (W150/L30) of the evaluation grid clips this enhanced liver to
    white; that export is warned, and its liver Dice is lower than the W400/L40 export's."""
    from training.evaluate import WINDOW_GRID

    _, hu, labels = sample_volume
    gt = labels[80] >= 1
    results = {}
    for name, window in WINDOW_GRID:
        r = analyze(predictor, _png(Image.fromarray(render_8bit(hu[80], window))), filename=f"{name}.png")
        results[name] = r
        clipped = [w for w in r.warnings if "clipped to white" in w]
        assert (len(clipped) == 1) == (name == "W150/L30"), (name, r.segmentation.white_fraction)
    narrow = results["W150/L30"]
    assert narrow.summary()["white_fraction"] > 0.4 and "Warning: " in narrow.describe()
    # 1.7.6 (white read above the window's top) 0.944 against 0.959; 1.7.5 lost more than 0.02 here.
    assert dice(narrow.segmentation.liver[0], gt) < dice(results["W400/L40"].segmentation.liver[0], gt) - 0.01


def test_a_mask_given_for_a_slice_is_warned(predictor):
    """A label mask (values 0, 1, 2) dropped in by mistake says it does not look like CT (the CT
    samples get no warning at all: test_sharp_samples_and_volume_get_no_warning)."""
    mask = analyze(predictor, SAMPLES / "lits117_z080_w350_mask.png")
    assert mask.segmentation.window_estimates[0].flat
    assert [w for w in mask.warnings if "does not look like a CT slice" in w]
    assert "The image holds" in " ".join(mask.warnings)
    from hepatoscan.quality import flat_image_warning

    assert flat_image_warning(3, 4).startswith("3 of the 4 slices hold")
    assert flat_image_warning(2, 4) is None and flat_image_warning(0, 0) is None


def test_page_shares_are_the_white_and_dark_shares_of_all_pixels():
    img = np.full((40, 50), 255, np.uint8)  # 2000 pixels
    img[:10] = 120  # 500 grey
    img[:2] = 8  # 100 dark: JPEG's spread black counts
    img[2:4] = 11  # 100 just above dark
    img[30:, :25] = 246  # white still: JPEG ringing pulls clipped white below 255
    assert page_shares(img) == (pytest.approx(0.75), pytest.approx(0.05))
    assert not looks_like_page(0.75, 0.05)  # 5% dark is already too much for a page
    assert looks_like_page(0.75, 0.049) and not looks_like_page(0.54, 0.0)
    assert page_shares(np.zeros((0, 0), np.uint8)) == (0.0, 0.0)
    assert page_warning(None, None) is None and page_warning(0.4, 0.0) is None
    text = page_warning(0.91, 0.01)
    assert text.startswith("This does not look like a CT slice: 91% of it is white") and "DICOM/NIfTI" in text


def test_a_drawing_is_said_not_to_be_ct_and_narrow_ct_exports_are_not(predictor, sample_volume):
    """A chart on white paper gets "does not look like a CT slice" (and not the clipped-liver
    warning, whose advice would be wrong), first among its warnings; every liver slice of LiTS 117,
    exported with the narrowest liver windows (its enhanced liver clipped to white) or cut to the
    liver's bounding box, does not: fat and air stay dark in CT; nor does its whitest slice in a
    lung window."""
    from PIL import ImageDraw

    page = Image.new("L", (640, 480), 255)
    draw = ImageDraw.Draw(page)
    draw.line((60, 20, 60, 440), fill=0, width=2)
    draw.line((60, 440, 620, 440), fill=0, width=2)
    for k in range(1, 8):  # grid lines with their labels
        draw.line((60, 440 - 55 * k, 620, 440 - 55 * k), fill=200)
        draw.text((20, 435 - 55 * k), f"{10 * k}", fill=0)
    xs = np.linspace(60, 620, 50)
    draw.line(list(zip(xs, 440 - 300 * (1 - np.exp(-(xs - 60) / 150)))), fill=80, width=3)
    draw.text((300, 455), "time (s)", fill=0)
    drawing = analyze(predictor, _png(np.asarray(page)), filename="chart.png")
    assert drawing.warnings[0].startswith("This does not look like a CT slice")
    assert not [w for w in drawing.warnings if "clipped to white" in w]

    _, hu, labels = sample_volume
    liver_slices = [k for k in range(hu.shape[0]) if (labels[k] >= 1).any()]
    ys, xs = np.nonzero((labels >= 1).any(axis=0))
    for window in [(-20, 80), (0, 80), (-45, 105)]:  # W100/L30, W80/L40, W150/L30
        for k in liver_slices:
            gray = render_8bit(hu[k], window)
            for region in (gray, gray[ys.min():ys.max() + 1, xs.min():xs.max() + 1]):
                white, dark = page_shares(region)
                assert not looks_like_page(white, dark), (window, k, white, dark)
    narrow = analyze(predictor, _png(render_8bit(hu[80], (-45, 105))), filename="w150.png")
    assert not [w for w in narrow.warnings if "does not look like" in w]
    # a lung window clips soft tissue to white and, in this cube cropped to the liver, leaves no air
    # black: 57% white, nothing dark, and still CT (said to be a page with the bound of 0.55)
    lung = analyze(predictor, _png(render_8bit(hu[96], (-1350, 150))), filename="lung.png")
    assert page_shares(render_8bit(hu[96], (-1350, 150)))[0] > 0.55
    assert not [w for w in lung.warnings if "does not look like" in w]


def test_mostly_coloured_images_are_said_to_be_maybe_no_ct():
    """Up to half the pixels in colour reads as overlays on CT; more could be a photo: the warning
    names both readings."""
    assert colour_warning(0.005) is None
    overlays = colour_warning(0.3)
    assert "overlays, annotations" in overlays and "photo" not in overlays
    mostly = colour_warning(0.7)
    assert mostly.startswith("70% of the image is in colour.") and "photo or a drawing" in mostly
    assert "greyscale export" in mostly
    assert colour_warning(0.7, QualityConfig(mostly_colour_fraction=0.8)) == overlays.replace("30%", "70%")


def test_screenshot_in_a_grey_panel_is_segmented_like_the_slice(predictor, sample_pngs):
    """A viewer screenshot (the slice inside a light grey panel with a caption): only the image is
    segmented, as the slice alone is, nothing in the panel, and the user is told. Without the cut
    the model painted 49,000 pixels of the panel as liver."""
    from conftest import viewer_screenshot

    path, _ = sample_pngs[-1]
    s = np.asarray(Image.open(path).convert("L").resize((512, 512)))
    plain = analyze(predictor, _png(s), filename="slice.png")
    shot = analyze(predictor, _png(viewer_screenshot(s, (640, 800), (80, 40), 200)), filename="shot.png")
    inside = shot.segmentation.liver[0][80:592, 40:552]
    assert shot.segmentation.liver[0].sum() == inside.sum()  # nothing outside the image
    assert dice(inside, plain.segmentation.liver[0]) > 0.98
    assert [w for w in shot.warnings if "uniform surround" in w and "512 x 512 px" in w]
    assert not [w for w in plain.warnings if "surround" in w]


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_non_square_images_are_not_squashed(predictor):
    """A slice inside a 2:1 black frame (a wide export or screenshot): padded to a square for the
    model, as it learned, instead of squashed; the liver matches the slice alone (it was 0.78)."""
    s = np.asarray(Image.open(SAMPLES / "lits117_z096_w1500.png").convert("L").resize((256, 256)))
    wide = np.zeros((256, 512), np.uint8)
    wide[:, 128:384] = s
    plain = analyze(predictor, _png(s), filename="slice.png")
    framed = analyze(predictor, _png(wide), filename="wide.png")
    assert framed.segmentation.liver.shape == (1, 256, 512)
    assert dice(framed.segmentation.liver[0][:, 128:384], plain.segmentation.liver[0]) > 0.93
    assert framed.segmentation.liver[0][:, :128].sum() == 0 and framed.segmentation.liver[0][:, 384:].sum() == 0


def test_unsure_fraction_counts_the_band_per_pixel_called_liver():
    """A crisp disc has its unsure pixels only on its rim; the same disc blurred into a haze has
    more unsure pixels than liver; too little liver is not judged."""
    yy, xx = np.mgrid[:256, :256]
    r = np.hypot(yy - 128.0, xx - 100.0)
    crisp = 1.0 / (1.0 + np.exp((r - 50.0) / 0.5))  # a sharp sigmoid edge at radius 50
    hazy = 1.0 / (1.0 + np.exp((r - 50.0) / 20.0))
    liver_px, unsure_px = unsure_counts(crisp[None].astype(np.float32))
    assert abs(liver_px - np.pi * 50 ** 2) < 200 and 0 < unsure_px < 0.1 * liver_px
    f_crisp, f_hazy = unsure_fraction(*unsure_counts(crisp)), unsure_fraction(*unsure_counts(hazy))
    assert f_crisp < 0.1 < QualityConfig().max_unsure_fraction < f_hazy
    # counts add over slices: two slices, twice the counts
    assert unsure_counts(np.stack([crisp, crisp])) == (2 * liver_px, 2 * unsure_px)
    assert unsure_fraction(1499, 5000) is None and unsure_fraction(1500, 900) == 0.6
    assert unsure_warning(None) is None and unsure_warning(0.5) is None
    text = unsure_warning(0.93)
    assert text.startswith("The model is unsure of the liver it found: 93 unsure pixels (probability 0.25 to "
                           "0.75) for every 100 it calls liver")
    assert "above 50 in testing" in text and "not CT" in text and "DICOM/NIfTI" in text
    assert unsure_warning(0.93, QualityConfig(max_unsure_fraction=0.95)) is None


def _tiles_shuffled(gray: np.ndarray, seed: int, tile: int = 16) -> np.ndarray:
    """(N, N) image, N a multiple of ``tile`` -> its tiles in a random order: the same grey levels
    and texture, no anatomy."""
    n = gray.shape[0] // tile
    tiles = gray.reshape(n, tile, n, tile).transpose(0, 2, 1, 3).reshape(n * n, tile, tile)
    tiles = tiles[np.random.default_rng(seed).permutation(n * n)]
    return tiles.reshape(n, n, tile, tile).transpose(0, 2, 1, 3).reshape(n * tile, n * tile)


def test_model_is_sure_of_ct_in_any_window_and_unsure_without_anatomy(predictor, sample_volume):
    """LiTS 117 in HU, and its slices exported with soft-tissue, wide, lung and bone windows: about
    7 unsure pixels per 100 of liver, no warning of it (a lung window clips the liver to white, and
    is warned of that). The same slices cut into 16-pixel tiles and
    shuffled keep their grey levels and texture but lose the anatomy: the model then finds little
    liver (too little to judge) or is unsure of it, and for the slice whose liver fills the most
    of it (z = 64) it says so every time."""
    _, hu, _ = sample_volume
    seg = predictor.segment(Scan(np.asarray(hu), True, (1.0, 1.0, 1.0), "nifti", "lits117"))
    assert seg.unsure_fraction < 0.15 and not [w for w in seg.warnings if "unsure" in w]
    for window in [(-160, 240), (-1000, 1000), (-1350, 150), (-500, 1500)]:  # W400, W2000, lung, bone
        for k in (40, 64, 80):
            r = analyze(predictor, _png(render_8bit(hu[k], window)), filename=f"z{k}.png")
            assert r.segmentation.unsure_fraction < 0.2, (window, k)
            assert all("clipped to white" in w and "lung window" in w for w in r.warnings), (window, k)
            assert r.warnings == [] or window == (-1350, 150), (window, k)
    for k in (40, 64, 80):
        g = render_8bit(hu[k], (-125, 225))  # W350/L50
        original = analyze(predictor, _png(g), filename="z.png").segmentation
        for seed in range(3):
            r = analyze(predictor, _png(_tiles_shuffled(g, seed)), filename="shuffled.png")
            f = r.segmentation.unsure_fraction
            assert f is None or f > 3 * original.unsure_fraction, (k, seed, f)
            if k == 64:
                assert f > 0.5 and r.warnings[0].startswith("The model is unsure"), (seed, f)


def test_separate_images_are_judged_one_by_one(predictor):
    """A zip of separate images (four CT exports of different levels and windows, and one image
    without anatomy): pooled, the model's certainty hides the odd one (0.09), so separate images
    are judged each on its own and the warning names the one it is unsure of."""
    import zipfile

    g = np.asarray(Image.open(SAMPLES / "lits117_z064_w350.png").convert("L"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("lits117_z040_w400", "lits117_z064_w350", "lits117_z080_w350", "lits117_z096_w1500"):
            z.write(SAMPLES / f"{name}.png", f"{name}.png")
        z.writestr("shuffled.png", _png(_tiles_shuffled(g, 0)))
    r = analyze(predictor, buf.getvalue(), "mixed.zip")
    assert r.segmentation.separate_images and r.segmentation.unsure_fraction < 0.5  # pooled: hidden
    unsure = [w for w in r.warnings if w.startswith("The model is unsure")]
    assert len(unsure) == 1 and "on 1 of 5 images (shuffled.png): up to " in unsure[0]


def _chaos(data_dir):
    """(Z, H, W) HU and labels of the held-out CHAOS volume (no tumor), in display order, and its spacing."""
    import nibabel as nib

    from hepatoscan.io.nifti import read_nifti

    folder = data_dir / "volumes" / "chaos_ct_set3"
    hu, spacing = read_nifti(nib.load(str(folder / "volume.nii.gz")))[:2]
    labels = read_nifti(nib.load(str(folder / "segmentation.nii.gz")))[0]
    return np.asarray(hu, np.float32), np.rint(labels).astype(np.uint8), spacing


def test_a_slice_in_a_wide_black_margin_is_read_zoomed_to_its_body(predictor, data_dir):
    """A CT export with a black margin as wide again around it (a viewer zoomed out, a padded
    screenshot): the model reads it cropped to the body, as it reads the slice alone, and the user
    is told. Read as given, model 1.7.7 scored 0.59 on such slices of this volume (0.95 without the
    margin)."""
    hu, labels, _ = _chaos(data_dir)
    z = int(np.argmax((labels >= 1).sum(axis=(1, 2))))
    grey = render_8bit(hu[z], (-160, 240))
    plain = analyze(predictor, _png(grey), filename="slice.png")
    framed = analyze(predictor, _png(in_frame(grey, 2.0, 0)), filename="framed.png")
    truth = labels[z] >= 1
    d_plain = dice(plain.segmentation.liver[0], truth)
    d_framed = dice(framed.segmentation.liver[0], in_frame(truth, 2.0, False))
    assert d_plain > 0.93 and d_framed > d_plain - 0.01, (d_plain, d_framed)
    notes = [w for w in framed.warnings if "read it cropped to the body" in w]
    assert notes and message_label(notes[0]) == "Note"
    assert 1.5 < float(re.search(r"([0-9.]+) times enlarged", notes[0]).group(1)) < 2.0
    assert "viewer zoomed out" in notes[0]
    assert not [w for w in plain.warnings if "cropped to the body" in w]


def test_a_volume_in_a_wide_field_of_view_is_segmented_as_in_its_own(predictor, data_dir):
    """CT reconstructed with a field of view 1.5 times as wide (a slim patient, a wide field): the
    same liver as in the volume as given, within 0.005 of Dice (model 1.7.7 read as given: 0.941
    -> 0.906), with the zoom in a note."""
    hu, labels, spacing = _chaos(data_dir)
    keep = slice(0, None, 3)
    hu, labels = hu[keep], labels[keep]
    spacing = (3 * spacing[0], *spacing[1:])
    given = predictor.segment(Scan(hu, True, spacing, "nifti", "chaos"))
    wide = predictor.segment(Scan(in_frame(hu, 1.5, -1024.0), True, spacing, "nifti", "chaos wide"))
    d_given = dice(given.liver, labels >= 1)
    d_wide = dice(wide.liver, in_frame(labels >= 1, 1.5, False))
    assert d_given > 0.93 and abs(d_wide - d_given) < 0.005, (d_given, d_wide)
    notes = [w for w in wide.warnings if "read it cropped to the body" in w]
    assert notes and "slices the body fills" in notes[0] and "wide field of view" in notes[0]
    assert not [w for w in given.warnings if "cropped to the body" in w]  # CT as given: 1.09 at most


def test_ct_shown_inverted_is_read_inverted_back(predictor, data_dir):
    """A CT slice exported with the viewer's invert on (air white, bone black) is segmented as the
    slice itself, with a note; read as given, the model painted 54% more liver and called the image
    mirrored. A slice in a white letterbox is no inverted CT: the letterbox is cut away."""
    hu, labels, _ = _chaos(data_dir)
    z = int(np.argmax((labels >= 1).sum(axis=(1, 2))))
    grey = render_8bit(hu[z], (-160, 240)).astype(np.uint8)
    plain = analyze(predictor, _png(grey), filename="slice.png")
    inverted = analyze(predictor, _png(255 - grey), filename="inverted.png")
    assert dice(inverted.segmentation.liver[0], plain.segmentation.liver[0]) > 0.99
    notes = [w for w in inverted.warnings if "shown inverted" in w]
    assert notes and message_label(notes[0]) == "Note"
    assert not [w for w in inverted.warnings if "mirrored" in w]
    assert not [w for w in plain.warnings if "inverted" in w]
    letterbox = np.full((grey.shape[0] + 200, grey.shape[1]), 255, np.uint8)
    letterbox[100:-100] = grey
    boxed = analyze(predictor, _png(letterbox), filename="letterbox.png")
    assert not [w for w in boxed.warnings if "inverted" in w]
    assert dice(boxed.segmentation.liver[0][100:-100], plain.segmentation.liver[0]) > 0.98


def test_a_montage_of_slices_is_split_into_them(predictor, data_dir, sample_pngs, tmp_path):
    """Several CT slices laid side by side in one image (a viewer's key-image layout) were read as
    one picture (2 x 2 CHAOS slices: liver Dice 0.50); each is now cut out and segmented as the
    slice alone, measured as a separate image, compared tile by tile with a reference of the whole
    image, and written as a label PNG per tile. One slice, the shipped samples and a slice beside a
    blank tile are no montage; a montage inside a zip of separate images is warned of."""
    from hepatoscan.pipeline import write_outputs
    from hepatoscan.preprocessing import montage_grid

    hu, labels, _ = _chaos(data_dir)
    zs = np.nonzero((labels >= 1).sum(axis=(1, 2)) > 3000)[0]
    zs = zs[::max(1, len(zs) // 6)][:6]
    tiles = [render_8bit(hu[z], (-160, 240)).astype(np.uint8) for z in zs]
    assert montage_grid(np.block([[tiles[0], tiles[1]]])) == (1, 2)
    assert montage_grid(np.block([tiles[:3], tiles[3:6]])) == (2, 3)
    assert montage_grid(tiles[0]) is None
    assert montage_grid(np.block([[tiles[0], np.zeros_like(tiles[0])]])) is None
    for path, _ in sample_pngs:
        assert montage_grid(np.asarray(Image.open(path).convert("L"))) is None, path.name
    reference = tmp_path / "montage_labels.png"
    Image.fromarray(np.block([[labels[zs[0]], labels[zs[1]]], [labels[zs[2]], labels[zs[3]]]])).save(reference)
    four = analyze(predictor, _png(np.block([tiles[:2], tiles[2:4]])), filename="montage.png", reference=reference)
    seg = four.segmentation
    assert seg.liver.shape == (4, *tiles[0].shape) and seg.separate_images and four.measurements.volume is None
    alone = [analyze(predictor, _png(tiles[k]), filename="slice.png").segmentation.liver[0] for k in range(4)]
    for k in range(4):
        assert dice(seg.liver[k], alone[k]) > 0.99, k
    pooled = dice(seg.liver, labels[zs[:4]] >= 1)
    assert pooled > 0.85, pooled
    assert four.agreement is not None and abs(four.agreement.liver.dice - pooled) < 1e-3
    notes = [w for w in four.warnings if "side by side" in w]
    assert notes and "4 CT slices side by side (2 x 2" in notes[0] and message_label(notes[0]) == "Note"
    assert four.slice_name(1) == "Image 1 (montage_r1c2.png)"
    masks = write_outputs(four, tmp_path / "out")["slice_masks"]
    assert sorted(p.name for p in masks.iterdir()) == [f"montage_r{i}c{j}.png" for i in (1, 2) for j in (1, 2)]
    assert np.array_equal(np.asarray(Image.open(masks / "montage_r2c1.png")) >= 1, seg.liver[2])
    one = analyze(predictor, _png(tiles[0]), filename="slice.png")
    assert one.scan.n_slices == 1 and not [w for w in one.warnings if "side by side" in w]
    # A print layout's patient line across the top: the grid is found below it (where the bar ends
    # is guessed, a few pixels off) and scores as the plain montage does; a single slice under such a
    # bar is no montage.
    bar = Image.new("L", (2 * tiles[0].shape[1], 40))
    ImageDraw.Draw(bar).text((10, 12), "PATIENT^NAME  ID 12345  CT ABDOMEN", fill=255)
    printed = analyze(predictor, _png(np.vstack([np.asarray(bar), np.block([tiles[:2], tiles[2:4]])])), filename="print.png")
    assert printed.scan.n_slices == 4
    h, w = tiles[0].shape
    found, expert = np.zeros((4, 40 + 2 * h, 2 * w), bool), np.zeros((4, 40 + 2 * h, 2 * w), bool)
    for k, (y0, y1, x0, x1) in enumerate(printed.scan.metadata["montage"][0]["tiles_yyxx"]):
        found[k, y0:y1, x0:x1] = printed.segmentation.liver[k]
        expert[k, 40 + (k // 2) * h:40 + (k // 2 + 1) * h, (k % 2) * w:(k % 2 + 1) * w] = labels[zs[k]] >= 1
    assert dice(found, expert) > pooled - 0.01, (dice(found, expert), pooled)
    barred = np.vstack([np.asarray(bar)[:, :w], tiles[0]])
    assert analyze(predictor, _png(barred), filename="barred.png").scan.n_slices == 1
    # Among other images (a zip of key-image pages): each montage is split, the other images kept
    # whole, a reference of the zip's images compared tile by tile, a label PNG written per tile.
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as zf:
        zf.writestr("key/page1.png", _png(np.block([[tiles[0], tiles[1]]])))
        zf.writestr("key/page2.png", _png(tiles[4][::2, ::2]))
    with zipfile.ZipFile(tmp_path / "labels.zip", "w") as zf:
        zf.writestr("key/page1.png", _png(np.block([[labels[zs[0]], labels[zs[1]]]])))
        zf.writestr("key/page2.png", _png(labels[zs[4]][::2, ::2]))
    mixed = analyze(predictor, tmp_path / "images.zip", reference=tmp_path / "labels.zip")
    assert mixed.scan.metadata["slice_files"] == ["key/page1_r1c1.png", "key/page1_r1c2.png", "key/page2.png"]
    assert [mixed.scan.image_size(k) for k in range(3)] == [tiles[0].shape] * 2 + [tiles[4][::2, ::2].shape]
    small = analyze(predictor, _png(tiles[4][::2, ::2]), filename="small.png").segmentation.liver[0]
    h, w = small.shape
    for k, alone_k in enumerate([alone[0], alone[1]]):
        assert dice(mixed.segmentation.liver[k], alone_k) > 0.99, k
    assert dice(mixed.segmentation.liver[2][:h, :w], small) > 0.99
    expert = [labels[zs[0]] >= 1, labels[zs[1]] >= 1, labels[zs[4]][::2, ::2] >= 1]
    found = [mixed.segmentation.liver[0], mixed.segmentation.liver[1], mixed.segmentation.liver[2][:h, :w]]
    pooled_mixed = dice(np.concatenate([f.ravel() for f in found]), np.concatenate([e.ravel() for e in expert]))
    assert mixed.agreement is not None and abs(mixed.agreement.liver.dice - pooled_mixed) < 1e-3
    notes = [w for w in mixed.warnings if "side by side" in w]
    assert len(notes) == 1 and notes[0].startswith("1 of the 2 images holds several CT slices side by side")
    assert "key/page1.png: 1 x 2" in notes[0] and message_label(notes[0]) == "Note"
    masks = write_outputs(mixed, tmp_path / "mixed")["slice_masks"]
    assert sorted(p.name for p in masks.iterdir()) == ["page1_r1c1.png", "page1_r1c2.png", "page2.png"]
    assert np.asarray(Image.open(masks / "page2.png")).shape == (h, w)


def test_a_viewer_layout_of_unlike_views_is_warned_of(predictor, data_dir):
    """A viewer's 2 x 2 layout (axial, coronal, sagittal and another axial view of CHAOS, grey lines
    between the viewports) is no montage, since its views are unlike; it was read as one picture
    with no word. Now the user is told to crop the axial viewport. A 1 x 2 layout (axial beside
    coronal) is found too; no real 8-bit slice, nor a slice cut in two, is taken for one."""
    from hepatoscan.preprocessing import montage_grid, viewport_grid

    hu, labels, spacing = _chaos(data_dir)
    z = int(np.argmax((labels >= 1).sum(axis=(1, 2))))
    y, x = int(np.argmax((labels >= 1).sum(axis=(0, 2)))), int(np.argmax((labels >= 1).sum(axis=(0, 1))))
    axial = render_8bit(hu[z], (-160, 240)).astype(np.uint8)
    stretch = spacing[0] / spacing[1]

    def framed(plane: np.ndarray) -> np.ndarray:  # a coronal or sagittal view, letterboxed in a square viewport
        view = np.asarray(Image.fromarray(render_8bit(plane[::-1], (-160, 240)).astype(np.uint8)).resize(
            (512, int(plane.shape[0] * stretch))))
        out = np.zeros((512, 512), np.uint8)
        top = (512 - view.shape[0]) // 2
        out[top:top + view.shape[0]] = view
        return out

    layout = np.block([[axial, framed(hu[:, y, :])], [framed(hu[:, :, x]), render_8bit(hu[z - 10], (-160, 240)).astype(np.uint8)]])
    layout[510:514, :] = 90
    layout[:, 510:514] = 90
    assert montage_grid(layout.astype(np.float32)) is None and viewport_grid(layout.astype(np.float32)) == (2, 2)
    result = analyze(predictor, _png(layout), filename="layout.png")
    warned = [w for w in result.warnings if "viewer's layout of 4 viewports (2 x 2)" in w]
    assert warned and "crop or export the axial viewport" in warned[0] and message_label(warned[0]) == "Warning"
    assert viewport_grid(np.block([[axial, framed(hu[:, y, :])]]).astype(np.float32)) == (1, 2)
    assert viewport_grid(axial.astype(np.float32)) is None
    plain = analyze(predictor, _png(axial), filename="axial.png")
    assert not [w for w in plain.warnings if "viewports" in w]
    for path in sorted((data_dir / "slices").glob("*/images/*.png")):
        assert viewport_grid(np.asarray(Image.open(path).convert("L"), np.float32)) is None, path.name


def test_a_long_stack_is_checked_for_montages_by_a_sample(data_dir):
    """A stack of up to 32 images of one size is checked image by image; a longer one (a series'
    slices) by its first, middle and last image, and image by image only where one of them holds a
    montage (a series exported as montage pages): a check of ~4 ms an image is not spent on every
    slice of a series. A montage the sample misses is left to the predictor's warning."""
    from hepatoscan.montage import find_montages, split_if_montage
    from hepatoscan.scan import Scan

    hu, labels, _ = _chaos(data_dir)
    zs = np.nonzero((labels >= 1).sum(axis=(1, 2)) > 3000)[0]
    slices = [render_8bit(hu[z], (-160, 240)).astype(np.uint8)[::2, ::2] for z in zs]
    slices = [slices[k % len(slices)] for k in range(41)]
    pages = [np.block([[slices[k], slices[k + 1]]]) for k in range(40)]

    def one(images):
        return Scan(np.stack(images), False, None, "png-stack", "stack",
                    {"slice_files": [f"p{k:02d}.png" for k in range(len(images))]})

    found, all_checked = find_montages(one(pages))
    assert sorted(found) == list(range(40)) and all_checked and {m.grid for m in found.values()} == {(1, 2)}
    split_stack, split = split_if_montage(one(pages))
    assert split_stack.n_slices == 80 and split_stack.metadata["slice_files"][:2] == ["p00_r1c1.png", "p00_r1c2.png"]
    assert np.array_equal(split_stack.pixels[3], slices[2])
    series = [np.pad(s, ((0, 0), (0, s.shape[1]))) for s in slices[:40]]  # one size, as the pages
    series[7] = pages[7]
    found, all_checked = find_montages(one(series[:32]))
    assert list(found) == [7] and found[7].grid == (1, 2) and all_checked
    assert find_montages(one(series)) == ({}, False)  # images 0, 20 and 39 checked
    plain, none = split_if_montage(one(series))
    assert none is None and "montage" not in plain.metadata  # the predictor checks, where separate


def test_exports_whose_fat_is_black_are_cropped_without_a_note(predictor, data_dir):
    """Exports with a narrow window (the MSD slices: 0 to 255 HU) show fat black, so the body found
    is what lies inside the fat and reads as filling little of the frame; they are cropped, but the
    note, which speaks of a margin, is not given (62 of the 639 real 8-bit slices read at 1.25x or
    more so)."""
    from hepatoscan.preprocessing import body_box, estimate_display_window
    from hepatoscan.quality import body_zoom

    zoomed = []
    for path in sorted((data_dir / "slices" / "msd_task03" / "images").glob("*.png")):
        g = np.asarray(Image.open(path).convert("L"), np.float32)
        box = body_box(g, False, predictor.card.input_spec.body_fill, estimate_display_window(g))
        if box is not None and body_zoom((0, g.shape[0], 0, g.shape[1]), box) >= QualityConfig().zoom_note_min:
            zoomed.append(path)
        if len(zoomed) == 5:
            break
    assert len(zoomed) == 5
    for path in zoomed:
        assert not [w for w in analyze(predictor, path).warnings if "cropped to the body" in w], path.name
