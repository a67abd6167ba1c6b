"""The state one import walks with: the assembly, the values of the tensors seen so far,
how many nodes read each tensor, and the handlers of the supported ops.

A handler is ``handle(ctx, node, inputs) -> outputs``: ``inputs`` are the values
(``cnn.onnx.values``) of the node's inputs (None for an omitted optional input); it returns
the values of the node's outputs, in order, and adds layers to ``ctx.assembly``.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from cnn.onnx.values import BATCH, Const, Data, ShapeValue

MAX_CONSTANT_ELEMENTS = 1 << 24  # what shape arithmetic may make: 16 M values

_HANDLERS: dict[str, object] = {}


def handles(*op_types):
    """Register the decorated function as the handler of ``op_types``."""
    def register(function):
        for op_type in op_types:
            _HANDLERS[op_type] = function
        return function

    return register


def handler_for(op_type: str):
    return _HANDLERS.get(op_type)


def supported_ops() -> list[str]:
    return sorted(_HANDLERS)


class ImportContext:
    """What the handlers share: ``assembly``, ``consumers`` (tensor name -> readers)."""

    def __init__(self, assembly, consumers: dict):
        self.assembly = assembly
        self.consumers = consumers

    def error(self, node, message):
        return self.assembly.error(node, message)

    # -- attributes and constants -----------------------------------------------------------
    @staticmethod
    def attributes(node) -> dict:
        values = {}
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            values[attribute.name] = value.decode() if isinstance(value, bytes) else value
        return values

    def const(self, node, value, what: str, dtype=None) -> np.ndarray:
        """The array of a constant input, or an error naming the input."""
        if isinstance(value, Const):
            array = value.array
        elif isinstance(value, ShapeValue) and BATCH not in value.entries:
            array = np.array(value.entries if not value.scalar else value.entries[0], np.int64)
        else:
            kind = "missing" if value is None else "computed from the graph input"
            raise self.error(node, f"{what} must be a constant, but it is {kind}")
        return array if dtype is None else array.astype(dtype)

    def ints(self, node, value, what: str) -> list[int]:
        return [int(v) for v in np.ravel(self.const(node, value, what))]

    def check_size(self, node, shape) -> None:
        count = int(np.prod([int(s) for s in shape], dtype=np.float64))
        if count > MAX_CONSTANT_ELEMENTS or any(int(s) < 0 for s in shape):
            raise self.error(node, f"would make a tensor of shape {tuple(shape)}, above the "
                                   f"limit of {MAX_CONSTANT_ELEMENTS} values")

    # -- activations ------------------------------------------------------------------------
    def take(self, node, value, what="its input"):
        return self.assembly.take(value, node, what)

    def onnx_shape(self, data: Data) -> tuple:
        """The ONNX shape of an activation: ints and BATCH."""
        cnn_shape = (BATCH, *self.assembly.tensors[data.tensor].shape)
        return tuple(1 if axis is None else cnn_shape[axis] for axis in data.axes)
