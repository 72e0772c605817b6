"""Surface distances (hepatoscan.surface): exact against brute force and against SciPy's distance
transform (the medpy definition LiTS used), on shapes of known distances, on every search path,
and on the LiTS 117 sample with its expert masks."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hepatoscan.surface as surface_module
from conftest import SAMPLES
from hepatoscan.surface import bounding_box, nearest_distances, surface, surface_distance


def brute_force(a: np.ndarray, b: np.ndarray, spacing, planar=False):
    """(ASSD, HD95, max) by comparing every pair of surface voxels."""
    sa, sb = surface(a, planar), surface(b, planar)
    scale = np.asarray(spacing, float)

    def directed(src, dst):
        out = []
        for z in (range(src.shape[0]) if planar else [None]):
            p = np.argwhere(src[z:z + 1] if planar else src) * scale
            q = np.argwhere(dst[z:z + 1] if planar else dst) * scale
            if len(p) and len(q):
                out.append(np.sqrt(((p[:, None] - q[None]) ** 2).sum(-1)).min(1))
        return np.concatenate(out)

    ab, ba = directed(sa, sb), directed(sb, sa)
    both = np.concatenate([ab, ba])
    return both.mean(), max(np.percentile(ab, 95), np.percentile(ba, 95)), both.max()


def random_pair(rng, shape):
    a = rng.random(shape) < rng.uniform(0.05, 0.6)
    b = rng.random(shape) < rng.uniform(0.01, 0.3)
    a[0, 0, 0] = b[-1, -1, -1] = True
    return a, b


@pytest.mark.parametrize("search_mm, brute_force_max, chunk, slab", [
    (10.0, 30_000_000, 2_000_000, 32), (10.0, 30_000_000, 2_000_000, 3), (0.6, 30_000_000, 2_000_000, 32),
    (0.6, 0, 2_000_000, 32), (0.6, 0, 500, 5)])
def test_distances_are_exact_on_every_search_path(monkeypatch, search_mm, brute_force_max, chunk, slab):
    """Random masks, anisotropic spacing, volumes and separate images: the banded search (in one
    slab of slices or several), brute force for the points it leaves, and the exact transform (in
    one chunk of slices or several) all give the exact figures."""
    monkeypatch.setattr(surface_module, "SEARCH_MM", search_mm)
    monkeypatch.setattr(surface_module, "BRUTE_FORCE_MAX_PAIRS", brute_force_max)
    exact, banded = surface_module._exact_sq, surface_module._banded_sq
    monkeypatch.setattr(surface_module, "_exact_sq", lambda *a: exact(*a, chunk_voxels=chunk))
    monkeypatch.setattr(surface_module, "_banded_sq", lambda *a: banded(*a, slab=slab))
    rng = np.random.default_rng(7)
    for trial in range(12):
        shape = tuple(int(n) for n in rng.integers(4, 24, 3))
        a, b = random_pair(rng, shape)
        spacing = tuple(float(s) for s in rng.uniform(0.4, 4.0, 3))
        planar = trial % 3 == 0
        got = surface_distance(a, b, spacing, separate_images=planar)
        assert (got.assd, got.hd95, got.maximum) == pytest.approx(brute_force(a, b, spacing, planar), rel=1e-5)
        assert got.unit == "mm"


def test_distances_match_scipys_distance_transform():
    """The medpy definition (surface = mask XOR its erosion by the face-connected cross, distances
    from the Euclidean distance transform of the other surface's complement)."""
    ndimage = pytest.importorskip("scipy.ndimage", reason="SciPy is in the full profile (requirements-dev.txt)")
    rng = np.random.default_rng(3)
    a = ndimage.gaussian_filter(rng.random((30, 60, 50)), 3) > 0.5  # blobs
    b = ndimage.binary_dilation(a, iterations=2) ^ (rng.random(a.shape) < 0.002)
    spacing = (2.5, 0.7, 0.7)
    cross = ndimage.generate_binary_structure(3, 1)
    sa, sb = a ^ ndimage.binary_erosion(a, cross), b ^ ndimage.binary_erosion(b, cross)
    ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    both = np.concatenate([ab, ba])
    got = surface_distance(a, b, spacing)
    assert got.assd == pytest.approx(both.mean(), rel=1e-6)
    assert got.hd95 == pytest.approx(max(np.percentile(ab, 95), np.percentile(ba, 95)), rel=1e-6)
    assert got.maximum == pytest.approx(both.max(), rel=1e-6)


def test_nested_squares_give_their_known_distances():
    """A 10 x 10 square inside a 14 x 14 one (2 px margin), 0.5 mm pixels: every inner border pixel
    is 1 mm from the outer border; the outer border's 40 side pixels 1 mm, its 8 next to a corner
    sqrt(5) px and its 4 corners sqrt(8) px from the inner one."""
    inner, outer = np.zeros((1, 20, 20), bool), np.zeros((1, 20, 20), bool)
    inner[0, 5:15, 5:15] = True
    outer[0, 3:17, 3:17] = True
    got = surface_distance(inner, outer, (None, 0.5, 0.5))
    expected_assd = (36 * 1.0 + 40 * 1.0 + 8 * math.sqrt(5) / 2 + 4 * math.sqrt(8) / 2) / (36 + 52)
    assert got.assd == pytest.approx(expected_assd)
    assert got.maximum == pytest.approx(math.sqrt(8) / 2)
    assert got.hd95 == pytest.approx(math.sqrt(8) / 2)  # 12 of the outer border's 52 pixels are above 1 mm
    assert got.describe() == "ASSD 1.0 mm, HD95 1.4 mm"
    assert surface_distance(inner[0], inner[0], (None, 0.5, 0.5)).maximum == 0.0


def test_undefined_unknown_spacing_and_wrong_shapes():
    a = np.zeros((3, 8, 8), bool)
    a[1, 2:5, 2:5] = True
    assert surface_distance(a, np.zeros_like(a), (1, 1, 1)) is None  # an empty mask has no surface
    shifted = np.roll(a, 2, axis=2)
    got = surface_distance(a, shifted, None)
    assert got.unit == "px" and got.maximum == pytest.approx(2.0)
    assert surface_distance(a, shifted, (None, 0.5, 0.5)).unit == "px"  # a volume needs its slice spacing
    with pytest.raises(ValueError, match="shapes differ"):
        surface_distance(a, a[:, :4])
    # separate images: a slice where only one mask has a surface adds no distance
    b = a.copy()
    b[2, 0:2, 0:2] = True
    assert surface_distance(a, b, (1, 1, 1), separate_images=True).maximum == 0.0
    assert surface_distance(a, b, (1, 1, 1)).maximum > 0


def test_bounding_box_and_nearest_distances():
    a = np.zeros((5, 9, 9), np.uint8)
    a[1, 2, 3] = a[3, 6, 4] = 1
    b = np.zeros_like(a)
    b[2, 7, 8] = 2
    assert bounding_box(a, b) == (slice(1, 4), slice(2, 8), slice(3, 9))
    assert bounding_box(np.zeros_like(a)) is None
    d = nearest_distances(np.array([[0, 0, 0], [2, 7, 8]]), b != 0, (2.0, 1.0, 0.5))
    assert d == pytest.approx([math.sqrt(4 ** 2 + 7 ** 2 + 4 ** 2), 0.0])


def test_lits_sample_borders_agree_with_scipy():
    """The LiTS 117 sample's expert liver against a shifted, trimmed copy with a far false island:
    the figures SciPy's transform gives (the false island exercises the brute-force settling)."""
    ndimage = pytest.importorskip("scipy.ndimage", reason="SciPy is in the full profile (requirements-dev.txt)")
    nib = pytest.importorskip("nibabel")
    path = SAMPLES / "lits117_segmentation.nii.gz"
    labels = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj).transpose(2, 1, 0)
    liver = labels >= 1
    other = np.roll(liver, 3, axis=1)
    other[:, :, :40] = False
    other[60:63, 5:12, 110:120] = True
    spacing = (1.0, 0.8, 0.8)
    cross = ndimage.generate_binary_structure(3, 1)
    sa, sb = liver ^ ndimage.binary_erosion(liver, cross), other ^ ndimage.binary_erosion(other, cross)
    ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    got = surface_distance(liver, other, spacing)
    assert got.assd == pytest.approx(np.concatenate([ab, ba]).mean(), rel=1e-6)
    assert got.maximum == pytest.approx(max(ab.max(), ba.max()), rel=1e-6) and got.maximum > 30  # the island
