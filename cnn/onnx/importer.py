"""``load(path)``: an ONNX file as a cnn model (``Sequential``), its weights ordinary layer
weights (summary, evaluate, fit and save as .h5 all work).

The importer recognizes patterns, it does not execute graphs: it walks the nodes in order
with one handler per op (``cnn.onnx.handlers``), keeping for each tensor what it knows
(``cnn.onnx.values``): a constant, a shape vector with a symbolic batch size, a broadcast
zero state, or an activation of the model it assembles (``cnn.onnx.assembly``). Layers come
from the ops that compute on activations; the shape plumbing around them only changes what
is known. An op without a handler, or a handler's pattern that does not fit, raises
``OnnxImportError`` naming the node and the op: never a model that computes something else.

Supported (see docs/ONNX.md): Conv (1-D, 2-D, dilated, depthwise), ConvTranspose, MaxPool,
AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean / ReduceMax over the spatial axes,
Resize, Gemm, MatMul (+ Add), BatchNormalization, LayerNormalization, Gather (embeddings),
PRelu, Relu, Sigmoid, Tanh, Softmax, LeakyRelu,
Elu, Softplus, Gelu (and its Erf form), SiLU (x * Sigmoid(x)), Flatten, Reshape, Pad,
Dropout, Identity, RNN, LSTM, GRU, the merges Add/Sub/Mul/Sum/Mean/Max/Concat of
activations, and the plumbing Constant, Shape, Gather, Unsqueeze,
Squeeze, Concat, Cast, Slice, ConstantOfShape, Expand, Transpose.
"""

from __future__ import annotations

from cnn.onnx import handlers  # noqa: F401  (registers the handlers)
from cnn.onnx.assembly import ModelAssembly
from cnn.onnx.context import ImportContext, handler_for, supported_ops
from cnn.onnx.errors import OnnxImportError
from cnn.onnx.patterns import fuse_activations
from cnn.onnx.reader import MAX_FILE_BYTES, read_model, to_array
from cnn.onnx.values import Const


def load(path, max_bytes: int = MAX_FILE_BYTES):
    """Read the ONNX file ``path`` (at most ``max_bytes``) as an uncompiled cnn model.

    Raises:
        FileNotFoundError: no such file.
        OnnxImportError: the file is not ONNX, is refused (external data, too large, ...), or
            holds an op or pattern that cnn does not support (the message names the node).
    """
    proto = read_model(path, max_bytes)
    return model_from_proto(proto, str(path))


def model_from_proto(proto, source: str = "<onnx model>"):
    """The cnn model of an already checked ``onnx.ModelProto`` (see ``load``)."""
    graph = proto.graph
    constants = {t.name: to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = to_array(node.attribute[0].t)
    graph_inputs = graph_inputs_of(graph, constants, source)
    graph_outputs = [o.name for o in graph.output]
    nodes = fuse_activations(list(graph.node), constants, set(graph_outputs))
    consumers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    for name in graph_outputs:
        consumers[name] = consumers.get(name, 0) + 1
    unsupported = [n for n in nodes if handler_for(n.op_type) is None]
    if unsupported:
        node = unsupported[0]
        raise OnnxImportError(
            f"{source}: node {node.name!r} ({node.op_type}): op {node.op_type!r} is not "
            f"supported; cnn imports {', '.join(supported_ops())}")
    assembly = ModelAssembly(source, graph_inputs)
    context = ImportContext(assembly, consumers)
    values = {name: Const(array) for name, array in constants.items()}
    for k, (name, _) in enumerate(graph_inputs):
        values[name] = assembly.input_data(k)
    for node in nodes:
        inputs = [values[name] if name else None for name in node.input]
        outputs = handler_for(node.op_type)(context, node, inputs)
        for name, value in zip(node.output, outputs):
            if name:
                values[name] = value
    return assembly.build(graph.name, [values[name] for name in graph_outputs])


def graph_inputs_of(graph, constants, source) -> list:
    """The graph inputs that are not initializers: (name, shape without the batch axis)."""
    feeds = [i for i in graph.input if i.name not in constants]
    if not feeds:
        raise OnnxImportError(f"{source}: the graph has no inputs")
    return [input_shape(feed, source) for feed in feeds]


def input_shape(feed, source):
    """``(name, shape without the batch axis)`` of a float graph input with fixed sizes (or
    an integer one: ids, which cnn takes as whole numbers in its float type)."""
    tensor = feed.type.tensor_type
    if tensor.elem_type not in (1, 10, 11, 6, 7):  # float, float16, double, int32, int64
        raise OnnxImportError(f"{source}: input {feed.name!r} is neither a float nor an "
                              "integer tensor")
    dims = list(tensor.shape.dim)
    sizes = [d.dim_param or d.dim_value for d in dims]
    shape = []
    for dim in dims[1:]:
        if not dim.HasField("dim_value") or dim.dim_value < 1:
            raise OnnxImportError(f"{source}: input {feed.name!r} needs a fixed size on every "
                                  f"axis but the batch axis, got {sizes}")
        shape.append(int(dim.dim_value))
    if not shape:
        raise OnnxImportError(f"{source}: input {feed.name!r} has no axes besides the batch axis")
    return feed.name, tuple(shape)
