"""The errors of ONNX export and import."""

from __future__ import annotations


class OnnxExportError(ValueError):
    """A model (or one of its layers) cannot be written as an ONNX graph; no file was written."""


class OnnxImportError(ValueError):
    """An ONNX file cannot be read as a cnn model: the message names the file, the node and
    the op, or the limit it exceeds."""
