"""Gradient checks of layers whose forward takes more than ``(x, training)``: masks, several
inputs, a dropout mask fixed by reseeding before every forward."""

from __future__ import annotations

import numpy as np

import cnn
from cnn.utils.gradient_check import numerical_gradient
from tests.helpers import TOLERANCE, gradient_error


def check_gradients(layer, inputs, forward, seed=0, reseed=None, tolerance=TOLERANCE):
    """Compare ``layer.backward`` with central differences of ``sum(forward(inputs) * r)``.

    ``inputs``: one float64 array or a list of them (the gradient of each is checked;
    ``backward`` returns one gradient or a list, None for inputs that get none);
    ``forward(inputs)`` runs the layer; ``reseed``: a seed set before every forward (so that
    a dropout mask is the same each time). Returns the relative errors by name.
    """
    listed = isinstance(inputs, list)
    arrays = inputs if listed else [inputs]

    def run():
        if reseed is not None:
            cnn.set_seed(reseed)
        return forward(inputs)

    out = run()
    r = np.random.default_rng(seed).standard_normal(out.shape)

    def objective():
        return float((run() * r).sum())

    run()
    layer.needs_input_grad = True
    grads = layer.backward(r.copy())
    grads = [None] * len(arrays) if grads is None else grads if listed else [grads]
    analytic = {k: v.copy() for k, v in layer.grads.items()}
    errors = {}
    for i, (array, grad) in enumerate(zip(arrays, grads)):
        if grad is not None:
            errors[f"input {i}"] = gradient_error(grad, numerical_gradient(objective, array))
    for key, param in layer.params.items():
        errors[key] = gradient_error(analytic[key], numerical_gradient(objective, param))
    for key, error in errors.items():
        assert error < tolerance, (f"{layer.describe()} gradient of {key}: relative error "
                                   f"{error:.2e}")
    return errors
