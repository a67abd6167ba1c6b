"""Saving and loading models as HDF5; the layout is documented in docs/FORMAT.md.

``save_model`` writes everything needed to continue training exactly: the architecture
(JSON), the compile settings (optimizer with its learning rate or schedule, loss, metrics),
every weight and buffer, the optimizer's state and the training position (epoch reached and
the training seed). The file is written to a temporary name beside the target and renamed
when complete, so an interrupted save never replaces a good file with a broken one.

``load_model`` reads this format and the original implementation's files
(``cnn.saving.seed_format``). Reading never unpickles or evaluates anything: configs are
JSON, weights are numeric datasets, and every way a file can be bad raises one
``ModelFileError`` (a ``ValueError``) naming the file, or an ``OSError`` for I/O problems.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

import cnn
from cnn import backend, initializers, losses, metrics, optimizers
from cnn.layers.base import deserialize
from cnn.models.model import Model
from cnn.saving import hdf5_writer, limits, seed_format
from cnn.saving.architecture import check_model_config
from cnn.saving.file_view import Dataset, Group
from cnn.saving.model_file import (member, open_model_file, read_finite_array, read_int,
                                   read_json, ModelFileError)
from cnn.utils.fileio import atomic_path

FORMAT_NAME = "cnn"
FORMAT_VERSION = 2  # 2: functional graphs (layers with inbound_nodes), resume states
MAX_METADATA_CHARS = 65_536
# Optimizer slots that are running means of squared gradients: never negative.
NON_NEGATIVE_SLOTS = ("v", "square_avg", "accumulator")


# -- saving ---------------------------------------------------------------------------------
def save_model(model, path, metadata: dict | None = None) -> None:
    """Write ``model`` to ``path`` (HDF5), atomically.

    ``metadata``: a few strings about the model, stored with it and read back with
    ``read_metadata`` (``cnn train`` records the data set it trained on:
    ``{"dataset": "fashion-mnist"}``).

    Raises:
        ValueError: the model cannot be saved so that it loads again (no layers, a config
            value that is not JSON, a learning-rate schedule without a registered config).
        OSError: the file cannot be written; the message names ``path``. An existing file
            at ``path`` is then left untouched.
    """
    if model.input is None or not model.layers:
        raise ValueError(f"cannot save to {path}: the model has no input and layers")
    model_config = _to_json(model.get_config(), "model config", path)
    compile_config = None
    if model.loss is not None:
        _check_learning_rate(model.optimizer, path)
        compile_config = _to_json(model.compile_config(), "compile config", path)
    _check_reloadable(model_config, compile_config, path)
    metadata_json = None if metadata is None else _metadata_json(metadata, path)
    try:
        with atomic_path(path) as temporary:
            with hdf5_writer.create_file(temporary) as f:
                _write(f, model, model_config, compile_config)
                if metadata_json is not None:
                    f.attrs["metadata"] = metadata_json
    except (OSError, RuntimeError) as exc:  # h5py reports some failed writes (a full disk
        raise _write_error(path, exc) from exc  # while closing) as RuntimeError


def _metadata_json(metadata: dict, path) -> str:
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"cannot save to {path}: metadata must map strings to strings, "
                         f"got {metadata!r}")
    text = json.dumps(metadata, sort_keys=True)
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"cannot save to {path}: metadata of {len(text)} characters; at most "
                         f"{MAX_METADATA_CHARS}")
    return text


def read_metadata(path, read_timeout: float | None = None) -> dict:
    """The ``metadata`` given to ``save_model`` (``{}`` when none was), read with the same
    checks as ``load_model``: a ModelFileError names the file when it is bad."""
    with open_model_file(path, read_timeout) as f:
        if "metadata" not in f.attrs:
            return {}
        text = f.attrs["metadata"]
        text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        try:
            metadata = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            metadata = None
        if not isinstance(metadata, dict) or len(text) > MAX_METADATA_CHARS or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("attribute 'metadata' should be a JSON object of strings")
        return metadata


def _write(f, model, model_config: str, compile_config: str | None) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["cnn_version"] = cnn.__version__
    strings = hdf5_writer.strings_dtype()
    f.create_dataset("model_config", data=model_config, dtype=strings)
    if compile_config is not None:
        f.create_dataset("compile_config", data=compile_config, dtype=strings)
    _write_weights(f.create_group("model_weights"), model)
    state = f.create_group("training_state")
    state.attrs["epoch"] = int(model.epoch)
    if model.train_seed is not None:
        state.attrs["train_seed"] = int(model.train_seed)
    _write_resume_states(state, model)
    if model.optimizer is not None:
        _write_optimizer(f.create_group("optimizer_weights"), model)


def _write_resume_states(group, model) -> None:
    """The layers' states besides weights (a seeded Dropout's generator) and, when saved
    during ``fit`` (ModelCheckpoint), the callbacks' states, as JSON datasets."""
    states = {"layer_states": model.layer_states()}
    if model.running_callbacks is not None:
        states["callback_states"] = model.running_callbacks.get_states()
    for key, value in states.items():
        if value:
            group.create_dataset(key, data=_to_json(value, key, group.file.filename),
                                 dtype=hdf5_writer.strings_dtype())


def _write_weights(group, model) -> None:
    group.attrs["layer_names"] = hdf5_writer.string_array([layer.name for layer in model.layers])
    for layer in model.layers:
        layer_group = group.create_group(layer.name)
        names = layer.weight_names()
        layer_group.attrs["weight_names"] = hdf5_writer.string_array(names)
        for name, value in zip(names, layer.get_weights()):
            layer_group.create_dataset(name, data=value)


def _write_optimizer(group, model) -> None:
    state = model.optimizer.get_state()
    group.attrs["iterations"] = int(state.pop("iterations"))
    group.attrs["param_names"] = hdf5_writer.string_array(_trainable_names(model))
    for key, value in state.items():
        group.create_dataset(key, data=value)


def _trainable_names(model) -> list[str]:
    """``"<layer>/<weight>"`` of every trainable array, in the optimizer's order."""
    return [f"{layer.name}/{key}" for layer in model.layers for key, _ in layer.trainable_params()]


def _to_json(config, what: str, path) -> str:
    try:
        return json.dumps(config, default=_json_number)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save to {path}: the {what} is not JSON ({exc})") from None


def _json_number(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON serializable")


def _check_learning_rate(optimizer, path) -> None:
    learning_rate = optimizer.learning_rate
    if callable(learning_rate) and not hasattr(learning_rate, "get_config"):
        raise ValueError(
            f"cannot save to {path}: the learning-rate schedule {learning_rate!r} has no "
            "get_config(), so it could not be rebuilt when loading; use a schedule class "
            "registered with cnn.schedules.register"
        )


def _check_reloadable(model_config: str, compile_config: str | None, path) -> None:
    """Fail before writing if ``load_model`` could not rebuild the layers and compile
    settings from these JSON configs (building layers allocates no weights)."""
    try:
        for spec in json.loads(model_config)["layers"]:
            deserialize(spec)
        if compile_config is not None:
            settings = json.loads(compile_config)
            optimizers.get(settings["optimizer"])
            loss = settings["loss"]
            for spec in loss if isinstance(loss, list) else [loss]:
                if spec is not None:
                    losses.get(spec)
            for metric in settings["metrics"]:
                for spec in metric if isinstance(metric, list) else [metric]:
                    metrics.get(spec)
    except ValueError as exc:
        raise ValueError(f"cannot save to {path}: the saved model could not be rebuilt ({exc})") from None


def _write_error(path, exc: Exception) -> OSError:
    """An OSError naming ``path``, with the system's errno when the h5py error quotes one
    (``... errno = 28, error message = 'No space left on device'``)."""
    reason = getattr(exc, "strerror", None) or str(exc)
    quoted = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    if quoted and not getattr(exc, "errno", None):
        return OSError(int(quoted[1]), f"cannot write the model file ({quoted[2]}; {exc})",
                       os.fspath(path))
    if getattr(exc, "errno", None):  # OSError(errno, ...) picks the matching subclass (PermissionError, ...)
        return OSError(exc.errno, f"cannot write the model file ({reason})", os.fspath(path))
    return OSError(f"{path}: cannot write the model file ({reason})")


# -- loading --------------------------------------------------------------------------------
def load_model(path, compile: bool = True, dtype=None, read_timeout: float | None = None):
    """Read a model written by ``Model.save`` or by the original implementation.

    Args:
        path: the .h5 file.
        compile: also restore the optimizer (with its state), loss and metrics; ``False``
            gives an uncompiled model for inference.
        dtype: float type of the model's weights; default: the saved model's own dtype
            (the original implementation's files, which record none, load in
            ``cnn.floatx()``).
        read_timeout: seconds the HDF5 library may take to read the file (it reads it in a
            separate process, which is ended after that time); default
            ``$CNN_HDF5_TIMEOUT``, else 60 s plus 1 s per 100 MB of the file.
    Returns:
        The model, ready for ``predict``/``evaluate`` and, compiled, for ``fit`` to continue
        where training stopped (``model.epoch`` epochs done).
    Raises:
        ModelFileError (a ValueError): the file is not HDF5, is truncated or damaged, comes
            from another program or a newer format version, or its contents are inconsistent
            (unknown layer, broken JSON, a weight of the wrong shape, ...); the message names
            the file and the problem; also a file the HDF5 library did not finish reading
            within ``read_timeout``, or crashed on.
        OSError: the file does not exist or cannot be read (FileNotFoundError, ...).
    """
    with open_model_file(path, read_timeout) as f:
        if seed_format.is_seed_file(f):
            return seed_format.read_model(f, compile=compile, dtype=dtype)
        _check_format(f)
        return _read_model(f, compile, dtype)


def _check_format(f) -> None:
    found = f.attrs.get("format")
    if found is None:
        contents = ", ".join(sorted(f.keys())[:12]) or "nothing"
        raise ValueError(
            "not a cnn model file: it has no 'format' attribute and is not in the original "
            f"implementation's layout either (it holds: {contents})"
        )
    if isinstance(found, bytes):
        found = found.decode("utf-8", errors="replace")
    if found != FORMAT_NAME:
        raise ValueError(f"not a cnn model file: its 'format' attribute is {found!r}, "
                         f"expected {FORMAT_NAME!r}")
    version = read_int(f.attrs, "format_version", minimum=1)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"written in format version {version} (by cnn {f.attrs.get('cnn_version', '?')}); "
            f"this cnn {cnn.__version__} reads format versions up to {FORMAT_VERSION}: "
            "upgrade cnn to load it"
        )


def _read_model(f, compile: bool, dtype):
    config = read_json(f, "model_config")
    _check_keys(config, "model_config", ("layers",))
    if not isinstance(config["layers"], list):
        raise ValueError("model_config: 'layers' should be a list")
    if dtype is not None:
        config["dtype"] = np.dtype(dtype).name
    check_model_config(config)
    _check_class_names(config.get("class_names"))
    compile_config = None
    if compile and "compile_config" in f:
        compile_config = read_json(f, "compile_config")
        _check_keys(compile_config, "compile_config", ("optimizer", "loss", "metrics"))
        if not isinstance(compile_config["metrics"], list):
            raise ValueError("compile_config: 'metrics' should be a list")
    # Layers draw initial weights that the file's weights replace: draw them from a
    # throwaway generator so that loading leaves the user's random stream untouched.
    with backend.using_rng(np.random.default_rng(0)), \
            initializers.bounded_initialization(limits.MAX_PARAMETERS):
        try:
            model = Model.from_config(config, compile_config)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"model_config or compile_config is invalid ({exc!r})") from None
    _read_weights(member(f, "model_weights", Group), model)
    state = member(f, "training_state", Group).attrs
    model.epoch = read_int(state, "epoch")
    model.train_seed = (read_int(state, "train_seed", maximum=2 ** 63 - 1)
                        if "train_seed" in state else None)
    _read_resume_states(member(f, "training_state", Group), model)
    if model.optimizer is not None:
        _read_optimizer(member(f, "optimizer_weights", Group), model)
    return model


def _read_resume_states(group, model) -> None:
    """The layers' states (each checked by its layer) and the callbacks' (checked by each
    callback when ``fit`` resumes), both bounded like the configs (``read_json``)."""
    if "layer_states" in group:
        states = read_json(group, "layer_states")
        _check_keys(states, "layer_states", ())
        _check_state_count(states, len(model.layers), "layer_states")
        try:
            model.set_layer_states(states)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"layer_states: {exc}") from None
    if "callback_states" in group:
        states = read_json(group, "callback_states", allow_infinity=True)
        _check_keys(states, "callback_states", ())
        _check_state_count(states, limits.MAX_LAYERS, "callback_states")
        model.resume_state = {"callbacks": states}


def _check_state_count(states: dict, most: int, what: str) -> None:
    if len(states) > most:
        raise ValueError(f"{what} holds {len(states)} states; at most {most} are expected")


def _check_keys(config, what: str, keys) -> None:
    if not isinstance(config, dict):
        raise ValueError(f"{what} should be a JSON object, got {type(config).__name__}")
    missing = [key for key in keys if key not in config]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(map(repr, missing))}")


def _check_class_names(names) -> None:
    if names is None:
        return
    if not isinstance(names, list) or len(names) > limits.MAX_SIZE \
            or not all(isinstance(name, str) for name in names):
        raise ValueError("model_config: 'class_names' should be a list of strings")


def _read_weights(group, model) -> None:
    layer_names = {layer.name for layer in model.layers}
    unknown = sorted(set(group) - layer_names)
    if unknown:
        raise ValueError(f"model_weights holds weights of layers that model_config does not "
                         f"have: {', '.join(unknown)}")
    for layer in model.layers:
        names = layer.weight_names()
        if not names and layer.name not in group:
            continue
        layer_group = member(group, layer.name, Group, f"the weights of layer {layer.name!r}")
        unexpected = sorted(set(layer_group) - set(names))
        if unexpected:
            raise ValueError(
                f"model_weights/{layer.name} holds {', '.join(unexpected)}, which layer "
                f"{layer.describe()} does not have (it has {', '.join(names) or 'no weights'})"
            )
        layer.set_weights([_read_weight(layer, layer_group, name, value)
                           for name, value in zip(names, [*layer.params.values(),
                                                          *layer.buffers.values()])])


def _read_weight(layer, layer_group, name: str, current) -> np.ndarray:
    """The weight ``name`` of ``layer``, its shape checked against ``current`` before it is
    read (a buffer whose first axis is the batch size may have any first size)."""
    what = f"weight model_weights/{layer.name}/{name}"
    dataset = member(layer_group, name, Dataset, what)
    expected = tuple(current.shape)
    if name in layer.batch_sized_buffers and dataset.ndim == len(expected) \
            and tuple(dataset.shape[1:]) == expected[1:] and dataset.shape[0] <= limits.MAX_SIZE:
        expected = tuple(dataset.shape)
    if tuple(dataset.shape) != expected:
        raise ValueError(f"layer {layer.describe()} weight {name!r} has shape {expected}, "
                         f"got {tuple(dataset.shape)}")
    return read_finite_array(dataset, expected, what)


def _read_slot(dataset, key: str, params) -> np.ndarray:
    """The optimizer state ``"<param index>/<slot>"``: shaped like its parameter (checked
    before reading), finite, and >= 0 for the slots in NON_NEGATIVE_SLOTS."""
    what = f"optimizer state optimizer_weights/{key}"
    index, _, slot = key.partition("/")
    if not index.isdigit() or not slot or "/" in slot or int(index) >= len(params):
        raise ValueError(f"{what}: expected '<parameter index>/<slot>' with an index below "
                         f"{len(params)}")
    value = read_finite_array(dataset, tuple(params[int(index)].shape), what)
    if slot in NON_NEGATIVE_SLOTS and np.any(value < 0):
        raise ValueError(f"{what} holds negative values (it is a mean of squared gradients)")
    return value


def _read_optimizer(group, model) -> None:
    optimizer = model.optimizer
    if "param_names" in group.attrs:
        stored = [str(name) for name in group.attrs["param_names"]]
        expected = _trainable_names(model)
        if stored != expected:
            raise ValueError(f"optimizer_weights are for the parameters {stored}, but the model "
                             f"trains {expected}")
    state = {"iterations": read_int(group.attrs, "iterations")}
    params = model.trainable_weights
    names = []
    group.visititems(lambda name, item: names.append(name) if isinstance(item, Dataset)
                     else None)
    for name in names:
        state[name] = _read_slot(group[name], name, params)
    optimizer.set_state(state, params)
    if len(state) > 1 or state["iterations"] > 0:
        missing = sorted(set(optimizer.get_state()) - set(state))
        if missing:
            raise ValueError(f"optimizer_weights lacks the state {', '.join(missing)}")


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "load_model", "read_metadata",
           "save_model"]
