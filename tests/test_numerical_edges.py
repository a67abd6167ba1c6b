"""Edges of the numerical code that the mutation run showed untested (docs/TESTING.md):
the losses' clipping at saturated outputs, activation conventions at 0 and defaults, softmax
over sequences, BatchNormalization's inference default and overflow guard."""

from __future__ import annotations

import numpy as np
import pytest

from cnn.layers import BatchNormalization
from cnn.losses import BinaryCrossentropy, CategoricalCrossentropy
from cnn.ops import activations as ops
from cnn.utils.gradient_check import check_gradients
from helpers import build_layer

EPSILON = 1e-7  # Keras's backend epsilon, the clip of the probability losses


# -- losses at saturated outputs ----------------------------------------------------------

def test_categorical_crossentropy_clips_zero_probabilities():
    """A probability of exactly 0 (float32 softmax underflow) costs -log(1e-7), not inf."""
    loss = CategoricalCrossentropy()
    output = np.array([[0.0, 1.0], [0.5, 0.5]])
    target = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(loss.per_sample(output, target), [-np.log(EPSILON), np.log(2)])
    gradient = loss.gradient(output, target)
    assert np.isfinite(gradient).all()
    np.testing.assert_allclose(gradient[0], [-1 / EPSILON, 0.0])


@pytest.mark.parametrize("p, y, expected", [
    (0.0, 1.0, -np.log(EPSILON)),       # confidently wrong, clipped below
    (1.0, 0.0, -np.log(EPSILON)),       # confidently wrong, clipped above
    (1.0, 1.0, -np.log(1 - EPSILON)),   # right: clipped to 1 - eps, not log(0) of 1 - p
    (0.0, 0.0, -np.log(1 - EPSILON)),
])
def test_binary_crossentropy_clips_both_ends(p, y, expected):
    loss = BinaryCrossentropy()
    output, target = np.array([[p]]), np.array([[y]])
    np.testing.assert_allclose(loss.per_sample(output, target), [expected], rtol=1e-6)
    gradient = loss.gradient(output, target)
    assert np.isfinite(gradient).all()
    clipped = min(max(p, EPSILON), 1 - EPSILON)
    np.testing.assert_allclose(gradient, [[(clipped - y) / (clipped * (1 - clipped))]],
                               rtol=1e-6)


def test_losses_keep_from_logits():
    assert BinaryCrossentropy(from_logits=True).from_logits is True
    assert BinaryCrossentropy().from_logits is False
    z, y = np.array([[40.0, -40.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(BinaryCrossentropy(from_logits=True).per_sample(z, y), [40.0])


# -- activations --------------------------------------------------------------------------

def test_leaky_relu_default_slope_and_gradient_at_zero():
    """Slope 0.01 by default (PyTorch's); at exactly 0 the gradient is the slope, as
    PyTorch's ``z > 0 ? 1 : slope``."""
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(ops.leaky_relu(z), [-0.02, 0.0, 3.0])
    grad = ops.leaky_relu_backward(np.ones(3), z, ops.leaky_relu(z))
    np.testing.assert_allclose(grad, [0.01, 0.01, 1.0])
    np.testing.assert_allclose(ops.leaky_relu_backward(np.ones(3), z, None, alpha=0.3),
                               [0.3, 0.3, 1.0])


def test_elu_default_alpha_and_gradient_at_zero():
    """alpha 1 by default; at exactly 0 the gradient is the left one, alpha (PyTorch's
    ``x <= 0`` branch), which differs from the right one (1) when alpha is not 1."""
    z = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(ops.elu(z), [np.expm1(-1.0), 0.0, 2.0])
    np.testing.assert_allclose(ops.elu_backward(np.ones(3), z, ops.elu(z)),
                               [np.exp(-1.0), 1.0, 1.0])
    a = ops.elu(z, alpha=0.5)
    np.testing.assert_allclose(ops.elu_backward(np.ones(3), z, a, alpha=0.5),
                               [0.5 * np.exp(-1.0), 0.5, 1.0])


def test_relu_inplace_writes_over_its_input():
    z = np.array([-1.0, 2.0])
    result = ops.relu_inplace(z)
    assert result is z
    np.testing.assert_array_equal(z, [0.0, 2.0])


def test_softmax_backward_over_the_last_axis_of_sequences():
    """(N, T, K): the softmax and its Jacobian act on K, whatever the other axes."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 3, 4))
    weights = rng.standard_normal(z.shape)
    grad = ops.softmax_backward(weights, z, ops.softmax(z))
    check_gradients(lambda: float((ops.softmax(z) * weights).sum()), {"z": z}, {"z": grad})


# -- BatchNormalization -------------------------------------------------------------------

def test_batch_normalization_forward_defaults_to_inference():
    rng = np.random.default_rng(1)
    layer = build_layer(BatchNormalization(), (3,))
    layer.buffers["moving_mean"][...] = [1.0, -1.0, 0.5]
    layer.buffers["moving_variance"][...] = [4.0, 0.25, 1.0]
    x = rng.standard_normal((5, 3))
    expected = (x - layer.buffers["moving_mean"]) / np.sqrt(layer.buffers["moving_variance"]
                                                           + layer.epsilon)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["moving_mean"], [1.0, -1.0, 0.5])  # not updated


def test_batch_normalization_ignores_a_batch_whose_variance_overflows():
    """float32 values of 1e20: the mean is finite, the variance overflows to inf; the moving
    statistics must keep their last good values."""
    layer = BatchNormalization()
    layer.build((2,))
    before = {key: value.copy() for key, value in layer.buffers.items()}
    x = np.array([[1e20, 1.0], [-1e20, 2.0], [3e20, 3.0]], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        layer.forward(x, training=True)
    for key, value in before.items():
        np.testing.assert_array_equal(layer.buffers[key], value)


@pytest.mark.parametrize("axis", [True, "1", 1.5, 0])
def test_batch_normalization_rejects_bad_axes(axis):
    with pytest.raises(ValueError, match="axis"):
        BatchNormalization(axis=axis)


def test_batch_normalization_keeps_its_name_and_input_shape():
    layer = BatchNormalization(name="norm", input_shape=(4,))
    assert layer.name == "norm"
    assert layer.get_config()["name"] == "norm"
    assert tuple(layer.input_shape) == (4,)


def test_batch_normalization_fan_using_initialisers():
    """Initialisers that read the fans get the channel count for both."""
    layer = build_layer(BatchNormalization(gamma_initializer="glorot_uniform"), (6,))
    limit = np.sqrt(6 / 12)
    assert np.abs(layer.params["gamma"]).max() <= limit
    assert layer.params["gamma"].std() > 0
