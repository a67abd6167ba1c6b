"""Model files for the command line: reading with clear errors, class names, and checking a
model against a data set.

``cnn train`` sets ``model.class_names`` (saved in the model file) so that ``cnn predict``
can say "Sneaker" rather than "7". Models without names get "0", "1", ...
"""

from __future__ import annotations

from pathlib import Path

from cnn.cli.data import CLASS_NAMES, NAMED
from cnn.models import load_model
from cnn.saving.h5_format import read_metadata


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


def trained_dataset(path, model) -> str:
    """The ``--dataset`` that ``model`` (read from ``path``) was trained on: the one ``cnn
    train`` recorded in the file, else the named data set whose class names the model's are.

    Raises:
        ValueError: the file does not say, and the class names fit no named data set or
            several (MNIST and its bundled sample share theirs): refusing to guess.
    """
    recorded = read_metadata(path).get("dataset")
    if recorded:
        return recorded
    names = tuple(model.class_names or ())
    matches = [spec for spec, known in CLASS_NAMES.items() if names and names == known]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(NAMED)
    hint = f" (its class names fit {' and '.join(matches)})" if matches else ""
    raise ValueError(f"{path}: the file does not say which data set the model was trained "
                     f"on{hint}; pass --dataset ({known}, a .mat file or a directory)")


def check_classes(model, dataset, model_label: str) -> None:
    """Refuse to score a model on a data set of other classes (a Fashion-MNIST model on
    digits). A model whose classes are only numbered ("0", "1", ...) says nothing, nor does
    a file or directory of data, whose classes are numbered for want of names."""
    names = tuple(model.class_names or ())
    if not names or _numbered(names) or (dataset.name not in NAMED
                                         and _numbered(dataset.class_names)):
        return
    if names != tuple(dataset.class_names):
        raise ValueError(f"{model_label} was trained on the classes {', '.join(names[:4])}, ...; "
                         f"{dataset.name} has {', '.join(dataset.class_names[:4])}, ...: "
                         "pass the --dataset it was trained on")


def _numbered(names) -> bool:
    return tuple(names) == tuple(str(i) for i in range(len(names)))


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
