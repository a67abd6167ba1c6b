"""Rescaling and Normalization (constants broadcast against a sample), the augmentation
layers, which are the identity at inference, and RandomCrop's inference crop and resize."""

from __future__ import annotations

import numpy as np

from cnn.layers import (Normalization, RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                        RandomRotation, RandomTranslation, RandomZoom, Rescaling)
from cnn.layers.preprocessing import EPSILON
from cnn.onnx.converters.layout import in_channels_first
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


@converter(RandomFlip, RandomRotation, RandomTranslation, RandomZoom, RandomContrast,
           RandomBrightness)
def convert_augmentation(builder, layer, inputs, output):
    """Augmentation changes images in training only: ``Identity`` at inference."""
    builder.node("Identity", inputs, output)


@converter(RandomCrop)
def convert_random_crop(builder, layer, inputs, output):
    """The inference computation: ``Slice`` of the centred window, then (when it is not the
    target's size already) ``Resize`` to ``sizes`` (N, C, height, width), ``linear`` with
    ``half_pixel`` coordinates, read from the input's shape so the batch may vary."""
    (top, rows), (left, cols) = layer.central_window()

    def emit(x, y):
        window_output = y if (rows, cols) == (layer.height, layer.width) else None
        window = builder.node("Slice", [x, builder.ints([top, left], "starts"),
                                        builder.ints([top + rows, left + cols], "ends"),
                                        builder.ints([2, 3], "axes")], window_output)
        if window_output is not None:
            return
        batch_channels = builder.node("Slice", [builder.node("Shape", [x]),
                                                builder.ints([0], "start"),
                                                builder.ints([2], "end")])
        sizes = builder.node("Concat", [batch_channels,
                                        builder.ints([layer.height, layer.width], "size")],
                             axis=0)
        builder.node("Resize", [window, "", "", sizes], y, mode="linear",
                     coordinate_transformation_mode="half_pixel")

    in_channels_first(builder, layer, inputs[0], output, emit)
