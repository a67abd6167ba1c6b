"""What the readers of model files see of an HDF5 file: groups, datasets and attributes with
the few operations of h5py's that they use, read through the reading process.

The structure (names, shapes, types) arrived whole when the file was opened; data is read
only when a reader asks for it (``dataset[()]``, ``attrs[name]``), after it has checked the
shape, so what the loading process receives stays bounded by what the model needs. Every
value received is checked against the structure announced (shape and type of a dataset).
"""

from __future__ import annotations

import math

import numpy as np

from cnn.saving import reader_protocol as protocol
from cnn.saving.reader_process import ReadingFailed

MAX_ATTRIBUTE_BYTES = 8 << 20  # the largest attribute check_structure lets through, in bytes
# What the reading process may report a failed read as (h5py's errors on a damaged file).
READ_ERRORS = {error.__name__: error for error in (
    OSError, RuntimeError, KeyError, IndexError, TypeError, OverflowError, RecursionError,
    SystemError, ValueError)}


def root(session, objects: dict) -> "Group":
    """The root group of the file described by ``objects`` (the reply to ``open``)."""
    if not isinstance(objects, dict) or not all(_well_formed(path, entry, objects)
                                                for path, entry in objects.items()) \
            or objects.get("/", {}).get("kind") != "group":
        raise ReadingFailed("the HDF5 reading process sent a malformed structure")
    return Group(_File(session, objects), "/")


def _well_formed(path, entry, objects: dict) -> bool:
    """Whether the entry of ``path`` has the fields its kind needs, of the right types (the
    reading process is where a hostile file was parsed: nothing it sends is trusted)."""
    if not isinstance(path, str) or not isinstance(entry, dict) \
            or not _strings(entry.get("attributes")):
        return False
    if entry.get("kind") == "group":
        members = entry.get("members")
        return _strings(members) and all(
            f"{path.rstrip('/')}/{name}" in objects and "/" not in name
            and name not in ("", ".", "..") for name in members)
    kind = entry.get("type")
    shape = entry.get("shape")
    return entry.get("kind") == "dataset" and isinstance(shape, list) and all(
        isinstance(s, int) and s >= 0 for s in shape) and isinstance(kind, dict) and (
        (kind.get("string", 0) is None or isinstance(kind.get("string"), int))
        if "string" in kind else _number_type(kind.get("number")))


def _strings(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def _number_type(text) -> bool:
    try:
        return isinstance(text, str) and np.dtype(text).kind in "biuf"
    except TypeError:
        return False


class _File:
    """The session and the structure, shared by every object of one file."""

    def __init__(self, session, objects: dict):
        self.session = session
        self.objects = objects

    def entry(self, path: str) -> dict | None:
        entry = self.objects.get(path)
        return entry if isinstance(entry, dict) else None

    def value(self, message: dict, array_limit: int, inline=None):
        """The value the reading process sent with the structure (``inline``), or the one
        it sends for ``message``."""
        if inline is not None:
            try:
                return protocol.decode_value(inline, None)
            except (KeyError, TypeError, ValueError) as exc:
                raise ReadingFailed(f"the HDF5 reading process sent a malformed value ({exc})") \
                    from None
        reply, array_bytes = self.session.call(message, array_limit=array_limit)
        if reply.get("kind") == "memory":
            raise ReadingFailed(str(reply.get("error")))
        if "error" in reply:
            raise READ_ERRORS.get(reply.get("type"), OSError)(str(reply["error"]))
        try:
            return protocol.decode_value(reply["value"], array_bytes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReadingFailed(f"the HDF5 reading process sent a malformed value ({exc})") \
                from None


class _Object:
    def __init__(self, file: _File, path: str):
        self.file = file
        self.name = path
        self.attrs = Attributes(file, path, file.entry(path).get("attributes", []))

    def child_path(self, name: str) -> str:
        return "/" + "/".join(part for part in f"{self.name}/{name}".split("/") if part)


class _Names:
    """Iteration, ``len`` and ``keys()`` over ``self.names``, as h5py's groups and attributes
    have them."""

    names: list[str]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def keys(self) -> list[str]:
        return list(self.names)


class Group(_Object, _Names):
    """A group: ``name in group``, ``for name in group``, ``group[name]``, ``group.get``
    (names may be paths below the group), ``keys()`` and ``visititems``."""

    def __init__(self, file: _File, path: str):
        super().__init__(file, path)
        self.names = [str(name) for name in file.entry(path).get("members", [])]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and self.file.entry(self.child_path(name)) is not None

    def get(self, name: str, default=None):
        path = self.child_path(name)
        entry = self.file.entry(path)
        if entry is None:
            return default
        return Group(self.file, path) if entry.get("kind") == "group" else \
            Dataset(self.file, path)

    def __getitem__(self, name: str):
        item = self.get(name)
        if item is None:
            raise KeyError(f"{name!r} is not in the group {self.name!r}")
        return item

    def visititems(self, visit) -> None:
        """``visit(relative name, item)`` for every object below this group, depth first."""
        pending = [(name, self[name]) for name in reversed(self.names)]
        while pending:
            name, item = pending.pop()
            visit(name, item)
            if isinstance(item, Group):
                pending.extend((f"{name}/{child}", item[child])
                               for child in reversed(item.names))


class Dataset(_Object):
    """A dataset: its ``shape``, ``dtype`` (strings: object, or ``S<n>`` when of fixed
    length), and its data, read by ``dataset[()]``."""

    def __init__(self, file: _File, path: str):
        super().__init__(file, path)
        entry = file.entry(path)
        self.shape = tuple(int(s) for s in entry.get("shape", []))
        kind = entry.get("type", {})
        self.holds_strings = "string" in kind
        if self.holds_strings:
            length = kind["string"]
            self.dtype = np.dtype("O") if length is None else np.dtype(f"S{int(length)}")
        else:
            self.dtype = np.dtype(str(kind.get("number")))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("a scalar dataset has no length")
        return self.shape[0]

    def __getitem__(self, key):
        if key != () and key is not Ellipsis:
            raise TypeError("only the whole dataset (dataset[()]) is read")
        value = self.file.value({"op": "read", "path": self.name},
                                self.size * self.dtype.itemsize,
                                self.file.entry(self.name).get("value"))
        if not self.holds_strings and (not isinstance(value, (np.ndarray, np.generic)) or
                                       np.shape(value) != self.shape or
                                       value.dtype != self.dtype):
            raise ReadingFailed(f"the HDF5 reading process sent data of another shape or type "
                                f"than {self.name!r} has")
        return value


class Attributes(_Names):
    """An object's attributes: ``name in attrs``, iteration, ``attrs[name]``, ``get``."""

    def __init__(self, file: _File, path: str, names):
        self.file, self.path = file, path
        self.names = [str(name) for name in names]

    def __contains__(self, name) -> bool:
        return name in self.names

    def __getitem__(self, name: str):
        if name not in self.names:
            raise KeyError(f"{self.path!r} has no attribute {name!r}")
        inline = self.file.entry(self.path).get("values")
        return self.file.value({"op": "attribute", "path": self.path, "name": name},
                               MAX_ATTRIBUTE_BYTES,
                               inline.get(name) if isinstance(inline, dict) else None)

    def get(self, name: str, default=None):
        return self[name] if name in self.names else default
