"""The layer converters; importing this package registers them all."""

from cnn.onnx.converters import (  # noqa: F401
    activation_layers,
    activations,
    attention,
    conv,
    core,
    embedding,
    merge,
    normalization,
    preprocessing,
    recurrent,
    reshaping,
    wrappers,
)
