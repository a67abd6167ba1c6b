"""The cnn model the importer assembles: layer specs in order and the tensors they make.

Layers are kept as specs (class, constructor arguments, weights by name) until the walk
ends, because later nodes may still change them: a ``Relu`` after a ``Conv`` becomes the
convolution's activation, an ``Add`` after a ``MatMul`` its bias, and which output of a
recurrent op the graph reads decides ``return_sequences``.

The model is a chain (``Sequential``): every layer reads the output of the one before.
A graph that reads a tensor twice (a skip connection) needs the functional API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cnn.layers import Input, TimeDistributed
from cnn.models import Sequential
from cnn.onnx.errors import OnnxImportError
from cnn.onnx.graph import unique_name
from cnn.onnx.values import Data, plain_axes
from cnn.utils.naming import snake_case

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


@dataclass
class LayerSpec:
    """A layer to build: ``cls(**kwargs)``, then ``set_weights`` from ``weights`` by name."""

    cls: type
    kwargs: dict
    weights: dict
    node: str  # the ONNX node it came from, for messages
    return_sequences: bool | None = None  # recurrent layers: decided by what is read
    time_steps: int | None = None  # wrapped in TimeDistributed over this many steps
    auto_name: bool = False  # True: cnn names it (a layer the node's name belongs to comes next)


@dataclass
class TensorInfo:
    """A cnn tensor: made by spec ``spec`` (-1: the model input), ``shape`` without batch.

    ``role``: "output" for an ordinary layer output; a recurrent op's "sequence", "final"
    (state h) and "cell" (LSTM's c) outputs are three tensors of one spec.
    """

    spec: int
    shape: tuple
    role: str = "output"
    taken_by: str | None = None
    steps: int | None = None  # ONNX sees (N * steps, *shape): inside a TimeDistributed
    siblings: dict = field(default_factory=dict)  # role -> tensor index, recurrent outputs


class ModelAssembly:
    """The specs and tensors of the model being assembled from the graph of ``source``."""

    def __init__(self, source: str, input_name: str, input_shape: tuple):
        self.source = source
        self.input_name = input_name
        self.input_shape = tuple(input_shape)
        self.specs: list[LayerSpec] = []
        self.tensors: list[TensorInfo] = [TensorInfo(-1, self.input_shape)]
        self.claimed_steps: int | None = None  # of the tensor the next layer reads

    def error(self, node, message) -> OnnxImportError:
        where = f"node {node.name!r} ({node.op_type})" if node is not None else "the graph"
        return OnnxImportError(f"{self.source}: {where}: {message}")

    def input_data(self) -> Data:
        return Data(0, plain_axes(len(self.input_shape) + 1))

    @property
    def tip(self) -> int:
        """The spec whose output the next layer must read (-1: the input)."""
        return len(self.specs) - 1

    # -- reading tensors --------------------------------------------------------------------
    def take(self, data, node, what="its input") -> TensorInfo:
        """Claim ``data`` as the input of a new layer: it must be an activation, seen
        without transposes, the output of the last layer, not read by another layer."""
        if not isinstance(data, Data):
            raise self.error(node, f"{what} must be an activation computed from the graph "
                                   "input, not a constant")
        if data.axes != plain_axes(len(self.tensors[data.tensor].shape) + 1):
            raise self.error(node, f"{what} is a transposed or reshaped view (axes "
                                   f"{data.axes}) that no cnn layer takes here")
        if data.reversed_axis is not None:
            raise self.error(node, f"{what} is reversed in time, which only a recurrent op "
                                   "may read")
        return self.claim(data, node)

    def claim(self, data: Data, node) -> TensorInfo:
        """Mark ``data``'s tensor as read by ``node`` (checks the chain); decide the outputs
        of a recurrent layer."""
        info = self.tensors[data.tensor]
        if info.spec != self.tip:
            raise self.error(node, "reads a tensor that is not the output of the layer just "
                                   "before it: graphs with branches or skip connections need "
                                   "the functional API")
        if info.taken_by is not None:
            raise self.error(node, f"reads a tensor that node {info.taken_by!r} reads already: "
                                   "graphs with branches need the functional API")
        info.taken_by = node.name if node is not None else "graph output"
        self.decide_outputs(info, node)
        self.claimed_steps = info.steps
        return info

    def decide_outputs(self, info: TensorInfo, node) -> None:
        if info.role == "output" or info.spec < 0:
            return
        spec = self.specs[info.spec]
        if info.role == "cell":
            raise self.error(node, f"reads the cell state of the LSTM of node {spec.node!r}; "
                                   "cnn's LSTM outputs its sequence or its final state h")
        wanted = info.role == "sequence"
        if spec.return_sequences is not None and spec.return_sequences != wanted:
            raise self.error(node, f"the graph reads both the sequence and the final state of "
                                   f"node {spec.node!r}; a cnn recurrent layer outputs one")
        spec.return_sequences = wanted

    def last_spec(self, data, node_name_consumers: int) -> LayerSpec | None:
        """The spec that made ``data`` when a later node may still change it: ``data`` is
        the plain output of the last layer and no other node reads it."""
        if not isinstance(data, Data) or node_name_consumers != 1:
            return None
        info = self.tensors[data.tensor]
        if info.spec < 0 or info.spec != self.tip or info.role != "output" or info.taken_by:
            return None
        if data.axes != plain_axes(len(info.shape) + 1) or data.reversed_axis is not None:
            return None
        return self.specs[info.spec]

    # -- writing layers ---------------------------------------------------------------------
    def add(self, spec: LayerSpec, output_shape: tuple) -> Data:
        """Append a layer whose output has ``output_shape`` (without the batch axis); when
        its input had the batch and time axes merged, the layer is time-distributed."""
        spec.time_steps = self.claimed_steps
        self.specs.append(spec)
        self.tensors.append(TensorInfo(len(self.specs) - 1, tuple(output_shape),
                                       steps=self.claimed_steps))
        self.claimed_steps = None
        return Data(len(self.tensors) - 1, plain_axes(len(output_shape) + 1))

    def merge_time(self, data: Data, node) -> Data:
        """``Reshape`` (N, T, *inner) -> (N * T, *inner): the next layers are time-distributed."""
        info = self.take(data, node)
        if info.steps is not None or len(info.shape) < 2:
            raise self.error(node, "merges the batch axis with another axis twice")
        self.tensors.append(TensorInfo(info.spec, info.shape[1:], steps=info.shape[0]))
        self.claimed_steps = None
        return Data(len(self.tensors) - 1, plain_axes(len(info.shape)))

    def split_time(self, data: Data, node) -> Data:
        """``Reshape`` (N * T, *inner) -> (N, T, *inner): the time-distributed layers end."""
        info = self.take(data, node)
        self.tensors.append(TensorInfo(info.spec, (info.steps, *info.shape)))
        self.claimed_steps = None
        return Data(len(self.tensors) - 1, plain_axes(len(info.shape) + 2))

    def add_recurrent(self, spec: LayerSpec, steps: int, units: int, cell: bool) -> dict:
        """Append a recurrent layer; return its tensors by role ("sequence", "final",
        "cell")."""
        if self.claimed_steps is not None:
            raise self.error(None, f"node {spec.node!r}: a recurrent op inside merged batch "
                                   "and time axes is not supported")
        self.specs.append(spec)
        index = len(self.specs) - 1
        shapes = {"sequence": (steps, units), "final": (units,)}
        if cell:
            shapes["cell"] = (units,)
        tensors = {}
        for role, shape in shapes.items():
            self.tensors.append(TensorInfo(index, shape, role))
            tensors[role] = len(self.tensors) - 1
        for role in tensors:
            self.tensors[tensors[role]].siblings = tensors
        return tensors

    def replace_output_shape(self, data: Data, shape: tuple) -> Data:
        """The last layer's output shape changed (a fused Flatten): the new view of it."""
        info = self.tensors[data.tensor]
        info.shape = tuple(shape)
        return Data(data.tensor, plain_axes(len(shape) + 1))

    # -- the model --------------------------------------------------------------------------
    def build(self, name: str, output: Data):
        """The Sequential model, with every spec's weights set."""
        if not self.specs:
            raise self.error(None, "has no layers between its input and its output")
        info = self.tensors[output.tensor]
        if info.spec != self.tip:
            raise self.error(None, "its output is not the last layer's output")
        if info.steps is not None:
            raise self.error(None, "its output keeps the batch and time axes merged")
        self.take(output, None, "the graph output")
        input_name = self.input_name if _NAME.fullmatch(self.input_name or "") else "input"
        names = [_node_layer_name(spec, -3 if spec.time_steps else -2) for spec in self.specs]
        taken = {input_name}
        for i, candidate in enumerate(names):  # the nodes' names first, then cnn's own
            names[i] = None if candidate is None or candidate in taken else candidate
            taken.add(names[i])
        layers = []
        for spec, layer_name in zip(self.specs, names):
            kwargs = dict(spec.kwargs)
            if spec.return_sequences is not None:
                kwargs["return_sequences"] = spec.return_sequences
            kind = TimeDistributed if spec.time_steps else spec.cls
            layer_name = layer_name or unique_name(snake_case(kind.__name__), taken)
            try:
                if spec.time_steps:
                    inner_name = _node_layer_name(spec, -2)
                    layer = spec.cls(**kwargs, name=inner_name)
                    layers.append(TimeDistributed(layer, name=layer_name))
                else:
                    layers.append(spec.cls(**kwargs, name=layer_name))
            except (TypeError, ValueError) as exc:
                raise OnnxImportError(f"{self.source}: node {spec.node!r}: {exc}") from None
        model = Sequential([Input(self.input_shape, name=input_name), *layers],
                           name=name if name else "onnx_model")
        for spec, layer in zip(self.specs, layers):
            weights = dict(spec.weights)
            states = weights.pop("initial_state", None)
            layer.set_weights([weights[key] for key in layer.weight_names()])
            if states is not None:
                layer.set_initial_state(states)
        return model


def _node_layer_name(spec: LayerSpec, position: int) -> str | None:
    """The module name in the node's name (``"conv1"`` from torch's ``"/block/conv1/Conv"``,
    ``"conv2d"`` from our ``"conv2d/Conv"``; position -2) when it is a usable layer name,
    else None. A time-distributed layer's wrapper is named at position -3."""
    if spec.auto_name:
        return None
    parts = [p for p in spec.node.split("/") if p]
    candidate = parts[position] if len(parts) >= -position else ""
    return candidate if _NAME.fullmatch(candidate) else None
