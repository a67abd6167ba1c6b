"""The converter registry: one function per layer type, registered with ``@converter``.

A converter is ``convert(builder, layer, inputs, output)``: it adds to ``builder`` (a
``GraphBuilder``) the nodes that compute the layer's output tensor ``output`` from the tensor
names ``inputs`` (one for most layers, several for merge layers) at inference.
"""

from __future__ import annotations

from cnn.onnx.errors import OnnxExportError

_CONVERTERS: dict[type, object] = {}


def converter(*layer_types):
    """Register the decorated function as the converter of ``layer_types``."""
    def register(function):
        for layer_type in layer_types:
            _CONVERTERS[layer_type] = function
        return function

    return register


def converter_for(layer):
    """The converter of ``layer``'s type (the nearest registered base class counts).

    Raises:
        OnnxExportError: no converter handles this layer type.
    """
    for cls in type(layer).__mro__:
        if cls in _CONVERTERS:
            return _CONVERTERS[cls]
    known = ", ".join(sorted(cls.__name__ for cls in _CONVERTERS))
    raise OnnxExportError(f"layer {layer.describe()}: no ONNX converter for layer type "
                          f"{type(layer).__name__} (exportable types: {known})")


def convert_layer(builder, layer, inputs, output) -> None:
    """Convert one layer inside a scope named after it."""
    with builder.scope(layer.name or layer.default_name()):
        converter_for(layer)(builder, layer, list(inputs), output)
