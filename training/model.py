"""The HepatoScan U-Net (Keras 3). Only ops that convert to full-integer int8 TFLite.

Input  (B, H, W, 1) float32 in [0, 1] (see hepatoscan.preprocessing).
Output (B, H, W, 2) float32 sigmoid probabilities: channel 0 liver (tumor included, as LiTS
defines liver), channel 1 tumor.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class UNetConfig:
    height: int = 256  # input size; a multiple of 2**depth
    width: int = 256
    depth: int = 4  # number of 2x downsamplings
    base_filters: int = 12  # filters at full resolution, doubled at each level
    bn_momentum: float = 0.9  # low momentum so running statistics keep up in short runs
    dropout: float = 0.1  # at the bottleneck only


def _conv_block(x, filters: int, cfg: UNetConfig, name: str):
    for i in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_unet(cfg: UNetConfig = UNetConfig()) -> keras.Model:
    """Encoder-decoder with skip connections; nearest upsampling + conv (int8-friendly)."""
    if cfg.height % (2 ** cfg.depth) or cfg.width % (2 ** cfg.depth):
        raise ValueError(f"input {cfg.height}x{cfg.width} must be a multiple of {2 ** cfg.depth}")
    inputs = keras.Input((cfg.height, cfg.width, 1), name="ct")
    x, skips = inputs, []
    for level in range(cfg.depth):
        x = _conv_block(x, cfg.base_filters * 2 ** level, cfg, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, cfg.base_filters * 2 ** cfg.depth, cfg, "bottleneck")
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(cfg.depth)):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, cfg.base_filters * 2 ** level, cfg, f"dec{level}")
    outputs = layers.Conv2D(2, 1, activation="sigmoid", name="liver_tumor")(x)
    return keras.Model(inputs, outputs, name="hepatoscan_unet")
