"""The HDF5 reading process: ``python -m cnn.saving.hdf5_reader``, started by
``cnn.saving.reader_process``; it is where the HDF5 C library meets an untrusted file.

It answers requests on its standard input (frames of ``reader_protocol``), one file at a
time:

* ``open``: the file's bytes follow (read by the loading process, once). They are opened as
  an in-memory HDF5 image, the structure is checked (``hdf5_checks.check_structure``: no
  link, storage or type that could reach another file or a plugin) and the reply lists every
  group and dataset with its shape, type and attribute names. Before each file, the process
  lowers its own limits: address space (RLIMIT_AS) to what it uses plus what the request
  allows, CPU time (RLIMIT_CPU) to what it used plus the request's seconds, so that a file
  on which HDF5 loops or allocates without end ends this process even if nobody watches.
* ``read`` (a dataset's data) and ``attribute`` (one attribute's value), of the open file.

Errors become replies (``{"error": ..., "kind": ...}``); a crash or a loop inside the C
library is noticed by the loading process, which ends this one. Nothing here writes a file.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys

import h5py
import numpy as np

from cnn.saving import reader_protocol as protocol
from cnn.saving.hdf5_checks import check_structure

REQUEST_LIMIT = 1 << 20
INLINE_BYTES = 1 << 16    # the largest value sent with the structure
INLINE_TOTAL = 1 << 24    # all of them together
READY = {"ready": True}


def main() -> None:
    requests = sys.stdin.buffer.fileno()
    replies = os.dup(sys.stdout.buffer.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    protocol.send_json(replies, READY)
    handle = None
    while True:
        try:
            request = protocol.receive_json(requests, REQUEST_LIMIT)
        except protocol.ProtocolClosed:
            return  # the loading process is gone or done
        if request.get("op") == "open":
            if handle is not None:
                handle.close()
                handle = None
            data = protocol.receive_frame(requests, int(request["size"]))
            handle, reply = open_file(data, request)
            del data
            protocol.send_json(replies, reply)
        else:
            reply, array_bytes = answer(handle, request)
            protocol.send_json(replies, reply)
            if array_bytes is not None:
                protocol.send_frame(replies, array_bytes)


def open_file(data: bytes, request: dict):
    """``(h5py.File or None, reply)`` for the bytes of one file."""
    limit_resources(float(request["cpu_seconds"]), int(request["memory_bytes"]))
    try:
        handle = open_image(data)
    except MemoryError:
        return None, memory_error()
    except Exception as exc:  # noqa: BLE001 - h5py's errors on a damaged file vary
        return None, {"error": str(exc), "kind": "unopenable"}
    try:
        check_structure(handle)
        return handle, {"objects": describe(handle)}
    except ValueError as exc:
        handle.close()
        return None, {"error": str(exc), "kind": "refused"}
    except MemoryError:
        handle.close()
        return None, memory_error()
    except Exception as exc:  # noqa: BLE001
        handle.close()
        return None, damaged(exc)


def open_image(data: bytes) -> h5py.File:
    """The HDF5 file whose bytes are ``data``, opened read-only in memory (no file on disk
    is touched: the core driver without a backing store)."""
    access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    access.set_fapl_core(backing_store=False)
    access.set_file_image(data)
    return h5py.File(h5py.h5f.open(b"model.h5", h5py.h5f.ACC_RDONLY, fapl=access))


def limit_resources(cpu_seconds: float, memory_bytes: int) -> None:
    """Soft limits for the next file: CPU time used so far plus ``cpu_seconds``, address
    space used now plus ``memory_bytes`` (never above the hard limits inherited)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + cpu_seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (_capped(cpu, hard), hard))
    used = address_space()
    if used:  # known (Linux): elsewhere RLIMIT_AS is not enforced anyway
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (_capped(used + memory_bytes, hard), hard))


def _capped(value: int, hard: int) -> int:
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def address_space() -> int:
    """This process's address space in bytes (VmSize), 0 where /proc does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def describe(handle: h5py.File) -> dict:
    """``{path: entry}`` of every object (checked to form a tree of hard links): a group's
    member names, a dataset's shape and type, and every object's attribute names. Small
    values (INLINE_BYTES each, INLINE_TOTAL in all) come with it, which spares the loading
    process a request for each: attributes under ``"values"``, a dataset's data under
    ``"value"``."""
    objects = {}
    budget = Budget(INLINE_TOTAL)
    pending = [handle]
    while pending:
        group = pending.pop()
        names = list(group)
        objects[group.name] = {"kind": "group", "members": names,
                               **attributes(group, budget)}
        for name in names:
            item = group[name]
            if isinstance(item, h5py.Group):
                pending.append(item)
                continue
            entry = {"kind": "dataset", "shape": list(item.shape),
                     "type": describe_type(item.dtype), **attributes(item, budget)}
            if item.size * max(item.dtype.itemsize, 16) <= min(INLINE_BYTES, budget.left):
                value = budget.take(inline(lambda: item[()]))
                if value is not None:
                    entry["value"] = value
            objects[item.name] = entry
    return objects


class Budget:
    """What is left of INLINE_TOTAL bytes of values sent with the structure."""

    def __init__(self, total: int):
        self.left = total

    def take(self, description: dict | None) -> dict | None:
        size = 0 if description is None else len(json.dumps(description))
        if description is None or size > self.left:
            return None
        self.left -= size
        return description


def inline(read) -> dict | None:
    """The description of the small value ``read()`` returns, or None when reading it fails
    (the loading process asks for it if it needs it, and then gets the error)."""
    try:
        return protocol.inline_value(read(), INLINE_BYTES)
    except Exception:  # noqa: BLE001 - h5py's errors on a damaged file vary
        return None


def attributes(item, budget: Budget) -> dict:
    """``{"attributes": names, "values": {name: small value}}`` of ``item``."""
    names = list(item.attrs)
    values = {}
    for name in names:
        if budget.left <= 0:
            break
        attribute = item.attrs.get_id(name)
        if attribute.shape is not None and \
                math.prod(attribute.shape) * max(attribute.dtype.itemsize, 16) <= INLINE_BYTES:
            value = budget.take(inline(lambda: item.attrs[name]))
            if value is not None:
                values[name] = value
    return {"attributes": names, "values": values}


def describe_type(dtype: np.dtype) -> dict:
    """A dataset's type: ``{"number": "<f4"}`` or ``{"string": length or None}``."""
    if dtype.kind in "biuf":
        return {"number": dtype.str}
    string = h5py.check_string_dtype(dtype)
    return {"string": string.length}


def answer(handle, request: dict):
    """``(reply, .npy bytes or None)`` for a ``read`` or ``attribute`` request."""
    if handle is None:
        return {"error": "no file is open", "kind": "protocol"}, None
    try:
        item = handle[request["path"]]
        value = item[()] if request["op"] == "read" else item.attrs[request["name"]]
        description, array_bytes = protocol.encode_value(value)
        return {"value": description}, array_bytes
    except MemoryError:
        return memory_error(), None
    except Exception as exc:  # noqa: BLE001 - h5py's errors on a damaged file vary
        return damaged(exc), None


def damaged(exc: Exception) -> dict:
    return {"error": str(exc), "kind": "damaged", "type": type(exc).__name__}


def memory_error() -> dict:
    return {"error": "reading it needs more memory than the limit of the reading process",
            "kind": "memory"}


if __name__ == "__main__":
    main()
