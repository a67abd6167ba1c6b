"""``Model.summary``'s table: the seed's for a stack, with "Connected to" for a graph."""

from __future__ import annotations

import numpy as np

from cnn.layers.base import format_shape


def summary_lines(model) -> list[str]:
    """The lines of the summary of ``model``."""
    if model.is_stack:
        return _stack_lines(model)
    return _graph_lines(model)


def _stack_lines(model) -> list[str]:
    rule, double = "_" * 65, "=" * 65
    lines = [f"model name: {model.name}", rule,
             f"{'Layer':<29}{'Output Shape':<26}{'Param #':<10}", double]
    for layer in model.layers:
        kind, shape, params = layer.summary()
        label = kind if _auto_named(layer) else f"{layer.name} ({kind})"
        lines += [f"{label:<29}{format_shape(shape[1:]):<26}{params:<10}", rule]
    return lines + _totals(model, double, rule)


def _graph_lines(model) -> list[str]:
    graph = model.graph
    layers = [*model.input_layers, *model.layers]
    labels = [f"{layer.name} ({type(layer).__name__})" for layer in layers]
    first = max(29, max(len(label) for label in labels) + 2)
    width = first + 22 + 10 + 37
    rule, double = "_" * width, "=" * width
    lines = [f"model name: {model.name}", rule,
             f"{'Layer (type)':<{first}}{'Output Shape':<22}{'Param #':<10}{'Connected to'}",
             double]
    for layer, name in zip(layers, labels):
        for index, node in enumerate(graph.model_nodes(layer)):
            label = name if index == 0 else ""
            params = layer.count_params() if index == 0 else ""
            sources = [f"{t.layer.name}[{graph.model_nodes(t.layer).index(t.node)}][0]"
                       for t in node.inputs] or ["-"]
            shape = format_shape(node.output.sample_shape)
            lines.append(f"{label:<{first}}{shape:<22}{params!s:<10}{sources[0]}")
            lines += [f"{'':<{first + 32}}{source}" for source in sources[1:]]
        lines.append(rule)
    return lines + _totals(model, double, rule)


def _totals(model, double: str, rule: str) -> list[str]:
    trainable = sum(int(np.prod(p.shape)) for p in model.trainable_weights)
    total = model.count_params()
    lines = [double, f"Total params: {total}"]
    if trainable != total:
        lines += [f"Trainable params: {trainable}", f"Non-trainable params: {total - trainable}"]
    lines.append(rule)
    return lines


def _auto_named(layer) -> bool:
    """Names the model generated itself are not shown (the seed showed the type only)."""
    base = layer.default_name()
    return layer.name == base or layer.name.startswith(base + "_")
