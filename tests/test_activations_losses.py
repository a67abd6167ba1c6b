"""Activation functions and losses: values, gradients, stability."""

import warnings

import numpy as np
import pytest
from scipy.special import erf, expit, log_softmax, softmax

from cnn import activations, losses, metrics
from cnn.ops import activations as act_ops
from cnn.utils.gradient_check import numerical_gradient, relative_error

REFERENCE = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": expit,
    "tanh": np.tanh,
    "softmax": lambda z: softmax(z, axis=-1),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    "softplus": lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0),
    "silu": lambda z: z * expit(z),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_values(name):
    z = np.random.default_rng(0).standard_normal((4, 6)) * 3
    np.testing.assert_allclose(activations.get(name)(z), REFERENCE[name](z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_backward_matches_numerical_gradient(name):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 5)) * 2
    r = rng.standard_normal((3, 5))
    fn = activations.get(name)
    a = fn(z)
    analytic = fn.backward(r, z, a)
    numeric = numerical_gradient(lambda: float((fn(z) * r).sum()), z)
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_stable_for_huge_inputs(name, dtype):
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    fn = activations.get(name)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        a = fn(z)
        g = fn.backward(np.ones_like(z), z, a)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(g))
    assert a.dtype == dtype


def test_softmax_of_huge_logits_is_exact():
    p = act_ops.softmax(np.array([[1e4, 0.0, -1e4]]))
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(act_ops.log_softmax(np.array([[1e4, 0.0]])), [[0.0, -1e4]])


# -- losses ----------------------------------------------------------------------------------

def one_hot(ids, k):
    return np.eye(k)[ids]


def test_categorical_crossentropy_value():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = one_hot([0, 2], 3)
    expected = -(np.log(0.7) + np.log(0.8)) / 2
    assert losses.get("cross_tropy")(y, p) == pytest.approx(expected)
    z = np.log(p)
    loss = losses.get("categorical_crossentropy")
    np.testing.assert_allclose(loss.per_sample_from_logits(z, y), -np.log([0.7, 0.8]))


def test_cross_tropy_is_categorical_not_the_seeds_summed_binary():
    p = np.array([[0.7, 0.2, 0.1]])
    y = one_hot([0], 3)
    seed_value = float(np.sum(-y * np.log(p) - (1 - y) * np.log(1 - p)))
    ours = losses.get("cross_tropy")(y, p)
    assert ours == pytest.approx(-np.log(0.7))
    assert ours != pytest.approx(seed_value)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "binary_crossentropy",
                                  "mse", "mae", "MSE"])
def test_loss_gradients_match_numerical(name):
    rng = np.random.default_rng(2)
    if name in ("categorical_crossentropy",):
        output = softmax(rng.standard_normal((4, 3)), axis=1)
        target = one_hot([0, 2, 1, 1], 3)
    elif name == "binary_crossentropy":
        output = expit(rng.standard_normal((4, 3)))
        target = (rng.random((4, 3)) > 0.5).astype(float)
    else:
        output = rng.standard_normal((4, 3))
        target = rng.standard_normal((4, 3))
    loss = losses.get(name)
    analytic = loss.gradient(output, target) / output.shape[0]
    numeric = numerical_gradient(lambda: loss(target, output), output)
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("name, act", [("categorical_crossentropy", "softmax"),
                                       ("binary_crossentropy", "sigmoid")])
def test_fused_gradients_are_exact(name, act):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4)) * 3
    target = one_hot([0, 3, 1, 2, 2], 4) if act == "softmax" else (rng.random((5, 4)) > 0.5) * 1.0
    loss = losses.get(name)
    fn = activations.get(act)
    analytic = loss.gradient_from_logits(z, fn(z), target) / z.shape[0]
    numeric = numerical_gradient(lambda: float(loss.per_sample(fn(z), target).mean()), z)
    assert relative_error(analytic, numeric) < 1e-6
    if act == "softmax":
        np.testing.assert_allclose(loss.gradient_from_logits(z, fn(z), target), fn(z) - target)


def test_fused_losses_stay_finite_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0]])
    y = one_hot([1], 3)
    cce = losses.get("categorical_crossentropy")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = cce.per_sample_from_logits(z, y)
        bce = losses.get("bce").per_sample_from_logits(z, np.array([[0.0, 1.0, 1.0]]))
    assert value[0] == pytest.approx(2e4)
    assert np.all(np.isfinite(bce))
    np.testing.assert_allclose(-log_softmax(z, axis=1)[0, 1], value[0])


def test_seed_mse_is_half_sum_of_squares_and_keras_mse_is_mean():
    output = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = np.zeros((2, 3))
    assert losses.get("MSE")(target, output) == pytest.approx((1 + 4 + 9) / (2 * 2))
    assert losses.get("mse")(target, output) == pytest.approx((1 + 4 + 9) / 6)
    assert losses.get("mean_squared_error").name == "mean_squared_error"


def test_sample_weights_scale_the_loss():
    output = np.array([[1.0], [3.0]])
    target = np.zeros((2, 1))
    loss = losses.get("mse")
    assert loss(target, output, np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_unknown_loss_and_metric_names_list_valid_ones():
    with pytest.raises(ValueError, match="valid loss names: .*cross_tropy"):
        losses.get("crossentropyy")
    with pytest.raises(ValueError, match="valid metric names: .*accuracy"):
        metrics.get("acuracy")


def test_metrics_accumulate_over_batches():
    acc = metrics.get("accuracy")
    acc.update(np.array([[0.9, 0.1], [0.2, 0.8]]), one_hot([0, 0], 2))
    acc.update(np.array([[0.9, 0.1]]), one_hot([0], 2))
    assert acc.result() == pytest.approx(2 / 3)
    seed_mae = metrics.get("MAE")
    keras_mae = metrics.get("mae")
    out, tgt = np.array([[1.0, -2.0, 3.0]]), np.zeros((1, 3))
    seed_mae.update(out, tgt)
    keras_mae.update(out, tgt)
    assert seed_mae.result() == pytest.approx(6.0)
    assert keras_mae.result() == pytest.approx(2.0)
