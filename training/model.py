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
    # Context at the bottleneck: dilated 3x3 convolutions on the 16 x 16 grid, added to it as a
    # residual whose last layer starts at zero. With (2, 4, 8) every output pixel sees the whole
    # input; without it the network sees about 125 pixels around a pixel, too few to place a liver
    # that a narrow window has turned into a flat white plateau. () for none (up to 1.5.1).
    context_dilations: tuple[int, ...] = ()
    context_filters: int = 64


def _conv_block(x, filters: int, cfg: UNetConfig, name: str):
    for i in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _context_block(x, cfg: UNetConfig):
    """(B, h, w, C) bottleneck features -> the same plus a residual of dilated convolutions. The
    residual's last 1x1 convolution is zero-initialised, so a network grown from a trained one
    (``grow``) computes exactly what that one did until training moves it."""
    y = layers.Conv2D(cfg.context_filters, 1, activation="relu", name="context_in")(x)
    for d in cfg.context_dilations:
        y = layers.Conv2D(cfg.context_filters, 3, dilation_rate=d, padding="same", activation="relu",
                          name=f"context_d{d}")(y)
    y = layers.Conv2D(x.shape[-1], 1, kernel_initializer="zeros", name="context_out")(y)
    return layers.Add(name="context_add")([x, y])


def grow(source: keras.Model, cfg: UNetConfig) -> keras.Model:
    """A network of ``cfg`` that starts as the trained ``source``: every layer of ``source`` is
    copied into the layer of the same name (which must exist, with the same weight shapes); the
    layers ``source`` lacks (the context block) keep their initialisation."""
    model = build_unet(cfg)
    for layer in source.layers:
        if not layer.weights:
            continue
        target = model.get_layer(layer.name)  # ValueError names the missing layer
        shapes = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in target.weights]
        if shapes[0] != shapes[1]:
            raise ValueError(f"layer {layer.name}: weights {shapes[0]} in the source, {shapes[1]} here")
        target.set_weights(layer.get_weights())
    return model


def context_dilations_of(model: keras.Model) -> tuple[int, ...]:
    """The dilations of ``model``'s context block in the order its layers apply them, read from
    their names (() for none)."""
    return tuple(int(layer.name[len("context_d"):]) for layer in model.layers if layer.name.startswith("context_d"))


def freeze_all_but(model: keras.Model, prefixes: tuple[str, ...]) -> list[str]:
    """Freeze every layer whose name does not start with one of ``prefixes``, and every
    BatchNormalization layer (frozen, it runs in inference mode: its statistics stay those the
    source model was evaluated with). Returns the names of the layers left trainable."""
    trainable = []
    for layer in model.layers:
        keep = layer.name.startswith(prefixes) and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = keep
        if keep and layer.weights:
            trainable.append(layer.name)
    return trainable


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
    if cfg.context_dilations:
        x = _context_block(x, cfg)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(cfg.depth)):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, cfg.base_filters * 2 ** level, cfg, f"dec{level}")
    outputs = layers.Conv2D(2, 1, activation="sigmoid", name="liver_tumor")(x)
    return keras.Model(inputs, outputs, name="hepatoscan_unet")
