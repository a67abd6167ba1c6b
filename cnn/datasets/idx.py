"""Read and write the IDX format of the original MNIST files (``train-images-idx3-ubyte.gz``).

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian int32
sizes, then the values in C order. Only the unsigned-byte type (``0x08``), the one MNIST
uses, is supported. Files may be gzipped; gzip is recognised by its magic bytes, not by the
file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from cnn.utils.fileio import atomic_write

_GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_RATIO = 1032  # deflate expands its input at most about 1032 times
CHUNK_SIZE = 1 << 20
_UBYTE = 0x08
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a new uint8 array of the shape in its header.

    The header is read and checked first; only then is the array allocated and filled, with
    at most the number of bytes the header declares (plus one, to detect trailing bytes).
    A gzipped file's header may not declare more than ``MAX_GZIP_RATIO`` times the size of
    the compressed file (more than deflate can produce), so a small ``.gz`` that inflates to
    gigabytes fails at once.

    Raises:
        ValueError: naming the file, when the magic number is wrong, the type is not
            unsigned byte, the sizes do not match the number of data bytes (truncated file
            or trailing bytes), or the gzip stream is truncated or corrupt.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        file_size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx_stream(stream, path, file_size, compressed)
        except (EOFError, OSError, zlib.error) as exc:
            if not compressed:
                raise
            raise ValueError(f"{path}: truncated or corrupt gzip stream ({exc})") from None


def _read_idx_stream(stream, path: Path, file_size: int, compressed: bool) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (magic number {magic.hex() or 'missing'}, "
                         f"expected 0000 08 <ndim>)")
    type_code, ndim = magic[2], magic[3]
    if type_code != _UBYTE:
        kind = _TYPE_NAMES.get(type_code, "unknown type")
        raise ValueError(f"{path}: IDX data type 0x{type_code:02X} ({kind}) is not supported; "
                         f"only 0x08 (unsigned byte) is")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} sizes need {header_size} bytes, "
                         f"the file has {4 + len(sizes)}")
    shape = struct.unpack(f">{ndim}i", sizes)
    if any(size < 0 for size in shape):
        raise ValueError(f"{path}: negative size in the IDX header: {shape}")
    expected = math.prod(shape)  # Python ints: no overflow
    if compressed and expected > MAX_GZIP_RATIO * file_size:
        raise ValueError(f"{path}: the IDX header declares shape {shape}, {expected} data bytes, "
                         f"more than a gzip file of {file_size} bytes can hold")
    if not compressed and expected != file_size - header_size:
        found = file_size - header_size
        problem = "truncated" if found < expected else "trailing bytes"
        raise ValueError(f"{path}: {problem}: header shape {shape} needs {expected} data bytes, "
                         f"the file has {found}")
    data = np.empty(expected, dtype=np.uint8)
    found = _read_into(stream, memoryview(data))
    if found < expected:
        raise ValueError(f"{path}: truncated: header shape {shape} needs {expected} data bytes, "
                         f"the file has {found}")
    if stream.read(1):
        raise ValueError(f"{path}: trailing bytes: header shape {shape} needs {expected} data "
                         f"bytes, the file has more")
    return data.reshape(shape)


def _read_into(stream, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; return the number of bytes read (short at the end)."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:filled + CHUNK_SIZE])
        if not count:
            break
        filled += count
    return filled


def write_idx(path, array, compress: bool = False) -> None:
    """Write ``array`` as an unsigned-byte IDX file, gzipped when ``compress`` is true.

    Args:
        path: the target file; written atomically (temporary file beside it, then renamed).
        array: 1 to 255 dimensions; uint8, or integers all within 0..255.
        compress: gzip the file (reproducibly: the gzip header carries no timestamp).
    """
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"{path}: IDX needs an array of 1 to 255 dimensions, got shape {array.shape}")
    if array.dtype != np.uint8:
        integer = array.dtype.kind in "iub"
        if not integer or (array.size and (array.min() < 0 or array.max() > 255)):
            raise ValueError(f"{path}: IDX stores unsigned bytes; got {array.dtype} values that are "
                             f"not all integers in 0..255")
        array = array.astype(np.uint8)

    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    content = header + np.ascontiguousarray(array).tobytes()
    if compress:
        content = gzip.compress(content, mtime=0)
    with atomic_write(path) as stream:
        stream.write(content)
