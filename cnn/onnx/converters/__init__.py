"""The layer converters; importing this package registers them all."""

from cnn.onnx.converters import (  # noqa: F401
    activations,
    conv,
    core,
    merge,
    normalization,
    recurrent,
    reshaping,
    wrappers,
)
