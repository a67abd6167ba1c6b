"""GlobalAveragePooling2D, ZeroPadding2D and Reshape: values, gradients, shapes, errors."""

import numpy as np
import pytest

import cnn
from cnn.layers import (Conv2D, Dense, GlobalAveragePooling2D, Input, Output, Reshape, ZeroPadding2D,
                        deserialize, serialize)
from cnn.models import Model
from cnn.optimizers import Adam
from helpers import build_layer, check_layer_gradients


def random(shape, seed=3):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("keepdims, shape", [(False, (3,)), (True, (3, 1, 1))])
def test_global_average_pooling_is_the_channel_mean(keepdims, shape):
    layer = build_layer(GlobalAveragePooling2D(keepdims=keepdims), (3, 4, 5))
    x = random((2, 3, 4, 5))
    assert layer.output_shape == (None, *shape)
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)).reshape(2, *shape))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("padding, expected", [
    (1, ((1, 1), (1, 1))),
    ((2, 0), ((2, 2), (0, 0))),
    (((1, 2), (0, 3)), ((1, 2), (0, 3))),
])
def test_zero_padding_adds_zeros_where_asked(padding, expected):
    layer = build_layer(ZeroPadding2D(padding), (2, 3, 4))
    (top, bottom), (left, right) = expected
    assert layer.output_shape == (None, 2, 3 + top + bottom, 4 + left + right)
    x = random((2, 2, 3, 4))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), expected[0], expected[1])))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("target, expected", [((4, 6), (4, 6)), ((-1, 3), (8, 3)), (24, (24,)),
                                              ((2, -1, 2), (2, 6, 2))])
def test_reshape_keeps_the_values_in_c_order(target, expected):
    layer = build_layer(Reshape(target), (2, 3, 4))
    assert layer.output_shape == (None, *expected)
    x = random((5, 2, 3, 4))
    np.testing.assert_array_equal(layer.forward(x), x.reshape(5, *expected))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("make, shape, match", [
    (lambda: Reshape((5, 5)), (2, 3, 4), r"cannot reshape input \(None, 2, 3, 4\) \(24 values per "
                                         r"sample\) to \(None, 5, 5\)"),
    (lambda: Reshape((-1, 5)), (2, 3, 4), "cannot reshape"),
    (lambda: Reshape((-1, -1)), (2, 3, 4), "at most one -1"),
    (lambda: Reshape((0, 4)), (2, 3, 4), "positive sizes"),
    (lambda: Reshape("flat"), (2, 3, 4), "must be a tuple of ints"),
    (lambda: ZeroPadding2D("same"), (2, 3, 4), "not a mode"),
    (lambda: ZeroPadding2D(-1), (2, 3, 4), "padding must be >= 0"),
    (lambda: ZeroPadding2D(1), (12,), r"needs input of shape \(channels, height, width\)"),
    (lambda: GlobalAveragePooling2D(), (3, 4), r"needs input of shape \(channels, height, width\)"),
])
def test_bad_arguments_are_named(make, shape, match):
    with pytest.raises(ValueError, match=match):
        build_layer(make(), shape)


@pytest.mark.parametrize("layer", [GlobalAveragePooling2D(keepdims=True, name="gap"),
                                   ZeroPadding2D(((1, 0), (2, 3))), Reshape((-1, 4))])
def test_config_round_trip(layer):
    rebuilt = deserialize(serialize(layer))
    assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()


def test_an_all_convolutional_model_with_padding_and_global_pooling_trains():
    cnn.set_seed(0)
    model = Model(Input((1, 6, 6)))
    model.add(ZeroPadding2D(1))
    model.add(Conv2D(4, 3, activation="relu"))
    model.add(GlobalAveragePooling2D())
    model.add(Reshape((2, 2)))
    model.add(Reshape((4,)))
    model.add(Dense(8, activation="relu"))
    model.add(Output(2))
    model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.normal(0, 0.3, (64, 1, 6, 6)).astype(np.float32) + y[:, None, None, None]
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert model.output_shape == (None, 2)
