"""The graph walk: a cnn model as a list of nodes (layer, input tensor names, output name).

A tensor is named after the layer that produces it (Keras's convention: ``"conv2d"`` is the
output of the layer ``conv2d``); the model's input tensor is named after its ``Input``. The
exporter converts node after node in this order, so a model whose layers form a DAG (merge
layers, several inputs and outputs) needs only a walk that lists its nodes in topological
order with their inbound tensors; the converters already take a list of input names.
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
    """The nodes of a model built with ``Model(Input(...))`` + ``add_layer`` or ``Sequential``.

    Raises:
        ValueError: the model has no input or no layers.
    """
    if model.input is None or not model.layers:
        raise ValueError(f"model {model.name!r} has no layers to export; add layers first")
    taken = set()
    input_name = unique_name(model.input.name or "input", taken)
    nodes = []
    current = input_name
    for layer in model.layers:
        output = unique_name(layer.name, taken)
        nodes.append(GraphNode(layer, (current,), output))
        current = output
    return ModelGraph(((input_name, tuple(model.input.input_shape)),), tuple(nodes),
                      ((current, tuple(model.layers[-1].output_shape[1:])),))


def unique_name(name: str, taken: set) -> str:
    """``name``, or ``name_1``, ``name_2``, ... when ``taken`` has it; adds it to ``taken``."""
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate
