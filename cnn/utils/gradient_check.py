"""Numerical gradients by central differences, to check analytic backward passes.

Use float64 inputs: with ``eps = 1e-6`` central differences are accurate to about 1e-9
relative, far below the 1e-6 tolerance the tests use.
"""

from __future__ import annotations

import numpy as np


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar function ``f()`` with respect to ``x``, perturbing ``x`` in place.

    Args:
        f: callable with no arguments returning a float; it must read ``x`` each call.
        x: float64 array, modified temporarily and restored.
    Returns:
        array of ``x.shape``: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every i.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs a float64 array, got {x.dtype}")
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = float(f())
        flat[i] = original - eps
        minus = float(f())
        flat[i] = original
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b) -> float:
    """``||a - b|| / (||a|| + ||b||)``, 0 when both are zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(a - b) / denom)
