"""Weight initialisers, by name.

An initialiser is called as ``init(shape, fan_in, fan_out, dtype)`` and draws from the shared
generator (``cnn.backend.rng()``), so ``cnn.set_seed`` makes initial weights reproducible.

Fan-in and fan-out are computed by the layer: for a Dense kernel ``(units, inputs)`` they are
``inputs`` and ``units``; for a conv kernel ``(filters, channels, kh, kw)`` they are
``channels * kh * kw`` and ``filters * kh * kw``. (The seed used ``C * H * W`` of the whole
input image as the conv fan-in, which makes its initial kernels far too small.)

Names: ``he_normal`` (``kaiming_normal``), ``he_uniform`` (``kaiming_uniform``),
``glorot_normal`` (``xavier_normal``), ``glorot_uniform`` (``xavier_uniform``),
``lecun_normal``, ``lecun_uniform``, ``torch_default`` (PyTorch's ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))``), ``zeros``, ``ones``.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from cnn import backend
from cnn.utils.naming import lookup


def _normal(std):
    return lambda shape, dtype: backend.rng().normal(0.0, std, size=shape).astype(dtype)


def _uniform(limit):
    return lambda shape, dtype: backend.rng().uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, fan_in, fan_out, dtype):
    return _normal(math.sqrt(2.0 / fan_in))(shape, dtype)


def he_uniform(shape, fan_in, fan_out, dtype):
    return _uniform(math.sqrt(6.0 / fan_in))(shape, dtype)


def glorot_normal(shape, fan_in, fan_out, dtype):
    return _normal(math.sqrt(2.0 / (fan_in + fan_out)))(shape, dtype)


def glorot_uniform(shape, fan_in, fan_out, dtype):
    return _uniform(math.sqrt(6.0 / (fan_in + fan_out)))(shape, dtype)


def lecun_normal(shape, fan_in, fan_out, dtype):
    return _normal(math.sqrt(1.0 / fan_in))(shape, dtype)


def lecun_uniform(shape, fan_in, fan_out, dtype):
    return _uniform(math.sqrt(3.0 / fan_in))(shape, dtype)


def torch_default(shape, fan_in, fan_out, dtype):
    return _uniform(1.0 / math.sqrt(fan_in))(shape, dtype)


def orthogonal(shape, fan_in, fan_out, dtype):
    """Orthogonal rows/columns (used for recurrent kernels); ``shape`` is flattened to 2-D."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = backend.rng().normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


def zeros(shape, fan_in, fan_out, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(shape, fan_in, fan_out, dtype):
    return np.ones(shape, dtype=dtype)


_INITIALIZERS = {
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "torch_default": torch_default,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
}


def get(identifier):
    """Resolve an initialiser given by name or as a callable ``(shape, fan_in, fan_out, dtype)``."""
    if callable(identifier):
        return identifier
    return lookup("initializer", identifier, _INITIALIZERS)


class ElementBudget:
    """What ``bounded_initialization`` allows: ``left`` elements still to draw."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self, shape) -> None:
        if any(not isinstance(n, (int, np.integer)) or n < 0 for n in shape):
            raise ValueError(f"cannot draw initial weights of shape {tuple(shape)}")
        count = math.prod(int(n) for n in shape)
        if count > self.left:
            raise ValueError(f"initial weights of shape {tuple(shape)} ({count} elements) "
                             f"exceed the {self.left} elements left to this model")
        self.left -= count


_BUDGETS: list[ElementBudget] = []


@contextlib.contextmanager
def bounded_initialization(limit: int):
    """Within the block, ``initialize`` refuses (ValueError) to draw more than ``limit``
    elements in all, checking each shape BEFORE allocating (loading untrusted files)."""
    budget = ElementBudget(limit)
    _BUDGETS.append(budget)
    try:
        yield budget
    finally:
        _BUDGETS.remove(budget)


def initialize(identifier, shape, fan_in, fan_out, dtype=None):
    """Draw an array of ``shape`` (as a backend array of ``dtype``, default ``floatx()``)."""
    dtype = dtype or backend.floatx()
    for budget in _BUDGETS:
        budget.take(tuple(shape))
    values = get(identifier)(tuple(shape), fan_in, fan_out, dtype)
    return backend.asarray(values, dtype=dtype)
