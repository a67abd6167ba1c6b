"""BatchNormalization at inference (moving statistics) and LayerNormalization."""

from __future__ import annotations

import numpy as np

from cnn.layers import BatchNormalization, LayerNormalization
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.registry import converter

LAYER_NORMALIZATION_OPSET = 17  # the first opset with the LayerNormalization op


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


def layer_norm_axes(layer) -> list[int]:
    """The normalised axes of a built LayerNormalization, positive (batch = 0), sorted."""
    ndim = len(layer.input_shape) + 1
    axes = layer.axis if isinstance(layer.axis, list) else [layer.axis]
    return sorted(a + ndim if a < 0 else a for a in axes)


@converter(LayerNormalization)
def convert_layer_normalization(builder, layer, inputs, output):
    """Trailing axes at opset 17 and newer: the ``LayerNormalization`` op (opset 17's).
    Below 17, or over axes that are not the trailing ones: ``ReduceMean`` for the mean,
    ``ReduceMean`` of the squared deviation for the (biased) variance, ``Div`` by
    ``Sqrt(variance + epsilon)``, ``Mul`` gamma, ``Add`` beta, as cnn computes it."""
    weights = layer_weights(layer)
    ndim = len(layer.input_shape) + 1
    axes = layer_norm_axes(layer)
    sizes = [layer.input_shape[a - 1] for a in axes]
    gamma = weights.get("gamma")
    beta = weights.get("beta")
    x = inputs[0]
    if builder.opset >= LAYER_NORMALIZATION_OPSET and axes == list(range(axes[0], ndim)):
        scale = np.ones(sizes, np.float32) if gamma is None else gamma
        operands = [x, builder.initializer(scale, "gamma")]
        if beta is not None:
            operands.append(builder.initializer(beta, "beta"))
        builder.node("LayerNormalization", operands, output, axis=axes[0],
                     epsilon=float(layer.epsilon))
        return
    param_shape = [layer.input_shape[i - 1] if i in axes else 1 for i in range(1, ndim)]
    centered = builder.node("Sub", [x, builder.reduce("ReduceMean", x, axes)])
    variance = builder.reduce("ReduceMean", builder.node("Mul", [centered, centered]), axes)
    std = builder.node("Sqrt", [builder.node("Add", [
        variance, builder.scalar(layer.epsilon, "epsilon")])])
    steps = [("Div", std)]
    if gamma is not None:
        steps.append(("Mul", builder.initializer(gamma.reshape(param_shape), "gamma")))
    if beta is not None:
        steps.append(("Add", builder.initializer(beta.reshape(param_shape), "beta")))
    y = centered
    for k, (op_type, operand) in enumerate(steps):
        y = builder.node(op_type, [y, operand], output if k == len(steps) - 1 else None)
