"""Reading an ONNX file that nobody vouches for: bounded sizes, nothing else read.

``read_model(path)`` parses the file (at most ``max_bytes``), refuses what cnn never reads
(tensors kept in external data files, sparse initializers, subgraphs, local functions, other
operator domains, opsets older than 13) and runs ``onnx.checker``. No external file is ever
opened: ``onnx.load`` is not used, the bytes are parsed directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, numpy_helper

from cnn.onnx.errors import OnnxImportError

MAX_FILE_BYTES = 1 << 30  # 1 GiB: far above any network cnn trains, far below the memory
MAX_NODES = 20_000
MAX_INITIALIZERS = 20_000
MIN_OPSET = 13
_DOMAINS = ("", "ai.onnx")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)
_INT_TYPES = (TensorProto.INT64, TensorProto.INT32)


def read_model(path, max_bytes: int = MAX_FILE_BYTES) -> onnx.ModelProto:
    """Parse and check the ONNX file ``path``.

    Raises:
        FileNotFoundError: no such file.
        OnnxImportError: the file is too large, not ONNX, or uses what cnn refuses to read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise OnnxImportError(f"{path}: {size} bytes is more than the limit of {max_bytes} "
                              "bytes for an ONNX file (load(..., max_bytes=) raises it)")
    with open(path, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OnnxImportError(f"{path}: the file grew beyond {max_bytes} bytes while reading")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OnnxImportError(f"{path}: not an ONNX model file ({exc})") from None
    if not proto.HasField("graph"):
        raise OnnxImportError(f"{path}: not an ONNX model file (no graph)")
    check_contents(proto, path)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxImportError(f"{path}: the ONNX checker rejects the model: {first}") from None
    return proto


def check_contents(proto: onnx.ModelProto, path) -> None:
    """Refuse external data, sparse tensors, subgraphs, functions, foreign domains, old opsets
    and graphs above the node and initializer limits."""
    graph = proto.graph
    if proto.functions:
        raise OnnxImportError(f"{path}: the model defines local functions, which cnn does "
                              "not read")
    for opset in proto.opset_import:
        if opset.domain not in _DOMAINS:
            raise OnnxImportError(f"{path}: operator domain {opset.domain!r} is not supported "
                                  "(only the default ONNX domain)")
        if opset.version < MIN_OPSET:
            raise OnnxImportError(f"{path}: opset {opset.version} is older than {MIN_OPSET}, "
                                  f"the oldest cnn reads; re-export it with opset {MIN_OPSET}+")
    if len(graph.node) > MAX_NODES or len(graph.initializer) > MAX_INITIALIZERS:
        raise OnnxImportError(f"{path}: {len(graph.node)} nodes and {len(graph.initializer)} "
                              f"initializers exceed the limits ({MAX_NODES}, {MAX_INITIALIZERS})")
    if graph.sparse_initializer:
        raise OnnxImportError(f"{path}: sparse initializers are not supported")
    for tensor in graph.initializer:
        check_tensor(tensor, f"initializer {tensor.name!r}", path)
    for node in graph.node:
        if node.domain not in _DOMAINS:
            raise OnnxImportError(f"{path}: node {node.name!r} ({node.op_type}) is in domain "
                                  f"{node.domain!r}; only the default ONNX domain is supported")
        for attribute in node.attribute:
            if attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise OnnxImportError(f"{path}: node {node.name!r} ({node.op_type}) holds a "
                                      "subgraph; control flow is not supported")
            if attribute.type == AttributeProto.SPARSE_TENSOR:
                raise OnnxImportError(f"{path}: node {node.name!r}: sparse tensors are not "
                                      "supported")
            if attribute.type == AttributeProto.TENSOR:
                check_tensor(attribute.t, f"node {node.name!r} ({node.op_type})", path)


def check_tensor(tensor: TensorProto, what: str, path) -> None:
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise OnnxImportError(f"{path}: {what} keeps its data in an external file; cnn reads "
                              "only self-contained ONNX files (save with all tensors inside)")
    if tensor.data_type not in _FLOAT_TYPES + _INT_TYPES:
        kind = TensorProto.DataType.Name(tensor.data_type)
        raise OnnxImportError(f"{path}: {what} has element type {kind}; cnn reads float and "
                              "int tensors")


def to_array(tensor: TensorProto) -> np.ndarray:
    """The tensor's values: floats as stored, ints as int64.

    Raises:
        OnnxImportError: the stored values do not fill the declared shape.
    """
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise OnnxImportError(f"tensor {tensor.name!r} is malformed: {exc}") from None
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    return array
