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

Every size is checked against ``cnn.saving.limits`` and every ``params`` dataset's shape
against the one its layer needs (from ``init_params`` and the shape the layer receives)
before it is read; weights must be finite.
"""

from __future__ import annotations

import math
import re

import numpy as np

from cnn import backend
from cnn.layers import (AveragePooling2D, Conv2D, Dense, Flatten, Input, MaxPooling2D, Output,
                        Recurrent)
from cnn.models.model import Model
from cnn.saving import limits
from cnn.saving.file_view import Dataset, Group
from cnn.saving.model_file import member, read_array, read_finite_array, read_int, read_strings

ROOT_DATASETS = ("input_shape", "lr", "layer_cnt", "name")
_LAYER_GROUP = re.compile(r"layer_(\d+)")


def is_seed_file(f: Group) -> bool:
    """Whether ``f`` has the original implementation's layout (and not our ``format``)."""
    return "format" not in f.attrs and all(name in f for name in ROOT_DATASETS)


def read_model(f: Group, compile: bool = True, dtype=None):
    """Rebuild the model stored in ``f``, compiled with the file's learning rate, loss and
    metric unless ``compile`` is False, in ``dtype`` (default ``cnn.floatx()``)."""
    input_shape = limits.sample_shape(_int_list(f, "input_shape"), "input_shape")
    layer_count = read_int(f, "layer_cnt", minimum=1, maximum=limits.MAX_LAYERS)
    names = read_strings(member(f, "name", Dataset))
    if len(names) not in (2, 3):
        raise ValueError(f"dataset 'name' should be [model name, loss] or [model name, loss, "
                         f"metric], got {names}")
    lr = member(f, "lr", Dataset)
    learning_rate = read_array(lr) if lr.shape == () else None
    if learning_rate is None or not (np.isfinite(learning_rate) and learning_rate > 0):
        shown = "an array of shape " + str(lr.shape) if learning_rate is None else \
            repr(learning_rate.tolist())
        raise ValueError(f"dataset 'lr' should be one positive number, got {shown}")
    _check_layer_groups(f, layer_count)
    _check_params_total(f, layer_count)
    budget = _Budget()

    with backend.floatx_scope(dtype or backend.floatx()), \
            backend.using_rng(np.random.default_rng(0)):
        model = Model(Input(tuple(input_shape)), names[0])
        for index in range(layer_count):
            group = member(f, f"layer_{index}", Group)
            kind, *strings = _layer_strings(group)
            try:
                model.add_layer(_read_layer(group, kind, strings, model.cur_output_shape,
                                            budget))
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


def _check_params_total(f, layer_count: int) -> None:
    """Every layer's params must have exactly the shape its layer needs (checked as each is
    read), so their declared sizes together bound what reading the file allocates."""
    total = 0
    for index in range(layer_count):
        group = member(f, f"layer_{index}", Group)
        params = group.get("params")
        if isinstance(params, Dataset):
            total += params.size
    if total > limits.MAX_PARAMETERS:
        raise ValueError(f"the layers declare params of {total} elements in all; at most "
                         f"{limits.MAX_PARAMETERS} are allowed")


def _layer_strings(group) -> list[str]:
    """``_str``: the layer type, then its string arguments."""
    strings = read_strings(member(group, "_str", Dataset))
    if not strings:
        raise ValueError(f"{group.name}/_str is empty: it should start with the layer type")
    return strings


def _read_layer(group, kind: str, strings: list[str], input_shape: tuple, budget: "_Budget"):
    """The layer stored in ``group``, built by the entry of ``_BUILDERS`` for its type on
    ``input_shape`` (the shape it receives)."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown layer type; the original implementation's files hold "
                         f"{', '.join(_BUILDERS)}")
    init_params = _flagged_dataset(group, "init_params")
    if init_params is not None:
        init_params = list(limits.sizes(_int_list(group, "init_params"), "init_params"))
    for text in strings:
        limits.activation(text, "_str")
    params = _flagged_dataset(group, "params")
    parts = _Parts(init_params, strings, params, input_shape, budget)
    layer = _BUILDERS[kind](parts)
    if params is not None and not parts.weights_used:
        raise ValueError(f"has params of shape {params.shape}, but this layer type has none")
    return layer


def _flagged_dataset(group, name: str):
    """The dataset ``group[name]`` (not read) if ``group[name + "_flag"]`` is 1, None if 0."""
    flag = read_int(group, f"{name}_flag", maximum=1)
    return member(group, name, Dataset) if flag else None


class _Budget:
    """The weight elements of the layers read so far, within ``limits.MAX_PARAMETERS``."""

    def __init__(self):
        self.total = 0

    def take(self, shape, what: str) -> None:
        self.total = limits.parameter_budget(math.prod(shape), self.total, what)


class _Parts:
    """A seed layer's stored parts, unpacked with checks that say what was expected."""

    def __init__(self, init_params, strings, params, input_shape, budget):
        self.init_params, self.strings, self.params = init_params, strings, params
        self.input_shape, self.budget = input_shape, budget
        self.weights_used = False

    def init(self, *names):
        return _unpack(self.init_params or [], "init_params", names)

    def text(self, *names):
        return _unpack(self.strings, "_str (after the type)", names)

    def weights(self, meaning: str, shape):
        """The params dataset, read once its shape is known to be ``shape``."""
        if self.params is None:
            raise ValueError(f"params ({meaning}) are missing (params_flag is not 1)")
        self.weights_used = True
        if tuple(self.params.shape) != tuple(shape):
            raise ValueError(f"params have shape {self.params.shape}, expected {tuple(shape)} "
                             f"{meaning}")
        self.budget.take(shape, "params")
        return read_finite_array(self.params, shape, "params")

    def input_axes(self, rank: int, layout: str) -> tuple:
        """The shape this layer receives, required to have ``rank`` axes."""
        if len(self.input_shape) != rank:
            raise ValueError(f"needs input of shape {layout}, gets {self.input_shape}")
        return self.input_shape


def _unpack(values, what: str, names):
    if len(values) != len(names):
        raise ValueError(f"{what} should be [{', '.join(names)}], got {list(values)}")
    return values


def _int_list(group, name: str) -> list[int]:
    """The 1-D integer dataset ``group[name]`` of at most MAX_RANK entries (checked before
    it is read)."""
    dataset = member(group, name, Dataset)
    if dataset.ndim != 1 or dataset.dtype.kind not in "iu" or len(dataset) > limits.MAX_RANK:
        raise ValueError(f"{name} should be a list of at most {limits.MAX_RANK} integers, got "
                         f"{dataset.dtype} of shape {dataset.shape}")
    return [int(v) for v in read_array(dataset)]


def _conv2d(parts: _Parts):
    filters, kernel_size, stride = parts.init("filters", "kernel_size", "stride")
    padding, activation = parts.text("padding", "activation")
    channels = parts.input_axes(3, "(channels, height, width)")[0]
    kernel = parts.weights("(filters, channels, k, k)",
                           (filters, channels, kernel_size, kernel_size))
    return Conv2D(filters, kernel_size, stride, padding=padding, activation=activation,
                  kernel=kernel, use_bias=False,
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


def _dense(cls):
    def build(parts: _Parts):
        (units,) = parts.init("units")
        (activation,) = parts.text("activation")
        shape = (units, parts.input_shape[-1])
        return cls(units, activation=activation, theta=parts.weights("(units, inputs)", shape),
                   use_bias=False)

    return build


def _recurrent(parts: _Parts):
    (units,) = parts.init("units")
    (activation,) = parts.text("activation")
    features = parts.input_axes(1, "(features,)")[0]
    theta = parts.weights("([U | W | state])", (units, features + units + 1))
    return Recurrent(units, activation=activation, theta=theta, use_bias=False)


_BUILDERS = {
    "Conv2D": _conv2d,
    "MaxPooling2D": _pooling(MaxPooling2D),
    "AveragePooling2D": _pooling(AveragePooling2D),
    "Flatten": _flatten,
    "Dense": _dense(Dense),
    "Output": _dense(Output),
    "Recurrent": _recurrent,
}
