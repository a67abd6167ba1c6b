"""Model files for the command line: reading with clear errors, class names stored beside the
weights, and checking a model against a data set.

The command line stores the class names a model was trained with as the JSON root
attribute ``class_names`` of its ``.h5`` file, so that ``cnn predict`` can say "Sneaker"
rather than "7". Files without it (saved from Python) get the names "0", "1", ...
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import h5py

from cnn.models import load_model

CLASS_NAMES_ATTRIBUTE = "class_names"


def read_model(path):
    """``load_model(path)``, with errors that name the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a model that ``cnn`` can read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        return load_model(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        message = str(exc)
        raise ValueError(message if str(path) in message else f"{path}: cannot read it as a cnn model "
                         f"({message})") from None


def class_names(path, model, fallback=()) -> tuple:
    """The class names stored in model file ``path``; else ``fallback`` when it has one name
    per output unit; else "0", "1", ..."""
    units = output_units(model)
    with h5py.File(path, "r") as f:
        stored = f.attrs.get(CLASS_NAMES_ATTRIBUTE)
    for names in (json.loads(stored) if stored is not None else (), fallback):
        if len(names) == units:
            return tuple(str(name) for name in names)
    return tuple(str(i) for i in range(units))


def save_model_with_class_names(model, path, names) -> Path:
    """``model.save`` then the class names, all in a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        model.save(temporary)
        with h5py.File(temporary, "a") as f:
            f.attrs[CLASS_NAMES_ATTRIBUTE] = json.dumps([str(name) for name in names])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def output_units(model) -> int:
    return int(model.cur_output_shape[-1])


def check_fits(model, dataset, model_label: str) -> None:
    """Raise a ValueError naming both shapes when ``model`` cannot take ``dataset``."""
    expected = tuple(model.input.input_shape)
    if expected != dataset.input_shape:
        raise ValueError(f"{model_label} takes inputs {expected}, but {dataset.name} has images "
                         f"{dataset.input_shape}")
    output_shape = tuple(model.cur_output_shape)
    if len(output_shape) != 1 or output_units(model) < 2:
        raise ValueError(f"{model_label} is not a classifier: its output shape is {output_shape}, "
                         f"expected (classes,)")
    if output_units(model) < len(dataset.class_names):
        raise ValueError(f"{model_label} has {output_units(model)} output classes, but {dataset.name} "
                         f"has {len(dataset.class_names)}")
