"""Reading model files safely: one clear error naming the file for every way a file can be bad.

``open_model_file(path)`` reads an HDF5 file's bytes once and has them parsed by the HDF5
reading process (``reader_process``: a separate process under time and memory limits, since
a crafted file can make the C library loop or crash); the readers see its groups, datasets
and attributes through ``file_view``. It turns what can go wrong into

* ``FileNotFoundError`` / ``IsADirectoryError`` / ``PermissionError`` (``OSError``s, raised
  before anything parses the file, with the path as their ``filename``) for I/O problems;
* :class:`ModelFileError` (a ``ValueError``) for a file that is not HDF5, is truncated or
  damaged, or whose contents a reader rejects, or that the HDF5 library did not finish
  reading in time: its message starts with the path.

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
import stat
from pathlib import Path

import numpy as np

from cnn.saving import file_view, limits, reader_process
from cnn.saving.file_view import Dataset
from cnn.saving.reader_process import ReadingFailed, resolve_timeout

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ModelFileError(ValueError):
    """A model file that cannot be loaded; ``path`` is the file, ``problem`` says why."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = os.fspath(path)
        self.problem = problem


@contextlib.contextmanager
def open_model_file(path, read_timeout=None):
    """Yield the root group (a ``file_view.Group``) of the HDF5 file at ``path``; errors
    inside the block name the file.

    The file's bytes are read once (at most ``limits.MAX_FILE_BYTES``) and parsed by the
    HDF5 reading process (``reader_process``), which checks the structure first
    (``check_structure``) and must answer within ``read_timeout`` seconds (default:
    ``$CNN_HDF5_TIMEOUT``, else a minute plus a second per 100 MB). A ``ValueError`` raised
    by the reader inside the block becomes a ``ModelFileError`` prefixed with the path; so
    does any error HDF5 raises on damaged data (``OSError``, ``RuntimeError``, ``KeyError``,
    ...), a config that nests too deeply for the JSON parser (``RecursionError``), and a
    reading process that did not finish in time, crashed or ran out of memory.
    """
    path = Path(os.fspath(path))
    data = read_bytes(path)
    timeout = resolve_timeout(read_timeout, len(data))
    header = data[:len(HDF5_SIGNATURE)]
    try:
        with reader_process.reading(data, timeout) as (session, reply):
            del data
            if "objects" not in reply:
                raise ModelFileError(path, _refusal(reply, header))
            yield file_view.root(session, reply["objects"])
    except ModelFileError:
        raise
    except ReadingFailed as exc:
        raise ModelFileError(path, exc.problem) from None
    except ValueError as exc:
        raise ModelFileError(path, str(exc)) from None
    except DAMAGED_FILE_ERRORS as exc:
        raise ModelFileError(path, f"the file is damaged: reading it failed "
                                   f"({type(exc).__name__}: {exc})") from None


def read_bytes(path: Path) -> bytes:
    """The bytes of the file at ``path``, read once (no later read can see other contents);
    refused beyond ``limits.MAX_FILE_BYTES``. I/O problems are ``OSError``s naming the
    file, raised before anything parses it."""
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such model file", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a directory, not a model file", str(path))
    with open(path, "rb") as stream:  # PermissionError etc. name the file themselves
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ModelFileError(path, "not a regular file")
        data = stream.read(min(status.st_size, limits.MAX_FILE_BYTES) + 1)
    if len(data) > limits.MAX_FILE_BYTES:
        raise ModelFileError(path, f"the file holds more than {limits.MAX_FILE_BYTES} bytes, "
                                   "the most a model file may hold")
    return data


def _refusal(reply: dict, header: bytes) -> str:
    """The problem the reading process found opening the file (``error`` of ``kind``)."""
    error, kind = str(reply.get("error", "")), reply.get("kind")
    if kind == "unopenable":
        return _unreadable(header, error)
    if kind == "damaged":
        return f"the file is damaged: reading it failed ({reply.get('type')}: {error})"
    return error


# What h5py and HDF5 raise on a damaged file (a broken B-tree, heap or object header).
DAMAGED_FILE_ERRORS = (OSError, RuntimeError, KeyError, IndexError, TypeError, OverflowError,
                       RecursionError, SystemError)


def _unreadable(header: bytes, error: str) -> str:
    if header != HDF5_SIGNATURE:
        return "not an HDF5 file (it does not start with the HDF5 signature)"
    if "truncated" in error:
        return f"the HDF5 file is truncated ({error})"
    return f"the HDF5 file is damaged ({error})"


def member(group, name: str, kind: type, what: str | None = None):
    """``group[name]``, checked to exist and to be a ``kind`` (``Dataset`` or ``Group``)."""
    what = what or f"{kind.__name__.lower()} {_full_name(group, name)!r}"
    if name not in group:
        raise ValueError(f"{what} is missing")
    item = group.get(name)
    if not isinstance(item, kind):
        raise ValueError(f"{what} should be an HDF5 {kind.__name__.lower()}")
    return item


def read_string(dataset) -> str:
    """A scalar string dataset as ``str`` (UTF-8)."""
    if dataset.shape != () or not dataset.holds_strings:
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
    if dataset.ndim != 1 or not dataset.holds_strings \
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
    text = read_string(member(group, name, Dataset))
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
    if isinstance(item, file_view.Attributes):
        if name not in item:
            raise ValueError(f"attribute {name!r} is missing")
        value, where = item[name], f"attribute {name!r}"
    else:
        value, where = read_array(member(item, name, Dataset), ()), f"dataset {name!r}"
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "iu" or not minimum <= int(value) <= maximum:
        raise ValueError(f"{where} should be an integer in [{minimum}, {maximum}], got "
                         f"{value.tolist()!r}")
    return int(value)


def _full_name(group, name: str) -> str:
    prefix = group.name.strip("/")
    return f"{prefix}/{name}" if prefix else name
