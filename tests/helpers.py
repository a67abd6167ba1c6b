"""Shared test utilities: numerical gradient checks of layers and whole models."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

import cnn
from cnn.backend import floatx_scope
from cnn.utils.gradient_check import gradient_error, numerical_gradient

TOLERANCE = 1e-6


def seed_dir() -> Path:
    """The original implementation's files: ``$CNN_SEED_DIR``, else the copy in
    ``tests/fixtures/seed`` (``models/*.h5``, ``data/POI.mat``)."""
    if os.environ.get("CNN_SEED_DIR"):
        return Path(os.environ["CNN_SEED_DIR"])
    return Path(__file__).resolve().parent / "fixtures" / "seed"


def package_parent() -> Path:
    """The directory holding the ``cnn`` package these tests imported: the checkout when they
    run from the source tree, site-packages when they run against an installed copy."""
    return Path(cnn.__file__).resolve().parent.parent


def package_env(environment=None) -> dict:
    """``environment`` (default: this process's) with PYTHONPATH leading to the ``cnn`` these
    tests use, so that a subprocess runs the same copy and never another one."""
    environment = dict(os.environ if environment is None else environment)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(package_parent()), environment.get("PYTHONPATH")]))
    return environment


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


def fashion_example_on_random_images(name, monkeypatch, train=64, test=32, seed=0):
    """The module ``examples/<name>.py``, loaded afresh, whose ``fashion_mnist.load_data``
    returns ``train`` and ``test`` random (1, 28, 28) images with random labels instead of the
    data set."""
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rng = np.random.default_rng(seed)
    images = rng.random((train + test, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, train + test)
    monkeypatch.setattr(example.fashion_mnist, "load_data",
                        lambda: ((images[:train], labels[:train]),
                                 (images[train:], labels[train:])))
    return example
