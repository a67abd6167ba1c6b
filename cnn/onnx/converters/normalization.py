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
    """``BatchNormalization`` when the channel axis is 1 (conv maps, (N, F) features);
    otherwise ``x * scale + shift`` with the per-channel constants shaped to broadcast."""
    weights = layer_weights(layer)
    channels = layer.channels
    gamma = weights["gamma"] if layer.scale else np.ones(channels, np.float32)
    beta = weights["beta"] if layer.center else np.zeros(channels, np.float32)
    mean, variance = weights["moving_mean"], weights["moving_variance"]
    axis = normalized_axis(layer)
    if axis == 1:
        builder.node("BatchNormalization", [
            inputs[0], builder.initializer(gamma, "gamma"), builder.initializer(beta, "beta"),
            builder.initializer(mean, "moving_mean"),
            builder.initializer(variance, "moving_variance"),
        ], output, epsilon=float(layer.epsilon), momentum=float(layer.momentum))
        return
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + layer.epsilon)
    shift = beta - mean * scale
    shape = [channels if i == axis else 1 for i in range(1, len(layer.input_shape) + 1)]
    scaled = builder.node("Mul", [inputs[0], builder.initializer(scale.reshape(shape), "scale")])
    builder.node("Add", [scaled, builder.initializer(shift.reshape(shape), "shift")], output)
