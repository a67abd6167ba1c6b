"""Reading model files written by the original implementation (the seed's section 4.6).

Layout of such a file (every item a dataset)::

    input_shape   int (d,)          e.g. [1, 28, 28] or [3]
    lr            float ()          the SGD learning rate
    layer_cnt     int ()            number of layers n
    name          str (2,) or (3,)  [model name, loss name] or [model name, loss, metric]
    layer_{i}/_str               str (k,)  [type, ...strings]: Conv2D [padding, activation],
                                           pooling [padding], Dense/Output/Recurrent
                                           [activation], Flatten []
    layer_{i}/init_params_flag   int ()    1 if init_params is present
    layer_{i}/init_params        int (m,)  Conv2D [filters, kernel_size, stride],
                                           pooling [pool_size, stride], Dense/Output/Recurrent [units]
    layer_{i}/params_flag        int ()    1 if params is present
    layer_{i}/params             float     Conv2D kernel (F, C, k, k); Dense/Output theta
                                           (units, inputs); Recurrent [U | W | state]
                                           (units, inputs + units + 1)

The original layers had no biases, so they map onto ours with ``use_bias=False``; the
Recurrent layer's last column is its carried state, which the loaded model starts from.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from cnn import backend
from cnn.layers import (AveragePooling2D, Conv2D, Dense, Flatten, Input, MaxPooling2D, Output,
                        Recurrent)
from cnn.models.model import Model
from cnn.saving.model_file import member, read_array, read_int, read_strings

ROOT_DATASETS = ("input_shape", "lr", "layer_cnt", "name")
_LAYER_GROUP = re.compile(r"layer_(\d+)")


def is_seed_file(f: h5py.File) -> bool:
    """Whether ``f`` has the original implementation's layout (and not our ``format``)."""
    return "format" not in f.attrs and all(name in f for name in ROOT_DATASETS)


def read_model(f: h5py.File, compile: bool = True, dtype=None):
    """Rebuild the model stored in ``f``, compiled with the file's learning rate, loss and
    metric unless ``compile`` is False, in ``dtype`` (default ``cnn.floatx()``)."""
    input_shape = _int_list(read_array(member(f, "input_shape", h5py.Dataset)), "input_shape")
    layer_count = read_int(f, "layer_cnt", minimum=1)
    names = read_strings(member(f, "name", h5py.Dataset))
    if len(names) not in (2, 3):
        raise ValueError(f"dataset 'name' should be [model name, loss] or [model name, loss, "
                         f"metric], got {names}")
    learning_rate = read_array(member(f, "lr", h5py.Dataset))
    if learning_rate.shape != () or not learning_rate > 0:
        raise ValueError(f"dataset 'lr' should be one positive number, got {learning_rate.tolist()!r}")
    _check_layer_groups(f, layer_count)

    with backend.floatx_scope(dtype or backend.floatx()), \
            backend.using_rng(np.random.default_rng(0)):
        model = Model(Input(tuple(input_shape)), names[0])
        for index in range(layer_count):
            group = member(f, f"layer_{index}", h5py.Group)
            kind, *strings = _layer_strings(group)
            try:
                model.add_layer(_read_layer(group, kind, strings))
            except ValueError as exc:
                raise ValueError(f"layer_{index} ({kind}): {exc}") from None
    if compile:
        model.compile(float(learning_rate), names[1], names[2] if len(names) == 3 else None)
    return model


def _check_layer_groups(f, layer_count: int) -> None:
    indices = sorted(int(m.group(1)) for key in f if (m := _LAYER_GROUP.fullmatch(key)))
    if indices != list(range(layer_count)):
        raise ValueError(f"layer_cnt is {layer_count} but the file has the groups "
                         f"{', '.join(f'layer_{i}' for i in indices) or 'none'}")


def _layer_strings(group) -> list[str]:
    """``_str``: the layer type, then its string arguments."""
    strings = read_strings(member(group, "_str", h5py.Dataset))
    if not strings:
        raise ValueError(f"{group.name}/_str is empty: it should start with the layer type")
    return strings


def _read_layer(group, kind: str, strings: list[str]):
    """The layer stored in ``group``, built by the entry of ``_BUILDERS`` for its type."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown layer type; the original implementation's files hold "
                         f"{', '.join(_BUILDERS)}")
    init_params = _flagged_dataset(group, "init_params")
    if init_params is not None:
        init_params = _int_list(init_params, "init_params")
    params = _flagged_dataset(group, "params")
    parts = _Parts(init_params, strings, params)
    layer = _BUILDERS[kind](parts)
    if params is not None and not parts.weights_used:
        raise ValueError(f"has params of shape {params.shape}, but this layer type has none")
    return layer


def _flagged_dataset(group, name: str):
    """``group[name]`` if ``group[name + "_flag"]`` is 1, None if it is 0."""
    flag = read_int(group, f"{name}_flag")
    if flag not in (0, 1):
        raise ValueError(f"{name}_flag should be 0 or 1, got {flag}")
    return read_array(member(group, name, h5py.Dataset)) if flag else None


class _Parts:
    """A seed layer's stored parts, unpacked with checks that say what was expected."""

    def __init__(self, init_params, strings, params):
        self.init_params, self.strings, self.params = init_params, strings, params
        self.weights_used = False

    def init(self, *names):
        return _unpack(self.init_params or [], "init_params", names)

    def text(self, *names):
        return _unpack(self.strings, "_str (after the type)", names)

    def weights(self, meaning: str):
        if self.params is None:
            raise ValueError(f"params ({meaning}) are missing (params_flag is not 1)")
        self.weights_used = True
        return self.params


def _unpack(values, what: str, names):
    if len(values) != len(names):
        raise ValueError(f"{what} should be [{', '.join(names)}], got {list(values)}")
    return values


def _int_list(array: np.ndarray, what: str) -> list[int]:
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"{what} should be a list of integers, got {array.dtype} of shape "
                         f"{array.shape}")
    return [int(v) for v in array]


def _conv2d(parts: _Parts):
    filters, kernel_size, stride = parts.init("filters", "kernel_size", "stride")
    padding, activation = parts.text("padding", "activation")
    return Conv2D(filters, kernel_size, stride, padding=padding, activation=activation,
                  kernel=parts.weights("kernel (filters, channels, k, k)"), use_bias=False,
                  data_format="channels_first")  # the seed's layout, whatever the default


def _pooling(cls):
    def build(parts: _Parts):
        pool_size, stride = parts.init("pool_size", "stride")
        (padding,) = parts.text("padding")
        return cls(pool_size, stride, padding=padding, data_format="channels_first")

    return build


def _flatten(parts: _Parts):
    parts.init()
    parts.text()
    return Flatten()


def _dense(cls, meaning: str):
    def build(parts: _Parts):
        (units,) = parts.init("units")
        (activation,) = parts.text("activation")
        return cls(units, activation=activation, theta=parts.weights(meaning), use_bias=False)

    return build


_BUILDERS = {
    "Conv2D": _conv2d,
    "MaxPooling2D": _pooling(MaxPooling2D),
    "AveragePooling2D": _pooling(AveragePooling2D),
    "Flatten": _flatten,
    "Dense": _dense(Dense, "theta (units, inputs)"),
    "Output": _dense(Output, "theta (units, inputs)"),
    "Recurrent": _dense(Recurrent, "theta [U | W | state] (units, inputs + units + 1)"),
}
