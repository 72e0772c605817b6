"""Screening a candidate model: int8-only conversion, evaluation at a given liver threshold, and the
side-by-side comparison that a model is chosen on (scripts/screen_model.sh)."""
from __future__ import annotations

import json
import logging
import shutil
import time

import pytest

from conftest import MODELS, SAMPLES


def _eval(liver_w150: float, tumor_w150: float, tumor_hu: float = 0.68) -> dict:
    return {"volumes": [{"case": "lits_117", "liver_dice": 0.932, "tumor_dice": tumor_hu,
                         "lesions": {"pred_lesions": 60, "recall": 0.3, "precision": 0.4, "recall_10mm": 0.5}},
                        {"case": "chaos_ct_set3", "liver_dice": 0.941, "tumor_dice": None,
                         "lesions": {"pred_lesions": 9}}],
            "summary": {"liver_dice_8bit_pooled_mean": 0.92},
            "window_grid": {"lits_117": {"HU path": {"liver_dice": 0.932, "tumor_dice": tumor_hu},
                                         "W150/L30": {"liver_dice": liver_w150, "tumor_dice": tumor_w150},
                                         "W400/L40": {"liver_dice": 0.93, "tumor_dice": tumor_hu - 0.05}},
                            "chaos_ct_set3": {"HU path": {"liver_dice": 0.941, "tumor_dice": None},
                                              "W2000/L0": {"liver_dice": 0.9299, "tumor_dice": None}}}}


def test_compare_names_the_grid_rows_that_miss_the_issue_targets():
    from training.compare import target_misses

    # 0.93 liver and a tumor gap of exactly 0.05 meet the targets; below either misses.
    assert target_misses(_eval(0.93, 0.63)) == ["chaos_ct_set3 W2000/L0 liver"]
    assert target_misses(_eval(0.9299, 0.629)) == ["lits_117 W150/L30 liver", "lits_117 W150/L30 tumor",
                                                   "chaos_ct_set3 W2000/L0 liver"]


def test_compare_tables_the_shipped_card_beside_an_evaluation(tmp_path, capsys):
    from hepatoscan.model_card import find_card
    from training.compare import main

    card = find_card(MODELS)
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(_eval(0.95, 0.66)))
    main([str(MODELS), str(path)])
    out = capsys.readouterr().out
    header, _, *rows = out.split("\n\n")[0].splitlines()
    assert header == f"| figure | {MODELS} | {path} |"
    row = {r.split(" | ")[0].strip("| "): r.split(" | ")[1:] for r in rows}
    shipped_val = card.raw["metrics"]["summary"]["liver_dice_8bit_pooled_mean"]
    assert row["validation 8-bit liver, pooled"] == [f"{shipped_val:.4f}", "0.9200 |"]
    assert row["CHAOS false lesions"][1] == "9 |"
    assert row["lits_117 W150/L30"][1] == "0.9500 / 0.6600 |"
    assert f"{path}: 1 grid rows miss a target: chaos_ct_set3 W2000/L0 liver" in out


def test_compare_says_when_a_model_folder_has_no_metrics(tmp_path):
    from training.compare import main

    folder = tmp_path / "model"
    shutil.copytree(MODELS, folder, ignore=shutil.ignore_patterns("source"))
    card_path = next(folder.glob("hepatoscan_unet_*.json"))
    card = json.loads(card_path.read_text())
    card.pop("metrics")
    card_path.write_text(json.dumps(card))
    with pytest.raises(SystemExit):
        main([str(folder)])


def _lits_layout(tmp_path):
    """The shipped LiTS 117 sample in the LiTS layout, which training.data reads as patient lits_117."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLES / "lits117_volume.nii.gz", data / "volume-117.nii.gz")
    shutil.copy(SAMPLES / "lits117_segmentation.nii.gz", data / "segmentation-117.nii.gz")
    return data


def test_evaluate_uses_the_liver_threshold_it_is_given(tmp_path):
    """Screening evaluates a candidate at the shipped model's threshold before training.threshold
    chooses its own: a much higher one must cost liver Dice on the real sample, and the JSON
    records the thresholds used."""
    from training.data import discover_cases
    from training.evaluate import main

    data = _lits_layout(tmp_path)
    if [c.patient for c in discover_cases(data)] != ["lits_117"]:
        pytest.skip("the LiTS layout does not read the samples' .nii.gz names")
    dice_at = {}
    for t in (0.3, 0.95):
        out = tmp_path / f"eval_{t}.json"
        main(["--model", str(MODELS), "--data", str(data), "--split", "test", "--liver-threshold", str(t),
              "--json", str(out)])
        ev = json.loads(out.read_text())
        assert ev["thresholds"]["liver"] == t
        dice_at[t] = ev["volumes"][0]["liver_dice"]
    assert dice_at[0.3] > 0.9 and dice_at[0.95] < dice_at[0.3] - 0.005, dice_at
    with pytest.raises(SystemExit):
        main(["--model", str(MODELS), "--data", str(data), "--liver-threshold", "1.5"])


@pytest.mark.parametrize("variants", ["int4", "", "int8,float64"])
def test_quantize_refuses_unknown_variants_before_loading_anything(tmp_path, variants):
    from convert.quantize import main

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "no_such_run"), "--variants", variants])
    assert e.value.code == 2  # argparse's usage error, not a missing config.json


def test_time_limit_warns_when_the_schedule_cannot_finish(caplog):
    import keras

    from training.train import _TimeLimit

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    for minutes, warned in ((0.5, True), (60.0, False)):
        cb = _TimeLimit(minutes)
        cb.set_model(model)
        cb.set_params({"epochs": 10, "steps": 100})
        cb.start = time.time() - 6.0  # the first epoch took 6 s: 10 epochs need 1 min
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="training.train"):
            cb.on_epoch_end(0)
        assert any("more than --max-minutes" in r.getMessage() for r in caplog.records) == warned
        assert not getattr(model, "stop_training", False)  # a warning, not a stop
