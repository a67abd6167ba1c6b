"""Checking and converting what users pass to fit / evaluate / predict.

Every problem is reported as a ``ValueError`` that names the argument and the shapes, before
any computation starts; nothing is reshaped or guessed silently.
"""

from __future__ import annotations

import numpy as np

from cnn.layers.node import has_variable_axis, shape_matches
from cnn.losses import (BinaryCrossentropy, CategoricalCrossentropy,
                        SparseCategoricalCrossentropy)

_CHUNK = 8192


def as_array(x, what: str) -> np.ndarray:
    """``x`` as a numeric or bool NumPy (or CuPy) array with at least one sample."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{what} cannot be converted to an array: {exc}") from None
    if x.dtype != bool and not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} must hold numbers or bools, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{what} must hold real numbers, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)}): nothing to do")
    return x


def check_finite(x, what: str, read_rows=None) -> None:
    """Raise if a float array holds NaN or infinity (checked in chunks to save memory;
    ``read_rows(start, stop)`` reads a chunk, by default ``x[start:stop]``)."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    for start in range(0, x.shape[0], _CHUNK):
        stop = min(start + _CHUNK, x.shape[0])
        chunk = x[start:stop] if read_rows is None else read_rows(start, stop)
        finite_rows = np.isfinite(chunk).reshape(chunk.shape[0], -1).all(axis=1)
        if not bool(finite_rows.all()):
            first = start + int(np.argmin(finite_rows))
            raise ValueError(f"{what} contains NaN or infinite values (first in sample {first})")


def check_inputs(x, input_shape: tuple, what: str = "x", read_rows=None) -> np.ndarray:
    """Validate inputs against the model's input shape (without batch axis; a None axis
    takes any size)."""
    x = as_array(x, what)
    if not shape_matches(x.shape[1:], input_shape):
        hint = ""
        if tuple(x.shape) == tuple(input_shape):
            hint = " (a single sample? add the batch axis: x[None])"
        elif x.ndim == 4 and len(input_shape) == 3 and _channels_moved(x.shape[1:], input_shape):
            hint = (" (the channels axis is at the other end: transpose the images, or build "
                    "the model for their layout with data_format= or "
                    "cnn.set_image_data_format(...))")
        elif not has_variable_axis(input_shape) and (
                int(np.prod(x.shape[1:])) == int(np.prod(input_shape))):
            hint = f" (same size: reshape it with x.reshape(-1, *{tuple(input_shape)}))"
        raise ValueError(
            f"{what} has shape {tuple(x.shape)}, but the model expects (N, "
            f"{', '.join(map(str, input_shape))}){hint}"
        )
    check_finite(x, what, read_rows)
    return x


def join_predictions(chunks: list, output: str) -> np.ndarray:
    """``predict``'s outputs of one model output, batch by batch, joined along the batch
    axis. Batches of a variable length (None) give outputs of different lengths, which make
    no one array (Keras fails there too): a ValueError names the first batch that differs."""
    first = tuple(chunks[0].shape[1:])
    for number, chunk in enumerate(chunks, start=1):
        if tuple(chunk.shape[1:]) != first:
            raise ValueError(
                f"predict cannot join its batches' outputs into one array: output {output!r} "
                f"of batch 1 has shape {tuple(chunks[0].shape)} but batch {number} "
                f"{tuple(chunk.shape)} (the model has a variable-length axis and the batches "
                "differ in length). Predict one batch at a time (model.predict_on_batch(x) "
                "for each batch), or pad the inputs to one length first "
                "(cnn.utils.pad_sequences)")
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _channels_moved(shape, expected) -> bool:
    """True when ``shape`` is ``expected`` with its first or last axis moved to the other end."""
    shape, expected = tuple(shape), tuple(expected)
    return shape in ((*expected[1:], expected[0]), (expected[-1], *expected[:-1]))


def prepare_targets(y, n_samples: int, output_shape: tuple, loss, dtype, what: str = "y"):
    """Targets as a float array of shape (N, *output_shape).

    Integer class ids (shape (N,) or (N, 1)) are one-hot encoded for a categorical
    cross-entropy, and ids (N, T) or (N, T, 1) for a sparse one on outputs (N, T, K); for a
    one-unit output, (N,) targets become (N, 1).
    """
    y = as_array(y, what)
    if y.shape[0] != n_samples:
        raise ValueError(f"x has {n_samples} samples but {what} has {y.shape[0]}")
    output_shape = tuple(output_shape)
    expected = (n_samples, *output_shape)
    classes = output_shape[-1]
    is_ids = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and classes > 1)
    if isinstance(loss, CategoricalCrossentropy) and is_ids and len(output_shape) == 1:
        return one_hot(y.reshape(-1), classes, dtype, what)
    if isinstance(loss, SparseCategoricalCrossentropy) and len(output_shape) > 1 and (
            shape_matches(y.shape[1:], output_shape[:-1])
            or shape_matches(y.shape[1:], (*output_shape[:-1], 1))):
        ids_shape = (n_samples, *y.shape[1:len(output_shape)], classes)
        return one_hot(y.reshape(-1), classes, dtype, what).reshape(ids_shape)
    if y.ndim == 1 and output_shape == (1,):
        y = y.reshape(-1, 1)
    if not shape_matches(y.shape, expected):
        if y.ndim == 2 and len(output_shape) == 1:
            raise ValueError(
                f"{what} has {y.shape[1]} columns but the model outputs {classes} values per "
                f"sample (shape {tuple(y.shape)} vs expected {expected})"
            )
        raise ValueError(f"{what} has shape {tuple(y.shape)}, expected {expected}")
    y = y.astype(dtype, copy=False)
    check_finite(y, what)
    if isinstance(loss, (CategoricalCrossentropy, BinaryCrossentropy)) and not loss.from_logits:
        if bool((y < 0).any()) or (isinstance(loss, BinaryCrossentropy) and bool((y > 1).any())):
            raise ValueError(f"{what} holds values outside [0, 1], not valid for {loss.name}")
    return y


def one_hot(ids, classes: int, dtype, what: str = "y"):
    """Integer class ids (N,) -> one-hot (N, classes), checking the ids."""
    ids = np.asarray(ids)
    if np.issubdtype(ids.dtype, np.floating):
        if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
            raise ValueError(f"{what} looks like class ids but holds non-integer values")
    ids = ids.astype(np.int64)
    if ids.min() < 0 or ids.max() >= classes:
        raise ValueError(
            f"{what} holds class ids from {ids.min()} to {ids.max()}, but the model has "
            f"{classes} output classes (valid ids 0..{classes - 1})"
        )
    out = np.zeros((ids.shape[0], classes), dtype=dtype)
    out[np.arange(ids.shape[0]), ids] = 1
    return out


def sample_weights(n_samples: int, sample_weight=None, class_weight=None, targets=None):
    """Per-sample weights (N,) float64 from ``sample_weight`` and/or ``class_weight``, or None."""
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if weights.shape[0] != n_samples:
            raise ValueError(f"sample_weight has {weights.shape[0]} values for {n_samples} samples")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("sample_weight must be finite and >= 0")
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise ValueError(f"class_weight must be a dict {{class id: weight}}, got {class_weight!r}")
        flat = targets.reshape(n_samples, -1)
        ids = flat.argmax(axis=1) if flat.shape[1] > 1 else (flat[:, 0] > 0.5).astype(np.int64)
        classes = max(flat.shape[1], 2)
        table = np.ones(classes)
        for key, value in class_weight.items():
            if not 0 <= int(key) < classes:
                raise ValueError(f"class_weight has class {key!r}, valid classes are 0..{classes - 1}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"class_weight[{key!r}] must be finite and >= 0, got {value!r}")
            table[int(key)] = value
        per_class = table[ids]
        weights = per_class if weights is None else weights * per_class
    return weights


def check_batch_size(batch_size, default: int) -> int:
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(
            f"batch_size must be a positive int, got {batch_size!r} "
            "(for full-batch training pass batch_size=len(x))"
        )
    return int(batch_size)
