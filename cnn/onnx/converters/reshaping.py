"""ZeroPadding2D and GlobalAveragePooling2D."""

from __future__ import annotations

from cnn.layers import GlobalAveragePooling2D, ZeroPadding2D
from cnn.onnx.registry import converter


@converter(ZeroPadding2D)
def convert_zero_padding(builder, layer, inputs, output):
    """``Pad`` (constant zeros) of the H and W axes: pads ``[0, 0, top, left, 0, 0, bottom,
    right]``."""
    (top, bottom), (left, right) = layer.padding
    pads = builder.ints([0, 0, top, left, 0, 0, bottom, right], "pads")
    builder.node("Pad", [inputs[0], pads], output, mode="constant")


@converter(GlobalAveragePooling2D)
def convert_global_average_pooling(builder, layer, inputs, output):
    """``GlobalAveragePool`` -> (N, C, 1, 1), then ``Flatten`` unless ``keepdims``."""
    if layer.keepdims:
        builder.node("GlobalAveragePool", inputs, output)
        return
    builder.node("Flatten", [builder.node("GlobalAveragePool", inputs)], output, axis=1)
