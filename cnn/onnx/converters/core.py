"""Dense (and Output), Flatten, Reshape and Dropout."""

from __future__ import annotations

import numpy as np

from cnn.layers import Dense, Dropout, Flatten, Reshape
from cnn.onnx.converters.activations import emit_after_linear
from cnn.onnx.registry import converter


def layer_weights(layer) -> dict:
    """The layer's weights by name (``kernel``, ``bias``, ...), as NumPy arrays."""
    return dict(zip(layer.weight_names(), layer.get_weights()))


@converter(Dense)
def convert_dense(builder, layer, inputs, output):
    """(N, F) inputs: ``Gemm(x, kernel, bias, transB=1)`` (cnn's kernel is (units, F), as the
    Gemm's B with transB). Inputs of higher rank: ``MatMul(x, kernel.T) + bias``."""
    weights = layer_weights(layer)
    x = inputs[0]

    def linear(z):
        if len(layer.input_shape) == 1:
            operands = [x, builder.initializer(weights["kernel"], "kernel")]
            if layer.use_bias:
                operands.append(builder.initializer(weights["bias"], "bias"))
            builder.node("Gemm", operands, z, transB=1)
            return
        kernel = builder.initializer(weights["kernel"].T, "kernel")
        if not layer.use_bias:
            builder.node("MatMul", [x, kernel], z)
            return
        product = builder.node("MatMul", [x, kernel])
        builder.node("Add", [product, builder.initializer(weights["bias"], "bias")], z)

    emit_after_linear(builder, layer.activation, linear, output)


@converter(Flatten)
def convert_flatten(builder, layer, inputs, output):
    builder.node("Flatten", inputs, output, axis=1)


@converter(Reshape)
def convert_reshape(builder, layer, inputs, output):
    """``Reshape(x, [0, *target_shape])``: 0 keeps the batch size."""
    shape = builder.ints([0, *layer.output_shape[1:]], "target_shape")
    builder.node("Reshape", [inputs[0], shape], output)


@converter(Dropout)
def convert_dropout(builder, layer, inputs, output):
    """ONNX ``Dropout`` in inference mode (the identity), keeping the rate for readers."""
    ratio = builder.initializer(np.array(layer.rate, dtype=np.float32), "ratio")
    builder.node("Dropout", [inputs[0], ratio], output)
