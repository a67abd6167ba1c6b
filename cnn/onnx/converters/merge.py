"""The merge layers of the functional API: one variadic ONNX op each (``Sum``, ``Mean`` and
``Max`` take any number of inputs; ``Add``/``Sub``/``Mul`` two)."""

from __future__ import annotations

from cnn.layers import Add, Average, Concatenate, Maximum, Multiply, Subtract
from cnn.onnx.registry import converter


@converter(Add)
def convert_add(builder, layer, inputs, output):
    builder.node("Add" if len(inputs) == 2 else "Sum", inputs, output)


@converter(Subtract)
def convert_subtract(builder, layer, inputs, output):
    builder.node("Sub", inputs, output)


@converter(Multiply)
def convert_multiply(builder, layer, inputs, output):
    product = inputs[0]
    for k, other in enumerate(inputs[1:], start=2):
        product = builder.node("Mul", [product, other], output if k == len(inputs) else None)


@converter(Average)
def convert_average(builder, layer, inputs, output):
    builder.node("Mean", inputs, output)


@converter(Maximum)
def convert_maximum(builder, layer, inputs, output):
    builder.node("Max", inputs, output)


@converter(Concatenate)
def convert_concatenate(builder, layer, inputs, output):
    """``Concat`` on the same axis (both count the batch axis as 0)."""
    rank = len(layer.input_shape[0]) + 1
    builder.node("Concat", inputs, output, axis=layer.axis % rank)
