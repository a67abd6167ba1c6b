"""BatchNormalization's forward and backward against the slow Jacobian twin
(cnn.ops.reference_norm), which is itself checked against central differences first."""

from __future__ import annotations

import numpy as np
import pytest

from cnn.layers import BatchNormalization
from cnn.ops import reference_norm as ref
from cnn.utils.gradient_check import check_gradients
from helpers import build_layer

EPSILON = 1e-3
# (input shape without the batch axis, layer axis, axis in the batch for the reference)
LAYOUTS = [
    ((4,), None, -1),             # (N, F) features
    ((3, 2, 2), None, 1),         # (N, C, H, W) channels
    ((3, 4), None, -1),           # (N, T, F) sequences: features last
    ((3, 2, 4), 2, 2),            # an explicit middle axis
    ((3, 2, 4), -1, -1),
]


@pytest.mark.parametrize("inference", [False, True])
def test_reference_backward_matches_central_differences(inference):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((5, 3, 2, 2)), "gamma": rng.standard_normal(3),
              "beta": rng.standard_normal(3)}
    stats = (rng.standard_normal(3), rng.random(3) + 0.5) if inference else (None, None)
    dy = rng.standard_normal(arrays["x"].shape)

    def objective():
        y = ref.batch_norm_forward(arrays["x"], arrays["gamma"], arrays["beta"], 1, EPSILON,
                                   *stats)
        return float((y * dy).sum())

    dx, dgamma, dbeta = ref.batch_norm_backward(dy, arrays["x"], arrays["gamma"], 1, EPSILON,
                                                *stats)
    check_gradients(objective, arrays, {"x": dx, "gamma": dgamma, "beta": dbeta},
                    tolerance=1e-7)


def test_reference_forward_normalises_each_channel():
    x = np.random.default_rng(1).normal(3.0, 2.0, (50, 3))
    y = ref.batch_norm_forward(x, None, None, -1, 0.0)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-12)


def random_layer(shape, axis, rng, **kwargs):
    layer = build_layer(BatchNormalization(axis=axis, epsilon=EPSILON, **kwargs), shape)
    for key in layer.params:
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape)
    if "moving_variance" in layer.buffers:
        layer.buffers["moving_mean"][...] = rng.standard_normal(layer.channels)
        layer.buffers["moving_variance"][...] = rng.random(layer.channels) + 0.5
    layer.needs_input_grad = True
    return layer


def layer_and_reference(layer, x, ref_axis, training):
    """The layer's (y, dx, grads) and the reference's, for one random output gradient."""
    uses_batch = training and layer.trainable
    mean = None if uses_batch else layer.buffers["moving_mean"].copy()
    variance = None if uses_batch else layer.buffers["moving_variance"].copy()
    gamma, beta = layer.params.get("gamma"), layer.params.get("beta")
    y = layer.forward(x.copy(), training=training)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(dy.copy())
    expected_y = ref.batch_norm_forward(x, gamma, beta, ref_axis, EPSILON, mean, variance)
    expected = ref.batch_norm_backward(dy, x, gamma, ref_axis, EPSILON, mean, variance)
    return (y, dx, layer.grads), (expected_y, *expected)


@pytest.mark.parametrize("shape, axis, ref_axis", LAYOUTS)
@pytest.mark.parametrize("training", [True, False])
def test_layer_matches_reference(shape, axis, ref_axis, training):
    rng = np.random.default_rng(3)
    layer = random_layer(shape, axis, rng)
    x = rng.normal(0.5, 2.0, (6, *shape))
    (y, dx, grads), (ey, edx, edgamma, edbeta) = layer_and_reference(layer, x, ref_axis, training)
    np.testing.assert_allclose(y, ey, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, edx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["gamma"], edgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["beta"], edbeta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_layer_without_scale_or_center_matches_reference(center, scale):
    rng = np.random.default_rng(4)
    layer = random_layer((3, 2, 2), None, rng, center=center, scale=scale)
    x = rng.standard_normal((4, 3, 2, 2))
    (y, dx, grads), (ey, edx, edgamma, edbeta) = layer_and_reference(layer, x, 1, True)
    np.testing.assert_allclose(y, ey, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, edx, rtol=1e-9, atol=1e-12)
    assert ("gamma" in grads) == scale and ("beta" in grads) == center
    if scale:
        np.testing.assert_allclose(grads["gamma"], edgamma, rtol=1e-10)
    if center:
        np.testing.assert_allclose(grads["beta"], edbeta, rtol=1e-10)


def test_frozen_layer_uses_moving_statistics_in_training():
    """trainable=False (Keras 3): the moving statistics even when training, and the affine
    backward; the moving statistics do not move."""
    rng = np.random.default_rng(5)
    layer = random_layer((4,), None, rng, trainable=False)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    x = rng.normal(1.0, 3.0, (8, 4))
    (y, dx, grads), (ey, edx, edgamma, edbeta) = layer_and_reference(layer, x, -1, True)
    np.testing.assert_allclose(y, ey, rtol=1e-10)
    np.testing.assert_allclose(dx, edx, rtol=1e-10)
    np.testing.assert_allclose(grads["gamma"], edgamma, rtol=1e-10)
    for key, value in before.items():
        np.testing.assert_array_equal(layer.buffers[key], value)


def test_moving_statistics_follow_keras_momentum():
    rng = np.random.default_rng(6)
    layer = random_layer((3,), None, rng, momentum=0.9)
    mean0, var0 = layer.buffers["moving_mean"].copy(), layer.buffers["moving_variance"].copy()
    x = rng.standard_normal((10, 3))
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.buffers["moving_mean"], 0.9 * mean0 + 0.1 * x.mean(0))
    np.testing.assert_allclose(layer.buffers["moving_variance"], 0.9 * var0 + 0.1 * x.var(0))
