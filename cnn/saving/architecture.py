"""Checking a saved architecture (our ``model_config``) against the limits of ``limits``
before the model is built.

``check_model_config(config)`` walks the layers in order. For each it checks the config's
values (sizes are integers within MAX_SIZE, activation arguments are finite, ...), bounds the
number of weight elements the layer will create from its config and the shape it receives,
refuses the layer if the model would exceed MAX_PARAMETERS, and only then builds it (alone,
to learn the shape it passes on, which must stay within MAX_SAMPLE_ELEMENTS). So no layer is
ever built whose weights were not counted first.

The bounds are known for every layer class of this library (``WEIGHT_BOUNDS``). A layer
class registered by the user's own code has no bound: its config values are checked, the
code that builds it is the user's.
"""

from __future__ import annotations

import math

import numpy as np

from cnn import backend
from cnn.layers.base import deserialize
from cnn.saving import limits

FLOAT_TYPES = ("float16", "float32", "float64")


def check_model_config(config: dict) -> None:
    """Raise a ValueError naming the layer and the problem if ``config`` (from
    ``Model.get_config``) declares sizes beyond the limits; build nothing that was not
    counted first. The layers built here are thrown away."""
    dtype = config.get("dtype", "float32")
    if dtype not in FLOAT_TYPES:
        raise ValueError(f"model_config: dtype must be one of {', '.join(FLOAT_TYPES)}, "
                         f"got {dtype!r}")
    layers = config["layers"]
    if len(layers) > limits.MAX_LAYERS:
        raise ValueError(f"model_config has {len(layers)} layers; at most {limits.MAX_LAYERS} "
                         "are allowed")
    shape = limits.sample_shape(config["input_shape"], "model_config: input_shape")
    total = 0
    with backend.floatx_scope(dtype), backend.using_rng(np.random.default_rng(0)):
        for index, spec in enumerate(layers):
            what = f"model_config: layer {index}" + _named(spec)
            check_layer_spec(spec, what)
            bound = weight_bound(spec, shape)
            if bound is not None:
                total = limits.parameter_budget(bound, total, what)
            layer = deserialize(spec)
            shape = limits.sample_shape(layer.build(shape), f"{what}: its output shape")


def check_layer_spec(spec, what: str, depth: int = 0) -> None:
    """The values of one ``{"class_name", "config"}`` entry (and of a wrapped layer's)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"{what}: a layer should be {{'class_name': ..., 'config': {{...}}}}, "
                         f"got {type(spec).__name__}")
    if depth > limits.MAX_RANK:
        raise ValueError(f"{what}: layers wrapped more than {limits.MAX_RANK} deep")
    for key, value in spec.get("config", {}).items():
        where = f"{what}: {key}"
        if value is None:
            continue
        if key in limits.SIZE_KEYS:
            limits.sizes(value, where)
        elif key == "target_shape":
            _target_shape(value, where)
        elif key == "padding" and not isinstance(value, str):
            _padding(value, where)
        elif key == "axis":
            limits.integer(value, where, -limits.MAX_RANK, limits.MAX_RANK)
        elif key == "activation":
            limits.activation(value, where)
        elif key == "layer":
            check_layer_spec(value, f"{what} (wrapped)", depth + 1)


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


def _batch_normalization(config, shape):
    return 4 * max(shape)


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
