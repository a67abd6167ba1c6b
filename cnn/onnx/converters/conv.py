"""The convolutions (Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose) and
the window pooling layers, with explicit pads (Keras's "same" puts an odd extra row or column
at the end: ``pads = [top, left, bottom, right]`` says so exactly; Conv1D's "causal" is all
``(k - 1) * dilation`` pads at the start). Channels-last layers run between two
``Transpose`` nodes (``cnn.onnx.converters.layout``); the activation comes after the
transpose back, so that a softmax sees the layer's own last axis."""

from __future__ import annotations

from cnn.layers import (AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                        DepthwiseConv2D, MaxPooling1D, MaxPooling2D, SeparableConv2D)
from cnn.onnx.converters.activations import emit_after_linear
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.converters.layout import in_channels_first, onnx_pads, spatial_sizes, window_pads
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import converter


def variable_length_pads(layer, window, dilations) -> dict:
    """The padding attribute of a window over an axis of variable length (a None size):
    zeros ("valid"), ``auto_pad="SAME_UPPER"`` (Keras's "same": the odd cell at the end),
    or all ``(k - 1) * dilation`` at the start ("causal")."""
    if layer.padding == "valid":
        return {"pads": [0, 0] * len(window)}
    if layer.padding == "same":
        return {"auto_pad": "SAME_UPPER"}
    if layer.padding == "causal":
        return {"pads": [(window[0] - 1) * dilations[0], 0]}
    raise OnnxExportError(f"layer {layer.describe()} cannot be exported: padding "
                          f"{layer.padding!r} on an axis of variable length")


def conv_attributes(layer, group: int = 1) -> dict:
    """``Conv``'s geometry attributes for a built window layer (``layer.pads`` as cnn's
    kernels use them; see ``variable_length_pads`` for a None size)."""
    if None in spatial_sizes(layer):
        padding = variable_length_pads(layer, layer.kernel_size, layer.dilation_rate)
    else:
        padding = {"pads": onnx_pads(layer.pads, layer.rank)}
    return {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides),
            **padding, "dilations": list(layer.dilation_rate), "group": group}


def pool_padding(layer) -> dict:
    if None in spatial_sizes(layer):
        return variable_length_pads(layer, layer.pool_size, [1] * len(layer.pool_size))
    return {"pads": window_pads(layer, layer.pool_size, layer.strides, layer.padding)}


def emit_window_layer(builder, layer, inputs, output, linear_cf) -> None:
    """The layer's channels-first linear part ``linear_cf(x_cf, z_cf)``, transposed as its
    data format needs, then its activation."""
    emit_after_linear(builder, layer.activation, lambda z: in_channels_first(
        builder, layer, inputs[0], z, linear_cf, layer.rank), output)


@converter(Conv2D, Conv1D)
def convert_convolution(builder, layer, inputs, output):
    """``Conv``: cnn's kernel (F, C, kh, kw) or (F, C, k) is ONNX's weight (M, C/group, ...)
    as it is; both are cross-correlations (no flip)."""
    weights = layer_weights(layer)

    def linear(x, z):
        operands = [x, builder.initializer(weights["kernel"], "kernel")]
        if layer.use_bias:
            operands.append(builder.initializer(weights["bias"], "bias"))
        builder.node("Conv", operands, z, **conv_attributes(layer))

    emit_window_layer(builder, layer, inputs, output, linear)


def emit_depthwise(builder, layer, weights, x, z, bias=None) -> str:
    """The depthwise step: a ``Conv`` with one group per input channel (weight
    (C * M, 1, kh, kw), output channel ``c * M + m``, as cnn orders them)."""
    channels = weights["depthwise_kernel"].shape[0] // layer.depth_multiplier
    operands = [x, builder.initializer(weights["depthwise_kernel"], "depthwise_kernel")]
    if bias is not None:
        operands.append(builder.initializer(bias, "bias"))
    return builder.node("Conv", operands, z, **conv_attributes(layer, group=channels))


@converter(DepthwiseConv2D)
def convert_depthwise(builder, layer, inputs, output):
    weights = layer_weights(layer)
    emit_window_layer(builder, layer, inputs, output, lambda x, z: emit_depthwise(
        builder, layer, weights, x, z, weights.get("bias")))


@converter(SeparableConv2D)
def convert_separable(builder, layer, inputs, output):
    """The depthwise ``Conv`` (no bias), then a 1 x 1 ``Conv`` with the bias."""
    weights = layer_weights(layer)

    def linear(x, z):
        middle = emit_depthwise(builder, layer, weights, x, None)
        operands = [middle, builder.initializer(weights["pointwise_kernel"], "pointwise_kernel")]
        if layer.use_bias:
            operands.append(builder.initializer(weights["bias"], "bias"))
        builder.node("Conv", operands, z, kernel_shape=[1, 1], strides=[1, 1],
                     pads=[0, 0, 0, 0], dilations=[1, 1], group=1)

    emit_window_layer(builder, layer, inputs, output, linear)


def transpose_pads(layer) -> tuple[list[int], list[int]]:
    """``ConvTranspose``'s ``pads`` and ``output_padding``: the full result has ``(n - 1) * s
    + span`` cells; cnn keeps ``out`` of them from ``crop`` on, with zeros (plus the bias)
    past the end when ``out`` reaches beyond it, which is ONNX's ``output_padding``."""
    begins, ends, extras = [], [], []
    for n, k, s, d, crop, out in zip(spatial_sizes(layer), layer.kernel_size, layer.strides,
                                     layer.dilation_rate, layer.crop, layer.out_hw):
        end = (n - 1) * s + (k - 1) * d + 1 - crop - out
        begins.append(crop)
        ends.append(max(end, 0))
        extras.append(max(-end, 0))
    return [*begins, *ends], extras


@converter(Conv2DTranspose)
def convert_conv_transpose(builder, layer, inputs, output):
    """``ConvTranspose``: cnn's kernel (C, F, kh, kw) is ONNX's (C, M/group, kH, kW), the
    layout of PyTorch's ConvTranspose2d."""
    weights = layer_weights(layer)
    pads, extras = transpose_pads(layer)

    def linear(x, z):
        operands = [x, builder.initializer(weights["kernel"], "kernel")]
        if layer.use_bias:
            operands.append(builder.initializer(weights["bias"], "bias"))
        builder.node("ConvTranspose", operands, z, kernel_shape=list(layer.kernel_size),
                     strides=list(layer.strides), dilations=list(layer.dilation_rate),
                     pads=pads, output_padding=extras, group=1)

    emit_window_layer(builder, layer, inputs, output, linear)


@converter(MaxPooling2D, MaxPooling1D)
def convert_max_pooling(builder, layer, inputs, output):
    """``MaxPool``: padded cells never win, as in cnn."""
    padding = pool_padding(layer)
    in_channels_first(builder, layer, inputs[0], output, lambda x, y: builder.node(
        "MaxPool", [x], y, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
        **padding), len(layer.pool_size))


@converter(AveragePooling2D, AveragePooling1D)
def convert_average_pooling(builder, layer, inputs, output):
    """``AveragePool`` with ``count_include_pad=0``: padded cells are not counted, as in cnn."""
    padding = pool_padding(layer)
    in_channels_first(builder, layer, inputs[0], output, lambda x, y: builder.node(
        "AveragePool", [x], y, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
        count_include_pad=0, **padding), len(layer.pool_size))
