"""Read and write the IDX format of the original MNIST files (``train-images-idx3-ubyte.gz``).

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian int32
sizes, then the values in C order. Only the unsigned-byte type (``0x08``), the one MNIST
uses, is supported. Files may be gzipped; gzip is recognised by its magic bytes, not by the
file name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from cnn.utils.fileio import atomic_write

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a new uint8 array of the shape in its header.

    Raises:
        ValueError: naming the file, when the magic number is wrong, the type is not
            unsigned byte, the sizes do not match the number of data bytes (truncated file
            or trailing bytes), or the gzip stream is truncated or corrupt.
    """
    path = Path(path)
    content = path.read_bytes()
    if content.startswith(_GZIP_MAGIC):
        try:
            content = gzip.decompress(content)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: truncated or corrupt gzip stream ({exc})") from None

    if len(content) < 4 or content[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (magic number {content[:4].hex() or 'missing'}, "
                         f"expected 0000 08 <ndim>)")
    type_code, ndim = content[2], content[3]
    if type_code != _UBYTE:
        kind = _TYPE_NAMES.get(type_code, "unknown type")
        raise ValueError(f"{path}: IDX data type 0x{type_code:02X} ({kind}) is not supported; "
                         f"only 0x08 (unsigned byte) is")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")

    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise ValueError(f"{path}: truncated IDX header: {ndim} sizes need {header_size} bytes, "
                         f"the file has {len(content)}")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">i4", count=ndim, offset=4))
    if any(size < 0 for size in shape):
        raise ValueError(f"{path}: negative size in the IDX header: {shape}")

    expected = int(np.prod(shape, dtype=np.int64))
    found = len(content) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes"
        raise ValueError(f"{path}: {problem}: header shape {shape} needs {expected} data bytes, "
                         f"the file has {found}")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()


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
