"""Model files for the command line: reading with clear errors, class names, and checking a
model against a data set.

``cnn train`` sets ``model.class_names`` (saved in the model file) so that ``cnn predict``
can say "Sneaker" rather than "7". Models without names get "0", "1", ...
"""

from __future__ import annotations

from pathlib import Path

from cnn.models import load_model


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


def class_names(model, fallback=()) -> tuple:
    """The model's saved class names when it has one per output unit; else ``fallback`` when
    that has one name per output unit; else "0", "1", ..."""
    units = output_units(model)
    for names in (model.class_names or (), fallback):
        if len(names) == units:
            return tuple(str(name) for name in names)
    return tuple(str(i) for i in range(units))


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
