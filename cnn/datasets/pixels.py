"""Raw 8-bit pixels to model inputs: the dtype choice every image loader offers."""

from __future__ import annotations

import numpy as np


def checked_dtype(requested, who: str) -> np.dtype:
    """``requested`` as a NumPy dtype that is ``uint8`` or a float type, else a ValueError."""
    try:
        dtype = np.dtype(requested)
    except TypeError:
        dtype = None
    if dtype is None or not (dtype == np.uint8 or dtype.kind == "f"):
        raise ValueError(f"{who}: dtype must be 'uint8' or a float type "
                         f"('float32', 'float64', ...), got {requested!r}")
    return dtype


def to_images(raw: np.ndarray, dtype) -> np.ndarray:
    """(N, H, W) uint8 -> (N, 1, H, W) contiguous: raw for ``uint8``, else scaled to [0, 1]."""
    dtype = np.dtype(dtype)
    images = raw[:, np.newaxis, :, :]
    if dtype == np.uint8:
        return np.ascontiguousarray(images)
    return np.ascontiguousarray(images.astype(dtype) / dtype.type(255), dtype=dtype)
