"""The messages between a loading process and its HDF5 reading process.

Every message is a frame: an 8-byte big-endian length, then that many bytes. A request or a
reply is a frame of UTF-8 JSON; a numeric value follows its reply as one frame in NumPy's
``.npy`` format, read back with ``allow_pickle=False``; strings travel inside the JSON. So
nothing the reading process sends can make the loading process run code: it is parsed as
JSON or as a plain array, and every size is checked against a limit before it is read.

Strings keep the distinction h5py makes between ``str`` and ``bytes``: bytes travel decoded
with ``surrogateescape`` (JSON escapes the lone surrogates), so undecodable bytes arrive
exactly as they were and the loader's own UTF-8 check still sees them.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import struct
import time

import numpy as np

LENGTH = struct.Struct(">Q")
CHUNK = 1 << 20


class ProtocolTimeout(Exception):
    """The other side did not send or take a frame before the deadline."""


class ProtocolClosed(Exception):
    """The other side closed its end (it ended, or crashed) in the middle of a frame."""


def send_frame(fd: int, payload: bytes, deadline: float | None = None) -> None:
    """Write one frame to ``fd``; with a ``deadline`` (``time.monotonic()``) ``fd`` must be
    non-blocking and ProtocolTimeout is raised once it passes."""
    for part in (LENGTH.pack(len(payload)), payload):  # not joined: a file is not copied
        data = memoryview(part)
        while data:
            if deadline is not None:
                _wait(fd, deadline, write=True)
            try:
                written = os.write(fd, data[:CHUNK])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise ProtocolClosed("the other side closed the pipe") from None
            data = data[written:]


def receive_frame(fd: int, limit: int, deadline: float | None = None) -> bytes:
    """Read one frame from ``fd``; a frame longer than ``limit`` bytes is refused (ValueError)
    before it is read."""
    length, = LENGTH.unpack(_read_exactly(fd, LENGTH.size, deadline))
    if length > limit:
        raise ValueError(f"a reply of {length} bytes, more than the {limit} expected")
    return bytes(_read_exactly(fd, length, deadline))


def send_json(fd: int, message: dict, deadline: float | None = None) -> None:
    send_frame(fd, json.dumps(message).encode("utf-8"), deadline)


def receive_json(fd: int, limit: int, deadline: float | None = None) -> dict:
    message = json.loads(receive_frame(fd, limit, deadline).decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError(f"a reply that is not a JSON object: {type(message).__name__}")
    return message


def _read_exactly(fd: int, count: int, deadline: float | None) -> bytearray:
    data = bytearray()
    while len(data) < count:
        if deadline is not None:
            _wait(fd, deadline, write=False)
        try:
            chunk = os.read(fd, min(CHUNK, count - len(data)))
        except BlockingIOError:
            continue
        if not chunk:
            raise ProtocolClosed("the other side closed the pipe")
        data += chunk
    return data


def _wait(fd: int, deadline: float, write: bool) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProtocolTimeout()
    ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
    if not any(ready):
        raise ProtocolTimeout()


# -- values ---------------------------------------------------------------------------------
def encode_value(value) -> tuple[dict, bytes | None]:
    """A value h5py read (a number, an array, a string or an array of strings) as
    ``(description for the JSON reply, .npy bytes or None)``."""
    if isinstance(value, (str, bytes)):
        return _strings([value], None), None
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        stream = io.BytesIO()
        np.save(stream, array, allow_pickle=False)
        return {"array": True}, stream.getvalue()
    if array.dtype.kind in "OSU":
        flat = array.reshape(-1).tolist()
        if all(isinstance(item, (str, bytes)) for item in flat):
            return _strings(flat, list(array.shape)), None
    raise ValueError(f"it holds {array.dtype} values, neither numbers nor strings")


def inline_value(value, limit: int) -> dict | None:
    """``encode_value``'s description with the array inside it (base64), when the whole
    description takes at most ``limit`` bytes; else None."""
    description, array_bytes = encode_value(value)
    if array_bytes is not None:
        if len(array_bytes) * 4 // 3 + 4 > limit:
            return None
        description = {"npy": base64.b64encode(array_bytes).decode("ascii")}
    elif sum(len(text) for text in description["strings"]) > limit:
        return None
    return description


def _strings(values, shape) -> dict:
    return {"strings": [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                        for v in values],
            "bytes": [isinstance(v, bytes) for v in values], "shape": shape}


def decode_value(description: dict, array_bytes: bytes | None):
    """The value of ``encode_value``, as h5py gave it: a NumPy scalar or array, a ``str`` or
    ``bytes``, or an object array of them. Anything malformed raises ValueError."""
    if description.get("array") is True or isinstance(description.get("npy"), str):
        if isinstance(description.get("npy"), str):
            array_bytes = base64.b64decode(description["npy"], validate=True)
        array = np.load(io.BytesIO(array_bytes or b""), allow_pickle=False)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"an array of {array.dtype}")
        return array[()] if array.ndim == 0 else array
    texts, flags, shape = (description.get(key) for key in ("strings", "bytes", "shape"))
    if not isinstance(texts, list) or not isinstance(flags, list) or len(texts) != len(flags) \
            or not all(isinstance(t, str) for t in texts):
        raise ValueError("a malformed list of strings")
    values = [t.encode("utf-8", "surrogateescape") if flag else t
              for t, flag in zip(texts, flags)]
    if shape is None:
        if len(values) != 1:
            raise ValueError("a malformed string")
        return values[0]
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape) \
            or int(np.prod(shape, dtype=np.int64)) != len(values):
        raise ValueError("strings of a malformed shape")
    result = np.empty(len(values), dtype=object)
    result[:] = values
    return result.reshape(shape)
