"""The shipped model: its card, and accuracy on the LiTS 117 samples (never trained on)."""
import hashlib
import json

import numpy as np
import pytest

from conftest import MODELS, dice
from hepatoscan.errors import ModelError
from hepatoscan.io import load_scan
from hepatoscan.model_card import find_card
from hepatoscan.predictor import Predictor


def test_default_card_is_complete_and_matches_the_file():
    card = find_card(MODELS)
    raw = card.raw
    for key in ("name", "version", "sha256", "input", "outputs", "thresholds", "quantization", "training",
                "metrics", "default"):
        assert key in raw, key
    assert raw["default"] is True
    assert raw["outputs"] == ["liver", "tumor"]
    assert raw["input"]["range"] == [0, 1] and len(raw["input"]["window_hu"]) == 2
    assert {"sources", "split", "seed", "git_commit"} <= set(raw["training"])
    assert hashlib.sha256(card.model_path.read_bytes()).hexdigest() == raw["sha256"]
    assert card.model_path.stat().st_size <= 2_000_000


def test_card_records_the_window_estimate_its_8bit_figures_were_measured_with():
    """The card's window grid and 8-bit figures hold for one window estimate; a runtime whose
    landmarks differ must be re-evaluated and shipped with a new card (scripts/ship_model.sh)."""
    from hepatoscan.preprocessing import window_estimate_landmarks
    assert find_card(MODELS).raw["input"]["window_estimate"] == window_estimate_landmarks()


def test_card_records_the_post_processing_its_figures_were_measured_with():
    """The card's figures come through hepatoscan.postprocess with these parameters; a runtime whose
    defaults differ must be re-evaluated and re-carded, as for the window estimate."""
    from dataclasses import asdict

    from hepatoscan.config import PostprocessConfig
    from hepatoscan.postprocess import describe
    post = find_card(MODELS).raw["postprocessing"]
    assert post["parameters"] == asdict(PostprocessConfig())
    assert post["steps"] == describe()["steps"]
    assert set(post["effect"]["dice_card_only_vs_runtime"]) == {"lits_117", "chaos_ct_set3"}


def test_the_cards_recipe_alone_segments_the_sample_nearly_as_the_runtime_does(predictor, sample_volume):
    """A reader of the card alone (window, resize, thresholds; no post-processing), as
    training.evaluate.card_only scores it: within 0.01 liver Dice of the runtime on LiTS 117
    (measured 0.930 against 0.932 on the full volume; tumor 0.677 both)."""
    from training.evaluate import card_only

    path, hu, labels = sample_volume
    alone = card_only(predictor, hu, labels, tumor_labeled=True)
    seg = predictor.segment(load_scan(path))
    runtime = dice(seg.liver, labels >= 1)
    assert alone["liver_dice"] >= 0.9 and abs(alone["liver_dice"] - runtime) <= 0.01, (alone, runtime)
    assert alone["tumor_dice"] >= 0.4


@pytest.mark.parametrize("flip_axes", [(), (0,), (0, 1)])
def test_cards_nifti_recipe_gives_the_slices_the_runtime_segments(tmp_path, sample_volume, flip_axes):
    """A scorer that feeds the model from the card alone must orient slices as the runtime does (the
    model loses the liver on slices in other axes): the card's recipe, run as written on NIfTI files
    stored RAS, LAS or LPS, gives exactly the runtime's slices."""
    import nibabel

    from hepatoscan.preprocessing import SLICE_ORIENTATION

    recipe = find_card(MODELS).raw["input"]["slice_orientation"]
    assert recipe == SLICE_ORIENTATION
    path, _, _ = sample_volume
    ras = nibabel.as_closest_canonical(nibabel.load(str(path)))
    data, affine = np.asanyarray(ras.dataobj), ras.affine.copy()
    for axis in flip_axes:  # the same voxels stored with that axis reversed, the affine saying so
        data = np.flip(data, axis)
        flip = np.eye(4)
        flip[axis, axis], flip[axis, 3] = -1, data.shape[axis] - 1
        affine = affine @ flip
    stored = tmp_path / "stored.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(data), affine), str(stored))
    img = nibabel.load(str(stored))
    runtime = load_scan(stored).pixels
    for k in (10, 64, 120):
        by_card = eval(recipe["from_nifti"], {"np": np, "nibabel": nibabel, "img": img, "k": k})  # noqa: S307
        np.testing.assert_array_equal(by_card, runtime[k])


def test_validation_summary_words_the_cards_figures(tmp_path):
    card = find_card(MODELS)
    m = card.raw["metrics"]["summary"]
    text = card.validation_summary()
    assert f"{m['volumes']} held-out CT volumes: liver Dice {m['liver_dice_per_case_mean']:.2f}" in text
    assert f"worst display window (W150 to W2000): liver Dice {m['window_grid_min_liver_dice']:.2f}" in text
    bare = dict(card.raw, metrics={})
    (tmp_path / "bare.tflite").write_bytes(card.model_path.read_bytes())
    (tmp_path / "bare.json").write_text(json.dumps(dict(bare, file="bare.tflite")))
    assert find_card(tmp_path).validation_summary() == ""


def test_predictor_reads_shape_and_quantisation_from_the_interpreter(predictor):
    assert predictor.backend in ("ai-edge-litert", "tflite-runtime")
    if predictor.card.quantization == "int8":
        scale, _ = predictor.input_scale_zero_point
        assert 0 < scale < 0.01


def test_tampered_model_is_refused(tmp_path):
    card = find_card(MODELS)
    (tmp_path / card.model_path.name).write_bytes(card.model_path.read_bytes()[:-10] + b"0" * 10)
    (tmp_path / "card.json").write_text(json.dumps(card.raw))
    with pytest.raises(ModelError, match="does not match its card"):
        Predictor.from_model_dir(tmp_path)


def test_two_default_cards_are_refused_not_picked_at_random(tmp_path):
    card = find_card(MODELS)
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.json").write_text(json.dumps(card.raw))
    with pytest.raises(ModelError, match="2 cards .* match"):
        find_card(tmp_path)
    assert find_card(tmp_path / "a.json").name == card.name  # naming the card still works


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="no default model card"):
        Predictor.from_model_dir(tmp_path)


def test_png_samples_liver_and_tumor(predictor, sample_pngs):
    for path, gt in sample_pngs:
        seg = predictor.segment(load_scan(path))
        assert seg.liver.shape == (1,) + gt.shape
        assert dice(seg.liver[0], gt >= 1) >= 0.85, path.name
        if (gt == 2).sum() > 500:
            assert dice(seg.tumor[0], gt == 2) > 0.3, path.name


def test_volume_liver_dice_and_tumor_found(predictor, sample_volume):
    path, _, labels = sample_volume
    seg = predictor.segment(load_scan(path))
    assert dice(seg.liver, labels >= 1) >= 0.90
    assert dice(seg.tumor, labels == 2) >= 0.4
    assert not (seg.tumor.astype(bool) & ~seg.liver.astype(bool)).any()  # tumor inside liver


def test_stack_summary_counts_slices_whose_window_is_rough(predictor, sample_volume):
    from hepatoscan.preprocessing import render_8bit
    from hepatoscan.scan import Scan

    _, hu, _ = sample_volume
    zs = range(40, 104, 2)  # consecutive enough to read as one series (every 8th reads as separate images)
    for window, rough in (((-45, 105), True), ((-160, 240), False)):
        grey = np.stack([render_8bit(hu[z], window) for z in zs]).astype(np.float32)
        seg = predictor.segment(Scan(grey, False, None, "png", "stack"))
        n = sum(e.fat_clipped for e in seg.window_estimates)
        text = seg.window_summary()
        assert text.startswith("8-bit images: display windows estimated per slice")
        assert (f"On {n} of {len(zs)} slices fat lies at the black end" in text) == rough
        assert (n > 0) == rough
