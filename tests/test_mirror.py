"""An image mirrored left-right (the liver on the image's right) is said to look mirrored; CT as
viewers show it is not (hepatoscan.mirror)."""
import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from hepatoscan.config import QualityConfig
from hepatoscan.mirror import liver_evidence, mirror_ratio, mirrored_images_warning, mirrored_warning
from hepatoscan.pipeline import analyze
from hepatoscan.predictor import Predictor

MIRRORED = "mirrored left-right (or turned by 180 degrees): the model finds a liver"


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _mirror_warnings(result) -> list[str]:
    return [w for w in result.warnings if MIRRORED in w]


def test_evidence_counts_sure_liver_less_the_unsure():
    p = np.zeros((256, 256), np.float32)
    p[:100, :100] = 0.95  # a crisp liver of 10,000 px
    p[100:120, :100] = 0.5  # 2,000 px unsure along it
    p[200:, 200:] = 0.2  # below the band: neither
    assert liver_evidence(p) == 10_000 - 2_000
    assert liver_evidence(np.full((256, 256), 0.5, np.float32)) == -256 * 256  # a haze: none


def test_ratio_and_warning_bounds():
    cfg = QualityConfig()
    assert mirror_ratio(50_000, cfg.min_mirror_evidence_px - 1) is None  # the mirror finds too little
    assert mirror_ratio(10_000, 30_000) == 3.0 and mirror_ratio(-500, 8_000) == 8_000.0
    assert mirrored_warning(None, 0.1, False) is None and mirrored_warning(cfg.max_mirror_ratio, 0.1, False) is None
    assert mirrored_warning(3.0, cfg.max_mirror_unsure_fraction + 0.01, False) is None  # the mirror a haze too
    png, nifti = mirrored_warning(3.0, 0.1, False), mirrored_warning(40.0, 0.1, True)
    assert png.startswith("This image looks " + MIRRORED) and "3.0 times as surely" in png
    assert "saved by a script" in png and "segment again" in png
    assert "far more surely" in nifti and "affine" in nifti and "fix the header" in nifti
    names = ["a.png", "b.png", "c.png"]
    text = mirrored_images_warning({0: (0.25, 0.3), 1: (13.3, 0.1), 2: (1.07, 0.1)}, names)
    assert text.startswith("1 of 3 images (b.png) looks mirrored")  # c.png: 1.07, under the bound
    assert "far more surely in its mirror image" in text
    two = mirrored_images_warning({0: (2.0, 0.2), 1: (13.3, 0.1), 2: (None, None)}, names)
    assert two.startswith("2 of 3 images (a.png, b.png) look mirrored") and "in their mirror images" in two
    assert mirrored_images_warning({0: (0.25, 0.1), 1: (5.0, 0.6), 2: (None, None)}, names) is None


def test_sample_slices_as_given_are_not_warned_and_mirrored_are(predictor, sample_pngs):
    """The four shipped LiTS 117 exports (W350, W400 and W1500, liver 2 to 40% of the slice) as
    viewers show them, then mirrored left-right and turned by 180 degrees."""
    for path, _ in sample_pngs:
        g = np.asarray(Image.open(path).convert("L"))
        given = analyze(predictor, path)
        assert not _mirror_warnings(given), path.name
        for name, img in (("mirrored", g[:, ::-1]), ("turned", g[::-1, ::-1])):
            r = analyze(predictor, _png(img), f"{name}.png")
            assert r.segmentation.mirror_ratio > 10 and len(_mirror_warnings(r)) == 1, (path.name, name)
            assert r.summary()["mirror_ratio"] == r.segmentation.mirror_ratio


def test_nifti_with_a_mirrored_header_is_warned(predictor, sample_volume, tmp_path):
    """The LiTS 117 volume as shipped, and with its x axis reversed in the data but not in the
    affine (a header that gives the wrong orientation): only the second is warned, naming the header."""
    path, _, _ = sample_volume
    given = analyze(predictor, path)
    assert given.segmentation.mirror_ratio < 0.3 and not _mirror_warnings(given)
    img = nib.load(str(path))
    bad = tmp_path / "mirrored.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[::-1].copy(), img.affine, img.header), str(bad))
    r = analyze(predictor, bad)
    assert r.segmentation.mirror_ratio > 5
    assert len(_mirror_warnings(r)) == 1 and "affine" in _mirror_warnings(r)[0]
    few = Predictor(predictor.card, quality=QualityConfig(mirror_check_slices=3))  # most batches check none
    assert len(_mirror_warnings(analyze(few, bad))) == 1 and not _mirror_warnings(analyze(few, path))


def test_one_mirrored_image_among_separate_images_is_named(predictor, sample_pngs):
    """A zip of the four sample exports, one of them mirrored: each image is judged on its own."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, _ in sample_pngs:
            if path.stem == "lits117_z064_w350":
                z.writestr("flipped.png", _png(np.asarray(Image.open(path).convert("L"))[:, ::-1]))
            else:
                z.write(path, path.name)
    r = analyze(predictor, buf.getvalue(), "mixed.zip")
    assert r.segmentation.separate_images
    assert [w for w in _mirror_warnings(r) if w.startswith("1 of 4 images (flipped.png) looks mirrored")]


def test_held_out_volume_mirrored_is_warned(predictor, data_dir):
    """CHAOS CT set 3 (held out) in HU and as a stack of W400/L40 slices: as given ratio under 0.5,
    mirrored over 2 (benchmarks/orientation_check.py: 0.43 to 0.44 and 2.29 to 2.31)."""
    from hepatoscan.preprocessing import render_8bit
    from hepatoscan.scan import Scan
    from training.data import discover_cases

    case = next((c for c in discover_cases(str(data_dir)) if c.patient == "chaos_ct_set3"), None)
    if case is None:
        pytest.skip("CHAOS CT set 3 is not in the shared data")
    hu, _ = case.load()
    w400 = np.stack([render_8bit(s, (-160, 240)) for s in hu])
    for pixels, is_hu, kind in ((hu, True, "nifti"), (w400, False, "png-stack")):
        spacing = (1.0, 1.0, 1.0) if is_hu else None
        given = predictor.segment(Scan(np.ascontiguousarray(pixels), is_hu, spacing, kind, "chaos"))
        mirrored = predictor.segment(Scan(np.ascontiguousarray(pixels[:, :, ::-1]), is_hu, spacing, kind, "chaos"))
        assert given.mirror_ratio < 0.5 and not _mirror_warnings(given), kind
        assert mirrored.mirror_ratio > 2 and _mirror_warnings(mirrored), kind
