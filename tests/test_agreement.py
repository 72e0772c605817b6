"""Comparison with a reference segmentation: the metrics on masks of known overlap, the reference
readers (label conventions, orientation, stacks, wrong files), and the whole path on the LiTS 117
sample with its expert masks (library, CLI and PDF)."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SAMPLES
from hepatoscan.agreement import Overlap, compare, dice, lesion_detection, overlap
from hepatoscan.errors import InputError
from hepatoscan.io import load_scan
from hepatoscan.io.reference import label_values, parse_label_values, read_reference

PNG = SAMPLES / "lits117_z080_w350.png"
PNG_MASK = SAMPLES / "lits117_z080_w350_mask.png"
VOLUME = SAMPLES / "lits117_volume.nii.gz"
SEGMENTATION = SAMPLES / "lits117_segmentation.nii.gz"


def disc(shape, centre, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_dice_and_overlap_of_squares_of_known_overlap():
    a = np.zeros((2, 20, 20), np.uint8)
    b = np.zeros_like(a)
    a[0, 0:10, 0:10] = 1  # 100 voxels
    b[0, 5:15, 0:10] = 1  # 100 voxels, 50 shared
    assert overlap(a, b) == Overlap(100, 100, 50)
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0 and dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) is None  # undefined, not 1 or 0
    assert (Overlap(100, 100, 50) + Overlap(10, 30, 10)).dice == pytest.approx(2 * 60 / 240)
    assert Overlap(100, 100, 50).volume_overlap_error == pytest.approx(1 - 50 / 150)
    assert Overlap(100, 120, 90).relative_volume_difference == pytest.approx(0.2)
    assert Overlap(0, 0, 0).volume_overlap_error is None and Overlap(0, 5, 0).relative_volume_difference is None
    with pytest.raises(ValueError):
        overlap(a, b[:, :10])


def test_lesion_detection_counts_found_missed_and_false_lesions():
    shape = (60, 60)
    ref = disc(shape, (15, 15), 6) | disc(shape, (45, 45), 3)  # a 13 px lesion and a 7 px one
    ours = disc(shape, (16, 15), 6) | disc(shape, (15, 45), 4)  # finds the first; one false lesion
    d = lesion_detection(ref, ours, (1.0, 1.0))
    assert (d.reference_lesions, d.hepatoscan_lesions, d.detected, d.matched) == (2, 2, 1, 1)
    assert d.recall == 0.5 and d.precision == 0.5
    assert (d.reference_lesions_10mm, d.detected_10mm) == (1, 1)  # only the 13 mm lesion is >= 10 mm
    assert lesion_detection(ref, ours, (0.5, 0.5)).reference_lesions_10mm == 0  # 6.5 mm at 0.5 mm pixels
    assert lesion_detection(ref, ours, None).reference_lesions_10mm is None  # size unknown: not counted
    # A lesion that touches a reference lesion but overlaps it by less than Dice 0.5 does not find it.
    shifted = disc(shape, (15, 24), 6)
    assert lesion_detection(ref, shifted, (1.0, 1.0)).detected == 0
    # One lesion of ours spanning two reference lesions finds at most the one it matches well.
    both = lesion_detection(disc(shape, (20, 20), 8) | disc(shape, (20, 31), 2), disc(shape, (20, 21), 9), None)
    assert (both.detected, both.matched) == (1, 1)


def test_separate_images_count_their_lesions_image_by_image():
    """Two unrelated images with a lesion at the same place: one 3D lesion if they were slices of a
    series, two lesions as separate images (each found), and areas, not volumes."""
    liver = np.zeros((2, 40, 40), np.uint8)
    liver[:, 5:35, 5:35] = 1
    tumor = np.zeros_like(liver)
    tumor[:, 10:16, 10:16] = 1
    reference = liver + tumor
    assert compare(liver, tumor, reference, (None, 1.0, 1.0), "r").lesions.reference_lesions == 1
    apart = compare(liver, tumor, reference, (None, 1.0, 1.0), "r", separate_images=True)
    assert (apart.lesions.reference_lesions, apart.lesions.detected, apart.lesions.matched) == (2, 2, 2)
    d = lesion_detection(tumor[0] > 0, np.roll(tumor[0], 3, axis=1) > 0, None)
    assert d.describe_lesion(1) == "overlaps (Dice 0.50)"  # 18 of 36 pixels shared: not above 0.5
    # Two of HepatoScan's lesions each above 0.5 with one reference lesion: LiTS counts the better one.
    ref = np.zeros((1, 30, 60), bool)
    ref[0, 5:25, 5:45] = True  # 800 pixels
    ours = np.zeros_like(ref)
    ours[0, 5:25, 5:25] = True  # 400 inside: Dice 2 * 400 / 1200 = 0.67
    ours[0, 5:25, 26:44] = True  # 360 inside: Dice 2 * 360 / 1160 = 0.62
    two = lesion_detection(ref, ours, None)
    assert (two.detected, two.matched) == (1, 1)
    assert two.describe_lesion(1) == "matches (Dice 0.67)"
    assert two.describe_lesion(2) == "overlaps (Dice 0.62; another lesion matches it better)"
    assert apart.unit == "mm²" and apart.lesions.matched_ids == ()


def test_agreement_says_undefined_tumor_dice_when_the_reference_marks_none():
    liver = np.zeros((1, 40, 40), np.uint8)
    liver[0, 5:35, 5:35] = 1
    tumor = np.zeros_like(liver)
    tumor[0, 10:14, 10:14] = 1
    reference = liver.copy()  # a liver, no tumor marked
    a = compare(liver, tumor, reference, (None, 0.8, 0.8), "ref.png")
    assert a.liver_dice == 1.0 and a.tumor_dice is None and not a.marks_tumor
    assert a.unit == "mm²" and a.size(a.liver.reference) == pytest.approx(900 * 0.64)
    assert "marks no tumor" in a.describe() and "1 lesion" in a.describe()
    assert json.loads(json.dumps(a.to_dict()))["tumor_dice"] is None


@pytest.mark.parametrize("values, expected, note", [
    ([0, 1, 2], [0, 1, 2], None),
    ([0, 255, 255], [0, 1, 1], "liver alone"),
    ([0, 128, 255], [0, 1, 2], "128 liver, 255 tumor"),
    ([0.0, 1.0, 2.0], [0, 1, 2], None),
])
def test_label_conventions_are_read_and_said(values, expected, note):
    labels, notes = label_values(np.array(values).reshape(1, 1, -1), "m.png")
    assert labels.dtype == np.uint8 and labels.ravel().tolist() == expected
    assert (note is None and not notes) or note in notes[0]


@pytest.mark.parametrize("values, words", [
    (np.arange(0, 200, 10), "20 values"),  # a smoothed or JPEG mask
    ([0.0, 0.5, 1.0], "fractional"),  # a probability map
    ([-1000, 0, 40], "not labels"),  # a CT
    ([1, 2, 3], "not 0 and up to two labels"),  # no background
])
def test_what_is_not_a_label_mask_is_refused_with_what_to_give(values, words):
    with pytest.raises(InputError, match=words) as e:
        label_values(np.array(values).reshape(1, 1, -1), "m.png")
    assert "0 background, 1 liver, 2 tumor" in str(e.value)


@pytest.mark.parametrize("text, expected", [("", None), (None, None), ("6", (6, None)), ("1, 2", (1, 2)),
                                             ("5;7", (5, 7)), (" 6 ", (6, None))])
def test_label_values_given_as_text(text, expected):
    assert parse_label_values(text) == expected


@pytest.mark.parametrize("text", ["liver", "0", "1,1", "1,2,3", "-1", "6.5"])
def test_bad_label_values_say_what_to_give(text):
    with pytest.raises(InputError, match="for example 6, or 1, 2"):
        parse_label_values(text)


def test_a_multi_organ_map_is_read_with_the_values_given(tmp_path):
    """A TotalSegmentator-style map (liver 5, tumor 7, spleen 1, kidney 2): refused as it stands,
    with what to give; read with "5, 7" it is the LiTS labels, other organs background; with "5"
    the liver alone; a liver value it does not hold is named with the values it does hold."""
    scan = load_scan(VOLUME)
    labels = read_reference(SEGMENTATION, scan).labels
    organs = np.zeros(labels.shape, np.uint8)
    organs[labels == 1], organs[labels == 2] = 5, 7
    corner = np.zeros(labels.shape, bool)
    corner[:, :10, :10] = True
    organs[corner & (labels == 0)] = 1  # other organs, outside the liver
    organs[np.roll(corner, 60, axis=2) & (labels == 0)] = 2
    img = nib.load(SEGMENTATION)
    from hepatoscan.io.nifti import from_display_axes

    nib.save(nib.Nifti1Image(np.ascontiguousarray(from_display_axes(organs)), nib.as_closest_canonical(img).affine),
             tmp_path / "organs.nii.gz")
    with pytest.raises(InputError, match="multi-organ label map.*--reference-labels 6"):
        read_reference(tmp_path / "organs.nii.gz", scan)
    ref = read_reference(tmp_path / "organs.nii.gz", scan, (5, 7))
    assert np.array_equal(ref.labels, labels) and "5 liver, 7 tumor; 2 other labels" in ref.notes[0]
    liver_only = read_reference(tmp_path / "organs.nii.gz", scan, (5, None))
    assert np.array_equal(liver_only.labels, (labels == 1).astype(np.uint8)) and "tumor not compared" in liver_only.notes[0]
    with pytest.raises(InputError, match="no voxel has the liver's value 6; its values are 0, 1, 2, 5, 7"):
        read_reference(tmp_path / "organs.nii.gz", scan, (6, None))


def test_png_reference_is_the_mask_and_wrong_files_say_what_is_wrong(tmp_path):
    scan = load_scan(PNG)
    mask = np.asarray(Image.open(PNG_MASK))
    assert np.array_equal(read_reference(PNG_MASK, scan).labels[0], mask)
    grey_rgb = tmp_path / "grey_rgb.png"  # a mask saved as RGB with equal channels
    Image.fromarray(mask * 127).convert("RGB").save(grey_rgb)
    ref = read_reference(grey_rgb, scan)
    assert np.array_equal(ref.labels[0], mask) and "127 liver, 254 tumor" in ref.notes[0]
    overlay = tmp_path / "overlay.png"
    Image.open(ROOT / "samples" / "lits117_z080_w350.png").convert("RGB").save(overlay)
    colour = np.asarray(Image.open(overlay)).copy()
    colour[mask == 1] = (40, 200, 90)
    Image.fromarray(colour).save(overlay)
    with pytest.raises(InputError, match="colour image"):
        read_reference(overlay, scan)
    with pytest.raises(InputError, match=r"Reference lits117_z080_w350.png: holds 2\d\d values"):
        read_reference(PNG, scan)  # the CT image itself
    small = tmp_path / "half.png"
    Image.fromarray(mask[::2, ::2]).save(small)
    with pytest.raises(InputError, match=r"the reference is 64 x 64 but the image is 128 x 128"):
        read_reference(small, scan)
    with pytest.raises(InputError, match=r"128 x 128 x 128 slices but the image is 128 x 128"):
        read_reference(SEGMENTATION, scan)
    dcm = tmp_path / "seg.dcm"
    dcm.write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 64)
    with pytest.raises(InputError, match="give it with that series"):
        read_reference(dcm, scan)  # a SEG goes with the DICOM series it marks, not with a PNG
    with pytest.raises(InputError, match="no such reference"):
        read_reference(tmp_path / "missing.nii.gz", scan)


def test_nifti_reference_stored_in_another_orientation_reads_aligned(tmp_path):
    """A reference saved with other axes (x flipped, here; its affine says so) is read on the CT's
    grid, as nibabel's canonical orientation puts both; a reference whose affine places it
    elsewhere is compared voxel by voxel, with a warning."""
    scan = load_scan(VOLUME)
    expected = read_reference(SEGMENTATION, scan).labels
    img = nib.load(SEGMENTATION)
    data = np.asarray(img.dataobj)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = data.shape[0] - 1
    flipped = nib.Nifti1Image(data[::-1].copy(), img.affine @ flip)
    nib.save(flipped, tmp_path / "flipped.nii.gz")
    ref = read_reference(tmp_path / "flipped.nii.gz", scan)
    assert np.array_equal(ref.labels, expected) and not ref.notes
    moved = nib.Nifti1Image(data, img.affine + np.array([[0, 0, 0, 40.0], [0] * 4, [0] * 4, [0] * 4]))
    nib.save(moved, tmp_path / "moved.nii.gz")
    assert "elsewhere" in read_reference(tmp_path / "moved.nii.gz", scan).notes[0]


def test_stack_reference_masks_are_matched_to_slices_by_name(tmp_path):
    """A .zip of one series' PNG slices with a .zip (or folder) of masks named after them, in
    another order: each slice gets its own mask; a slice without one is named."""
    from hepatoscan.preprocessing import render_8bit

    hu = load_scan(VOLUME).pixels
    labels = read_reference(SEGMENTATION, load_scan(VOLUME)).labels
    images, masks = tmp_path / "images.zip", tmp_path / "masks"
    masks.mkdir()
    zs = range(60, 70)
    with zipfile.ZipFile(images, "w") as z:
        for k in zs:
            buf = io.BytesIO()
            Image.fromarray(render_8bit(np.asarray(hu[k], np.float32), (-125, 225))).save(buf, "PNG")
            z.writestr(f"IM{k}.png", buf.getvalue())
    for k in reversed(zs):
        Image.fromarray(labels[k]).save(masks / f"IM{k}_mask.png")
    scan = load_scan(images)
    ref = read_reference(masks, scan)
    assert np.array_equal(ref.labels, labels[60:70])
    zipped = tmp_path / "masks.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for f in masks.iterdir():
            z.write(f, f"export/{f.name}")
    assert np.array_equal(read_reference(zipped, scan).labels, labels[60:70])
    (masks / "IM63_mask.png").unlink()
    with pytest.raises(InputError, match="no mask for 1 of the 10 slices.*IM63.png"):
        read_reference(masks, scan)
    with pytest.raises(InputError, match="goes with a stack of image slices; for this input give the reference as one NIfTI"):
        read_reference(masks, load_scan(VOLUME))


def test_analyze_compares_the_sample_with_its_expert_masks_as_the_model_card_scores_it(predictor, tmp_path):
    """The LiTS 117 sample against its expert segmentation gives the model card's own figures for
    that volume (training.evaluate scores with the same functions), and the PDF says so with the
    reference's outlines drawn over the overlay."""
    from hepatoscan.overlay import REFERENCE_LIVER_RGB, REFERENCE_TUMOR_RGB
    from hepatoscan.pipeline import analyze

    result = analyze(predictor, VOLUME, reference=SEGMENTATION)
    a = result.agreement
    card = json.loads((ROOT / "models" / "hepatoscan_unet_int8.json").read_text())
    lits = next(v for v in card["metrics"]["volumes"] if v["case"] == "lits_117")
    assert a.liver_dice == pytest.approx(lits["liver_dice"], abs=0.002)
    assert a.tumor_dice == pytest.approx(lits["tumor_dice"], abs=0.002)
    assert a.unit == "mL" and a.liver.reference == int((result.reference_labels >= 1).sum())
    assert a.lesions.reference_lesions == lits["lesions"]["gt_lesions"]
    assert a.lesions.reference_lesions_10mm == lits["lesions"]["gt_lesions_10mm"]
    # border distances: measured 1.74 mm mean, 7.8 mm HD95 (tests/test_surface.py checks the method);
    # the card's, in voxels (its evaluation takes LiTS 117's spacing as unknown), agree: 1 mm voxels
    s = a.liver_surface
    assert s.unit == "mm" and 1.0 < s.assd < 3.0 and s.assd < s.hd95 < 12.0 and s.hd95 <= s.maximum
    card_surface = lits["liver_surface_distance"]
    assert card_surface["unit"] == "px" and card_surface["assd"] == pytest.approx(s.assd, abs=0.05)
    assert card_surface["hd95"] == pytest.approx(s.hd95, abs=0.5)
    assert a.tumor_surface is not None and a.tumor_surface.assd > 0
    assert ("Liver border distance", "", "", s.describe()) in a.rows()
    assert f"The liver borders lie {s.assd:.1f} mm apart on average" in a.describe()
    # Each of HepatoScan's lesions says whether it matches a reference lesion, by the measurements'
    # own lesion numbers: a matching lesion overlaps the reference's tumor, and the count agrees.
    from hepatoscan.measure import lesions_by_size
    from hepatoscan.tables import REFERENCE_HEADER, lesion_rows, slice_rows

    headers, rows = lesion_rows(result, result.default_slice)
    assert headers[-1] == REFERENCE_HEADER and len(rows) == a.lesions.hepatoscan_lesions
    assert [r[0] for r in rows if r[-1].startswith("matches")] == [str(i) for i in a.lesions.matched_ids]
    assert {r[-1].split(" ")[0] for r in rows} == {"matches", "overlaps", "none"}
    for r in rows:  # Dice above 0.5 for a match, 0 < Dice <= 0.5 for an overlap
        if r[-1] != "none":
            d = float(r[-1].split("Dice ")[1].split(";")[0].rstrip(")").replace("< ", ""))
            better = "another lesion matches it better" in r[-1]  # above 0.5, but not the match LiTS counts
            assert d > 0.5 if r[-1].startswith("matches") or better else 0 < d <= 0.5  # "< 0.01" reads as 0.01
    ids, _ = lesions_by_size(result.segmentation.tumor.astype(bool))
    for lid in a.lesions.matched_ids[:5]:
        inside = ids == lid
        assert (result.reference_labels[inside] == 2).mean() > 0.5
    z = result.default_slice
    dice_rows = {r[0]: r[1] for r in slice_rows(result, z)}
    assert float(dice_rows[f"Slice {z}: liver Dice vs reference"]) == pytest.approx(
        dice(result.reference_labels[z] >= 1, result.segmentation.liver[z]), abs=5e-4)
    empty = next(k for k in range(result.scan.n_slices) if not result.segmentation.liver[k].any())
    rows = {r[0]: r[1] for r in slice_rows(result, empty)}  # no liver found here: the Dice rows still show
    assert rows[f"Slice {empty}: liver"] == "none found on this slice" and f"Slice {empty}: liver Dice vs reference" in rows
    doc = result.document()["agreement"]
    assert doc["liver_dice"] == round(a.liver_dice, 4) and doc["lesions"]["detected"] == a.lesions.detected
    assert doc["liver_surface_distance"] == s.to_dict() and doc["liver_surface_distance"]["unit"] == "mm"
    over = result.views(result.default_slice)["overlay"]
    for colour in (REFERENCE_LIVER_RGB, REFERENCE_TUMOR_RGB):
        assert (over == colour).all(-1).sum() > 50  # the reference's outlines are drawn
    assert "reference_liver_layer" in result.views(result.default_slice)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(result.report_pdf())
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Agreement with the reference segmentation" in text
    assert f"liver Dice {a.liver_dice:.3f}" in text and "outline the reference" in text
    assert "Liver border distance" in text and "95th percentile (HD95)" in text
    assert "Reference lesion" in text and text.count("matches (Dice") == sum(1 for i in a.lesions.matched_ids if i <= 40)


def run_compare(*args):
    return subprocess.run([sys.executable, "-m", "hepatoscan", "compare", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_compare_writes_agreement_per_pair_mean_and_global(tmp_path):
    r = run_compare(PNG, PNG_MASK, VOLUME, SEGMENTATION, SAMPLES / "lits117_z064_w350.png", PNG,
                    "--out", tmp_path / "out", "--pixel-spacing", 0.8)
    assert r.returncode == 1 and "Traceback" not in r.stderr  # the third pair's reference is a CT slice
    rows = list(csv.DictReader((tmp_path / "out" / "agreement.csv").open()))
    assert [row["status"] for row in rows] == ["ok", "ok", "error", "ok", "ok"]
    png, volume, bad, mean, pooled = rows
    assert float(png["liver_dice"]) >= 0.9 and png["unit"] == "mm²"
    assert float(volume["liver_dice"]) >= 0.9 and volume["unit"] == "mL" and int(volume["reference_lesions"]) > 0
    liver_dice, voe = float(volume["liver_dice"]), float(volume["liver_voe"])
    assert volume["distance_unit"] == "mm" and 1.0 < float(volume["liver_assd"]) < float(volume["liver_hd95"]) \
        <= float(volume["liver_hausdorff"])
    assert png["distance_unit"] == "mm" and float(png["tumor_assd"]) > 0  # 0.8 mm pixels, as given
    assert voe == pytest.approx(1 - liver_dice / (2 - liver_dice), abs=2e-4)  # VOE = 1 - J, J = D / (2 - D)
    assert float(volume["liver_rvd"]) == pytest.approx(
        float(volume["liver_hepatoscan"]) / float(volume["liver_reference"]) - 1, abs=1e-3)
    assert "Reference lits117_z080_w350.png: holds" in bad["message"] and "not 0 and up to two labels" in bad["message"]
    assert float(mean["liver_dice"]) == pytest.approx((float(png["liver_dice"]) + float(volume["liver_dice"])) / 2,
                                                      abs=1e-4)
    assert float(mean["liver_hd95"]) == pytest.approx((float(png["liver_hd95"]) + float(volume["liver_hd95"])) / 2,
                                                      abs=1e-3) and mean["distance_unit"] == "mm"
    assert min(float(png["liver_dice"]), float(volume["liver_dice"])) <= float(pooled["liver_dice"]) \
        <= max(float(png["liver_dice"]), float(volume["liver_dice"]))
    m = json.loads((tmp_path / "out" / "lits117_volume" / "measurements.json").read_text())
    assert m["agreement"]["liver_dice"] == float(volume["liver_dice"])
    assert "liver Dice: mean" in r.stderr
    odd = run_compare(PNG, "--out", tmp_path / "odd")
    assert odd.returncode == 2 and "give pairs" in odd.stderr
    bad = run_compare(PNG, PNG_MASK, "--out", tmp_path / "bad", "--reference-labels", "liver")
    assert bad.returncode == 2 and "--reference-labels" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_compare_reads_a_multi_organ_map_with_the_values_given(tmp_path):
    organs = tmp_path / "organs.png"
    mask = np.asarray(Image.open(PNG_MASK))
    values = np.choose(mask, [0, 5, 7]).astype(np.uint8)
    values[:8, :8] = 1  # another organ
    Image.fromarray(values).save(organs)
    r = run_compare(PNG, organs, PNG, PNG_MASK, "--out", tmp_path / "out", "--reference-labels", "5,7")
    assert r.returncode == 1  # the plain mask has no value 5
    given, plain = list(csv.DictReader((tmp_path / "out" / "agreement.csv").open()))[:2]
    assert given["status"] == "ok" and float(given["liver_dice"]) >= 0.9 and float(given["tumor_dice"]) > 0.3
    assert "no voxel has the liver's value 5" in plain["message"]


def test_a_dicom_series_reads_the_labels_nifti_hepatoscan_wrote_for_it(tmp_path):
    """The labels.nii.gz HepatoScan writes for a DICOM series (a feet-first one, its rows stored
    toward the patient's right), corrected in a viewer and given back as the reference, lies on the
    series' grid: a reader can score a corrected segmentation against HepatoScan's."""
    from hepatoscan.pipeline import _to_nifti
    from test_dicom_seg import _feet_first_series

    volume = load_scan(VOLUME)
    expected = read_reference(SEGMENTATION, volume).labels[56:72]
    folder = tmp_path / "series"
    folder.mkdir()
    _feet_first_series(folder, np.asarray(volume.pixels)[56:72])
    scan = load_scan(folder)
    nib.save(_to_nifti(expected, scan), tmp_path / "labels.nii.gz")
    assert np.array_equal(read_reference(tmp_path / "labels.nii.gz", scan).labels, expected)


def test_a_dicom_seg_of_the_series_is_read_on_its_slices(predictor, tmp_path):
    """The DICOM SEG HepatoScan writes for a feet-first series (rows stored toward the patient's
    right), as a PACS viewer would export a corrected one: read back as the reference it lies on the
    series' slices (Dice 1 with the masks it was made from); its segments are found by their codes,
    or taken by number; one made on another series, or whose segments are not the liver, is refused
    with what to give."""
    pytest.importorskip("highdicom")
    from hepatoscan.dicom_seg import write_dicom_seg
    from hepatoscan.pipeline import analyze, label_volume
    from test_dicom_seg import _feet_first_series

    folder = tmp_path / "series"
    folder.mkdir()
    _feet_first_series(folder, np.asarray(load_scan(VOLUME).pixels)[56:72])
    result = analyze(predictor, folder)
    seg_path = write_dicom_seg(result, tmp_path / "seg.dcm")
    expected = label_volume(result.segmentation.liver, result.segmentation.tumor)
    ref = read_reference(seg_path, result.scan)
    assert np.array_equal(ref.labels, expected) and "segment 1 'Liver' as the liver, segment 2" in ref.notes[0]
    compared = analyze(predictor, folder, reference=seg_path).agreement
    assert (expected == 2).any() and compared.liver_dice == 1.0 and compared.tumor_dice == 1.0
    liver_only = read_reference(seg_path, result.scan, (1, None))
    assert np.array_equal(liver_only.labels, (expected > 0).astype(np.uint8))
    with pytest.raises(InputError, match="no segment 3; its segments are 1 'Liver', 2 'Liver tumor'"):
        read_reference(seg_path, result.scan, (3, None))
    other = tmp_path / "other"
    other.mkdir()
    _feet_first_series(other, np.asarray(load_scan(VOLUME).pixels)[56:72])  # new SOPInstanceUIDs
    with pytest.raises(InputError, match="refers to none of this series' 16 slices"):
        read_reference(seg_path, load_scan(other))


@pytest.mark.parametrize("image, reference", [
    ("liver_012_0000.nii.gz", "liver_012.nii.gz"),  # nnU-Net / MSD
    ("volume-12.nii", "segmentation-12.nii"),  # LiTS
    ("case7.png", "case7_mask.png"),
    ("Patient3", "patient3_seg.nii.gz"),  # a DICOM series' folder and a NIfTI
    ("IM0001.png", "IM0001.png"),
    ("liver-orig001.mhd", "liver-seg001.mhd"),  # SLIVER07
])
def test_dataset_names_pair(image, reference):
    from hepatoscan.pairing import name_key

    assert name_key(image) == name_key(reference)


def test_pairing_by_name_keeps_what_pairs_and_names_the_rest(tmp_path):
    from hepatoscan.pairing import pair_by_name

    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    images.mkdir()
    labels.mkdir()
    for name in ("liver_1_0000.nii.gz", "liver_2_0000.nii.gz", "liver_3_0000.nii.gz"):
        (images / name).write_bytes(b"")
    for name in ("liver_2.nii.gz", "liver_1.nii.gz", "liver_9.nii.gz", ".DS_Store"):
        (labels / name).write_bytes(b"")
    pairs, unmatched, twice = pair_by_name(images, labels)
    assert [(a.name, b.name) for a, b in pairs] == [("liver_1_0000.nii.gz", "liver_1.nii.gz"),
                                                    ("liver_2_0000.nii.gz", "liver_2.nii.gz")]
    assert [p.name for p in unmatched] == ["liver_3_0000.nii.gz"] and twice == []
    (labels / "liver_1_seg.nii.gz").write_bytes(b"")  # two references of one name: neither is guessed
    pairs, unmatched, twice = pair_by_name(images, labels)
    assert [a.name for a, _ in pairs] == ["liver_2_0000.nii.gz"] and twice == ["liver_1"]


def test_cli_compare_pairs_a_dataset_by_name(tmp_path):
    import shutil

    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    images.mkdir()
    labels.mkdir()
    shutil.copy(PNG, images / "lits_080_0000.png")
    shutil.copy(PNG_MASK, labels / "lits_080.png")
    shutil.copy(SAMPLES / "lits117_z064_w350.png", images / "lits_064_0000.png")  # no reference
    r = run_compare("--images", images, "--references", labels, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "1 image has no reference of its name" in r.stderr and "lits_064_0000.png" in r.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "agreement.csv").open()))
    assert rows[0]["input"].endswith("lits_080_0000.png") and rows[0]["reference"].endswith("lits_080.png")
    assert float(rows[0]["liver_dice"]) >= 0.9 and len(rows) == 3  # the pair, the mean, the global
    alone = run_compare("--images", images, "--out", tmp_path / "alone")
    assert alone.returncode == 2 and "go together" in alone.stderr
    nothing = run_compare("--out", tmp_path / "nothing")
    assert nothing.returncode == 2 and "nothing to compare" in nothing.stderr
