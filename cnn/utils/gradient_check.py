"""Numerical gradients by central differences, to check analytic backward passes.

Use float64 inputs: with ``eps = 1e-6`` central differences are accurate to about 1e-9
relative, far below the 1e-6 tolerance the tests use.

Two checks:

* the full check, ``numerical_gradient`` (two forward passes per element) compared with the
  analytic gradient by ``relative_error``: exact about which element is wrong, slow for
  large arrays;
* the random-direction check, ``check_directional`` (Chainer's ``check_backward``): for a
  random unit direction ``v`` over all the arrays, ``<grad, v>`` against
  ``(f(x + eps v) - f(x - eps v)) / (2 eps)``; two forward passes in all, so it suits
  whole models and long sequences. A wrong gradient passes it only if its error happens to be
  orthogonal to ``v`` (probability zero for a continuous ``v``); use a few directions to catch
  an error confined to a few elements with a safe margin.
"""

from __future__ import annotations

import numpy as np


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar function ``f()`` with respect to ``x``, perturbing ``x`` in place.

    Args:
        f: callable with no arguments returning a float; it must read ``x`` each call.
        x: float64 array (any layout: a transposed or strided view is perturbed where
            ``f`` reads it), modified temporarily and restored.
    Returns:
        array of ``x.shape``: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every i.
    """
    _require_float64(x, "numerical_gradient")
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + eps
        plus = float(f())
        x[i] = original - eps
        minus = float(f())
        x[i] = original
        grad[i] = (plus - minus) / (2 * eps)
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


def gradient_error(analytic, numeric, zero_norm: float = 1e-7) -> float:
    """``relative_error``, except when both gradients are zero up to rounding (e.g. a bias
    under a softmax over the axis it is constant on): then the absolute error."""
    if np.linalg.norm(numeric) < zero_norm and np.linalg.norm(analytic) < zero_norm:
        return float(np.linalg.norm(np.asarray(analytic, dtype=np.float64) - numeric))
    return relative_error(analytic, numeric)


def check_gradients(f, arrays: dict, analytic: dict, tolerance: float = 1e-6,
                    eps: float = 1e-6) -> dict:
    """The full check: every element of every array in ``arrays`` (name -> float64 array that
    ``f`` reads) by central differences, against ``analytic`` (name -> gradient).

    Returns the errors by name; raises ``GradientCheckError`` naming the worst array.
    """
    if set(arrays) != set(analytic):
        raise ValueError(f"arrays {sorted(arrays)} and gradients {sorted(analytic)} differ")
    errors = {}
    for name, x in arrays.items():
        grad = np.asarray(analytic[name])
        if grad.shape != x.shape:
            raise GradientCheckError(
                f"gradient of {name!r} has shape {grad.shape}, the array {x.shape}")
        errors[name] = gradient_error(grad, numerical_gradient(f, x, eps))
    _raise_if_above(errors, tolerance)
    return errors


def directional_derivative(f, arrays, directions, eps: float = 1e-6) -> float:
    """``(f(x + eps v) - f(x - eps v)) / (2 eps)`` with every array ``x`` moved along its
    ``v`` at once (in place, restored); two calls of ``f``."""
    arrays, directions = list(arrays), list(directions)
    for x, v in zip(arrays, directions):
        _require_float64(x, "directional_derivative")
        if v.shape != x.shape:
            raise ValueError(f"direction of shape {v.shape} for an array of shape {x.shape}")
    originals = [x.copy() for x in arrays]
    try:
        for x, x0, v in zip(arrays, originals, directions):
            x[...] = x0 + eps * v
        plus = float(f())
        for x, x0, v in zip(arrays, originals, directions):
            x[...] = x0 - eps * v
        minus = float(f())
    finally:
        for x, x0 in zip(arrays, originals):
            x[...] = x0
    return (plus - minus) / (2 * eps)


def random_directions(arrays, rng) -> list:
    """One direction per array, together a uniformly random unit vector."""
    directions = [rng.standard_normal(np.shape(x)) for x in arrays]
    norm = np.sqrt(sum(float((v * v).sum()) for v in directions))
    return [v / norm for v in directions]


def check_directional(f, arrays: dict, analytic: dict, seed=0, directions: int = 1,
                      tolerance: float = 1e-6, eps: float = 1e-6, atol: float = 1e-9) -> list:
    """The random-direction check (Chainer's ``check_backward``): for each of ``directions``
    random unit vectors ``v`` over all arrays together, compare ``sum <analytic, v>`` with the
    directional derivative of ``f``.

    Two calls of ``f`` per direction. Passes when ``|a - n| <= atol + tolerance * (|a| +
    |n|)``. Returns the (analytic, numerical) pairs; raises ``GradientCheckError``.
    """
    if set(arrays) != set(analytic):
        raise ValueError(f"arrays {sorted(arrays)} and gradients {sorted(analytic)} differ")
    names = sorted(arrays)
    rng = np.random.default_rng(seed)
    pairs = []
    for k in range(directions):
        vs = random_directions([arrays[name] for name in names], rng)
        for name, v in zip(names, vs):
            if np.shape(analytic[name]) != v.shape:
                raise GradientCheckError(f"gradient of {name!r} has shape "
                                         f"{np.shape(analytic[name])}, the array {v.shape}")
        predicted = sum(float(np.vdot(analytic[name], v)) for name, v in zip(names, vs))
        measured = directional_derivative(f, [arrays[name] for name in names], vs, eps)
        pairs.append((predicted, measured))
        if abs(predicted - measured) > atol + tolerance * (abs(predicted) + abs(measured)):
            raise GradientCheckError(
                f"direction {k}: <gradient, v> = {predicted!r} but the directional derivative "
                f"is {measured!r} (arrays {', '.join(names)})")
    return pairs


def _raise_if_above(errors: dict, tolerance: float) -> None:
    worst = max(errors, key=errors.get, default=None)
    if worst is not None and not errors[worst] < tolerance:
        raise GradientCheckError(
            f"gradient of {worst!r}: relative error {errors[worst]:.2e} >= {tolerance:.0e} "
            f"(all: {', '.join(f'{k} {v:.1e}' for k, v in errors.items())})")


def _require_float64(x, what):
    if np.asarray(x).dtype != np.float64:
        raise TypeError(f"{what} needs a float64 array, got {np.asarray(x).dtype}")
