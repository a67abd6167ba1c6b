"""GraphBuilder: collects ONNX nodes and initializers with readable, unique names.

Converters write into one builder: ``builder.node("Relu", [x], output)`` adds a node named
``"<layer>/Relu"`` (the scope is the layer being converted), ``builder.initializer(w,
"kernel")`` adds a float32 tensor named ``"<layer>/kernel"``, ``builder.ints([...])`` an int64
constant. Every node and tensor name is unique in the graph.
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
from onnx import helper, numpy_helper

from cnn.onnx.graph import unique_name

BATCH_DIM = "batch"  # the symbolic name of the dynamic batch axis
REDUCE_AXES_INPUT_OPSET = 18  # ReduceMean / ReduceMax take their axes as an input from 18
INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max


class GraphBuilder:
    """The nodes and initializers of one graph, built for ONNX opset ``opset``."""

    def __init__(self, opset: int):
        self.opset = int(opset)
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()
        self._scope = ""
        self._constants: dict = {}
        self._stored: dict = {}  # (scope, hint, dtype, shape, digest) -> initializer name

    # -- names ------------------------------------------------------------------------------
    def reserve(self, name: str) -> str:
        """Claim a tensor name that the graph's inputs or layer outputs use."""
        if name in self._names:
            raise ValueError(f"tensor name {name!r} is used twice")
        self._names.add(name)
        return name

    def unique(self, hint: str) -> str:
        """A fresh name ``<scope>/<hint>`` (``_1``, ``_2``, ... appended when taken)."""
        return unique_name(f"{self._scope}/{hint}" if self._scope else hint, self._names)

    @contextlib.contextmanager
    def scope(self, name: str):
        """Name what is built inside after ``name`` (nested scopes join with ``/``)."""
        outer = self._scope
        self._scope = f"{outer}/{name}" if outer else name
        try:
            yield
        finally:
            self._scope = outer

    # -- nodes and tensors ------------------------------------------------------------------
    def node(self, op_type: str, inputs, output: str | None = None, *, outputs=None,
             **attributes):
        """Add one node; return its output name (or the list ``outputs`` when given).

        ``output`` names the single output (a fresh name when None); ``outputs`` gives several
        (``""`` for an optional output left out).
        """
        if outputs is None:
            outputs = [output if output is not None else self.unique(f"{op_type}_output")]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                           name=self.unique(op_type), **attributes))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def initializer(self, array, hint: str, dtype=np.float32) -> str:
        """Add ``array`` (cast to ``dtype``) as an initializer; return its name.

        The same values under the same hint in the same scope are stored once: a layer called
        twice (shared weights) gets one ``<layer>/kernel``, not two copies."""
        value = np.array(array, dtype=dtype, order="C")  # 0-d stays 0-d
        key = (self._scope, hint, value.dtype.str, value.shape,
               hashlib.sha256(value.tobytes()).digest())
        if key not in self._stored:
            self._stored[key] = self.unique(hint)
            self.initializers.append(numpy_helper.from_array(value, self._stored[key]))
        return self._stored[key]

    def ints(self, values, hint: str = "shape") -> str:
        """A 1-D int64 constant (shapes, axes, pads), shared by equal values in one scope."""
        values = tuple(int(v) for v in values)
        key = (self._scope, values)
        if key not in self._constants:
            self._constants[key] = self.initializer(np.array(values, dtype=np.int64), hint,
                                                    dtype=np.int64)
        return self._constants[key]

    def scalar(self, value: float, hint: str) -> str:
        """A 0-d float32 constant."""
        return self.initializer(np.array(value, dtype=np.float32), hint)

    def batch_size(self, tensor: str) -> str:
        """A 1-D int64 tensor ``[N]``: the batch size of ``tensor`` (the dynamic axis 0)."""
        shape = self.node("Shape", [tensor])
        size = self.node("Gather", [shape, self.ints([0], "zero")], axis=0)
        return size

    def reduce(self, op_type: str, x: str, axes, output: str | None = None,
               keepdims: bool = True) -> str:
        """``ReduceMean`` / ``ReduceMax`` of ``x`` over ``axes``: an attribute up to opset 17,
        an input from 18."""
        axes = [int(a) for a in axes]
        if self.opset >= REDUCE_AXES_INPUT_OPSET:
            return self.node(op_type, [x, self.ints(axes, "axes")], output,
                             keepdims=int(keepdims))
        return self.node(op_type, [x], output, axes=axes, keepdims=int(keepdims))

    def reverse(self, x: str, axis: int, output: str | None = None) -> str:
        """``x`` read backwards along ``axis``: a ``Slice`` with step -1."""
        return self.node("Slice", [x, self.ints([-1], "start"), self.ints([INT64_MIN], "end"),
                                   self.ints([axis], "reversed_axis"), self.ints([-1], "step")],
                         output)
