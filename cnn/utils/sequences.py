"""``pad_sequences``: a list of sequences of different lengths -> one (N, maxlen, ...) array."""

from __future__ import annotations

import numpy as np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Keras's ``pad_sequences``: pad (or cut) every sequence to ``maxlen`` steps.

    Args:
        sequences: a list of sequences (lists or arrays); each step may be a number or an
            array of one common shape.
        maxlen: the length of the result (default: the longest sequence).
        dtype: the result's dtype (``"int32"`` by default, as in Keras; use ``object`` or a
            string dtype for strings).
        padding: ``"pre"`` (default) or ``"post"``: pad before or after each sequence.
        truncating: ``"pre"`` (default) or ``"post"``: drop the steps of a longer sequence at
            the start or at the end.
        value: the padding value.
    Returns:
        an array (len(sequences), maxlen, *step shape).
    """
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError("pad_sequences takes a list of sequences, got "
                         f"{type(sequences).__name__}")
    for name, given in (("padding", padding), ("truncating", truncating)):
        if given not in ("pre", "post"):
            raise ValueError(f'{name} must be "pre" or "post", got {given!r}')
    whole = isinstance(maxlen, (int, np.integer)) and not isinstance(maxlen, bool)
    if maxlen is not None and (not whole or maxlen < 0):
        raise ValueError(f"maxlen must be None or an int >= 0, got {maxlen!r}")
    arrays, step_shape = [], None
    for index, sequence in enumerate(sequences):
        if not hasattr(sequence, "__len__"):
            raise ValueError(f"pad_sequences: sequence {index} is not a sequence: {sequence!r}")
        array = np.asarray(sequence)
        if len(sequence) and step_shape is None:
            step_shape = array.shape[1:]
        if len(sequence) and array.shape[1:] != step_shape:
            raise ValueError(f"pad_sequences: the steps of sequence {index} have shape "
                             f"{array.shape[1:]}, those before {step_shape}")
        arrays.append(array)
    step_shape = () if step_shape is None else step_shape
    if maxlen is None:
        maxlen = max((len(a) for a in arrays), default=0)
    is_text = np.issubdtype(np.dtype(dtype), np.str_) or np.dtype(dtype) == object
    if isinstance(value, str) and not is_text:
        raise ValueError(f"value {value!r} is a string but dtype is {np.dtype(dtype)}; pass "
                         "dtype=object to pad text")
    result = np.full((len(arrays), maxlen, *step_shape), value, dtype=dtype)
    for i, array in enumerate(arrays):
        if not len(array) or not maxlen:
            continue
        kept = array[-maxlen:] if truncating == "pre" else array[:maxlen]
        if padding == "post":
            result[i, :len(kept)] = kept
        else:
            result[i, -len(kept):] = kept
    return result


__all__ = ["pad_sequences"]
