"""Shared test utilities: numerical gradient checks of layers and whole models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnn.backend import floatx_scope
from cnn.utils.gradient_check import numerical_gradient, relative_error

TOLERANCE = 1e-6


def seed_dir() -> Path:
    """The original implementation's files: ``$CNN_SEED_DIR``, else the copy in
    ``tests/fixtures/seed`` (``models/*.h5``, ``data/POI.mat``)."""
    if os.environ.get("CNN_SEED_DIR"):
        return Path(os.environ["CNN_SEED_DIR"])
    return Path(__file__).resolve().parent / "fixtures" / "seed"


def build_layer(layer, input_shape):
    """Build ``layer`` for ``input_shape`` in float64 (gradient checks need it)."""
    with floatx_scope("float64"):
        layer.build(input_shape)
    return layer


def check_layer_gradients(layer, x, seed=0, training=False, tolerance=TOLERANCE):
    """Compare a built layer's backward with central differences of ``sum(forward(x) * r)``.

    Returns the relative errors by name ("input", and each parameter key).
    """
    rng = np.random.default_rng(seed)
    out = layer.forward(x, training=training)
    r = rng.standard_normal(out.shape)

    def objective():
        return float((layer.forward(x, training=training) * r).sum())

    layer.forward(x, training=training)
    layer.needs_input_grad = True
    dx = layer.backward(r.copy())
    analytic = {"input": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    errors = {"input": gradient_error(dx, numerical_gradient(objective, x))}
    for key, param in layer.params.items():
        errors[key] = gradient_error(analytic[key], numerical_gradient(objective, param))
    for key, error in errors.items():
        assert error < tolerance, f"{layer.describe()} gradient of {key}: relative error {error:.2e}"
    return errors


def gradient_error(analytic, numeric):
    """Relative error, except for gradients that are zero up to rounding (e.g. a bias under a
    softmax over the axis it is constant on), where the absolute error is returned."""
    if np.linalg.norm(numeric) < 1e-7 and np.linalg.norm(analytic) < 1e-7:
        return float(np.linalg.norm(np.asarray(analytic) - numeric))
    return relative_error(analytic, numeric)


def check_model_gradients(model, x, y, tolerance=TOLERANCE):
    """Check every parameter gradient of a compiled float64 model against its loss
    (``y``: the targets, a list of them for several outputs)."""
    targets = [np.asarray(t, dtype=np.float64) for t in y] if isinstance(y, list) else \
        np.asarray(y, dtype=np.float64)
    analytic = [g.copy() for g in model.compute_gradients(x, targets).gradients]

    def objective():
        return model.compute_gradients(x, targets).loss

    assert analytic, "the model has no trainable weights to check"
    for param, grad in zip(model.trainable_weights, analytic):
        error = gradient_error(grad, numerical_gradient(objective, param))
        assert error < tolerance, f"model gradient relative error {error:.2e}"


def separable_data(n=60, features=4, classes=3, seed=0):
    """Float32 vectors (n, features) whose class (n,) raises one feature by 2: easy to learn."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.5, (n, features)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    return x, y
