"""Graphs against the same networks in PyTorch: a residual block and a two-input model agree
on the forward pass and on the weights after one SGD step."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import (Activation, Add, Concatenate, Conv2D, Dense, GlobalAveragePooling2D,
                        Input, Multiply, Output)
from cnn.models import Model
from cnn.optimizers import SGD

torch = pytest.importorskip("torch", reason="PyTorch is the reference for these graphs")
F = torch.nn.functional


def tensor(array):
    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=True)


def torch_sgd_step(params: dict, loss, learning_rate):
    loss.backward()
    with torch.no_grad():
        return {key: (p - learning_rate * p.grad).numpy() for key, p in params.items()}


def test_a_residual_block_agrees_with_pytorch():
    with floatx_scope("float64"):
        cnn.set_seed(0)
        x = Input((2, 6, 6))
        h = Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
        r = Conv2D(4, 3, padding="same", name="c2")(h)
        pooled = GlobalAveragePooling2D()(Activation("relu")(Add()([h, r])))
        model = Model(x, Output(3, name="head")(pooled))
        model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy", metrics=[])
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 2, 6, 6))
    labels = np.array([0, 2, 1, 1, 0])
    params = {f"{name}/{key}": tensor(model.get_layer(name=name).params[key])
              for name in ("c1", "c2", "head") for key in ("kernel", "bias")}

    def torch_forward():
        t = torch.tensor(data)
        h = F.relu(F.conv2d(t, params["c1/kernel"], params["c1/bias"], padding=1))
        r = F.conv2d(h, params["c2/kernel"], params["c2/bias"], padding=1)
        pooled = F.relu(h + r).mean(dim=(2, 3))
        return F.linear(pooled, params["head/kernel"], params["head/bias"])

    logits = torch_forward()
    np.testing.assert_allclose(model.predict(data), F.softmax(logits, 1).detach().numpy(),
                               atol=1e-4)
    expected = torch_sgd_step(params, F.cross_entropy(logits, torch.tensor(labels)), 0.1)
    model.train_on_batch(data, labels)
    for key, value in expected.items():
        name, weight = key.split("/")
        np.testing.assert_allclose(model.get_layer(name=name).params[weight], value, atol=1e-4,
                                   err_msg=key)


def test_a_two_input_model_agrees_with_pytorch():
    with floatx_scope("float64"):
        cnn.set_seed(1)
        a, b = Input((5,)), Input((3,))
        ha = Dense(4, activation="tanh", name="da")(a)
        hb = Dense(4, activation="tanh", name="db")(b)
        joined = Concatenate()([Multiply()([ha, hb]), ha])
        model = Model([a, b], Dense(2, name="out")(joined))
        model.compile(optimizer=SGD(0.05), loss="mse", metrics=[])
    rng = np.random.default_rng(1)
    xa, xb = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    target = rng.standard_normal((6, 2))
    params = {f"{name}/{key}": tensor(model.get_layer(name=name).params[key])
              for name in ("da", "db", "out") for key in ("kernel", "bias")}
    ha_t = torch.tanh(F.linear(torch.tensor(xa), params["da/kernel"], params["da/bias"]))
    hb_t = torch.tanh(F.linear(torch.tensor(xb), params["db/kernel"], params["db/bias"]))
    out = F.linear(torch.cat([ha_t * hb_t, ha_t], dim=1), params["out/kernel"],
                   params["out/bias"])
    np.testing.assert_allclose(model.predict([xa, xb]), out.detach().numpy(), atol=1e-4)
    expected = torch_sgd_step(params, F.mse_loss(out, torch.tensor(target)), 0.05)
    model.train_on_batch([xa, xb], target)
    for key, value in expected.items():
        name, weight = key.split("/")
        np.testing.assert_allclose(model.get_layer(name=name).params[weight], value, atol=1e-4,
                                   err_msg=key)
