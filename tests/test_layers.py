"""Every layer's backward against numerical gradients (float64), and layer behaviour."""

import itertools

import numpy as np
import pytest

import cnn
from cnn import activations
from cnn.backend import floatx_scope
from cnn.layers import (Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Input,
                        MaxPooling2D, Output)
from helpers import build_layer, check_layer_gradients

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu",
               "softplus", "silu"]


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(activation, use_bias):
    layer = build_layer(Dense(4, activation=activation, use_bias=use_bias), (5,))
    check_layer_gradients(layer, random((3, 5)))


def test_dense_on_sequences_applies_to_last_axis():
    layer = build_layer(Dense(3, activation="tanh"), (4, 5))
    assert layer.output_shape == (None, 4, 3)
    check_layer_gradients(layer, random((2, 4, 5)))


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "linear"])
def test_output_gradients(activation):
    layer = build_layer(Output(3, 6, activation), (6,))
    check_layer_gradients(layer, random((4, 6), seed=1))


def test_output_defaults_to_softmax():
    assert Output(10, 100).activation.name == "softmax"
    assert Dense(10).activation.name == "linear"


CONV_CASES = [
    # kernel, strides, padding, input (C, H, W)
    (3, 1, "valid", (2, 6, 6)),
    (3, 1, "same", (2, 6, 5)),
    (3, 1, "full", (1, 5, 5)),
    (3, 2, "valid", (2, 7, 7)),
    (3, 2, "same", (2, 7, 6)),
    (2, 2, "full", (1, 5, 6)),
    ((2, 3), (2, 1), "valid", (2, 6, 7)),
    ((3, 2), (1, 2), "same", (1, 5, 7)),
    (4, 3, "valid", (1, 9, 8)),  # the window does not tile the input
    (3, 1, 1, (2, 5, 5)),
    (3, 2, ((1, 0), (0, 2)), (1, 6, 6)),
]


@pytest.mark.parametrize("kernel, strides, padding, input_shape", CONV_CASES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_gradients(kernel, strides, padding, input_shape, use_bias):
    layer = Conv2D(3, kernel, strides, padding=padding, activation="tanh", use_bias=use_bias)
    build_layer(layer, input_shape)
    check_layer_gradients(layer, random((2, *input_shape), seed=2))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv2d_gradients_every_activation(activation):
    layer = build_layer(Conv2D(2, 3, padding="same", activation=activation), (2, 4, 4))
    check_layer_gradients(layer, random((2, 2, 4, 4), seed=3))


def test_conv2d_output_shapes():
    cases = {
        ("valid", 1): (4, 20, 20), ("same", 1): (4, 28, 28), ("full", 1): (4, 36, 36),
        ("valid", 2): (4, 10, 10), ("same", 2): (4, 14, 14), ("full", 3): (4, 12, 12),
    }
    for (padding, stride), expected in cases.items():
        layer = Conv2D(4, 9, stride, padding=padding)
        assert layer.build((1, 28, 28)) == expected, (padding, stride)


POOL_CASES = list(itertools.product(
    ["max", "avg"],
    [(2, 2, "valid", (2, 6, 6)),      # tiling fast path
     (2, 2, "valid", (2, 7, 5)),      # not tiling: trailing rows dropped
     (3, 1, "valid", (1, 6, 6)),      # overlapping windows
     (3, 2, "valid", (2, 7, 7)),      # overlapping, stride 2
     (2, 2, "same", (2, 5, 7)),       # padded
     (3, 2, "same", (1, 6, 5)),
     ((2, 3), (1, 2), "valid", (1, 5, 7)),
     ((3, 2), None, "same", (2, 7, 5))],
))


@pytest.mark.parametrize("mode, case", POOL_CASES)
def test_pooling_gradients(mode, case):
    pool, stride, padding, input_shape = case
    cls = MaxPooling2D if mode == "max" else AveragePooling2D
    layer = build_layer(cls(pool, stride, padding=padding), input_shape)
    check_layer_gradients(layer, random((2, *input_shape), seed=4))


def test_pooling_stride_defaults_to_pool_size():
    layer = MaxPooling2D(3)
    assert layer.strides == (3, 3)
    assert layer.build((1, 9, 10)) == (1, 3, 3)


def test_max_pooling_negative_inputs_and_values():
    with floatx_scope("float64"):
        layer = MaxPooling2D(2)
        layer.build((1, 2, 4))
    x = -np.arange(1, 9, dtype=np.float64).reshape(1, 1, 2, 4)
    np.testing.assert_array_equal(layer.forward(x), [[[[-1.0, -3.0]]]])


def test_average_pooling_same_excludes_padding():
    with floatx_scope("float64"):
        layer = AveragePooling2D(2, padding="same")
        layer.build((1, 3, 3))
    x = np.ones((1, 1, 3, 3))
    np.testing.assert_allclose(layer.forward(x), np.ones((1, 1, 2, 2)))


def test_flatten_gradients_and_order():
    layer = build_layer(Flatten(), (2, 3, 4))
    x = random((2, 2, 3, 4))
    np.testing.assert_array_equal(layer.forward(x), x.reshape(2, 24))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_gradients(activation):
    layer = build_layer(Activation(activation), (3, 4))
    check_layer_gradients(layer, random((2, 3, 4), seed=5))


def test_dropout_gradient_uses_the_forward_mask():
    layer = build_layer(Dropout(0.4, seed=7), (50,))
    x = random((4, 50))
    out = layer.forward(x, training=True)
    mask = layer.mask
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    np.testing.assert_allclose(out, x * mask)
    grad = random((4, 50), seed=1)
    np.testing.assert_allclose(layer.backward(grad), grad * mask)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_dropout_rate_is_validated():
    for rate in (-0.1, 1.0, "half"):
        with pytest.raises(ValueError, match="rate"):
            Dropout(rate)


def test_dropout_keeps_expected_fraction():
    layer = build_layer(Dropout(0.3, seed=1), (1000,))
    out = layer.forward(np.ones((20, 1000)), training=True)
    assert abs((out == 0).mean() - 0.3) < 0.02
    assert abs(out.mean() - 1.0) < 0.03


def test_seed_signatures_positional():
    conv = Conv2D(20, 9, 1, (1, 28, 28), "valid", "ReLU")
    assert (conv.filters, conv.kernel_size, conv.strides) == (20, (9, 9), (1, 1))
    assert conv.activation.name == "relu"
    dense = Dense(100, 2000, "ReLU")
    assert dense.input_shape == (2000,)
    pool = MaxPooling2D(2, 2, (20, 20, 20), "valid")
    assert pool.input_shape == (20, 20, 20)
    assert Flatten((20, 10, 10)).input_shape == (20, 10, 10)


def test_keras_aliases_and_conflicts():
    conv = Conv2D(8, (3, 5), strides=(2, 1), activation="relu", use_bias=False)
    assert conv.kernel_size == (3, 5) and conv.strides == (2, 1) and not conv.use_bias
    with pytest.raises(ValueError, match="same argument"):
        Conv2D(8, 3, activate_fcn="relu", activation="tanh")
    with pytest.raises(ValueError, match="same argument"):
        Conv2D(8, 3, stride=1, strides=2)


def test_initial_weights_from_the_seed_layout():
    kernel = random((4, 1, 3, 3))
    with floatx_scope("float64"):
        conv = Conv2D(4, 3, kernel=kernel, use_bias=False)
        conv.build((1, 5, 5))
        dense = Dense(2, 3, theta=random((2, 3)), use_bias=False)
        dense.build((3,))
    np.testing.assert_array_equal(conv.params["kernel"], kernel)
    with pytest.raises(ValueError, match="expected"):
        Conv2D(4, 3, kernel=random((4, 2, 3, 3))).build((1, 5, 5))


def test_get_and_set_weights_layout():
    dense = Dense(3)
    dense.build((5,))
    kernel, bias = dense.get_weights()
    assert kernel.shape == (3, 5) and bias.shape == (3,)
    dense.set_weights([np.ones((3, 5)), np.zeros(3)])
    np.testing.assert_array_equal(dense.params["kernel"], np.ones((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        dense.set_weights([np.ones((5, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match="2 weight arrays"):
        dense.set_weights([np.ones((3, 5))])
    conv = Conv2D(4, 3)
    conv.build((2, 6, 6))
    assert [w.shape for w in conv.get_weights()] == [(4, 2, 3, 3), (4,)]


def test_parameters_are_float32_by_default():
    conv = Conv2D(4, 3)
    conv.build((2, 6, 6))
    assert conv.params["kernel"].dtype == np.float32
    out = conv.forward(np.zeros((1, 2, 6, 6), dtype=np.float32))
    assert out.dtype == np.float32


def test_he_initialisation_uses_the_kernel_fan_in():
    cnn.set_seed(0)
    conv = Conv2D(64, 3)
    conv.build((16, 28, 28))
    std = float(np.std(conv.params["kernel"]))
    assert abs(std - np.sqrt(2 / (16 * 9))) < 0.01  # not sqrt(2 / (16 * 28 * 28))


def test_unknown_names_raise_with_valid_names():
    with pytest.raises(ValueError, match="valid activation names: .*relu"):
        Dense(3, activation="rectifier")
    with pytest.raises(ValueError, match="padding"):
        Conv2D(3, 3, padding="half")
    with pytest.raises(ValueError, match="initializer"):
        Dense(3, kernel_initializer="nope")
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        MaxPooling2D(2, padding="full")


def test_bad_layer_arguments():
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="filters"):
            Conv2D(bad, 3)
        with pytest.raises(ValueError, match="units"):
            Dense(bad)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(4, 0)
    with pytest.raises(ValueError, match="does not fit"):
        Conv2D(4, 9).build((1, 5, 5))
    with pytest.raises(ValueError, match="channels, height, width"):
        Conv2D(4, 3).build((28, 28))


def test_input_layer_shapes():
    assert Input((1, 28, 28)).input_shape == (1, 28, 28)
    assert Input(shape=784).input_shape == (784,)
    with pytest.raises(ValueError, match="shape"):
        Input()


def test_activation_registry_case_insensitive():
    assert activations.get("ReLU") is activations.get("relu")
    assert activations.get("Linear").name == "linear"
    assert activations.get(None).name == "linear"
    assert activations.get("leaky_relu(0.2)").name == "leaky_relu(0.2)"


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_recurrent_gradients_with_carried_state(activation, use_bias):
    from cnn.layers import Recurrent
    from cnn.utils.gradient_check import numerical_gradient
    from helpers import gradient_error

    layer = build_layer(Recurrent(4, activation=activation, use_bias=use_bias), (3,))
    start = random((4,), seed=8) * 0.5
    x = random((6, 3), seed=9)
    r = random((6, 4), seed=10)

    def objective():
        layer.buffers["state"] = start.copy()
        return float((layer.forward(x) * r).sum())

    objective()
    dx = layer.backward(r.copy())
    analytic = {k: v.copy() for k, v in layer.grads.items()}
    assert gradient_error(dx, numerical_gradient(objective, x)) < 1e-6
    for key, param in layer.params.items():
        assert gradient_error(analytic[key], numerical_gradient(objective, param)) < 1e-6, key


def test_recurrent_carries_and_resets_state():
    from cnn.layers import Recurrent

    layer = build_layer(Recurrent(3), (2,))
    x = random((5, 2))
    whole = layer.forward(x)
    layer.reset_states()
    first, second = layer.forward(x[:2]), layer.forward(x[2:])
    np.testing.assert_allclose(np.concatenate([first, second]), whole)
    layer.reset_states()
    np.testing.assert_array_equal(layer.buffers["state"], np.zeros(3))
