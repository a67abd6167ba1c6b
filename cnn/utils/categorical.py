"""``to_categorical``: class ids to one-hot rows, as ``keras.utils.to_categorical``."""

from __future__ import annotations

import numpy as np


def to_categorical(y, num_classes=None, dtype="float32") -> np.ndarray:
    """One-hot encode integer class ids.

    Args:
        y: class ids of any shape (a trailing axis of size 1 is dropped, as in Keras),
            integers, whole floats or bools.
        num_classes: the number of classes; default ``max(y) + 1``.
        dtype: the result's dtype.
    Returns:
        array of shape ``(*y.shape, num_classes)`` (``(N, num_classes)`` for ids (N,) or
        (N, 1)) with a 1 at each id.
    Raises:
        ValueError: ids that are not whole numbers, negative, or not below ``num_classes``;
            ``num_classes`` that is not a positive int; an empty ``y`` without
            ``num_classes``.
    """
    ids = np.asarray(y)
    if ids.dtype == bool:
        ids = ids.astype(np.int64)
    if not np.issubdtype(ids.dtype, np.number) or np.issubdtype(ids.dtype, np.complexfloating):
        raise ValueError(f"to_categorical needs integer class ids, got dtype {ids.dtype}")
    if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
        raise ValueError("to_categorical needs integer class ids, got values that are not "
                         "whole numbers")
    shape = ids.shape[:-1] if ids.ndim > 1 and ids.shape[-1] == 1 else ids.shape
    ids = ids.reshape(-1).astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"to_categorical: class ids must be >= 0, got {ids.min()}")
    if num_classes is None:
        if not ids.size:
            raise ValueError("to_categorical of an empty array needs num_classes")
        num_classes = int(ids.max()) + 1
    elif (isinstance(num_classes, (bool, np.bool_))
          or not isinstance(num_classes, (int, np.integer)) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if ids.size and ids.max() >= num_classes:
        raise ValueError(f"to_categorical: class id {ids.max()} is out of range for "
                         f"num_classes={num_classes} (valid ids 0..{num_classes - 1})")
    categorical = np.zeros((ids.size, int(num_classes)), dtype=dtype)
    categorical[np.arange(ids.size), ids] = 1
    return categorical.reshape(*shape, int(num_classes))
