"""Saving and loading models as HDF5 (see docs/FORMAT.md for the layout).

Files are written atomically (a temporary file beside the target, renamed when complete)
and read without executing or unpickling anything: the architecture is JSON, the weights are
plain datasets.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

import cnn
from cnn.utils.fileio import atomic_path

FORMAT_NAME = "cnn"
FORMAT_VERSION = 1


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` (HDF5): config, compile settings, weights, training state."""
    if model.input is None or not model.layers:
        raise ValueError("cannot save a model without an input and layers")
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["cnn_version"] = cnn.__version__
            f.create_dataset("model_config", data=json.dumps(model.get_config()))
            compile_config = model.compile_config()
            if compile_config is not None:
                f.create_dataset("compile_config", data=json.dumps(compile_config))
            _write_weights(f.create_group("model_weights"), model)
            state = f.create_group("training_state")
            state.attrs["epoch"] = int(model.epoch)
            if model.train_seed is not None:
                state.attrs["train_seed"] = int(model.train_seed)
            if model.optimizer is not None:
                _write_optimizer(f.create_group("optimizer_weights"), model.optimizer)


def _write_weights(group, model) -> None:
    group.attrs["layer_names"] = json.dumps([layer.name for layer in model.layers])
    for layer in model.layers:
        layer_group = group.create_group(layer.name)
        names = layer.weight_names()
        layer_group.attrs["weight_names"] = json.dumps(names)
        for name, value in zip(names, layer.get_weights()):
            layer_group.create_dataset(name, data=value)


def _write_optimizer(group, optimizer) -> None:
    state = optimizer.get_state()
    group.attrs["iterations"] = int(state.pop("iterations"))
    for key, value in state.items():
        group.create_dataset(key, data=value)


def load_model(path, compile: bool = True):
    """Read a model written by ``Model.save`` (or by the original implementation)."""
    from cnn.models.model import Model

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: not a cnn model file")
        config = json.loads(_read_string(f["model_config"]))
        compile_config = None
        if compile and "compile_config" in f:
            compile_config = json.loads(_read_string(f["compile_config"]))
        model = Model.from_config(config, compile_config)
        _read_weights(f["model_weights"], model)
        state = f["training_state"].attrs
        model.epoch = int(state.get("epoch", 0))
        model.train_seed = int(state["train_seed"]) if "train_seed" in state else None
        if compile_config is not None and "optimizer_weights" in f:
            _read_optimizer(f["optimizer_weights"], model)
    return model


def _read_string(dataset) -> str:
    value = dataset[()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_weights(group, model) -> None:
    for layer in model.layers:
        layer_group = group[layer.name]
        names = json.loads(layer_group.attrs["weight_names"])
        layer.set_weights([np.asarray(layer_group[name]) for name in names])


def _read_optimizer(group, model) -> None:
    state = {"iterations": int(group.attrs.get("iterations", 0))}

    def collect(name, obj):
        if isinstance(obj, h5py.Dataset):
            state[name] = np.asarray(obj)

    group.visititems(collect)
    model.optimizer.set_state(state, model.trainable_weights)
