"""Checking a saved architecture (our ``model_config``) against the limits of ``limits``
before the model is built.

``check_model_config(config)`` walks the layers in order (a functional config's in the
order of its graph: a node's input shapes are the output shapes of the nodes it names). For each it checks the config's
values (sizes are integers within MAX_SIZE, activation arguments are finite, ...), bounds the
number of weight elements the layer will create from its config and the shape it receives,
refuses the layer if the model would exceed MAX_PARAMETERS, and only then builds it (alone,
to learn the shape it passes on, which must stay within MAX_SAMPLE_ELEMENTS). So no layer is
ever built whose weights were not counted first.

Rules are written for the common layer classes (``WEIGHT_BOUNDS``). Every other layer, the
user's own included, is built under ``cnn.initializers.bounded_initialization``: each initial
weight it draws has its shape checked against what is left of MAX_PARAMETERS before it is
allocated.
"""

from __future__ import annotations

import math

import numpy as np

from cnn import backend, initializers
from cnn.layers.base import deserialize
from cnn.models.config import replay_order
from cnn.saving import limits

FLOAT_TYPES = ("float16", "float32", "float64")


def check_model_config(config: dict) -> None:
    """Raise a ValueError naming the layer and the problem if ``config`` (from
    ``Model.get_config``: a graph with ``inbound_nodes``, or an older stack with
    ``input_shape``) declares sizes beyond the limits; build nothing that was not counted
    first. The layers built here are thrown away."""
    dtype = config.get("dtype", "float32")
    if dtype not in FLOAT_TYPES:
        raise ValueError(f"model_config: dtype must be one of {', '.join(FLOAT_TYPES)}, "
                         f"got {dtype!r}")
    layers = config["layers"]
    if len(layers) > limits.MAX_LAYERS:
        raise ValueError(f"model_config has {len(layers)} layers; at most {limits.MAX_LAYERS} "
                         "are allowed")
    for index, spec in enumerate(layers):
        check_layer_spec(spec, _describe(index, spec))
    # Every initial weight is drawn under the model-wide bound, its shape checked before
    # it is allocated: this covers the layers without a rule in WEIGHT_BOUNDS too.
    with backend.floatx_scope(dtype), backend.using_rng(np.random.default_rng(0)), \
            initializers.bounded_initialization(limits.MAX_PARAMETERS):
        if "input_layers" in config:
            if config.get("input_shape") is not None:  # a copy for older readers
                limits.sample_shape(config["input_shape"], "model_config: input_shape")
            if config.get("stack"):  # built with add_layer in order, as the builder does
                _check_stack([spec for spec in layers if spec.get("class_name") != "Input"],
                             _stack_input_shape(layers))
            else:
                _check_graph(layers)
        else:
            _check_stack(layers, limits.sample_shape(config.get("input_shape"),
                                                     "model_config: input_shape"))


def _check_stack(layers: list, shape: tuple) -> None:
    """An older config: each layer reads the output of the one before."""
    total = 0
    for index, spec in enumerate(layers):
        total, shape = _build_counted(spec, shape, total, _describe(index, spec))


def _stack_input_shape(entries: list) -> tuple:
    inputs = [spec for spec in entries if spec.get("class_name") == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"model_config: a stack has one Input layer, found {len(inputs)}")
    return _input_shape(inputs[0], "model_config: the Input layer")


def _input_shape(spec: dict, what: str) -> tuple:
    config = spec.get("config", {})
    shape = config.get("input_shape", config.get("shape"))
    return limits.sample_shape(shape, f"{what}: input_shape")


def _check_graph(entries: list) -> None:
    """A functional config: each node's input shapes are the outputs of the nodes it names,
    in the order of ``replay_order`` (the model builder's). A reference that is malformed or
    never resolves is left for the builder, which reports it (``cnn.models.config``);
    nothing is built for it here."""
    shapes, specs, nodes, built, total = {}, {}, {}, {}, 0
    for index, spec in enumerate(entries):
        what = _describe(index, spec)
        name = spec.get("name")
        if spec.get("class_name") == "Input":
            shapes[(name, 0)] = _input_shape(spec, what)
        elif isinstance(name, str) and isinstance(spec.get("inbound_nodes"), list) \
                and name not in specs:
            specs[name], nodes[name] = (what, spec), spec["inbound_nodes"]
    for name, node, keys in replay_order(nodes, set(shapes), _node_keys):
        what, spec = specs[name]
        inputs = [shapes[key] for key in keys]
        shape_in = inputs if len(inputs) > 1 else inputs[0]
        if name not in built:
            total, shape_out = _build_counted(spec, shape_in, total, what)
            built[name] = (shape_in, shape_out)
        elif built[name][0] != shape_in:
            raise ValueError(f"{what}: node {node} gives it input of shape {shape_in}, but "
                             f"its first node gave {built[name][0]} (a shared layer takes one "
                             "shape)")
        shapes[(name, node)] = built[name][1]


def _node_keys(node, owner: str = "") -> list[tuple] | None:
    if not isinstance(node, list) or not node or len(node) > limits.MAX_LAYERS:
        return None
    keys = []
    for ref in node:
        if not isinstance(ref, list) or len(ref) < 2 or not isinstance(ref[0], str) \
                or isinstance(ref[1], bool) or not isinstance(ref[1], int):
            return None
        keys.append((ref[0], ref[1]))
    return keys


def _build_counted(spec: dict, shape_in, total: int, what: str):
    """Count the layer's weights (when its class has a rule), then build it alone on
    ``shape_in``; returns the new total and its output shape, checked against the limits."""
    bound = weight_bound(spec, shape_in) if not isinstance(shape_in, list) else None
    if bound is not None:
        total = limits.parameter_budget(bound, total, what)
    layer = deserialize(spec)
    try:
        shape_out = layer.build(shape_in)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if isinstance(shape_out, list):
        raise ValueError(f"{what}: a layer of several outputs cannot be loaded")
    return total, limits.sample_shape(shape_out, f"{what}: its output shape")


def _describe(index: int, spec) -> str:
    return f"model_config: layer {index}" + _named(spec)


def check_layer_spec(spec, what: str, depth: int = 0) -> None:
    """The values of one ``{"class_name", "config"}`` entry (and of a wrapped layer's):
    sizes are positive integers of at most MAX_SIZE, paddings and croppings non-negative,
    every other integer (or list of integers) of magnitude at most MAX_SIZE, seeds within
    what NumPy accepts, activation arguments finite."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"{what}: a layer should be {{'class_name': ..., 'config': {{...}}}}, "
                         f"got {type(spec).__name__}")
    if depth > limits.MAX_RANK:
        raise ValueError(f"{what}: layers wrapped more than {limits.MAX_RANK} deep")
    for key, value in spec.get("config", {}).items():
        where = f"{what}: {key}"
        if value is None:
            continue
        if key == "input_shape":
            limits.sizes(value, where, variable=True)
        elif key in limits.SIZE_KEYS:
            limits.sizes(value, where)
        elif key == "target_shape":
            _target_shape(value, where)
        elif key in limits.NON_NEGATIVE_KEYS and not isinstance(value, str):
            _padding(value, where)
        elif key == "axis":
            _integers(value, where, -limits.MAX_RANK, limits.MAX_RANK)
        elif key in limits.SEED_KEYS:
            _integers(value, where, 0, limits.MAX_SEED)
        elif key == "activation":
            limits.activation(value, where)
        elif isinstance(value, dict) and "class_name" in value and "config" in value:
            check_layer_spec(value, f"{what} ({key})", depth + 1)
        else:
            _integers(value, where, -limits.MAX_SIZE, limits.MAX_SIZE)


def _integers(value, what: str, minimum: int, maximum: int, depth: int = 0) -> None:
    """Every integer in ``value`` (a number, or lists of them) within [minimum, maximum];
    strings, floats and other values are left to the layer's own checks."""
    if isinstance(value, (list, tuple)):
        if depth >= limits.MAX_RANK:
            return
        for i, entry in enumerate(value):
            _integers(entry, f"{what}[{i}]", minimum, maximum, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        limits.integer(value, what, minimum, maximum)


def weight_bound(spec: dict, input_shape: tuple) -> int | None:
    """An upper bound of the weight elements the layer of ``spec`` creates when built on
    ``input_shape`` (None: a layer class without a known bound). A shape that the layer
    does not accept gives 0: building it then raises the layer's own error."""
    rule = WEIGHT_BOUNDS.get(spec.get("class_name"), _unknown)
    if rule is _unknown:
        return None
    try:
        return int(rule(spec.get("config", {}), input_shape))
    except (IndexError, KeyError, TypeError, ValueError):
        return 0


def _unknown(config, shape):
    return None


def _dense(config, shape):
    return config["units"] * (shape[-1] + 1)


def _conv2d(config, shape):
    if len(shape) != 3:
        return 0
    kernel = limits.sizes(config["kernel_size"], "kernel_size")
    kernel_area = math.prod(kernel) if len(kernel) > 1 else kernel[0] ** 2
    return config["filters"] * (shape[0] * kernel_area + 1)


def _recurrent(config, shape):
    units = config["units"]
    return units * (shape[0] + units + 2)


def _rnn(gates):
    def bound(config, shape):
        units = config["units"]
        return gates * units * (shape[-1] + units + 2)

    return bound


def _embedding(config, shape):
    return config["input_dim"] * config["output_dim"]


def _normalization(config, shape):
    return 3 * math.prod(shape)  # mean, variance and the count behind them, at most


def _batch_normalization(config, shape):
    return 4 * max(size for size in shape if size is not None)


def _time_distributed(config, shape):
    inner = weight_bound(config["layer"], shape[1:])
    return 0 if inner is None else inner


def _no_weights(config, shape):
    return 0


WEIGHT_BOUNDS = {
    "Dense": _dense,
    "Output": _dense,
    "Conv2D": _conv2d,
    "Recurrent": _recurrent,
    "SimpleRNN": _rnn(1),
    "LSTM": _rnn(4),
    "GRU": _rnn(3),
    "BatchNormalization": _batch_normalization,
    "Embedding": _embedding,  # draws its table itself, not through cnn.initializers
    "Normalization": _normalization,  # allocates its statistics itself
    "TimeDistributed": _time_distributed,
    **{name: _no_weights for name in ("Flatten", "Dropout", "Activation", "MaxPooling2D",
                                       "AveragePooling2D", "GlobalAveragePooling2D",
                                       "ZeroPadding2D", "Reshape")},
}


def _target_shape(value, what: str) -> None:
    if not isinstance(value, (list, tuple)) or not 0 < len(value) <= limits.MAX_RANK:
        raise ValueError(f"{what} must be a list of 1 to {limits.MAX_RANK} integers, got {value!r}")
    for i, entry in enumerate(value):
        if entry != -1 or isinstance(entry, bool):
            limits.integer(entry, f"{what}[{i}]")


def _padding(value, what: str) -> None:
    entries = value if isinstance(value, (list, tuple)) else [value]
    if len(entries) > limits.MAX_RANK:
        raise ValueError(f"{what} has {len(entries)} entries; at most {limits.MAX_RANK}")
    for i, entry in enumerate(entries):
        if isinstance(entry, (list, tuple)):
            _padding(entry, f"{what}[{i}]")
        else:
            limits.integer(entry, f"{what}[{i}]", minimum=0)


def _named(spec) -> str:
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict):
        name = spec["config"].get("name")
        kind = spec.get("class_name")
        if isinstance(name, str) and isinstance(kind, str):
            return f' "{name[:80]}" ({kind[:80]})'
    return ""
