"""Stacks of 8-bit slices (one series exported as PNG/JPEG files, in a .zip or a folder): loading
in name order, one window shared by the slices, and per-file masks from the CLI."""
from __future__ import annotations

import csv
import io
import json
import random
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, dice
from hepatoscan.errors import InputError
from hepatoscan.io import load_scan
from hepatoscan.preprocessing import WindowEstimate, render_8bit, share_stack_window
from training.augment import soften

W400 = (-160.0, 240.0)


def _png(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return buf.getvalue()


def _renders(hu: np.ndarray, window=W400, blur_px: float = 0.0) -> np.ndarray:
    """(Z, H, W) HU -> (Z, H, W) uint8 exports, as a viewer writes a series' slices."""
    return np.stack([render_8bit(soften(s, blur_px, 1.0) if blur_px else s, window) for s in hu])


def _zip(files: dict[str, bytes]) -> bytes:
    names = list(files)
    random.Random(0).shuffle(names)  # an archive's entry order is not the slice order
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, files[name])
    return buf.getvalue()


def test_zip_of_pngs_is_one_stack_in_natural_name_order(sample_volume):
    _, hu, _ = sample_volume
    grey = _renders(hu[40:52])
    files = {f"series/slice_{k + 1}.png": _png(g) for k, g in enumerate(grey)}  # slice_2 before slice_10
    files["series/README.txt"] = b"exported by a viewer"
    scan = load_scan(_zip(files), "study.zip")
    assert scan.pixels.shape == grey.shape and not scan.is_hu and scan.spacing_mm is None
    assert scan.pixels.dtype == np.uint8 and np.array_equal(scan.pixels, grey)  # a quarter of float32
    assert scan.source_format == "png-stack" and scan.name == "study"
    assert scan.metadata["slice_files"] == [f"series/slice_{k + 1}.png" for k in range(12)]
    assert any("1 file that is not an image was ignored" in w for w in scan.warnings)


def test_folder_of_pngs_is_one_stack(tmp_path, sample_volume):
    _, hu, _ = sample_volume
    grey = _renders(hu[60:64])
    for k, g in enumerate(grey):
        (tmp_path / f"img{k:03d}.png").write_bytes(_png(g))
    scan = load_scan(tmp_path)
    assert np.array_equal(scan.pixels, grey.astype(np.float32)) and scan.source_format == "png-stack"


def test_stack_with_a_16_bit_slice_is_held_as_float(sample_volume):
    _, hu, _ = sample_volume
    grey = _renders(hu[60:63])
    wide = Image.fromarray((hu[62].astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16))  # 12-bit values
    buf = io.BytesIO()
    wide.save(buf, format="PNG")
    scan = load_scan(_zip({"s1.png": _png(grey[0]), "s2.png": _png(grey[1]), "s3.png": buf.getvalue()}), "mix.zip")
    assert scan.pixels.dtype == np.float32 and np.array_equal(scan.pixels[:2], grey[:2].astype(np.float32))
    assert 0 <= scan.pixels[2].min() and scan.pixels[2].max() <= 255 and scan.pixels[2].max() > 250


def test_a_zip_of_16_bit_slices_of_ct_numbers_segments_as_the_nifti_does(predictor, sample_volume):
    """One series saved as 16-bit PNG slices of HU + 1024 (CT's stored values) is read as HU, so
    it takes the model's window, not a window estimate from stretched grey levels: the same masks
    as the NIfTI (read as display grey, LiTS 117's tumor Dice fell from 0.677 to 0.609)."""
    path, hu, _ = sample_volume
    files = {f"IM{k + 1}.png": _png((np.maximum(s, -1024).astype(np.int32) + 1024).astype(np.uint16))
             for k, s in enumerate(hu)}
    scan = load_scan(_zip(files), "series.zip")
    assert scan.is_hu and scan.source_format == "png-stack"
    assert np.array_equal(scan.pixels, np.maximum(hu, -1024).astype(np.float32))  # what HU + 1024 in uint16 holds
    assert scan.pixels.dtype == np.int16  # as NIfTI and DICOM volumes: half of float32
    assert sum("read as HU + 1024" in w for w in scan.warnings) == 1
    as_png, as_nifti = predictor.segment(scan), predictor.segment(load_scan(path))
    assert as_png.window_estimates == [None] * len(hu)
    assert dice(as_png.liver, as_nifti.liver) > 0.999 and dice(as_png.tumor, as_nifti.tumor) > 0.99


def test_images_of_different_sizes_are_read_as_separate_images():
    """Each image lies at the top left of a canvas of the largest height and width, black around
    it, and keeps its own size; the loader says they are separate images."""
    a, b = np.full((64, 64), 90, np.uint8), np.full((48, 80), 120, np.uint8)
    a[10:30, 10:30] = b[10:30, 10:30] = 200
    scan = load_scan(_zip({"a1.png": _png(a), "a2.png": _png(b)}), "mixed.zip")
    assert scan.pixels.shape == (2, 64, 80) and scan.sizes_differ
    assert scan.image_size(0) == (64, 64) and scan.image_size(1) == (48, 80)
    assert np.array_equal(scan.pixels[0, :64, :64], a) and not scan.pixels[0, :, 64:].any()
    assert np.array_equal(scan.pixels[1, :48], b) and not scan.pixels[1, 48:].any()
    assert any(w.startswith("The 2 images differ in size (80 x 48 to 64 x 64 px), so they are separate images")
               for w in scan.warnings)
    same = load_scan(_zip({"a1.png": _png(a), "a3.png": _png(a)}), "same.zip")
    assert not same.sizes_differ and same.image_size(1) == (64, 64) and "image_sizes" not in same.metadata
    buf = io.BytesIO()  # a multi-page TIFF whose pages differ in size: the same
    Image.fromarray(a).save(buf, format="TIFF", save_all=True, append_images=[Image.fromarray(b)])
    pages = load_scan(buf.getvalue(), "pages.tif")
    assert pages.sizes_differ and pages.image_size(1) == (48, 80) and pages.spacing_mm is None


def test_a_canvas_too_large_for_the_limits_is_refused_with_the_fix():
    """One large image among small ones makes every image its size on the canvas: bounded by
    LoadLimits.max_voxels, as any input is."""
    from hepatoscan.config import LoadLimits
    from hepatoscan.errors import InputTooLargeError

    small, large = np.full((64, 64), 90, np.uint8), np.full((64, 640), 90, np.uint8)
    small[10:30, 10:30] = large[10:30, 10:30] = 200
    images = {f"a{k}.png": _png(small) for k in range(9)} | {"wide.png": _png(large)}
    limits = LoadLimits(max_voxels=10 * 64 * 640 - 1)
    with pytest.raises(InputTooLargeError, match="differ in size, and 10 of them on one canvas of 640 x 64 pixels "
                                                 r"\(the largest, such as wide.png\) would take 409,600") as info:
        load_scan(_zip(images), "shots.zip", limits)
    assert "Segment the largest images on their own" in str(info.value)
    assert load_scan(_zip(images), "shots.zip", LoadLimits(max_voxels=10 * 64 * 640)).pixels.shape == (10, 64, 640)
    with pytest.raises(InputTooLargeError, match="9 images of 64 x 64 pixels, 36,864 in all"):
        load_scan(_zip({k: v for k, v in images.items() if k != "wide.png"}), "same.zip", LoadLimits(max_voxels=4096))


def test_images_of_different_sizes_are_each_segmented_and_shown_as_alone(predictor, tmp_path):
    """Three sample exports at three sizes (one not square) in one zip, with their expert masks:
    each image's masks, views and label PNG are what it gets alone, at its own size; the comparison
    pairs each mask with its image."""
    from hepatoscan.pipeline import analyze, write_outputs

    sizes = {"lits117_z064_w350": None, "lits117_z080_w350": (300, 260), "lits117_z040_w400": (256, 256)}
    images, masks = {}, {}
    for stem, size in sizes.items():
        img, mask = Image.open(SAMPLES / f"{stem}.png"), Image.open(SAMPLES / f"{stem}_mask.png")
        if size:
            img, mask = img.resize(size, Image.BILINEAR), mask.resize(size, Image.NEAREST)
        images[f"{stem}.png"], masks[f"{stem}_mask.png"] = _png(np.asarray(img)), _png(np.asarray(mask))
    (tmp_path / "masks.zip").write_bytes(_zip(masks))
    result = analyze(predictor, _zip(images), "mixed.zip", reference=tmp_path / "masks.zip")
    seg = result.segmentation
    assert seg.separate_images and result.summary()["separate_images"]
    for k, name in enumerate(result.scan.metadata["slice_files"]):  # in file-name order
        alone = analyze(predictor, images[name], name).segmentation
        h, w = result.scan.image_size(k)
        assert (h, w) == alone.liver.shape[1:], name
        assert np.array_equal(seg.liver[k, :h, :w], alone.liver[0]) and not seg.liver[k].sum() - seg.liver[k, :h, :w].sum()
        assert np.array_equal(seg.tumor[k, :h, :w], alone.tumor[0]), name
        assert result.views(k)["overlay"].shape == (h, w, 3), name
    assert not [w for w in result.warnings if "uniform surround" in w or "consecutive slices" in w]
    assert result.agreement.liver_dice > 0.85
    out = write_outputs(result, tmp_path / "out", pdf=True)
    assert {p.name: Image.open(p).size for p in (tmp_path / "out" / "masks").iterdir()} == {
        "lits117_z064_w350.png": (128, 128), "lits117_z080_w350.png": (300, 260), "lits117_z040_w400.png": (256, 256)}
    assert out


def _est(width: float, level: float = 40.0, method: str = "fat peak + soft-tissue median") -> WindowEstimate:
    return WindowEstimate(level - width / 2, level + width / 2, method)


def test_share_stack_window_replaces_only_the_slices_read_far_off():
    flat = _est(400, method="none: flat image")
    ests = [_est(400), _est(380), _est(420, 50), _est(1400, 0), _est(230), None, flat, _est(560)]
    out = share_stack_window(ests)
    # Medians of the six readable slices: lo -160 (of -160, -150, -160, -700, -75, -240),
    # hi 250 (of 240, 230, 260, 700, 155, 320): W410/L45.
    assert out[3].stack_median and (out[3].lo_hu, out[3].hi_hu) == (-160.0, 250.0)
    assert "1400" in out[3].method
    assert out[4].stack_median  # 230 is 1.78x narrower than 410
    for k in (0, 1, 2, 7):  # within 1.5x (560 / 410 = 1.37): each keeps its own reading
        assert out[k] is ests[k]
    assert out[5] is None and out[6] is flat
    few = [_est(400), _est(1600)]
    assert share_stack_window(few) == few  # two readings cannot say which is off


def test_share_stack_window_takes_the_median_of_firm_readings_over_guesses():
    """Fatty slices of a wide export: fat tops the histogram, the estimate falls back to W350 around
    the soft tissue. With 3 firm W1000 readings among 7 guesses, the median is the firm readings'."""
    guess = "soft-tissue median, W350 assumed"
    firm = [_est(1000, 0), _est(960, 0), _est(1040, 10)]
    guesses = [_est(350, 60, guess) for _ in range(7)]
    out = share_stack_window(firm + guesses)
    assert out[:3] == firm
    assert all(e.stack_median and abs(e.width_hu - 1000) < 1 and abs(e.level_hu) < 1 for e in out[3:])
    # Fewer firm readings than a quarter of the slices (2 of 10): the median of all, W350 here.
    out = share_stack_window(firm[:2] + guesses + [_est(350, 60, guess)])
    assert [e.stack_median for e in out] == [True, True] + [False] * 8
    assert all(abs(e.width_hu - 350) < 1 for e in out)
    # Fat at the black end (narrow windows) is not a firm reading either.
    clipped = [WindowEstimate(-125, 225, "fat peak + soft-tissue median", fat_clipped=True) for _ in range(3)]
    assert not any(e.firm for e in clipped) and all(e.firm for e in firm)


def test_a_blurred_stack_reads_one_window_and_segments_better_than_slice_by_slice(predictor, sample_volume):
    """Blurring smooths fat's mode away on some slices, whose own readings then go wide; a stack
    corrects them from its other slices. LiTS 117 exported at W400/L40 and blurred 1 px."""
    from hepatoscan.predictor import Predictor
    from hepatoscan.scan import Scan

    _, hu, labels = sample_volume
    grey = _renders(hu, blur_px=1.0).astype(np.float32)
    alone = Predictor(predictor.card, stack_window=False).segment(Scan(grey, False, None, "png-stack", "s"))
    stack = predictor.segment(Scan(grey, False, None, "png-stack", "s"))

    def off(seg):
        return sum(not 1 / 1.25 <= e.width_hu / 400 <= 1.25 for e in seg.window_estimates)

    assert off(alone) >= 8, off(alone)  # 1.7.2 reads 15 of 128 slices more than 1.25x off (10 more than 1.5x)
    assert off(stack) <= off(alone) // 2, (off(stack), off(alone))  # 5
    assert sum(e.stack_median for e in stack.window_estimates) >= 5  # 10
    assert "took it instead" in stack.window_summary()
    # Through the model: 1.7.2 scores liver 0.923, tumor 0.629 slice by slice; 0.934, 0.666 as a stack.
    liver_alone, liver_stack = dice(alone.liver, labels >= 1), dice(stack.liver, labels >= 1)
    assert liver_stack > liver_alone + 0.004 and liver_stack >= 0.92, (liver_alone, liver_stack)
    assert dice(stack.tumor, labels == 2) > dice(alone.tumor, labels == 2)


def test_cli_stack_folder_gives_one_study_and_a_mask_per_file(tmp_path, sample_volume):
    from test_cli import run_cli

    _, hu, labels = sample_volume
    folder = tmp_path / "export"
    folder.mkdir()
    for k in range(30, 70):
        (folder / f"IM{k}.png").write_bytes(_png(render_8bit(hu[k], (-125.0, 225.0))))
    r = run_cli(folder, "--out", tmp_path / "out", "--stack", "--pixel-spacing", "0.8", "--slice-spacing", "2.5")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["slices"] == "40"
    masks = tmp_path / "out" / "export" / "masks"
    assert sorted(p.name for p in masks.iterdir()) == sorted(f"IM{k}.png" for k in range(30, 70))
    got = np.stack([np.asarray(Image.open(masks / f"IM{k}.png")) for k in range(30, 70)])
    assert set(np.unique(got)) <= {0, 1, 2}
    assert dice(got >= 1, labels[30:70] >= 1) >= 0.9
    assert dice(got == 2, labels[30:70] == 2) > 0.4
    doc = json.loads((tmp_path / "out" / "export" / "measurements.json").read_text())
    assert [s["file"] for s in doc["measurements"]["slices"]] == [f"IM{k}.png" for k in range(30, 70)]
    voxel_ml = 0.8 * 0.8 * 2.5 / 1000
    assert rows[0]["units"] == "mL" and abs(float(rows[0]["liver"]) - (got >= 1).sum() * voxel_ml) < 0.1
    assert abs(float(rows[0]["tumor"]) - (got == 2).sum() * voxel_ml) < 0.1
    # Without --stack the same folder is 40 inputs, one at a time, with a hint.
    r = run_cli(folder, "--out", tmp_path / "one_by_one")
    rows = list(csv.DictReader((tmp_path / "one_by_one" / "summary.csv").open()))
    assert r.returncode == 0 and len(rows) == 40
    assert "look like consecutive slices of one series; add --stack" in r.stderr


def test_slice_spacing_applies_to_stacks_of_images_only(sample_volume):
    from hepatoscan.scan import Scan

    _, hu, _ = sample_volume
    stack = Scan(_renders(hu[:4]).astype(np.float32), False, None, "png-stack", "s")
    with pytest.raises(InputError, match="pixel spacing too"):
        stack.with_slice_spacing(2.5)
    assert stack.with_pixel_spacing(0.7).with_slice_spacing(2.5).spacing_mm == (2.5, 0.7, 0.7)
    with pytest.raises(InputError, match="not plausible"):
        stack.with_slice_spacing(-1)
    one = Scan(_renders(hu[:1]).astype(np.float32), False, None, "png", "one")
    assert one.with_slice_spacing(2.5).spacing_mm is None  # one image: nothing to space
    volume = Scan(hu[:4], True, (1.5, 0.7, 0.7), "nifti", "v")
    assert volume.with_slice_spacing(2.5).spacing_mm == (1.5, 0.7, 0.7)
    assert any("its own" in w or "file's own" in w for w in volume.warnings)


def test_zip_of_separate_images_is_segmented_image_by_image(predictor):
    """Four sample PNGs of different levels and windows zipped for one upload are not one series:
    each image is segmented exactly as it is on its own (its own window, 2D clean-up), with a
    warning; the sample series zip (64 consecutive slices) is one series."""
    from conftest import SAMPLES
    from hepatoscan.pipeline import analyze

    names = ["lits117_z040_w400.png", "lits117_z064_w350.png", "lits117_z080_w350.png", "lits117_z096_w1500.png"]
    stack = analyze(predictor, _zip({n: (SAMPLES / n).read_bytes() for n in names}), filename="four.zip")
    assert stack.scan.metadata["slice_files"] == names
    assert [w for w in stack.warnings if "do not look like consecutive slices" in w]
    for z, name in enumerate(names):
        alone = analyze(predictor, SAMPLES / name).segmentation
        assert stack.segmentation.window_estimates[z] == alone.window_estimates[0]
        assert np.array_equal(stack.segmentation.liver[z], alone.liver[0]), name
        assert np.array_equal(stack.segmentation.tumor[z], alone.tumor[0]), name
    series = analyze(predictor, SAMPLES / "lits117_w350_slices.zip")
    assert not [w for w in series.warnings if "consecutive" in w]


def test_separate_images_are_measured_image_by_image_without_a_volume(predictor, tmp_path):
    """Separate images in one zip get what each would get alone: its areas and 2D lesions, every
    image listed (by file); no volume, no 3D lesions; the summary counts images, the CLI's
    summary.csv says the figures are per image, the PDF lists the images."""
    from conftest import SAMPLES
    from hepatoscan.pipeline import analyze, write_outputs
    from hepatoscan.tables import lesion_rows, slice_rows

    names = ["lits117_z040_w400.png", "lits117_z064_w350.png", "lits117_z096_w1500.png"]
    stack = analyze(predictor, _zip({n: (SAMPLES / n).read_bytes() for n in names}), filename="three.zip",
                    pixel_spacing_mm=0.8)
    m = stack.measurements
    assert m.separate_images and m.volume is None
    assert [s.slice_index for s in m.slices] == [0, 1, 2]
    for z, name in enumerate(names):
        alone = analyze(predictor, SAMPLES / name, pixel_spacing_mm=0.8).measurements.slices[0]
        mine = m.slice(z)
        assert (mine.liver_area_px, mine.tumor_area_px, mine.lesion_count) == \
            (alone.liver_area_px, alone.tumor_area_px, alone.lesion_count), name
        assert [l.longest_diameter_mm for l in mine.lesions] == [l.longest_diameter_mm for l in alone.lesions]
    s = stack.summary()
    assert s["separate_images"] and "liver_volume_ml" not in s
    assert s["lesion_count"] == sum(x.lesion_count for x in m.slices) > 0
    assert s["images_with_liver"] == 3
    assert stack.describe().startswith("3 separate images")
    tumor_areas = [m.slice(z).tumor_area_px for z in range(3)]
    assert stack.default_slice == int(np.argmax(tumor_areas))
    rows = [list(r) for r in slice_rows(stack, 1)]
    assert ["Image 1: file", names[1]] in rows and not [r for r in rows if "volume" in r[0].lower()]
    assert len(lesion_rows(stack, 1)[1]) == m.slice(1).lesion_count
    doc = write_outputs(stack, tmp_path / "three", pdf=True)
    assert "liver_nifti" not in doc and sorted(p.name for p in doc["slice_masks"].iterdir()) == sorted(names)
    saved = json.loads(doc["measurements"].read_text())
    assert [x["file"] for x in saved["measurements"]["slices"]] == names
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: make test installs it (scripts/system_deps.sh)")
    text = subprocess.run(["pdftotext", "-layout", str(doc["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Lesions per image" in text and all(n in text for n in names) and "Liver volume" not in text


def test_neighbour_similarity_tells_a_series_from_separate_images(sample_volume):
    from hepatoscan.series import SERIES_MIN_SIMILARITY, neighbour_similarity, thumbnail

    _, hu, _ = sample_volume
    series = [thumbnail(g) for g in _renders(hu[30:90])]
    assert neighbour_similarity(series) >= 0.95  # 0.976
    every_3rd = series[::3]  # LiTS 117's slices are twice the original spacing: this is 6 mm or more
    assert neighbour_similarity(every_3rd) >= SERIES_MIN_SIMILARITY  # 0.880
    shuffled = [series[k] for k in random.Random(1).sample(range(60), 60)]
    assert neighbour_similarity(shuffled) < SERIES_MIN_SIMILARITY  # 0.560
    assert neighbour_similarity(series[:1]) is None


def test_cli_hints_at_stack_only_for_a_folder_that_looks_like_a_series(tmp_path, sample_volume):
    from conftest import SAMPLES
    from hepatoscan.cli import looks_like_a_series

    separate = [SAMPLES / n for n in ("lits117_z040_w400.png", "lits117_z064_w350.png", "lits117_z080_w350.png",
                                      "lits117_z096_w1500.png")]
    assert not looks_like_a_series(separate)
    _, hu, _ = sample_volume
    series = []
    for k in range(50, 60):
        series.append(tmp_path / f"s{k}.png")
        series[-1].write_bytes(_png(render_8bit(hu[k], W400)))
    assert looks_like_a_series(series)
    assert not looks_like_a_series(series[:2])  # too few to tell


def test_images_in_several_folders_use_the_largest_as_the_series(sample_volume):
    _, hu, _ = sample_volume
    grey = _renders(hu[40:48])
    files = {f"study/series2/IM{k}.png": _png(g) for k, g in enumerate(grey[:5])}
    files.update({f"study/series3/IM{k}.png": _png(g) for k, g in enumerate(grey[5:])})
    scan = load_scan(_zip(files), "study.zip")
    assert scan.n_slices == 5 and np.array_equal(scan.pixels, grey[:5])
    assert any("2 folders" in w and "series2" in w for w in scan.warnings)


def test_a_bad_image_in_a_stack_names_the_archive_and_the_file(sample_volume):
    _, hu, _ = sample_volume
    good = _png(_renders(hu[50:51])[0])
    with pytest.raises(InputError, match=r"cut\.zip: IM2\.png: the image is truncated or corrupt"):
        load_scan(_zip({"IM1.png": good, "IM2.png": good[:300], "IM3.png": good}), "cut.zip")


def test_share_stack_window_gives_guessed_slices_the_firm_median_even_when_near():
    """Where firm readings are the pool, a slice whose fat lay at the black end (or had no fat) takes
    their median even when its own width is near it (a JPEG's ringing at black taken for fat's
    clipped tail: W300 in a W400 export); where they are too few, such a slice keeps its own."""
    firm = [_est(400, 40), _est(390, 40), _est(410, 45), _est(400, 35)]
    clipped = WindowEstimate(-110, 190, "fat peak + soft-tissue median", fat_clipped=True)  # W300, 1.33x off
    out = share_stack_window(firm + [clipped, clipped])
    assert out[:4] == firm
    assert all(e.stack_median and abs(e.width_hu - 400) <= 5 for e in out[4:])
    few = share_stack_window([firm[0]] + [clipped] * 5)  # 1 firm of 6: the pool is every reading
    assert few[1:] == [clipped] * 5


def _tiff_pages(frames: list[np.ndarray], description: str | None = None, pixel_mm: tuple | None = None) -> bytes:
    """One multi-page TIFF of the frames, with ImageJ's description and resolution tags if given."""
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    if description is not None:
        info[270] = description
    if pixel_mm is not None:
        info[283], info[282] = 1 / pixel_mm[0], 1 / pixel_mm[1]  # pixels per unit, y then x
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="TIFF", save_all=True, append_images=images[1:], tiffinfo=info)
    return buf.getvalue()


def test_an_imagej_tiff_stack_of_ct_numbers_segments_as_the_nifti_does(predictor, sample_volume):
    """LiTS 117 saved as Fiji saves a signed 16-bit stack (HU + 32768), with its voxel size in
    ImageJ's description and resolution tags: one volume of CT numbers with that spacing, and the
    masks and millilitres of the same HU with that spacing (post-processing works in mm)."""
    from hepatoscan.pipeline import analyze
    from hepatoscan.scan import Scan

    _, hu, _ = sample_volume
    z, y, x = 2.5, 0.7, 0.8
    expected = predictor.segment(Scan(hu, True, (z, y, x), "nifti", "case117"))
    frames = [(s.astype(np.int32) + 32768).astype(np.uint16) for s in hu]
    data = _tiff_pages(frames, f"ImageJ=1.54f\nimages={len(frames)}\nslices={len(frames)}\nunit=mm\nspacing={z}\n",
                       (y, x))
    scan = load_scan(data, "case117.tif")
    assert scan.is_hu and scan.source_format == "tiff-stack" and scan.spacing_mm == pytest.approx((z, y, x))
    assert scan.pixels.dtype == np.int16 and np.array_equal(scan.pixels, hu)
    assert scan.metadata["slice_files"][:2] == ["case117_p0001.tif", "case117_p0002.tif"]
    tiff = analyze(predictor, data, filename="case117.tif")
    assert np.array_equal(tiff.segmentation.liver, expected.liver)
    assert np.array_equal(tiff.segmentation.tumor, expected.tumor)
    voxel_ml = z * y * x / 1000
    assert tiff.summary()["liver_volume_ml"] == pytest.approx(expected.liver.sum() * voxel_ml, rel=1e-3)


def test_an_8_bit_tiff_stack_reads_as_one_series_of_display_slices(predictor, sample_volume):
    """A multi-page TIFF of W350/L50 exports without ImageJ's tags: display grey, one window for the
    series, no spacing, the same masks as the same slices in a zip of PNGs."""
    _, hu, labels = sample_volume
    frames = list(_renders(hu, (-125.0, 225.0)))
    scan = load_scan(_tiff_pages(frames), "series.tiff")
    assert not scan.is_hu and scan.spacing_mm is None and scan.pixels.dtype == np.uint8
    zipped = load_scan(_zip({f"IM{k:03d}.png": _png(f) for k, f in enumerate(frames)}), "series.zip")
    assert np.array_equal(scan.pixels, zipped.pixels)
    a, b = predictor.segment(scan), predictor.segment(zipped)
    assert np.array_equal(a.liver, b.liver) and dice(a.liver, labels >= 1) > 0.92


def test_imagej_spacing_is_read_only_where_its_unit_is_a_length_plausible_for_ct():
    from hepatoscan.io.tiff import imagej_spacing_mm

    frames = [np.full((40, 40), v, np.uint8) for v in (10, 200)]
    assert imagej_spacing_mm(_tiff_pages(frames, "ImageJ=1.54f\nunit=cm\nspacing=0.25\n", (0.07, 0.08))) == \
        pytest.approx((2.5, 0.7, 0.8))
    assert imagej_spacing_mm(_tiff_pages(frames, "ImageJ=1.54f\nunit=mm\n", (0.7, 0.7))) == pytest.approx((None, 0.7, 0.7))
    assert imagej_spacing_mm(_tiff_pages(frames, "ImageJ=1.54f\nunit=pixel\n", (1, 1))) is None
    assert imagej_spacing_mm(_tiff_pages(frames, "made by a scanner", (0.7, 0.7))) is None  # 72 dpi tags are no pixel size
    assert imagej_spacing_mm(_tiff_pages(frames)) is None
    ct = [np.pad(np.full((60, 60), v, np.uint8), 20) for v in (120, 140)]  # a microscope's stack: far too fine for CT
    scan = load_scan(_tiff_pages(ct, "ImageJ=1.54f\nunit=micron\nspacing=1\n", (0.3, 0.3)), "cells.tif")
    assert scan.spacing_mm is None and [w for w in scan.warnings if "not plausible for CT" in w]


def test_an_animation_reads_as_one_series_of_display_slices(predictor, sample_volume):
    """A scroll through a series saved as an animated GIF (a viewer's cine loop, shared in a message),
    animated WebP or animated PNG: its frames are read as one series' slices in frame order, with a
    note, and segment as the same slices in a zip of PNGs do (GIF and PNG keep every grey level; a
    lossy WebP is read as a JPEG is). One played forth and back keeps its first half. A still GIF is
    one image; an animation among other images is refused (tests/test_io.py)."""
    from hepatoscan.pipeline import analyze

    _, hu, labels = sample_volume
    frames = list(_renders(hu, (-125.0, 225.0)))[20:60]
    images = [Image.fromarray(f) for f in frames]
    zipped = load_scan(_zip({f"IM{k:03d}.png": _png(f) for k, f in enumerate(frames)}), "series.zip")
    expected = predictor.segment(zipped)
    for fmt, name, source in (("GIF", "scroll.gif", "gif-stack"), ("PNG", "scroll.png", "png-stack"),
                              ("WEBP", "scroll.webp", "webp-lossy-stack")):
        buf = io.BytesIO()
        images[0].save(buf, format=fmt, save_all=True, append_images=images[1:], duration=50, loop=0,
                       **({"quality": 90} if fmt == "WEBP" else {}))
        result = analyze(predictor, buf.getvalue(), filename=name)
        scan = result.scan
        assert scan.n_slices == len(frames) and scan.source_format == source and scan.spacing_mm is None, fmt
        assert scan.metadata["slice_files"][:2] == ["scroll_f0001.png", "scroll_f0002.png"]
        assert [w for w in result.warnings if f"{len(frames)} frames" in w and "in frame order" in w]
        if fmt != "WEBP":
            assert np.array_equal(scan.pixels, zipped.pixels), fmt
            assert np.array_equal(result.segmentation.liver, expected.liver), fmt
        assert dice(result.segmentation.liver, labels[20:60] >= 1) > 0.9, fmt
    buf = io.BytesIO()  # played forth and back: the first half is the series
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:] + images[-2::-1], duration=50)
    looped = load_scan(buf.getvalue(), "loop.gif")
    assert np.array_equal(looped.pixels, zipped.pixels) and [w for w in looped.warnings if "forth and back" in w]
    buf = io.BytesIO()
    images[20].save(buf, format="GIF")
    still = analyze(predictor, buf.getvalue(), filename="slice.gif")
    assert still.scan.n_slices == 1 and still.scan.source_format == "gif"
    assert np.array_equal(still.scan.pixels[0], zipped.pixels[20])
