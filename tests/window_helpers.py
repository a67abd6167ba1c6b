"""Helpers for the window-layer tests: one forward/backward pass of a cnn layer, the same
pass in PyTorch, a save/load round trip of a small model around a layer, and the
reproducibility of an augmentation layer's draws."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import Flatten, Input
from cnn.models import Model, load_model


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def layer_pass(layer, x, training=False, seed=0):
    """``(y, r, dx, grads)``: output, the upstream gradient drawn, input and weight gradients."""
    y = layer.forward(x, training=training)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    layer.needs_input_grad = True
    dx = layer.backward(r.copy())
    return np.array(y), r, dx, {key: value.copy() for key, value in layer.grads.items()}


def torch_pass(function, x, params, r):
    """The same pass in PyTorch: ``function(x_tensor, {name: tensor})`` gives the output."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this comparison")
    xt = torch.tensor(x, requires_grad=True)
    pt = {key: torch.tensor(value, requires_grad=True) for key, value in params.items()}
    yt = function(xt, pt)
    (yt * torch.tensor(r)).sum().backward()
    return (yt.detach().numpy(), xt.grad.numpy(),
            {key: value.grad.numpy() for key, value in pt.items()})


def assert_matches_torch(layer, x, function, atol=1e-4, training=False):
    """Forward output and every gradient of ``layer`` equal PyTorch's within ``atol``."""
    y, r, dx, grads = layer_pass(layer, x, training=training)
    params = {key: np.array(value) for key, value in layer.params.items()}
    yt, dxt, gradst = torch_pass(function, x, params, r)
    np.testing.assert_allclose(y, yt, atol=atol)
    np.testing.assert_allclose(dx, dxt, atol=atol)
    for key in params:
        np.testing.assert_allclose(grads[key], gradst[key], atol=atol, err_msg=key)


def assert_round_trips(layers, input_shape, tmp_path, seed=0):
    """A model of ``layers`` (then Flatten) predicts and configures the same after
    ``save`` and ``load_model``, and after one training step of the loaded copy on both."""
    model = Model(Input(input_shape))
    for layer in layers:
        model.add_layer(layer)
    model.add_layer(Flatten())
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, *input_shape)).astype(np.float32)
    y = rng.standard_normal((4, *model.cur_output_shape)).astype(np.float32)
    model.train_on_batch(x, y)
    path = tmp_path / "model.h5"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    return loaded


def built(layer, input_shape):
    with floatx_scope("float64"):
        layer.build(input_shape)
    return layer


def assert_seeded_draws_repeat(make, shape=(1, 6, 6)):
    """``make(seed=...)`` layers transform a batch alike with the same seed, and unseeded
    ones alike after the same ``cnn.set_seed``; returns the seed-8 output."""
    x = random((5, *shape))
    a = built(make(seed=8), shape).forward(x, training=True)
    b = built(make(seed=8), shape).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    cnn.set_seed(3)
    c = built(make(), shape).forward(x, training=True)
    cnn.set_seed(3)
    d = built(make(), shape).forward(x, training=True)
    np.testing.assert_array_equal(c, d)
    return a
