"""``export(model, path, opset=17)``: write a cnn model as an ONNX graph for inference.

The graph takes the model's input (named after its ``Input``, shape ``(batch, *input_shape)``
with a dynamic batch axis and a symbolic dim for every None size) and returns the last
layer's output (named after that layer).
Weights are float32 initializers named ``<layer>/<weight>``; every node is named
``<layer>/<op>``. Layers run as at inference (dropout is the identity, batch normalization
uses its moving statistics). The graph is checked with ``onnx.checker.check_model(...,
full_check=True)`` before the file is written, atomically.

Opsets 13 and newer are supported: 13 is the first with ``Squeeze``/``Unsqueeze`` axes as
inputs, the ``Softmax`` of one axis, and ``Dropout`` with a ratio input. Exact GELU is the
``Gelu`` op from opset 20 and ``x * 0.5 * (1 + Erf(x / sqrt 2))`` below it.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

import cnn
from cnn.onnx import converters  # noqa: F401  (registers the converters)
from cnn.onnx.builder import BATCH_DIM, GraphBuilder
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.graph import model_graph
from cnn.onnx.masks import ExportMasks
from cnn.utils.fileio import atomic_write

MIN_OPSET = 13
DEFAULT_OPSET = 17


def max_opset() -> int:
    """The newest opset the installed ``onnx`` package knows."""
    return onnx.defs.onnx_opset_version()


def check_opset(opset) -> int:
    """``opset`` as an int in [13, max_opset()]."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise OnnxExportError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= max_opset():
        raise OnnxExportError(f"opset {opset} is not supported: cnn exports opsets {MIN_OPSET} "
                              f"to {max_opset()} (the newest the installed onnx knows)")
    return opset


def to_onnx(model, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ONNX model of ``model`` at ``opset``, checked, not written.

    Raises:
        OnnxExportError: a layer cannot be exported (the message names it and says why), or
            the opset is not supported.
    """
    opset = check_opset(opset)
    try:
        graph = model_graph(model)
    except ValueError as exc:
        raise OnnxExportError(str(exc)) from None
    builder = GraphBuilder(opset)
    for name, _ in graph.inputs:
        builder.reserve(name)
    for node in graph.nodes:
        builder.reserve(node.output)
    masks = ExportMasks(builder)
    for node in graph.nodes:
        masks.convert(node)
    onnx_graph = helper.make_graph(
        builder.nodes, model.name,
        [value_info(name, shape) for name, shape in graph.inputs],
        [value_info(name, shape) for name, shape in graph.outputs],
        initializer=builder.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="cnn", producer_version=cnn.__version__)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Write ``model`` to ``path`` as ONNX (atomically: nothing is written on an error).

    Args:
        model: a built cnn model (``Model`` or ``Sequential``).
        path: the ``.onnx`` file to write (parent directories are created).
        opset: the ONNX opset, 13 or newer (default 17).
    Returns:
        The ``onnx.ModelProto`` written.
    Raises:
        OnnxExportError: see ``to_onnx``.
    """
    proto = to_onnx(model, opset)
    data = proto.SerializeToString()
    with atomic_write(path) as stream:
        stream.write(data)
    return proto


def value_info(name, shape):
    """A float tensor (batch, *shape); a None size (a variable time axis) is the symbolic
    dim ``<name>_axis<k>``."""
    dims = [f"{name}_axis{k}" if size is None else size for k, size in enumerate(shape, 1)]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, *dims])
