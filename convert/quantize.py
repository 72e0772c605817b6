"""Convert a trained Keras U-Net to TFLite and prove the quantized models agree with it.

    python -m convert.quantize runs/NAME --out models/ [--data ../shared/data] [--variants int8,...]

Writes float32, float16 and full-integer int8 (int8 weights, activations, input and output;
calibrated on real slices through the runtime's preprocessing) models, measures mask agreement
against the Keras float model on held-out slices (run through LiteRT, as the runtime does), and
writes the shipped model with its JSON card.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from hepatoscan.postprocess import describe as describe_postprocessing  # noqa: E402
from hepatoscan.preprocessing import (SLICE_ORIENTATION, InputSpec, render_8bit, standardize_8bit,  # noqa: E402
                                      window_estimate_landmarks)
from training.augment import LoadedCase, eval_input  # noqa: E402
from training.data import SplitConfig, discover_cases, split_by_patient  # noqa: E402

log = logging.getLogger("convert.quantize")

DEFAULT_THRESHOLDS = {"liver": 0.5, "tumor": 0.5}

AGREEMENT_BAR = {"liver": 0.98, "tumor": 0.95}  # mask Dice, quantized vs Keras float
QUANT_DESCRIPTIONS = {
    "float32": "float32 weights and activations",
    "float16": "float16 weights, float32 compute",
    "int8": "full-integer int8 weights, activations, input and output (TFLite converter)",
    "int8-mixed": "int8 weights and activations everywhere except the first 3x3 convolution (float32); "
                  "float32 input and output (ai-edge-quantizer)",
}
VARIANTS = ("float32", "float16", "int8", "int8-mixed")
# Of the variants that meet AGREEMENT_BAR, the first of these ships. Full int8 first: the smallest,
# integer-only (what NPUs and the Edge TPU run), and about 15% faster than int8-mixed in most runs.
# Not "the fastest": timed on this 2-core machine the two swap places from run to run (one model,
# two runs on one day: 4.7 against 5.3 and 6.6 against 5.0 ms a slice), and so did the shipped file.
SHIP_PREFERENCE = ("int8", "int8-mixed", "float16", "float32")
CALIBRATION_WINDOWS = [(-160, 240), (-125, 225), (-45, 105), (-500, 500), (-850, 650), (-1000, 1000)]


def _slices(cases: list[LoadedCase], per_case: int, rng, tumor_first: bool = True) -> list[tuple[LoadedCase, int]]:
    out = []
    for lc in cases:
        pool = list(lc.tumor_slices) if tumor_first and len(lc.tumor_slices) else []
        pool += list(np.setdiff1d(lc.liver_slices, pool))
        if len(lc.other_slices):
            pool += list(rng.choice(lc.other_slices, min(3, len(lc.other_slices)), replace=False))
        pick = pool[: per_case // 2] + list(rng.choice(pool, min(len(pool), per_case - per_case // 2), replace=False))
        out += [(lc, int(z)) for z in dict.fromkeys(pick)]
    return out


def calibration_inputs(cases: list[LoadedCase], spec: InputSpec, n: int = 240, seed: int = 0) -> np.ndarray:
    """(n, H, W, 1) float32 real slices as the runtime sees them: HU through the model window,
    and 8-bit renders (narrow to wide windows) and exports through the standardisation."""
    rng = np.random.default_rng(seed)
    hu = [c for c in cases if c.case.kind == "hu"]
    eight = [c for c in cases if c.case.kind != "hu"]
    xs = []
    for lc, z in _slices(hu, n // (3 * max(1, len(hu))), rng):  # 2/3 from HU volumes (HU + renders)
        xs.append(eval_input(lc, z, spec))
        window = CALIBRATION_WINDOWS[rng.integers(len(CALIBRATION_WINDOWS))]
        gray = render_8bit(lc.images[z], window)
        from hepatoscan.preprocessing import resize_image

        xs.append(resize_image(standardize_8bit(gray, spec.window_hu)[0], spec.height, spec.width))
    per = max(1, (n - len(xs)) // max(1, len(eight)))
    for lc, z in _slices(eight, per, rng, tumor_first=False):
        xs.append(eval_input(lc, z, spec))
        if len(xs) >= n:
            break
    log.info("calibration: %d slices", len(xs))
    return np.stack(xs)[..., None].astype(np.float32)


def convert(model, kind: str, calibration: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif kind == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def tflite_probs(model_bytes: bytes, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Run a TFLite model exactly as the runtime does (hepatoscan.tflite_model, LiteRT).
    x (N, H, W, 1) -> (N, H, W, 2)."""
    from hepatoscan.tflite_model import TFLiteModel

    return TFLiteModel(model_content=model_bytes, num_threads=threads).predict_probs(x[..., 0])


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2 * (a & b).sum() / denom)


def agreement(ref_probs: np.ndarray, probs: np.ndarray, thresholds: dict) -> dict:
    """Mask Dice over all slices, per channel, between reference and quantized probabilities."""
    return {name: round(mask_dice(ref_probs[..., c] > thresholds[name], probs[..., c] > thresholds[name]), 4)
            for c, name in enumerate(("liver", "tumor"))}


def time_tflite(model_bytes: bytes, spec: InputSpec, threads: int = 2, runs: int = 20) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    t = time.perf_counter()
    for _ in range(runs):
        it.invoke()
    return 1000 * (time.perf_counter() - t) / runs


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv=None):
    import keras

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder (model.keras, config.json)")
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--calibration-slices", type=int, default=240)
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--update-card", action="store_true",
                   help="only rewrite the shipped card (e.g. after training.evaluate wrote eval.json)")
    p.add_argument("--variants", default=",".join(VARIANTS), metavar="KIND,...",
                   help=f"convert only these (of {', '.join(VARIANTS)}), e.g. int8 to screen a candidate "
                        "(scripts/screen_model.sh); the first of SHIP_PREFERENCE (int8, int8-mixed, float16, "
                        "float32) that meets the agreement bar ships")
    a = p.parse_args(argv)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        p.error(f"--variants {a.variants!r}: expected one or more of {', '.join(VARIANTS)}")
    if "int8-mixed" in variants and "float32" not in variants:
        variants.insert(0, "float32")  # int8-mixed is quantized from the float32 TFLite model
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = json.loads((a.run / "config.json").read_text())
    spec = InputSpec(config["input"]["height"], config["input"]["width"], tuple(config["input"]["window_hu"]))
    if a.update_card:
        update_card(a.run, a.out, config, spec, a.version)
        return
    model = keras.saving.load_model(a.run / "model.keras", compile=False)
    split = split_by_patient(discover_cases(a.data), SplitConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                                   for k, v in config["split"].items()}))
    train_cases = [LoadedCase.from_case(c) for c in split["train"]]
    calib = calibration_inputs(train_cases, spec, a.calibration_slices)
    del train_cases
    held_out = [LoadedCase.from_case(c) for c in split["test"] + split["val"]]
    rng = np.random.default_rng(1)
    check = np.stack([eval_input(lc, z, spec) for lc, z in _slices(held_out, 16, rng)])[..., None]
    log.info("agreement check on %d held-out slices", len(check))
    thresholds = DEFAULT_THRESHOLDS  # for the agreement check; the card's come from card_thresholds()
    ref = model.predict(check, batch_size=8, verbose=0)
    report = {"calibration_slices": int(len(calib)), "check_slices": int(len(check)), "variants": {}}
    blobs = {}
    for kind in variants:
        if kind == "int8-mixed":  # int8 everywhere but the first convolution (ai-edge-quantizer)
            from .selective import quantize_selective

            blob = quantize_selective(blobs["float32"], calib)
        else:
            blob = convert(model, kind, calib)
        blobs[kind] = blob
        agree = agreement(ref, tflite_probs(blob, check), thresholds)
        report["variants"][kind] = {"bytes": len(blob), "agreement_dice": agree,
                                    "ms_per_slice_2_threads": round(time_tflite(blob, spec), 1),
                                    "meets_bar": all(agree[k] >= AGREEMENT_BAR[k] for k in AGREEMENT_BAR)}
        log.info("%s: %s", kind, report["variants"][kind])
    t = time.perf_counter()
    for _ in range(5):
        model.predict(check[:1], verbose=0)
    report["keras_float_ms_per_slice"] = round(1000 * (time.perf_counter() - t) / 5, 1)
    ship = variant_to_ship(report["variants"])
    if ship is None:
        raise SystemExit(f"no converted variant ({', '.join(variants)}) agrees with the Keras model as well as "
                         f"{AGREEMENT_BAR} asks (see the log above): convert int8-mixed too, which keeps the first "
                         "convolution in float")
    report["shipped"] = ship
    a.out.mkdir(parents=True, exist_ok=True)
    for kind, blob in blobs.items():
        (a.run / f"hepatoscan_unet_{kind.replace('-', '_')}.tflite").write_bytes(blob)
    fname = f"hepatoscan_unet_{ship.replace('-', '_')}.tflite"
    _remove_shipped(a.out)
    (a.out / fname).write_bytes(blobs[ship])
    (a.run / "quantization.json").write_text(json.dumps(report, indent=1))
    card = build_card(config, a.run, fname, blobs[ship], ship, report, spec, a.version)
    (a.out / fname.replace(".tflite", ".json")).write_text(json.dumps(card, indent=1, ensure_ascii=False))
    log.info("shipped %s (%d bytes) to %s", fname, len(blobs[ship]), a.out)
    shutil.copy(a.run / "config.json", a.out / "training_config.json")
    # The float source model (no optimizer state): for the agreement test and for fine-tuning.
    (a.out / "source").mkdir(exist_ok=True)
    save_source(model, a.out / "source" / "hepatoscan_unet.keras")


def save_source(model, path: Path) -> bool:
    """Save the float source model at ``path`` unless the file there holds the same weights (a
    Keras file's bytes change with every save: re-shipping one network rewrote 5 MB in git).
    Returns whether it wrote."""
    import keras

    if path.exists():
        saved, now = keras.saving.load_model(path, compile=False).get_weights(), model.get_weights()
        if len(saved) == len(now) and all(np.array_equal(a, b) for a, b in zip(saved, now)):
            log.info("%s holds these weights already: left as it is", path)
            return False
    model.save(path)
    return True


def variant_to_ship(variants: dict) -> str | None:
    """{kind: {"meets_bar": bool, ...}} -> the first of SHIP_PREFERENCE that meets the bar, or None."""
    return next((k for k in SHIP_PREFERENCE if variants.get(k, {}).get("meets_bar")), None)


def _remove_shipped(out: Path) -> None:
    """The output folder holds one shipped model: drop an earlier one (it may be another variant)."""
    for old in out.glob("hepatoscan_unet_*.tflite"):
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
        log.info("removed the previously shipped %s and its card", old.name)


def update_card(run: Path, out: Path, config: dict, spec: InputSpec, version: str) -> None:
    report = json.loads((run / "quantization.json").read_text())
    fname = f"hepatoscan_unet_{report['shipped'].replace('-', '_')}.tflite"
    blob = (out / fname).read_bytes()
    card = build_card(config, run, fname, blob, report["shipped"], report, spec, version)
    (out / fname.replace(".tflite", ".json")).write_text(json.dumps(card, indent=1, ensure_ascii=False))
    log.info("card of %s updated", fname)


def card_thresholds(run: Path) -> tuple[dict, str]:
    """-> (the card's thresholds, how they were chosen): the run's threshold.json (training.threshold,
    chosen on the validation patients) where it exists, else DEFAULT_THRESHOLDS."""
    path = run / "threshold.json"
    if not path.exists():
        return dict(DEFAULT_THRESHOLDS), "default 0.5, untuned"
    choice = json.loads(path.read_text())
    return {"liver": float(choice["liver"]), "tumor": float(choice["tumor"])}, choice["chosen_on"]


# How the runtime reads a slice before the model, in words: the card's input.preprocessing.
INPUT_PREPROCESSING = (
    "HU clipped to window_hu and scaled to [0, 1]; slice resized bilinearly to height x width (a non-square "
    "slice first centred on a square of its own lowest value: hepatoscan.preprocessing.pad_to_square). At run "
    "time a slice whose body (above -200 HU; in 8-bit images above grey 12 and the grey its estimated window "
    "gives -200 HU) spans less than body_fill of its longer side is first cropped to a box centred on the body, "
    "its sides the body's longer extent / body_fill (hepatoscan.preprocessing.body_box). 8-bit display "
    "images: window estimated from the histogram (hepatoscan.preprocessing.standardize_8bit), white (grey 255) "
    "read clipped_white_above_hu above its top, mapped to window_hu; in a stack of 8-bit slices, a slice read "
    "more than stack_outlier_ratio off the stack's median window takes it "
    "(hepatoscan.preprocessing.share_stack_window).")


def build_card(config, run: Path, fname: str, blob: bytes, kind: str, qreport: dict, spec: InputSpec,
               version: str) -> dict:
    thresholds, chosen_on = card_thresholds(run)
    eval_path = run / "eval.json"
    metrics = json.loads(eval_path.read_text()) if eval_path.exists() else {}
    split = json.loads((run / "split.json").read_text())
    return {
        "name": f"hepatoscan-unet-{kind}", "version": version, "default": True, "file": fname,
        "sha256": sha256(blob), "bytes": len(blob),
        "task": "liver and liver-tumor segmentation of axial abdominal CT, slice by slice (2D)",
        "input": {"height": spec.height, "width": spec.width, "channels": 1, "layout": "NHWC",
                  "window_hu": list(spec.window_hu), "range": [0, 1], "body_fill": spec.body_fill,
                  "preprocessing": INPUT_PREPROCESSING,
                  "window_estimate": window_estimate_landmarks(),
                  "orientation": "axial slice, anterior up, patient right on the image left",
                  "slice_orientation": SLICE_ORIENTATION},
        "outputs": ["liver", "tumor"],
        "output_semantics": {"liver": "sigmoid probability of liver including tumor (LiTS)",
                             "tumor": "sigmoid probability of liver tumor"},
        "thresholds": thresholds,
        "thresholds_chosen_on": chosen_on,
        "postprocessing": {**describe_postprocessing(), "effect": postprocessing_effect(metrics)},
        "labels": {"0": "background", "1": "liver", "2": "tumor"},
        "quantization": {"type": kind,
                         "description": QUANT_DESCRIPTIONS[kind], "calibration_slices": qreport["calibration_slices"],
                         "agreement_vs_keras_float": {k: v["agreement_dice"] for k, v in qreport["variants"].items()},
                         "agreement_bar": AGREEMENT_BAR, "check_slices": qreport["check_slices"],
                         "ms_per_slice_2_threads": {k: v["ms_per_slice_2_threads"] for k, v in qreport["variants"].items()},
                         "keras_float_ms_per_slice": qreport["keras_float_ms_per_slice"]},
        "architecture": {"type": "2D U-Net", **config["unet"]},
        "training": {"sources": config["sources"], "split": split, "seed": config["split"]["seed"],
                     **_history(run, config["train"]),
                     "loss": "BCE + soft Dice per channel; tumor channel masked on tumor-unlabelled sources "
                             "except around synthetic tumors and, in steps with pseudo_tumor_labels, where a "
                             "teacher's confident labels exist",
                     "augmentation": config["augment"], "git_commit": config["git_commit"]},
        "metrics": metrics,
        "data": "see ../shared/data/README.md (IRCADb, CHAOS, LiTS, MSD Task03, CURVAS); research licences, "
                "non-commercial; data are not redistributed with the model",
        "intended_use": "research only; not a medical device",
    }


def postprocessing_effect(metrics: dict) -> dict:
    """Per held-out volume of eval.json, Dice of the card's recipe alone (training.evaluate.card_only:
    no post-processing) and of the runtime, which post-processes: {case: {"liver_dice": [card only,
    runtime], "tumor_dice": [...]}}."""
    effect = {}
    for v in metrics.get("volumes", []):
        if "card_only" not in v:
            continue
        effect[v["case"]] = {k: [v["card_only"][k], v[k]] for k in ("liver_dice", "tumor_dice")
                             if k in v["card_only"] and v["card_only"][k] is not None}
    return {"dice_card_only_vs_runtime": effect} if effect else {}


def _own_steps(run: Path, train_config: dict) -> dict:
    """How the run itself was made: its own optimisation, or (training.average) none at all, in
    which case the figures of the averaged models are under averaged_from, not repeated here."""
    if train_config.get("averaged_from"):
        return {"method": "mean of the weights of the models in averaged_from (python -m training.average); "
                          "no training steps of its own"}
    out = {"method": "fine-tuned from fine_tuned_from" if train_config.get("init") else "trained from scratch",
           "epochs_planned": train_config["epochs"], "epochs_run": _epochs_run(run),
           "steps_per_epoch": train_config["steps_per_epoch"], "batch_size": train_config["batch_size"],
           "optimizer": "Adam, cosine-decayed learning rate",
           "learning_rate": [train_config["learning_rate"], train_config["lr_final"]]}
    if train_config.get("pseudo_tumor_model"):
        lo, hi = train_config["pseudo_band"]
        teacher = train_config.get("pseudo_tumor", {}).get("teacher") or train_config["pseudo_tumor_model"]
        none = (f"none below {lo} or outside the expert liver mask, nothing in between" if lo > 0 else
                "none outside the expert liver mask, the rest of the liver not taught (positives only)")
        out["pseudo_tumor_labels"] = (f"tumors of the sources without tumor labels taught where {teacher} (the "
                                      f"teacher, through the runtime on each slice as given) was confident: tumor "
                                      f"above {hi}, {none} (training.pseudo)")
        clean = train_config.get("pseudo_clean_max_px")
        if clean is not None:
            n = train_config.get("pseudo_tumor", {}).get("tumor_free_patients")
            out["pseudo_tumor_labels"] += (f"; patients with at most {clean} confident tumor pixels"
                                           f"{f' ({n})' if n is not None else ''} taught tumor-free throughout "
                                           "their liver")
    if train_config.get("swa_from_epoch"):
        n = train_config.get("swa_epochs_averaged")
        out["weight_averaging"] = (f"the mean of the weights at the end of every epoch from epoch "
                                   f"{train_config['swa_from_epoch']} on{f' ({n} epochs)' if n else ''} "
                                   "(stochastic weight averaging)")
    if train_config.get("distill_weight"):
        out["distillation"] = (f"also taught, at weight {train_config['distill_weight']:g}, fine_tuned_from's "
                               "probabilities on each sample's slice through its own HU window (8-bit sources: "
                               "the export as the runtime reads it), whatever window the sample was rendered "
                               "with (training.distill)")
    if train_config.get("train_only"):
        out["trained_layers"] = (f"only the layers named {', '.join(p + '*' for p in train_config['train_only'])}; "
                                 "the rest, and every BatchNormalization layer, frozen")
    return out


def _context(run: Path) -> list[int]:
    """The bottleneck context block's dilations of the run's network ([] for none or unknown)."""
    path = run / "config.json"
    return list(json.loads(path.read_text())["unet"].get("context_dilations") or []) if path.exists() else []


def _history(run: Path, train_config: dict | None) -> dict:
    """How a run's model came to be: its own steps, what it was fine-tuned from and what it averages,
    recursively. A shipped model restored by training.restore (a card.json in the run) has its
    history in that card, as its earlier runs are usually gone."""
    if (run / "card.json").exists():
        card = json.loads((run / "card.json").read_text())
        history = {k: v for k, v in card["training"].items()
                   if k not in ("sources", "split", "seed", "augmentation", "loss")}
        if history.get("averaged_from") and "method" not in history:  # cards before 1.5.1 listed steps
            history = {**_own_steps(run, {"averaged_from": history["averaged_from"]}),
                       **{k: v for k, v in history.items() if k in ("fine_tuned_from", "averaged_from", "git_commit")}}
        restored = f"{card['name']} {card['version']}"
        if history.get("restored_from"):  # that card was itself a re-shipped model
            restored += f" (itself the weights of {history['restored_from']})"
        return {**history, "restored_from": restored}
    if train_config is None:  # the run folder is gone: only its name is known
        return {"epochs_run": _epochs_run(run)}
    out = {**_own_steps(run, train_config), "fine_tuned_from": _base_run(train_config.get("init"))}
    dilations = _context(run)
    if train_config.get("init") and dilations and not _context(Path(train_config["init"]).parent):
        out["grown"] = (f"a bottleneck context block (dilations {', '.join(map(str, dilations))}, zero-initialised "
                        "residual) added to the base network before these steps (training.model.grow)")
    if train_config.get("averaged_from"):
        out["averaged_from"] = _averaged_from(train_config)
    return out


def _base_run(init: str | None) -> dict | None:
    """What a fine-tuned model started from: the base run's recipe in brief (None: trained from scratch)."""
    if not init:
        return None
    base = Path(init).parent
    cfg = json.loads((base / "config.json").read_text()) if (base / "config.json").exists() else None
    out = {"model": init, **_history(base, cfg["train"] if cfg else None)}
    if cfg:
        out.setdefault("git_commit", cfg["git_commit"])  # a restored card's own commit comes first
    return out


def _averaged_from(train_config: dict) -> list[dict] | None:
    """The models whose mean weights a run holds (training.average), each with its recipe; else None."""
    models = train_config.get("averaged_from")
    return [_base_run(m) for m in models] if models else None


def _epochs_run(run: Path) -> int:
    log_csv = run / "log.csv"
    return max(0, len(log_csv.read_text().strip().splitlines()) - 1) if log_csv.exists() else 0


if __name__ == "__main__":
    main()
