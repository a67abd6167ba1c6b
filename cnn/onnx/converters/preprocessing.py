"""Rescaling and Normalization (constants broadcast against a sample), and the augmentation
layers, which are the identity at inference."""

from __future__ import annotations

import numpy as np

from cnn.layers import Normalization, RandomFlip, RandomRotation, RandomTranslation, Rescaling
from cnn.layers.preprocessing import EPSILON
from cnn.onnx.registry import converter


@converter(Rescaling)
def convert_rescaling(builder, layer, inputs, output):
    """``x * scale + offset`` (``Mul``, ``Add``)."""
    scaled = builder.node("Mul", [inputs[0], builder.initializer(layer.scale, "scale")])
    builder.node("Add", [scaled, builder.initializer(layer.offset, "offset")], output)


@converter(Normalization)
def convert_normalization(builder, layer, inputs, output):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` as ``Sub``, ``Div`` (``invert``: ``x *
    denominator + mean``); the statistics have the sample's shape with the reduced axes 1."""
    mean = np.asarray(layer.buffers["mean"], dtype=np.float64)
    denominator = np.maximum(np.sqrt(np.asarray(layer.buffers["variance"], np.float64)),
                             EPSILON)
    mean_name = builder.initializer(mean, "mean")
    denominator_name = builder.initializer(denominator, "denominator")
    if layer.invert:
        scaled = builder.node("Mul", [inputs[0], denominator_name])
        builder.node("Add", [scaled, mean_name], output)
        return
    centered = builder.node("Sub", [inputs[0], mean_name])
    builder.node("Div", [centered, denominator_name], output)


@converter(RandomFlip, RandomRotation, RandomTranslation)
def convert_augmentation(builder, layer, inputs, output):
    """Augmentation changes images in training only: ``Identity`` at inference."""
    builder.node("Identity", inputs, output)
