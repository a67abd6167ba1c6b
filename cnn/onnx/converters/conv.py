"""Conv2D and the pooling layers, with explicit pads (Keras's "same" puts an odd extra row or
column at the end: ``pads = [top, left, bottom, right]`` says so exactly)."""

from __future__ import annotations

from cnn.layers import AveragePooling2D, Conv2D, MaxPooling2D
from cnn.onnx.converters.activations import emit_after_linear
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.registry import converter
from cnn.ops.shapes import window_output_shape


def onnx_pads(layer, window) -> list[int]:
    """The layer's padding as ONNX ``pads`` ``[top, left, bottom, right]``."""
    _, ((top, bottom), (left, right)) = window_output_shape(
        layer.input_shape[1:], window, layer.strides, layer.padding)
    return [top, left, bottom, right]


@converter(Conv2D)
def convert_conv2d(builder, layer, inputs, output):
    """``Conv``: cnn's kernel (F, C, kh, kw) is ONNX's weight (M, C/group, kH, kW); both are
    cross-correlations (no flip)."""
    weights = layer_weights(layer)

    def linear(z):
        operands = [inputs[0], builder.initializer(weights["kernel"], "kernel")]
        if layer.use_bias:
            operands.append(builder.initializer(weights["bias"], "bias"))
        builder.node("Conv", operands, z, kernel_shape=list(layer.kernel_size),
                     strides=list(layer.strides), pads=onnx_pads(layer, layer.kernel_size),
                     dilations=[1, 1], group=1)

    emit_after_linear(builder, layer.activation, linear, output)


@converter(MaxPooling2D)
def convert_max_pooling(builder, layer, inputs, output):
    """``MaxPool``: padded cells never win, as in cnn."""
    builder.node("MaxPool", inputs, output, kernel_shape=list(layer.pool_size),
                 strides=list(layer.strides), pads=onnx_pads(layer, layer.pool_size))


@converter(AveragePooling2D)
def convert_average_pooling(builder, layer, inputs, output):
    """``AveragePool`` with ``count_include_pad=0``: padded cells are not counted, as in cnn."""
    builder.node("AveragePool", inputs, output, kernel_shape=list(layer.pool_size),
                 strides=list(layer.strides), pads=onnx_pads(layer, layer.pool_size),
                 count_include_pad=0)
