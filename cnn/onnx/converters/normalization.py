"""BatchNormalization at inference (moving statistics)."""

from __future__ import annotations

import numpy as np

from cnn.layers import BatchNormalization
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.registry import converter


def normalized_axis(layer) -> int:
    """The layer's channel axis counting the batch axis as 0 (resolved as cnn resolves it)."""
    ndim = len(layer.input_shape) + 1
    axis = layer.axis if layer.axis is not None else (1 if ndim == 4 else -1)
    return axis + ndim if axis < 0 else axis


@converter(BatchNormalization)
def convert_batch_normalization(builder, layer, inputs, output):
    """``BatchNormalization``, whose channel axis is 1: another channel axis is swapped to
    1 by a ``Transpose`` before it and back after it."""
    weights = layer_weights(layer)
    channels = layer.channels
    gamma = weights["gamma"] if layer.scale else np.ones(channels, np.float32)
    beta = weights["beta"] if layer.center else np.zeros(channels, np.float32)
    axis = normalized_axis(layer)
    x = inputs[0]
    perm = list(range(len(layer.input_shape) + 1))
    perm[1], perm[axis] = perm[axis], perm[1]
    if axis != 1:
        x = builder.node("Transpose", [x], perm=perm)
    normalized = output if axis == 1 else builder.unique("normalized")
    builder.node("BatchNormalization", [
        x, builder.initializer(gamma, "gamma"), builder.initializer(beta, "beta"),
        builder.initializer(weights["moving_mean"], "moving_mean"),
        builder.initializer(weights["moving_variance"], "moving_variance"),
    ], normalized, epsilon=float(layer.epsilon), momentum=float(layer.momentum))
    if axis != 1:
        builder.node("Transpose", [normalized], output, perm=perm)
