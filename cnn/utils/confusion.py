"""Class ids checked and counted: the confusion matrix, without matplotlib.

``cnn.utils.report`` (and so ``cnn evaluate``) needs the counts but no figure; the drawing is
in ``cnn.utils.visualization``, which imports matplotlib.
"""

from __future__ import annotations

import numpy as np

from cnn.backend import to_numpy


def confusion_matrix(y_pred, y_true, num_classes: int) -> np.ndarray:
    """Count predictions per (true, predicted) class pair.

    Args:
        y_pred, y_true: (m,) (or (m, 1)) integer class ids in ``range(num_classes)``; floats
            are accepted when they hold whole numbers.
        num_classes: the number of classes n.
    Returns:
        (n, n) int64 array; entry [i, j] counts samples of true class i predicted as j
        (``bincount(n * true + pred)`` reshaped).
    Raises:
        ValueError: the arrays differ in length, are not integer-like or 1-D, or hold ids
            outside ``range(num_classes)``.
    """
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    predicted = class_ids("y_pred", y_pred, num_classes)
    true = class_ids("y_true", y_true, num_classes)
    if len(predicted) != len(true):
        raise ValueError(f"y_pred and y_true differ in length: {len(predicted)} != {len(true)}")
    counts = np.bincount(num_classes * true + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def class_ids(name: str, values, num_classes: int) -> np.ndarray:
    """``values`` as an (m,) int64 array of class ids in ``range(num_classes)``.

    Args:
        name: the argument's name, for the error message ("y_pred").
        values: (m,) or (m, 1) integer ids, or floats holding whole numbers.
    Raises:
        ValueError: not 1-D (one-hot rows, say), not integer-like, or an id out of range.
    """
    ids = np.asarray(to_numpy(values))
    if ids.ndim == 2 and ids.shape[1] == 1:
        ids = ids[:, 0]
    if ids.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class ids, got shape {ids.shape} "
                         f"(for one-hot or probability rows pass {name}.argmax(axis=1))")
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
        ids = ids.astype(np.int64)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"{name} holds class ids outside range({num_classes}): "
                         f"min {ids.min()}, max {ids.max()}")
    return ids.astype(np.int64)
