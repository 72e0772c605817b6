"""The shipped quantized model agrees with the float Keras model it came from (TensorFlow only here)."""
import numpy as np
import pytest

from conftest import MODELS, dice

keras = pytest.importorskip("keras", reason="needs the full profile (requirements-dev.txt)")

KERAS_MODEL = MODELS / "source" / "hepatoscan_unet.keras"


def test_quantized_masks_agree_with_keras_float(predictor, sample_volume):
    from hepatoscan.preprocessing import prepare_slice

    model = keras.saving.load_model(KERAS_MODEL, compile=False)
    _, hu, _ = sample_volume
    x = np.stack([prepare_slice(s, True, predictor.card.input_spec)[0] for s in hu[::4]])
    ref = model.predict(x[..., None], batch_size=8, verbose=0)
    ours = predictor.predict_probs(x)
    t = predictor.card.thresholds
    assert dice(ref[..., 0] > t["liver"], ours[..., 0] > t["liver"]) >= 0.98
    assert dice(ref[..., 1] > t["tumor"], ours[..., 1] > t["tumor"]) >= 0.95


def test_the_shipped_variant_is_chosen_by_preference_not_by_a_noisy_timing():
    """Full int8 ships whenever it meets the agreement bar, however the timings fell (int8 and
    int8-mixed swapped places between two runs of one model); then int8-mixed, then float."""
    from convert.quantize import variant_to_ship

    timed = {"float32": {"meets_bar": True, "ms_per_slice_2_threads": 14.8},
             "int8": {"meets_bar": True, "ms_per_slice_2_threads": 6.6},
             "int8-mixed": {"meets_bar": True, "ms_per_slice_2_threads": 5.0}}
    assert variant_to_ship(timed) == "int8"
    timed["int8"]["meets_bar"] = False
    assert variant_to_ship(timed) == "int8-mixed"
    timed["int8-mixed"]["meets_bar"] = False
    assert variant_to_ship(timed) == "float32"
    timed["float32"]["meets_bar"] = False
    assert variant_to_ship(timed) is None


def test_the_source_model_is_rewritten_only_when_its_weights_change(tmp_path):
    """Every Keras save writes new bytes; re-shipping one network must leave models/source alone."""
    from convert.quantize import save_source

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    path = tmp_path / "source.keras"
    assert save_source(model, path)
    first = path.read_bytes()
    assert not save_source(model, path) and path.read_bytes() == first
    model.set_weights([w + 1.0 for w in model.get_weights()])
    assert save_source(model, path) and path.read_bytes() != first


def test_recard_refreshes_the_reading_and_metrics_and_keeps_the_model():
    """convert.recard: a new reading of the same .tflite gets the card's input block from today's
    preprocessing, the evaluation's figures and a new version; the file, its sha256, the quantization
    record and the history stay, the earlier version named."""
    import json

    from convert.recard import recard
    from hepatoscan.model_card import find_card
    from hepatoscan.preprocessing import InputSpec

    card = find_card(MODELS).raw
    metrics = {"volumes": [{"case": "x", "liver_dice": 0.95, "tumor_dice": 0.7,
                            "card_only": {"liver_dice": 0.94, "tumor_dice": 0.69}}], "summary": {}}
    new = recard(card, metrics, "9.9.9", "a test reading")
    assert new["version"] == "9.9.9" and new["metrics"] == metrics
    assert new["input"]["body_fill"] == InputSpec().body_fill
    assert new["postprocessing"]["effect"] == {"dice_card_only_vs_runtime": {
        "x": {"liver_dice": [0.94, 0.95], "tumor_dice": [0.69, 0.7]}}}
    for key in ("file", "sha256", "bytes", "quantization", "thresholds", "architecture"):
        assert new[key] == card[key], key
    assert new["training"]["restored_from"].startswith(f"{card['name']} {card['version']} (the same .tflite, "
                                                       "read anew: a test reading")
    assert json.loads(json.dumps(card)) == find_card(MODELS).raw  # the card given is not changed
