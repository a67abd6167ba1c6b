"""The cnn model the importer assembles: layer specs in order and the tensors they make.

Layers are kept as specs (class, constructor arguments, weights by name) until the walk
ends, because later nodes may still change them: a ``Relu`` after a ``Conv`` becomes the
convolution's activation, an ``Add`` after a ``MatMul`` its bias, and which output of a
recurrent op the graph reads decides ``return_sequences``.

The model is the DAG of the graph's activations: a layer per op that computes on them,
reading the tensors of the layers (or inputs) before it; a chain with one input and one
output becomes a ``Sequential``, anything else a functional ``Model(inputs, outputs)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from cnn.layers import Input, TimeDistributed
from cnn.models import Model, Sequential
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
    inputs: list = field(default_factory=list)  # the tensors it reads
    multi_input: bool = False  # a merge layer: called on a list
    return_sequences: bool | None = None  # recurrent layers: decided by what is read
    time_steps: int | None = None  # wrapped in TimeDistributed over this many steps
    auto_name: bool = False  # True: cnn names it (a layer the node's name belongs to comes next)


@dataclass
class TensorInfo:
    """A cnn tensor: made by spec ``spec`` (``-1 - k``: the model's input k), ``shape``
    without batch.

    ``role``: "output" for an ordinary layer output; a recurrent op's "sequence", "final"
    (state h) and "cell" (LSTM's c) outputs are three tensors of one spec.
    """

    spec: int
    shape: tuple
    role: str = "output"
    readers: int = 0
    steps: int | None = None  # ONNX sees (N * steps, *shape): inside a TimeDistributed
    siblings: dict = field(default_factory=dict)  # role -> tensor index, recurrent outputs


class ModelAssembly:
    """The specs and tensors of the model being assembled from the graph of ``source``."""

    def __init__(self, source: str, inputs: list):
        """``inputs``: the graph inputs as (name, shape without the batch axis)."""
        self.source = source
        self.inputs = [(name, tuple(shape)) for name, shape in inputs]
        self.specs: list[LayerSpec] = []
        self.tensors: list[TensorInfo] = [TensorInfo(-1 - k, shape)
                                          for k, (_, shape) in enumerate(self.inputs)]
        self.pending: list[int] = []  # the tensors the next layer reads

    def error(self, node, message) -> OnnxImportError:
        where = f"node {node.name!r} ({node.op_type})" if node is not None else "the graph"
        return OnnxImportError(f"{self.source}: {where}: {message}")

    def input_data(self, k: int) -> Data:
        return Data(k, plain_axes(len(self.inputs[k][1]) + 1))

    # -- reading tensors --------------------------------------------------------------------
    def take(self, data, node, what="its input") -> TensorInfo:
        """Claim ``data`` as an input of the next layer: it must be an activation, seen
        without transposes."""
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
        """Mark ``data``'s tensor as read by the next layer (``node`` None: by the graph
        output); decide the outputs of a recurrent layer."""
        info = self.tensors[data.tensor]
        info.readers += 1
        self.decide_outputs(info, node)
        if node is not None:
            self.pending.append(data.tensor)
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
        the plain output of a layer that no other node reads."""
        if not isinstance(data, Data) or node_name_consumers != 1:
            return None
        info = self.tensors[data.tensor]
        if info.spec < 0 or info.role != "output" or info.readers:
            return None
        if data.axes != plain_axes(len(info.shape) + 1) or data.reversed_axis is not None:
            return None
        return self.specs[info.spec]

    # -- writing layers ---------------------------------------------------------------------
    def add(self, spec: LayerSpec, output_shape: tuple) -> Data:
        """Append a layer reading the tensors claimed since the last one, whose output has
        ``output_shape`` (without the batch axis); when its input has the batch and time
        axes merged, the layer is time-distributed."""
        steps = self.start_layer(spec)
        self.tensors.append(TensorInfo(len(self.specs) - 1, tuple(output_shape), steps=steps))
        return Data(len(self.tensors) - 1, plain_axes(len(output_shape) + 1))

    def start_layer(self, spec: LayerSpec):
        """Give ``spec`` the pending inputs and append it; return the merged time steps."""
        spec.inputs, self.pending = self.pending, []
        steps = {self.tensors[t].steps for t in spec.inputs}
        if len(steps) > 1 or (len(spec.inputs) > 1 and steps != {None}):
            raise self.error(None, f"node {spec.node!r}: a merge inside merged batch and "
                                   "time axes is not supported")
        spec.time_steps = steps.pop() if steps else None
        self.specs.append(spec)
        return spec.time_steps

    def view(self, info: TensorInfo, shape, steps=None) -> Data:
        """A new tensor that is another view of the layer (or input) that made ``info``."""
        self.tensors.append(TensorInfo(info.spec, tuple(shape), steps=steps))
        return Data(len(self.tensors) - 1, plain_axes(len(shape) + 1))

    def merge_time(self, data: Data, node) -> Data:
        """``Reshape`` (N, T, *inner) -> (N * T, *inner): the next layers are time-distributed."""
        info = self.take(data, node)
        self.pending = []
        if info.steps is not None or len(info.shape) < 2:
            raise self.error(node, "merges the batch axis with another axis twice")
        return self.view(info, info.shape[1:], steps=info.shape[0])

    def split_time(self, data: Data, node) -> Data:
        """``Reshape`` (N * T, *inner) -> (N, T, *inner): the time-distributed layers end."""
        info = self.take(data, node)
        self.pending = []
        return self.view(info, (info.steps, *info.shape))

    def add_recurrent(self, spec: LayerSpec, steps: int, units: int, cell: bool) -> dict:
        """Append a recurrent layer; return its tensors by role ("sequence", "final",
        "cell")."""
        if self.start_layer(spec) is not None:
            raise self.error(None, f"node {spec.node!r}: a recurrent op inside merged batch "
                                   "and time axes is not supported")
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
    def build(self, name: str, outputs: list):
        """The model (``Sequential`` for a chain, else functional) with every spec's weights
        set; ``outputs`` are the values of the graph outputs."""
        if not self.specs:
            raise self.error(None, "has no layers between its inputs and its outputs")
        for output in outputs:
            if not isinstance(output, Data) or self.tensors[output.tensor].spec < 0:
                raise self.error(None, "an output is not computed by a layer")
            if self.tensors[output.tensor].steps is not None:
                raise self.error(None, "an output keeps the batch and time axes merged")
            self.take(output, None, "the graph output")
        inputs = [Input(shape, name=input_name if _NAME.fullmatch(input_name) else None)
                  for input_name, shape in self.inputs]
        output_specs = [self.tensors[output.tensor].spec for output in outputs]
        chain = self.is_chain(output_specs)
        layers = self.make_layers({layer.name for layer in inputs}, share=not chain)
        model_name = name or "onnx_model"
        if chain:
            model = Sequential([*inputs, *layers], name=model_name)
        else:
            made = {-1 - k: layer for k, layer in enumerate(inputs)}
            for index, (spec, layer) in enumerate(zip(self.specs, layers)):
                arguments = [made[self.tensors[t].spec] for t in spec.inputs]
                made[index] = layer(arguments if spec.multi_input else arguments[0])
            model = Model(inputs, [made[index] for index in output_specs], name=model_name)
        for spec, layer in zip(self.specs, layers):
            weights = dict(spec.weights)
            states = weights.pop("initial_state", None)
            layer.set_weights([weights[key] for key in layer.weight_names()])
            if states is not None:
                layer.set_initial_state(states)
        return model

    def is_chain(self, output_specs) -> bool:
        """One input, one output, every layer reading the one before it."""
        if len(self.inputs) != 1 or output_specs != [len(self.specs) - 1]:
            return False
        return all(not spec.multi_input and [self.tensors[t].spec for t in spec.inputs] == [i - 1]
                   for i, spec in enumerate(self.specs))

    def make_layers(self, taken: set, share: bool = False) -> list:
        """The layers of the specs, named after their nodes where possible.

        With ``share``, a spec whose node names the same layer as an earlier spec's, with
        the same class, arguments and weights, is that layer called again: how a layer called
        twice (``<layer>/MatMul``, ``<layer>/MatMul_1`` reading one set of weights) comes
        back as one shared layer."""
        names = [_node_layer_name(spec, -3 if spec.time_steps else -2) for spec in self.specs]
        first_of = {}  # layer name -> index of the spec that named it
        again = {}     # spec index -> index of the earlier spec it calls again
        for i, candidate in enumerate(names):  # the nodes' names first, then cnn's own
            earlier = first_of.get(candidate)
            if share and earlier is not None and _same_layer(self.specs[earlier],
                                                             self.specs[i]):
                again[i] = earlier
            elif candidate is not None and candidate not in taken:
                first_of[candidate] = i
            names[i] = None if candidate is None or candidate in taken else candidate
            taken.add(names[i])
        layers = []
        for index, (spec, layer_name) in enumerate(zip(self.specs, names)):
            if index in again:
                layers.append(layers[again[index]])
                continue
            kwargs = dict(spec.kwargs)
            if spec.return_sequences is not None:
                kwargs["return_sequences"] = spec.return_sequences
            kind = TimeDistributed if spec.time_steps else spec.cls
            layer_name = layer_name or unique_name(snake_case(kind.__name__), taken)
            try:
                if spec.time_steps:
                    inner = spec.cls(**kwargs, name=_node_layer_name(spec, -2))
                    layers.append(TimeDistributed(inner, name=layer_name))
                else:
                    layers.append(spec.cls(**kwargs, name=layer_name))
            except (TypeError, ValueError) as exc:
                raise OnnxImportError(f"{self.source}: node {spec.node!r}: {exc}") from None
        return layers


def _same_layer(a: LayerSpec, b: LayerSpec) -> bool:
    """The two specs build one layer: the same class, arguments and weights (bit for bit;
    layers without weights are never merged: two nodes stay two layers)."""
    if not a.weights or (a.cls, a.kwargs, a.time_steps, a.return_sequences, a.multi_input) != (
            b.cls, b.kwargs, b.time_steps, b.return_sequences, b.multi_input):
        return False
    if a.weights.keys() != b.weights.keys():
        return False
    return all(np.shape(a.weights[k]) == np.shape(b.weights[k])
               and np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def _node_layer_name(spec: LayerSpec, position: int) -> str | None:
    """The module name in the node's name (``"conv1"`` from torch's ``"/block/conv1/Conv"``,
    ``"conv2d"`` from our ``"conv2d/Conv"``; position -2) when it is a usable layer name,
    else None. A time-distributed layer's wrapper is named at position -3."""
    if spec.auto_name:
        return None
    parts = [p for p in spec.node.split("/") if p]
    candidate = parts[position] if len(parts) >= -position else ""
    return candidate if _NAME.fullmatch(candidate) else None
