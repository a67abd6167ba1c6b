"""Whole-model float64 gradient checks for every loss x output-activation pairing the library
fuses or special-cases, and the layer options that only a model exercises.

Public API only, so the checks hold whatever the training loop looks like inside: the analytic
gradient is the step ``train_on_batch`` takes with plain SGD at learning rate 1
(``w_before - w_after``), the numerical one central differences of ``evaluate``'s loss.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn import activations
from cnn.backend import floatx_scope
from cnn.layers import (LSTM, BatchNormalization, Conv2D, Dense, Flatten, Input,
                        MaxPooling2D, Output, SimpleRNN)
from cnn.losses import BinaryCrossentropy, CategoricalCrossentropy
from cnn.models import Sequential
from cnn.optimizers import SGD
from cnn.utils.gradient_check import check_directional, check_gradients

N, FEATURES = 6, 4


def build(layers, loss, input_shape=(FEATURES,)):
    with floatx_scope("float64"):
        model = Sequential([Input(input_shape), *layers])
        model.compile(optimizer=SGD(learning_rate=1.0), loss=loss, metrics=[])
    return model


def train_step_gradients(model, x, y, sample_weight=None):
    """The gradient of the training loss: the step of SGD(learning_rate=1), then undone."""
    weights = model.trainable_weights
    before = [w.copy() for w in weights]
    model.train_on_batch(x, y, sample_weight=sample_weight)
    grads = [b - w for b, w in zip(before, weights)]
    for w, b in zip(weights, before):
        w[...] = b
    return grads


def loss_function(model, x, y, sample_weight=None):
    def loss():
        return model.evaluate(x, y, batch_size=len(x), sample_weight=sample_weight,
                              return_dict=True)["loss"]
    return loss


def check_model(model, x, y, sample_weight=None, full=True, tolerance=1e-6):
    analytic = train_step_gradients(model, x, y, sample_weight)
    assert any(np.abs(g).max() > 1e-6 for g in analytic), "the model took no step"
    arrays = {f"weight {i}": w for i, w in enumerate(model.trainable_weights)}
    grads = {f"weight {i}": g for i, g in enumerate(analytic)}
    f = loss_function(model, x, y, sample_weight)
    if full:
        check_gradients(f, arrays, grads, tolerance=tolerance)
    check_directional(f, arrays, grads, directions=2, tolerance=tolerance)


def one_hot(classes, n=N, seed=0, steps=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n if steps is None else (n, steps))
    return np.eye(classes)[labels]


def inputs(shape=(N, FEATURES), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def probabilities(shape, seed=2):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


CLASSIFIERS = {
    # name: (output layer, loss, targets, fused with the output activation)
    "softmax + categorical_crossentropy": (
        lambda: Output(3, activation="softmax"), "categorical_crossentropy", one_hot(3), True),
    "softmax + the seed's cross_tropy": (
        lambda: Output(3, activation="softmax"), "cross_tropy", one_hot(3), True),
    "sigmoid + binary_crossentropy": (
        lambda: Output(2, activation="sigmoid"), "binary_crossentropy", probabilities((N, 2)),
        True),
    "linear + categorical_crossentropy(from_logits)": (
        lambda: Output(3, activation="linear"), CategoricalCrossentropy(from_logits=True),
        one_hot(3), False),
    "linear + binary_crossentropy(from_logits)": (
        lambda: Output(2, activation="linear"), BinaryCrossentropy(from_logits=True),
        probabilities((N, 2)), False),
    "softmax + mse (softmax Jacobian, not fused)": (
        lambda: Output(3, activation="softmax"), "mse", one_hot(3), False),
    "sigmoid + mse (not fused)": (
        lambda: Output(2, activation="sigmoid"), "mse", probabilities((N, 2)), False),
    "linear + mse": (lambda: Output(2, activation="linear"), "mse", inputs((N, 2), 3), False),
    "linear + mae": (lambda: Output(2, activation="linear"), "mae", inputs((N, 2), 3), False),
    "linear + the seed's MSE": (
        lambda: Output(2, activation="linear"), "MSE", inputs((N, 2), 3), False),
    "softmax + binary_crossentropy (not fused)": (
        lambda: Output(3, activation="softmax"), "binary_crossentropy", one_hot(3), False),
    "sigmoid + categorical_crossentropy (not fused)": (
        lambda: Output(3, activation="sigmoid"), "categorical_crossentropy", one_hot(3), False),
}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_loss_and_output_activation(name):
    output, loss, y, fused = CLASSIFIERS[name]
    model = build([Dense(5, activation="tanh"), output()], loss)
    assert model.layers[-1].keep_preactivation == fused  # the path meant is the path taken
    check_model(model, inputs(), y)


@pytest.mark.parametrize("name", ["softmax + categorical_crossentropy",
                                  "sigmoid + binary_crossentropy", "linear + mse",
                                  "linear + mae", "linear + the seed's MSE",
                                  "linear + categorical_crossentropy(from_logits)"])
def test_sample_weights(name):
    output, loss, y, _ = CLASSIFIERS[name]
    model = build([Dense(5, activation="tanh"), output()], loss)
    weights = np.random.default_rng(4).uniform(0.0, 3.0, N)
    weights[1] = 0.0
    check_model(model, inputs(), y, sample_weight=weights)


def test_sample_weights_change_the_gradient():
    """Guard against a check that passes because weights are ignored on both sides."""
    output, loss, y, _ = CLASSIFIERS["softmax + categorical_crossentropy"]
    model = build([Dense(5, activation="tanh"), output()], loss)
    x = inputs()
    plain = train_step_gradients(model, x, y)
    weighted = train_step_gradients(model, x, y, sample_weight=np.arange(N, dtype=float))
    assert not np.allclose(plain[0], weighted[0])


SEQUENCE_LOSSES = {
    "mae": inputs((N, 3, 2), 5),
    "mse": inputs((N, 3, 2), 5),
    "MSE": inputs((N, 3, 2), 5),
}


@pytest.mark.parametrize("loss", SEQUENCE_LOSSES)
def test_losses_on_sequences(loss):
    """(N, T, K) outputs: the per-sample loss is the mean over the T steps."""
    model = build([SimpleRNN(4, return_sequences=True), Dense(2)], loss, input_shape=(3, 2))
    check_model(model, inputs((N, 3, 2), 6), SEQUENCE_LOSSES[loss])


def test_softmax_crossentropy_on_sequences():
    model = build([LSTM(3, return_sequences=True), Output(4, activation="softmax")],
                  "categorical_crossentropy", input_shape=(3, 2))
    assert model.layers[-1].keep_preactivation
    check_model(model, inputs((N, 3, 2), 7), one_hot(4, steps=3))


def test_frozen_batch_normalization():
    """trainable=False: gamma and beta are not trained, the moving statistics normalise in
    training too, and the gradient flows through the affine map to the layers below."""
    frozen = BatchNormalization(trainable=False)
    model = build([Dense(5, activation="tanh"), frozen, Output(3, activation="softmax")],
                  "categorical_crossentropy")
    frozen.params["gamma"][...] = [0.5, 2.0, -1.0, 1.5, 0.7]
    frozen.params["beta"][...] = [0.1, -0.2, 0.3, 0.0, 1.0]
    frozen.buffers["moving_mean"][...] = [0.2, -0.1, 0.0, 0.4, -0.3]
    frozen.buffers["moving_variance"][...] = [0.5, 1.5, 2.0, 0.8, 1.1]
    n_trainable = len(model.trainable_weights)
    assert n_trainable == 4  # Dense and Output kernels and biases; not gamma, beta
    moving = {k: v.copy() for k, v in frozen.buffers.items()}
    check_model(model, inputs(), one_hot(3))
    for key, value in moving.items():
        np.testing.assert_array_equal(frozen.buffers[key], value)


@pytest.mark.parametrize("activation", [activations.leaky_relu(0.2), activations.elu(0.5),
                                        "leaky_relu(0.3)", "elu(2.0)"],
                         ids=["leaky_relu(0.2)", "elu(0.5)", "leaky_relu(0.3) by name",
                              "elu(2.0) by name"])
def test_activations_with_non_default_alpha(activation):
    model = build([Dense(8, activation=activation), Output(3, activation="softmax")],
                  "categorical_crossentropy")
    check_model(model, 2 * inputs(), one_hot(3))


def test_alpha_is_used():
    """leaky_relu(0.2) and the default leaky_relu differ on negative inputs."""
    x = np.array([-1.0, 2.0])
    assert activations.get("leaky_relu(0.2)").forward(x)[0] == pytest.approx(-0.2)
    assert activations.get("leaky_relu").forward(x)[0] == pytest.approx(-0.01)
    assert activations.get("elu(0.5)").forward(x)[0] == pytest.approx(0.5 * (np.exp(-1) - 1))


def test_regularised_conv_model_directional():
    """A conv network with L2 penalties, checked in two random directions (the full check of
    its 400 weights would take 800 passes)."""
    model = build([Conv2D(3, 3, padding="same", activation="relu", kernel_regularizer="l2"),
                   MaxPooling2D(2), Flatten(), Dense(6, activation="tanh"),
                   Output(3, activation="softmax")],
                  "categorical_crossentropy", input_shape=(2, 6, 6))
    check_model(model, inputs((4, 2, 6, 6), 8), one_hot(3, n=4), full=False)
