"""Partial-label loss: BCE + soft Dice per channel, each masked by a per-pixel weight.

y_true: (B, H, W, 4) = liver label, tumor label, liver weight, tumor weight (all in {0, 1}).
The tumor weight is 0 on sources whose tumors were not labelled, except around pasted
synthetic tumors, so unlabelled tumors are never taught as background.
"""
from __future__ import annotations

import keras
from keras import ops

EPS = 1e-6


def _masked_bce(y, p, w):
    p = ops.clip(p, EPS, 1.0 - EPS)
    bce = -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
    return ops.sum(bce * w) / (ops.sum(w) + EPS)


def _masked_dice_loss(y, p, w, smooth: float = 1.0):
    inter = ops.sum(w * p * y)
    return 1.0 - (2.0 * inter + smooth) / (ops.sum(w * p) + ops.sum(w * y) + smooth)


def distill_term(y_pred):
    """Mean binary cross-entropy of the student's channels (0, 1) against a frozen teacher's (2, 3)
    over every pixel (training.distill): (B, H, W, 4) -> scalar."""
    p = ops.clip(y_pred[..., :2], EPS, 1.0 - EPS)
    q = ops.stop_gradient(y_pred[..., 2:])
    return ops.mean(-(q * ops.log(p) + (1.0 - q) * ops.log(1.0 - p)))


def make_loss(tumor_weight: float = 1.0, distill_weight: float = 0.0):
    """The loss on the expert (and pseudo) labels; with ``distill_weight``, y_pred carries a
    teacher's two channels after the model's (training.distill) and the loss adds that weight
    times distill_term."""
    def hepatoscan_loss(y_true, y_pred):
        liver, tumor, w_liver, w_tumor = (y_true[..., i] for i in range(4))
        p_liver, p_tumor = y_pred[..., 0], y_pred[..., 1]
        liver_loss = _masked_bce(liver, p_liver, w_liver) + _masked_dice_loss(liver, p_liver, w_liver)
        tumor_loss = _masked_bce(tumor, p_tumor, w_tumor) + _masked_dice_loss(tumor, p_tumor, w_tumor)
        loss = liver_loss + tumor_weight * tumor_loss
        return loss + distill_weight * distill_term(y_pred) if distill_weight else loss

    return hepatoscan_loss


def _dice_metric(channel: int, threshold: float = 0.5):
    def metric(y_true, y_pred):
        y, w = y_true[..., channel], y_true[..., 2 + channel]
        p = ops.cast(y_pred[..., channel] > threshold, "float32")
        return (2.0 * ops.sum(w * p * y) + 1.0) / (ops.sum(w * p) + ops.sum(w * y) + 1.0)

    metric.__name__ = ["liver_dice", "tumor_dice"][channel]
    return metric


METRICS = [_dice_metric(0), _dice_metric(1)]


def custom_objects() -> dict:
    return {"hepatoscan_loss": make_loss(), "liver_dice": METRICS[0], "tumor_dice": METRICS[1],
            "keras": keras}
