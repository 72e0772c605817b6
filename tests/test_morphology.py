import numpy as np
import pytest

from hepatoscan.morphology import Components, dilate, fill_holes_2d, keep_largest, label, remove_small


@pytest.mark.parametrize("shape", [(64, 80), (12, 40, 50)])
def test_label_matches_scipy_on_random_masks(shape):
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(sum(shape))
    m = ndi.gaussian_filter(rng.random(shape), 1.2) > 0.5
    ours, n = label(m)
    ref, n_ref = ndi.label(m)
    assert n == n_ref
    # Same partition: each of our labels maps to exactly one reference label.
    pairs = set(zip(ours[m].tolist(), ref[m].tolist()))
    assert len(pairs) == n


def test_label_face_connectivity_in_3d():
    m = np.zeros((3, 5, 5), bool)
    m[0, 1, 1] = m[1, 1, 1] = True  # face neighbours across slices: one component
    m[2, 3, 3] = m[1, 2, 2] = True  # diagonal only: separate
    _, n = label(m)
    assert n == 3


def test_keep_largest_and_fraction():
    m = np.zeros((50, 50), bool)
    m[5:25, 5:25] = True  # 400
    m[30:40, 30:45] = True  # 150
    m[45:47, 45:47] = True  # 4
    assert keep_largest(m).sum() == 400
    assert keep_largest(m, 0.25).sum() == 550


def test_fill_holes_and_dilate():
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    m[10:15, 10:15] = False
    m[0:3, 0:3] = False
    assert fill_holes_2d(m).sum() == 400
    d = dilate(np.pad(np.ones((1, 1), bool), 5), 2)
    assert d.sum() == 25  # a 5x5 square


def test_keep_largest_and_remove_small_in_place_on_a_volume():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(7)
    m = ndi.gaussian_filter(rng.random((10, 60, 70)), 1.5) > 0.5
    ref, n = ndi.label(m)
    sizes = np.bincount(ref.ravel())[1:]
    work = m.copy()
    out = keep_largest(work, out=work)
    assert out is work  # edited in place, no new volume
    np.testing.assert_array_equal(work, ref == (np.argmax(sizes) + 1))
    work = m.copy()
    remove_small(work, 30, out=work)
    np.testing.assert_array_equal(work, np.isin(ref, np.nonzero(sizes >= 30)[0] + 1))
    assert m.sum() > work.sum()  # the input given without out= is untouched
    np.testing.assert_array_equal(remove_small(m, 30), work)


def test_components_paint_slices_like_a_full_labelling():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    m = ndi.gaussian_filter(rng.random((6, 40, 50)), 1.2) > 0.52
    comps = Components.of(m).renumbered_by_size()
    full = np.stack([comps.slice_labels(z) for z in range(m.shape[0])])
    ref, n = ndi.label(m)
    assert comps.n == n
    assert len(set(zip(full[m].tolist(), ref[m].tolist()))) == n  # the same partition
    sizes = np.bincount(full.ravel())[1:]
    assert (np.diff(sizes) <= 0).all() and sizes.sum() == m.sum()  # numbered by decreasing size
    np.testing.assert_array_equal(comps.sizes()[1:], sizes)
