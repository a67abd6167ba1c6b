"""The graph walk: a cnn model as a list of nodes (layer, input tensor names, output name).

A tensor is named after the layer that produces it (Keras's convention: ``"conv2d"`` is the
output of the layer ``conv2d``); the model's input tensors are named after their ``Input``
layers. The exporter converts node after node in the graph's topological order; a merge
layer's node reads several tensors, and a tensor read by several layers is simply named by
each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn.layers.base import Layer


@dataclass(frozen=True)
class GraphNode:
    """One layer call: ``layer`` reads the tensors ``inputs`` and writes the tensor ``output``."""

    layer: Layer
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class ModelGraph:
    """The model's input tensors (name, shape without the batch axis), nodes in topological
    order, and output tensors (name, shape without the batch axis)."""

    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    nodes: tuple[GraphNode, ...]
    outputs: tuple[tuple[str, tuple[int, ...]], ...]


def model_graph(model) -> ModelGraph:
    """The nodes of a model's DAG (functional, ``Sequential`` or the seed's form alike), in
    topological order; a layer called twice (shared weights) gives two nodes.

    Raises:
        ValueError: the model has no layers, or returns one tensor twice.
    """
    graph = model.graph
    if graph is None or not graph.nodes:
        raise ValueError(f"model {model.name!r} has no layers to export; add layers first")
    taken: set = set()
    names: dict = {}
    inputs = []
    for tensor in graph.inputs:
        names[tensor.id] = unique_name(tensor.layer.name or "input", taken)
        inputs.append((names[tensor.id], tuple(tensor.sample_shape)))
    nodes = []
    for node in graph.nodes:
        layer = node.layer
        names[node.output.id] = unique_name(layer.name or layer.default_name(), taken)
        nodes.append(GraphNode(layer, tuple(names[t.id] for t in node.inputs),
                               names[node.output.id]))
    output_ids = [t.id for t in graph.outputs]
    if len(set(output_ids)) != len(output_ids):
        raise ValueError(f"model {model.name!r} returns the same tensor twice; ONNX outputs "
                         "need distinct names")
    outputs = tuple((names[t.id], tuple(t.sample_shape)) for t in graph.outputs)
    return ModelGraph(tuple(inputs), tuple(nodes), outputs)


def unique_name(name: str, taken: set) -> str:
    """``name``, or ``name_1``, ``name_2``, ... when ``taken`` has it; adds it to ``taken``."""
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate
