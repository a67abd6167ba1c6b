"""Initialisers' conventions (Keras's), asserted on the arrays the layers draw.

Glorot (Xavier) and He (Kaiming), per Keras's documentation: uniform on
``[-limit, limit]`` with ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot) or
``sqrt(6 / fan_in)`` (He), variance ``limit**2 / 3``; normal with variance
``2 / (fan_in + fan_out)`` (Glorot) or ``2 / fan_in`` (He). Recurrent kernels orthogonal,
biases zero, the LSTM's forget-gate bias 1 (``unit_forget_bias``, gate order i, f, c, o).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn import initializers
from cnn.layers import GRU, LSTM, Conv2D, Dense, SimpleRNN
from helpers import build_layer

FAN_IN, FAN_OUT = 300, 200
SHAPE = (FAN_OUT, FAN_IN)  # 60,000 draws: the variance is known to about 0.6% (1 sigma)

UNIFORM = {
    "glorot_uniform": np.sqrt(6 / (FAN_IN + FAN_OUT)),
    "xavier_uniform": np.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he_uniform": np.sqrt(6 / FAN_IN),
    "kaiming_uniform": np.sqrt(6 / FAN_IN),
    "lecun_uniform": np.sqrt(3 / FAN_IN),
    "torch_default": 1 / np.sqrt(FAN_IN),
}
NORMAL_VARIANCE = {
    "glorot_normal": 2 / (FAN_IN + FAN_OUT),
    "xavier_normal": 2 / (FAN_IN + FAN_OUT),
    "he_normal": 2 / FAN_IN,
    "kaiming_normal": 2 / FAN_IN,
    "lecun_normal": 1 / FAN_IN,
}


def draw(name, shape=SHAPE, fan_in=FAN_IN, fan_out=FAN_OUT):
    cnn.set_seed(0)
    return np.asarray(initializers.initialize(name, shape, fan_in, fan_out, "float64"))


@pytest.mark.parametrize("name", UNIFORM)
def test_uniform_range_and_variance(name):
    limit = UNIFORM[name]
    w = draw(name)
    assert w.shape == SHAPE
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit  # the whole range is used
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=0.03)
    assert abs(w.mean()) < 0.01 * limit
    # uniform, not normal: a quarter of the draws in each quarter of the range
    counts = np.histogram(w, bins=4, range=(-limit, limit))[0] / w.size
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


@pytest.mark.parametrize("name", NORMAL_VARIANCE)
def test_normal_variance(name):
    w = draw(name)
    variance = NORMAL_VARIANCE[name]
    assert w.var() == pytest.approx(variance, rel=0.03)
    assert abs(w.mean()) < 0.01 * np.sqrt(variance)
    # normal: about 68% within one standard deviation (uniform would give 58%)
    assert np.mean(np.abs(w) < np.sqrt(variance)) == pytest.approx(0.683, abs=0.01)


def test_initialisers_use_the_given_fans():
    """fan_in and fan_out are not swapped: he depends on fan_in only."""
    assert draw("he_normal", fan_in=FAN_IN, fan_out=5).var() == pytest.approx(2 / FAN_IN, rel=0.03)
    assert draw("he_normal", fan_in=50, fan_out=FAN_OUT).var() == pytest.approx(2 / 50, rel=0.03)


@pytest.mark.parametrize("shape", [(6, 6), (12, 4), (4, 12)])
def test_orthogonal(shape):
    q = draw("orthogonal", shape, shape[1], shape[0])
    small = min(shape)
    gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


def test_zeros_and_ones():
    assert not draw("zeros", (3, 4)).any()
    assert (draw("ones", (3, 4)) == 1).all()


def test_seeded_draws_repeat():
    np.testing.assert_array_equal(draw("glorot_uniform"), draw("glorot_uniform"))


# -- on the layers --------------------------------------------------------------------------

def test_lstm_forget_gate_bias_is_one():
    """Keras's LSTM: bias blocks i, f, c (our g), o; unit_forget_bias puts 1 on f only."""
    units = 5
    layer = build_layer(LSTM(units), (4, 3))
    bias = layer.params["bias"].reshape(4, units)
    np.testing.assert_array_equal(bias[1], np.ones(units))          # forget gate
    np.testing.assert_array_equal(bias[[0, 2, 3]], np.zeros((3, units)))  # input, cell, output
    plain = build_layer(LSTM(units, unit_forget_bias=False), (4, 3))
    assert not plain.params["bias"].any()


def test_lstm_forget_bias_keeps_the_cell_state():
    """What the convention is for: with zero weights, the forget gate is sigmoid(1) = 0.731
    and the input gate sigmoid(0) = 0.5, so c_1 = 0.731 * c_0 exactly (the candidate is 0)."""
    layer = build_layer(LSTM(2), (1, 1))
    layer.params["kernel"][...] = 0
    layer.params["recurrent_kernel"][...] = 0
    c0 = np.array([[1.0, -2.0]])
    layer.forward(np.zeros((1, 1, 1)), initial_state=[np.zeros((1, 2)), c0])
    np.testing.assert_allclose(layer.states[1], c0 / (1 + np.exp(-1.0)), rtol=1e-12)


@pytest.mark.parametrize("cls, blocks", [(SimpleRNN, 1), (LSTM, 4), (GRU, 3)])
def test_recurrent_kernels_are_orthogonal(cls, blocks):
    """Keras draws an orthogonal (U, G*U) matrix; ours is its transpose (G*U, U): its U
    columns are orthonormal."""
    units = 4
    layer = build_layer(cls(units), (3, 2))
    r = layer.params["recurrent_kernel"]
    assert r.shape == (blocks * units, units)
    np.testing.assert_allclose(r.T @ r, np.eye(units), atol=1e-12)


@pytest.mark.parametrize("cls, blocks", [(SimpleRNN, 1), (LSTM, 4), (GRU, 3)])
def test_recurrent_input_kernels_are_glorot_uniform(cls, blocks):
    units, features = 40, 30
    layer = build_layer(cls(units), (3, features))
    kernel = layer.params["kernel"]
    limit = np.sqrt(6 / (features + blocks * units))
    assert np.abs(kernel).max() <= limit
    assert kernel.var() == pytest.approx(limit ** 2 / 3, rel=0.1)


def test_gru_and_simple_rnn_biases_are_zero():
    gru = build_layer(GRU(3), (2, 2))
    assert not gru.params["bias"].any() and not gru.params["recurrent_bias"].any()
    assert not build_layer(SimpleRNN(3), (2, 2)).params["bias"].any()


def test_dense_and_conv_fans():
    """Dense (units, inputs): he_uniform over fan_in = inputs; Conv2D (F, C, kh, kw):
    he_normal over fan_in = C * kh * kw (not the seed's C * H * W); zero biases."""
    cnn.set_seed(0)
    dense = build_layer(Dense(200, kernel_initializer="he_uniform"), (300,))
    assert np.abs(dense.params["kernel"]).max() <= np.sqrt(6 / 300)
    assert dense.params["kernel"].var() == pytest.approx(2 / 300, rel=0.05)
    assert not dense.params["bias"].any()
    conv = build_layer(Conv2D(64, 5), (16, 12, 12))
    assert conv.params["kernel"].var() == pytest.approx(2 / (16 * 25), rel=0.05)
    assert not conv.params["bias"].any()
