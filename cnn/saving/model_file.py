"""Reading model files safely: one clear error naming the file for every way a file can be bad.

``open_model_file(path)`` opens an HDF5 file read-only and turns what can go wrong into

* ``FileNotFoundError`` / ``IsADirectoryError`` / ``PermissionError`` (``OSError``s, raised
  before h5py is involved, with the path as their ``filename``) for I/O problems;
* :class:`ModelFileError` (a ``ValueError``) for a file that is not HDF5, is truncated or
  damaged, or whose contents a reader rejects: its message starts with the path.

Before a reader sees the file, ``hdf5_checks.check_structure`` has refused every link,
storage and type that could make reading touch another file or run a plugin. The helpers
below read datasets with the checks every reader needs, the shape and type checked before
any data is read. Nothing here unpickles or evaluates: strings are decoded as UTF-8 and
parsed as JSON, arrays are plain numbers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import h5py
import numpy as np

from cnn.saving import limits
from cnn.saving.hdf5_checks import check_structure

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ModelFileError(ValueError):
    """A model file that cannot be loaded; ``path`` is the file, ``problem`` says why."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = os.fspath(path)
        self.problem = problem


@contextlib.contextmanager
def open_model_file(path):
    """Yield the open ``h5py.File`` at ``path``; errors inside the block name the file.

    The file's structure is checked first (``check_structure``). A ``ValueError`` raised
    by the reader inside the block becomes a ``ModelFileError`` prefixed with the path; so
    does any error h5py raises on damaged data (``OSError``, ``RuntimeError``, ``KeyError``,
    ...), and a config that nests too deeply for the JSON parser (``RecursionError``).
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such model file", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a directory, not a model file", str(path))
    with open(path, "rb") as stream:  # PermissionError etc. name the file themselves
        header = stream.read(len(HDF5_SIGNATURE))
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(path, _unreadable(header, exc)) from None
    try:
        with handle:
            check_structure(handle)
            yield handle
    except ModelFileError:
        raise
    except ValueError as exc:
        raise ModelFileError(path, str(exc)) from None
    except DAMAGED_FILE_ERRORS as exc:
        raise ModelFileError(path, f"the file is damaged: reading it failed "
                                   f"({type(exc).__name__}: {exc})") from None


# What h5py and HDF5 raise on a damaged file (a broken B-tree, heap or object header).
DAMAGED_FILE_ERRORS = (OSError, RuntimeError, KeyError, IndexError, TypeError, OverflowError,
                       RecursionError, SystemError)


def _unreadable(header: bytes, exc: OSError) -> str:
    if header != HDF5_SIGNATURE:
        return "not an HDF5 file (it does not start with the HDF5 signature)"
    if "truncated" in str(exc):
        return f"the HDF5 file is truncated ({exc})"
    return f"the HDF5 file is damaged ({exc})"


def member(group, name: str, kind: type, what: str | None = None):
    """``group[name]``, checked to exist and to be a ``kind`` (h5py.Dataset or h5py.Group)."""
    what = what or f"{kind.__name__.lower()} {_full_name(group, name)!r}"
    if name not in group:
        raise ValueError(f"{what} is missing")
    item = group.get(name)
    if not isinstance(item, kind):
        raise ValueError(f"{what} should be an HDF5 {kind.__name__.lower()}")
    return item


def read_string(dataset) -> str:
    """A scalar string dataset as ``str`` (UTF-8)."""
    if dataset.shape != () or h5py.check_string_dtype(dataset.dtype) is None:
        raise ValueError(f"dataset {dataset.name!r} should hold a string, got {dataset.dtype} "
                         f"of shape {dataset.shape}")
    value = dataset[()]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"dataset {dataset.name!r} is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise ValueError(f"dataset {dataset.name!r} should hold a string, got {dataset.dtype} "
                     f"of shape {dataset.shape}")


def read_strings(dataset, max_count: int = limits.MAX_RANK) -> list[str]:
    """A 1-D string dataset of at most ``max_count`` entries (the seed's ``name`` and
    ``_str``) as a list of ``str``."""
    if dataset.ndim != 1 or h5py.check_string_dtype(dataset.dtype) is None \
            or len(dataset) > max_count:
        raise ValueError(f"dataset {dataset.name!r} should be a list of at most {max_count} "
                         f"strings, got {dataset.dtype} of shape {dataset.shape}")
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in dataset[()]]
    except UnicodeDecodeError:
        raise ValueError(f"dataset {dataset.name!r} is not UTF-8 text") from None


def read_json(group, name: str, allow_infinity: bool = False):
    """Parse the scalar string dataset ``group[name]`` as JSON; NaN is refused, and so are
    infinities unless ``allow_infinity`` (a callback's "best so far" starts at inf)."""
    text = read_string(member(group, name, h5py.Dataset))
    if len(text) > limits.MAX_CONFIG_CHARS:
        raise ValueError(f"dataset {name!r} holds {len(text)} characters; at most "
                         f"{limits.MAX_CONFIG_CHARS}")
    try:
        value = json.loads(text, parse_float=float if allow_infinity else limits.finite_json_float,
                           parse_constant=(limits.infinite_json_constant if allow_infinity
                                           else limits.non_finite_json_constant))
    except json.JSONDecodeError as exc:
        raise ValueError(f"dataset {name!r} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"dataset {name!r}: the JSON is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"dataset {name!r}: {exc}") from None
    limits.json_depth(value)
    return value


def read_array(dataset, shape=None, what: str | None = None) -> np.ndarray:
    """A numeric dataset as a NumPy array; strings and other types are refused, and so is a
    shape other than ``shape`` (when given), all before any data is read."""
    what = what or f"dataset {dataset.name!r}"
    if dataset.dtype.kind not in "biuf":
        raise ValueError(f"{what} should hold numbers, got {dataset.dtype}")
    if shape is not None and tuple(dataset.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(dataset.shape)}, expected {tuple(shape)}")
    if dataset.size > limits.MAX_PARAMETERS:
        raise ValueError(f"{what} declares {dataset.size} elements; at most "
                         f"{limits.MAX_PARAMETERS} are allowed")
    return np.asarray(dataset[()])


def read_finite_array(dataset, shape=None, what: str | None = None) -> np.ndarray:
    """``read_array``, also refusing NaN and infinite values."""
    what = what or f"dataset {dataset.name!r}"
    array = read_array(dataset, shape, what)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return array


def read_int(item, name: str, minimum: int = 0, maximum: int = limits.MAX_ITERATIONS) -> int:
    """An integer attribute (of ``item.attrs``) or a scalar integer dataset ``item[name]``."""
    if isinstance(item, h5py.AttributeManager):
        if name not in item:
            raise ValueError(f"attribute {name!r} is missing")
        value, where = item[name], f"attribute {name!r}"
    else:
        value, where = read_array(member(item, name, h5py.Dataset), ()), f"dataset {name!r}"
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "iu" or not minimum <= int(value) <= maximum:
        raise ValueError(f"{where} should be an integer in [{minimum}, {maximum}], got "
                         f"{value.tolist()!r}")
    return int(value)


def _full_name(group, name: str) -> str:
    prefix = group.name.strip("/")
    return f"{prefix}/{name}" if prefix else name
