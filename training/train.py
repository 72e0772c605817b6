"""Train the HepatoScan U-Net.

    python -m training.train --data ../shared/data --out runs/NAME [--epochs 16 --steps 100]

Writes runs/NAME/{model.keras, last.keras, config.json, log.csv, split.json}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from hepatoscan.preprocessing import InputSpec  # noqa: E402

from .augment import AugmentConfig, LoadedCase, augment_overrides, eval_input, make_sample  # noqa: E402
from .data import SplitConfig, discover_cases, split_by_patient  # noqa: E402
from .distill import with_teacher  # noqa: E402
from .losses import METRICS, make_loss  # noqa: E402
from .model import UNetConfig, build_unet, context_dilations_of, freeze_all_but, grow  # noqa: E402
from .pseudo import PseudoLabelConfig, attach_pseudo_labels  # noqa: E402

log = logging.getLogger("training.train")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 16
    steps_per_epoch: int = 100
    batch_size: int = 8
    learning_rate: float = 2e-3  # Adam, cosine-decayed to lr_final over the run
    lr_final: float = 5e-5
    tumor_loss_weight: float = 1.0
    # How a batch is drawn: slices with real tumor, other HU liver slices (synthetic tumors),
    # 8-bit liver slices, and slices without liver (any source).
    mix: tuple[float, float, float, float] = (0.25, 0.25, 0.4, 0.1)
    seed: int = 117
    max_minutes: float = 55.0  # stop early (after an epoch) to keep within the CPU budget
    init: str | None = None  # a .keras model to fine-tune from instead of a fresh network
    # Layer-name prefixes to train (e.g. ("context", "dec", "liver_tumor")); the rest, and every
    # BatchNormalization layer, stays frozen. () trains everything.
    train_only: tuple[str, ...] = ()
    # A model folder whose predictions label, where confident, the tumors of sources that have no
    # tumor labels (training.pseudo); None teaches no tumor there except synthetic ones.
    pseudo_tumor_model: str | None = None
    pseudo_band: tuple[float, float] = (0.25, 0.75)  # teacher probabilities between these are not taught
    # Patients with at most this many confident teacher tumor pixels are taught tumor-free
    # throughout their liver (training.pseudo); None: no patient is.
    pseudo_clean_max_px: int | None = None
    # Stochastic weight averaging: model.keras is the mean of the weights at the end of every epoch
    # from this one (1-based) on; last.keras keeps the last epoch's. None: model.keras is the last
    # epoch's. Meant for fine-tunes with BatchNorm frozen (--train-only), whose statistics then
    # belong to every averaged point.
    swa_from_epoch: int | None = None
    # Cross-window distillation (training.distill; needs init): weight of the term that teaches the
    # student, on every render, the initial model's probabilities on the same slice through its own
    # HU window (8-bit sources: as the runtime reads them). 0: off (all shipped models; v25 to v29
    # measured it, docs/model_history.md).
    distill_weight: float = 0.0


class SampleSource:
    """Draws augmented training samples by the mix of TrainConfig."""

    def __init__(self, cases: list[LoadedCase], spec: InputSpec, aug: AugmentConfig, cfg: TrainConfig):
        self.spec, self.aug, self.cfg = spec, aug, cfg
        hu = [c for c in cases if c.case.kind == "hu"]
        eight = [c for c in cases if c.case.kind != "hu"]
        self.pools = [
            [(c, z) for c in hu for z in c.tumor_slices],
            [(c, z) for c in hu for z in np.setdiff1d(c.liver_slices, c.tumor_slices)],
            [(c, z) for c in eight for z in c.liver_slices],
            [(c, z) for c in cases for z in c.other_slices],
        ]
        self.mix = np.array([m if pool else 0.0 for m, pool in zip(cfg.mix, self.pools)])
        self.mix /= self.mix.sum()
        self._counter, self._lock = 0, threading.Lock()

    def batch(self):
        """-> (x, y) of TrainConfig.batch_size samples; with distillation ((x, teacher's x), y)."""
        with self._lock:
            self._counter += 1
            rng = np.random.default_rng([self.cfg.seed, self._counter])
        teacher = self.cfg.distill_weight > 0
        samples = []
        for _ in range(self.cfg.batch_size):
            pool = self.pools[rng.choice(4, p=self.mix)]
            lc, z = pool[rng.integers(len(pool))]
            samples.append(make_sample(lc, int(z), rng, self.spec, self.aug, teacher=teacher))
        x, y, *xt = (np.stack(parts) for parts in zip(*samples))
        return ((x, xt[0]), y) if teacher else (x, y)


class _Batches(keras.utils.PyDataset):
    def __init__(self, source: SampleSource, steps: int):
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=6)
        self.source, self.steps = source, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, idx):
        return self.source.batch()


def validation_arrays(cases: list[LoadedCase], spec: InputSpec, max_per_case: int = 12):
    """Deterministic (x, y) of held-out slices through the runtime's own preprocessing."""
    xs, ys = [], []
    for lc in cases:
        zs = lc.liver_slices[np.linspace(0, len(lc.liver_slices) - 1, min(max_per_case, len(lc.liver_slices))).astype(int)]
        for z in zs:
            from hepatoscan.preprocessing import resize_mask

            lab = resize_mask(lc.labels[z], spec.height, spec.width)
            xs.append(eval_input(lc, int(z), spec)[..., None])
            w_t = np.full(lab.shape, float(lc.case.tumor_labeled))
            ys.append(np.stack([lab >= 1, lab == 2, np.ones(lab.shape), w_t], -1).astype(np.float32))
    return np.stack(xs), np.stack(ys)


class _SaveModel(keras.callbacks.Callback):
    """Saves ``model`` (the student, when the trained model wraps it with a teacher) after every epoch."""

    def __init__(self, model: keras.Model, path: Path):
        super().__init__()
        self.student, self.path = model, path

    def on_epoch_end(self, epoch, logs=None):
        self.student.save(self.path)


class _TimeLimit(keras.callbacks.Callback):
    """Stops after the epoch that passes the deadline, and says after the first epoch when the run,
    at that pace, will stop before its cosine schedule has decayed the learning rate."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes = minutes
        self.start = time.time()
        self.deadline = self.start + 60 * minutes

    def on_epoch_end(self, epoch, logs=None):
        epochs = (self.params or {}).get("epochs")
        if epoch == 0 and epochs:
            projected_min = (time.time() - self.start) / 60 * epochs
            if projected_min > self.minutes:
                log.warning("at this pace the %d epochs need about %.0f min, more than --max-minutes %g: the "
                            "run will stop before its learning rate has decayed (BatchNorm statistics may lag); "
                            "rerun with fewer --epochs or a larger --max-minutes", epochs, projected_min,
                            self.minutes)
        if time.time() > self.deadline:
            log.warning("time limit reached after epoch %d: stopping", epoch + 1)
            self.model.stop_training = True


class _WeightAverage(keras.callbacks.Callback):
    """Running mean of the model's weights at the end of every epoch from ``from_epoch`` (1-based) on."""

    def __init__(self, from_epoch: int):
        super().__init__()
        self.from_epoch = from_epoch
        self.mean: list[np.ndarray] | None = None
        self.count = 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.from_epoch:
            return
        weights = self.model.get_weights()
        self.count += 1
        if self.mean is None:
            self.mean = [w.astype(np.float64) for w in weights]
        else:
            for m, w in zip(self.mean, weights):
                m += (w - m) / self.count

    def apply(self) -> int:
        """Set the model's weights to the mean; -> how many epochs it averages (0: left as it was)."""
        if self.count:
            self.model.set_weights([m.astype(w.dtype) for m, w in zip(self.mean, self.model.get_weights())])
        return self.count


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def initial_model(cfg: TrainConfig, unet: UNetConfig) -> tuple[keras.Model, UNetConfig]:
    """The network training starts from, and its configuration as it really is: a fresh one of
    ``unet``, or cfg.init, grown a context block where ``unet`` asks for one that it lacks. An init
    that has a block keeps it (its dilations are recorded even when ``unet`` names none)."""
    if not cfg.init:
        return build_unet(unet), unet
    log.info("fine-tuning from %s", cfg.init)
    model = keras.models.load_model(cfg.init, compile=False)
    have = context_dilations_of(model)
    if have and unet.context_dilations and have != tuple(unet.context_dilations):
        raise ValueError(f"{cfg.init} has a context block with dilations {have}, not {unet.context_dilations}: "
                         "leave --context out to keep its block")
    if have:
        return model, dataclasses.replace(unet, context_dilations=have,
                                          context_filters=model.get_layer("context_in").filters)
    if unet.context_dilations:
        log.info("growing it a context block, dilations %s", unet.context_dilations)
        return grow(model, unet), unet
    return model, unet


def train(data: Path, out: Path, cfg: TrainConfig, unet: UNetConfig, aug: AugmentConfig,
          split_cfg: SplitConfig = SplitConfig()) -> keras.Model:
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    spec = InputSpec(height=unet.height, width=unet.width)
    split = split_by_patient(discover_cases(data), split_cfg)
    (out / "split.json").write_text(json.dumps({k: [c.patient for c in v] for k, v in split.items()}, indent=1))
    log.info("patients: %s", {k: len(v) for k, v in split.items()})
    train_cases = [LoadedCase.from_case(c) for c in split["train"]]
    val_cases = [LoadedCase.from_case(c) for c in split["val"]]
    pseudo = None
    if cfg.pseudo_tumor_model:
        pseudo = attach_pseudo_labels(train_cases, PseudoLabelConfig(cfg.pseudo_tumor_model, cfg.pseudo_band,
                                                                    cfg.pseudo_clean_max_px))
    source = SampleSource(train_cases, spec, aug, cfg)
    log.info("training pools (tumor, HU liver, 8-bit liver, no liver): %s", [len(p) for p in source.pools])
    model, unet = initial_model(cfg, unet)
    if cfg.train_only:
        log.info("training only %s", freeze_all_but(model, cfg.train_only))
    config = {"train": dataclasses.asdict(cfg), "unet": dataclasses.asdict(unet),
              "augment": dataclasses.asdict(aug), "split": dataclasses.asdict(split_cfg),
              "input": dataclasses.asdict(spec), "data": str(data), "git_commit": git_commit(),
              "sources": sorted({c.source for c in split["train"]})}
    if pseudo:
        config["train"]["pseudo_tumor"] = pseudo  # the teacher and what it labelled
    (out / "config.json").write_text(json.dumps(config, indent=1))
    student = model
    if cfg.distill_weight > 0:
        if not cfg.init:
            raise ValueError("distillation teaches the initial model's outputs: give --init")
        model = with_teacher(student, keras.models.load_model(cfg.init, compile=False))
        log.info("distilling from %s (its HU view) at weight %g", cfg.init, cfg.distill_weight)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, total_steps,
                                                      alpha=cfg.lr_final / cfg.learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=make_loss(cfg.tumor_loss_weight, cfg.distill_weight), metrics=METRICS)
    callbacks = [keras.callbacks.CSVLogger(str(out / "log.csv")),
                 _SaveModel(student, out / "last.keras"),
                 _TimeLimit(cfg.max_minutes)]
    swa = None
    if cfg.swa_from_epoch:
        if any(layer.trainable and isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
            log.warning("averaging weights over epochs while BatchNorm layers train: the mean's statistics "
                        "may not fit its weights (use --train-only, which freezes them)")
        swa = _WeightAverage(cfg.swa_from_epoch)
        callbacks.append(swa)
    val = validation_arrays(val_cases, spec) if val_cases else None
    if val is not None and cfg.distill_weight > 0:
        val = ((val[0], val[0]), val[1])  # the runtime's view, for both
    model.fit(_Batches(source, cfg.steps_per_epoch), epochs=cfg.epochs, validation_data=val,
              callbacks=callbacks, verbose=2)
    if swa:
        config["train"]["swa_epochs_averaged"] = swa.apply()
        log.info("model.keras: the mean of the weights of %d epochs", config["train"]["swa_epochs_averaged"])
        (out / "config.json").write_text(json.dumps(config, indent=1))
    student.save(out / "model.keras")
    return student


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--steps", type=int, default=TrainConfig.steps_per_epoch)
    p.add_argument("--batch", type=int, default=TrainConfig.batch_size)
    p.add_argument("--base-filters", type=int, default=UNetConfig.base_filters)
    p.add_argument("--max-minutes", type=float, default=TrainConfig.max_minutes)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--lr", type=float, default=TrainConfig.learning_rate, help="initial Adam learning rate")
    p.add_argument("--lr-final", type=float, default=TrainConfig.lr_final)
    p.add_argument("--init", help="fine-tune this .keras model (e.g. runs/v2/model.keras)")
    p.add_argument("--context", default="", metavar="D,D,...",
                   help="dilations of a bottleneck context block, e.g. 2,4,8; with --init the model is "
                        "grown one (it starts out computing what the init does)")
    p.add_argument("--train-only", default="", metavar="PREFIX,...",
                   help="train only the layers whose names start so, e.g. context,dec,liver_tumor; "
                        "the rest and every BatchNormalization layer stay frozen")
    p.add_argument("--pseudo-tumor", metavar="MODEL_DIR",
                   help="label the tumors of sources without tumor labels with this model's confident "
                        "predictions (e.g. models), inside the expert liver mask")
    p.add_argument("--pseudo-band", default=",".join(map(str, TrainConfig.pseudo_band)), metavar="LOW,HIGH",
                   help="with --pseudo-tumor: teacher probabilities above HIGH are taught as tumor, below LOW "
                        "as none, between not at all (LOW 0 teaches no tumor-free liver: positives only)")
    p.add_argument("--pseudo-clean-max-px", type=int, default=TrainConfig.pseudo_clean_max_px, metavar="N",
                   help="with --pseudo-tumor: a patient in whose liver the teacher is confident of at most N "
                        "tumor pixels is taught tumor-free throughout its liver (e.g. 0)")
    p.add_argument("--swa-from-epoch", type=int, default=TrainConfig.swa_from_epoch, metavar="N",
                   help="save as model.keras the mean of the weights at the end of every epoch from N on "
                        "(stochastic weight averaging; for fine-tunes with --train-only)")
    p.add_argument("--distill", type=float, default=TrainConfig.distill_weight, metavar="WEIGHT",
                   help="with --init: also teach, at this weight, the initial model's probabilities on each "
                        "slice through its own HU window, whatever window the sample is rendered with "
                        "(cross-window distillation, training.distill), e.g. 1")
    p.add_argument("--aug", action="append", default=[], metavar="NAME=VALUE",
                   help="override an AugmentConfig field, e.g. --aug p_liver_clip_window=0.45 "
                        "--aug liver_clip_offset_hu=-70,10 (repeatable; recorded in config.json)")
    a = p.parse_args(argv)
    try:
        aug = augment_overrides(a.aug)
    except ValueError as e:
        p.error(str(e))
    try:
        low, high = (float(x) for x in a.pseudo_band.split(","))
    except ValueError:
        p.error(f"--pseudo-band {a.pseudo_band!r}: expected LOW,HIGH, e.g. 0.25,0.75")
    if not 0.0 <= low <= high <= 1.0:
        p.error(f"--pseudo-band {a.pseudo_band!r}: expected 0 <= LOW <= HIGH <= 1")
    if a.pseudo_clean_max_px is not None and a.pseudo_clean_max_px < 0:
        p.error(f"--pseudo-clean-max-px {a.pseudo_clean_max_px}: expected a count of pixels, 0 or more")
    if a.distill < 0 or (a.distill > 0 and not a.init):
        p.error(f"--distill {a.distill:g}: expected a weight of 0 or more, and --init (the teacher)")
    if a.swa_from_epoch is not None and not 1 <= a.swa_from_epoch <= a.epochs:
        p.error(f"--swa-from-epoch {a.swa_from_epoch}: expected an epoch from 1 to --epochs ({a.epochs})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = TrainConfig(epochs=a.epochs, steps_per_epoch=a.steps, batch_size=a.batch,
                      max_minutes=a.max_minutes, seed=a.seed, learning_rate=a.lr, lr_final=a.lr_final,
                      init=a.init, train_only=tuple(x.strip() for x in a.train_only.split(",") if x.strip()),
                      pseudo_tumor_model=a.pseudo_tumor, pseudo_band=(low, high),
                      pseudo_clean_max_px=a.pseudo_clean_max_px, swa_from_epoch=a.swa_from_epoch,
                      distill_weight=a.distill)
    try:
        context = tuple(int(d) for d in a.context.split(",") if d.strip())
    except ValueError:
        p.error(f"--context {a.context!r}: expected comma-separated integer dilations, e.g. 2,4,8")
    train(a.data, a.out, cfg, UNetConfig(base_filters=a.base_filters, context_dilations=context), aug)


if __name__ == "__main__":
    main()
