"""Measurements on synthetic shapes with known answers."""
import numpy as np
import pytest

from hepatoscan.measure import measure, measure_slice, measure_volume
from hepatoscan.predictor import Segmentation
from hepatoscan.scan import Scan


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def ellipse_mm(shape, cy, cx, ry_mm, rx_mm, sy, sx):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((((yy - cy) * sy) / ry_mm) ** 2 + (((xx - cx) * sx) / rx_mm) ** 2 <= 1).astype(np.uint8)


def test_disc_without_spacing_is_in_pixels_only():
    liver = disc((200, 200), 100, 100, 60)
    tumor = disc((200, 200), 100, 100, 20)
    s = measure_slice(liver, tumor)
    assert s.liver_area_mm2 is None and s.tumor_area_mm2 is None
    assert s.tumor_area_px == pytest.approx(np.pi * 400, rel=0.03)
    (les,) = s.lesions
    assert les.longest_diameter_mm is None and les.measurable is None
    assert les.longest_diameter_px == pytest.approx(40, abs=1.5)
    assert les.short_axis_px == pytest.approx(40, abs=2.0)
    assert s.tumor_burden_pct == pytest.approx(100 * 400 / 3600, rel=0.05)


def test_disc_with_isotropic_spacing():
    tumor = disc((200, 200), 100, 100, 20)
    s = measure_slice(disc((200, 200), 100, 100, 60), tumor, pixel_spacing_mm=(0.5, 0.5))
    (les,) = s.lesions
    assert les.area_mm2 == pytest.approx(np.pi * 100, rel=0.03)  # r = 10 mm
    assert les.longest_diameter_mm == pytest.approx(20, abs=0.75)
    assert les.measurable is True


def test_anisotropic_ellipse_diameters_in_mm():
    sy, sx = 1.0, 0.5  # rows 1 mm apart, columns 0.5 mm apart
    tumor = ellipse_mm((200, 300), 100, 150, 15, 30, sy, sx)  # 30 mm by 60 mm, long axis along x
    liver = ellipse_mm((200, 300), 100, 150, 40, 70, sy, sx)
    s = measure_slice(liver, tumor, pixel_spacing_mm=(sy, sx))
    (les,) = s.lesions
    assert les.longest_diameter_mm == pytest.approx(60, abs=1.5)
    assert les.short_axis_mm == pytest.approx(30, abs=1.5)
    assert les.area_mm2 == pytest.approx(np.pi * 15 * 30, rel=0.03)


def test_small_lesion_is_not_recist_measurable_and_lesions_are_numbered_by_size():
    liver = disc((200, 200), 100, 100, 90)
    tumor = disc((200, 200), 60, 60, 3) | disc((200, 200), 130, 130, 15)
    s = measure_slice(liver, tumor, pixel_spacing_mm=(0.8, 0.8))
    assert s.lesion_count == 2
    big, small = s.lesions
    assert big.area_px > small.area_px and big.lesion_id == 1
    assert small.measurable is False and big.measurable is True


def test_sphere_volume_in_ml_with_anisotropic_voxels():
    sz, sy, sx = 2.0, 0.8, 0.8
    zz, yy, xx = np.mgrid[0:40, 0:120, 0:120]
    r_mm = 20.0
    ball = ((((zz - 20) * sz) ** 2 + ((yy - 60) * sy) ** 2 + ((xx - 60) * sx) ** 2) <= r_mm ** 2).astype(np.uint8)
    liver = np.ones_like(ball)
    v, labels = measure_volume(liver, ball, (sz, sy, sx))
    expected_ml = 4 / 3 * np.pi * r_mm ** 3 / 1000  # 33.5 mL
    assert v.tumor_volume_ml == pytest.approx(expected_ml, rel=0.03)
    assert v.liver_volume_ml == pytest.approx(40 * 120 * 120 * sz * sy * sx / 1000, abs=0.05)  # rounded to 0.1 mL
    assert v.lesion_count == 1 and v.lesions[0].largest_slice == 20
    assert v.lesions[0].longest_diameter_mm == pytest.approx(40, abs=1.5)


def test_volume_lesions_have_a_perpendicular_and_recist_measurability_by_slice_spacing():
    """An ellipsoid 18 x 12 mm across on its largest slice: perpendicular 12 mm; measurable (>= 10
    mm) at 2 or 5 mm slices; at 7.5 and 10 mm slices RECIST asks for twice the spacing (15, 20 mm),
    so it is measurable at the first and not at the second. A 6 mm lesion never is."""
    from hepatoscan.measure import recist_min_mm

    assert [recist_min_mm(s) for s in (None, 1.0, 5.0, 7.5, 10.0)] == [10.0, 10.0, 10.0, 15.0, 20.0]
    sy = sx = 0.5
    zz, yy, xx = np.mgrid[0:9, 0:120, 0:120]
    for sz, measurable in ((2.0, True), (5.0, True), (7.5, True), (10.0, False)):
        big = (((zz - 4) * sz / 60.0) ** 2 + ((yy - 40) * sy / 6.0) ** 2 + ((xx - 60) * sx / 9.0) ** 2) <= 1
        small = (zz == 4) & (((yy - 95) * sy) ** 2 + ((xx - 60) * sx) ** 2 <= 9.0)
        v, _ = measure_volume(np.ones_like(zz, np.uint8), (big | small).astype(np.uint8), (sz, sy, sx))
        first, second = v.lesions
        assert first.longest_diameter_mm == pytest.approx(18, abs=1.0)
        assert first.short_axis_mm == pytest.approx(12, abs=1.0) and first.short_axis_px == pytest.approx(24, abs=2)
        assert first.measurable is measurable, sz
        assert second.longest_diameter_mm == pytest.approx(6, abs=1.0) and second.measurable is False
    v, _ = measure_volume(np.ones_like(zz, np.uint8), big.astype(np.uint8), None)
    assert v.lesions[0].measurable is None and v.lesions[0].short_axis_mm is None


def test_volume_without_tumor_measures_its_liver_and_no_lesion():
    """A healthy liver (no tumor voxel at all) is the common case of a screening study."""
    liver = np.zeros((6, 50, 50), np.uint8)
    liver[1:5, 10:40, 10:40] = 1
    v, comps = measure_volume(liver, np.zeros_like(liver), (2.0, 0.5, 0.5))
    assert v.lesion_count == 0 and v.lesions == [] and v.tumor_volume_ml == 0.0 and v.tumor_burden_pct == 0.0
    assert v.liver_volume_ml == pytest.approx(4 * 30 * 30 * 0.5 / 1000, abs=0.05)
    assert v.largest_tumor_slice is None and v.key_slices == [1]
    scan = Scan(np.zeros((6, 50, 50), np.float32), True, (2.0, 0.5, 0.5), "array", "x")
    m = measure(Segmentation(scan, liver, np.zeros_like(liver), [None] * 6))
    assert [s.lesion_count for s in m.slices] == [0, 0, 0, 0]


def test_measure_volume_without_spacing_reports_voxels_not_ml():
    liver = np.zeros((5, 50, 50), np.uint8)
    liver[1:4, 10:40, 10:40] = 1
    tumor = np.zeros_like(liver)
    tumor[2, 20:25, 20:25] = 1
    scan = Scan(np.zeros((5, 50, 50), np.float32), True, None, "array", "x")
    m = measure(Segmentation(scan, liver, tumor, [None] * 5))
    assert m.units == "px" and m.volume.liver_volume_ml is None
    assert m.volume.liver_voxels == 2700 and m.volume.tumor_voxels == 25
    assert any("pixels" in n for n in m.notes)


def test_mean_hu_reported_when_hu_known():
    liver = disc((100, 100), 50, 50, 40)
    tumor = disc((100, 100), 50, 50, 10)
    hu = np.where(tumor, 40.0, 110.0).astype(np.float32)
    s = measure_slice(liver, tumor, pixel_spacing_mm=(1, 1), hu=hu)
    assert s.tumor_mean_hu == 40.0 and s.liver_mean_hu == 110.0


def test_volume_lesions_mean_hu_and_ids_match_a_full_labelling():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(11)
    tumor = (ndi.gaussian_filter(rng.random((8, 64, 64)), 1.5) > 0.53).astype(np.uint8)
    liver = np.ones_like(tumor)
    hu = rng.integers(-100, 200, tumor.shape).astype(np.int16)
    v, comps = measure_volume(liver, tumor, (2.0, 0.8, 0.8), hu)
    ref, n = ndi.label(tumor)
    assert v.lesion_count == n
    for les in v.lesions:
        m = np.stack([comps.slice_labels(z) for z in range(tumor.shape[0])]) == les.lesion_id
        assert les.voxels == m.sum()
        per_slice = m.sum((1, 2))
        assert les.largest_slice == int(np.argmax(per_slice))
        assert les.largest_area_mm2 == pytest.approx(round(float(per_slice.max() * 0.8 * 0.8), 1))
        assert les.mean_hu == pytest.approx(round(float(hu[m].mean()), 1), abs=0.051)
        assert len(np.unique(ref[m])) == 1  # one reference component per lesion
    assert [l.voxels for l in v.lesions] == sorted((l.voxels for l in v.lesions), reverse=True)
