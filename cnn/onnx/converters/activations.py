"""Activations as ONNX ops, for the ``Activation`` layer and every layer with an activation.

======================  ==================================================================
cnn                     ONNX
======================  ==================================================================
linear                  nothing (the layer's linear op writes the output)
relu / sigmoid / tanh   Relu / Sigmoid / Tanh
softmax                 Softmax (axis -1, opset 13 semantics)
leaky_relu(a), elu(a)   LeakyRelu / Elu with alpha a
softplus                Softplus
silu                    x * Sigmoid(x)
gelu (exact)            Gelu (opset 20 and newer); below: x * 0.5 * (1 + Erf(x / sqrt 2)),
                        the nodes torch.onnx writes
======================  ==================================================================
"""

from __future__ import annotations

import math
import re

from cnn.layers import Activation
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import converter

_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
_WITH_ALPHA = {"leaky_relu": ("LeakyRelu", 0.01), "elu": ("Elu", 1.0)}
GELU_OPSET = 20


def parse_activation(activation) -> tuple[str, float | None]:
    """``("leaky_relu", 0.2)`` from the activation named ``"leaky_relu(0.2)"``; the alpha is
    None for activations without one."""
    name = activation.get_config()
    match = re.fullmatch(r"([a-z_]+)\(([^)]*)\)", name)
    if match:
        return match.group(1), float(match.group(2))
    if name in _WITH_ALPHA:
        return name, _WITH_ALPHA[name][1]
    return name, None


def is_linear(activation) -> bool:
    return activation.get_config() == "linear"


def emit_activation(builder, activation, x: str, output: str) -> str:
    """Add the nodes computing ``activation(x)`` into ``output``; return ``output``."""
    name, alpha = parse_activation(activation)
    if name == "linear":
        return builder.node("Identity", [x], output)
    if name in _SIMPLE:
        return builder.node(_SIMPLE[name], [x], output)
    if name in _WITH_ALPHA:
        return builder.node(_WITH_ALPHA[name][0], [x], output, alpha=alpha)
    if name == "softmax":
        return builder.node("Softmax", [x], output, axis=-1)
    if name == "silu":
        return builder.node("Mul", [x, builder.node("Sigmoid", [x])], output)
    if name == "gelu":
        if builder.opset >= GELU_OPSET:
            return builder.node("Gelu", [x], output)
        scaled = builder.node("Div", [x, builder.scalar(math.sqrt(2.0), "sqrt_2")])
        cdf = builder.node("Add", [builder.node("Erf", [scaled]), builder.scalar(1.0, "one")])
        product = builder.node("Mul", [x, cdf])
        return builder.node("Mul", [product, builder.scalar(0.5, "half")], output)
    raise OnnxExportError(f"activation {activation.get_config()!r} has no ONNX form")


def emit_after_linear(builder, activation, linear_op, output: str) -> str:
    """Run ``linear_op(z_name)`` (which writes the layer's linear part into ``z_name``) then
    the activation into ``output``; a linear activation lets the linear part write ``output``."""
    if is_linear(activation):
        linear_op(output)
        return output
    z = builder.unique("preactivation")
    linear_op(z)
    return emit_activation(builder, activation, z, output)


@converter(Activation)
def convert_activation(builder, layer, inputs, output):
    emit_activation(builder, layer.activation, inputs[0], output)
