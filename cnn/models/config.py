"""A model's architecture as JSON-able values, and the model rebuilt from them.

The config (Keras's functional layout)::

    {"name": ..., "dtype": "float32", "class_names": [...] | None,
     "stack": true | false,                 # built with add_layer / Sequential
     "input_shape": [...],                  # the single input's shape (stacks; older readers)
     "layers": [{"class_name": "Dense", "config": {...}, "name": "dense",
                 "inbound_nodes": [[["input", 0, 0]], ...]}, ...],
     "input_layers": [["input", 0, 0]], "output_layers": [["dense", 0, 0]],
     "input_keys": null | [...], "output_keys": null | [...]}

Each inbound node lists the tensors one call of the layer read, as ``[layer name, node
index, tensor index]``: the node index counts the calls of that layer within this model
(a layer called twice, sharing its weights, has two nodes); a node with more than one tensor
is a call on a list. Input layers are entries without inbound nodes. Configs written before
functional models (``input_shape`` and a list of layers, no ``input_layers``) are stacks.

A config read from a file is untrusted: every reference is checked, and a bad one raises a
``ValueError`` saying which layer and which node.
"""

from __future__ import annotations

import collections

from cnn.layers.base import deserialize, serialize
from cnn.layers.core import Input


def model_config(model) -> dict:
    """``model``'s architecture (see the module docstring)."""
    config = {"name": model.name, "dtype": model.dtype, "stack": model.is_stack,
              "class_names": None if model.class_names is None
              else [str(n) for n in model.class_names]}
    if len(model.input_layers) == 1:
        config["input_shape"] = list(model.input_layers[0].input_shape)
    graph = model.graph
    if graph is None:
        config["layers"] = []
        return config
    entries = []
    for layer in [*model.input_layers, *model.layers]:
        nodes = graph.model_nodes(layer)
        entries.append({**serialize(layer), "name": layer.name,
                        "inbound_nodes": [[_reference(graph, t) for t in node.inputs]
                                          for node in nodes if node.inputs]})
    config.update({
        "layers": entries,
        "input_layers": [_reference(graph, t) for t in graph.inputs],
        "output_layers": [_reference(graph, t) for t in graph.outputs],
        "input_keys": model.input_keys,
        "output_keys": model.output_keys,
    })
    return config


def _reference(graph, tensor) -> list:
    return [tensor.layer.name, graph.model_nodes(tensor.layer).index(tensor.node), 0]


def build_model(config: dict, stack, functional):
    """The model ``config`` describes: ``stack(input_layer, name)`` then ``add_layer`` for a
    stack, else ``functional(inputs=..., outputs=..., name=...)`` after replaying every
    node. Raises ValueError for a config that does not describe a valid graph."""
    name = config.get("name", "cnn")
    if not isinstance(config.get("layers"), list):
        raise ValueError("model config: 'layers' should be a list")
    if "input_layers" not in config:
        model = stack(Input(config["input_shape"]), name)
        for spec in config["layers"]:
            model.add_layer(deserialize(spec))
        return model
    layers, nodes = _layers_and_nodes(config["layers"])
    if config.get("stack"):
        inputs = [layer for layer in layers.values() if isinstance(layer, Input)]
        if len(inputs) != 1:
            raise ValueError(f"model config: a stack has one Input layer, found {len(inputs)}")
        model = stack(inputs[0], name)
        for layer in layers.values():
            if not isinstance(layer, Input):
                model.add_layer(layer)
        return model
    tensors = _replay(layers, nodes)
    inputs = [_lookup(tensors, ref, "input_layers") for ref in _list(config, "input_layers")]
    outputs = [_lookup(tensors, ref, "output_layers") for ref in _list(config, "output_layers")]
    return functional(inputs=_structure(inputs, config.get("input_keys"), "input_keys"),
                      outputs=_structure(outputs, config.get("output_keys"), "output_keys"),
                      name=name)


def _layers_and_nodes(entries: list):
    layers, nodes = {}, {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"model config: a layer entry needs a 'name', got {entry!r:.80}")
        if entry["name"] in layers:
            raise ValueError(f"model config: two layers are named {entry['name']!r}")
        layer = deserialize(entry)
        layer.name = entry["name"]
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list) or not all(isinstance(n, list) and n for n in inbound):
            raise ValueError(f"model config: layer {entry['name']!r} has malformed "
                             "inbound_nodes (a list of lists of [layer, node, tensor])")
        if isinstance(layer, Input) and inbound:
            raise ValueError(f"model config: Input layer {entry['name']!r} has inbound nodes")
        layers[entry["name"]] = layer
        nodes[entry["name"]] = inbound
    return layers, nodes


def _replay(layers: dict, nodes: dict) -> dict:
    """Call every layer on the tensors its nodes name, as soon as they exist; returns
    ``{(layer name, node index): tensor}``."""
    tensors = {(name, 0): layer.symbolic_output() for name, layer in layers.items()
               if isinstance(layer, Input)}
    done = {name: 0 for name in layers}
    for name, index, keys in replay_order(nodes, set(tensors), _keys):
        args = [tensors[key] for key in keys]
        try:
            tensors[(name, index)] = layers[name](args if len(args) > 1 else args[0])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model config: node {index} of layer {name!r}: {exc}") from None
        done[name] += 1
    stuck = [name for name in layers if done[name] < len(nodes[name])]
    if stuck:
        raise ValueError(f"model config: the inbound nodes of {', '.join(map(repr, stuck))} "
                         "name layers or nodes that do not exist or form a cycle")
    return tensors


def replay_order(nodes: dict, produced: set, keys_of):
    """Yield ``(layer name, node index, input keys)`` for the nodes of ``nodes`` (``{layer
    name: [inbound node, ...]}``) in an order where every node comes after the nodes whose
    outputs it reads; after each yield its own output ``(name, index)`` counts as produced.
    ``keys_of(inbound node, layer name)`` gives the ``(layer name, node index)`` keys a node
    reads (None: the layer's remaining nodes are skipped). A layer waits on one missing key
    at a time, so the work is linear in the references, whatever the order of ``nodes``
    (a file may list a graph of thousands of layers backwards). Nodes that never become
    ready are not yielded."""
    done = dict.fromkeys(nodes, 0)
    waiting: dict[tuple, list] = {}
    queue = collections.deque(nodes)
    while queue:
        name = queue.popleft()
        while done[name] < len(nodes[name]):
            keys = keys_of(nodes[name][done[name]], name)
            if keys is None:
                break
            missing = next((key for key in keys if key not in produced), None)
            if missing is not None:
                waiting.setdefault(missing, []).append(name)
                break
            index = done[name]
            yield name, index, keys
            produced.add((name, index))
            done[name] += 1
            queue.extend(waiting.pop((name, index), []))


def _keys(refs: list, owner: str) -> list:
    return [_key(ref, owner) for ref in refs]


def _key(ref, owner: str) -> tuple:
    if (not isinstance(ref, list) or len(ref) not in (3, 4) or not isinstance(ref[0], str)
            or any(isinstance(v, bool) or not isinstance(v, int) for v in ref[1:3])
            or ref[2] != 0):
        raise ValueError(f"model config: layer {owner!r} has a bad inbound reference "
                         f"{ref!r:.80} (expected [layer name, node index, 0])")
    return ref[0], ref[1]


def _lookup(tensors: dict, ref, what: str):
    key = _key(ref, what)
    if key not in tensors:
        raise ValueError(f"model config: {what} names node {key[1]} of layer {key[0]!r}, "
                         "which does not exist")
    return tensors[key]


def _list(config: dict, key: str) -> list:
    value = config.get(key)
    if not isinstance(value, list) or not value:
        raise ValueError(f"model config: {key!r} should be a non-empty list")
    return value


def _structure(tensors: list, keys, what: str):
    if keys is None:
        return tensors if len(tensors) > 1 else tensors[0]
    if not isinstance(keys, list) or len(keys) != len(tensors) or not all(
            isinstance(k, str) for k in keys):
        raise ValueError(f"model config: {what} should list one name per tensor")
    return dict(zip(keys, tensors))
