"""``save_weights`` / ``load_weights``: a model's weights alone, as HDF5 (Keras's semantics).

The file holds, for every layer in order, a group named after the layer with one dataset per
weight (parameters, then buffers such as moving statistics) and the attribute
``weight_names``; the root's ``layer_names`` attribute lists the layers in order. It is the
layout of the ``model_weights`` group of a model file (docs/FORMAT.md), so ``load_weights``
also reads the weights out of a file written by ``model.save``.

Loading matches layers as Keras does:

* ``by_name=False`` (default): by order. The layers that have weights, in the file and in the
  model, are paired one by one; their counts must agree, and so must every layer's number of
  weights and their shapes. Layer names may differ (a rebuilt model numbers them anew).
* ``by_name=True``: every model layer with weights takes the file's layer of the same name;
  layers the file lacks keep their weights. With ``skip_mismatch=True`` a layer whose weights
  do not fit is skipped with a warning instead of raising.

Everything is checked before any weight is assigned, so a failed load leaves the model as it
was. Dataset shapes are compared before their data is read (memory stays bounded by the
model's own size); nothing in the file is executed.
"""

from __future__ import annotations

import warnings

import numpy as np

import cnn
from cnn.saving import hdf5_writer, limits
from cnn.saving.file_view import Dataset, Group
from cnn.saving.model_file import (ModelFileError, member, open_model_file,
                                   read_finite_array)
from cnn.utils.fileio import atomic_path

WEIGHTS_FORMAT_NAME = "cnn-weights"
WEIGHTS_FORMAT_VERSION = 1


def save_weights(model, path) -> None:
    """Write every layer's weights (parameters and buffers) to ``path``, atomically.

    Raises:
        ValueError: the model has no layers.
        OSError: ``path`` cannot be written (the message names it); a file already there is
            left untouched.
    """
    if not model.layers:
        raise ValueError(f"cannot save weights to {path}: the model has no layers")
    try:
        with atomic_path(path) as temporary:
            with hdf5_writer.create_file(temporary) as f:
                f.attrs["format"] = WEIGHTS_FORMAT_NAME
                f.attrs["format_version"] = WEIGHTS_FORMAT_VERSION
                f.attrs["cnn_version"] = cnn.__version__
                write_layer_weights(f, model.layers)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the weights file ({exc.strerror or exc})",
                      str(path)) from exc


def write_layer_weights(group, layers) -> None:
    """The layout described above, into an open HDF5 group."""
    group.attrs["layer_names"] = hdf5_writer.string_array([layer.name for layer in layers])
    for layer in layers:
        layer_group = group.create_group(layer.name)
        names = layer.weight_names()
        layer_group.attrs["weight_names"] = hdf5_writer.string_array(names)
        for name, value in zip(names, layer.get_weights()):
            layer_group.create_dataset(name, data=value)


def load_weights(model, path, by_name: bool = False, skip_mismatch: bool = False,
                 read_timeout: float | None = None) -> None:
    """Set the model's weights from a file of ``save_weights`` (or ``model.save``).

    ``read_timeout``: as for ``load_model`` (seconds the HDF5 library may take to read it).

    Raises:
        ModelFileError (a ValueError): the file is not such a file, or its weights do not fit
            the model (the message names the layers, the weights and both shapes); the
            model's weights are then unchanged.
        OSError: the file does not exist or cannot be read.
    """
    if skip_mismatch and not by_name:
        raise ValueError("skip_mismatch=True needs by_name=True (as in Keras)")
    with open_model_file(path, read_timeout) as f:
        root = _weights_group(f)
        stored = _stored_layers(root)
        if by_name:
            assignments = _match_by_name(model, stored, skip_mismatch)
        else:
            assignments = _match_by_order(model, stored)
        # _mismatch compared every shape with the model's (memory stays bounded): read them,
        # refusing NaN and infinite values as load_model does.
        values = [(layer, [read_finite_array(d, tuple(d.shape), f"weight {d.name}")
                           for d in datasets]) for layer, datasets in assignments]
    for layer, arrays in values:
        layer.set_weights(arrays)


def _weights_group(f):
    found = f.attrs.get("format")
    if isinstance(found, bytes):
        found = found.decode("utf-8", errors="replace")
    if found == WEIGHTS_FORMAT_NAME:
        version = f.attrs.get("format_version")
        if not isinstance(version, (int, np.integer)) or version > WEIGHTS_FORMAT_VERSION:
            raise ValueError(f"weights file format version {version!r} is not one this cnn "
                             f"{cnn.__version__} reads (up to {WEIGHTS_FORMAT_VERSION})")
        return f
    if found == "cnn":  # a whole model written by model.save
        return member(f, "model_weights", Group)
    raise ValueError(f"not a cnn weights file: its 'format' attribute is {found!r}, expected "
                     f"{WEIGHTS_FORMAT_NAME!r} (save_weights) or 'cnn' (model.save)")


def _stored_layers(root) -> list[tuple[str, list]]:
    """``(layer name, [weight datasets])`` in the file's layer order."""
    if "layer_names" not in root.attrs:
        raise ValueError("the weights lack the 'layer_names' attribute")
    layers = []
    for name in _strings(root.attrs["layer_names"], "layer_names"):
        group = member(root, name, Group, f"the weights of layer {name!r}")
        weight_names = _strings(group.attrs.get("weight_names", []), f"{name}/weight_names")
        layers.append((name, [member(group, w, Dataset, f"weight {name}/{w}")
                              for w in weight_names]))
    return layers


def _strings(values, what) -> list[str]:
    result = []
    for value in np.asarray(values).reshape(-1):
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            raise ValueError(f"attribute {what} should hold strings, got {value!r}")
        result.append(value)
    return result


def _with_weights(model):
    return [layer for layer in model.layers if layer.weight_names()]


def _match_by_order(model, stored):
    layers = _with_weights(model)
    stored = [(name, datasets) for name, datasets in stored if datasets]
    if len(layers) != len(stored):
        raise ValueError(
            f"the file holds weights for {len(stored)} layers "
            f"({', '.join(name for name, _ in stored) or 'none'}), but the model has "
            f"{len(layers)} layers with weights ({', '.join(layer.name for layer in layers) or 'none'}); "
            "load_weights(..., by_name=True) matches layers by name instead")
    assignments = []
    for index, (layer, (name, datasets)) in enumerate(zip(layers, stored)):
        problem = _mismatch(layer, datasets)
        if problem:
            raise ValueError(f"layer #{index} with weights, {layer.describe()} (file layer "
                             f"{name!r}): {problem}")
        assignments.append((layer, datasets))
    return assignments


def _match_by_name(model, stored, skip_mismatch):
    by_name = dict(stored)
    assignments = []
    for layer in _with_weights(model):
        if layer.name not in by_name:
            continue
        problem = _mismatch(layer, by_name[layer.name])
        if problem and skip_mismatch:
            warnings.warn(f"load_weights skipped layer {layer.describe()}: {problem}",
                          stacklevel=3)
        elif problem:
            raise ValueError(f"layer {layer.describe()}: {problem}")
        else:
            assignments.append((layer, by_name[layer.name]))
    return assignments


def _mismatch(layer, datasets) -> str | None:
    """Why the file's ``datasets`` cannot be ``layer``'s weights, or None when they fit."""
    names = layer.weight_names()
    if len(names) != len(datasets):
        return (f"the model's layer has {len(names)} weights ({', '.join(names)}), the file "
                f"has {len(datasets)} ({', '.join(d.name.rsplit('/', 1)[-1] for d in datasets)})")
    shapes = [tuple(v.shape) for v in (*layer.params.values(), *layer.buffers.values())]
    for key, shape, dataset in zip(names, shapes, datasets):
        if dataset.dtype.kind not in "biuf":
            return f"weight {key!r} holds {dataset.dtype} in the file, not numbers"
        compare = slice(1, None) if key in layer.batch_sized_buffers else slice(None)
        if len(dataset.shape) != len(shape) or tuple(dataset.shape[compare]) != shape[compare]:
            return (f"weight {key!r} has shape {shape} in the model but "
                    f"{tuple(dataset.shape)} in the file")
        if dataset.shape and dataset.shape[0] > limits.MAX_SIZE:
            return (f"weight {key!r} has {dataset.shape[0]} rows in the file; at most "
                    f"{limits.MAX_SIZE}")
    return None


__all__ = ["ModelFileError", "load_weights", "save_weights", "write_layer_weights"]
