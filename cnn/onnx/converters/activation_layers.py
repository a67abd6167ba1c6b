"""The activation layers: ReLU (Keras's max_value / negative_slope / threshold), LeakyReLU,
ELU, Softmax (any axis) and PReLU (its slopes broadcast as ``PRelu``'s)."""

from __future__ import annotations

from cnn.layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.registry import converter


@converter(ReLU)
def convert_relu(builder, layer, inputs, output):
    """``Relu`` (then ``Min`` with ``max_value``); with a slope or a threshold, Keras's
    ``Where(x > threshold, min(x, max_value), negative_slope * (x - threshold))``."""
    x = inputs[0]
    if layer.negative_slope == 0 and layer.threshold == 0:
        if layer.max_value is None:
            builder.node("Relu", [x], output)
            return
        builder.node("Min", [builder.node("Relu", [x]),
                             builder.scalar(layer.max_value, "max_value")], output)
        return
    threshold = builder.scalar(layer.threshold, "threshold")
    above = x if layer.max_value is None else builder.node(
        "Min", [x, builder.scalar(layer.max_value, "max_value")])
    below = builder.node("Mul", [builder.node("Sub", [x, threshold]),
                                 builder.scalar(layer.negative_slope, "negative_slope")])
    builder.node("Where", [builder.node("Greater", [x, threshold]), above, below], output)


@converter(LeakyReLU)
def convert_leaky_relu(builder, layer, inputs, output):
    builder.node("LeakyRelu", inputs, output, alpha=float(layer.negative_slope))


@converter(ELU)
def convert_elu(builder, layer, inputs, output):
    builder.node("Elu", inputs, output, alpha=float(layer.alpha))


@converter(Softmax)
def convert_softmax(builder, layer, inputs, output):
    """``Softmax`` over the layer's axis (opset 13's: one axis, not the flattened tail)."""
    builder.node("Softmax", inputs, output, axis=layer.axis % (len(layer.input_shape) + 1))


@converter(PReLU)
def convert_prelu(builder, layer, inputs, output):
    """``PRelu(x, alpha)``: ``alpha`` has the sample's shape with the shared axes of size 1,
    which broadcasts against (N, ...) as ONNX's slope does."""
    alpha = builder.initializer(layer_weights(layer)["alpha"], "alpha")
    builder.node("PRelu", [inputs[0], alpha], output)
