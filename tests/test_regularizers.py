"""Weight regularisers: penalties and gradients against their formulas, names, configs, layers."""

import numpy as np
import pytest

from cnn import regularizers
from cnn.layers import Conv2D, Dense, deserialize, serialize
from cnn.regularizers import L1, L1L2, L2
from cnn.utils.gradient_check import numerical_gradient, relative_error
from helpers import build_layer

W = np.array([[0.5, -1.5, 0.0], [2.0, -0.25, 0.75]])


@pytest.mark.parametrize("regularizer, penalty", [
    (L1(0.1), 0.1 * np.abs(W).sum()),
    (L2(0.2), 0.2 * (W**2).sum()),
    (L1L2(0.1, 0.2), 0.1 * np.abs(W).sum() + 0.2 * (W**2).sum()),
    (L1L2(), 0.0),
])
def test_penalty_matches_the_formula(regularizer, penalty):
    assert regularizer(W) == pytest.approx(penalty)


@pytest.mark.parametrize("regularizer", [L1(0.1), L2(0.2), L1L2(0.1, 0.2)])
def test_gradient_matches_numerical_differences(regularizer):
    w = W.copy()
    w[0, 2] = 0.3  # keep away from the kink of |w| at 0
    numeric = numerical_gradient(lambda: regularizer(w), w)
    assert relative_error(regularizer.gradient(w), numeric) < 1e-6


def test_l1_gradient_at_zero_is_zero_and_dtype_is_kept():
    w = np.array([0.0, 2.0, -3.0], dtype=np.float32)
    grad = L1(0.5).gradient(w)
    np.testing.assert_array_equal(grad, [0.0, 0.5, -0.5])
    assert grad.dtype == np.float32


@pytest.mark.parametrize("name, cls, l1, l2", [("l1", L1, 0.01, 0.0), ("L2", L2, 0.0, 0.01),
                                                ("l1_l2", L1L2, 0.01, 0.01)])
def test_names_give_keras_defaults(name, cls, l1, l2):
    regularizer = regularizers.get(name)
    assert isinstance(regularizer, cls) and (regularizer.l1, regularizer.l2) == (l1, l2)


@pytest.mark.parametrize("regularizer", [L1(0.3), L2(0.4), L1L2(0.1, 0.2)])
def test_config_round_trip(regularizer):
    rebuilt = regularizers.get(regularizer.get_config())
    assert type(rebuilt) is type(regularizer)
    assert rebuilt.get_config() == regularizer.get_config()


@pytest.mark.parametrize("identifier, match", [
    ("l3", "unknown regularizer 'l3'; valid regularizer names: l1, l1_l2, l1l2, l2"),
    (0.01, "regularizer must be given by name"),
    ({"name": "l2", "l1": 0.1}, "bad config for regularizer 'l2'"),
])
def test_bad_identifiers(identifier, match):
    with pytest.raises(ValueError, match=match):
        regularizers.get(identifier)


def test_negative_factor_is_refused():
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        L2(-0.1)


@pytest.mark.parametrize("layer, shape", [
    (Dense(3, kernel_regularizer="l2", bias_regularizer=L1(0.5)), (4,)),
    (Conv2D(2, 3, kernel_regularizer=L1L2(0.1, 0.2)), (1, 5, 5)),
])
def test_layers_take_regularizers_and_keep_them_in_their_config(layer, shape):
    build_layer(layer, shape)
    rebuilt = deserialize(serialize(layer))
    assert rebuilt.get_config() == layer.get_config()
    assert isinstance(rebuilt.kernel_regularizer, regularizers.Regularizer)
    pairs = regularizers.regularized_params(layer)
    assert [key for key, _ in pairs] == [k for k in ("kernel", "bias")
                                        if getattr(layer, f"{k}_regularizer") is not None]
    expected = sum(reg(layer.params[key]) for key, reg in pairs)
    assert regularizers.penalty(layer) == pytest.approx(expected)


def test_penalty_gradient_is_added_to_the_layer_gradients():
    layer = build_layer(Dense(2, kernel_regularizer=L2(0.5)), (3,))
    layer.grads["kernel"] = np.ones((2, 3))
    layer.grads["bias"] = np.ones(2)
    regularizers.add_gradients(layer)
    np.testing.assert_allclose(layer.grads["kernel"], 1 + layer.params["kernel"])
    np.testing.assert_array_equal(layer.grads["bias"], np.ones(2))


def test_frozen_layers_are_not_penalised():
    layer = build_layer(Dense(2, kernel_regularizer="l2", trainable=False), (3,))
    assert regularizers.penalty(layer) == 0
    assert regularizers.regularized_params(layer) == []
